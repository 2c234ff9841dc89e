"""Helpers shared by the two tasks: activation checkpointing, EMA, init-from-checkpoint."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from vjepa_core.checkpoint import CheckpointError, clean_key, load_state_dict_strict, read_checkpoint
from vjepa_core.models.modules import Block

__all__ = ["CheckpointedBlock", "enable_activation_checkpointing", "ema_update", "load_init"]


class CheckpointedBlock(Block):
    """A ``Block`` whose forward recomputes activations in backward (parameter names unchanged)."""

    def forward(self, x: torch.Tensor, pos: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Checkpointed ``Block.forward`` while training with gradients; plain otherwise."""
        if self.training and torch.is_grad_enabled():
            return checkpoint(super().forward, x, pos, attn_mask, use_reentrant=False)
        return super().forward(x, pos, attn_mask)


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Switch every transformer ``Block`` of ``model`` to :class:`CheckpointedBlock`; returns the count.

    The class is swapped in place, so state-dict keys (and the released checkpoint layout) stay the same.
    """
    n = 0
    for m in model.modules():
        if type(m) is Block:
            m.__class__ = CheckpointedBlock
            n += 1
    return n


def _reshard(module: nn.Module) -> None:
    """Put FSDP2 modules back into their sharded state (a root may stay unsharded after its forward)."""
    for m in module.modules():
        if hasattr(m, "reshard") and callable(m.reshard) and type(m).__name__.startswith("FSDP"):
            m.reshard()


def _local(p: torch.Tensor) -> torch.Tensor:
    return p.to_local() if hasattr(p, "to_local") else p


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target = m * target + (1 - m) * online`` over all parameters (fused foreach ops; FSDP2: on the
    local shards, both networks being sharded alike)."""
    _reshard(target)
    _reshard(online)
    tp = [_local(p) for p in target.parameters()]
    op = [_local(p.detach()) for p in online.parameters()]
    torch._foreach_mul_(tp, momentum)
    torch._foreach_add_(tp, op, alpha=1.0 - momentum)


def load_init(path: str, sections: dict[str, nn.Module]) -> dict[str, Any]:
    """Load ``{section: module}`` (strict) from checkpoint ``path`` (released or ours); returns the file."""
    ckpt = read_checkpoint(path)
    for key, module in sections.items():
        if key not in ckpt:
            raise CheckpointError(f"{path}: no {key!r} section to initialise from (it has {sorted(map(str, ckpt))})")
        sd = {clean_key(k): v for k, v in ckpt[key].items()}
        load_state_dict_strict(module, {k: v for k, v in sd.items() if k != "pos_embed"}, f"{path} [{key}]")
    return ckpt
