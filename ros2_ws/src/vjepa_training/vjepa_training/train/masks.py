"""Multiblock 3D masks for V-JEPA 2 pretraining (reference ``src/masks/multiseq_multiblock3d.py``).

For each mask generator (recipe: 8 blocks at spatial scale 0.15 and 2 blocks at 0.7, aspect ratio 0.75-1.5,
temporal scale 1.0) one block size ``(t, h, w)`` is drawn per step; every sample then places ``num_blocks``
blocks of that size at random positions. The target (predicted) tokens are the union of the blocks, the
context tokens its complement. Blocks span the full clip in time ("tube" masks) at temporal scale 1.

Masks are drawn for the whole *global* batch from a generator seeded by (seed, step), and each process takes
its rows, so a sample gets the same mask whatever the number of processes or accumulation steps. As in the
reference collator, index lists are truncated to the shortest one of each micro-batch so they stack.
Everything is vectorised (no per-sample Python loop): cheap even for a 3072-clip global batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import MaskBlockConfig

__all__ = ["BlockSample", "MaskSet", "MultiBlockMasks", "indices_of"]


@dataclass
class BlockSample:
    """Blocks of one generator for a batch: size ``(t, h, w)``, positions ``[B, n, 3]`` (start, top, left),
    and the resulting target-token boolean mask ``[B, T', H', W']``."""

    size: tuple[int, int, int]
    corners: torch.Tensor
    masked: torch.Tensor


@dataclass
class MaskSet:
    """Context (``enc``) and target (``pred``) token indices per generator, each ``[B, K]`` (ascending)."""

    enc: list[torch.Tensor]
    pred: list[torch.Tensor]


def indices_of(mask: torch.Tensor, keep: int) -> torch.Tensor:
    """First ``keep`` indices (ascending) of the True entries of each row of ``mask[B, N]`` -> ``[B, keep]``."""
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # True entries first, in index order
    return order[:, :keep]


class MultiBlockMasks:
    """Mask sampler over a token grid ``(T', H', W')`` for a list of generator configs."""

    def __init__(self, cfgs: list[MaskBlockConfig], grid: tuple[int, int, int], seed: int = 0) -> None:
        self.cfgs = cfgs
        self.grid = grid
        self.seed = int(seed)

    def _generator(self, step: int) -> torch.Generator:
        g = torch.Generator()
        g.manual_seed((self.seed * 1_000_003 + int(step) * 7919 + 12345) % (2**63 - 1))
        return g

    def block_size(self, cfg: MaskBlockConfig, g: torch.Generator) -> tuple[int, int, int]:
        """Reference ``_sample_block_size``: temporal/spatial scale and aspect ratio drawn uniformly."""
        d, hh, ww = self.grid
        r = torch.rand(3, generator=g).tolist()
        t_scale = cfg.temporal_scale[0] + r[0] * (cfg.temporal_scale[1] - cfg.temporal_scale[0])
        t = max(1, int(d * t_scale))
        s_scale = cfg.spatial_scale[0] + r[1] * (cfg.spatial_scale[1] - cfg.spatial_scale[0])
        keep = int(hh * ww * s_scale)
        ar = cfg.aspect_ratio[0] + r[2] * (cfg.aspect_ratio[1] - cfg.aspect_ratio[0])
        h = min(max(1, int(round(math.sqrt(keep * ar)))), hh)
        w = min(max(1, int(round(math.sqrt(keep / ar)))), ww)
        return (t, h, w)

    def _place(self, cfg: MaskBlockConfig, size: tuple[int, int, int], n_rows: int,
               g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Random block positions for ``n_rows`` samples -> (corners [B,n,3], masked [B,T',H',W'])."""
        d, hh, ww = self.grid
        t, h, w = size
        n = cfg.num_blocks
        u = torch.rand(n_rows, n, 3, generator=g)
        hi = torch.tensor([d - t + 1, hh - h + 1, ww - w + 1], dtype=torch.float32)
        corners = (u * hi).floor().long()  # [B, n, 3]
        ar_t, ar_h, ar_w = (torch.arange(k) for k in (d, hh, ww))
        in_t = (ar_t.view(1, 1, d) >= corners[..., 0:1]) & (ar_t.view(1, 1, d) < corners[..., 0:1] + t)
        in_h = (ar_h.view(1, 1, hh) >= corners[..., 1:2]) & (ar_h.view(1, 1, hh) < corners[..., 1:2] + h)
        in_w = (ar_w.view(1, 1, ww) >= corners[..., 2:3]) & (ar_w.view(1, 1, ww) < corners[..., 2:3] + w)
        blocks = in_t[..., :, None, None] & in_h[..., None, :, None] & in_w[..., None, None, :]  # [B,n,T,H,W]
        return corners, blocks.any(dim=1)

    def sample_blocks(self, step: int, batch_size: int) -> list[BlockSample]:
        """Blocks of every generator for a batch of ``batch_size`` samples at ``step`` (deterministic)."""
        g = self._generator(step)
        out = []
        d = self.grid[0]
        for cfg in self.cfgs:
            size = self.block_size(cfg, g)
            corners, masked = self._place(cfg, size, batch_size, g)
            if cfg.max_temporal_keep < 1.0:  # reference: context only in the first frames
                masked[:, max(1, int(d * cfg.max_temporal_keep)):] = True
            # Reference: a sample whose context would be empty is drawn again.
            for _ in range(100):
                empty = masked.flatten(1).all(dim=1)
                if not bool(empty.any()):
                    break
                c2, m2 = self._place(cfg, size, batch_size, g)
                corners[empty], masked[empty] = c2[empty], m2[empty]
            else:
                raise RuntimeError(f"mask config {cfg} leaves no context tokens on grid {self.grid}")
            out.append(BlockSample(size, corners, masked))
        return out

    def sample(self, step: int, global_batch: int, rows: slice | None = None) -> MaskSet:
        """Context/target indices for ``rows`` of the global batch at ``step``, truncated to stack."""
        enc, pred = [], []
        for bs in self.sample_blocks(step, global_batch):
            m = bs.masked.flatten(1)  # [G, N] True = target
            if rows is not None:
                m = m[rows]
            n_pred = int(m.sum(dim=1).min())
            n_enc = int((~m).sum(dim=1).min())
            enc.append(indices_of(~m, n_enc))
            pred.append(indices_of(m, n_pred))
        return MaskSet(enc, pred)
