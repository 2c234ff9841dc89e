"""Image message conversion: every encoding, row padding, compressed formats, and each bad input's error."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image as PILImage

from vjepa_core.imgmsg import (
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    compressed_to_rgb,
    image_to_rgb,
    msg_to_rgb,
    rgb_to_image_fields,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def as_msg(**fields):
    return SimpleNamespace(**fields)


MONO_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1")
SIXTEEN_BIT = ("rgb16", "bgr16", "rgba16", "bgra16", "mono16", "16UC1")


def test_supported_encodings():
    """What the training data builder's former decoder took (8UC1/3/4, mono16, 16UC1) is supported too."""
    assert set(SUPPORTED_ENCODINGS) == {"rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "8UC3", "8UC4",
                                        "rgb16", "bgr16", "rgba16", "bgra16", "mono16", "16UC1"}


@pytest.mark.parametrize("is_bigendian", [False, True])
@pytest.mark.parametrize("encoding", [e for e in SUPPORTED_ENCODINGS if e not in MONO_ENCODINGS])
def test_color_encodings_round_trip(encoding, is_bigendian):
    fields = rgb_to_image_fields(RGB, encoding, is_bigendian=is_bigendian)
    assert np.array_equal(image_to_rgb(as_msg(**fields)), RGB)


@pytest.mark.parametrize("encoding", MONO_ENCODINGS)
def test_mono_encodings_round_trip(encoding):
    gray = np.repeat(RGB[:, :, :1], 3, axis=2)
    assert np.array_equal(image_to_rgb(as_msg(**rgb_to_image_fields(gray, encoding))), gray)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_is_replicated(encoding):
    gray = RNG.integers(0, 256, size=(4, 6), dtype=np.uint8)
    out = image_to_rgb(as_msg(height=4, width=6, encoding=encoding, step=6, is_bigendian=0, data=gray.tobytes()))
    assert out.shape == (4, 6, 3) and all(np.array_equal(out[..., c], gray) for c in range(3))


@pytest.mark.parametrize(("encoding", "is_bigendian"), [("mono16", 0), ("mono16", 1), ("16UC1", 0), ("16UC1", 1)])
def test_mono16_keeps_the_high_byte_in_the_messages_byte_order(encoding, is_bigendian):
    depth = RNG.integers(0, 65536, size=(3, 5), dtype=np.uint32).astype(np.uint16)
    data = depth.astype(">u2" if is_bigendian else "<u2").tobytes()
    msg = as_msg(height=3, width=5, encoding=encoding, step=10, is_bigendian=is_bigendian, data=data)
    out = image_to_rgb(msg)
    assert out.dtype == np.uint8 and out.shape == (3, 5, 3)
    assert all(np.array_equal(out[..., c], (depth >> 8).astype(np.uint8)) for c in range(3))


def test_rgb16_with_row_padding():
    values = RNG.integers(0, 65536, size=(4, 6, 3), dtype=np.uint32).astype("<u2")
    padded = np.zeros((4, 6 * 3 * 2 + 6), dtype=np.uint8)
    padded[:, : 6 * 3 * 2] = values.view(np.uint8).reshape(4, -1)
    msg = as_msg(height=4, width=6, encoding="rgb16", step=padded.shape[1], is_bigendian=0, data=padded.tobytes())
    assert np.array_equal(image_to_rgb(msg), (values >> 8).astype(np.uint8))


@pytest.mark.parametrize(("encoding", "channels"), [("8UC3", 3), ("8UC4", 4)])
def test_opencv_8uc3_and_8uc4_are_bgr(encoding, channels):
    pixels = RNG.integers(0, 256, size=(5, 7, channels), dtype=np.uint8)
    msg = as_msg(height=5, width=7, encoding=encoding, step=7 * channels, is_bigendian=0, data=pixels.tobytes())
    assert np.array_equal(image_to_rgb(msg), pixels[:, :, 2::-1])


@pytest.mark.parametrize(("given", "canonical"), [("RGB8", "rgb8"), ("8uc3", "8UC3"), ("Mono16", "mono16")])
def test_encodings_match_case_insensitively(given, canonical):
    fields = rgb_to_image_fields(RGB, canonical)
    assert fields["encoding"] == canonical
    assert np.array_equal(image_to_rgb(as_msg(**{**fields, "encoding": given})),
                          image_to_rgb(as_msg(**fields)))


def test_row_padding_is_dropped():
    padded = np.zeros((5, 7 * 3 + 11), dtype=np.uint8)
    padded[:, : 7 * 3] = RGB.reshape(5, -1)
    msg = as_msg(height=5, width=7, encoding="rgb8", step=32, is_bigendian=0, data=padded.tobytes())
    assert np.array_equal(image_to_rgb(msg), RGB)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_compressed(fmt):
    buf = io.BytesIO()
    PILImage.fromarray(RGB).save(buf, format=fmt, quality=100)
    out = compressed_to_rgb(as_msg(format=fmt.lower(), data=buf.getvalue()))
    assert out.shape == RGB.shape
    if fmt == "PNG":
        assert np.array_equal(out, RGB)
    assert np.array_equal(msg_to_rgb(as_msg(format="png", data=buf.getvalue())).shape, RGB.shape)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"encoding": "yuv422"}, "unsupported image encoding"),
        ({"encoding": "32FC1"}, "unsupported image encoding"),
        ({"height": 0}, "zero size"),
        ({"width": 100000, "step": 300000}, "exceeds"),
        ({"step": 5}, "smaller than width"),
        ({"data": b"\x00" * 10}, "expected step\\*height"),
    ],
)
def test_bad_images_raise_clear_errors(fields, match):
    msg = dict(rgb_to_image_fields(RGB), **fields)
    with pytest.raises(ImageConversionError, match=match):
        image_to_rgb(as_msg(**msg))


@pytest.mark.parametrize(("fields", "match"), [({"step": 40}, "smaller than width"),
                                               ({"data": b"\x00" * 41}, "expected step\\*height")])
def test_bad_16bit_images_raise_clear_errors(fields, match):
    msg = dict(rgb_to_image_fields(RGB, "rgb16"), **fields)  # a row of rgb16 is 7 * 3 * 2 = 42 bytes
    with pytest.raises(ImageConversionError, match=match):
        image_to_rgb(as_msg(**msg))


def test_undecodable_compressed_data():
    with pytest.raises(ImageConversionError, match="cannot decode"):
        compressed_to_rgb(as_msg(format="jpeg", data=b"not a jpeg at all"))
    with pytest.raises(ImageConversionError, match="no data"):
        compressed_to_rgb(as_msg(format="jpeg", data=b""))
