"""What the dataset layer adds to the suite's message conversion: exact stamps, frame resizing, its error type.

Messages become arrays in ``vjepa_core`` (one place for the whole suite): images with
:func:`vjepa_core.imgmsg.msg_to_rgb` (``sensor_msgs/Image`` and ``CompressedImage``), poses with
:func:`vjepa_core.msgconv.pose_xyzq_from_msg` and gripper states with
:func:`vjepa_core.msgconv.gripper_closedness`. They raise ``ImageConversionError`` / ``MessageError``, both
``ValueError`` like :class:`DecodeError`, so a bag with an undecodable message is skipped with the reason.
This module keeps what is specific to datasets:

- ``stamp_ns``: ``header.stamp`` as integer nanoseconds (alignment needs exact stamps; float seconds since the
  epoch would lose ~0.2 us);
- ``resize_center_crop``: shorter side to ``size`` then a centred square crop (Pillow, antialiased).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image as PILImage

__all__ = ["DecodeError", "resize_center_crop", "stamp_ns"]


class DecodeError(ValueError):
    """Data a dataset needs cannot be made from a source (a frame of the wrong shape, a video that does not
    decode ...). Message conversion errors (``MessageError``, ``ImageConversionError``) are ``ValueError`` too."""


def stamp_ns(msg: Any) -> int:
    """``header.stamp`` in nanoseconds, or 0 when the message has no header (or a zero stamp)."""
    header = getattr(msg, "header", None)
    if header is None:
        return 0
    st = header.stamp
    sec = getattr(st, "sec", 0)
    nsec = getattr(st, "nanosec", getattr(st, "nsec", 0))
    return int(sec) * 1_000_000_000 + int(nsec)


def resize_center_crop(img: np.ndarray, size: int, crop: bool = True) -> np.ndarray:
    """``uint8 [H,W,3]`` -> ``uint8 [size,size,3]``: shorter side to ``size`` then centre crop.

    With ``crop=False`` the image is resized to ``size x size`` directly (aspect ratio not kept).
    Images already at the target size are returned unchanged (no resampling).
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise DecodeError(f"expected an RGB image [H,W,3], got shape {img.shape}")
    h, w = img.shape[:2]
    if h == size and w == size:
        return img
    pil = PILImage.fromarray(img)
    if not crop:
        return np.asarray(pil.resize((size, size), PILImage.BILINEAR, reducing_gap=None))
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    pil = pil.resize((nw, nh), PILImage.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(pil.crop((left, top, left + size, top + size)))
