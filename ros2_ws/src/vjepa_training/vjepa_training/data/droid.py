"""DROID raw episodes -> the clip dataset format (``vjepa-dataset import-droid``).

A raw DROID episode directory holds ``trajectory.h5``, ``metadata_*.json`` and ``recordings/MP4/<serial>.mp4``.
As in the reference V-JEPA 2-AC loader, the state is ``observation/robot_state/cartesian_position`` (xyz +
extrinsic "xyz" Euler, radians) plus ``observation/robot_state/gripper_position`` (closedness), the camera is
the one named by the metadata key ``left_mp4_path`` (configurable), and video frame ``i`` goes with trajectory
row ``i``; actions are ``poses_to_diff`` of consecutive sampled states.

Time: the reference loader strides through the MP4 by ``ceil(container_fps / fps)``. Raw DROID MP4s declare
60 fps while rows are recorded at the 15 Hz control rate, so "fps 4" there spans 4x the intended time
(vjepa2#183). Here the time of row ``i`` is the control timestamp ``observation/timestamp/control/step_start``
(ms, us, ns or s, detected from its spacing), and frames are sampled on that clock exactly as bag frames
are, so ``--fps 4`` means 4 frames per physical second. When the MP4 has fewer frames than the trajectory
(droid#54: often one fewer) the extra rows are dropped.

The ``droid`` convention (``--convention droid``: ``sampling="legacy-stride"`` and ``crop_style="droid"``)
reproduces instead what the released V-JEPA 2-AC (``vjepa2-ac-vitg.pt``) was trained on, for fine-tuning from it:

- ``sampling="legacy-stride"``: rows ``0, s, 2s, ...`` with ``s = ceil(container_fps / fps)``, read from the MP4
  (``stream.average_rate``, what decord's ``get_avg_fps`` reports), video frames and trajectory rows indexed
  alike and no time gaps considered: the reference loader's legacy sampling (facebookresearch/vjepa2
  ``app/vjepa_droid/droid.py``: ``fstp = ceil(vfps / fps)``, ``indices = arange(sf, sf + nframes, fstp)``,
  ``states[indices]``). For the 60 fps MP4s and ``fps 4`` that is every 15th row of the 15 Hz control loop, about
  one second of robot motion per step (vjepa2#183: 8 frames span 7.4 s); the training entry point encodes every
  frame on its own (``train.py``: ``init_data(..., tubelet_size=1)``), so one action spans one stride. The
  reference draws a random start row per clip; here the rows start at 0, so clips are the reference's clips whose
  start is a multiple of the stride. The frames keep their real control stamps, so the dataset shows the true
  spacing; the episode metadata records the stride and the container rate.
- ``crop_style="droid"``: the reference AC training crop (full height x 1.35 height centre box, stretched to
  the square size; :func:`vjepa_core.preprocessing.droid_crop_box`) instead of our square centre crop.

The default stays physical time with the square centre crop.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .align import sample_frames
from .build import make_episode, run_sources
from .decode import DecodeError, resize_center_crop

__all__ = ["CROP_STYLES", "CONVENTIONS", "SAMPLINGS", "DroidConfig", "control_times_ns", "droid_crop_resize",
           "extract_droid", "find_droid_episodes", "import_droid", "legacy_stride", "read_video_frames",
           "video_average_fps"]

CONTROL_HZ = 15.0
SAMPLINGS = ("time", "legacy-stride")
CROP_STYLES = ("center", "droid")
# --convention: (sampling, crop_style)
CONVENTIONS = {"physical": ("time", "center"), "droid": ("legacy-stride", "droid")}
_TIME_KEYS = ("observation/timestamp/control/step_start", "observation/timestamp/robot_state/read_start",
              "observation/timestamp/control/control_start")


@dataclass
class DroidConfig:
    """Import parameters: sampling rate, frame size, which camera (a metadata key such as ``left_mp4_path``)."""

    fps: float = 4.0
    image_size: int = 256
    crop: bool = True
    camera: str = "left_mp4_path"
    frame_tolerance_s: float | None = None
    min_frames: int = 2
    shard_frames: int = 2048
    sampling: str = "time"          # time: physical fps on the control clock | legacy-stride: the reference's rows
    crop_style: str = "center"      # with crop: center (largest square) | droid (reference AC training crop)

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.fps > CONTROL_HZ and self.sampling == "time":
            raise ValueError(f"fps {self.fps} exceeds the {CONTROL_HZ} Hz DROID control rate")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.crop_style not in CROP_STYLES:
            raise ValueError(f"crop_style must be one of {CROP_STYLES}, got {self.crop_style!r}")
        if self.crop_style == "droid" and not self.crop:
            raise ValueError("crop_style 'droid' is a crop: it cannot be combined with crop=False (--no-crop)")


def find_droid_episodes(paths: list[str | Path]) -> list[Path]:
    """Episode directories (holding ``trajectory.h5``) under the given paths, sorted."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or directory")
        if p.is_file() and p.name == "trajectory.h5":
            out.append(p.parent)
        elif (p / "trajectory.h5").exists():
            out.append(p)
        else:
            out.extend(sorted(h.parent for h in p.rglob("trajectory.h5")))
    return sorted(set(out))


def control_times_ns(raw: np.ndarray) -> tuple[np.ndarray, str]:
    """Convert DROID control timestamps to int64 ns; the unit is detected from the median step (~1/15 s)."""
    t = np.asarray(raw, dtype=np.float64).reshape(-1)
    if t.size < 2:
        raise ValueError("fewer than 2 control timestamps")
    step = float(np.median(np.diff(t)))
    if not step > 0:
        raise ValueError("control timestamps do not increase")
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3), ("ns", 1.0)):
        if 0.005 <= step * scale / 1e9 <= 2.0:  # a control step between 5 ms and 2 s
            return np.round(t * scale).astype(np.int64), unit
    raise ValueError(f"cannot tell the unit of control timestamps (median step {step})")


def _metadata(ep: Path) -> dict[str, Any]:
    files = sorted(ep.glob("metadata*.json"))
    if not files:
        raise FileNotFoundError(f"{ep}: no metadata_*.json")
    return json.loads(files[0].read_text(encoding="utf-8"))


def _video_path(ep: Path, meta: dict[str, Any], camera: str) -> Path:
    if camera not in meta:
        serial = meta.get(f"{camera}_cam_serial")
        if serial is None:
            raise KeyError(f"{ep}: metadata has no {camera!r} (keys: {sorted(meta)})")
        name = f"{serial}.mp4"
    else:
        name = Path(str(meta[camera])).name
    for cand in (ep / "recordings" / "MP4" / name, ep / str(meta.get(camera, "")), ep / name):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"{ep}: video {name} for camera {camera!r} not found under recordings/MP4")


def read_video_frames(path: Path, indices: np.ndarray) -> dict[int, np.ndarray]:
    """Decode the frames at ``indices`` (sorted or not) of a video, in one sequential pass (PyAV).

    Indices past the end of the video are missing from the result.
    """
    import av

    wanted = {int(i) for i in indices}
    last = max(wanted) if wanted else -1
    out: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    out[i] = frame.to_ndarray(format="rgb24")
                if i >= last:
                    break
    except av.error.FFmpegError as exc:
        raise DecodeError(f"{path}: video does not decode: {exc}") from exc
    return out


def video_average_fps(path: Path) -> float:
    """The frame rate an MP4 declares (its average rate, what the reference reads with decord's
    ``get_avg_fps``); raw DROID MP4s say 60 although frames come at the 15 Hz control rate."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except av.error.FFmpegError as exc:
        raise DecodeError(f"{path}: video does not open: {exc}") from exc
    if not rate or not float(rate) > 0:
        raise DecodeError(f"{path}: the video declares no frame rate")
    return float(rate)


def legacy_stride(container_fps: float, fps: float) -> int:
    """Rows between two sampled frames in the reference loader: ``ceil(container_fps / fps)`` (15 for 60/4)."""
    return max(1, math.ceil(container_fps / fps))


def droid_crop_resize(img: np.ndarray, size: int) -> np.ndarray:
    """``uint8 [H,W,3]`` -> ``uint8 [size,size,3]``: the reference AC training crop (full height x 1.35 height
    centre box of a wide frame), stretched to the square with a bilinear resize."""
    from PIL import Image as PILImage

    from vjepa_core.preprocessing import droid_crop_box

    if img.ndim != 3 or img.shape[2] != 3:
        raise DecodeError(f"expected an RGB image [H,W,3], got shape {img.shape}")
    top, left, ch, cw = droid_crop_box(img.shape[0], img.shape[1])
    box = PILImage.fromarray(img).crop((left, top, left + cw, top + ch))
    return np.asarray(box.resize((size, size), PILImage.BILINEAR))


def _frame(img: np.ndarray, cfg: DroidConfig) -> np.ndarray:
    if cfg.crop and cfg.crop_style == "droid":
        return droid_crop_resize(img, cfg.image_size)
    return resize_center_crop(img, cfg.image_size, cfg.crop)


def extract_droid(ep: Path, cfg: DroidConfig) -> tuple[list[Any], list[str]]:
    """One DROID episode directory -> aligned episodes (normally one; control-time gaps split it)."""
    import h5py

    meta = _metadata(ep)
    video = _video_path(ep, meta, cfg.camera)
    notes: list[str] = []
    with h5py.File(ep / "trajectory.h5", "r") as h5:
        cart = np.asarray(h5["observation/robot_state/cartesian_position"], dtype=np.float64)
        grip = np.asarray(h5["observation/robot_state/gripper_position"], dtype=np.float64).reshape(-1)
        key = next((k for k in _TIME_KEYS if k in h5), None)
        if key is not None:
            times, unit = control_times_ns(np.asarray(h5[key]))
            notes.append(f"time from {key} ({unit})")
        else:
            times = np.round(np.arange(len(cart)) * 1e9 / CONTROL_HZ).astype(np.int64)
            notes.append(f"no control timestamps; assumed {CONTROL_HZ} Hz")
    if cart.ndim != 2 or cart.shape[1] != 6 or grip.shape[0] != cart.shape[0] or times.shape[0] != cart.shape[0]:
        raise ValueError(f"{ep}: inconsistent trajectory arrays: cartesian {cart.shape}, gripper {grip.shape}, "
                         f"timestamps {times.shape}")
    states = np.concatenate([cart, grip[:, None]], axis=1)
    order_ok = np.all(np.diff(times) > 0)
    if not order_ok:
        raise ValueError(f"{ep}: control timestamps are not strictly increasing")
    sampling: dict[str, Any] = {"sampling": cfg.sampling}
    if cfg.sampling == "legacy-stride":
        container_fps = video_average_fps(video)
        stride = legacy_stride(container_fps, cfg.fps)
        rows = np.arange(0, len(states), stride, dtype=np.int64)
        segments = [rows] if len(rows) >= cfg.min_frames else []
        sampling.update(stride=stride, container_fps=container_fps)
        notes.append(f"legacy stride: every {stride}th row (ceil({container_fps:g} / {cfg.fps:g}), reference "
                     "loader), not physical time")
    else:
        period = int(round(1e9 / cfg.fps))
        tol = int(round((cfg.frame_tolerance_s if cfg.frame_tolerance_s is not None else 0.25 / cfg.fps) * 1e9))
        segments = [s for s in sample_frames(times, period, tol) if len(s) >= cfg.min_frames]
    needed = np.concatenate(segments) if segments else np.zeros(0, np.int64)
    frames = read_video_frames(video, needed)
    n_video = max(frames) + 1 if frames else 0
    episodes = []
    uuid = str(meta.get("uuid", ep.name))
    for si, seg in enumerate(segments):
        seg = np.asarray([i for i in seg if int(i) in frames], dtype=np.int64)
        if len(seg) < cfg.min_frames:
            continue
        imgs = np.stack([_frame(frames[int(i)], cfg) for i in seg])
        ep_meta = {"source": str(ep), "segment": si, "task": str(meta.get("current_task", "")),
                   "fps": cfg.fps, "camera": cfg.camera, "rows": [int(seg[0]), int(seg[-1])],
                   "success": meta.get("success"), "uuid": uuid, "crop_style": cfg.crop_style, **sampling}
        episodes.append(make_episode(f"{uuid}#{si}", imgs, states[seg], None, times[seg], ep_meta))
    if len(frames) < len(set(needed.tolist())):
        notes.append(f"video has fewer frames (>= {n_video}) than the trajectory ({len(states)} rows); "
                     "extra rows dropped")
    if not episodes:
        raise ValueError(f"{ep}: no usable frames ({len(states)} rows, video {video.name})")
    return episodes, notes


def import_droid(inputs: list[str | Path], out: str | Path, cfg: DroidConfig | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Import (or resume importing) DROID raw episodes; returns the same summary as ``build_dataset``."""
    cfg = cfg or DroidConfig()
    eps = find_droid_episodes(list(inputs))
    index_path = Path(out) / "index.json"
    if index_path.exists():  # resuming: frames sampled or cropped another way must not be mixed in
        from .shards import load_index

        old = load_index(out)["config"]
        for key, default in (("sampling", "time"), ("crop_style", "center")):
            if old.get(key, default) != getattr(cfg, key):
                raise ValueError(f"{out} was imported with {key}={old.get(key, default)!r}, not "
                                 f"{getattr(cfg, key)!r}; use another --out directory")
    config = {"kind": "droid", **asdict(cfg)}
    return run_sources(eps, Path(out), config, cfg.shard_frames, lambda e: extract_droid(e, cfg), progress,
                       desc="import-droid")
