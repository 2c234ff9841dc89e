"""The optimisation machinery shared by pretraining and post-training.

A *task* (``pretrain.PretrainTask``, ``posttrain.PosttrainTask``) owns its networks and loss; this module owns
everything around them: run setup, AdamW param groups, the step loop (gradient accumulation, autocast,
GradScaler, clipping, schedules), logging, checkpoints and resume. ``run(task_cls, cfg)`` is the whole
training: resume decision -> data -> networks -> run directory -> resume -> loop -> final checkpoint; nothing
is written to the run directory before the inputs have all been validated.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checkpointing as ck
from .config import save_resolved, to_dict
from .datasets import MicroBatchSampler, MixtureDataset, make_loader
from .distributed import World, all_reduce_mean, barrier, init_world, shutdown
from .metrics import CollapseMonitor, MetricsLogger
from .schedules import learning_rate, weight_decay

__all__ = ["RunContext", "Task", "build_loader", "build_optimizer", "prepare_run_dir", "run", "setup_run"]

log = logging.getLogger("vjepa_train")


@dataclass
class RunContext:
    """What every part of a run needs: config, world, run directory, autocast settings."""

    cfg: Any
    world: World
    run_dir: Path
    amp_dtype: torch.dtype | None = None
    start_step: int = 0
    resume: dict[str, Any] | None = field(default=None, repr=False)
    overwrite: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16/fp16 autocast on GPU, nothing on CPU."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.world.device.type, dtype=self.amp_dtype)


class Task:
    """Interface of a training task (see ``pretrain.py`` / ``posttrain.py``)."""

    kind = "task"
    columns: list[str] = []

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def build_model(self) -> None:
        """Create networks on ``ctx.world.device``; set ``self.trainable`` (unwrapped) and ``self.model``.
        Must not write to the run directory (it may not exist yet): see :meth:`write_run_files`."""
        raise NotImplementedError

    def build_data(self) -> MixtureDataset:
        """The dataset (items fetched with ``get(index, generator)``); fails on a missing or bad source before
        anything is written."""
        raise NotImplementedError

    def write_run_files(self) -> None:
        """Write task-specific files into the (now existing) run directory; rank 0 only."""

    def loss(self, batch: dict[str, Any], step: int, micro: int, log_now: bool) -> tuple[torch.Tensor, dict]:
        """Loss of one micro-batch (to backpropagate) and detached statistics to log."""
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        """Hook after each optimizer step (EMA update)."""

    def sections(self) -> tuple[dict, dict, dict, dict]:
        """Full state dicts (encoder, target_encoder, predictor) and the model meta for checkpoints."""
        raise NotImplementedError

    def load_sections(self, ckpt: dict[str, Any]) -> None:
        """Restore networks from a resume checkpoint."""
        raise NotImplementedError


def setup_run(cfg: Any, kind: str, overwrite: bool = False) -> RunContext:
    """Threads, logging, process group, and the checkpoint to resume: nothing is written yet.

    The resume decision (:func:`checkpointing.plan_resume`) happens here, before the run directory is created
    or touched: a truncated or corrupt ``latest.pt``, a checkpoint of the other kind, or ``checkpoint.resume:
    false`` over an existing checkpoint without ``overwrite`` all fail now, leaving the directory as it was.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    world = init_world(cfg.dist, cfg.device)
    logging.basicConfig(level=logging.INFO if world.is_main else logging.WARNING,
                        format=f"[%(asctime)s {kind} r{world.rank}] %(levelname)s %(message)s", datefmt="%H:%M:%S")
    run_dir = Path(cfg.out)
    amp = None
    if world.device.type == "cuda" and cfg.optim.dtype != "float32":
        amp = torch.bfloat16 if cfg.optim.dtype == "bfloat16" else torch.float16
    ctx = RunContext(cfg, world, run_dir, amp, overwrite=overwrite)
    ctx.resume = ck.plan_resume(run_dir, resume=cfg.checkpoint.resume, overwrite=overwrite, kind=kind)
    if ctx.resume is not None:
        ctx.start_step = int(ctx.resume["step"])
        log.info("resuming %s from step %d", run_dir / ck.LATEST, ctx.start_step)
    return ctx


def prepare_run_dir(ctx: RunContext, task: Task) -> None:
    """Create the run directory and write what describes the run (``config.yaml``, the task's files), once the
    data, the networks and the resume checkpoint have all been validated; with ``overwrite`` the old run's
    checkpoints go first."""
    if ctx.world.is_main:
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        if ctx.overwrite:
            for p in ck.clear_checkpoints(ctx.run_dir):
                log.info("overwrite: removed %s", p)
        save_resolved(ctx.cfg, ctx.run_dir)
        task.write_run_files()
    barrier(ctx.world)


def build_optimizer(model: nn.Module, cfg: Any) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (reference: no WD for biases and 1-D parameters)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay, "WD_exclude": False},
              {"params": no_decay, "weight_decay": 0.0, "WD_exclude": True}]
    return torch.optim.AdamW(groups, lr=cfg.optim.start_lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)


def build_loader(ctx: RunContext, dataset: MixtureDataset) -> tuple[Any, MicroBatchSampler]:
    """This rank's micro-batches from ``ctx.start_step`` on (resumable global order; :func:`datasets.make_loader`,
    the one loader training and ``bench/bench_data.py`` use)."""
    cfg, world = ctx.cfg, ctx.world
    return make_loader(dataset, batch_size=cfg.data.batch_size, seed=cfg.seed, world_size=world.world_size,
                       rank=world.rank, accumulation=cfg.optim.accumulation_steps, start_step=ctx.start_step,
                       num_workers=cfg.data.num_workers,
                       pin_memory=cfg.data.pin_memory and world.device.type == "cuda")


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


class _Loop:
    """The step loop; split out of :func:`run` to keep each piece short."""

    def __init__(self, ctx: RunContext, task: Task, model: Any, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, global_batch: int) -> None:
        self.ctx, self.task, self.model, self.opt, self.scaler = ctx, task, model, optimizer, scaler
        self.cfg = ctx.cfg
        self.global_batch = global_batch
        self.steps_per_epoch = max(1, len(task.dataset) // global_batch)
        self.monitor = CollapseMonitor(self.cfg.log.collapse_std_threshold)
        self.last_loss = float("nan")

    def set_hparams(self, step: int) -> float:
        lr = learning_rate(self.cfg.optim, step)
        wd = weight_decay(self.cfg.optim, step)
        for g in self.opt.param_groups:
            g["lr"] = lr
            if not g.get("WD_exclude", False):
                g["weight_decay"] = wd
        return lr

    def sync_context(self, micro: int) -> contextlib.AbstractContextManager:
        last = micro == self.cfg.optim.accumulation_steps - 1
        if not last and hasattr(self.model, "no_sync"):
            return self.model.no_sync()
        return contextlib.nullcontext()

    def step(self, step: int, batches: Any, log_now: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        accum = self.cfg.optim.accumulation_steps
        total = torch.zeros((), device=self.ctx.world.device)
        stats: dict[str, torch.Tensor] = {}
        for micro in range(accum):
            batch = {k: v.to(self.ctx.world.device, non_blocking=True) for k, v in next(batches).items()}
            with self.sync_context(micro):
                with self.ctx.autocast():
                    loss, st = self.task.loss(batch, step, micro, log_now)
                self.scaler.scale(loss / accum).backward()
            total += loss.detach().float() / accum
            for k, v in st.items():
                stats[k] = stats.get(k, 0.0) + v.detach().float() / accum
        if self.cfg.optim.grad_clip:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.task.trainable.parameters(), self.cfg.optim.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        self.task.after_step(step)
        return total, stats

    def checkpoint(self, done: int) -> None:
        ctx = self.ctx
        enc, tgt, pred, meta = self.task.sections()
        if ck._is_fsdp(self.model):
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            opt_sd = get_optimizer_state_dict(self.model, self.opt,
                                              options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        else:
            opt_sd = self.opt.state_dict() if ctx.world.is_main else None
        if ctx.world.is_main:
            keep_every = self.cfg.checkpoint.keep_every_steps
            state = {"opt": opt_sd, "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                     "epoch": done // self.steps_per_epoch, "loss": self.last_loss,
                     "lr": learning_rate(self.cfg.optim, max(done - 1, 0)),
                     "batch_size": self.cfg.data.batch_size, "world_size": ctx.world.world_size,
                     "rng": ck.rng_state(), "kind": self.task.kind, "config": to_dict(self.cfg),
                     "data": {"position": done * self.global_batch, "global_batch": self.global_batch,
                              "seed": self.cfg.seed}}
            ck.write_checkpoint(ctx.run_dir, encoder=enc, target_encoder=tgt, predictor=pred, meta=meta,
                                state=state, step=done, keep=bool(keep_every and done % keep_every == 0))
        barrier(ctx.world)


def _restore(ctx: RunContext, task: Task, model: Any, opt: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler, global_batch: int) -> None:
    ck_ = ctx.resume
    assert ck_ is not None
    task.load_sections(ck_)
    if ck._is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, opt, ck_["opt"], options=StateDictOptions(full_state_dict=True))
    else:
        opt.load_state_dict(ck_["opt"])
    if ck_.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(ck_["scaler"])
    if "rng" in ck_:
        ck.set_rng_state(ck_["rng"])
    old = (ck_.get("data") or {}).get("global_batch")
    if old is not None and old != global_batch:
        log.warning("resuming with global batch %d instead of %d: the data order continues from sample %d",
                    global_batch, old, ctx.start_step * global_batch)


def run(task_cls: type, cfg: Any, kind: str, overwrite: bool = False) -> dict[str, Any]:
    """Train ``task_cls`` with ``cfg``; returns a summary (steps, last loss, run dir, collapse warnings, last
    logged metrics, and ``task``: the task object holding the trained networks, for programmatic use).

    Everything that can be wrong with the inputs (the resume checkpoint, the data sources, the latent cache,
    checkpoints to initialise from) is checked before the run directory is created or written to.
    ``overwrite``: start from step 0 even if the run directory holds a checkpoint, removing the old run's
    checkpoints (without it, ``checkpoint.resume: false`` over an existing checkpoint is an error)."""
    try:
        return _run(setup_run(cfg, kind, overwrite), task_cls)
    finally:
        shutdown()  # also when setup_run refused the run after starting the process group


def _run(ctx: RunContext, task_cls: type) -> dict[str, Any]:
    cfg, world = ctx.cfg, ctx.world
    task = task_cls(ctx)
    task.dataset = task.build_data()  # uses no RNG: the networks below start from the same seed as ever
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    task.build_model()
    prepare_run_dir(ctx, task)
    optimizer = build_optimizer(task.trainable, cfg)
    scaler = torch.amp.GradScaler(world.device.type, enabled=ctx.amp_dtype == torch.float16)
    global_batch = cfg.data.batch_size * world.world_size * cfg.optim.accumulation_steps
    if ctx.resume is not None:
        _restore(ctx, task, task.model, optimizer, scaler, global_batch)
        ctx.resume = None  # free the memory
    end = cfg.optim.total_steps if cfg.max_steps is None else min(cfg.optim.total_steps, cfg.max_steps)
    loop = _Loop(ctx, task, task.model, optimizer, scaler, global_batch)
    logger = MetricsLogger(ctx.run_dir, ["loss", *task.columns, "lr", "wd", "clips_per_s", "step_s",
                                         "peak_mem_mb", "epoch"],
                           world.is_main, end, ctx.start_step, cfg.log.tensorboard, cfg.log.progress_bar)
    if ctx.start_step >= end:
        log.info("nothing to do: the run is at step %d, the end is %d", ctx.start_step, end)
        logger.close()
        return {"steps": ctx.start_step, "run_dir": str(ctx.run_dir), "loss": None}
    log.info("%s: %d -> %d steps, global batch %d (%d x %d procs x %d accum), %d clips, device %s",
             task.kind, ctx.start_step, end, global_batch, cfg.data.batch_size, world.world_size,
             cfg.optim.accumulation_steps, len(task.dataset), world.device)
    loader, _ = build_loader(ctx, task.dataset)
    batches = iter(loader)
    task.trainable.train()
    t0, n0 = time.perf_counter(), ctx.start_step
    last_row: dict[str, Any] = {}
    try:
        for step in range(ctx.start_step, end):
            done = step + 1
            log_now = done % cfg.log.every_steps == 0 or done == end
            lr = loop.set_hparams(step)
            loss, stats = loop.step(step, batches, log_now)
            if log_now:
                vals = all_reduce_mean(torch.stack([loss, *stats.values()]), world).tolist()
                loop.last_loss = vals[0]
                if vals[0] != vals[0] or abs(vals[0]) == float("inf"):
                    raise FloatingPointError(f"step {done}: loss is {vals[0]}; stopping (lower the lr?)")
                dt = time.perf_counter() - t0
                row = {"loss": vals[0], **dict(zip(stats.keys(), vals[1:])), "lr": lr,
                       "wd": weight_decay(cfg.optim, step),
                       "clips_per_s": global_batch * (done - n0) / max(dt, 1e-9),
                       "step_s": dt / max(done - n0, 1), "peak_mem_mb": _peak_mem_mb(world.device),
                       "epoch": done // loop.steps_per_epoch}
                if "target_std" in row:
                    loop.monitor.check(row["target_std"], done)
                logger.log(done, row)
                last_row = row
                t0, n0 = time.perf_counter(), done
                logger.progress(0, {"loss": f"{row['loss']:.4f}", "lr": f"{lr:.2e}",
                                    "clips/s": f"{row['clips_per_s']:.1f}"})
            logger.progress(1)
            if done % cfg.checkpoint.every_steps == 0 or done == end:
                loop.checkpoint(done)
    finally:
        logger.close()
        del batches, loader
    if world.is_main:
        log.info("done: step %d, loss %.5f, checkpoint %s", end, loop.last_loss, ctx.run_dir / ck.LATEST)
    return {"steps": end, "run_dir": str(ctx.run_dir), "loss": loop.last_loss,
            "collapse_warnings": loop.monitor.warnings, **{f"last_{k}": v for k, v in last_row.items()},
            "task": task}

