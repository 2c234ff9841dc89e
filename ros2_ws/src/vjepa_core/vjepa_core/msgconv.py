"""ROS messages <-> numpy arrays at the edge, validated, in one stateless place (no rclpy import).

Every node, the dataset builder, the simulator pipeline and the tests convert ``vjepa_interfaces/Latent``,
``geometry_msgs/PoseStamped`` (and the pose-carrying messages the recorder meets in bags) and
``sensor_msgs/JointState`` gripper states here, so the rules are written once. Functions take anything shaped like
the message (rclpy messages, messages deserialized from bags by ``rosbags``, plain objects in tests) and raise
:class:`MessageError` with a message naming the problem, so a caller can drop the message, warn and go on: no
message content can raise anything else. Image messages live in :mod:`vjepa_core.imgmsg`.
"""

from __future__ import annotations

import array
from dataclasses import dataclass
from typing import Any

import numpy as np

from .franka import FINGER_JOINT_SUFFIXES, MAX_GRIPPER_WIDTH
from .pose import pose_from_pose_stamped, pose_to_pose_stamped

__all__ = [
    "MAX_LATENT_ELEMENTS",
    "LatentArray",
    "MessageError",
    "fill_latent_msg",
    "fill_pose_msg",
    "fill_pose_xyzq",
    "gripper_closedness",
    "latent_from_msg",
    "pose_state_from_msg",
    "pose_xyzq_from_msg",
    "stamp_to_seconds",
]

# 4 frames of ViT-g at 384 px (24 x 24 tokens x 1408) is ~13M values; anything far above is a corrupt header.
MAX_LATENT_ELEMENTS = 64 * 1024 * 1024


class MessageError(ValueError):
    """A message whose content cannot be used (the text says which field and why)."""


def stamp_to_seconds(stamp: Any) -> float:
    """``builtin_interfaces/Time`` -> seconds (float)."""
    try:
        return float(stamp.sec) + float(stamp.nanosec) * 1e-9
    except (AttributeError, TypeError, ValueError) as exc:
        raise MessageError(f"not a time stamp: {stamp!r}") from exc


# ------------------------------------------------------------------------------------------------- Latent
@dataclass(frozen=True)
class LatentArray:
    """A validated ``vjepa_interfaces/Latent``: the token grid and what a consumer checks it against."""

    tokens: np.ndarray          # float32 [frames, height, width, dim], finite
    model_id: str
    normalized: bool
    image_size: int = 0
    patch_size: int = 0
    tubelet_size: int = 0
    stamp: float = 0.0          # seconds, the source image's stamp
    frame_id: str = ""
    inference_time: float = 0.0

    @property
    def grid(self) -> tuple[int, int, int, int]:
        """``(frames, height, width, dim)``."""
        f, h, w, d = self.tokens.shape
        return int(f), int(h), int(w), int(d)


def _uint(msg: Any, name: str) -> int:
    try:
        value = int(getattr(msg, name))
    except (AttributeError, TypeError, ValueError) as exc:
        raise MessageError(f"Latent field {name!r} is missing or not an integer") from exc
    if value < 0:
        raise MessageError(f"Latent field {name} = {value} is negative")
    return value


def latent_from_msg(msg: Any, *, expected_grid: tuple[int, int, int] | None = None) -> LatentArray:
    """``vjepa_interfaces/Latent`` -> :class:`LatentArray`, refusing anything a planner must not use.

    Checks: ``frames``, ``height``, ``width``, ``dim`` all positive and their product the length of ``data``
    (and below :data:`MAX_LATENT_ELEMENTS`); every value finite; the encoder geometry consistent (when
    ``image_size`` and ``patch_size`` are set, ``height == width == image_size // patch_size``); and, with
    ``expected_grid = (height, width, dim)`` (e.g. the predictor's token grid), the same per-frame shape: a grid
    with the right token count but another shape (2 x 8 for 4 x 4) is refused.

    Raises:
        MessageError: the first problem found.
    """
    f, h, w, d = (_uint(msg, k) for k in ("frames", "height", "width", "dim"))
    if min(f, h, w, d) == 0:
        raise MessageError(f"empty token grid {f}x{h}x{w}x{d} (frames, height, width and dim must be > 0)")
    n = f * h * w * d
    if n > MAX_LATENT_ELEMENTS:
        raise MessageError(f"token grid {f}x{h}x{w}x{d} has {n} values, more than {MAX_LATENT_ELEMENTS}")
    data = getattr(msg, "data", None)
    if data is None:
        raise MessageError("Latent has no data")
    try:
        if isinstance(data, array.array) and data.typecode == "f":  # rclpy float32[]: no copy
            flat = np.frombuffer(data, dtype=np.float32)
        else:  # numpy (rosbags), lists, other array types
            flat = np.asarray(data, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise MessageError(f"Latent data is not a float32 array: {exc}") from exc
    if flat.size != n:
        raise MessageError(f"Latent data has {flat.size} values but its grid {f}x{h}x{w}x{d} needs {n}")
    if not np.all(np.isfinite(flat)):
        raise MessageError(f"Latent data has {int(np.count_nonzero(~np.isfinite(flat)))} non-finite values")
    image_size, patch_size, tubelet = (_uint(msg, k) for k in ("image_size", "patch_size", "tubelet_size"))
    if image_size and patch_size:
        side = image_size // patch_size
        if image_size % patch_size or h != side or w != side:
            raise MessageError(f"token grid {h}x{w} does not match image_size {image_size} / patch_size "
                               f"{patch_size} ({side}x{side})")
    if expected_grid is not None:
        eh, ew, ed = (int(v) for v in expected_grid)
        if (h, w, d) != (eh, ew, ed):
            raise MessageError(f"token grid {h}x{w}x{d} per frame, expected {eh}x{ew}x{ed} (the predictor's)")
    header = getattr(msg, "header", None)
    stamp = stamp_to_seconds(header.stamp) if header is not None else 0.0
    return LatentArray(tokens=flat.reshape(f, h, w, d), model_id=str(getattr(msg, "model_id", "")),
                       normalized=bool(getattr(msg, "normalized", False)), image_size=image_size,
                       patch_size=patch_size, tubelet_size=tubelet, stamp=stamp,
                       frame_id=str(getattr(header, "frame_id", "")) if header is not None else "",
                       inference_time=float(getattr(msg, "inference_time", 0.0)))


def fill_latent_msg(msg: Any, tokens: np.ndarray, *, model_id: str, normalized: bool, image_size: int,
                    patch_size: int, tubelet_size: int, inference_time: float = 0.0) -> Any:
    """Write a token grid ``[frames, height, width, dim]`` and its description into a ``Latent`` instance.

    The header is the caller's (the source image's stamp and frame). Returns ``msg``.
    """
    grid = np.ascontiguousarray(tokens, dtype=np.float32)
    if grid.ndim != 4:
        raise MessageError(f"tokens must be [frames, height, width, dim], got shape {grid.shape}")
    msg.model_id = str(model_id)
    msg.frames, msg.height, msg.width, msg.dim = (int(v) for v in grid.shape)
    msg.image_size, msg.patch_size, msg.tubelet_size = int(image_size), int(patch_size), int(tubelet_size)
    msg.normalized = bool(normalized)
    msg.inference_time = float(inference_time)
    data = array.array("f")
    data.frombytes(grid.tobytes())
    msg.data = data
    return msg


# ------------------------------------------------------------------------------------------------- poses
def pose_xyzq_from_msg(msg: Any) -> np.ndarray:
    """A pose-carrying message -> float64 ``[x, y, z, qx, qy, qz, qw]``.

    Accepts ``PoseStamped``, ``Pose``, ``TransformStamped``/``Transform`` and franka_msgs ``FrankaRobotState``
    (its ``o_t_ee`` PoseStamped).

    Raises:
        MessageError: no pose in the message, non-finite values, or a (near-)zero quaternion.
    """
    if hasattr(msg, "o_t_ee"):  # franka_msgs/FrankaRobotState
        msg = msg.o_t_ee
    if hasattr(msg, "pose") and not hasattr(msg, "position"):
        msg = msg.pose
    if hasattr(msg, "transform"):
        msg = msg.transform
    if hasattr(msg, "translation") and hasattr(msg, "rotation"):
        t, q = msg.translation, msg.rotation
    elif hasattr(msg, "position") and hasattr(msg, "orientation"):
        t, q = msg.position, msg.orientation
    else:
        raise MessageError(f"message {type(msg).__name__} carries no pose")
    try:
        out = np.array([t.x, t.y, t.z, q.x, q.y, q.z, q.w], dtype=np.float64)
    except (AttributeError, TypeError, ValueError) as exc:
        raise MessageError(f"pose fields are missing or not numbers: {exc}") from exc
    if not np.all(np.isfinite(out)):
        raise MessageError(f"pose has non-finite values (NaN or inf): {out.tolist()}")
    if np.linalg.norm(out[3:]) < 1e-6:
        raise MessageError("pose quaternion is zero")
    return out


def pose_state_from_msg(msg: Any, gripper: float = 0.0) -> np.ndarray:
    """A pose-carrying message plus gripper closedness -> the suite's 7-D state (xyz, Euler "xyz", gripper)."""
    return pose_from_pose_stamped(pose_xyzq_from_msg(msg), gripper)


def fill_pose_xyzq(pose: Any, position: Any, quaternion: Any) -> Any:
    """Write a position ``(x, y, z)`` and a quaternion ``(x, y, z, w)`` into a ``geometry_msgs/Pose`` instance;
    returns it."""
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in quaternion)
    return pose


def fill_pose_msg(pose: Any, state: np.ndarray) -> Any:
    """Write a 7-D state (xyz, Euler "xyz", gripper; the gripper is dropped) into a ``geometry_msgs/Pose``
    instance (e.g. ``PoseStamped().pose``); returns it."""
    xyzq = pose_to_pose_stamped(np.asarray(state, dtype=np.float64))
    return fill_pose_xyzq(pose, xyzq[:3], xyzq[3:])


# ------------------------------------------------------------------------------------------------- gripper
def gripper_closedness(msg: Any, max_width: float = MAX_GRIPPER_WIDTH) -> float:
    """Gripper closedness in [0, 1] (0 open, 1 closed; the DROID convention) from a gripper state message.

    ``JointState``: the finger width is the sum of the finger joints' positions (joints named ``*finger_joint1``
    / ``*finger_joint2``, or containing "finger"; a nameless message with one or two positions is taken as the
    fingers), closedness = ``clip(1 - width / max_width, 0, 1)``. ``std_msgs/Float32/64``: the value itself.

    Raises:
        MessageError: no finger joints or positions, mismatched names/positions, or non-finite values.
    """
    if hasattr(msg, "position"):
        names = [str(n) for n in getattr(msg, "name", [])]
        try:
            pos = np.asarray(msg.position, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise MessageError(f"gripper JointState positions are not numbers: {exc}") from exc
        if names:
            if len(names) != pos.size:
                raise MessageError(f"gripper JointState has {len(names)} names but {pos.size} positions")
            fingers = [i for i, n in enumerate(names) if n.endswith(FINGER_JOINT_SUFFIXES)] or \
                [i for i, n in enumerate(names) if "finger" in n]
            if not fingers:
                raise MessageError(f"JointState has no finger joints (names: {names})")
            pos = pos[fingers]
        elif pos.size > 2:
            raise MessageError(f"unnamed JointState with {pos.size} positions: cannot tell the fingers")
        if pos.size == 0:
            raise MessageError("gripper JointState has no positions")
        value = 1.0 - float(pos.sum()) / float(max_width)
    elif hasattr(msg, "data"):
        try:
            value = float(msg.data)
        except (TypeError, ValueError) as exc:
            raise MessageError(f"gripper value is not a number: {exc}") from exc
    else:
        raise MessageError(f"message {type(msg).__name__} carries no gripper state")
    if not np.isfinite(value):
        raise MessageError("gripper state is not finite")
    return float(np.clip(value, 0.0, 1.0))
