"""Typed training configurations: YAML in, strict dataclasses out, the resolved config saved with every run.

Every section is a dataclass that rejects unknown keys (naming all of them), so a typo such as ``lrr: 1e-3``
fails at start-up instead of silently training with a default. Model sections are validated by building the
``vjepa_core`` config objects (``EncoderConfig``, ``PretrainPredictorConfig``, ``ACPredictorConfig``), which are
equally strict; they accept ``preset: vit_large`` plus overrides.

    cfg = load_config("config/train/pretrain_tiny.yaml", PretrainConfig, overrides=["optim.lr=1e-3"])
    save_resolved(cfg, run_dir)   # run_dir/config.yaml, the exact config that ran
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vjepa_core.config import ACPredictorConfig, EncoderConfig, PretrainPredictorConfig

from ..data.latents import DEFAULT_ENCODER_KEY

__all__ = [
    "CheckpointConfig",
    "DataConfig",
    "DistConfig",
    "LogConfig",
    "MaskBlockConfig",
    "ModelConfig",
    "OptimConfig",
    "PosttrainConfig",
    "PosttrainModelConfig",
    "PretrainConfig",
    "SourceConfig",
    "TrainConfigError",
    "from_dict",
    "load_config",
    "save_resolved",
    "to_dict",
]


class TrainConfigError(ValueError):
    """A training configuration is invalid (unknown key, wrong type, inconsistent values)."""


@dataclass
class SourceConfig:
    """One data source. ``kind``: ``shards`` (a ``vjepa-dataset build`` directory), ``video`` (a folder of
    video files or one file; mp4/avi/mkv/webm/mov via PyAV), ``images`` (a folder of images, each repeated in
    time). ``weight`` is the source's sampling share when several sources are mixed."""

    kind: str = "shards"
    path: str = ""
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("shards", "video", "images"):
            raise TrainConfigError(f"data source kind {self.kind!r} unknown; use shards, video or images")
        if not self.path:
            raise TrainConfigError("data source needs a path")
        if self.weight <= 0:
            raise TrainConfigError(f"data source weight must be > 0, got {self.weight}")


@dataclass
class DataConfig:
    """Clips, augmentation and loading. ``batch_size`` is per process and per micro-step: the global batch is
    ``batch_size * world_size * optim.accumulation_steps``."""

    sources: list[SourceConfig] = field(default_factory=list)
    num_frames: int = 16
    frame_step: int = 4
    img_size: int = 256
    batch_size: int = 24
    num_workers: int = 4
    pin_memory: bool = True
    random_resize_scale: list[float] = field(default_factory=lambda: [0.3, 1.0])
    random_resize_aspect_ratio: list[float] = field(default_factory=lambda: [0.75, 1.35])
    horizontal_flip: bool = True
    clip_stride: int = 1
    latents: str | None = "auto"

    def __post_init__(self) -> None:
        self.sources = [s if isinstance(s, SourceConfig) else from_dict(SourceConfig, s, "data.sources[]")
                        for s in self.sources]
        if self.batch_size < 1 or self.num_frames < 1 or self.frame_step < 1 or self.num_workers < 0:
            raise TrainConfigError("data: batch_size, num_frames, frame_step must be >= 1, num_workers >= 0")
        for name in ("random_resize_scale", "random_resize_aspect_ratio"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise TrainConfigError(f"data.{name} must be [lo, hi] with 0 < lo <= hi, got {[lo, hi]}")


@dataclass
class MaskBlockConfig:
    """One multiblock 3D mask generator (reference ``cfgs_mask`` entry)."""

    num_blocks: int = 8
    spatial_scale: list[float] = field(default_factory=lambda: [0.15, 0.15])
    temporal_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    aspect_ratio: list[float] = field(default_factory=lambda: [0.75, 1.5])
    max_temporal_keep: float = 1.0

    def __post_init__(self) -> None:
        if self.num_blocks < 1:
            raise TrainConfigError("mask num_blocks must be >= 1")
        for name in ("spatial_scale", "temporal_scale", "aspect_ratio"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise TrainConfigError(f"mask {name} must be [lo, hi] with 0 < lo <= hi, got {[lo, hi]}")
        if self.spatial_scale[1] > 1 or self.temporal_scale[1] > 1:
            raise TrainConfigError("mask spatial_scale / temporal_scale must be <= 1")


def _default_masks() -> list[MaskBlockConfig]:
    return [MaskBlockConfig(8, [0.15, 0.15]), MaskBlockConfig(2, [0.7, 0.7])]


@dataclass
class OptimConfig:
    """AdamW with a warmup / constant / cooldown LR schedule (reference WSD), WD and EMA schedules.

    LR: linear ``start_lr -> lr`` over ``warmup_steps``, constant, then linear ``lr -> final_lr`` over the last
    ``cooldown_steps`` of ``total_steps`` (a cooldown phase alone: ``warmup_steps: 0, cooldown_steps ==
    total_steps``). ``lr_schedule: cosine`` decays ``lr -> final_lr`` by a half cosine after warmup instead.
    Weight decay goes ``weight_decay -> final_weight_decay`` (cosine; equal values = constant). EMA momentum
    goes linearly ``ema[0] -> ema[1]``. ``dtype``: autocast dtype on GPU (bfloat16 as in the paper; float16
    adds a GradScaler); CPU always trains in float32.
    """

    total_steps: int = 240000
    warmup_steps: int = 12000
    cooldown_steps: int = 0
    lr_schedule: str = "wsd"
    start_lr: float = 1.0e-4
    lr: float = 5.25e-4
    final_lr: float = 1.0e-6
    weight_decay: float = 0.04
    final_weight_decay: float = 0.04
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1.0e-8
    ema: list[float] = field(default_factory=lambda: [0.99925, 0.99925])
    grad_clip: float | None = None
    accumulation_steps: int = 1
    dtype: str = "bfloat16"
    loss_exp: float = 1.0

    def __post_init__(self) -> None:
        if self.total_steps < 1 or self.warmup_steps < 0 or self.cooldown_steps < 0:
            raise TrainConfigError("optim: total_steps >= 1, warmup_steps/cooldown_steps >= 0")
        if self.warmup_steps + self.cooldown_steps > self.total_steps:
            raise TrainConfigError(f"optim: warmup_steps ({self.warmup_steps}) + cooldown_steps "
                                   f"({self.cooldown_steps}) exceed total_steps ({self.total_steps})")
        if self.lr_schedule not in ("wsd", "cosine"):
            raise TrainConfigError(f"optim.lr_schedule {self.lr_schedule!r} unknown; use wsd or cosine")
        if self.dtype not in ("bfloat16", "float16", "float32"):
            raise TrainConfigError(f"optim.dtype {self.dtype!r} unknown; use bfloat16, float16 or float32")
        if self.accumulation_steps < 1:
            raise TrainConfigError("optim.accumulation_steps must be >= 1")
        if len(self.ema) != 2 or not all(0.0 <= m <= 1.0 for m in self.ema):
            raise TrainConfigError(f"optim.ema must be [start, end] in [0, 1], got {self.ema}")
        if self.loss_exp <= 0:
            raise TrainConfigError("optim.loss_exp must be > 0")


@dataclass
class DistConfig:
    """Distribution: ``strategy`` ddp (default) or fsdp (shards params/grads/optimizer, for ViT-g);
    ``backend`` auto = nccl on CUDA, gloo on CPU. Launch with ``torchrun``; the world comes from its env."""

    strategy: str = "ddp"
    backend: str = "auto"
    timeout_s: int = 1800

    def __post_init__(self) -> None:
        if self.strategy not in ("ddp", "fsdp"):
            raise TrainConfigError(f"dist.strategy {self.strategy!r} unknown; use ddp or fsdp")
        if self.backend not in ("auto", "nccl", "gloo"):
            raise TrainConfigError(f"dist.backend {self.backend!r} unknown; use auto, nccl or gloo")


@dataclass
class CheckpointConfig:
    """``every_steps``: rewrite ``RUN/latest.pt`` (atomically); ``keep_every_steps``: also keep
    ``RUN/checkpoints/step_XXXXXXXX.pt`` (0 = never). A run always checkpoints at its last step."""

    every_steps: int = 500
    keep_every_steps: int = 0
    resume: bool = True

    def __post_init__(self) -> None:
        if self.every_steps < 1 or self.keep_every_steps < 0:
            raise TrainConfigError("checkpoint.every_steps must be >= 1, keep_every_steps >= 0")


@dataclass
class LogConfig:
    """Metrics every ``every_steps`` to ``metrics.csv`` (+ TensorBoard), progress bar on rank 0, collapse
    warning when the std of the target features drops below ``collapse_std_threshold``."""

    every_steps: int = 10
    tensorboard: bool = True
    progress_bar: bool = True
    collapse_std_threshold: float = 0.05

    def __post_init__(self) -> None:
        if self.every_steps < 1:
            raise TrainConfigError("log.every_steps must be >= 1")


@dataclass
class ModelConfig:
    """Pretraining networks. ``encoder`` / ``predictor`` are ``EncoderConfig`` / ``PretrainPredictorConfig``
    fields (``preset: vit_large`` + overrides allowed); the predictor's ``embed_dim``, ``img_size``,
    ``patch_size``, ``num_frames`` and ``tubelet_size`` default to the encoder's. The encoder's ``num_frames``
    is not set here: the clip length is configured once, as ``data.num_frames`` (see :class:`PretrainConfig`).
    ``init_from`` loads encoder, target encoder and predictor weights (not the optimizer) from a checkpoint,
    e.g. the previous phase of a progressive-resolution schedule (RoPE has no position table, so weights move to
    other sizes as-is)."""

    encoder: dict[str, Any] = field(default_factory=lambda: {"preset": "vit_large"})
    predictor: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    activation_checkpointing: bool = False

    def encoder_config(self) -> EncoderConfig:
        """The validated encoder config."""
        return _model_cfg(EncoderConfig, self.encoder, "model.encoder")

    def predictor_config(self) -> PretrainPredictorConfig:
        """The validated predictor config, shape fields inherited from the encoder."""
        enc = self.encoder_config()
        base = {"img_size": list(enc.img_size) if isinstance(enc.img_size, tuple) else enc.img_size,
                "patch_size": enc.patch_size, "num_frames": enc.num_frames, "tubelet_size": enc.tubelet_size,
                "embed_dim": enc.embed_dim}
        return _model_cfg(PretrainPredictorConfig, {**base, **self.predictor}, "model.predictor", preset_ok=False)

    def __post_init__(self) -> None:
        self.predictor_config()


@dataclass
class PosttrainModelConfig:
    """Post-training networks: a frozen encoder (``encoder_checkpoint`` section ``encoder_key``, reference
    ``target_encoder``) and the AC predictor (``ACPredictorConfig`` fields, ``preset: vit_giant`` allowed;
    ``embed_dim`` defaults to the encoder width, ``img_size``/``patch_size`` to the encoder's). ``init_from``:
    start the predictor from a checkpoint's ``predictor`` (e.g. the released ``vjepa2-ac-vitg.pt``)."""

    encoder: dict[str, Any] = field(default_factory=lambda: {"preset": "vit_giant"})
    encoder_checkpoint: str | None = None
    encoder_key: str = DEFAULT_ENCODER_KEY  # the section `vjepa-dataset encode` caches by default
    predictor: dict[str, Any] = field(default_factory=lambda: {"preset": "vit_giant"})
    init_from: str | None = None
    activation_checkpointing: bool = False

    def encoder_config(self) -> EncoderConfig:
        """The validated encoder config."""
        return _model_cfg(EncoderConfig, self.encoder, "model.encoder")

    def predictor_config(self) -> ACPredictorConfig:
        """The validated AC predictor config."""
        enc = self.encoder_config()
        pred = dict(self.predictor)
        if "preset" not in pred:
            pred = {"img_size": list(enc.img_size) if isinstance(enc.img_size, tuple) else enc.img_size,
                    "patch_size": enc.patch_size, "embed_dim": enc.embed_dim, **pred}
        cfg = _model_cfg(ACPredictorConfig, pred, "model.predictor")
        if cfg.embed_dim != enc.embed_dim:
            raise TrainConfigError(f"model.predictor.embed_dim {cfg.embed_dim} != encoder width {enc.embed_dim}")
        return cfg

    def __post_init__(self) -> None:
        self.predictor_config()


@dataclass
class _Common:
    """Fields shared by both trainings."""

    seed: int = 0
    out: str = "runs/train"
    device: str = "auto"
    threads: int | None = None
    max_steps: int | None = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def _check_common(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise TrainConfigError(f"device {self.device!r} unknown; use auto, cpu or cuda")
        if self.max_steps is not None and self.max_steps < 0:
            raise TrainConfigError("max_steps must be >= 0")


@dataclass
class PretrainConfig(_Common):
    """``vjepa-train pretrain``: the V-JEPA 2 mask-denoising objective.

    The clip length is one setting, ``data.num_frames``: the clips the data loader cuts, the mask grid, and the
    encoder's (hence the predictor's and the checkpoint's) ``num_frames`` all follow it. ``model.encoder`` may
    repeat it only with the same value (a resolved ``config.yaml`` does); a different one is an error.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    masks: list[MaskBlockConfig] = field(default_factory=_default_masks)

    def __post_init__(self) -> None:
        self._check_common()
        if not self.masks:
            raise TrainConfigError("masks: at least one mask generator is needed")
        given = self.model.encoder.get("num_frames")
        if given is None:
            self.model.encoder = {**self.model.encoder, "num_frames": self.data.num_frames}
            self.model.predictor_config()  # re-validate with the clip length
        elif given != self.data.num_frames:
            raise TrainConfigError(f"model.encoder.num_frames {given} != data.num_frames {self.data.num_frames}: "
                                   "the clip length is data.num_frames (leave model.encoder.num_frames out, it "
                                   "follows)")
        enc = self.model.encoder_config()
        if self.data.img_size % enc.patch_size or self.data.num_frames % enc.tubelet_size:
            raise TrainConfigError(f"data.img_size {self.data.img_size} must be a multiple of patch_size "
                                   f"{enc.patch_size} and data.num_frames {self.data.num_frames} of tubelet_size "
                                   f"{enc.tubelet_size}")


@dataclass
class PosttrainConfig(_Common):
    """``vjepa-train posttrain``: V-JEPA 2-AC (teacher forcing + rollout) on a frozen encoder.

    ``data.num_frames`` is T (frames per clip: T-1 actions); ``auto_steps`` the rollout length (2 in the
    paper); ``data.latents``: ``auto`` uses the dataset's latent cache for this encoder when present, a name
    forces that cache, null always encodes frames on the fly.
    """

    model: PosttrainModelConfig = field(default_factory=PosttrainModelConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(num_frames=8, frame_step=1, batch_size=8,
                                                                 horizontal_flip=False))
    auto_steps: int = 2
    normalize_reps: bool = True

    def __post_init__(self) -> None:
        self._check_common()
        if self.data.num_frames < 2:
            raise TrainConfigError("posttrain data.num_frames must be >= 2 (a clip needs an action)")
        if not 1 <= self.auto_steps <= self.data.num_frames - 1:
            raise TrainConfigError(f"auto_steps must be in [1, num_frames-1], got {self.auto_steps}")
        if any(s.kind != "shards" for s in self.data.sources):
            raise TrainConfigError("posttrain needs datasets with states and actions: data sources of kind shards")
        if self.data.num_frames - 1 > self.model.predictor_config().max_frames:
            raise TrainConfigError(f"data.num_frames - 1 = {self.data.num_frames - 1} exceeds the predictor's "
                                   f"max_frames {self.model.predictor_config().max_frames} (num_frames // tubelet)")


def _model_cfg(cls: type, d: dict[str, Any], where: str, preset_ok: bool = True) -> Any:
    """Build a vjepa_core config from ``{preset?: name, **fields}``, re-raising errors with the YAML path."""
    if not isinstance(d, dict):
        raise TrainConfigError(f"{where} must be a mapping, got {type(d).__name__}")
    d = dict(d)
    preset = d.pop("preset", None)
    try:
        if preset is not None:
            if not preset_ok:
                raise TrainConfigError(f"{where}: 'preset' is not accepted here")
            return cls.preset(preset, **d)
        return cls.from_dict(d)
    except (ValueError, TypeError) as e:
        raise TrainConfigError(f"{where}: {e}") from None


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Coerce a YAML value to the annotated type (nested dataclasses, lists of them, numbers)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        if origin in (typing.Union, types.UnionType) and type(None) in args:
            return None
        raise TrainConfigError(f"{where}: null is not allowed")
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return _convert(non_none[0], value, where) if len(non_none) == 1 else value
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_dict(tp, value, where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise TrainConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise TrainConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TrainConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise TrainConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise TrainConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is bool and not isinstance(value, bool):
        raise TrainConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is str and not isinstance(value, str):
        raise TrainConfigError(f"{where}: expected a string, got {value!r}")
    return value


def from_dict(cls: type, d: Any, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a mapping; every unknown key is an error naming its full path."""
    if not isinstance(d, dict):
        raise TrainConfigError(f"{where}: expected a mapping, got {type(d).__name__}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise TrainConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(names)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}" if where != "config" else k) for k, v in d.items()}
    try:
        return cls(**kwargs)
    except TrainConfigError as e:
        msg = str(e)
        raise TrainConfigError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def to_dict(cfg: Any) -> Any:
    """Plain YAML-serialisable dict of a config dataclass."""
    return dataclasses.asdict(cfg)


def _set_override(d: dict[str, Any], dotted: str, raw: str) -> None:
    """Apply one ``a.b.c=value`` override (value parsed as YAML) to a nested dict."""
    keys = dotted.split(".")
    node = d
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise TrainConfigError(f"override {dotted}: {k} is not a mapping")
    node[keys[-1]] = yaml.safe_load(raw)


def load_config(path: str | Path | None, cls: type, overrides: list[str] | None = None) -> Any:
    """Read a YAML file (or start from defaults when ``path`` is None), apply ``key.sub=value`` overrides,
    and build ``cls`` strictly."""
    d: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise TrainConfigError(f"config file {p} not found")
        loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        if loaded is not None and not isinstance(loaded, dict):
            raise TrainConfigError(f"{p}: top level must be a mapping")
        d = loaded or {}
    for ov in overrides or []:
        if "=" not in ov:
            raise TrainConfigError(f"override {ov!r} must look like key.sub=value")
        key, raw = ov.split("=", 1)
        _set_override(d, key.strip(), raw)
    return from_dict(cls, d)


def save_resolved(cfg: Any, run_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved config (every default filled in) to ``run_dir/name``; returns the path."""
    p = Path(run_dir) / name
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
    tmp.replace(p)
    return p
