"""Decoded bag messages -> numpy arrays, in one small stateless module with its own error type.

Works on the message objects of any deserializer with ROS field names (rosbags dataclasses or rclpy
messages), so the dataset builder and tests share one conversion path:

- ``image_to_rgb``: ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8, mono16, 8UC1/3) or
  ``sensor_msgs/CompressedImage`` (JPEG/PNG through Pillow) -> ``uint8 [H,W,3]`` RGB.
- ``pose_to_xyzq``: ``geometry_msgs/PoseStamped``/``Pose``/``TransformStamped`` or ``franka_msgs/FrankaRobotState``
  (``o_t_ee``) -> ``(x, y, z, qx, qy, qz, qw)``.
- ``gripper_closedness``: ``sensor_msgs/JointState`` (finger joints: ``1 - width / max_width``) or
  ``std_msgs/Float32``/``Float64`` (already a closedness) -> float in [0, 1].
- ``resize_center_crop``: shorter side to ``size`` then a centred square crop (Pillow, antialiased).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image as PILImage

__all__ = [
    "DecodeError",
    "gripper_closedness",
    "image_to_rgb",
    "pose_to_xyzq",
    "resize_center_crop",
    "stamp_ns",
]


class DecodeError(ValueError):
    """A message cannot be turned into the array a dataset needs (wrong encoding, size, NaN ...)."""


def stamp_ns(msg: Any) -> int:
    """``header.stamp`` in nanoseconds, or 0 when the message has no header (or a zero stamp)."""
    header = getattr(msg, "header", None)
    if header is None:
        return 0
    st = header.stamp
    sec = getattr(st, "sec", 0)
    nsec = getattr(st, "nanosec", getattr(st, "nsec", 0))
    return int(sec) * 1_000_000_000 + int(nsec)


_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "8UC3": 3, "8UC4": 4}


def image_to_rgb(msg: Any) -> np.ndarray:
    """Decode an Image or CompressedImage message into ``uint8 [H,W,3]`` RGB.

    Raises:
        DecodeError: unsupported encoding, or data shorter than ``height * step``.
    """
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return _compressed_to_rgb(msg)
    enc = str(msg.encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if h <= 0 or w <= 0:
        raise DecodeError(f"image has empty size {w}x{h}")
    if enc in ("mono16", "16UC1"):
        if step < 2 * w or data.size < h * step:
            raise DecodeError(f"mono16 image {w}x{h}: step {step}, {data.size} bytes is too short")
        rows = data[: h * step].reshape(h, step)[:, : 2 * w]
        order = ">u2" if int(getattr(msg, "is_bigendian", 0)) else "<u2"
        mono = rows.copy().view(order).reshape(h, w)
        gray = (mono >> 8).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if enc not in _CHANNELS:
        raise DecodeError(f"unsupported image encoding {enc!r} (supported: {sorted(_CHANNELS)} and mono16)")
    ch = _CHANNELS[enc]
    if step < w * ch or data.size < h * step:
        raise DecodeError(f"{enc} image {w}x{h}: step {step} and {data.size} bytes do not hold {h} rows of "
                          f"{w * ch} bytes")
    img = data[: h * step].reshape(h, step)[:, : w * ch].reshape(h, w, ch)
    if ch == 1:
        return np.repeat(img, 3, axis=2)
    if enc in ("bgr8", "bgra8", "8UC3", "8UC4"):  # OpenCV's 8UC3 is BGR by convention
        img = img[:, :, 2::-1]
    return np.ascontiguousarray(img[:, :, :3])


def _compressed_to_rgb(msg: Any) -> np.ndarray:
    data = bytes(np.asarray(msg.data, dtype=np.uint8).tobytes())
    if not data:
        raise DecodeError("CompressedImage has no data")
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise DecodeError(f"CompressedImage (format {msg.format!r}) does not decode: {exc}") from exc


def pose_to_xyzq(msg: Any) -> np.ndarray:
    """Position + quaternion ``(x, y, z, qx, qy, qz, qw)`` float64 from a pose-carrying message.

    Raises:
        DecodeError: no pose field, or non-finite values / a zero quaternion.
    """
    if hasattr(msg, "o_t_ee"):  # franka_msgs/FrankaRobotState
        msg = msg.o_t_ee
    if hasattr(msg, "pose"):
        msg = msg.pose
    if hasattr(msg, "transform"):  # TransformStamped
        t, q = msg.transform.translation, msg.transform.rotation
    elif hasattr(msg, "position") and hasattr(msg, "orientation"):
        t, q = msg.position, msg.orientation
    else:
        raise DecodeError(f"message {type(msg).__name__} carries no pose")
    out = np.array([t.x, t.y, t.z, q.x, q.y, q.z, q.w], dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise DecodeError(f"pose has non-finite values: {out.tolist()}")
    if np.linalg.norm(out[3:]) < 1e-9:
        raise DecodeError("pose quaternion is zero")
    return out


def gripper_closedness(msg: Any, max_width: float = 0.08) -> float:
    """Gripper closedness in [0, 1] (0 open, 1 closed), the DROID convention.

    ``JointState``: width = sum of the finger joint positions (joints whose name contains "finger"; all
    joints if none does), closedness = ``clip(1 - width / max_width, 0, 1)``. ``Float32/64``: the value.

    Raises:
        DecodeError: no finger positions, or non-finite values.
    """
    if hasattr(msg, "position"):
        names = [str(n) for n in getattr(msg, "name", [])]
        pos = np.asarray(msg.position, dtype=np.float64).reshape(-1)
        if names and len(names) == pos.size:
            fingers = [i for i, n in enumerate(names) if "finger" in n]
            if fingers:
                pos = pos[fingers]
            elif len(names) > 2:
                raise DecodeError(f"JointState has no finger joints (names: {names})")
        if pos.size == 0:
            raise DecodeError("gripper JointState has no positions")
        width = float(pos.sum())
        value = 1.0 - width / float(max_width)
    elif hasattr(msg, "data"):
        value = float(msg.data)
    else:
        raise DecodeError(f"message {type(msg).__name__} carries no gripper state")
    if not np.isfinite(value):
        raise DecodeError("gripper state is not finite")
    return float(np.clip(value, 0.0, 1.0))


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
