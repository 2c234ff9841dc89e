"""Manipulation tasks of the simulated Franka: seeded episodes, image sub-goals and success measured on the state.

The paper's three manipulation tasks (V-JEPA 2 section 4.2, Table 2), each with a cup or a box
(``vjepa_sim.objects``):

==============  ================================================  ===========================================
task            sub-goals (one goal image each, step budget)       success, measured on the simulator's state
==============  ================================================  ===========================================
``grasp``       ``grasped``: the object held 8 cm above its        the object is between the fingers (held) and
                spot (10 steps)                                    lifted >= 3 cm at the end
``reach_object`` the object starts held; ``moved``: held at a      still held, and its centre within 5 cm of the
                place 10-20 cm away (10 steps)                     goal position
``pick_place``  ``grasped`` (object 6 cm above its spot, 8 steps), the object rests on the table within 5 cm
                ``carried`` (held 8 cm above the target, 10),      (xy) of the target, the gripper open
                ``released`` (resting at the target, the open
                hand 5 cm above it, 4)
==============  ================================================  ===========================================

``reach`` (free-space reaching) stays in ``vjepa_sim.pipeline.eval`` as before.

**Steps** are the planner's: one end-effector move of at most ``cem_maxnorm`` (5 cm) per axis and/or one
gripper command, then the arm settles. The budgets are the steps the scripted controller
(``vjepa_sim.scripted``) needs on development seeds (>= 100) plus slack for imprecise steps: grasp 10 (it needs
5-6: approach, descend, close, lift), reach_object 10 (2-4), pick_place 8 / 10 / 4 (4-6 / 2-4 / 4: lower, lower,
open, rise). The carry and release budgets are the paper's; its grasp budget (4) is raised to 8 because our
steps are shorter (the paper's CEM moves up to 7.5 cm per axis, ours 5 cm) and a grasp from 8-14 cm above takes
four kinds of move.

**Rotation**: the wrist keeps one yaw (pointing down, yaw 0) in every start and goal state, as the paper's CEM
keeps rotation fixed. A cup can be taken at any yaw; a box only across its short side, so the task places the
box within 15 degrees of the wrist's grasp yaw (where its 12 cm side still fits between the open fingers), as
an experimenter sets a box down in front of a robot that cannot turn its wrist. A box's goal states show it
squared up in the fingers (yaw 0). The simulator takes any wrist yaw (``set_target`` quaternions), so a planner
that searches yaw could get boxes at any angle; that is not done here.

Everything here is numpy on plain values (no PyBullet): the simulator (``FrankaSim``) builds a scene from a
:class:`TaskEpisode`, and :func:`measure` judges a :class:`SceneState` read from it (or constructed in a test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vjepa_core.franka import MAX_GRIPPER_WIDTH  # Franka hand [m]

from .objects import (
    COLOUR_NAMES,
    OBJECT_KINDS,
    ObjectSpec,
    grasp_height,
    held_object_position,
    resting_height,
)

__all__ = [
    "BUDGETS",
    "GRIPPER_MODES",
    "MAX_GRIPPER_WIDTH",
    "OBJECT_REGION_MAX",
    "OBJECT_REGION_MIN",
    "RELEASE_CLEARANCE",
    "TASKS",
    "Measures",
    "SceneState",
    "SubGoal",
    "TaskEpisode",
    "goal_reached",
    "is_held",
    "make_episode",
    "measure",
    "observe",
    "render_goal",
    "reset_sim",
]

TASKS = ("grasp", "reach_object", "pick_place")
DOWN_QUAT = (1.0, 0.0, 0.0, 0.0)  # wrist yaw 0, pointing down (vjepa_sim.scene.DOWN_QUAT)

# Objects and goal positions stay in this table area (the pipeline cameras see all of it) [m].
OBJECT_REGION_MIN = (0.42, -0.15)
OBJECT_REGION_MAX = (0.62, 0.15)
BOX_YAW_RANGE = math.radians(15.0)  # a box lies within this yaw of the wrist's grasp yaw (graspable)

# Step budgets per sub-goal (see the module docstring for why).
BUDGETS = {"grasp": (10,), "reach_object": (10,), "pick_place": (8, 10, 4)}
# The gripper per sub-goal, as the planner is told (ReachGoals.gripper_modes): "plan" searches it with the arm
# (the paper's 7-D CEM), "hold" plans the arm only and keeps the gripper as it is. reach_object is carrying an
# object that is already held, so its goal holds the gripper: planned, this model opened it and dropped the
# object (the fingers are 1-2 px in the views); measured on development seed 9 before any evaluation seed:
# planned 1/6, held 6/6 (models/sim_manip/MODEL_CARD.md).
# pick_place's carry is the same as reach_object (the object is in the hand from the first sub-goal on), so it
# holds the gripper too; its grasp and release plan it.
GRIPPER_MODES = {"grasp": ("plan",), "reach_object": ("hold",), "pick_place": ("plan", "hold", "plan")}

# The released goal shows the open hand this far above the placed object's grasp point: a release is then
# visible (the object stays on the table as the hand rises; from above, an open hand holding the object looks
# like one that let go) [m].
RELEASE_CLEARANCE = 0.05
# Success thresholds (the issue's): lift >= 3 cm; within 5 cm of the goal (3-D for reach_object, xy for pick_place).
LIFT_SUCCESS = 0.03
RADIUS_SUCCESS = 0.05
# "Resting": on the table (centre within 1 cm of its standing height) and slower than 2 cm/s.
REST_TOLERANCE = 0.01
REST_SPEED = 0.02
# "Open": the fingers at least 1 cm wider than the object's grip width.
OPEN_MARGIN = 0.01
# A sub-goal counts as reached (the scripted controller moves on early, as the planner does at its energy
# threshold) when the end effector is within this of the goal position and the grasp matches the goal's.
REACHED_RADIUS = 0.015


@dataclass(frozen=True)
class SubGoal:
    """One goal state of an episode: what its goal image shows, and the steps allowed to reach it."""

    name: str  # "grasped", "moved", "carried", "released"
    ee_position: tuple  # end effector [m]
    ee_quaternion: tuple  # (x, y, z, w)
    gripper: float  # closedness in [0, 1] (1 - width / 0.08), as the gripper state reports it
    holds: bool  # the object is in the hand in this state
    object_poses: tuple  # ((position[3], quaternion[4]), ...) for every object of the scene
    max_steps: int


@dataclass(frozen=True)
class TaskEpisode:
    """A task episode, a function of (task, seed, kind): the scene, the start state and the sub-goals."""

    task: str
    seed: int
    kind: str  # the task object's kind ("cup" or "box")
    objects: tuple  # ObjectSpec per object (the scene); the task object is objects[task_object]
    task_object: int
    start_position: tuple
    start_quaternion: tuple
    start_gripper: float  # closedness (ignored when start_held: the reset grasps the object)
    start_held: bool
    goals: tuple  # SubGoal, in order
    target: tuple  # where the task object must end (centre): lift reference, goal position or place target

    @property
    def total_steps(self) -> int:
        """Sum of the sub-goals' step budgets."""
        return int(sum(g.max_steps for g in self.goals))

    def to_dict(self) -> dict:
        """A JSON-friendly description (records and reports)."""
        return {
            "task": self.task, "seed": self.seed, "kind": self.kind,
            "objects": [{"kind": o.kind, "colour": o.colour, "position": [round(float(v), 4) for v in o.position],
                         "yaw": round(float(o.yaw), 4)} for o in self.objects],
            "start_position": [round(float(v), 4) for v in self.start_position],
            "start_held": self.start_held,
            "target": [round(float(v), 4) for v in self.target],
            "goals": [{"name": g.name, "ee_position": [round(float(v), 4) for v in g.ee_position],
                       "gripper": round(float(g.gripper), 4), "holds": g.holds, "max_steps": g.max_steps}
                      for g in self.goals],
        }


def _yaw_quat(yaw: float) -> tuple:
    return (0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0))


def _held_gripper(kind: str) -> float:
    """Closedness the gripper reports when closed on an object of ``kind``."""
    return float(1.0 - OBJECT_KINDS[kind].grip_width / MAX_GRIPPER_WIDTH)


def _spot(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(OBJECT_REGION_MIN, OBJECT_REGION_MAX)


def _spot_at_distance(rng: np.random.Generator, origin: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """A spot of the region between ``lo`` and ``hi`` (xy) from ``origin`` (rejection sampling)."""
    for _ in range(10_000):
        xy = _spot(rng)
        if lo <= float(np.linalg.norm(xy - origin[:2])) <= hi:
            return xy
    raise ValueError(f"no spot {lo}-{hi} m from {origin[:2]} in the object region")


def make_episode(task: str, seed: int, kind: str | None = None) -> TaskEpisode:
    """The episode of ``task`` for ``seed``: object kind (``kind`` or else drawn from the seed), colour, layout,
    start state and sub-goals. Deterministic: the same arguments always give the same episode."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    rng = np.random.default_rng([seed, TASKS.index(task)])
    drawn_kind = ("cup", "box")[int(rng.integers(2))]
    kind = kind or drawn_kind
    if kind not in OBJECT_KINDS:
        raise ValueError(f"unknown object kind {kind!r} (known: {', '.join(OBJECT_KINDS)})")
    colour = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
    yaw = float(rng.uniform(-BOX_YAW_RANGE, BOX_YAW_RANGE) if kind == "box" else rng.uniform(-math.pi / 2, math.pi / 2))
    gz, rz = grasp_height(kind), resting_height(kind)
    held_gripper = _held_gripper(kind)
    held_yaw = 0.0 if OBJECT_KINDS[kind].needs_yaw else yaw  # a box is squared up by the closing fingers
    quat = DOWN_QUAT

    def held_pose(ee: np.ndarray) -> tuple:
        return (tuple(float(v) for v in held_object_position(ee)), _yaw_quat(held_yaw))

    def approach_start(obj_xy: np.ndarray) -> np.ndarray:
        """Above the object: within 5 cm horizontally, 8-14 cm above the grasp height, gripper open."""
        r, a = 0.05 * math.sqrt(rng.random()), rng.uniform(-math.pi, math.pi)
        return np.array([obj_xy[0] + r * math.cos(a), obj_xy[1] + r * math.sin(a), gz + rng.uniform(0.08, 0.14)])

    budgets = BUDGETS[task]
    if task == "grasp":
        p0 = _spot(rng)
        start = approach_start(p0)
        obj = ObjectSpec(kind, colour, (float(p0[0]), float(p0[1]), rz + 1e-4), yaw)
        ee = np.array([p0[0], p0[1], gz + 0.08])
        goals = (SubGoal("grasped", tuple(ee), quat, held_gripper, True, (held_pose(ee),), budgets[0]),)
        target = (float(p0[0]), float(p0[1]), rz)
        start_held = False
    elif task == "reach_object":
        lo = np.array([*OBJECT_REGION_MIN, gz + 0.04])
        hi = np.array([*OBJECT_REGION_MAX, gz + 0.16])
        start = rng.uniform(lo, hi)
        for _ in range(10_000):
            ee = rng.uniform(lo, hi)
            if 0.10 <= float(np.linalg.norm(ee - start)) <= 0.20:
                break
        else:  # pragma: no cover - the box is 20 x 30 x 12 cm, a 10-20 cm pair is always found
            raise ValueError("no goal 10-20 cm from the start")
        obj = ObjectSpec(kind, colour, tuple(float(v) for v in held_object_position(start)), held_yaw)
        goals = (SubGoal("moved", tuple(ee), quat, held_gripper, True, (held_pose(ee),), budgets[0]),)
        target = held_pose(ee)[0]
        start_held = True
    else:  # pick_place
        p0 = _spot(rng)
        p1 = _spot_at_distance(rng, p0, 0.12, 0.22)
        start = approach_start(p0)
        obj = ObjectSpec(kind, colour, (float(p0[0]), float(p0[1]), rz + 1e-4), yaw)
        e1 = np.array([p0[0], p0[1], gz + 0.06])
        e2 = np.array([p1[0], p1[1], gz + 0.08])
        e3 = np.array([p1[0], p1[1], gz + RELEASE_CLEARANCE])
        rest = ((float(p1[0]), float(p1[1]), rz), _yaw_quat(held_yaw))
        goals = (
            SubGoal("grasped", tuple(e1), quat, held_gripper, True, (held_pose(e1),), budgets[0]),
            SubGoal("carried", tuple(e2), quat, held_gripper, True, (held_pose(e2),), budgets[1]),
            SubGoal("released", tuple(e3), quat, 0.0, False, (rest,), budgets[2]),
        )
        target = (float(p1[0]), float(p1[1]), rz)
        start_held = False
    return TaskEpisode(task, seed, kind, (obj,), 0, tuple(float(v) for v in start), quat, 0.0, start_held, goals,
                       tuple(float(v) for v in target))


# ------------------------------------------------------------------------------------------------ measures
@dataclass
class SceneState:
    """What the success measures look at: the end effector, the gripper and the task object (true state)."""

    ee_position: np.ndarray
    ee_quaternion: np.ndarray
    gripper_width: float  # [m]
    kind: str
    object_position: np.ndarray
    object_quaternion: np.ndarray
    object_speed: float = 0.0  # [m/s]
    finger_contacts: tuple = (False, False)  # (left, right) finger touches the object


@dataclass
class Measures:
    """The task measures of one state (published by sim_node on its task state, recorded by the eval)."""

    held: bool
    lift: float  # object centre above its standing height [m]
    distance: float  # object centre to the episode's target [m]
    distance_xy: float
    gripper_open: bool
    resting: bool
    success: bool
    detail: str = ""


def _rotate_inv(quat: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``v`` expressed in the frame of the unit quaternion ``quat`` (x, y, z, w)."""
    x, y, z, w = (float(c) for c in quat)
    rot = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    return rot.T @ np.asarray(v, dtype=np.float64)


def is_held(state: SceneState) -> bool:
    """The object is between the fingers, the gripper is closed on it and both fingers touch it.

    In the gripper frame (z along the fingers, toward their tips; y across the fingers): the object's centre
    lies between the finger pads (|y| within half the opening), over the 3 cm wide pads (|x| <= 3 cm) and
    within their length (-6 cm .. +3 cm along z around the grasp point, which is 1 cm above the tips); the
    opening is about the object's grip width (from 1.5 cm less, squeezed, to less than ``OPEN_MARGIN`` more: a
    box a few degrees askew holds the fingers a little wider).
    """
    grip = OBJECT_KINDS[state.kind].grip_width
    local = _rotate_inv(state.ee_quaternion, np.asarray(state.object_position) - np.asarray(state.ee_position))
    between = abs(local[1]) <= state.gripper_width / 2.0 + 0.003 and abs(local[0]) <= 0.03 and -0.06 <= local[2] <= 0.03
    closed_on_it = grip - 0.015 <= state.gripper_width < grip + OPEN_MARGIN
    return bool(between and closed_on_it and all(state.finger_contacts))


def measure(episode: TaskEpisode, state: SceneState) -> Measures:
    """The task's success measure (and its parts) on ``state``: see the module docstring's table."""
    kind = OBJECT_KINDS[state.kind]
    held = is_held(state)
    obj = np.asarray(state.object_position, dtype=np.float64)
    target = np.asarray(episode.target, dtype=np.float64)
    lift = float(obj[2] - resting_height(state.kind))
    dist = float(np.linalg.norm(obj - target))
    dist_xy = float(np.linalg.norm(obj[:2] - target[:2]))
    gripper_open = bool(state.gripper_width >= kind.grip_width + OPEN_MARGIN)
    resting = bool(abs(lift) <= REST_TOLERANCE and state.object_speed <= REST_SPEED and not held)
    if episode.task == "grasp":
        success = held and lift >= LIFT_SUCCESS
        detail = f"held {held}, lifted {lift * 100:.1f} cm (>= {LIFT_SUCCESS * 100:.0f} cm needed)"
    elif episode.task == "reach_object":
        success = held and dist <= RADIUS_SUCCESS
        detail = f"held {held}, {dist * 100:.1f} cm from the goal position (<= {RADIUS_SUCCESS * 100:.0f} cm needed)"
    else:
        success = resting and gripper_open and dist_xy <= RADIUS_SUCCESS
        detail = (f"resting {resting}, gripper open {gripper_open}, {dist_xy * 100:.1f} cm (xy) from the target "
                  f"(<= {RADIUS_SUCCESS * 100:.0f} cm needed)")
    return Measures(held, lift, dist, dist_xy, gripper_open, resting, bool(success), detail)


# ------------------------------------------------------------------------------------- with a simulator
# These take a vjepa_sim.scene.FrankaSim (not imported here, so this module stays PyBullet-free).
def reset_sim(sim: object, episode: TaskEpisode) -> tuple:
    """Reset ``sim`` into ``episode``'s start state (scene, arm, gripper, object in hand or on the table)."""
    return sim.reset(episode.seed, start_pose=(episode.start_position, episode.start_quaternion),
                     gripper=episode.start_gripper, objects=list(episode.objects),
                     held=episode.task_object if episode.start_held else None)


def observe(sim: object, episode: TaskEpisode) -> SceneState:
    """The measures' view of ``sim``'s current state for ``episode``'s task object."""
    i = episode.task_object
    pos, quat = sim.ee_pose()
    obj = sim.object_states()[i]
    return SceneState(pos, quat, sim.gripper_width(), episode.kind, obj.position, obj.quaternion,
                      float(np.linalg.norm(sim.object_velocity(i))), sim.finger_contacts(i))


def render_goal(sim: object, episode: TaskEpisode, index: int, camera: str | None = None) -> object:
    """Goal image ``index`` of ``episode`` (arm, gripper and objects in the sub-goal's state); the running
    episode is left untouched (``FrankaSim.render_goal``)."""
    if not 0 <= index < len(episode.goals):
        raise ValueError(f"goal index must be in 0..{len(episode.goals) - 1}, got {index}")
    g = episode.goals[index]
    return sim.render_goal(g.ee_position, g.ee_quaternion, g.gripper, camera, objects=list(g.object_poses))


def goal_reached(goal: SubGoal, state: SceneState) -> bool:
    """The state shows the sub-goal: end effector within 1.5 cm of it, the object held iff the goal holds it,
    and the gripper open in an open-gripper goal."""
    near = float(np.linalg.norm(np.asarray(state.ee_position) - np.asarray(goal.ee_position))) <= REACHED_RADIUS
    held = is_held(state)
    if goal.holds:
        return near and held
    grip = OBJECT_KINDS[state.kind].grip_width
    return near and not held and state.gripper_width >= grip + OPEN_MARGIN
