"""V-JEPA 2 pretraining: mask denoising in representation space (paper §2.1, reference ``app/vjepa/train.py``).

Per step and mask generator m: the context encoder sees only the context tokens ``masks_enc[m]`` of the
clip, the predictor fills the target positions ``masks_pred[m]`` with a learnable mask token and predicts
their representations; targets are the EMA ("target") encoder's output on the full clip, layer-normed
without affine, gathered at the target positions. Loss: ``mean(|z - h|^p) / p`` (p = 1, L1) averaged over
generators. After each optimizer step the target encoder follows the context encoder by EMA.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import torch
from torch import nn

from vjepa_core.checkpoint import clean_key
from vjepa_core.models import build_encoder, build_pretrain_predictor
from vjepa_core.tokens import normalize_tokens

from .checkpointing import full_model_state, load_model_state
from .common import ema_update, enable_activation_checkpointing, load_init
from .config import PretrainConfig
from .datasets import build_pretrain_dataset
from .distributed import wrap_model
from .engine import RunContext, Task, run
from .masks import MultiBlockMasks
from .metrics import feature_std
from .schedules import ema_momentum

__all__ = ["PretrainNet", "PretrainTask", "gather_tokens", "main", "masked_l1"]

log = logging.getLogger("vjepa_train")


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``x[B, N, D]``, ``ids[B, K]`` -> ``[B, K, D]``."""
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def masked_l1(preds: list[torch.Tensor], h: torch.Tensor, masks_pred: list[torch.Tensor],
              loss_exp: float = 1.0) -> torch.Tensor:
    """Reference loss: mean over generators of ``mean(|z - h[mask]|^p) / p``."""
    total = 0.0
    for z, ids in zip(preds, masks_pred):
        total = total + torch.mean(torch.abs(z - gather_tokens(h, ids)) ** loss_exp) / loss_exp
    return total / len(preds)


class PretrainNet(nn.Module):
    """Context encoder + predictor as one module, so DDP/FSDP wrap (and all-reduce) them together."""

    def __init__(self, encoder: nn.Module, predictor: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor

    def forward(self, video: torch.Tensor, masks_enc: list[torch.Tensor],
                masks_pred: list[torch.Tensor]) -> list[torch.Tensor]:
        """Predictions ``[B, K_m, D]`` of the target tokens for every mask generator m."""
        out = []
        for m, (me, mp) in enumerate(zip(masks_enc, masks_pred)):
            ctx = self.encoder(video, masks=me)  # [B, Kc, D] context tokens only
            out.append(self.predictor(ctx, me, mp, mask_index=m))
        return out


class PretrainTask(Task):
    """Networks, data and loss of V-JEPA 2 pretraining."""

    kind = "pretrain"
    columns = ["target_std"]

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.cfg: PretrainConfig = ctx.cfg

    def build_model(self) -> None:
        cfg, dev = self.cfg, self.ctx.world.device
        enc_cfg = cfg.model.encoder_config()
        pred_cfg = cfg.model.predictor_config()
        if pred_cfg.num_mask_tokens < len(cfg.masks):
            raise ValueError(f"predictor num_mask_tokens {pred_cfg.num_mask_tokens} < {len(cfg.masks)} mask "
                             "generators (one mask token per generator)")
        encoder = build_encoder(enc_cfg)
        predictor = build_pretrain_predictor(pred_cfg)
        target = copy.deepcopy(encoder)
        if cfg.model.init_from:
            load_init(cfg.model.init_from, {"encoder": encoder, "target_encoder": target, "predictor": predictor})
            log.info("initialised from %s", cfg.model.init_from)
        for tok in list(predictor.mask_tokens)[len(cfg.masks):]:
            tok.requires_grad_(False)  # one mask token per generator; the rest stay (released layout) unused
        if cfg.model.activation_checkpointing:
            enable_activation_checkpointing(encoder)
            enable_activation_checkpointing(predictor)
        target.requires_grad_(False).eval().to(dev)
        self.trainable = PretrainNet(encoder, predictor).to(dev)
        self.target = target
        blocks = [*encoder.blocks, *predictor.predictor_blocks]
        if self.ctx.world.distributed and cfg.dist.strategy == "fsdp":
            from torch.distributed.fsdp import fully_shard

            for blk in target.blocks:
                fully_shard(blk)
            fully_shard(target)  # sharded like the online encoder so the EMA updates local shards
        self.model = wrap_model(self.trainable, self.ctx.world, cfg.dist.strategy, blocks)
        grid = (cfg.data.num_frames // enc_cfg.tubelet_size, cfg.data.img_size // enc_cfg.patch_size,
                cfg.data.img_size // enc_cfg.patch_size)
        self.masks = MultiBlockMasks(cfg.masks, grid, seed=cfg.seed)
        n = sum(p.numel() for p in self.trainable.parameters())
        log.info("pretrain: encoder %s + predictor %s, %.2fM trainable parameters, token grid %s",
                 enc_cfg.embed_dim, pred_cfg.predictor_embed_dim, n / 1e6, grid)

    def build_data(self) -> Any:
        return build_pretrain_dataset(self.cfg.data)

    def write_run_files(self) -> None:
        """``RUN/encoder.json``, for ``vjepa-dataset encode --encoder RUN/encoder.json``."""
        enc = self.cfg.model.encoder_config().to_dict()
        (self.ctx.run_dir / "encoder.json").write_text(json.dumps({"encoder": enc}, indent=1))

    def loss(self, batch: dict[str, Any], step: int, micro: int, log_now: bool) -> tuple[torch.Tensor, dict]:
        video = batch["video"]  # [B, 3, T, H, W]
        world = self.ctx.world
        g_batch = self.cfg.data.batch_size * world.world_size * self.cfg.optim.accumulation_steps
        lo = (micro * world.world_size + world.rank) * self.cfg.data.batch_size
        masks = self.masks.sample(step, g_batch, slice(lo, lo + video.shape[0]))
        masks_enc = [m.to(video.device, non_blocking=True) for m in masks.enc]
        masks_pred = [m.to(video.device, non_blocking=True) for m in masks.pred]
        with torch.no_grad():
            h = normalize_tokens(self.target(video))  # [B, N, D], layer norm without affine
        preds = self.model(video, masks_enc, masks_pred)
        loss = masked_l1(preds, h, masks_pred, self.cfg.optim.loss_exp)
        stats = {"target_std": torch.tensor(feature_std(h) if log_now else float("nan"))}
        return loss, stats

    def after_step(self, step: int) -> None:
        ema_update(self.target, self.trainable.encoder, ema_momentum(self.cfg.optim, step))

    def sections(self) -> tuple[dict, dict, dict, dict]:
        full = full_model_state(self.trainable)  # one (collective under FSDP) call for encoder + predictor
        enc = {k[len("encoder."):]: v for k, v in full.items() if k.startswith("encoder.")}
        pred = {k[len("predictor."):]: v for k, v in full.items() if k.startswith("predictor.")}
        meta = {"encoder_config": self.cfg.model.encoder_config().to_dict(),
                "predictor_type": "PretrainPredictorConfig",
                "predictor_config": self.cfg.model.predictor_config().to_dict()}
        return enc, full_model_state(self.target), pred, meta

    def load_sections(self, ckpt: dict[str, Any]) -> None:
        both = {**{"encoder." + clean_key(k): v for k, v in ckpt["encoder"].items()},
                **{"predictor." + clean_key(k): v for k, v in ckpt["predictor"].items()}}
        load_model_state(self.trainable, both, "resume [encoder+predictor]")
        load_model_state(self.target, ckpt["target_encoder"], "resume [target_encoder]")


def main(cfg: PretrainConfig, overwrite: bool = False) -> dict[str, Any]:
    """Run pretraining with a resolved config (``vjepa-train pretrain``); ``overwrite``: start over at step 0
    even if the run directory holds a checkpoint (see :func:`engine.run`)."""
    return run(PretrainTask, cfg, "pretrain", overwrite)
