"""Video understanding with a frozen V-JEPA 2 encoder: attentive probes for action classification and anticipation.

This is the reference's evaluation stack (``facebookresearch/vjepa2``: ``src/models/attentive_pooler.py``,
``evals/video_classification_frozen``, ``evals/action_anticipation_frozen``) re-implemented on the project's
encoder and pretraining predictor, so the released probe files give the reference's outputs:

- :class:`ProbeConfig` / :func:`build_probe` / :func:`load_probe`: the probe networks
  (:mod:`vjepa_core.models.attentive_pooler`) and the released file format ``{"classifiers": [state_dict, ...],
  "opt", "scaler", "epoch", "batch_size", "world_size"}`` (keys with the DDP ``module.`` prefix; the first
  classifier is used), read with ``weights_only=True`` and strict key/shape checks. :func:`save_probe` writes
  the same layout.
- :func:`clip_features` / :func:`classify`: several temporal segments x spatial views per video; every clip is
  encoded separately, per view the segments' tokens are concatenated along time, the probe runs per view and
  the softmax is averaged over views (the reference ``ClipAggregation`` and its evaluation loop).
- :func:`anticipation_features` / :func:`anticipate`: the reference ``AnticipativeWrapper``: encode the observed
  clip (N tokens), ask the pretraining predictor for the tokens of the tubelet ``t * frames_per_second /
  tubelet`` steps after the clip, and give the probe ``[context tokens, predicted tokens]``.
- :data:`PROBE_PRESETS`: the released probes (file names, encoder, resolution, frames, segments x views, heads,
  depth, classes); :func:`preset_configs` turns one into the configs to load it with. See ``docs/probes.md``.

No rclpy here: the ROS node and the training CLI build on these functions.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CheckpointError, clean_key, read_checkpoint, state_dict_diff
from .config import ENCODER_PRESETS, ConfigError, EncoderConfig, PretrainPredictorConfig
from .models.attentive_pooler import AnticipationClassifier, AttentiveClassifier

__all__ = [
    "PROBE_PRESETS",
    "PROBE_URL_BASE",
    "PresetConfigs",
    "ProbeConfig",
    "ProbeLoadError",
    "anticipate",
    "anticipation_features",
    "build_probe",
    "classify",
    "clip_features",
    "infer_probe_config",
    "load_probe",
    "preset_configs",
    "read_probe_state",
    "save_probe",
]

PathLike = str | os.PathLike

#: The pretraining predictor's learnable mask token the reference ``AnticipativeWrapper`` uses: it calls the
#: predictor without ``mask_index``, and the reference predictor's default is 1 (the project's is 0).
ANTICIPATION_MASK_INDEX = 1


class ProbeLoadError(CheckpointError, ValueError):
    """A probe file cannot be read or does not match the requested probe (the message says which and why).

    A ``ValueError`` (bad input) and a :class:`~vjepa_core.checkpoint.CheckpointError`, so callers that already
    catch checkpoint errors catch it too.
    """


# ---------------------------------------------------------------------------------------------------------
# Configuration

@dataclass(frozen=True)
class ProbeConfig:
    """An attentive probe: ``ProbeConfig(embed_dim, num_heads, depth, num_classes=C)`` for classification, or
    ``ProbeConfig(embed_dim, num_heads, depth, verb_classes=V, noun_classes=N, action_classes=A)`` for
    anticipation (``verb_classes=noun_classes=0`` gives the reference's action-only variant).

    ``embed_dim`` is the encoder width, ``depth`` the reference's ``num_probe_blocks`` (``depth - 1``
    self-attention blocks, then the cross-attention block). The released probes use 16 heads and depth 4.
    """

    embed_dim: int
    num_heads: int = 16
    depth: int = 4
    num_classes: int | None = None
    verb_classes: int | None = None
    noun_classes: int | None = None
    action_classes: int | None = None
    mlp_ratio: float = 4.0
    qkv_bias: bool = True

    def __post_init__(self) -> None:
        if self.embed_dim < 1 or self.num_heads < 1 or self.embed_dim % self.num_heads:
            raise ConfigError(f"ProbeConfig: embed_dim {self.embed_dim} must be a positive multiple of "
                              f"num_heads {self.num_heads}")
        if self.depth < 1:
            raise ConfigError(f"ProbeConfig: depth (num_probe_blocks) must be >= 1, got {self.depth}")
        anticipation = (self.verb_classes, self.noun_classes, self.action_classes)
        if self.num_classes is not None:
            if any(v is not None for v in anticipation):
                raise ConfigError("ProbeConfig: give either num_classes (classification) or verb_classes/"
                                  "noun_classes/action_classes (anticipation), not both")
            if self.num_classes < 1:
                raise ConfigError(f"ProbeConfig: num_classes must be >= 1, got {self.num_classes}")
            return
        if any(v is None for v in anticipation):
            raise ConfigError("ProbeConfig: set num_classes (classification) or all of verb_classes, "
                              f"noun_classes, action_classes (anticipation); got {self}")
        if self.action_classes < 1 or self.verb_classes < 0 or self.noun_classes < 0:
            raise ConfigError(f"ProbeConfig: class counts must be positive (verb/noun may be 0 together for "
                              f"an action-only probe); got verb {self.verb_classes}, noun {self.noun_classes}, "
                              f"action {self.action_classes}")
        if (self.verb_classes == 0) != (self.noun_classes == 0):
            raise ConfigError("ProbeConfig: an action-only anticipation probe has verb_classes == noun_classes "
                              f"== 0; got verb {self.verb_classes}, noun {self.noun_classes}")

    @property
    def kind(self) -> str:
        """``"classification"`` or ``"anticipation"``."""
        return "classification" if self.num_classes is not None else "anticipation"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProbeConfig:
        """Build from a dict, rejecting unknown keys by name."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"ProbeConfig: expected a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"ProbeConfig: unknown keys {unknown}; allowed keys are {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict; :meth:`from_dict` round-trips it."""
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """Short human-readable summary (used in error messages)."""
        if self.kind == "classification":
            classes = f"num_classes={self.num_classes}"
        else:
            classes = f"verb/noun/action classes={self.verb_classes}/{self.noun_classes}/{self.action_classes}"
        return f"{self.kind} probe, embed_dim={self.embed_dim}, depth={self.depth}, {classes}"


def _as_probe_config(cfg: ProbeConfig | Mapping[str, Any]) -> ProbeConfig:
    if isinstance(cfg, ProbeConfig):
        return cfg
    if isinstance(cfg, Mapping):
        return ProbeConfig.from_dict(cfg)
    raise ConfigError(f"expected a ProbeConfig or a dict of its fields, got {type(cfg).__name__}")


def build_probe(cfg: ProbeConfig | Mapping[str, Any], init: bool = True) -> nn.Module:
    """The probe for ``cfg`` in eval mode: :class:`AttentiveClassifier` (``tokens[B, N, D] -> logits[B, C]``) or
    :class:`AnticipationClassifier` (``-> {"verb", "noun", "action"}``). ``init`` applies the reference init
    (for training); ``probe.cfg`` holds the config."""
    cfg = _as_probe_config(cfg)
    common = {"embed_dim": cfg.embed_dim, "num_heads": cfg.num_heads, "depth": cfg.depth,
              "mlp_ratio": cfg.mlp_ratio, "qkv_bias": cfg.qkv_bias}
    if cfg.kind == "classification":
        probe: nn.Module = AttentiveClassifier(num_classes=cfg.num_classes, **common)
    else:
        probe = AnticipationClassifier(verb_classes=cfg.verb_classes, noun_classes=cfg.noun_classes,
                                       action_classes=cfg.action_classes, **common)
    if init:
        probe.init_weights()
    probe.cfg = cfg
    return probe.eval()


# ---------------------------------------------------------------------------------------------------------
# Probe files

#: First components of every probe parameter name.
_PROBE_ROOTS = {"pooler", "linear", "verb_classifier", "noun_classifier", "action_classifier"}


def _file_kind(sd: Mapping[str, torch.Tensor]) -> str | None:
    if "linear.weight" in sd:
        return "classification"
    if "action_classifier.weight" in sd:
        return "anticipation"
    return None


def _read_probe_file(path: PathLike) -> dict[str, Any]:
    try:
        return read_checkpoint(path)
    except CheckpointError as e:
        raise ProbeLoadError(str(e)) from None


def read_probe_state(source: PathLike | Mapping[str, Any], index: int = 0) -> dict[str, torch.Tensor]:
    """State dict of classifier ``index`` of a probe file (path or its loaded dict), ``module.`` stripped.

    Raises:
        ProbeLoadError: unreadable/unsafe/truncated file, not a probe file (no ``classifiers`` list), index out
            of range, or an entry that is not a state dict of tensors.
    """
    ckpt = dict(source) if isinstance(source, Mapping) else _read_probe_file(source)
    where = "probe dict" if isinstance(source, Mapping) else str(source)
    if "classifiers" not in ckpt:
        keys = sorted(map(str, ckpt))
        hint = ""
        if {"encoder", "target_encoder", "predictor"} & set(keys):
            hint = " This is an encoder/predictor checkpoint: load it with vjepa_core.checkpoint.load_official."
        elif keys and all(clean_key(k).split(".")[0] in _PROBE_ROOTS for k in keys):
            hint = " It looks like a bare probe state dict: save probes with save_probe (or wrap it as " \
                   "{'classifiers': [state_dict]})."
        raise ProbeLoadError(f"{where}: not a probe file: no 'classifiers' entry (top-level keys: "
                             f"{keys[:12]}).{hint}")
    entries = ckpt["classifiers"]
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ProbeLoadError(f"{where}: 'classifiers' must be a non-empty list of state dicts, got "
                             f"{type(entries).__name__}{'' if entries else ' (empty)'}")
    if not -len(entries) <= index < len(entries):
        raise ProbeLoadError(f"{where}: classifier index {index} out of range ({len(entries)} in the file)")
    sd = entries[index]
    if not isinstance(sd, Mapping) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ProbeLoadError(f"{where}: classifiers[{index}] is not a state dict of tensors")
    return {clean_key(k): v for k, v in sd.items()}


def _infer_from_state(sd: Mapping[str, torch.Tensor], num_heads: int) -> ProbeConfig:
    """ProbeConfig from the parameter shapes (``num_heads`` cannot be read from the weights)."""
    if "pooler.query_tokens" not in sd or "pooler.cross_attention_block.mlp.fc1.weight" not in sd:
        raise ProbeLoadError("state dict has no pooler.query_tokens / pooler.cross_attention_block: "
                             "not an attentive probe")
    embed_dim = int(sd["pooler.query_tokens"].shape[-1])
    block_ids = {int(k.split(".")[2]) for k in sd if k.startswith("pooler.blocks.")}
    depth = 1 + (max(block_ids) + 1 if block_ids else 0)
    mlp_ratio = sd["pooler.cross_attention_block.mlp.fc1.weight"].shape[0] / embed_dim
    common = {"embed_dim": embed_dim, "num_heads": num_heads, "depth": depth, "mlp_ratio": mlp_ratio,
              "qkv_bias": "pooler.cross_attention_block.xattn.q.bias" in sd}
    kind = _file_kind(sd)
    if kind == "classification":
        return ProbeConfig(num_classes=int(sd["linear.weight"].shape[0]), **common)
    if kind == "anticipation":
        def rows(key: str) -> int:
            return int(sd[key].shape[0]) if key in sd else 0
        return ProbeConfig(verb_classes=rows("verb_classifier.weight"), noun_classes=rows("noun_classifier.weight"),
                           action_classes=rows("action_classifier.weight"), **common)
    raise ProbeLoadError("state dict has no classifier head (linear.* or action_classifier.*)")


def infer_probe_config(source: PathLike | Mapping[str, Any], num_heads: int = 16, index: int = 0) -> ProbeConfig:
    """The :class:`ProbeConfig` a probe file (or its loaded dict) was built with, read from parameter shapes.

    ``num_heads`` is not stored in the weights (every head count that divides the width gives the same shapes);
    the released probes use 16. Useful to read class counts (e.g. EK100's) or to check a file before loading.
    """
    return _infer_from_state(read_probe_state(source, index), num_heads)


def load_probe(path: PathLike, cfg: ProbeConfig | Mapping[str, Any] | None, *, index: int = 0) -> nn.Module:
    """Load classifier ``index`` (default the first, as the reference demo) of a probe file into the probe for
    ``cfg``, in eval mode on CPU.

    ``cfg=None`` uses the config :func:`save_probe` embeds in the project's own files (released files carry
    none). The file is read with ``torch.load(weights_only=True)``; loading is strict.

    Raises:
        ProbeLoadError: unreadable/unsafe/truncated file, not a probe file, a probe of the other kind
            (classification vs anticipation), or missing / unexpected / mis-shaped keys (all named, with the
            probe the file holds next to the configured one).
    """
    raw = _read_probe_file(path)
    sd = read_probe_state(raw, index)
    if cfg is None:
        meta = raw.get("vjepa2_ros")
        if not isinstance(meta, Mapping) or not isinstance(meta.get("probe_config"), Mapping):
            raise ProbeLoadError(f"{path}: the file carries no probe config (released probes do not): pass a "
                                 "ProbeConfig (see PROBE_PRESETS / infer_probe_config)")
        cfg = meta["probe_config"]
    try:
        cfg = _as_probe_config(cfg)
    except ConfigError as e:
        raise ProbeLoadError(f"{path}: invalid probe config: {e}") from None
    kind = _file_kind(sd)
    try:
        found = _infer_from_state(sd, cfg.num_heads).describe()
    except (ProbeLoadError, ConfigError) as e:
        found = f"unrecognised ({e})"
    if kind is None:
        raise ProbeLoadError(f"{path}: classifiers[{index}] has no classifier head (linear.* or "
                             "action_classifier.*): not an attentive probe")
    if kind != cfg.kind:
        raise ProbeLoadError(f"{path}: the file holds: {found}; the config describes: {cfg.describe()}")
    probe = build_probe(cfg, init=False)
    missing, unexpected, shaped = state_dict_diff(probe, sd)
    if missing or unexpected or shaped:
        lines = [f"{path}: probe weights do not match the configured probe",
                 f"  configured: {cfg.describe()}", f"  file holds: {found}"]
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", shaped)):
            if keys:
                shown = ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "")
                lines.append(f"  {label}: {shown}")
        raise ProbeLoadError("\n".join(lines))
    probe.load_state_dict(sd, strict=True)
    return probe.eval()


def save_probe(path: PathLike, probes: nn.Module | Sequence[nn.Module], *, epoch: int = 0, batch_size: int = 0,
               opt: Sequence[Mapping[str, Any]] | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write probes in the released layout (``classifiers`` with ``module.`` keys, ``opt``, ``scaler``, ``epoch``,
    ``batch_size``, ``world_size``) plus ``vjepa2_ros.probe_config`` (the first probe's config) so that
    ``load_probe(path, None)`` works. The reference reads the file too. Written atomically."""
    probes = [probes] if isinstance(probes, nn.Module) else list(probes)
    if not probes:
        raise ValueError("save_probe: no probes given")
    out: dict[str, Any] = {
        "classifiers": [{"module." + k: v.detach().cpu() for k, v in p.state_dict().items()} for p in probes],
        "opt": [dict(o) for o in opt] if opt is not None else [],
        "scaler": None, "epoch": int(epoch), "batch_size": int(batch_size), "world_size": 1,
    }
    cfg = getattr(probes[0], "cfg", None)
    if isinstance(cfg, ProbeConfig):
        out["vjepa2_ros"] = {"probe_config": cfg.to_dict()}
    if extra:
        clash = set(extra) & set(out)
        if clash:
            raise ValueError(f"save_probe: extra keys {sorted(clash)} would overwrite probe file entries")
        out.update(extra)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    try:
        torch.save(out, tmp)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves the old file (if any) as it was
        raise
    return p


# ---------------------------------------------------------------------------------------------------------
# Evaluation protocol

def _first_param(module: Any) -> torch.Tensor | None:
    if isinstance(module, nn.Module):
        for p in module.parameters():
            return p
    return None


def _to_module(x: torch.Tensor, module: Any) -> torch.Tensor:
    """Move ``x`` to the module's device (and floating dtype)."""
    p = _first_param(module)
    if p is None:
        return x
    return x.to(device=p.device, dtype=p.dtype if p.dtype.is_floating_point else x.dtype)


def _tubelet(encoder: Any) -> int:
    return int(getattr(encoder, "tubelet_size", None) or getattr(getattr(encoder, "cfg", None), "tubelet_size", 2))


def _patch(encoder: Any) -> int:
    return int(getattr(encoder, "patch_size", None) or getattr(getattr(encoder, "cfg", None), "patch_size", 16))


def _encode(encoder: Any, x: torch.Tensor, out_layers: Sequence[int] | None, batch_size: int | None) -> torch.Tensor:
    """Encoder tokens ``[B, N, D]``; with ``out_layers`` the listed layers' normalised tokens concatenated along
    the token axis ``[B, L*N, D]``, as the reference multi-level wrapper does (Diving-48 probes)."""
    step = x.shape[0] if not batch_size or batch_size <= 0 else batch_size
    outs = []
    for i in range(0, x.shape[0], step):
        chunk = x[i:i + step]
        if out_layers is None:
            outs.append(encoder(chunk))
        else:
            layers = encoder(chunk, out_layers=list(out_layers))
            if len(layers) != len(out_layers):
                raise ValueError(f"out_layers {list(out_layers)}: the encoder returned {len(layers)} layers "
                                 f"(it has {len(getattr(encoder, 'blocks', []))} blocks)")
            outs.append(torch.cat(list(layers), dim=1))
    return torch.cat(outs, dim=0)


def _check_clips(clips: torch.Tensor | Sequence[Sequence[torch.Tensor]]) -> list[list[torch.Tensor]]:
    if isinstance(clips, torch.Tensor):
        clips = [[clips]]
    if not isinstance(clips, Sequence) or not clips or not all(isinstance(s, Sequence) and s for s in clips):
        raise ValueError("clips must be clips[segment][view] (non-empty lists of [B, 3, F, H, W] tensors)")
    views = {len(s) for s in clips}
    if len(views) != 1:
        raise ValueError(f"every segment needs the same number of views; got {sorted(views)}")
    shapes = {tuple(c.shape) if isinstance(c, torch.Tensor) else None for s in clips for c in s}
    if None in shapes:
        raise ValueError("clips must hold torch tensors")
    if len(shapes) != 1:
        raise ValueError(f"all clips must have one shape [B, 3, F, H, W]; got {sorted(shapes)}")
    shape = shapes.pop()
    if len(shape) != 5 or shape[1] != 3:
        raise ValueError(f"each clip must be [B, 3, F, H, W]; got {list(shape)}")
    return [list(s) for s in clips]


def clip_features(encoder: nn.Module, clips: torch.Tensor | Sequence[Sequence[torch.Tensor]], *,
                  out_layers: Sequence[int] | None = None, batch_size: int | None = None) -> list[torch.Tensor]:
    """Per-view probe inputs for ``clips[segment][view]`` (each ``[B, 3, F, H, W]``, already normalised).

    Every clip is encoded separately; for each view the segments' tokens are concatenated along time:
    ``V`` tensors ``[B, S * (F/tubelet) * h * w, D]`` (times ``len(out_layers)`` with multi-level features).
    The encoder is frozen: no gradients. ``batch_size`` bounds how many clips one encoder call sees (the
    results do not depend on it). A single tensor counts as one segment with one view.
    """
    clips = _check_clips(clips)
    num_seg, num_views = len(clips), len(clips[0])
    b, _, f, _, _ = clips[0][0].shape
    tubelet = _tubelet(encoder)
    if f % tubelet:
        raise ValueError(f"clips have {f} frames, not a multiple of the encoder's tubelet size {tubelet}")
    t = f // tubelet
    # Segment-major, then view, then batch: the reference's order (one batch, sliced back below).
    x = torch.cat([torch.cat(seg, dim=0) for seg in clips], dim=0)
    with torch.no_grad():
        tokens = _encode(encoder, _to_module(x, encoder), out_layers, batch_size)  # [S*V*B, N, D]
    n, d = tokens.shape[1], tokens.shape[2]
    spatial = n // t
    per_view = []
    for j in range(num_views):
        segs = [tokens[(i * num_views + j) * b:(i * num_views + j + 1) * b].reshape(b, t, spatial, d)
                for i in range(num_seg)]
        per_view.append(torch.cat(segs, dim=1).flatten(1, 2))
    return per_view


def _probe_width(probe: nn.Module) -> int | None:
    q = getattr(getattr(probe, "pooler", None), "query_tokens", None)
    return int(q.shape[-1]) if isinstance(q, torch.Tensor) else None


def _check_width(tokens: torch.Tensor, probe: nn.Module) -> None:
    width = _probe_width(probe)
    if width is not None and tokens.shape[-1] != width:
        raise ValueError(f"encoder tokens are {tokens.shape[-1]} wide but the probe expects {width}: the probe "
                         "was trained on another encoder")


def classify(encoder: nn.Module, probe: nn.Module, clips: torch.Tensor | Sequence[Sequence[torch.Tensor]], *,
             out_layers: Sequence[int] | None = None, batch_size: int | None = None) -> torch.Tensor:
    """Class probabilities ``[B, C]`` for ``clips[segment][view]`` (each ``[B, 3, F, H, W]``, normalised):
    :func:`clip_features`, the probe on each view, softmax averaged over views (the reference evaluation).

    ``out_layers`` selects multi-level encoder features (the Diving-48 probes; see :data:`PROBE_PRESETS`).
    """
    if not isinstance(probe, AttentiveClassifier):
        raise ValueError(f"classify needs a classification probe (AttentiveClassifier), got {type(probe).__name__}"
                         "; use anticipate() for anticipation probes")
    feats = clip_features(encoder, clips, out_layers=out_layers, batch_size=batch_size)
    _check_width(feats[0], probe)
    with torch.no_grad():
        total = None
        for f in feats:
            p = F.softmax(probe(_to_module(f, probe)), dim=1)
            total = p if total is None else total + p
    return total / len(feats)


def _times_tensor(times: float | Sequence[float] | torch.Tensor, batch: int) -> torch.Tensor:
    t = times if isinstance(times, torch.Tensor) else torch.as_tensor(times, dtype=torch.float32)
    if not t.is_floating_point():
        t = t.to(torch.float32)
    if t.dim() == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"times must be a scalar or [B] = [{batch}] seconds; got shape {list(t.shape)}")
    if not torch.isfinite(t).all() or (t < 0).any():
        raise ValueError(f"anticipation times must be finite and >= 0 seconds; got {t.tolist()}")
    return t


def anticipation_features(encoder: nn.Module, predictor: nn.Module, video: torch.Tensor,
                          times: float | Sequence[float] | torch.Tensor, frames_per_second: float, *,
                          num_output_frames: int = 2, num_steps: int = 1,
                          mask_index: int = ANTICIPATION_MASK_INDEX) -> torch.Tensor:
    """The reference ``AnticipativeWrapper``: ``[B, N + num_steps * n_pred, D]`` probe input for the observed
    ``video[B, 3, F, H, W]`` (normalised) and anticipation ``times`` (seconds, scalar or ``[B]``).

    The encoder gives the context's N tokens (token indices 0..N-1). The pretraining predictor (a
    :class:`~vjepa_core.models.PretrainPredictor` configured for this resolution) then fills in
    ``n_pred = h*w * (max(num_output_frames, tubelet) // tubelet)`` tokens at indices ``N + h*w*k + 0..n_pred-1``
    with ``k = int(t * frames_per_second / tubelet)`` (the tubelet ``t`` seconds after the clip), using learnable
    mask token ``mask_index`` (1: the reference predictor's default). With ``num_steps > 1`` the prediction is
    repeated with the context window shifted by the predicted tokens, target positions unchanged, as the
    reference does. No gradients.

    Raises:
        ValueError: bad shapes/times, a predictor built for another grid or encoder width, or a horizon past
            the predictor's ``num_frames`` (the reference cannot index those positions either).
    """
    if not isinstance(video, torch.Tensor) or video.dim() != 5 or video.shape[1] != 3:
        raise ValueError(f"video must be [B, 3, F, H, W]; got {list(getattr(video, 'shape', []))}")
    if frames_per_second <= 0:
        raise ValueError(f"frames_per_second must be > 0, got {frames_per_second}")
    if num_steps < 1 or num_output_frames < 1:
        raise ValueError(f"num_steps and num_output_frames must be >= 1; got {num_steps}, {num_output_frames}")
    b, _, f, h, w = video.shape
    tubelet, patch = _tubelet(encoder), _patch(encoder)
    if f % tubelet or h % patch or w % patch:
        raise ValueError(f"video {list(video.shape)} must have frames divisible by tubelet {tubelet} and H, W by "
                         f"patch size {patch}")
    hw = (h // patch) * (w // patch)
    pgrid = (getattr(predictor, "grid_h", None), getattr(predictor, "grid_w", None))
    if None not in pgrid and pgrid != (h // patch, w // patch):
        raise ValueError(f"the predictor is configured for a {pgrid[0]}x{pgrid[1]} token grid but the video gives "
                         f"{h // patch}x{w // patch}: build it with img_size=({h}, {w})")
    t = _times_tensor(times, b).to(video.device)
    with torch.no_grad():
        x = _to_module(encoder(_to_module(video, encoder)), predictor)  # [B, N, D], the predictor's dtype
        n, d = x.shape[1], x.shape[2]
        in_width = getattr(getattr(predictor, "predictor_embed", None), "in_features", d)
        if in_width != d:
            raise ValueError(f"encoder tokens are {d} wide but the predictor expects {in_width}")
        steps = (t * frames_per_second / tubelet).to(torch.int64).to(x.device)  # reference: truncation
        n_pred = hw * (max(num_output_frames, tubelet) // tubelet)
        ctx = torch.arange(n, device=x.device).unsqueeze(0).repeat(b, 1)
        tgt = torch.arange(n_pred, device=x.device).unsqueeze(0) + (n + hw * steps).unsqueeze(1)
        capacity = getattr(predictor, "num_patches", None)
        if capacity is not None and int(tgt.max()) >= capacity:
            frames = getattr(getattr(predictor, "cfg", None), "num_frames", "?")
            raise ValueError(f"anticipation to {t.max().item():g} s at {frames_per_second:g} fps needs latent frame "
                             f"{int(tgt.max()) // hw}, past the predictor's num_frames {frames} "
                             f"({capacity // hw} latent frames): use a shorter horizon or clip, or a predictor "
                             "config with more num_frames")
        acc, ctx_tokens = x, x
        for _ in range(num_steps):
            pred = predictor(ctx_tokens, ctx, tgt, mask_index=mask_index)
            acc = torch.cat([acc, pred], dim=1)
            ctx_tokens = torch.cat([ctx_tokens[:, n_pred:], pred], dim=1)
    return acc


def anticipate(encoder: nn.Module, predictor: nn.Module, probe: nn.Module, video: torch.Tensor,
               times: float | Sequence[float] | torch.Tensor, frames_per_second: float, *,
               num_output_frames: int = 2, num_steps: int = 1) -> dict[str, torch.Tensor]:
    """Anticipated ``{"verb": [B, V], "noun": [B, Nn], "action": [B, A]}`` logits (``"action"`` only for an
    action-only probe): :func:`anticipation_features` then the anticipation probe."""
    if not isinstance(probe, AnticipationClassifier):
        raise ValueError(f"anticipate needs an anticipation probe (AnticipationClassifier), got "
                         f"{type(probe).__name__}; use classify() for classification probes")
    feats = anticipation_features(encoder, predictor, video, times, frames_per_second,
                                  num_output_frames=num_output_frames, num_steps=num_steps)
    _check_width(feats, probe)
    with torch.no_grad():
        return probe(_to_module(feats, probe))


# ---------------------------------------------------------------------------------------------------------
# Released probes

#: Where the reference publishes the probes (``<base>/<file name>``).
PROBE_URL_BASE = "https://dl.fbaipublicfiles.com/vjepa2/evals/"

_CLS = {"task": "classification", "num_heads": 16, "depth": 4, "encoder_key": "target_encoder"}
_ANT = {"task": "anticipation", "num_heads": 16, "depth": 4, "encoder_key": "target_encoder",
        "frames_per_clip": 32, "frames_per_second": 8, "anticipation_time": 1.0, "num_output_frames": 2,
        "num_steps": 1, "num_segments": 1, "num_views_per_segment": 1, "out_layers": None,
        # the pretraining predictor as the EK100 eval configs build it (checkpoint key "predictor")
        "predictor": {"num_frames": 64, "depth": 12, "num_heads": 12, "predictor_embed_dim": 384,
                      "num_mask_tokens": 10},
        # class ids are the training CSV's unique verbs / nouns / (verb, noun) pairs: read them from the file
        "verb_classes": None, "noun_classes": None, "action_classes": None}

#: The released probes (reference ``configs/inference/{vitl,vitg-384}/*.yaml``), keyed by file name.
#: ``encoder_preset`` is a :data:`vjepa_core.config.ENCODER_PRESETS` name, ``encoder_checkpoint`` the released
#: encoder file it was trained on; ``frame_step`` is the frame stride when sampling a clip from a video;
#: ``out_layers`` (Diving-48) are the encoder blocks whose normalised tokens feed the probe.
PROBE_PRESETS: dict[str, dict[str, Any]] = {
    "ssv2-vitl-16x2x3.pt": {
        **_CLS, "dataset": "Something-Something v2", "encoder_preset": "vit_large", "encoder_checkpoint": "vitl.pt",
        "resolution": 256, "frames_per_clip": 16, "frame_step": 4, "num_segments": 2, "num_views_per_segment": 3,
        "num_classes": 174, "out_layers": None, "paper_result": "SSv2 top-1 73.7 (paper Table 4)"},
    "ssv2-vitg-384-64x2x3.pt": {
        **_CLS, "dataset": "Something-Something v2", "encoder_preset": "vit_giant_384",
        "encoder_checkpoint": "vitg-384.pt", "resolution": 384, "frames_per_clip": 64, "frame_step": 2,
        "num_segments": 2, "num_views_per_segment": 3, "num_classes": 174, "out_layers": None,
        "paper_result": "SSv2 top-1 77.3 (paper Table 4)"},
    "diving48-vitl-256.pt": {
        **_CLS, "dataset": "Diving-48", "encoder_preset": "vit_large", "encoder_checkpoint": "vitl.pt",
        "resolution": 256, "frames_per_clip": 32, "frame_step": 2, "num_segments": 4, "num_views_per_segment": 3,
        "num_classes": 48, "out_layers": [17, 19, 21, 23], "paper_result": "Diving-48 top-1 89.0 (paper Table 4)"},
    "diving48-vitg-384-32x4x3.pt": {
        **_CLS, "dataset": "Diving-48", "encoder_preset": "vit_giant_384", "encoder_checkpoint": "vitg-384.pt",
        "resolution": 384, "frames_per_clip": 32, "frame_step": 2, "num_segments": 4, "num_views_per_segment": 3,
        "num_classes": 48, "out_layers": [24, 29, 34, 39], "paper_result": "Diving-48 top-1 90.2 (paper Table 4)"},
    "ek100-vitl-256.pt": {
        **_ANT, "dataset": "Epic-Kitchens-100 (anticipation)", "encoder_preset": "vit_large",
        "encoder_checkpoint": "vitl.pt", "resolution": 256,
        "paper_result": "EK100 action recall@5 32.7 (paper Table 5)"},
    "ek100-vitg-384.pt": {
        **_ANT, "dataset": "Epic-Kitchens-100 (anticipation)", "encoder_preset": "vit_giant_384",
        "encoder_checkpoint": "vitg-384.pt", "resolution": 384,
        "paper_result": "EK100 action recall@5 39.7 (paper Table 5)"},
}


@dataclass(frozen=True)
class PresetConfigs:
    """Everything to load and run a released probe (see :func:`preset_configs`)."""

    name: str
    encoder: EncoderConfig
    predictor: PretrainPredictorConfig | None
    probe: ProbeConfig
    settings: dict[str, Any]


def preset_configs(name: str, probe_path: PathLike | None = None) -> PresetConfigs:
    """Encoder / pretraining-predictor / probe configs for released probe ``name`` (a :data:`PROBE_PRESETS` key;
    a path's file name works too).

    The EK100 class counts are not fixed in the reference configs (they come from the training CSV), so the
    anticipation presets read them from ``probe_path``; classification presets check ``probe_path`` if given.
    """
    key = Path(str(name)).name
    if key not in PROBE_PRESETS:
        raise ConfigError(f"unknown probe preset {name!r}; choose from {sorted(PROBE_PRESETS)}")
    s = PROBE_PRESETS[key]
    enc_base = ENCODER_PRESETS[s["encoder_preset"]]
    encoder = EncoderConfig.preset(s["encoder_preset"], img_size=s["resolution"], num_frames=s["frames_per_clip"])
    predictor = None
    common = {"embed_dim": enc_base["embed_dim"], "num_heads": s["num_heads"], "depth": s["depth"]}
    if s["task"] == "anticipation":
        predictor = PretrainPredictorConfig.preset(s["encoder_preset"], img_size=s["resolution"], **s["predictor"])
        if probe_path is None:
            raise ConfigError(f"{key}: the EK100 class counts are read from the probe file: pass probe_path")
        found = infer_probe_config(probe_path, num_heads=s["num_heads"])
        probe = ProbeConfig(verb_classes=found.verb_classes, noun_classes=found.noun_classes,
                            action_classes=found.action_classes, **common)
    else:
        probe = ProbeConfig(num_classes=s["num_classes"], **common)
    if probe_path is not None:
        found = infer_probe_config(probe_path, num_heads=s["num_heads"])
        if found != probe:
            raise ProbeLoadError(f"{probe_path}: the file holds: {found.describe()}; preset {key} is: "
                                 f"{probe.describe()}")
    return PresetConfigs(key, encoder, predictor, probe, dict(s))
