"""The simulation pipeline: collect -> build -> pretrain -> posttrain -> export -> eval (``vjepa-sim`` subcommands).

Each stage is a module with ``add_arguments(parser)`` and ``run(args) -> int``; heavy imports (rclpy, torch)
happen inside ``run``, so ``vjepa-sim --help`` stays fast. See docs/sim_pipeline.md.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

__all__ = ["STAGES", "register_pipeline"]

# (subcommand, module, help)
STAGES = (
    ("collect", "collect", "record scripted exploration through sim_node + recorder_node into rosbags (resumable)"),
    ("build", "build", "build the clip dataset from the collected bags with vjepa-dataset (resumable)"),
    ("pretrain", "train", "V-JEPA 2 pretraining of the small encoder on the sim video (resumable)"),
    ("posttrain", "train", "V-JEPA 2-AC post-training of the action-conditioned predictor (resumable)"),
    ("export", "export", "package the trained model: checkpoint, config.json, ONNX graphs, model.json"),
    ("eval", "eval", "closed-loop reach episodes through sim_node + encoder_node + planner_node"),
    ("demo", "eval", "one reach episode with the shipped model, printing every planning step"),
    ("action-error", "action_error", "action inference on held-out transitions (plan t -> t+1 vs true action)"),
    ("probe-data", "probe_data", "labelled motion-primitive videos for vjepa-train probe (no ROS)"),
)


def _lazy(module: str, func: str) -> Callable:
    def call(*args: object) -> object:
        return getattr(import_module(f"{__name__}.{module}"), func)(*args)
    return call


def register_pipeline(register: Callable) -> None:
    """Register every stage with ``vjepa_sim.cli.register``."""
    for name, module, help_text in STAGES:
        # modules holding two stages name their functions add_arguments_<stage> / run_<stage>
        suffix = "_" + name if name in ("pretrain", "posttrain", "eval", "demo") else ""
        register(name, help_text, _lazy(module, "add_arguments" + suffix), _lazy(module, "run" + suffix))
