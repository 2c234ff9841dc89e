"""Image messages <-> numpy arrays, at the edge, without cv_bridge (which ROS 2 on PyPI lacks).

Works on anything shaped like `sensor_msgs/Image` (attributes ``height``, ``width``, ``encoding``, ``step``,
``is_bigendian``, ``data``) or `sensor_msgs/CompressedImage` (``format``, ``data``): rclpy messages, messages
deserialized from bags by `rosbags`, or plain dataclasses in tests. Stateless; every problem raises
:class:`ImageConversionError` with a message naming it, so callers can drop the frame and warn.
"""

from __future__ import annotations

import io
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

# encoding -> (channels, index order that turns the channels into RGB, or None for mono)
_LAYOUTS: dict[str, tuple[int, tuple[int, ...] | None]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, None),
}
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


def image_to_rgb(msg: Any) -> np.ndarray:
    """`sensor_msgs/Image` -> contiguous uint8 array [H, W, 3] in RGB order (mono8 is replicated to 3 channels).

    Honours row padding (``step`` larger than ``width * channels``).
    """
    encoding = str(getattr(msg, "encoding", "")).lower()
    if encoding not in _LAYOUTS:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    channels, order = _LAYOUTS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero size ({width}x{height})")
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ImageConversionError(f"image size {width}x{height} exceeds the {MAX_SIDE} px limit")
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is smaller than width*channels = {row_bytes} for {encoding}")
    data = _as_bytes(msg.data)
    if data.size < step * height:
        raise ImageConversionError(
            f"image data has {data.size} bytes, expected step*height = {step}*{height} = {step * height}")
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]  # drop row padding
    pixels = rows.reshape(height, width, channels)
    if order is None:
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))
    return np.ascontiguousarray(pixels[:, :, list(order)])


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


def rgb_to_image_fields(rgb: np.ndarray, encoding: str = "rgb8") -> dict[str, Any]:
    """RGB uint8 [H, W, 3] -> keyword fields of a `sensor_msgs/Image` (``height``, ``width``, ``encoding``,
    ``is_bigendian``, ``step``, ``data``), for ``Image(**fields)`` plus a header."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageConversionError(f"expected uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
    if encoding not in _LAYOUTS:
        raise ImageConversionError(f"unsupported encoding {encoding!r}")
    channels, order = _LAYOUTS[encoding]
    if order is None:
        pixels = rgb.mean(axis=2, keepdims=True).round().astype(np.uint8)
    else:
        pixels = np.empty(rgb.shape[:2] + (channels,), dtype=np.uint8)
        pixels[:, :, list(order)] = rgb
        if channels == 4:
            pixels[:, :, 3] = 255
    h, w = rgb.shape[:2]
    return {"height": h, "width": w, "encoding": encoding, "is_bigendian": 0, "step": w * channels,
            "data": np.ascontiguousarray(pixels).tobytes()}
