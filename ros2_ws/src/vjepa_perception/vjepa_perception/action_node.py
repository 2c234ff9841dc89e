"""action_node: camera images -> `vjepa_interfaces/ActionLabels` (what the last clip shows, or what comes next).

A frozen V-JEPA 2 encoder and an attentive probe (``vjepa_core.probes``) on a sliding clip of the camera stream:

- frames are sampled into the clip by their header stamps at ``clip_fps`` (0: every frame), decoded with
  ``vjepa_core.imgmsg``, and the newest ``frames_per_clip`` are kept;
- a worker thread runs encoder + probe on the newest full clip at most ``max_rate_hz`` (never on a backlog: a clip
  that is replaced before the worker gets to it is skipped) and publishes the top-k labels with softmax scores,
  stamped with the clip's last frame;
- classification probes (SSv2 / Diving-48 style, or one trained by ``vjepa-train probe``) fill ``labels`` /
  ``class_ids`` / ``scores``; anticipation probes (EK100 style) run the pretraining predictor ``anticipation_time_s``
  ahead (``vjepa_core.probes.anticipate``) and fill ``verb_*`` / ``noun_*`` / ``action_*``. The mode follows
  the probe.

The live clip is one temporal segment and one spatial view (``crop``), not the reference's offline segments x
views average. Label names come from ``labels_file`` (JSON ``{id: name}`` or ``{name: id}`` such as SSv2's
labels.json, a JSON list, a CSV with ``id`` and ``key`` columns such as EK100's class files, or a text file with
one name per line); without one, labels are the class ids.

Refused at start-up (one fatal log line, exit status 1): a missing or unreadable checkpoint/probe, a probe whose
width is not the encoder's, a labels file whose count is not the probe's class count, an anticipation horizon
past the predictor's frames. Refused per frame (throttled warning, counted, the node keeps running): images it
cannot decode (unsupported encoding, truncated data) and frames whose size is not the clip's. SIGINT / SIGTERM stop
the executor, then the worker (joined before any ROS entity goes away), then the context.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from vjepa_core.imgmsg import SUPPORTED_ENCODINGS, ImageConversionError, msg_to_rgb
from vjepa_core.preprocessing import CROP_POLICIES, preprocess_clip
from vjepa_interfaces.msg import ActionLabels
from vjepa_perception.encoder_node import run_node

__all__ = ["ActionNode", "PARAMETERS", "LabelsError", "main", "read_labels"]

# name -> (default, description). Defaults mirror config/action.yaml.
PARAMETERS: dict[str, tuple[Any, str]] = {
    "image_topic": ("/camera/image_raw", f"sensor_msgs/Image input ({', '.join(SUPPORTED_ENCODINGS)})"),
    "labels_topic": ("/vjepa/action_labels", "vjepa_interfaces/ActionLabels output"),
    "checkpoint": ("", "encoder weights: a released or own .pt (required)"),
    "model_config": ("", "encoder preset (vit_large, ...) or JSON/YAML file with an 'encoder' mapping; empty: the "
                         "released probe preset's encoder (probe_config = a preset name), else the configs our "
                         "checkpoints embed"),
    "checkpoint_key": ("target_encoder", "checkpoint section: target_encoder (what the probes were trained on) | "
                                         "encoder"),
    "probe": ("", "probe file in the released layout, e.g. ssv2-vitl-16x2x3.pt or RUN/probe.pt of vjepa-train probe "
                  "(required)"),
    "probe_config": ("", "empty: the config embedded by vjepa-train probe; a released probe name (e.g. "
                         "ssv2-vitl-16x2x3.pt, see vjepa_core.probes.PROBE_PRESETS); or a JSON/YAML file of "
                         "ProbeConfig fields"),
    "labels_file": ("", "class names (anticipation: the action names): JSON {id: name} / {name: id} / list, CSV "
                        "with id,key columns, or text one per line; empty: class ids"),
    "verb_labels_file": ("", "anticipation: verb names (same formats); empty: ids"),
    "noun_labels_file": ("", "anticipation: noun names (same formats); empty: ids"),
    "frames_per_clip": (16, "frames in the sliding clip (a multiple of the encoder's tubelet size)"),
    "clip_fps": (0.0, "frames per second taken from the stream into the clip, by header stamp; 0: every frame"),
    "crop": ("eval", f"preprocessing crop policy: {' | '.join(CROP_POLICIES)}"),
    "max_rate_hz": (2.0, "run encoder + probe at most this often, on the newest clip"),
    "top_k": (5, "labels published per clip (per head in anticipation)"),
    "anticipation_time_s": (1.0, "anticipation probes: seconds after the clip's last frame to predict"),
    "predictor_checkpoint": ("", "anticipation: pretraining predictor weights; empty: the encoder checkpoint"),
    "predictor_config": ("", "anticipation: JSON/YAML with a 'pretrain_predictor' (or 'predictor') mapping of "
                             "PretrainPredictorConfig fields; empty: the released probe preset's"),
    "image_width": (0, "expected frame width in pixels; 0: the first frame's"),
    "image_height": (0, "expected frame height in pixels; 0: the first frame's"),
    "device": ("cpu", "torch device: cpu | cuda | cuda:N"),
    "threads": (0, "CPU inference threads (0 = library default); leave cores for drivers on small machines"),
    "warn_throttle_s": (2.0, "minimum seconds between two warnings about the same kind of bad frame"),
}


class LabelsError(ValueError):
    """A labels file cannot be read or does not match the probe (the message names the file and the problem)."""


def _int_like(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or isinstance(v, str) and v.strip().isdigit()


def read_labels(path: str, count: int | None = None) -> list[str]:
    """Class names, index = class id, from a labels file; ``count`` (the probe's class count) must match.

    Formats: JSON ``{"0": "name", ...}`` (id -> name), ``{"name": "0", ...}`` (name -> id, SSv2's labels.json), or
    a list; CSV with a header naming ``id`` and ``key`` columns (EK100's ``EPIC_100_verb_classes.csv``); anything
    else: one name per line (blank lines and ``#`` comments skipped).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"labels file {path}: cannot read it: {exc}") from exc
    pairs: list[tuple[int, str]] | None = None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise LabelsError(f"labels file {path}: invalid JSON: {exc}") from exc
        if isinstance(data, list):
            names = [str(x) for x in data]
        elif isinstance(data, dict) and data and all(_int_like(k) for k in data):
            pairs = [(int(k), str(v)) for k, v in data.items()]
        elif isinstance(data, dict) and data and all(_int_like(v) for v in data.values()):
            pairs = [(int(v), str(k)) for k, v in data.items()]
        else:
            raise LabelsError(f"labels file {path}: expected a JSON list, {{id: name}} or {{name: id}}")
    elif p.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if not rows or not {"id", "key"} <= set(rows[0]):
            raise LabelsError(f"labels file {path}: a CSV needs 'id' and 'key' columns (EK100 class files)")
        try:
            pairs = [(int(r["id"]), str(r["key"])) for r in rows]
        except ValueError as exc:
            raise LabelsError(f"labels file {path}: non-integer id: {exc}") from exc
    else:
        names = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if pairs is not None:
        ids = sorted(i for i, _ in pairs)
        if ids != list(range(len(pairs))):
            raise LabelsError(f"labels file {path}: ids must be 0..{len(pairs) - 1} without gaps or repeats")
        names = [name for _, name in sorted(pairs)]
    if not names:
        raise LabelsError(f"labels file {path}: no labels")
    if count is not None and len(names) != count:
        raise LabelsError(f"labels file {path} names {len(names)} classes but the probe has {count}")
    return names


def _read_mapping(path: str, what: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{what} {path}: cannot read it: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path}: expected a mapping")
    return data


def _file_id(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{Path(path).name}@{h.hexdigest()[:12]}"


class _Models:
    """Encoder (+ pretraining predictor) and probe, loaded and cross-checked from the node parameters."""

    def __init__(self, p: dict[str, Any]) -> None:
        from vjepa_core.checkpoint import load_official, model_id
        from vjepa_core.config import PretrainPredictorConfig
        from vjepa_core.loading import resolve_model_config
        from vjepa_core.probes import PROBE_PRESETS, ProbeConfig, load_probe, preset_configs

        for key in ("checkpoint", "probe"):
            if not Path(p[key]).is_file():
                raise ValueError(f"{key} {p[key]!r} does not exist")
        preset = None
        if p["probe_config"] in PROBE_PRESETS or Path(p["probe_config"]).name in PROBE_PRESETS:
            preset = preset_configs(p["probe_config"], p["probe"])
            probe_cfg: Any = preset.probe
        elif p["probe_config"]:
            probe_cfg = ProbeConfig.from_dict(_read_mapping(p["probe_config"], "probe_config"))
        else:
            probe_cfg = None                          # embedded by vjepa-train probe
        self.probe = load_probe(p["probe"], probe_cfg)
        self.probe_cfg = self.probe.cfg
        if p["model_config"]:
            enc_dict, _ = resolve_model_config(p["model_config"], p["checkpoint"])
        elif preset is not None:
            enc_dict = preset.encoder
        else:
            enc_dict, _ = resolve_model_config("", p["checkpoint"])
        if enc_dict is None:
            raise ValueError(f"model_config {p['model_config']!r} has no encoder config")
        self.encoder, _ = load_official(p["checkpoint"], enc_dict, None, encoder_key=p["checkpoint_key"])
        self.encoder_cfg = self.encoder.cfg
        width = int(self.encoder_cfg.embed_dim)
        if self.probe_cfg.embed_dim != width:
            raise ValueError(f"the probe reads {self.probe_cfg.embed_dim}-wide tokens but the encoder "
                             f"({p['checkpoint']}) makes {width}-wide ones: the probe was trained on another "
                             "encoder; give the matching checkpoint/model_config or probe")
        self.kind = self.probe_cfg.kind
        self.predictor = None
        if self.kind == "anticipation":
            if p["predictor_config"]:
                data = _read_mapping(p["predictor_config"], "predictor_config")
                pred_dict = data.get("pretrain_predictor", data.get("predictor", data))
                pred_cfg = PretrainPredictorConfig.from_dict(pred_dict)
            elif preset is not None and preset.predictor is not None:
                pred_cfg = preset.predictor
            else:
                raise ValueError("an anticipation probe needs the pretraining predictor: set predictor_config "
                                 "(or probe_config to a released EK100 probe name)")
            _, self.predictor = load_official(p["predictor_checkpoint"] or p["checkpoint"], None, pred_cfg)
            if not p["clip_fps"] > 0:
                raise ValueError("anticipation needs clip_fps > 0 (the clip's frame rate sets the horizon in "
                                 "tubelets)")
        device = torch.device(p["device"])
        self.encoder = self.encoder.to(device).eval()
        self.probe = self.probe.to(device).eval()
        if self.predictor is not None:
            self.predictor = self.predictor.to(device).eval()
        self.model_id = model_id(self.encoder_cfg, p["checkpoint"])
        self.probe_id = _file_id(p["probe"])
        img = self.encoder_cfg.img_size
        self.size = int(img[0] if isinstance(img, (tuple, list)) else img)
        c = self.probe_cfg
        counts = {"labels_file": c.num_classes if self.kind == "classification" else c.action_classes,
                  "verb_labels_file": c.verb_classes, "noun_labels_file": c.noun_classes}
        self.names = {key: read_labels(p[key], n) if p[key] else None for key, n in counts.items()
                      if key == "labels_file" or self.kind == "anticipation"}

    def describe(self) -> str:
        return f"{self.probe_cfg.describe()} on {self.model_id}"


class ActionNode(Node):
    """See the module docstring. Construct, then spin with a multi-threaded executor (see :func:`main`)."""

    def __init__(self, **node_kwargs: Any) -> None:
        self._cond = threading.Condition()      # guards the clip, the counters and _closing
        self._publish_lock = threading.Lock()   # held across "not closing? publish": destroy_node waits for it
        self._closing = False
        self._worker: threading.Thread | None = None
        super().__init__("action_node", **node_kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self._validate(p)
        self.params = p
        if int(p["threads"]) > 0:
            torch.set_num_threads(int(p["threads"]))
        self.get_logger().info(f"loading encoder {p['checkpoint']} and probe {p['probe']} on {p['device']}")
        self.models = _Models(p)
        tubelet = int(self.models.encoder_cfg.tubelet_size)
        if int(p["frames_per_clip"]) % tubelet:
            raise ValueError(f"frames_per_clip {p['frames_per_clip']} is not a multiple of the encoder's tubelet "
                             f"size {tubelet}")
        self._infer(np.zeros((int(p["frames_per_clip"]), self.models.size, self.models.size, 3), np.uint8))  # dry run
        self._period = 1.0 / float(p["clip_fps"]) if p["clip_fps"] > 0 else 0.0
        self._clip: collections.deque[tuple[np.ndarray, Any]] = collections.deque(maxlen=int(p["frames_per_clip"]))
        self._size: tuple[int, int] | None = (
            (int(p["image_width"]), int(p["image_height"])) if p["image_width"] and p["image_height"] else None)
        self._next_due: float | None = None
        self._last_stamp: float | None = None
        self._version = 0                       # bumped by every frame added to the clip
        self._done_version = 0                  # the clip version the last inference used
        self._stats = {"received": 0, "sampled": 0, "invalid": 0, "published": 0, "failed": 0, "skipped": 0}
        self._last_warn: dict[str, float] = {}
        self.pub = self.create_publisher(ActionLabels, p["labels_topic"], 10)
        self.sub = self.create_subscription(Image, p["image_topic"], self._on_image, qos_profile_sensor_data)
        self._worker = threading.Thread(target=self._work, name="action_worker", daemon=True)
        self._worker.start()
        rate = f"{p['clip_fps']:g} fps" if p["clip_fps"] > 0 else "every frame"
        self.get_logger().info(f"{self.models.kind}: {self.models.describe()}; clips of {p['frames_per_clip']} "
                               f"frames at {rate} from {p['image_topic']} -> {p['labels_topic']}, at most "
                               f"{p['max_rate_hz']} Hz")

    @staticmethod
    def _validate(p: dict[str, Any]) -> None:
        """Fail fast with one message per bad parameter."""
        errors = []
        for key in ("checkpoint", "probe"):
            if not p[key]:
                errors.append(f"{key} is required")
        if p["checkpoint_key"] not in ("encoder", "target_encoder"):
            errors.append(f"checkpoint_key must be encoder or target_encoder, got {p['checkpoint_key']!r}")
        if int(p["frames_per_clip"]) < 1:
            errors.append(f"frames_per_clip must be >= 1, got {p['frames_per_clip']}")
        if p["clip_fps"] < 0 or not p["max_rate_hz"] > 0:
            errors.append(f"clip_fps must be >= 0 and max_rate_hz > 0, got {p['clip_fps']}, {p['max_rate_hz']}")
        if int(p["top_k"]) < 1:
            errors.append(f"top_k must be >= 1, got {p['top_k']}")
        if p["crop"] not in CROP_POLICIES:
            errors.append(f"crop must be one of {CROP_POLICIES}, got {p['crop']!r}")
        if p["anticipation_time_s"] < 0:
            errors.append(f"anticipation_time_s must be >= 0, got {p['anticipation_time_s']}")
        if (int(p["image_width"]) > 0) != (int(p["image_height"]) > 0) or min(p["image_width"], p["image_height"]) < 0:
            errors.append("image_width and image_height must both be 0 (the first frame's size) or both positive")
        if errors:
            raise ValueError("invalid parameters: " + "; ".join(errors))

    # ---- input ------------------------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        """Subscription callback: sample by stamp, decode, check the size, add to the clip. Never blocks long."""
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self._cond:
            self._stats["received"] += 1
            due = self._next_due
            if self._last_stamp is not None and stamp < self._last_stamp:
                due = None                               # time went back: a new clip starts with this frame
            elif self._period and due is not None and stamp < due - 0.1 * self._period:
                return                                   # between two clip frames
        try:
            rgb = msg_to_rgb(msg)
        except ImageConversionError as exc:
            self._refuse(re.sub(r"\d+", "#", str(exc)), f"dropping frame: {exc}")
            return
        h, w = rgb.shape[:2]
        with self._cond:
            if self._size is None:
                self._size = (w, h)
            expected = self._size
            if (w, h) == expected:
                if self._last_stamp is not None and stamp < self._last_stamp:
                    self.get_logger().info(f"stamps went back from {self._last_stamp:.3f} to {stamp:.3f} s "
                                           "(replayed bag or reset simulation): starting a new clip")
                    self._clip.clear()
                # stay on the clip-rate grid; after a gap longer than a period, restart it at this frame
                self._next_due = (stamp if due is None or stamp - due >= self._period else due) + self._period
                self._last_stamp = stamp
                self._clip.append((rgb, msg.header))
                self._stats["sampled"] += 1
                self._version += 1
                self._cond.notify()
                return
        self._refuse("size", f"dropping frame: it is {w}x{h} but the clip's frames are {expected[0]}x{expected[1]} "
                             "(set image_width / image_height, or restart the node for a new camera size)")

    def _refuse(self, key: str, text: str) -> None:
        with self._cond:
            self._stats["invalid"] += 1
        self._warn(key, text)

    def _work(self) -> None:
        period = 1.0 / float(self.params["max_rate_hz"])
        next_allowed = 0.0
        frames = int(self.params["frames_per_clip"])
        while True:
            with self._cond:
                while not self._closing and (len(self._clip) < frames or self._version == self._done_version):
                    self._cond.wait(0.5)
                if self._closing:
                    return
            wait = next_allowed - time.monotonic()
            if wait > 0:
                time.sleep(wait)                         # newer frames keep sliding the clip meanwhile
            with self._cond:
                if self._closing:
                    return
                if len(self._clip) < frames:             # a reset emptied it meanwhile
                    continue
                self._stats["skipped"] += max(0, self._version - self._done_version - 1)
                self._done_version = self._version
                clip = list(self._clip)
            next_allowed = time.monotonic() + period
            self._process(clip)

    def _process(self, clip: list[tuple[np.ndarray, Any]]) -> None:
        """Encode + probe one clip and publish; every outcome is counted (no exception leaves)."""
        t0 = time.perf_counter()
        try:
            out = self._infer(np.stack([rgb for rgb, _ in clip]))
        except Exception as exc:  # keep serving: a failed clip or a transient error must not kill the node
            with self._cond:
                self._stats["failed"] += 1
            self._warn("infer", f"inference failed on a clip: {type(exc).__name__}: {exc}")
            return
        msg = self._to_msg(out, clip, time.perf_counter() - t0)
        with self._publish_lock:
            if self._closing:
                return
            self.pub.publish(msg)
        with self._cond:
            self._stats["published"] += 1

    @torch.no_grad()
    def _infer(self, frames: np.ndarray) -> dict[str, torch.Tensor]:
        """uint8 ``[T, H, W, 3]`` -> softmax probabilities per head (``"classes"`` or ``"verb"/"noun"/"action"``)."""
        from vjepa_core.probes import anticipate, classify

        m = self.models
        x = preprocess_clip(frames, m.size, self.params["crop"])[None]   # [1, 3, T, S, S]
        if m.kind == "classification":
            return {"classes": classify(m.encoder, m.probe, x)[0].float().cpu()}
        logits = anticipate(m.encoder, m.predictor, m.probe, x, float(self.params["anticipation_time_s"]),
                            float(self.params["clip_fps"]))
        return {k: torch.softmax(v.float(), dim=-1)[0].cpu() for k, v in logits.items()}

    def _topk(self, probs: torch.Tensor, names: list[str] | None) -> tuple[list[str], list[int], list[float]]:
        scores, ids = probs.topk(min(int(self.params["top_k"]), probs.numel()))
        ids_l = [int(i) for i in ids]
        return ([names[i] if names else str(i) for i in ids_l], ids_l, [float(s) for s in scores])

    def _to_msg(self, out: dict[str, torch.Tensor], clip: list[tuple[np.ndarray, Any]], seconds: float
                ) -> ActionLabels:
        m = self.models
        msg = ActionLabels()
        msg.header = clip[-1][1]
        first, last = clip[0][1].stamp, clip[-1][1].stamp
        msg.clip_duration = float((last.sec - first.sec) + (last.nanosec - first.nanosec) * 1e-9)
        msg.num_frames = len(clip)
        msg.mode = m.kind
        msg.model_id, msg.probe_id = m.model_id, m.probe_id
        msg.inference_time = float(seconds)
        if m.kind == "classification":
            msg.labels, msg.class_ids, msg.scores = self._topk(out["classes"], m.names["labels_file"])
            return msg
        msg.horizon = float(self.params["anticipation_time_s"])
        msg.action_labels, msg.action_ids, msg.action_scores = self._topk(out["action"], m.names["labels_file"])
        if "verb" in out:
            msg.verb_labels, msg.verb_ids, msg.verb_scores = self._topk(out["verb"], m.names["verb_labels_file"])
            msg.noun_labels, msg.noun_ids, msg.noun_scores = self._topk(out["noun"], m.names["noun_labels_file"])
        return msg

    # ---- reporting / shutdown ----------------------------------------------------------------------------------
    def _warn(self, key: str, text: str) -> None:
        now = time.monotonic()
        if now - self._last_warn.get(key, -1e9) >= float(self.params["warn_throttle_s"]):
            self._last_warn[key] = now
            self.get_logger().warning(text)

    def stats(self) -> dict[str, int]:
        """Counters: received, sampled (into the clip), invalid, published, failed, skipped (clips replaced)."""
        with self._cond:
            return dict(self._stats)

    def destroy_node(self) -> None:
        """Stop the worker (it publishes nothing once this starts) and join it, then destroy the ROS entities.

        Safe on a node whose constructor failed part-way (rclpy destroys such nodes on context shutdown).
        """
        with self._publish_lock, self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10.0)      # an inference in flight finishes, then the worker sees _closing
            if self._worker.is_alive():
                self.get_logger().warning("the action worker is still busy after 10 s; it will publish nothing")
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run vjepa_perception action_node`; exit status 1 when the node cannot start (see
    :func:`vjepa_perception.encoder_node.run_node`)."""
    return run_node(ActionNode, "action_node", args)


if __name__ == "__main__":
    sys.exit(main())
