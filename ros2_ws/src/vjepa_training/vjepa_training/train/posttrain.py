"""V-JEPA 2-AC post-training: the action-conditioned predictor on a frozen encoder (paper §3.1, reference
``app/vjepa_droid/train.py``).

Each frame of a clip is encoded on its own (repeated into one 2-frame tubelet) by the frozen encoder, or the
tokens come from the dataset's latent cache; tokens are layer-normed (``normalize_reps``). With z_1..z_T:

- teacher forcing: the predictor sees z_1..z_{T-1}, actions a_1..a_{T-1}, states s_1..s_{T-1} and predicts
  ẑ_2..ẑ_T (block-causal, so every prediction only sees the past); loss L1 against z_2..z_T;
- rollout (``auto_steps`` = 2): start from [z_1, ẑ_2 (teacher-forced)], step the predictor on its own output
  with the true actions/states to get ẑ_3, ...; loss L1 of [ẑ_2, ẑ_3, ...] against [z_2, z_3, ...].

Total loss = teacher forcing + rollout (each ``mean(|.|^p)/p``). Only the predictor trains.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vjepa_core.checkpoint import CheckpointError, model_id
from vjepa_core.models import build_ac_predictor, build_encoder
from vjepa_core.tokens import normalize_tokens

from ..data.latents import EncoderIdentity, LatentCacheError, check_cache, find_cache
from .checkpointing import full_model_state, load_model_state
from .common import enable_activation_checkpointing, load_init
from .config import PosttrainConfig
from .datasets import MixtureDataset, ShardClips
from .distributed import wrap_model
from .engine import RunContext, Task, run
from .metrics import feature_std

__all__ = ["ACNet", "PosttrainTask", "latent_identity", "main", "resolve_latents"]

log = logging.getLogger("vjepa_train")


class ACNet(nn.Module):
    """Teacher-forcing and rollout predictions of the AC predictor (one module for DDP/FSDP)."""

    def __init__(self, predictor: nn.Module, tokens_per_frame: int, auto_steps: int, normalize: bool) -> None:
        super().__init__()
        self.predictor = predictor
        self.tpf = tokens_per_frame
        self.auto_steps = auto_steps
        self.normalize = normalize

    def _step(self, z: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        out = self.predictor(z, a, s)
        return normalize_tokens(out) if self.normalize else out

    def forward(self, h: torch.Tensor, actions: torch.Tensor,
                states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``h[B, T*N, D]`` targets, ``actions[B, T-1, 7]``, ``states[B, T, 7]`` -> (z_tf, z_ar).

        z_tf ``[B, (T-1)*N, D]`` predicts frames 2..T; z_ar ``[B, auto_steps*N, D]`` frames 2..1+auto_steps.
        """
        n = self.tpf
        z_tf = self._step(h[:, :-n], actions, states[:, :-1])
        z = torch.cat([h[:, :n], z_tf[:, :n]], dim=1)  # [z_1, ẑ_2]
        for k in range(1, self.auto_steps):
            nxt = self._step(z, actions[:, :k + 1], states[:, :k + 1])[:, -n:]
            z = torch.cat([z, nxt], dim=1)
        return z_tf, z[:, n:]


def latent_identity(cfg: PosttrainConfig) -> EncoderIdentity | None:
    """What this run's frozen encoder is (weights, checkpoint section, input size): the tokens a latent cache
    must hold to stand in for it. None without ``model.encoder_checkpoint`` (a random encoder has no cache).

    Raises:
        CheckpointError: ``model.encoder_checkpoint`` does not exist.
    """
    ckpt = cfg.model.encoder_checkpoint
    if ckpt is None:
        return None
    if not Path(ckpt).is_file():
        raise CheckpointError(f"model.encoder_checkpoint {ckpt} does not exist or is not a file")
    return EncoderIdentity(model_id(cfg.model.encoder_config(), ckpt), cfg.model.encoder_key, cfg.data.img_size)


def resolve_latents(cfg: PosttrainConfig, root: str) -> str | None:
    """Latent cache to read for source ``root`` (None: encode frames on the fly).

    ``data.latents``: null -> None; a name -> that cache, checked to hold this run's encoder tokens (same
    weights, ``model.encoder_key`` section and ``data.img_size``; layer-normed ones only with
    ``normalize_reps``); ``auto`` -> such a cache if the dataset has one, else None, with a warning naming
    every cache that was refused and why (e.g. made from the ``encoder`` section instead of ``target_encoder``).

    Raises:
        LatentCacheError: a named cache that is absent, incomplete or made for something else.
    """
    want = cfg.data.latents
    if want is None:
        return None
    ident = latent_identity(cfg)
    if want != "auto":
        if ident is None:
            raise LatentCacheError(f"data.latents: {want} needs model.encoder_checkpoint (the cache must match "
                                   "the frozen encoder's weights)")
        check_cache(root, want, ident, normalized_ok=cfg.normalize_reps)
        return want
    if ident is None:
        return None
    name, refused = find_cache(root, ident, normalized_ok=cfg.normalize_reps)
    if name is None and refused:
        log.warning("data %s: no latent cache of %s [%s] at %d px; not using %s. Frames are encoded on the fly "
                    "(slower); `vjepa-dataset encode %s --encoder-key %s` makes the right cache", root,
                    ident.model_id, ident.encoder_key, ident.image_size, " | ".join(refused), root,
                    ident.encoder_key)
    return name


class PosttrainTask(Task):
    """Networks, data and loss of V-JEPA 2-AC post-training."""

    kind = "posttrain"
    columns = ["loss_tf", "loss_rollout", "target_std"]

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.cfg: PosttrainConfig = ctx.cfg

    def build_model(self) -> None:
        cfg, dev = self.cfg, self.ctx.world.device
        enc_cfg = cfg.model.encoder_config()
        pred_cfg = cfg.model.predictor_config()
        encoder = build_encoder(enc_cfg)
        if cfg.model.encoder_checkpoint:
            load_init(cfg.model.encoder_checkpoint, {cfg.model.encoder_key: encoder})
        else:
            log.warning("model.encoder_checkpoint is not set: post-training on a randomly initialised encoder")
        predictor = build_ac_predictor(pred_cfg)
        if cfg.model.init_from:
            load_init(cfg.model.init_from, {"predictor": predictor})
        if not pred_cfg.use_extrinsics:
            predictor.extrinsics_encoder.requires_grad_(False)  # unused: kept in the state dict, not trained
        if cfg.model.activation_checkpointing:
            enable_activation_checkpointing(predictor)
        self.encoder = encoder.requires_grad_(False).eval().to(dev)
        self.tpf = pred_cfg.grid_hw[0] * pred_cfg.grid_hw[1]
        self.trainable = ACNet(predictor, self.tpf, cfg.auto_steps, cfg.normalize_reps).to(dev)
        self.model = wrap_model(self.trainable, self.ctx.world, cfg.dist.strategy, list(predictor.predictor_blocks))
        n = sum(p.numel() for p in self.trainable.parameters())
        log.info("posttrain: AC predictor %.2fM parameters, %d tokens per frame, frozen encoder %s",
                 n / 1e6, self.tpf, cfg.model.encoder_checkpoint or "(random)")

    def build_data(self) -> MixtureDataset:
        cfg = self.cfg
        if not cfg.data.sources:
            raise ValueError("data.sources is empty: give a `vjepa-dataset build` directory (kind: shards)")
        parts = []
        for src in cfg.data.sources:
            latents = resolve_latents(cfg, src.path)
            log.info("data %s: %s", src.path, f"cached latents {latents}" if latents else "frames (encoded on the fly)")
            parts.append(ShardClips(src.path, cfg.data.num_frames, cfg.data.frame_step, cfg.data.clip_stride,
                                    latents=latents, output="float"))
        return MixtureDataset(parts, [s.weight for s in cfg.data.sources])

    @torch.no_grad()
    def targets(self, batch: dict[str, Any]) -> torch.Tensor:
        """Per-frame tokens ``[B, T*N, D]`` (cache or frozen encoder), layer-normed if ``normalize_reps``."""
        if "tokens" in batch:
            tok = batch["tokens"].float()  # [B, T, N, D]
        else:
            frames = batch["frames"]  # [B, T, 3, H, W] normalised
            b, t = frames.shape[:2]
            x = frames.flatten(0, 1)
            size = self.cfg.data.img_size
            if x.shape[-1] != size or x.shape[-2] != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            tok = self.encoder(x)  # 4-D input: each frame repeated into one tubelet -> [B*T, N, D]
            tok = tok.view(b, t, tok.shape[1], tok.shape[2])
        b, t, n, d = tok.shape
        if n != self.tpf or d != self.encoder.embed_dim:
            raise ValueError(f"clip tokens are [{n}, {d}] per frame but the predictor needs [{self.tpf}, "
                             f"{self.encoder.embed_dim}]: the latent cache was made by another encoder or size")
        h = tok.reshape(b, t * n, d)
        return normalize_tokens(h) if self.cfg.normalize_reps else h

    def loss(self, batch: dict[str, Any], step: int, micro: int, log_now: bool) -> tuple[torch.Tensor, dict]:
        h = self.targets(batch)
        z_tf, z_ar = self.model(h, batch["actions"].float(), batch["states"].float())
        p, n = self.cfg.optim.loss_exp, self.tpf
        l_tf = torch.mean(torch.abs(z_tf - h[:, n:n + z_tf.shape[1]]) ** p) / p
        l_ar = torch.mean(torch.abs(z_ar - h[:, n:n + z_ar.shape[1]]) ** p) / p
        std = feature_std(h) if log_now else float("nan")
        return l_tf + l_ar, {"loss_tf": l_tf.detach(), "loss_rollout": l_ar.detach(), "target_std": torch.tensor(std)}

    def sections(self) -> tuple[dict, dict, dict, dict]:
        full = full_model_state(self.trainable)
        pred = {k[len("predictor."):]: v for k, v in full.items() if k.startswith("predictor.")}
        enc = {k: v.detach().cpu() for k, v in self.encoder.state_dict().items()}
        meta = {"encoder_config": self.cfg.model.encoder_config().to_dict(), "predictor_type": "ACPredictorConfig",
                "predictor_config": self.cfg.model.predictor_config().to_dict()}
        return enc, enc, pred, meta

    def load_sections(self, ckpt: dict[str, Any]) -> None:
        load_model_state(self.trainable, {"predictor." + k: v for k, v in ckpt["predictor"].items()},
                         "resume [predictor]")


def main(cfg: PosttrainConfig, overwrite: bool = False) -> dict[str, Any]:
    """Run post-training with a resolved config (``vjepa-train posttrain``); ``overwrite``: start over at step 0
    even if the run directory holds a checkpoint (see :func:`engine.run`)."""
    return run(PosttrainTask, cfg, "posttrain", overwrite)
