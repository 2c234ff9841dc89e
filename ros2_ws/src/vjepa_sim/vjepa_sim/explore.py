"""Scripted, seeded exploration for data collection, in the spirit of DROID's teleoperated play.

At every control step the policy picks a new end-effector target: a random bounded delta from the current
pose (kept inside a workspace box), or, now and then, a few steps heading for one of the blocks; near a
block it sometimes closes the gripper, and a closed gripper sometimes opens again. All randomness comes
from one seeded ``numpy.random.Generator``, and the simulator is deterministic, so an episode is a function
of (scene seed, policy seed, configuration).

:func:`run_episode` drives a :class:`~vjepa_sim.scene.FrankaSim` with the policy and returns frames, states
and commanded targets; ``sim_node`` uses the same policy when its ``autopilot`` parameter is ``explore``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .scene import MAX_GRIPPER_WIDTH, FrankaSim

__all__ = ["ExploreAction", "ExploreConfig", "ExplorationPolicy", "Episode", "run_episode"]


@dataclass(frozen=True)
class ExploreConfig:
    """Knobs of the exploration policy (defaults give ~5 cm moves at 5 Hz, like slow teleoperation)."""

    seed: int = 0
    control_rate_hz: float = 5.0  # new target every 1 / rate seconds of sim time
    max_delta: float = 0.05  # per-axis end-effector step bound [m]
    max_yaw_delta: float = 0.0  # per-step yaw change bound [rad]; 0 keeps the gripper orientation
    workspace_min: tuple = (0.35, -0.20, 0.03)  # targets stay in this box [m]
    workspace_max: tuple = (0.65, 0.20, 0.40)
    approach_prob: float = 0.15  # chance per step to start heading for a random block
    approach_steps: int = 10  # how many steps an approach lasts at most
    grasp_radius: float = 0.03  # "near a block": horizontal distance [m] ...
    grasp_height: float = 0.04  # ... and height above the block centre [m]
    close_prob: float = 0.6  # chance to close when near a block
    open_prob: float = 0.15  # chance per step to open a closed gripper

    def validate(self) -> None:
        """Raise ``ValueError`` on an impossible setting."""
        if not 0.1 <= self.control_rate_hz <= 100.0:
            raise ValueError(f"control_rate_hz must be in [0.1, 100], got {self.control_rate_hz}")
        if not 0.0 < self.max_delta <= 0.2:
            raise ValueError(f"max_delta must be in (0, 0.2] m, got {self.max_delta}")
        if not 0.0 <= self.max_yaw_delta <= 1.0:
            raise ValueError(f"max_yaw_delta must be in [0, 1] rad, got {self.max_yaw_delta}")
        lo, hi = self.workspace_min, self.workspace_max
        if len(lo) != 3 or len(hi) != 3 or any(not a < b for a, b in zip(lo, hi)):
            raise ValueError(f"workspace_min < workspace_max needed (3 values each), got {lo}, {hi}")
        for key in ("approach_prob", "close_prob", "open_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{key} must be a probability, got {getattr(self, key)}")
        if self.approach_steps < 1 or self.grasp_radius <= 0 or self.grasp_height <= 0:
            raise ValueError("approach_steps, grasp_radius and grasp_height must be positive")


@dataclass
class ExploreAction:
    """One policy decision: where the end effector should go and what the gripper should do."""

    position: np.ndarray  # target [3] in the base frame
    quaternion: np.ndarray  # target [4]
    close: bool  # True: grasp (close), False: open
    changed_gripper: bool  # the gripper command differs from the previous step


def _yaw_rotate(quat: np.ndarray, yaw: float) -> np.ndarray:
    """Rotate ``quat`` by ``yaw`` about the base z axis (left multiplication)."""
    s, c = math.sin(yaw / 2.0), math.cos(yaw / 2.0)
    x, y, z, w = quat
    return np.array([c * x - s * y, c * y + s * x, c * z + s * w, c * w - s * z])


class ExplorationPolicy:
    """DROID-like random exploration: bounded deltas, occasional approaches and grasps. Seeded."""

    def __init__(self, config: ExploreConfig | None = None) -> None:
        self.config = config or ExploreConfig()
        self.config.validate()
        self.rng = np.random.default_rng(self.config.seed)
        self._approach: np.ndarray | None = None
        self._approach_left = 0
        self._closed = False

    def act(self, ee_position: np.ndarray, ee_quaternion: np.ndarray, object_positions: list) -> ExploreAction:
        """Choose the next target from the current end-effector pose and block positions."""
        cfg, rng = self.config, self.rng
        lo, hi = np.array(cfg.workspace_min), np.array(cfg.workspace_max)
        ee = np.asarray(ee_position, dtype=np.float64)
        if self._approach is None and object_positions and rng.random() < cfg.approach_prob:
            obj = np.asarray(object_positions[int(rng.integers(len(object_positions)))], dtype=np.float64)
            self._approach = np.array([obj[0], obj[1], obj[2] + 0.005])
            self._approach_left = cfg.approach_steps
        noise = rng.uniform(-cfg.max_delta, cfg.max_delta, size=3)
        if self._approach is not None:
            delta = np.clip(self._approach - ee, -cfg.max_delta, cfg.max_delta) + 0.1 * noise
            self._approach_left -= 1
            if self._approach_left <= 0 or np.linalg.norm(self._approach - ee) < 0.01:
                self._approach = None
        else:
            delta = noise
        target = np.clip(ee + delta, lo, hi)
        yaw = rng.uniform(-cfg.max_yaw_delta, cfg.max_yaw_delta) if cfg.max_yaw_delta > 0 else 0.0
        quat = _yaw_rotate(np.asarray(ee_quaternion, dtype=np.float64), yaw)
        was_closed = self._closed
        u = rng.random()
        if self._closed:
            self._closed = u >= cfg.open_prob
        elif self._near_object(ee, object_positions):
            self._closed = u < cfg.close_prob
        return ExploreAction(target, quat, self._closed, self._closed != was_closed)

    def _near_object(self, ee: np.ndarray, object_positions: list) -> bool:
        """End effector low and horizontally close to a block (worth a grasp attempt)."""
        cfg = self.config
        for obj in object_positions:
            o = np.asarray(obj, dtype=np.float64)
            if np.linalg.norm(ee[:2] - o[:2]) < cfg.grasp_radius and ee[2] - o[2] < cfg.grasp_height:
                return True
        return False


@dataclass
class Episode:
    """Arrays recorded by :func:`run_episode` (T control steps)."""

    images: dict = field(default_factory=dict)  # camera name -> [T+1, H, W, 3] uint8, frame before each step
    states: np.ndarray | None = None  # [T+1, 7] x, y, z, roll, pitch, yaw, closedness (measured)
    targets: np.ndarray | None = None  # [T, 7] commanded target pose (euler xyz) and gripper closedness
    times: np.ndarray | None = None  # [T+1] sim time of each frame [s]


def run_episode(sim: FrankaSim, policy: ExplorationPolicy, steps: int, cameras: list | None = None) -> Episode:
    """Run ``steps`` control steps of ``policy`` on ``sim`` and record frames, states and targets.

    The caller resets the sim first (``sim.reset(seed)``). Rejected targets are skipped (the arm keeps its
    previous target), so every recorded target is one the tracker actually followed.
    """
    import pybullet as pb  # euler conversion only

    names = list(cameras) if cameras else [sim.camera_names[0]]
    per_step = max(1, int(round(sim.config.physics_rate_hz / policy.config.control_rate_hz)))
    frames: dict = {n: [] for n in names}
    states, targets, times = [], [], []

    def observe() -> None:
        for n in names:
            frames[n].append(sim.render(n))
        states.append(sim.ee_state())
        times.append(sim.time)

    observe()
    for _ in range(int(steps)):
        pos, quat = sim.ee_pose()
        act = policy.act(pos, quat, [o.position for o in sim.object_states()])
        result = sim.set_target(act.position, act.quaternion)
        tpos, tquat = (result.position, result.quaternion) if result.accepted else sim.target_pose()
        if act.changed_gripper:
            sim.set_gripper(0.0 if act.close else MAX_GRIPPER_WIDTH, grasp=act.close)
        targets.append([*tpos, *pb.getEulerFromQuaternion(list(tquat)), 1.0 if act.close else 0.0])
        sim.step(per_step)
        observe()
    return Episode(
        images={n: np.stack(v) for n, v in frames.items()},
        states=np.array(states),
        targets=np.array(targets, dtype=np.float64).reshape(-1, 7),
        times=np.array(times),
    )
