"""Distributed helpers: the world from ``torchrun``'s environment, DDP / FSDP wrapping, rank-0 guards.

Launch with ``torchrun`` (``python -m torch.distributed.run``); there is no home-made launcher. Without the
torchrun variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) training runs as a single process.
Backend: NCCL on CUDA, gloo on CPU (``dist.backend: auto``).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .config import DistConfig

__all__ = ["World", "all_reduce_mean", "barrier", "init_world", "shutdown", "wrap_model"]


@dataclass
class World:
    """Where this process stands: rank, world size, local rank, device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on rank 0, which logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def _pick_device(device: str, local_rank: int) -> torch.device:
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device: cuda requested but CUDA is not available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_world(cfg: DistConfig, device: str = "auto") -> World:
    """Initialise the process group from torchrun's environment (or a single-process world)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = cfg.backend
        if backend == "auto":
            backend = "nccl" if dev.type == "cuda" else "gloo"
        if backend == "nccl" and dev.type != "cuda":
            raise RuntimeError("dist.backend nccl needs CUDA devices; use gloo on CPU")
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=cfg.timeout_s),
                                device_id=dev if dev.type == "cuda" else None)
    return World(rank, world_size, local_rank, dev)


def shutdown() -> None:
    """Tear down the process group if one was started."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    """Wait for every process (no-op in a single process)."""
    if world.distributed:
        dist.barrier()


def all_reduce_mean(values: torch.Tensor, world: World) -> torch.Tensor:
    """Mean of ``values`` over processes (a copy; single-process: unchanged)."""
    if not world.distributed:
        return values
    out = values.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world.world_size


def wrap_model(model: nn.Module, world: World, strategy: str, shard_blocks: list[nn.Module] | None = None) -> Any:
    """Wrap the trainable module for data parallelism.

    ``ddp``: ``DistributedDataParallel`` (gradients all-reduced; parameters replicated). ``fsdp``: FSDP2
    ``fully_shard`` on each transformer block in ``shard_blocks`` and then the whole module (parameters,
    gradients and optimizer state sharded across processes, for ViT-g). A single process gets the module back.
    """
    if not world.distributed:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for blk in shard_blocks or []:
            fully_shard(blk)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [world.device.index] if world.device.type == "cuda" else None
    return DDP(model, device_ids=ids)
