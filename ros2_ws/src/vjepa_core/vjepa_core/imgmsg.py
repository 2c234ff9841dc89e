"""Image messages <-> numpy arrays, at the edge, without cv_bridge (which ROS 2 on PyPI lacks).

Works on anything shaped like `sensor_msgs/Image` (attributes ``height``, ``width``, ``encoding``, ``step``,
``is_bigendian``, ``data``) or `sensor_msgs/CompressedImage` (``format``, ``data``): rclpy messages, messages
deserialized from bags by `rosbags`, or plain dataclasses in tests. Stateless; every problem raises
:class:`ImageConversionError` with a message naming it, so callers can drop the frame and warn.

The one image decoder of the suite (nodes, the dataset builder, tests): raw encodings in
:data:`SUPPORTED_ENCODINGS` (8-bit RGB/BGR(A)/mono, OpenCV's 8UC1/3/4, 16-bit colour and mono in either byte
order) and compressed images Pillow reads (JPEG, PNG, ...), all to uint8 RGB.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ImageConversionError",
    "SUPPORTED_ENCODINGS",
    "MAX_SIDE",
    "image_to_rgb",
    "compressed_to_rgb",
    "rgb_to_image_fields",
    "msg_to_rgb",
]


@dataclass(frozen=True)
class _Layout:
    """How one ``sensor_msgs/Image`` encoding stores a pixel."""

    channels: int
    order: tuple[int, ...] | None   # channel indices that give R, G, B; None: mono (replicated to 3 channels)
    bytes_per_channel: int = 1      # 2: 16-bit samples, reduced to 8 bits by keeping the high byte


# The encodings of sensor_msgs/image_encodings.hpp that carry a picture a camera would send. OpenCV's 8UC3 / 8UC4
# are BGR / BGRA by convention (what cv_bridge writes for a cv::Mat).
_LAYOUTS: dict[str, _Layout] = {
    "rgb8": _Layout(3, (0, 1, 2)),
    "bgr8": _Layout(3, (2, 1, 0)),
    "rgba8": _Layout(4, (0, 1, 2)),
    "bgra8": _Layout(4, (2, 1, 0)),
    "mono8": _Layout(1, None),
    "8UC1": _Layout(1, None),
    "8UC3": _Layout(3, (2, 1, 0)),
    "8UC4": _Layout(4, (2, 1, 0)),
    "rgb16": _Layout(3, (0, 1, 2), 2),
    "bgr16": _Layout(3, (2, 1, 0), 2),
    "rgba16": _Layout(4, (0, 1, 2), 2),
    "bgra16": _Layout(4, (2, 1, 0), 2),
    "mono16": _Layout(1, None, 2),
    "16UC1": _Layout(1, None, 2),
}
_BY_LOWER = {name.lower(): name for name in _LAYOUTS}  # encodings are matched case-insensitively
SUPPORTED_ENCODINGS = tuple(_LAYOUTS)
MAX_SIDE = 8192  # larger than any camera a planner would use; rejects absurd headers before allocating


class ImageConversionError(ValueError):
    """An image message that cannot be turned into an RGB array (the message says why)."""


def _as_bytes(data: Any) -> np.ndarray:
    """Message ``data`` (bytes, array.array, list, numpy) as a flat uint8 array, without copying when possible."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype != np.uint8 else data.reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    try:
        return np.frombuffer(memoryview(data), dtype=np.uint8)  # array.array('B') from rclpy
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _layout(encoding: str) -> tuple[str, _Layout]:
    name = _BY_LOWER.get(encoding.lower())
    if name is None:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    return name, _LAYOUTS[name]


def image_to_rgb(msg: Any) -> np.ndarray:
    """`sensor_msgs/Image` -> contiguous uint8 array [H, W, 3] in RGB order.

    Mono encodings are replicated to 3 channels, alpha is dropped, and 16-bit samples (``*16``, ``16UC1``; byte
    order from ``is_bigendian``) keep their high byte, so a full-range 16-bit image maps onto the 8-bit range the
    encoder was trained on. Honours row padding (``step`` larger than ``width * channels * bytes``).
    """
    name, layout = _layout(str(getattr(msg, "encoding", "")))
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero size ({width}x{height})")
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ImageConversionError(f"image size {width}x{height} exceeds the {MAX_SIDE} px limit")
    row_bytes = width * layout.channels * layout.bytes_per_channel
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is smaller than width*channels*bytes = {row_bytes} for {name}")
    data = _as_bytes(msg.data)
    if data.size < step * height:
        raise ImageConversionError(
            f"image data has {data.size} bytes, expected step*height = {step}*{height} = {step * height}")
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]  # drop row padding
    if layout.bytes_per_channel == 2:
        dtype = ">u2" if int(getattr(msg, "is_bigendian", 0)) else "<u2"
        rows = (np.ascontiguousarray(rows).view(dtype) >> 8).astype(np.uint8)  # [H, W*C] high bytes
    pixels = rows.reshape(height, width, layout.channels)
    if layout.order is None:
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))
    return np.ascontiguousarray(pixels[:, :, list(layout.order)])


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """`sensor_msgs/CompressedImage` (JPEG or PNG) -> uint8 array [H, W, 3] RGB."""
    data = _as_bytes(msg.data)
    if data.size == 0:
        raise ImageConversionError("compressed image has no data")
    try:
        from PIL import Image as PILImage
    except ImportError as exc:  # pragma: no cover - pillow is a declared dependency
        raise ImageConversionError("decoding compressed images needs Pillow (pip install pillow)") from exc
    try:
        with PILImage.open(io.BytesIO(data.tobytes())) as img:
            if img.width > MAX_SIDE or img.height > MAX_SIDE:
                raise ImageConversionError(f"compressed image size {img.width}x{img.height} exceeds {MAX_SIDE} px")
            return np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy
    except ImageConversionError:
        raise
    except Exception as exc:  # PIL raises several types for corrupt data
        fmt = getattr(msg, "format", "") or "unknown format"
        raise ImageConversionError(f"cannot decode compressed image ({fmt}, {data.size} bytes): {exc}") from exc


def msg_to_rgb(msg: Any) -> np.ndarray:
    """Either kind of image message -> RGB uint8 [H, W, 3] (dispatch on the presence of ``encoding``)."""
    return image_to_rgb(msg) if hasattr(msg, "encoding") else compressed_to_rgb(msg)


def rgb_to_image_fields(rgb: np.ndarray, encoding: str = "rgb8", *, is_bigendian: bool = False) -> dict[str, Any]:
    """RGB uint8 [H, W, 3] -> keyword fields of a `sensor_msgs/Image` (``height``, ``width``, ``encoding``,
    ``is_bigendian``, ``step``, ``data``), for ``Image(**fields)`` plus a header.

    The inverse of :func:`image_to_rgb` (mono encodings store the rounded channel mean; 16-bit encodings store
    ``value * 257``, the full 16-bit range, whose high byte is ``value`` again; alpha is opaque).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageConversionError(f"expected uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
    name, layout = _layout(encoding)
    if layout.order is None:
        pixels = rgb.mean(axis=2, keepdims=True).round().astype(np.uint8)
    else:
        pixels = np.empty(rgb.shape[:2] + (layout.channels,), dtype=np.uint8)
        pixels[:, :, list(layout.order)] = rgb
        if layout.channels == 4:
            pixels[:, :, 3] = 255
    if layout.bytes_per_channel == 2:
        pixels = pixels.astype(">u2" if is_bigendian else "<u2") * 257
    h, w = rgb.shape[:2]
    return {"height": h, "width": w, "encoding": name, "is_bigendian": int(bool(is_bigendian)),
            "step": w * layout.channels * layout.bytes_per_channel, "data": np.ascontiguousarray(pixels).tobytes()}
