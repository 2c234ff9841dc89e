"""Inspect a V-JEPA 2 ``.pt`` checkpoint without building the full model: what is in it, which released
architecture it is, and how it differs from a given config (for ``vjepa-export inspect CKPT``).

Architecture detection compares the file's (prefix-stripped) key shapes with every released preset built on
torch's meta device (no memory allocated), so it needs neither the fixtures nor a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .checkpoint import clean_key, read_checkpoint
from .config import (
    AC_PREDICTOR_PRESETS,
    ENCODER_PRESETS,
    ACPredictorConfig,
    EncoderConfig,
    PretrainPredictorConfig,
)

__all__ = ["CheckpointReport", "SectionReport", "format_report", "inspect_checkpoint"]

_SECTIONS = ("encoder", "target_encoder", "predictor")


@dataclass
class SectionReport:
    """One state-dict section (``encoder``, ``target_encoder`` or ``predictor``) of a checkpoint."""

    name: str
    num_tensors: int
    num_params: int
    prefixes: list[str]
    detected_arch: str | None
    compared_to: str | None = None
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, list[int], list[int]]] = field(default_factory=list)

    @property
    def matches(self) -> bool | None:
        """True/False against the config it was compared to; None when not compared."""
        if self.compared_to is None:
            return None
        return not (self.missing or self.unexpected or self.mismatched)


@dataclass
class CheckpointReport:
    """What :func:`inspect_checkpoint` found."""

    path: str
    file_size: int
    top_level_keys: list[str]
    scalars: dict[str, Any]
    sections: dict[str, SectionReport]

    @property
    def ok(self) -> bool:
        """False if any compared section has missing, unexpected or mis-shaped keys."""
        return all(s.matches is not False for s in self.sections.values())


def _shapes(model: nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def _candidates() -> dict[str, tuple[str, dict[str, list[int]]]]:
    """Released presets as ``name -> (kind, key shapes)``, built on the meta device."""
    from .models import build_ac_predictor, build_encoder, build_pretrain_predictor

    out: dict[str, tuple[str, dict[str, list[int]]]] = {}
    with torch.device("meta"):
        for name in ENCODER_PRESETS:
            out[name] = ("encoder", _shapes(build_encoder(EncoderConfig.preset(name))))
            out[f"pretrain_predictor[{name}]"] = (
                "predictor", _shapes(build_pretrain_predictor(PretrainPredictorConfig.preset(name))))
        for name in AC_PREDICTOR_PRESETS:
            out[f"ac_predictor[{name}]"] = ("predictor", _shapes(build_ac_predictor(ACPredictorConfig.preset(name))))
    return out


def _detect(shapes: dict[str, list[int]], candidates: dict[str, tuple[str, dict[str, list[int]]]]) -> str | None:
    """Preset whose key shapes equal ``shapes`` (a stray ``pos_embed`` tolerated), else a description."""
    trimmed = {k: v for k, v in shapes.items() if k != "pos_embed"}
    for name, (_, want) in candidates.items():
        if want == trimmed:
            # 256 and 384 px giants have identical shapes: RoPE has no resolution-dependent parameter.
            return "vit_giant or vit_giant_384" if name in ("vit_giant", "vit_giant_384") else name
    return _describe(trimmed)


def _describe(shapes: dict[str, list[int]]) -> str | None:
    """Best-effort description of a non-preset architecture from its key shapes."""
    if "patch_embed.proj.weight" in shapes:
        d = shapes["patch_embed.proj.weight"][0]
        depth = len({k.split(".")[1] for k in shapes if k.startswith("blocks.")})
        return f"custom encoder (embed_dim {d}, depth {depth})"
    if "predictor_embed.weight" in shapes:
        pd, d = shapes["predictor_embed.weight"]
        depth = len({k.split(".")[1] for k in shapes if k.startswith("predictor_blocks.")})
        kind = "AC predictor" if "action_encoder.weight" in shapes else "pretraining predictor"
        return f"custom {kind} (width {pd}, depth {depth}, encoder width {d})"
    return None


def _compare(rep: SectionReport, shapes: dict[str, list[int]], want: dict[str, list[int]], label: str) -> None:
    rep.compared_to = label
    rep.missing = sorted(set(want) - set(shapes))
    rep.unexpected = sorted(k for k in set(shapes) - set(want) if k != "pos_embed")
    rep.mismatched = sorted((k, shapes[k], want[k]) for k in set(shapes) & set(want) if shapes[k] != want[k])


def _config_shapes(cfg: Any, kind: str) -> tuple[str, dict[str, list[int]]]:
    """(label, key shapes) for a config object / preset name / dict of the given kind."""
    from .models import build_ac_predictor, build_encoder, build_pretrain_predictor

    with torch.device("meta"):
        if kind == "encoder":
            c = EncoderConfig.preset(cfg) if isinstance(cfg, str) else (
                cfg if isinstance(cfg, EncoderConfig) else EncoderConfig.from_dict(cfg))
            return (cfg if isinstance(cfg, str) else "given EncoderConfig"), _shapes(build_encoder(c))
        if isinstance(cfg, PretrainPredictorConfig):
            return "given PretrainPredictorConfig", _shapes(build_pretrain_predictor(cfg))
        c = ACPredictorConfig.preset(cfg) if isinstance(cfg, str) else (
            cfg if isinstance(cfg, ACPredictorConfig) else ACPredictorConfig.from_dict(cfg))
        return (f"ac_predictor[{cfg}]" if isinstance(cfg, str) else "given ACPredictorConfig"), \
            _shapes(build_ac_predictor(c))


def inspect_checkpoint(path: str | os.PathLike, encoder_cfg: EncoderConfig | str | dict | None = None,
                       predictor_cfg: ACPredictorConfig | PretrainPredictorConfig | str | dict | None = None,
                       ) -> CheckpointReport:
    """Report a checkpoint's top-level keys, per-section parameter counts, detected architecture and, when a
    config is given, missing/unexpected/mis-shaped keys against it. Reads with ``weights_only=True``
    (memory-mapped when possible), raising :class:`vjepa_core.checkpoint.CheckpointError` on unsafe files."""
    ckpt = read_checkpoint(path, mmap=True)
    candidates = _candidates()
    enc_want = _config_shapes(encoder_cfg, "encoder") if encoder_cfg is not None else None
    pred_want = _config_shapes(predictor_cfg, "predictor") if predictor_cfg is not None else None
    sections: dict[str, SectionReport] = {}
    for name in _SECTIONS:
        sd = ckpt.get(name)
        if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            continue
        shapes = {clean_key(k): list(v.shape) for k, v in sd.items()}
        prefixes = sorted({k[: len(k) - len(clean_key(k))] for k in sd if k != clean_key(k)}) or [""]
        rep = SectionReport(name=name, num_tensors=len(sd), num_params=sum(v.numel() for v in sd.values()),
                            prefixes=prefixes, detected_arch=_detect(shapes, candidates))
        want = pred_want if name == "predictor" else enc_want
        if want is not None:
            _compare(rep, shapes, want[1], want[0])
        sections[name] = rep
    scalars = {k: v for k, v in ckpt.items() if isinstance(v, (int, float, str, bool))}
    return CheckpointReport(path=str(path), file_size=os.path.getsize(path),
                            top_level_keys=sorted(map(str, ckpt)), scalars=scalars, sections=sections)


def _fmt_list(label: str, items: list[Any], limit: int = 15) -> list[str]:
    if not items:
        return []
    lines = [f"    {label} ({len(items)}):"]
    for it in items[:limit]:
        lines.append(f"      {it[0]}: checkpoint {it[1]} vs config {it[2]}" if isinstance(it, tuple) else f"      {it}")
    if len(items) > limit:
        lines.append(f"      ... {len(items) - limit} more")
    return lines


def format_report(report: CheckpointReport) -> str:
    """Human-readable multi-line summary of a :class:`CheckpointReport`."""
    lines = [f"checkpoint: {report.path} ({report.file_size / 1e6:.1f} MB)",
             f"top-level keys: {', '.join(report.top_level_keys)}"]
    if report.scalars:
        lines.append("scalars: " + ", ".join(f"{k}={v}" for k, v in sorted(report.scalars.items())))
    if not report.sections:
        lines.append("no encoder/target_encoder/predictor state dict found")
    for s in report.sections.values():
        lines.append(f"[{s.name}] {s.num_tensors} tensors, {s.num_params:,} parameters, "
                     f"prefix {', '.join(repr(p) for p in s.prefixes)}")
        lines.append(f"    architecture: {s.detected_arch or 'unknown'}")
        if s.compared_to is not None:
            lines.append(f"    against {s.compared_to}: {'OK' if s.matches else 'MISMATCH'}")
            lines += _fmt_list("missing keys", s.missing)
            lines += _fmt_list("unexpected keys", s.unexpected)
            lines += _fmt_list("mis-shaped keys", s.mismatched)
    return "\n".join(lines)
