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


@pytest.mark.parametrize("encoding", [e for e in SUPPORTED_ENCODINGS if e != "mono8"])
def test_color_encodings_round_trip(encoding):
    assert np.array_equal(image_to_rgb(as_msg(**rgb_to_image_fields(RGB, encoding))), RGB)


def test_mono8_is_replicated():
    gray = RNG.integers(0, 256, size=(4, 6), dtype=np.uint8)
    out = image_to_rgb(as_msg(height=4, width=6, encoding="mono8", step=6, is_bigendian=0, data=gray.tobytes()))
    assert out.shape == (4, 6, 3) and all(np.array_equal(out[..., c], gray) for c in range(3))


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


def test_undecodable_compressed_data():
    with pytest.raises(ImageConversionError, match="cannot decode"):
        compressed_to_rgb(as_msg(format="jpeg", data=b"not a jpeg at all"))
    with pytest.raises(ImageConversionError, match="no data"):
        compressed_to_rgb(as_msg(format="jpeg", data=b""))
