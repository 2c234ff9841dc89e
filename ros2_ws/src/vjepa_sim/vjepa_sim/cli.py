"""``vjepa-sim``: command-line tools around the simulated Franka (no ROS needed).

    vjepa-sim goal --position 0.5 0.1 0.2 --out goal.png          # goal image for a pose
    vjepa-sim goal --config config/sim.yaml --seed 3 --position 0.45 -0.1 0.1 --rpy 3.1416 0 0.3 \\
        --gripper 1 --camera ext1 --out goal.png
    vjepa-sim explore --episodes 2 --steps 50 --seed 0 --out /tmp/explore   # scripted exploration -> .npz
    vjepa-sim explore --policy play --object-set manipulation --out /tmp/play  # pick-and-place play

Subcommands are registered in one table, so other packages' tools hang off the same entry point: write
``add_arguments(parser)`` and ``run(args) -> int`` functions (import heavy modules inside ``run``) and
add one ``register(...)`` line to :func:`_register_builtin`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Subcommand", "build_parser", "main", "register"]


@dataclass(frozen=True)
class Subcommand:
    """One ``vjepa-sim <name>`` tool."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


_COMMANDS: dict = {}


def register(name: str, help: str, add_arguments: Callable, run: Callable) -> None:
    """Add a subcommand (name must be unique)."""
    if name in _COMMANDS:
        raise ValueError(f"subcommand {name!r} registered twice")
    _COMMANDS[name] = Subcommand(name, help, add_arguments, run)


# --------------------------------------------------------------------------------------------------- shared
def _add_scene_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML",
                        help="ROS 2 params file with a 'sim_node: ros__parameters:' block (e.g. config/sim.yaml)")
    parser.add_argument("--seed", type=int, default=None, help="scene seed: object layout and start pose")


def _load_sim_config(args: argparse.Namespace) -> object:
    """SimConfig from ``--config`` (or the defaults), with ``--seed`` applied."""
    from dataclasses import replace

    from .config import SimConfig, config_from_ros_params, load_params_file

    cfg = config_from_ros_params(load_params_file(args.config)) if args.config else SimConfig()
    if args.seed is not None:
        cfg = replace(cfg, seed=args.seed)
    return cfg


# --------------------------------------------------------------------------------------------------- goal
def _goal_arguments(parser: argparse.ArgumentParser) -> None:
    _add_scene_arguments(parser)
    parser.add_argument("--position", type=float, nargs=3, required=True, metavar=("X", "Y", "Z"),
                        help="end-effector position in the robot base frame [m]")
    orient = parser.add_mutually_exclusive_group()
    orient.add_argument("--quaternion", type=float, nargs=4, metavar=("QX", "QY", "QZ", "QW"),
                        help="end-effector orientation (default: pointing down, qx=1)")
    orient.add_argument("--rpy", type=float, nargs=3, metavar=("ROLL", "PITCH", "YAW"),
                        help="orientation as extrinsic xyz Euler angles [rad] (DROID convention)")
    parser.add_argument("--gripper", type=float, default=0.0, help="closedness in [0, 1] (0 open)")
    parser.add_argument("--camera", default="", help="camera name (default: the first configured)")
    parser.add_argument("--out", required=True, help="output PNG path")
    parser.add_argument("--allow-unreachable", action="store_true",
                        help="exit 0 even when IK cannot reach the pose (the image shows the closest pose)")


def _goal_run(args: argparse.Namespace) -> int:
    import pybullet as pb

    from .image_io import write_png
    from .scene import DOWN_QUAT, FrankaSim

    cfg = _load_sim_config(args)
    if args.quaternion is not None:
        quat = args.quaternion
    elif args.rpy is not None:
        if not all(math.isfinite(v) for v in args.rpy):
            raise ValueError(f"--rpy must be finite, got {args.rpy}")
        quat = list(pb.getQuaternionFromEuler(args.rpy))
    else:
        quat = DOWN_QUAT
    with FrankaSim(cfg) as sim:
        goal = sim.render_goal(args.position, quat, args.gripper, args.camera or None)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    write_png(args.out, goal.image)
    report = {
        "out": args.out,
        "seed": cfg.seed,
        "camera": args.camera or cfg.cameras[0].name,
        "achieved_position": [round(float(v), 5) for v in goal.position],
        "achieved_quaternion": [round(float(v), 5) for v in goal.quaternion],
        "position_error_m": round(goal.position_error, 5),
        "rotation_error_rad": round(goal.rotation_error, 5),
        "reachable": goal.reachable,
    }
    print(json.dumps(report))
    if not goal.reachable:
        print(f"warning: pose not reachable (IK misses it by {goal.position_error * 100:.1f} cm); "
              "the image shows the closest pose", file=sys.stderr)
        return 0 if args.allow_unreachable else 1
    return 0


# --------------------------------------------------------------------------------------------------- explore
def _explore_arguments(parser: argparse.ArgumentParser) -> None:
    _add_scene_arguments(parser)
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50, help="control steps per episode")
    parser.add_argument("--rate", type=float, default=5.0, help="control rate [Hz of sim time]")
    parser.add_argument("--max-delta", type=float, default=0.05, help="per-axis step bound [m]")
    parser.add_argument("--policy", choices=("free", "play"), default="free",
                        help="free: random moves (reach data); play: pick-and-place play with the objects")
    parser.add_argument("--object-set", choices=("blocks", "manipulation"), default=None,
                        help="scene objects (default: the config's object_set): blocks, or one cup or box")
    parser.add_argument("--camera", action="append", default=None,
                        help="camera(s) to record (repeatable; default: the first configured)")
    parser.add_argument("--out", required=True, help="output directory for episode_XXXX.npz files")


def _explore_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import numpy as np

    from .explore import make_explorer, run_episode
    from .scene import FrankaSim

    if args.episodes < 1 or args.steps < 1:
        raise ValueError("--episodes and --steps must be >= 1")
    cfg = _load_sim_config(args)
    if args.object_set:
        cfg = replace(cfg, object_set=args.object_set)
    os.makedirs(args.out, exist_ok=True)
    with FrankaSim(cfg) as sim:
        for ep in range(args.episodes):
            seed = cfg.seed + ep
            sim.reset(seed)
            policy = make_explorer(args.policy, seed, args.rate, args.max_delta)
            episode = run_episode(sim, policy, args.steps, args.camera)
            path = os.path.join(args.out, f"episode_{ep:04d}.npz")
            arrays = {f"images_{k}": v for k, v in episode.images.items()}
            np.savez_compressed(path, states=episode.states, targets=episode.targets, times=episode.times,
                                seed=np.int64(seed), **arrays)
            closes = int((np.diff(episode.targets[:, 6]) > 0).sum()) if len(episode.targets) > 1 else 0
            print(f"{path}: {args.steps} steps, {closes} gripper closes, "
                  f"{episode.times[-1] - episode.times[0]:.1f} s sim time")
    return 0


def _register_builtin() -> None:
    register("goal", "render a goal image (PNG) with the arm at an end-effector pose", _goal_arguments, _goal_run)
    register("explore", "run seeded scripted exploration episodes and save .npz files",
             _explore_arguments, _explore_run)
    from .pipeline import register_pipeline  # collect | build | pretrain | posttrain | export | eval | demo

    register_pipeline(register)


_register_builtin()


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="vjepa-sim", description="Command-line tools around the simulated Franka (no ROS needed).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for cmd in _COMMANDS.values():
        sp = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(sp)
        sp.set_defaults(_run=cmd.run)
    return parser


def _set_threads(threads: int | None) -> None:
    """The pipeline stages' ``--threads``: torch's CPU threads of this process, set once here (0: torch's default).
    The stages that train in-process also hand it to the training config, so the training does not replace it."""
    if threads is None:
        return
    if threads < 0:
        raise ValueError(f"--threads must be >= 0, got {threads}")
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def main(argv: list | None = None) -> int:
    """Entry point: parse, run the subcommand, turn ``ValueError`` into a one-line error (exit 2)."""
    args = build_parser().parse_args(argv)
    try:
        _set_threads(getattr(args, "threads", None))
        return int(args._run(args) or 0)
    except (ValueError, OSError) as err:
        print(f"vjepa-sim {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
