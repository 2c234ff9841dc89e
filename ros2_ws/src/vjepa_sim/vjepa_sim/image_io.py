"""Dependency-free PNG writing for goal images (zlib + struct; no Pillow/OpenCV needed on lab machines)."""

from __future__ import annotations

import struct
import zlib

import numpy as np

__all__ = ["encode_png", "write_png"]


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an [H, W, 3] (RGB) or [H, W] (grey) uint8 image."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"expected uint8 [H,W,3] or [H,W], got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    colour_type = 2 if img.ndim == 3 else 0
    rows = np.ascontiguousarray(img).reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()  # filter byte 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b""))


def write_png(path: str, image: np.ndarray) -> None:
    """Write ``image`` to ``path`` as PNG."""
    data = encode_png(image)
    with open(path, "wb") as fh:
        fh.write(data)
