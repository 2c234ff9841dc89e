"""Scripted, seeded exploration for data collection, in the spirit of DROID's teleoperated play.

Two policies, both choosing one end-effector target (and gripper command) per control step:

- :class:`ExplorationPolicy` (``free``, the reach data): a random bounded delta from the current pose (kept
  inside a workspace box), or, now and then, a few steps heading for one of the blocks; near a block it
  sometimes closes the gripper, and a closed gripper sometimes opens again.
- :class:`PlayPolicy` (``play``, the manipulation data): free random motion mixed with pick-and-place play
  on the scene's objects: approach above an object, descend, grasp, lift, carry to a random spot, place and
  release (or drop it on the way), with random aim errors, heights, pauses and aborts, so failed grasps and
  drops are in the data too. No task labels: it never looks at a task or a goal.

All randomness comes from one seeded ``numpy.random.Generator`` per policy, and the simulator is
deterministic, so an episode is a function of (scene seed, policy seed, configuration).

:func:`run_episode` drives a :class:`~vjepa_sim.scene.FrankaSim` with a policy and returns frames, states
and commanded targets; ``sim_node`` uses the same policies when its ``autopilot`` parameter is ``explore``
(``explore_policy: free | play``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .objects import OBJECT_KINDS
from .scene import MAX_GRIPPER_WIDTH, FrankaSim

__all__ = ["ExploreAction", "ExploreConfig", "ExplorationPolicy", "Episode", "PlayConfig", "PlayPolicy",
           "make_explorer", "run_episode"]



def _check_motion(cfg: object) -> None:
    """The step-size and rate checks every exploration config shares (``ValueError`` on an impossible setting)."""
    if not 0.1 <= cfg.control_rate_hz <= 100.0:
        raise ValueError(f"control_rate_hz must be in [0.1, 100], got {cfg.control_rate_hz}")
    if not 0.0 < cfg.max_delta <= 0.2:
        raise ValueError(f"max_delta must be in (0, 0.2] m, got {cfg.max_delta}")
    if not 0.0 <= cfg.max_yaw_delta <= 1.0:
        raise ValueError(f"max_yaw_delta must be in [0, 1] rad, got {cfg.max_yaw_delta}")

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
        _check_motion(self)
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

    def decide(self, sim: FrankaSim) -> ExploreAction:
        """:meth:`act` on ``sim``'s current state."""
        pos, quat = sim.ee_pose()
        return self.act(pos, quat, [o.position for o in sim.object_states()])

    def _near_object(self, ee: np.ndarray, object_positions: list) -> bool:
        """End effector low and horizontally close to a block (worth a grasp attempt)."""
        cfg = self.config
        for obj in object_positions:
            o = np.asarray(obj, dtype=np.float64)
            if np.linalg.norm(ee[:2] - o[:2]) < cfg.grasp_radius and ee[2] - o[2] < cfg.grasp_height:
                return True
        return False


@dataclass(frozen=True)
class PlayConfig:
    """Knobs of the play policy (defaults: about half the steps in pick-and-place play, half free motion)."""

    seed: int = 0
    control_rate_hz: float = 2.5  # new target every 1 / rate seconds of sim time
    max_delta: float = 0.05  # per-axis end-effector step bound [m] (the planner's cem_maxnorm)
    workspace_min: tuple = (0.35, -0.20, 0.02)  # targets stay in this box [m]
    workspace_max: tuple = (0.65, 0.20, 0.35)
    place_min_xy: tuple = (0.40, -0.17)  # objects are carried to random spots in this area [m]
    place_max_xy: tuple = (0.64, 0.17)
    pick_prob: float = 0.3  # chance per free step to start playing with an object
    aim_error: float = 0.008  # std of the aim point's horizontal error [m] (some grasps miss or tip a cup)
    clearance: float = 0.02  # free motion keeps the fingertips this far above objects it passes over [m]
    drop_prob: float = 0.15  # chance that a carried object is let go before it is put down
    abort_prob: float = 0.03  # chance per step to give up the current play and move freely
    free_toggle_prob: float = 0.05  # chance per free step to open/close the gripper anyway
    max_yaw_delta: float = 0.0  # per-step yaw change bound [rad]; 0 keeps the wrist yaw (as the tasks do)

    def validate(self) -> None:
        """Raise ``ValueError`` on an impossible setting."""
        _check_motion(self)
        for lo, hi, n in ((self.workspace_min, self.workspace_max, 3), (self.place_min_xy, self.place_max_xy, 2)):
            if len(lo) != n or len(hi) != n or any(not a < b for a, b in zip(lo, hi)):
                raise ValueError(f"min < max needed ({n} values each), got {lo}, {hi}")
        for key in ("pick_prob", "drop_prob", "abort_prob", "free_toggle_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{key} must be a probability, got {getattr(self, key)}")
        if not 0.0 <= self.aim_error <= 0.05:
            raise ValueError(f"aim_error must be in [0, 0.05] m, got {self.aim_error}")
        if not 0.0 <= self.clearance <= 0.2:
            raise ValueError(f"clearance must be in [0, 0.2] m, got {self.clearance}")


class PlayPolicy:
    """DROID-like play with objects: approach, descend, grasp, lift, carry, place, release; mixed with free
    motion. Seeded; the phases and every height, spot, pause and error are random.

    One plan ("play") is a list of waypoints with a gripper command each; the policy steps toward the next
    waypoint by at most ``max_delta`` per axis (plus a little noise) and moves on when it is within 1 cm.
    A grasp that lifts nothing (the object stayed on the table) ends the play with the gripper opened.
    """

    def __init__(self, config: PlayConfig | None = None) -> None:
        self.config = config or PlayConfig()
        self.config.validate()
        self.rng = np.random.default_rng(self.config.seed)
        self._plan: list = []  # [(position[3], gripper "open"/"close"/None, lift check: grasp height or None)]
        self._target_object = 0  # index of the object the current play is about
        self._closed = False
        self._yaw = 0.0

    # ---- planning
    def _play_plan(self, ee: np.ndarray, obj: object) -> list:
        """Waypoints of one pick-and-place play with ``obj`` (an ObjectState), all heights and spots random."""
        cfg, rng = self.config, self.rng
        kind = OBJECT_KINDS.get(obj.kind)
        height = kind.height if kind is not None else float(obj.size[2])
        o = np.asarray(obj.position, dtype=np.float64)
        aim = o[:2] + rng.normal(0.0, cfg.aim_error, size=2)
        hover = o[2] + height / 2.0 + rng.uniform(0.02, 0.06)
        grasp_z = o[2] + rng.uniform(-0.005, 0.01)
        lift_z = grasp_z + rng.uniform(0.04, 0.15)
        spot = rng.uniform(cfg.place_min_xy, cfg.place_max_xy)
        carry_z = lift_z + rng.uniform(-0.02, 0.04)
        plan = [(np.array([aim[0], aim[1], max(hover, ee[2] - 0.1)]), None, None),
                (np.array([aim[0], aim[1], grasp_z]), None, None)]
        plan += [(np.array([aim[0], aim[1], grasp_z]), "close", None)] * int(rng.integers(1, 3))  # close, maybe wait
        plan.append((np.array([aim[0], aim[1], lift_z]), None, grasp_z))
        for _ in range(int(rng.integers(0, 3))):  # wander while carrying
            plan.append((np.array([*rng.uniform(cfg.place_min_xy, cfg.place_max_xy), carry_z]), None, None))
        if rng.random() < cfg.drop_prob:  # let go on the way (a drop)
            plan.append((np.array([spot[0], spot[1], carry_z]), "open", None))
        else:
            place_z = grasp_z + rng.uniform(0.0, 0.01)
            plan.append((np.array([spot[0], spot[1], carry_z]), None, None))
            plan.append((np.array([spot[0], spot[1], place_z]), None, None))
            plan.append((np.array([spot[0], spot[1], place_z]), "open", None))
        plan.append((np.array([spot[0], spot[1], carry_z + 0.03]), None, None))  # back up, open
        return plan

    # ---- acting
    def act(self, ee_position: np.ndarray, ee_quaternion: np.ndarray, objects: list) -> ExploreAction:
        """Choose the next target from the current end-effector pose and the objects (ObjectStates)."""
        cfg, rng = self.config, self.rng
        lo, hi = np.array(cfg.workspace_min), np.array(cfg.workspace_max)
        ee = np.asarray(ee_position, dtype=np.float64)
        was_closed = self._closed
        if self._plan and rng.random() < cfg.abort_prob:
            self._plan = []
        if not self._plan and objects and rng.random() < cfg.pick_prob:
            self._target_object = int(rng.integers(len(objects)))
            self._closed = False  # let go of whatever is held first
            self._plan = self._play_plan(ee, objects[self._target_object])
        noise = rng.uniform(-cfg.max_delta, cfg.max_delta, size=3)
        if self._plan:
            waypoint, gripper, lift_from = self._plan[0]
            delta = np.clip(waypoint - ee, -cfg.max_delta, cfg.max_delta) + 0.1 * noise
            if gripper == "close":
                self._closed = True
            elif gripper == "open":
                self._closed = False
            if lift_from is not None and ee[2] > lift_from + 0.025 and not self._lifted(objects):
                self._plan, self._closed = [], False  # the arm came up without the object: a missed grasp
                delta = noise
            elif np.linalg.norm(waypoint - ee) < 0.01 or gripper is not None:
                self._plan.pop(0)
        else:
            delta = noise
            if rng.random() < cfg.free_toggle_prob:
                self._closed = not self._closed
        target = np.clip(ee + delta, lo, hi)
        if not self._plan:  # free motion passes over the objects instead of knocking them about
            target[2] = max(target[2], self._floor(target, objects))
        if cfg.max_yaw_delta > 0:
            self._yaw = float(np.clip(self._yaw + rng.uniform(-cfg.max_yaw_delta, cfg.max_yaw_delta), -0.5, 0.5))
        quat = _yaw_rotate(np.array([1.0, 0.0, 0.0, 0.0]), self._yaw)
        return ExploreAction(target, quat, self._closed, self._closed != was_closed)

    def _floor(self, target: np.ndarray, objects: list) -> float:
        """Lowest grasp-point height for free motion at ``target``: fingertips (1 cm below the grasp point)
        ``clearance`` above every object within 8 cm horizontally."""
        floor = -np.inf
        for o in objects:
            if np.linalg.norm(np.asarray(o.position[:2]) - target[:2]) < 0.08:
                top = float(o.position[2]) + float(max(o.size)) / 2.0 if o.size else float(o.position[2])
                floor = max(floor, top + 0.01 + self.config.clearance)
        return floor

    def _lifted(self, objects: list) -> bool:
        """The play's object is off the table (its centre 1 cm above its standing height)."""
        if self._target_object >= len(objects):
            return False
        o = objects[self._target_object]
        kind = OBJECT_KINDS.get(o.kind)
        standing = kind.height / 2.0 if kind is not None else float(o.size[2]) / 2.0
        return bool(o.position[2] > standing + 0.01)

    def decide(self, sim: FrankaSim) -> ExploreAction:
        """:meth:`act` on ``sim``'s current state."""
        pos, quat = sim.ee_pose()
        return self.act(pos, quat, sim.object_states())


def make_explorer(kind: str, seed: int, control_rate_hz: float, max_delta: float) -> object:
    """The exploration policy ``kind`` ("free": :class:`ExplorationPolicy`, "play": :class:`PlayPolicy`)."""
    if kind == "free":
        return ExplorationPolicy(ExploreConfig(seed=seed, control_rate_hz=control_rate_hz, max_delta=max_delta))
    if kind == "play":
        return PlayPolicy(PlayConfig(seed=seed, control_rate_hz=control_rate_hz, max_delta=max_delta))
    raise ValueError(f"exploration policy must be 'free' or 'play', got {kind!r}")


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
        act = policy.decide(sim)
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
