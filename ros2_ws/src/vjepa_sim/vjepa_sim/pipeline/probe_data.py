"""Labelled simulator videos for probe training: scripted motion primitives of the simulated Franka.

Video understanding needs clips labelled by what happens in them. The simulator can script that exactly: each
episode (one scene seed: block layout and start pose) runs the nine primitives of :data:`PRIMITIVES` (move the
end effector along +-x / +-y / +-z of the base frame, close or open the gripper, hold still) in a seeded random
order, each one ``repeats`` times. A primitive is recorded as one short video with the pipeline's camera (two
96 x 48 views tiled into one 96 x 96 frame, ``config/sim_pipeline/sim.yaml``, the input of the shipped sim_reach
encoder) at ``camera_hz``; moves are settled steps of ``step_min..step_max`` every ``1 / move_hz`` seconds, like the
exploration data the encoder was pretrained on. Everything is deterministic per (seed, episode).

The label is what the video shows, not what was commanded before it: preparation (moving to where the primitive
fits in the workspace box, putting the gripper in the state the primitive needs, a random gripper state for the
others, settling) happens off camera. Moves therefore happen with the gripper open or closed, and "close gripper"
/ "open gripper" with the arm at rest.

Output (``--out DIR``), the format ``vjepa-train probe`` reads (one ``path label`` line per video, the reference's
CSV format with quoted text labels)::

    DIR/videos/<split>/ep<scene seed>_<k>.npz   frames uint8 [T, H, W, 3] (+ states [T, 7], label)
    DIR/train.csv, val.csv, test.csv             "videos/<split>/ep..._k.npz 'move +x'" lines
    DIR/probe_data.json                          settings, splits (scene seeds), counts, time

Splits are whole episodes (scene seeds): ``train`` seeds ``seed .. seed+n-1``, then ``val``, then ``test``, so
held-out numbers come from scenes never trained on. Re-running skips finished episodes.

    python -m vjepa_sim.pipeline.probe_data --out runs/sim_probe/data     (or ``vjepa-sim probe-data``)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MIRROR", "PRIMITIVES", "ProbeDataConfig", "PrimitiveRunner", "add_arguments", "main", "run", "run_episode",
           "write_dataset"]

#: The labels, in the order an episode's random permutation draws from.
PRIMITIVES = ("move +x", "move -x", "move +y", "move -y", "move +z", "move -z",
              "close gripper", "open gripper", "hold still")

_AXES = {"x": 0, "y": 1, "z": 2}

#: What each primitive looks like played backwards (the label of a time-reversed video).
MIRROR = {"move +x": "move -x", "move -x": "move +x", "move +y": "move -y", "move -y": "move +y",
          "move +z": "move -z", "move -z": "move +z", "close gripper": "open gripper",
          "open gripper": "close gripper", "hold still": "hold still"}


@dataclass(frozen=True)
class ProbeDataConfig:
    """How primitives are executed and recorded (defaults: 16 frames = 1.6 s at 10 Hz, 4 settled moves)."""

    camera_hz: float = 10.0            # frames per second of the recorded videos (sim_node's camera rate)
    frames: int = 16                   # frames per primitive video
    move_hz: float = 2.5               # a new move target every 0.4 s (the exploration data's rate)
    step_min: float = 0.04             # m per move (the primitive's speed is drawn once per video)
    step_max: float = 0.05
    box_min: tuple = (0.38, -0.18, 0.10)   # the end effector stays in this box [m]: above the blocks, and the
    box_max: tuple = (0.64, 0.18, 0.32)    # whole hand inside both camera views
    settle_s: float = 0.4              # rest before a primitive starts (off camera)
    repeats: int = 1                   # each primitive this many times per episode

    def validate(self) -> None:
        """Raise ``ValueError`` naming an impossible setting."""
        if not 1.0 <= self.camera_hz <= 60.0:
            raise ValueError(f"camera_hz must be in [1, 60], got {self.camera_hz}")
        if not 0.1 <= self.move_hz <= self.camera_hz:
            raise ValueError(f"move_hz must be in [0.1, camera_hz], got {self.move_hz}")
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, got {self.frames}")
        if not 0.0 < self.step_min <= self.step_max <= 0.1:
            raise ValueError(f"need 0 < step_min <= step_max <= 0.1 m, got {self.step_min}, {self.step_max}")
        lo, hi = np.asarray(self.box_min, float), np.asarray(self.box_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(hi - lo <= 0):
            raise ValueError(f"box_min < box_max needed (3 values each), got {self.box_min}, {self.box_max}")
        if np.any(hi - lo < self.travel):
            raise ValueError(f"the box {self.box_min}..{self.box_max} is smaller than one primitive's travel "
                             f"{self.travel:.3f} m on some axis")
        if self.repeats < 1 or self.settle_s < 0:
            raise ValueError("repeats must be >= 1 and settle_s >= 0")

    @property
    def moves(self) -> int:
        """Move commands per video (one at the first frame, then every 1 / move_hz)."""
        return int(np.ceil(self.frames / (self.camera_hz / self.move_hz)))

    @property
    def travel(self) -> float:
        """Largest distance one move primitive commands [m]."""
        return self.moves * self.step_max


class PrimitiveRunner:
    """Runs primitives on a :class:`~vjepa_sim.scene.FrankaSim` and records them (frames + states per frame).

    ``camera`` is the camera name whose image is recorded (default: the first, with its tiles). ``observer`` (if
    given) is called as ``observer(frame, state, sim_time, label)`` for every frame the sim renders at the camera
    rate, including the off-camera preparation (``label`` None): the live demo publishes those to a node.
    """

    def __init__(self, sim: Any, config: ProbeDataConfig | None = None, camera: str | None = None,
                 observer: Any = None) -> None:
        self.sim = sim
        self.cfg = config or ProbeDataConfig()
        self.cfg.validate()
        self.camera = camera
        self.observer = observer
        self.frame_steps = int(round(sim.config.physics_rate_hz / self.cfg.camera_hz))
        self.move_every = int(round(self.cfg.camera_hz / self.cfg.move_hz))

    # -- low level -----------------------------------------------------------------------------------------
    def _tick(self, label: str | None, record: list | None) -> None:
        """One camera period: render (when recording or observed), then advance the physics."""
        if record is not None or self.observer is not None:
            frame = self.sim.render(self.camera)
            state = self.sim.ee_state()
            if record is not None:
                record.append((frame, state))
            if self.observer is not None:
                self.observer(frame, state, self.sim.time, label)
        self.sim.step(self.frame_steps)

    def rest(self, seconds: float) -> None:
        """Let the sim run for ``seconds`` with no command (frames go to the observer, labelled None)."""
        for _ in range(max(0, int(round(seconds * self.cfg.camera_hz)))):
            self._tick(None, None)

    def _go_to(self, position: np.ndarray, timeout_s: float = 3.0) -> None:
        """Move the end effector to ``position`` (gripper pointing as it does), off camera."""
        _, quat = self.sim.target_pose()
        self.sim.set_target(position, quat)
        for _ in range(int(timeout_s * self.cfg.camera_hz)):
            if np.linalg.norm(self.sim.ee_pose()[0] - position) < 0.005:
                break
            self._tick(None, None)

    def _set_gripper(self, closed: bool) -> None:
        from ..scene import MAX_GRIPPER_WIDTH

        self.sim.set_gripper(0.0 if closed else MAX_GRIPPER_WIDTH, grasp=closed)

    def _gripper_closed(self) -> bool:
        return self.sim.gripper_closedness() > 0.5

    # -- primitives ----------------------------------------------------------------------------------------
    def prepare(self, label: str, rng: np.random.Generator) -> dict[str, Any]:
        """Off camera: bring the arm where ``label`` fits in the box and the gripper into the state it needs;
        returns the primitive's parameters (``step`` [m], direction, gripper state)."""
        cfg = self.cfg
        lo, hi = np.asarray(cfg.box_min, float), np.asarray(cfg.box_max, float)
        step = float(rng.uniform(cfg.step_min, cfg.step_max))
        params: dict[str, Any] = {"label": label, "step": step if label.startswith("move") else 0.0}
        if label in ("close gripper", "open gripper"):
            want_closed = label == "open gripper"        # opening needs a closed gripper first
        else:
            want_closed = bool(rng.random() < 0.5)       # moves and rest happen with either gripper state
        if self._gripper_closed() != want_closed:
            self._set_gripper(want_closed)
            self.rest(1.0)                              # 0.8 s for a full stroke at 0.1 m/s
        pos = self.sim.ee_pose()[0]
        target = np.clip(pos, lo, hi)
        if label.startswith("move"):
            axis, sign = _AXES[label[-1]], 1.0 if label[-2] == "+" else -1.0
            travel = cfg.moves * step
            need_lo, need_hi = (lo[axis], hi[axis] - travel) if sign > 0 else (lo[axis] + travel, hi[axis])
            if not need_lo <= target[axis] <= need_hi:
                target[axis] = rng.uniform(need_lo, need_hi)
            params["direction"] = [sign if i == axis else 0.0 for i in range(3)]
        if np.linalg.norm(target - pos) > 0.005:
            self._go_to(target)
        self.rest(cfg.settle_s)
        params["gripper_closed"] = self._gripper_closed()
        params["start"] = [round(float(v), 4) for v in self.sim.ee_pose()[0]]
        return params

    def record(self, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """On camera: run the prepared primitive; ``(frames [T, H, W, 3] uint8, states [T, 7])``."""
        label = params["label"]
        rec: list = []
        cmd, quat = self.sim.target_pose()
        for k in range(self.cfg.frames):
            if k == 0 and label in ("close gripper", "open gripper"):
                self._set_gripper(label == "close gripper")
            if label.startswith("move") and k % self.move_every == 0:
                cmd = cmd + params["step"] * np.asarray(params["direction"])
                self.sim.set_target(cmd, quat)
            self._tick(label, rec)
        return np.stack([f for f, _ in rec]), np.stack([s for _, s in rec])

    def episode_order(self, rng: np.random.Generator) -> list[str]:
        """Every primitive ``repeats`` times, in a random order."""
        order = [name for name in PRIMITIVES for _ in range(self.cfg.repeats)]
        return [order[i] for i in rng.permutation(len(order))]


def _episode_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 17])


def run_episode(runner: PrimitiveRunner, scene_seed: int) -> list[dict[str, Any]]:
    """Reset the sim to ``scene_seed`` and record every primitive of one episode (deterministic)."""
    runner.sim.reset(seed=scene_seed)
    rng = _episode_rng(scene_seed)
    out = []
    for label in runner.episode_order(rng):
        params = runner.prepare(label, rng)
        frames, states = runner.record(params)
        out.append({**params, "frames": frames, "states": states})
    return out


def _splits(seed: int, n_train: int, n_val: int, n_test: int) -> dict[str, list[int]]:
    seeds = iter(range(seed, seed + n_train + n_val + n_test))
    return {name: [next(seeds) for _ in range(n)] for name, n in (("train", n_train), ("val", n_val),
                                                                  ("test", n_test))}


def write_dataset(out: str | Path, sim_config: Any, config: ProbeDataConfig, seed: int, n_train: int, n_val: int,
                  n_test: int, log: Any = print, labels: list[str] | None = None,
                  reverse_train: bool = False) -> dict[str, Any]:
    """Record the episodes of every split into ``out`` (see the module docstring); returns the summary JSON.

    Every episode records all nine primitives; ``labels`` (default: all) selects which ones the CSVs list, so a
    label subset is a rewrite of the CSVs, not a new recording. ``reverse_train`` adds every listed training video
    played backwards with its mirrored label (:data:`MIRROR`: +x <-> -x, close <-> open, ...), when that label is
    listed too: twice the training data without rendering. Validation and test videos are never reversed.
    """
    from ..scene import FrankaSim

    config.validate()
    labels = list(PRIMITIVES) if labels is None else list(labels)
    unknown = sorted(set(labels) - set(PRIMITIVES))
    if unknown or not labels:
        raise ValueError(f"unknown labels {unknown}; choose from {list(PRIMITIVES)}")
    out = Path(out)
    splits = _splits(seed, n_train, n_val, n_test)
    t0 = time.perf_counter()
    rows: dict[str, list[str]] = {name: [] for name in splits}
    with FrankaSim(sim_config) as sim:
        runner = PrimitiveRunner(sim, config)
        for split, seeds in splits.items():
            folder = out / "videos" / split
            folder.mkdir(parents=True, exist_ok=True)
            for scene_seed in seeds:
                done = folder / f"ep{scene_seed}.json"
                if done.is_file():
                    meta = json.loads(done.read_text())
                else:
                    te = time.perf_counter()
                    meta = []
                    for k, prim in enumerate(run_episode(runner, scene_seed)):
                        name = f"ep{scene_seed}_{k:02d}.npz"
                        np.savez_compressed(folder / name, frames=prim.pop("frames"), states=prim.pop("states"),
                                            label=np.array(prim["label"]))
                        meta.append({"file": name, **prim})
                    done.write_text(json.dumps(meta, indent=1))  # last: marks the episode finished
                    log(f"{split} episode {scene_seed}: {len(meta)} videos in {time.perf_counter() - te:.1f} s")
                for m in meta:
                    if m["label"] not in labels:
                        continue
                    rows[split].append(f"videos/{split}/{m['file']} {shlex.quote(m['label'])}")
                    if reverse_train and split == "train" and MIRROR[m["label"]] in labels:
                        rows[split].append(_reversed_copy(folder, m))
    for split, lines in rows.items():
        (out / f"{split}.csv").write_text("".join(line + "\n" for line in lines))
    summary = {
        "config": asdict(config), "seed": seed, "splits": splits, "labels": labels, "reverse_train": reverse_train,
        "videos": {k: len(v) for k, v in rows.items()}, "frame_shape": list(sim_config_shape(sim_config)),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "probe_data.json").write_text(json.dumps(summary, indent=1))
    return summary


def _reversed_copy(folder: Path, meta: dict[str, Any]) -> str:
    """Write (once) the time-reversed copy of one recorded video; its CSV row."""
    name = meta["file"].replace(".npz", "_rev.npz")
    label = MIRROR[meta["label"]]
    if not (folder / name).is_file():
        with np.load(folder / meta["file"]) as z:
            frames, states = z["frames"][::-1], z["states"][::-1]
        tmp = folder / (name + ".tmp.npz")
        np.savez_compressed(tmp, frames=frames, states=states, label=np.array(label))
        tmp.replace(folder / name)
    return f"videos/{folder.name}/{name} {shlex.quote(label)}"


def sim_config_shape(sim_config: Any) -> tuple[int, int, int]:
    """(H, W, 3) of the first camera's published image (tiles included)."""
    cams = {c.name: c for c in sim_config.cameras}
    first = sim_config.cameras[0]
    extra = cams[first.tile_below].height if first.tile_below else 0
    return first.height + extra, first.width, 3


# ---------------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vjepa-sim probe-data``."""
    from .settings import add_common_arguments

    add_common_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory (videos/, train.csv, val.csv, test.csv)")
    parser.add_argument("--seed", type=int, default=5000, help="first scene seed (train, then val, then test)")
    parser.add_argument("--train-episodes", type=int, default=60)
    parser.add_argument("--val-episodes", type=int, default=10)
    parser.add_argument("--test-episodes", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=1, help="each primitive this many times per episode")
    parser.add_argument("--frames", type=int, default=ProbeDataConfig.frames, help="frames per video")
    parser.add_argument("--labels", nargs="+", metavar="LABEL", default=list(PRIMITIVES),
                        help="primitives the CSVs list (all nine are recorded); default: all")
    parser.add_argument("--reverse-train", action="store_true",
                        help="also list every training video played backwards, with the mirrored label")


def run(args: argparse.Namespace) -> int:
    """``vjepa-sim probe-data``: record the labelled primitive videos with the pipeline's camera."""
    from .settings import load_settings

    settings = load_settings(args.pipeline, args.workdir)
    cfg = ProbeDataConfig(repeats=args.repeats, frames=args.frames)
    try:
        summary = write_dataset(args.out, settings.sim_config(), cfg, args.seed, args.train_episodes,
                                args.val_episodes, args.test_episodes, labels=args.labels,
                                reverse_train=args.reverse_train)
    except ValueError as err:
        print(f"vjepa-sim probe-data: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("videos", "splits", "seconds")}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m vjepa_sim.pipeline.probe_data`` (the same as ``vjepa-sim probe-data``)."""
    parser = argparse.ArgumentParser(prog="vjepa-sim probe-data", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
