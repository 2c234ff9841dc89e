"""Synthetic robot recordings with known ground truth, for tests, benchmarks and smoke checks.

A smooth end-effector trajectory, a gripper that closes and opens, and camera images whose pixels encode the
frame number, published at independent rates with timing jitter. ``write_synthetic_bag`` writes them into
a real rosbag2 file with the rosbags writer (exactly what ``ros2 bag record`` produces, message
definitions included) and returns the ground truth so a test can check every aligned value.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from rosbags.typesys import Stores, get_typestore

from vjepa_core.franka import CURRENT_POSE_TOPIC, GRIPPER_JOINT_STATES_TOPIC, MAX_GRIPPER_WIDTH
from vjepa_core.pose import euler_to_quat

from .bagio import BagWriter, make_qos
from .recording import CAMERA_IMAGE_TOPIC

__all__ = ["SyntheticTruth", "gripper_at", "make_image", "pose_at", "write_synthetic_bag"]


def pose_at(t: np.ndarray) -> np.ndarray:
    """Ground-truth 6-D pose (xyz, extrinsic xyz Euler) at times ``t`` seconds: [N,6]."""
    t = np.asarray(t, dtype=np.float64)
    return np.stack([0.45 + 0.1 * np.sin(t), 0.1 * np.cos(0.7 * t), 0.3 + 0.02 * t,
                     2.9 + 0.1 * np.sin(0.5 * t), 0.2 * np.cos(t), 0.3 * np.sin(0.3 * t)], axis=1)


def gripper_at(t: np.ndarray) -> np.ndarray:
    """Ground-truth gripper closedness in [0,1] at times ``t`` seconds: [N]."""
    return 0.5 + 0.5 * np.sin(np.asarray(t, dtype=np.float64))


def make_image(index: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A deterministic RGB image [H,W,3] that identifies frame ``index`` (gradients + index-coded channel)."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (xx * 4 + index * 3) % 256
    img[..., 1] = (yy * 4 + index * 5) % 256
    img[..., 2] = (index * 11) % 256
    return img


@dataclass
class SyntheticTruth:
    """What was written: stamps (ns) and values of each stream."""

    image_ns: np.ndarray
    images: list[np.ndarray]
    pose_ns: np.ndarray
    poses: np.ndarray       # [N,7] x,y,z,qx,qy,qz,qw
    states6: np.ndarray     # [N,6] xyz + Euler used to make them
    gripper_ns: np.ndarray
    grippers: np.ndarray    # [N] closedness


def _stamps(rng: np.random.Generator, t0_ns: int, seconds: float, hz: float, jitter_s: float) -> np.ndarray:
    base = np.arange(0.0, seconds, 1.0 / hz)
    noisy = base + rng.uniform(-jitter_s, jitter_s, size=base.size) if jitter_s > 0 else base
    return np.sort(t0_ns + np.round(noisy * 1e9).astype(np.int64))


def write_synthetic_bag(path: str | Path, storage: str = "mcap", seconds: float = 4.0, camera_hz: float = 15.0,
                        pose_hz: float = 50.0, gripper_hz: float = 20.0, jitter_s: float = 0.004,
                        compressed: str = "", image_size: tuple[int, int] = (48, 64), seed: int = 0,
                        image_topic: str = CAMERA_IMAGE_TOPIC, pose_topic: str = CURRENT_POSE_TOPIC,
                        gripper_topic: str = GRIPPER_JOINT_STATES_TOPIC,
                        t0_ns: int = 1_700_000_000_000_000_000) -> SyntheticTruth:
    """Write a synthetic episode bag and return its ground truth.

    Args:
        compressed: "" for raw rgb8 ``Image``; "png" or "jpeg" for ``CompressedImage`` on ``<topic>/compressed``.
        jitter_s: uniform jitter of every stamp; the bag receive time lags the stamp by 1-3 ms.
    """
    ts = get_typestore(Stores.LATEST)
    Image = ts.types["sensor_msgs/msg/Image"]
    CImage = ts.types["sensor_msgs/msg/CompressedImage"]
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    PoseStamped = ts.types["geometry_msgs/msg/PoseStamped"]
    Pose = ts.types["geometry_msgs/msg/Pose"]
    Point = ts.types["geometry_msgs/msg/Point"]
    Quat = ts.types["geometry_msgs/msg/Quaternion"]
    JointState = ts.types["sensor_msgs/msg/JointState"]

    rng = np.random.default_rng(seed)
    img_ns = _stamps(rng, t0_ns, seconds, camera_hz, jitter_s)
    pose_ns = _stamps(rng, t0_ns - 50_000_000, seconds + 0.1, pose_hz, jitter_s)
    grip_ns = _stamps(rng, t0_ns - 50_000_000, seconds + 0.1, gripper_hz, jitter_s)
    rel = lambda ns: (ns - t0_ns) / 1e9  # noqa: E731
    states6 = pose_at(rel(pose_ns))
    quats = euler_to_quat(states6[:, 3:6])
    poses = np.concatenate([states6[:, :3], quats], axis=1)
    grips = gripper_at(rel(grip_ns))
    h, w = image_size
    images = [make_image(i, h, w) for i in range(img_ns.size)]

    def header(ns: int, frame: str) -> object:
        return Header(stamp=Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000)), frame_id=frame)

    events: list[tuple[int, str, str, object]] = []
    cam_topic = image_topic + "/compressed" if compressed else image_topic
    for i, ns in enumerate(img_ns):
        if compressed:
            buf = io.BytesIO()
            PILImage.fromarray(images[i]).save(buf, format="PNG" if compressed == "png" else "JPEG", quality=95)
            msg = CImage(header=header(ns, "camera"), format=compressed,
                         data=np.frombuffer(buf.getvalue(), np.uint8))
            events.append((int(ns), cam_topic, "sensor_msgs/msg/CompressedImage", msg))
        else:
            msg = Image(header=header(ns, "camera"), height=h, width=w, encoding="rgb8", is_bigendian=0,
                        step=w * 3, data=images[i].reshape(-1))
            events.append((int(ns), cam_topic, "sensor_msgs/msg/Image", msg))
    for ns, p in zip(pose_ns, poses):
        msg = PoseStamped(header=header(ns, "base"), pose=Pose(
            position=Point(x=p[0], y=p[1], z=p[2]), orientation=Quat(x=p[3], y=p[4], z=p[5], w=p[6])))
        events.append((int(ns), pose_topic, "geometry_msgs/msg/PoseStamped", msg))
    for ns, g in zip(grip_ns, grips):
        half = MAX_GRIPPER_WIDTH * (1.0 - g) / 2.0
        msg = JointState(header=header(ns, ""), name=["fr3_finger_joint1", "fr3_finger_joint2"],
                         position=np.array([half, half]), velocity=np.zeros(2), effort=np.zeros(2))
        events.append((int(ns), gripper_topic, "sensor_msgs/msg/JointState", msg))
    events.sort(key=lambda e: e[0])
    with BagWriter(path, storage=storage, fsync=False) as bag:
        cam_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        bag.add_topic(cam_topic, cam_type, qos=[make_qos(False)])
        bag.add_topic(pose_topic, "geometry_msgs/msg/PoseStamped", qos=[make_qos(False, depth=1)])
        bag.add_topic(gripper_topic, "sensor_msgs/msg/JointState", qos=[make_qos(True)])
        for ns, topic, typ, msg in events:
            bag.write(topic, ns + int(rng.integers(1_000_000, 3_000_000)), ts.serialize_cdr(msg, typ))
    return SyntheticTruth(img_ns, images, pose_ns, poses, states6, grip_ns, grips)


@dataclass
class SyntheticDroid:
    """Ground truth of a synthetic DROID episode: per-row states, control times (ms) and frame gray levels."""

    path: Path
    states: np.ndarray      # [T,7]
    times_ms: np.ndarray    # [T] float64
    video_frames: int


def droid_gray_level(index: int) -> int:
    """Gray level that video frame ``index`` of :func:`write_synthetic_droid` is filled with."""
    return (16 + 6 * index) % 240


def write_synthetic_droid(ep_dir: str | Path, rows: int = 40, video_frames: int | None = None,
                          container_fps: int = 60, size: tuple[int, int] = (72, 128), seed: int = 0,
                          task: str = "put the cup in the sink") -> SyntheticDroid:
    """Write a tiny DROID raw episode (``trajectory.h5``, ``metadata_*.json``, left MP4) with known values.

    Rows are at the 15 Hz control rate (timestamps in ms with 2 ms jitter); the MP4 declares
    ``container_fps`` (60, like raw DROID) and has ``video_frames`` frames (default ``rows - 1``, droid#54),
    frame ``i`` filled with gray level :func:`droid_gray_level`.
    """
    import av
    import h5py

    ep = Path(ep_dir)
    (ep / "recordings" / "MP4").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(rows) / 15.0
    times_ms = 1.7e12 + t * 1000.0 + rng.uniform(-2.0, 2.0, rows)
    states6 = pose_at(t)
    grip = gripper_at(t)
    with h5py.File(ep / "trajectory.h5", "w") as h5:
        h5["observation/robot_state/cartesian_position"] = states6
        h5["observation/robot_state/gripper_position"] = grip
        h5["observation/robot_state/joint_positions"] = np.zeros((rows, 7))
        h5["observation/timestamp/control/step_start"] = np.round(times_ms).astype(np.int64)
        h5["action/cartesian_velocity"] = np.zeros((rows, 6))
    serial = "22246076"
    meta = {"uuid": f"LAB+{seed:04d}+2023-07-07-12h-00m-00s", "current_task": task, "success": True,
            "trajectory_length": rows, "ext1_cam_serial": serial, "left_mp4_path": f"recordings/MP4/{serial}.mp4",
            "hdf5_path": "trajectory.h5"}
    (ep / f"metadata_{meta['uuid']}.json").write_text(json.dumps(meta), encoding="utf-8")
    n_video = rows - 1 if video_frames is None else video_frames
    h, w = size
    with av.open(str(ep / "recordings" / "MP4" / f"{serial}.mp4"), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=container_fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"qscale": "2"}
        for i in range(n_video):
            img = np.full((h, w, 3), droid_gray_level(i), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    states = np.concatenate([states6, grip[:, None]], axis=1)
    return SyntheticDroid(ep, states, np.round(times_ms), n_video)
