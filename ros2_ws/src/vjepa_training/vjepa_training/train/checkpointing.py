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

Writes go to ``<name>.tmp`` in the same directory, are fsynced, then ``os.replace``d over the target, so a
kill at any moment leaves either the old or the new file, never a torn one. Loading uses
``torch.load(weights_only=True)`` (no arbitrary objects are unpickled).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vjepa_core.checkpoint import SAVE_PREFIX, clean_key, load_state_dict_strict, read_checkpoint

__all__ = [
    "LATEST",
    "find_resume",
    "full_model_state",
    "load_model_state",
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


def _prefixed(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {SAVE_PREFIX + k: v for k, v in sd.items()}


def write_checkpoint(run_dir: str | Path, *, encoder: dict[str, torch.Tensor],
                     target_encoder: dict[str, torch.Tensor], predictor: dict[str, torch.Tensor],
                     meta: dict[str, Any], state: dict[str, Any], step: int, keep: bool = False) -> Path:
    """Atomically write ``run_dir/latest.pt`` (rank 0 only); with ``keep`` also keep
    ``run_dir/checkpoints/step_XXXXXXXX.pt`` (a hard link when possible, else a copy)."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "encoder": _prefixed(encoder),
        "target_encoder": _prefixed(target_encoder),
        "predictor": _prefixed(predictor),
        "vjepa2_ros": meta,
    }
    clash = set(state) & set(payload)
    if clash:
        raise ValueError(f"state keys {sorted(clash)} clash with model sections")
    payload.update(state)
    payload["step"] = int(step)
    target = run / LATEST
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
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


def find_resume(run_dir: str | Path) -> dict[str, Any] | None:
    """The checkpoint to resume from (``run_dir/latest.pt``), read safely; None if the run has none."""
    p = Path(run_dir) / LATEST
    if not p.exists():
        return None
    ckpt = read_checkpoint(p)
    for key in ("encoder", "target_encoder", "predictor", "opt", "step"):
        if key not in ckpt:
            raise RuntimeError(f"{p} is not a vjepa-train checkpoint (no {key!r}); cannot resume from it")
    return ckpt
