"""Bags -> clip dataset: read, align, compute states/actions, resize frames, write shards (resumable).

``build_dataset(bags, out, BuildConfig(...))`` is what ``vjepa-dataset build`` runs. Per bag:

1. open it with its own message definitions (mcap or sqlite3, any distro); an unreadable or truncated bag
   is skipped with the reason and the others still build;
2. pass 1 reads pose and gripper messages and the image stamps (``header.stamp``, or the bag time when the
   stamp is zero or ``time_source="bag"``);
3. :func:`~vjepa_training.data.align.align` samples frames at ``fps`` and attaches nearest-before states;
   gaps split the bag into several episodes;
4. pass 2 decodes only the chosen images, resizes/crops them;
5. states are ``[xyz, extrinsic-xyz Euler, gripper closedness]`` and actions
   ``vjepa_core.pose.poses_to_diff(states[:-1], states[1:])`` (the reference DROID representation).

An ``episode.json`` sidecar in a bag directory (written by ``recorder_node``) supplies the task text and
other episode metadata.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vjepa_core.franka import CURRENT_POSE_TOPIC, GRIPPER_JOINT_STATES_TOPIC, MAX_GRIPPER_WIDTH
from vjepa_core.imgmsg import msg_to_rgb
from vjepa_core.msgconv import gripper_closedness, pose_xyzq_from_msg
from vjepa_core.pose import poses_to_diff, quat_to_euler

from .align import AlignConfig, align
from .bagio import BagError, BagReader, find_bags
from .decode import DecodeError, resize_center_crop, stamp_ns
from .recording import CAMERA_IMAGE_TOPIC
from .shards import Episode, ShardWriter

__all__ = ["BuildConfig", "build_dataset", "extract_bag", "make_episode", "source_fingerprint"]

DEFAULT_IMAGE_TOPIC = CAMERA_IMAGE_TOPIC
DEFAULT_POSE_TOPIC = CURRENT_POSE_TOPIC
DEFAULT_GRIPPER_TOPIC = GRIPPER_JOINT_STATES_TOPIC
_RESERVED = {"id", "shard", "start", "length", "start_time_ns", "end_time_ns"}


@dataclass
class BuildConfig:
    """Parameters of a dataset build (stored in ``index.json``).

    image_topic: Image or CompressedImage topic; if absent, ``<image_topic>/compressed`` is tried.
    pose_topic: PoseStamped (or Pose/TransformStamped/FrankaRobotState) of the end effector.
    gripper_topic: JointState with finger joints, or Float32/64 closedness; "" = no gripper (closedness 0).
    time_source: "header" (message stamps, bag time when zero) or "bag" (receive time).
    """

    fps: float = 4.0
    image_size: int = 256
    crop: bool = True
    image_topic: str = DEFAULT_IMAGE_TOPIC
    pose_topic: str = DEFAULT_POSE_TOPIC
    gripper_topic: str = DEFAULT_GRIPPER_TOPIC
    max_skew_s: float = 0.1
    frame_tolerance_s: float | None = None
    min_frames: int = 2
    gripper_max_width: float = MAX_GRIPPER_WIDTH
    time_source: str = "header"
    shard_frames: int = 2048

    def __post_init__(self) -> None:
        if self.time_source not in ("header", "bag"):
            raise ValueError(f"time_source must be 'header' or 'bag', got {self.time_source!r}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if not self.gripper_max_width > 0:
            raise ValueError("gripper_max_width must be > 0")
        self.align_config()  # validates fps / skew / tolerance / min_frames

    def align_config(self) -> AlignConfig:
        """The alignment part of this config."""
        return AlignConfig(self.fps, self.max_skew_s, self.frame_tolerance_s, self.min_frames)


def source_fingerprint(path: Path) -> str:
    """Size and mtime of the files of a source: a changed bag is rebuilt on resume."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    parts = [f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime_ns)}" for p in files]
    return "|".join(parts)


def make_episode(episode_id: str, frames: np.ndarray, xyzq_or_states: np.ndarray, grippers: np.ndarray | None,
                 stamps_ns: np.ndarray, meta: dict[str, Any]) -> Episode:
    """Build an :class:`Episode` from frames and poses; actions come from ``poses_to_diff``.

    ``xyzq_or_states`` is either [N,7] ``(x,y,z,qx,qy,qz,qw)`` with ``grippers`` [N], or [N,7] states already
    (``grippers`` None).
    """
    if grippers is not None:
        states = np.concatenate([xyzq_or_states[:, :3], quat_to_euler(xyzq_or_states[:, 3:7]),
                                 np.asarray(grippers, dtype=np.float64)[:, None]], axis=1)
    else:
        states = np.asarray(xyzq_or_states, dtype=np.float64)
    actions = poses_to_diff(states[:-1], states[1:]) if len(states) > 1 else np.zeros((0, 7))
    meta = {k: v for k, v in meta.items() if k not in _RESERVED}
    return Episode(episode_id, frames, states, actions, np.asarray(stamps_ns, dtype=np.int64), meta)


def _read_sidecar(bag: Path) -> dict[str, Any]:
    side = (bag if bag.is_dir() else bag.parent) / "episode.json"
    if not side.exists():
        return {}
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _pick_image_topic(topics: dict[str, str], wanted: str) -> str:
    for cand in (wanted, wanted.rstrip("/") + "/compressed"):
        if cand in topics:
            return cand
    raise BagError(f"image topic {wanted!r} (or {wanted}/compressed) not in the bag; it has {sorted(topics)}")


def _stream(reader: BagReader, topic: str, msgtype: str, cfg: BuildConfig, convert: Any
            ) -> tuple[np.ndarray, list[Any]]:
    """Stamps (sorted) and converted values of one topic; undecodable messages are an error."""
    stamps, values = [], []
    for _, bag_ns, raw in reader.messages([topic]):
        msg = reader.deserialize(raw, msgtype)
        st = stamp_ns(msg) if cfg.time_source == "header" else 0
        stamps.append(st if st > 0 else bag_ns)
        values.append(convert(msg))
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
    return np.asarray(stamps, dtype=np.int64)[order], [values[i] for i in order]


def extract_bag(bag: Path, cfg: BuildConfig) -> tuple[list[Episode], list[str]]:
    """Turn one bag into aligned episodes. Raises :class:`BagError` or a ``ValueError`` (``MessageError``,
    ``ImageConversionError``, :class:`DecodeError`) on bad input."""
    meta_base = _read_sidecar(bag)
    with BagReader(bag) as reader:
        topics = reader.topics
        image_topic = _pick_image_topic(topics, cfg.image_topic)
        if cfg.pose_topic not in topics:
            raise BagError(f"pose topic {cfg.pose_topic!r} not in the bag; it has {sorted(topics)}")
        use_gripper = bool(cfg.gripper_topic)
        if use_gripper and cfg.gripper_topic not in topics:
            raise BagError(f"gripper topic {cfg.gripper_topic!r} not in the bag (pass --gripper-topic '' to "
                           f"record closedness 0); it has {sorted(topics)}")
        pose_t, poses = _stream(reader, cfg.pose_topic, topics[cfg.pose_topic], cfg, pose_xyzq_from_msg)
        if use_gripper:
            grip_t, grips = _stream(reader, cfg.gripper_topic, topics[cfg.gripper_topic], cfg,
                                    lambda m: gripper_closedness(m, cfg.gripper_max_width))
        else:
            grip_t, grips = None, []
        img_type = topics[image_topic]
        raw_stamps = []  # image stamps in bag order (pass 1 of the images: headers only)
        for _, bag_ns, raw in reader.messages([image_topic]):
            st = stamp_ns(reader.deserialize(raw, img_type)) if cfg.time_source == "header" else 0
            raw_stamps.append(st if st > 0 else bag_ns)
        bag_order = np.argsort(np.asarray(raw_stamps, dtype=np.int64), kind="stable")
        img_t = np.asarray(raw_stamps, dtype=np.int64)[bag_order]
        segments, notes = align(img_t, pose_t, grip_t, cfg.align_config())
        if not segments:
            raise BagError(f"no aligned frames: {len(img_t)} images, {len(pose_t)} poses, "
                           f"{0 if grip_t is None else len(grip_t)} gripper states; " + "; ".join(notes[:3]))
        wanted: dict[int, tuple[int, int]] = {}  # bag-order ordinal -> (segment, row)
        for si, seg in enumerate(segments):
            for row, fi in enumerate(seg.frames):
                wanted[int(bag_order[fi])] = (si, row)
        frames = [np.empty((len(s), cfg.image_size, cfg.image_size, 3), np.uint8) for s in segments]
        for ordinal, (_, _, raw) in enumerate(reader.messages([image_topic])):
            hit = wanted.get(ordinal)
            if hit is not None:
                rgb = msg_to_rgb(reader.deserialize(raw, img_type))
                frames[hit[0]][hit[1]] = resize_center_crop(rgb, cfg.image_size, cfg.crop)
    episodes = []
    pose_arr = np.stack(poses)
    name = bag.name if bag.is_dir() else bag.stem
    for si, seg in enumerate(segments):
        grippers = (np.asarray(grips, dtype=np.float64)[seg.grippers] if use_gripper
                    else np.zeros(len(seg), np.float64))
        meta = {"source": str(bag), "segment": si, "image_topic": image_topic, "fps": cfg.fps,
                "task": str(meta_base.get("task", "")), "recording": meta_base}
        episodes.append(make_episode(f"{name}#{si}", frames[si], pose_arr[seg.poses], grippers,
                                     img_t[seg.frames], meta))
    return episodes, notes


def _progress(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency, but the build must not need it
        return None
    return tqdm(total=total, desc=desc, unit="src", file=sys.stderr)


def run_sources(sources: list[Path], out: Path, config: dict[str, Any], shard_frames: int,
                extract: Any, progress: bool = True, desc: str = "build") -> dict[str, Any]:
    """Shared driver of ``build`` and ``import-droid``: resumable, skips bad sources with reasons."""
    t0 = time.perf_counter()
    writer = ShardWriter(out, config, shard_frames=shard_frames)
    skipped: list[dict[str, str]] = []
    new_eps = new_frames = reused = 0
    bar = _progress(len(sources), progress, desc)
    try:
        for src in sources:
            key, fp = str(src.resolve()), source_fingerprint(src)
            if writer.is_done(key, fp):
                reused += 1
            else:
                try:
                    episodes, notes = extract(src)
                except (BagError, DecodeError, ValueError, OSError, KeyError) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    skipped.append({"source": str(src), "reason": reason})
                    writer.skip_source(key, fp, reason)
                    print(f"skipped {src}: {reason}", file=sys.stderr)
                else:
                    writer.add_source(key, fp, episodes, notes)
                    new_eps += len(episodes)
                    new_frames += sum(len(e.frames) for e in episodes)
            if bar is not None:
                bar.update(1)
        writer.close()
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    eps = writer.index["episodes"]
    return {
        "out": str(out), "episodes": len(eps), "frames": int(sum(e["length"] for e in eps)),
        "skipped": skipped, "new_episodes": new_eps, "new_frames": new_frames, "reused_sources": reused,
        "seconds": round(seconds, 3), "frames_per_s": round(new_frames / seconds, 2) if seconds > 0 else 0.0,
    }


def build_dataset(inputs: list[str | Path], out: str | Path, cfg: BuildConfig | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Build (or resume) a clip dataset from bags; returns the summary (``episodes``, ``frames``, ``skipped``).

    Args:
        inputs: bag directories, storage files, or folders searched for bags.
        out: dataset directory.
        cfg: build parameters.
        progress: show a tqdm progress bar on stderr.
    """
    cfg = cfg or BuildConfig()
    bags = find_bags(inputs)
    config = {"kind": "rosbag", **asdict(cfg)}
    return run_sources(bags, Path(out), config, cfg.shard_frames, lambda b: extract_bag(b, cfg), progress)
