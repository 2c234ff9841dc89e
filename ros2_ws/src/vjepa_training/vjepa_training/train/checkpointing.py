"""Training checkpoints: atomic writes, ``latest.pt`` plus periodic copies, full resume state.

File layout (the released one, read by ``vjepa_core.checkpoint.load_official`` and the reference loaders)::

    encoder, target_encoder, predictor   state dicts, keys prefixed "module.backbone."
    epoch                                 epochs of data consumed (int)
    vjepa2_ros                            {encoder_config, predictor_type, predictor_config} (plain dicts)
    opt, scaler                           optimizer / GradScaler state (scaler None unless float16)
    step, loss, lr, batch_size, world_size
    rng                                   {"torch": cpu RNG state, "cuda": [per-device states]}
    data                                  {"position": samples consumed, "global_batch", "seed"}
    config, kind                          the resolved run config, "pretrain" / "posttrain"

Written by ``vjepa_core.checkpoint.save_state_dicts`` (the one writer of the released layout): to
``<name>.tmp`` in the same directory, fsynced, then ``os.replace``d over the target, so a kill at any moment
leaves either the old or the new file, never a torn one. Loading uses
``torch.load(weights_only=True)`` (no arbitrary objects are unpickled).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vjepa_core.checkpoint import (
    CheckpointError,
    clean_key,
    load_state_dict_strict,
    read_checkpoint,
    save_state_dicts,
)

__all__ = [
    "LATEST",
    "ResumeError",
    "clear_checkpoints",
    "find_resume",
    "full_model_state",
    "load_model_state",
    "plan_resume",
    "rng_state",
    "set_rng_state",
    "write_checkpoint",
]

LATEST = "latest.pt"


def _is_fsdp(module: nn.Module) -> bool:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - old torch
        return False
    return isinstance(module, FSDPModule) or any(isinstance(m, FSDPModule) for m in module.modules())


def full_model_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Full (unsharded) CPU state dict of ``module``; a collective call under FSDP (every rank must call)."""
    if _is_fsdp(module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def load_model_state(module: nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """Load a (prefixed or bare) state dict strictly into ``module`` (FSDP: broadcast from the full dict)."""
    sd = {clean_key(k): v for k, v in sd.items()}
    if _is_fsdp(module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(module, sd, options=StateDictOptions(full_state_dict=True, strict=True))
        return
    load_state_dict_strict(module, sd, what)


def rng_state() -> dict[str, Any]:
    """Torch CPU and CUDA RNG states."""
    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` output (CUDA states only when the device count matches)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def write_checkpoint(run_dir: str | Path, *, encoder: dict[str, torch.Tensor],
                     target_encoder: dict[str, torch.Tensor], predictor: dict[str, torch.Tensor],
                     meta: dict[str, Any], state: dict[str, Any], step: int, keep: bool = False) -> Path:
    """Atomically write ``run_dir/latest.pt`` (rank 0 only) with ``vjepa_core.checkpoint.save_state_dicts``,
    the one writer of the released layout; ``state`` (optimizer, RNG, data position, ``epoch`` ...) and
    ``step`` are added beside the sections. With ``keep`` also keep ``run_dir/checkpoints/step_XXXXXXXX.pt``
    (a hard link when possible, else a copy)."""
    run = Path(run_dir)
    extra = {k: v for k, v in state.items() if k != "epoch"}
    extra["step"] = int(step)
    target = save_state_dicts(run / LATEST, encoder=encoder, target_encoder=target_encoder, predictor=predictor,
                              meta=meta, epoch=int(state.get("epoch", 0)), extra=extra)
    if keep:
        kept_dir = run / "checkpoints"
        kept_dir.mkdir(exist_ok=True)
        kept = kept_dir / f"step_{int(step):08d}.pt"
        part = kept.with_name(kept.name + ".tmp")
        part.unlink(missing_ok=True)
        try:
            os.link(target, part)
        except OSError:
            shutil.copyfile(target, part)
        os.replace(part, kept)
    return target


class ResumeError(ValueError):
    """The run directory and the resume settings disagree: a checkpoint is there but resuming is off."""


def find_resume(run_dir: str | Path, kind: str | None = None) -> dict[str, Any] | None:
    """The checkpoint to resume from (``run_dir/latest.pt``), read safely and verified (CRC of every member, so
    a truncated or damaged file is named as such); None if the run has none.

    Raises:
        CheckpointError: unreadable, truncated or corrupt file, not a vjepa-train checkpoint, or one of another
            ``kind`` (a pretrain checkpoint in a post-training run).
    """
    p = Path(run_dir) / LATEST
    if not p.exists():
        return None
    ckpt = read_checkpoint(p, verify=True)
    for key in ("encoder", "target_encoder", "predictor", "opt", "step"):
        if key not in ckpt:
            raise CheckpointError(f"{p} is not a vjepa-train checkpoint (no {key!r}); cannot resume from it")
    if kind is not None and ckpt.get("kind") not in (None, kind):
        raise CheckpointError(f"{p} is a {ckpt.get('kind')} checkpoint, not {kind}: cannot resume from it "
                              "(use another run directory)")
    return ckpt


def plan_resume(run_dir: str | Path, *, resume: bool, overwrite: bool, kind: str) -> dict[str, Any] | None:
    """What a run starting in ``run_dir`` resumes from, decided before the run directory is touched.

    No ``latest.pt``: None (a fresh run). ``overwrite``: None (the run starts over at step 0 and replaces it).
    ``resume``: the verified checkpoint (:func:`find_resume`). Otherwise (``checkpoint.resume: false``) the run
    would silently restart from step 0 and overwrite the checkpoint, so it is refused.

    Raises:
        ResumeError: a checkpoint exists, resuming is off and ``overwrite`` was not asked for.
        CheckpointError: the checkpoint to resume from is unreadable, truncated, corrupt or of another kind.
    """
    p = Path(run_dir) / LATEST
    if not p.exists() or overwrite:
        return None
    if not resume:
        raise ResumeError(f"{p} exists and checkpoint.resume is false: refusing to restart from step 0 over it; "
                          "pass --overwrite to start over and replace it, set checkpoint.resume: true to continue "
                          "it, or choose another --out")
    return find_resume(run_dir, kind)


def clear_checkpoints(run_dir: str | Path) -> list[Path]:
    """Remove ``latest.pt`` and the kept ``checkpoints/step_*.pt`` of a run that starts over (``--overwrite``),
    so that none of the old run's checkpoints can be resumed from or mistaken for the new run's. Returns them."""
    run = Path(run_dir)
    gone = [p for p in [run / LATEST, *sorted((run / "checkpoints").glob("step_*.pt"))] if p.exists()]
    for p in gone:
        p.unlink()
    return gone
