"""Headless PyBullet Franka Panda on a table with coloured blocks and fixed exterior cameras (no ROS).

The ROS node (``sim_node``), the CLI (``vjepa-sim goal``/``explore``), the tests and the benchmark all drive
this one class, :class:`FrankaSim`:

- physics runs at a fixed step (``SimConfig.physics_rate_hz``), so a run is a function of its seed and
  commands only (PyBullet ``DIRECT`` is deterministic; every reset rebuilds the world from scratch);
- a Cartesian *tracker* plays the role of franka_ros2's Cartesian impedance controller: the commanded pose
  approaches the latest target with capped linear/angular speed, and damped-least-squares IK with a
  null-space pull toward a fixed rest pose turns it into joint position targets (joint limits and joint
  speed limits are enforced by the motors);
- inverse kinematics runs in a second, kinematics-only PyBullet client, so solving never disturbs the
  episode; goal images are rendered in the main client between ``saveState`` and ``restoreState``;
- the two fingers are coupled by a gear constraint (the Franka hand's fingers move together), so a
  force-limited grasp centres the object between them and holds it without slipping when the arm lifts and
  carries it (``vjepa_sim.objects`` has the cup and box of the manipulation tasks).

Frames: the robot base (``panda_link0``, franka's ``fr3_link0``) is the world origin, z up; the end effector
is ``panda_grasptarget`` (between the fingertips, like franka's ``fr3_hand_tcp``). Quaternions are
``(x, y, z, w)`` as in ROS and PyBullet.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import pybullet as p
import pybullet_data

from vjepa_core.franka import MAX_GRIPPER_WIDTH  # Franka hand [m]

from .config import CameraConfig, SimConfig
from .geometry import quat_angle, quat_mul, quat_normalize, quat_slerp
from .objects import OBJECT_KINDS, ObjectSpec, held_object_position, manipulation_layout

__all__ = [
    "DOWN_QUAT",
    "MAX_GRIPPER_WIDTH",
    "REST_POSE",
    "FrankaSim",
    "GoalImage",
    "ObjectSpec",
    "ObjectState",
    "TargetResult",
    "wrist_quat",
    "wrist_yaw",
    "yaw_quat",
]

PANDA_URDF = "franka_panda/panda.urdf"
ARM_JOINTS = tuple(range(7))
FINGER_JOINTS = (9, 10)
EE_LINK = 11  # panda_grasptarget
# Franka's "ready" pose: end effector at about (0.31, 0, 0.49) pointing straight down.
REST_POSE = (0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4)
DOWN_QUAT = np.array([1.0, 0.0, 0.0, 0.0])  # gripper z axis along -z of the base, fingers along y
ARM_MAX_FORCE = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)  # joint torque limits [Nm]
ARM_MAX_VELOCITY = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)  # Panda joint speed limits [rad/s]
FINGER_MOVE_FORCE = 20.0  # [N] per finger when moving (not grasping)
FINGER_GEAR_FORCE = 50.0  # [N] the coupling constraint may use to keep both fingers at the same opening
HELD_START_SETTLE_S = 0.25  # sim time a reset that starts with an object in the hand lets the grasp settle
OBJECT_FRICTION = 1.0  # lateral friction of the objects (the fingers have 1.5; PyBullet multiplies them)
# Rolling friction of the manipulation objects [m]: a cup knocked over stops within ~10 cm instead of rolling off
# the table (0 lets a cylinder on its side roll on indefinitely).
OBJECT_ROLLING_FRICTION = 0.002
LIGHT_DIRECTION = (0.4, -0.6, 1.0)
IK_ROUNDS = 6  # re-seeded IK solves at most per query
# Low-poly arm colours by link index (others white): flange dark, hand white, fingers dark.
LINK_COLOURS = {7: (0.2, 0.2, 0.22), 9: (0.25, 0.25, 0.27), 10: (0.25, 0.25, 0.27)}

# Object colours the layout draws from (name, rgb). Distinct hues so a goal image is unambiguous.
PALETTE = (
    ("red", (0.85, 0.12, 0.10)),
    ("green", (0.10, 0.65, 0.20)),
    ("blue", (0.10, 0.30, 0.90)),
    ("yellow", (0.95, 0.85, 0.10)),
    ("orange", (1.00, 0.50, 0.05)),
    ("purple", (0.55, 0.20, 0.80)),
    ("cyan", (0.10, 0.80, 0.85)),
    ("white", (0.92, 0.92, 0.92)),
)


@dataclass
class TargetResult:
    """What the tracker did with a requested end-effector target."""

    status: str  # "accepted", "clamped" (moved into the workspace and accepted), "rejected", "unreachable"
    message: str
    position: np.ndarray | None = None  # the target now tracked (after clamping), None if not accepted
    quaternion: np.ndarray | None = None

    @property
    def accepted(self) -> bool:
        """True when the tracker now follows this target."""
        return self.status in ("accepted", "clamped")


@dataclass
class GoalImage:
    """A rendered goal view and the end-effector pose the IK actually reached for it."""

    image: np.ndarray  # [H, W, 3] uint8 RGB
    position: np.ndarray
    quaternion: np.ndarray
    position_error: float  # |achieved - requested| [m]
    rotation_error: float  # [rad]
    reachable: bool  # errors within the configured IK tolerances


@dataclass
class ObjectState:
    """Pose and identity of one object on the table."""

    name: str  # colour name, e.g. "red"
    shape: str  # "box" or "cylinder"
    rgb: tuple
    position: np.ndarray
    quaternion: np.ndarray
    kind: str = "block"  # "block" (the reach scenes' cubes and cylinders) or a key of objects.OBJECT_KINDS
    size: tuple = ()  # full extents (x, y, z) [m]


def _check_vec(v: object, n: int, what: str) -> np.ndarray:
    """``v`` as a float64 vector of length ``n`` with finite values, else ``ValueError``."""
    try:
        a = np.asarray(v, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be {n} numbers, got {v!r}") from err
    if a.shape != (n,):
        raise ValueError(f"{what} must be {n} numbers, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} contains NaN or inf: {a.tolist()}")
    return a


def yaw_quat(yaw: float) -> np.ndarray:
    """Rotation about the base z axis."""
    return np.array([0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)])


def wrist_quat(yaw: float) -> np.ndarray:
    """The pointing-down gripper turned by ``yaw`` about the base z axis (fingers open along the turned y)."""
    return quat_mul(yaw_quat(yaw), DOWN_QUAT)


def wrist_yaw(quaternion: object) -> float:
    """The yaw of a (roughly) pointing-down gripper orientation: the inverse of :func:`wrist_quat`."""
    x, y, z, w = quat_mul(np.asarray(quaternion, dtype=np.float64), DOWN_QUAT)  # DOWN_QUAT is its own inverse
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


class FrankaSim:
    """A deterministic simulated Franka Panda scene. Not thread-safe: callers serialise access."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.config.validate()
        self._client = p.connect(p.DIRECT)
        self._ik_client = p.connect(p.DIRECT)
        self._steps = 0  # physics steps since construction: sim time never jumps back, even on reset
        self._episode_steps = 0  # since the last reset: the tracker's phase, so episodes replay exactly
        self._control_every = max(1, int(round(self.config.physics_rate_hz / self.config.control_rate_hz)))
        self._cameras = {c.name: c for c in self.config.cameras}
        self._view = {c.name: self._camera_matrices(c) for c in self.config.cameras}
        self._setup_ik_client()
        self.objects: list[ObjectState] = []
        self.last_tracking_warning = ""
        self.seed = self.config.seed
        self.reset(self.config.seed)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Disconnect both PyBullet clients (idempotent)."""
        for cid in (self._client, self._ik_client):
            if cid >= 0 and p.isConnected(cid):
                p.disconnect(cid)
        self._client = self._ik_client = -1

    def __enter__(self) -> FrankaSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def time(self) -> float:
        """Sim time [s] since construction (monotonic across resets)."""
        return self._steps * self.config.physics_dt

    @property
    def camera_names(self) -> list:
        """Configured camera names, first = default."""
        return [c.name for c in self.config.cameras]

    # ------------------------------------------------------------------ world building
    def _setup_ik_client(self) -> None:
        """Load a kinematics-only Panda into the IK client and read the joint limits."""
        c = self._ik_client
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=c)
        self._ik_robot = p.loadURDF(PANDA_URDF, useFixedBase=True, physicsClientId=c)
        infos = [p.getJointInfo(self._ik_robot, j, physicsClientId=c) for j in ARM_JOINTS + FINGER_JOINTS]
        self._ll = [i[8] for i in infos]
        self._ul = [i[9] for i in infos]
        self._jr = [hi - lo for lo, hi in zip(self._ll, self._ul)]
        self._rest_full = list(REST_POSE) + [0.04, 0.04]
        self._arm_lo = np.array(self._ll[:7])
        self._arm_hi = np.array(self._ul[:7])

    def _build_world(self) -> None:
        """Rebuild the whole world from scratch so every reset starts from identical engine state."""
        c = self._client
        p.resetSimulation(physicsClientId=c)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=c)
        p.setPhysicsEngineParameter(
            fixedTimeStep=self.config.physics_dt, deterministicOverlappingPairs=1, physicsClientId=c
        )
        p.setGravity(0.0, 0.0, -9.81, physicsClientId=c)
        # A grey table whose top is z = 0 (the robot stands on it) and a brown mat under the workspace for
        # contrast with the blocks. No floor: large far-away faces cost the TinyRenderer more than they show.
        self._static_box((0.9, 0.9, 0.025), (0.3, 0.0, -0.025), (0.42, 0.42, 0.45))
        self._static_box((0.22, 0.32, 0.0005), (0.52, 0.0, 0.0005), (0.45, 0.30, 0.18), collide=False)
        self._robot = self._load_panda(c, self.config.arm_meshes)
        for j in FINGER_JOINTS:
            p.changeDynamics(self._robot, j, lateralFriction=1.5, spinningFriction=0.01, physicsClientId=c)
        # Couple the fingers (equal openings), as the Franka hand's mechanism does: without it the two
        # independent finger motors balance at any offset and a held object slides sideways between them.
        # In free motion the fingers already move together (the constraint changes joint angles by < 1e-5 rad).
        gear = p.createConstraint(self._robot, FINGER_JOINTS[0], self._robot, FINGER_JOINTS[1], p.JOINT_GEAR,
                                  [1, 0, 0], [0, 0, 0], [0, 0, 0], physicsClientId=c)
        p.changeConstraint(gear, gearRatio=-1, erp=0.1, maxForce=FINGER_GEAR_FORCE, physicsClientId=c)

    @staticmethod
    def _load_panda(client: int, meshes: str) -> int:
        """Load the fixed-base Panda; ``meshes="collision"`` swaps in the low-poly meshes for rendering.

        The stock visual meshes (~10 MB of OBJ) make the CPU TinyRenderer about 5x slower than the collision
        meshes, which keep the arm's silhouette; the low-poly arm is coloured like a Franka (white links,
        dark flange and fingers).
        """
        if meshes == "visual":
            return p.loadURDF(PANDA_URDF, useFixedBase=True, flags=p.URDF_ENABLE_CACHED_GRAPHICS_SHAPES,
                              physicsClientId=client)
        data = pybullet_data.getDataPath()
        with open(os.path.join(data, PANDA_URDF), encoding="utf-8") as fh:
            urdf = fh.read()
        mesh_dir = os.path.join(data, os.path.dirname(PANDA_URDF), "meshes") + "/"
        urdf = urdf.replace("package://meshes/visual/", mesh_dir + "collision/")
        urdf = urdf.replace("package://meshes/", mesh_dir)
        fd, path = tempfile.mkstemp(prefix="vjepa_sim_panda_", suffix=".urdf")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(urdf)
            robot = p.loadURDF(path, useFixedBase=True, flags=p.URDF_ENABLE_CACHED_GRAPHICS_SHAPES,
                               physicsClientId=client)
        finally:
            os.remove(path)
        for link in range(-1, p.getNumJoints(robot, physicsClientId=client)):
            rgb = LINK_COLOURS.get(link, (0.9, 0.9, 0.92))
            p.changeVisualShape(robot, link, rgbaColor=(*rgb, 1.0), physicsClientId=client)
        return robot

    def _static_box(self, half: tuple, pos: tuple, rgb: tuple, collide: bool = True) -> int:
        """Add a fixed box (mass 0); ``collide=False`` makes it visual-only."""
        c = self._client
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=(*rgb, 1.0), physicsClientId=c)
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=c) if collide else -1
        return p.createMultiBody(0.0, col, vis, basePosition=pos, physicsClientId=c)

    def _place_objects(self, rng: np.random.Generator) -> None:
        """Put ``num_objects`` blocks of distinct random colours at random non-overlapping table spots."""
        cfg, c = self.config, self._client
        s = cfg.object_size
        colours = [PALETTE[i] for i in rng.permutation(len(PALETTE))[: cfg.num_objects]]
        spots: list = []
        lo, hi = np.array(cfg.object_min_xy), np.array(cfg.object_max_xy)
        for _ in range(cfg.num_objects):
            for _attempt in range(1000):
                xy = rng.uniform(lo, hi)
                if all(np.linalg.norm(xy - o) > 2.0 * s for o in spots):
                    break
            else:
                raise ValueError("cannot place the objects without overlap: enlarge object_min_xy/max_xy")
            spots.append(xy)
        yaws = rng.uniform(-math.pi, math.pi, size=cfg.num_objects)
        self.objects = []
        self._object_ids = []
        for i, ((name, rgb), xy, yaw) in enumerate(zip(colours, spots, yaws)):
            shape = "cylinder" if i % 3 == 2 else "box"
            if shape == "box":
                vis = p.createVisualShape(p.GEOM_BOX, halfExtents=(s / 2,) * 3, rgbaColor=(*rgb, 1.0),
                                          physicsClientId=c)
                col = p.createCollisionShape(p.GEOM_BOX, halfExtents=(s / 2,) * 3, physicsClientId=c)
            else:
                vis = p.createVisualShape(p.GEOM_CYLINDER, radius=s / 2, length=s, rgbaColor=(*rgb, 1.0),
                                          physicsClientId=c)
                col = p.createCollisionShape(p.GEOM_CYLINDER, radius=s / 2, height=s, physicsClientId=c)
            pos = (float(xy[0]), float(xy[1]), s / 2 + 1e-4)
            quat = yaw_quat(float(yaw))
            body = p.createMultiBody(0.1, col, vis, basePosition=pos, baseOrientation=quat, physicsClientId=c)
            p.changeDynamics(body, -1, lateralFriction=1.0, spinningFriction=0.005, physicsClientId=c)
            self._object_ids.append(body)
            self.objects.append(ObjectState(name, shape, rgb, np.array(pos), quat, "block", (s, s, s)))

    def _place_specs(self, specs: list) -> None:
        """Build the objects ``specs`` describe (kinds of ``objects.OBJECT_KINDS``, e.g. a cup or a box)."""
        c = self._client
        colours = dict(PALETTE)
        self.objects = []
        self._object_ids = []
        for spec in specs:
            spec.validate()
            kind = OBJECT_KINDS[spec.kind]
            rgba = (*colours[spec.colour], 1.0)
            if kind.shape == "box":
                half = tuple(v / 2.0 for v in kind.size)
                vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba, physicsClientId=c)
                col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=c)
            else:
                radius, height = kind.size[0] / 2.0, kind.size[2]
                vis = p.createVisualShape(p.GEOM_CYLINDER, radius=radius, length=height, rgbaColor=rgba,
                                          physicsClientId=c)
                col = p.createCollisionShape(p.GEOM_CYLINDER, radius=radius, height=height, physicsClientId=c)
            pos = tuple(float(v) for v in spec.position)
            quat = yaw_quat(float(spec.yaw))
            body = p.createMultiBody(kind.mass, col, vis, basePosition=pos, baseOrientation=quat, physicsClientId=c)
            p.changeDynamics(body, -1, lateralFriction=OBJECT_FRICTION, spinningFriction=0.005,
                             rollingFriction=OBJECT_ROLLING_FRICTION, physicsClientId=c)
            self._object_ids.append(body)
            self.objects.append(ObjectState(spec.colour, kind.shape, colours[spec.colour], np.array(pos), quat,
                                            kind.name, tuple(kind.size)))

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | None = None, start_pose: tuple | None = None, gripper: float = 0.0,
              objects: list | None = None, held: int | None = None) -> tuple:
        """Start a new episode: rebuild the world, lay out the objects, place the arm.

        The objects are ``objects`` (a list of :class:`~vjepa_sim.objects.ObjectSpec`, e.g. a task's scene) or
        else the seeded layout of ``config.object_set`` (``blocks``: the reach scenes' coloured blocks;
        ``manipulation``: one cup or box). ``start_pose`` = ``(position[3], quaternion[4])`` places the end
        effector there (IK from the rest pose); otherwise a seeded random position in ``start_min..start_max``
        pointing down. ``gripper`` is the closedness in [0, 1]. ``held`` = an object index starts that object
        in the hand: it is put between the open fingers at the start pose, the gripper grasps it with
        ``gripper_force`` and the grasp settles for ``HELD_START_SETTLE_S`` of sim time (``gripper`` is then
        ignored). Returns the end-effector pose ``(position, quaternion)`` after the reset.
        Raises ``ValueError`` for a negative seed, a gripper outside [0, 1], bad object specs or a bad
        ``held`` index (nothing changes), and for an invalid or unreachable start pose (the episode is then
        reset with the seed's random start instead, so the sim stays usable).
        """
        cfg = self.config
        seed = cfg.seed if seed is None else int(seed)
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        g = float(gripper)
        if not (math.isfinite(g) and 0.0 <= g <= 1.0):
            raise ValueError(f"gripper closedness must be in [0, 1], got {gripper!r}")
        if objects is not None:
            objects = list(objects)
            for spec in objects:
                spec.validate()
        n_objects = len(objects) if objects is not None else None
        if held is not None and not (n_objects is not None and 0 <= int(held) < n_objects):
            raise ValueError(f"held must index one of the given objects (0..{(n_objects or 0) - 1}), got {held}")
        rng = np.random.default_rng(seed)
        self.seed = seed
        self._build_world()
        if objects is not None:
            self._place_specs(objects)
        elif cfg.object_set == "manipulation":
            self._place_specs(manipulation_layout(rng, cfg.object_min_xy, cfg.object_max_xy, cfg.box_yaw_range))
        else:
            self._place_objects(rng)
        # Always draw the random start, even when a start pose is given, so layouts match across modes.
        pos = rng.uniform(cfg.start_min, cfg.start_max)
        yaw = rng.uniform(-cfg.start_yaw_range, cfg.start_yaw_range) if cfg.start_yaw_range > 0 else 0.0
        quat = quat_mul(yaw_quat(yaw), DOWN_QUAT)
        error = None
        if start_pose is not None:
            try:
                pos, quat = self._validated_start(start_pose)
            except ValueError as err:
                error = err
        q, ep, er = self._solve_ik(pos, quat, REST_POSE)
        if error is None and start_pose is not None and (ep > cfg.ik_tolerance or er > cfg.ik_rot_tolerance):
            error = ValueError(f"start pose unreachable (IK misses it by {ep * 100:.1f} cm, {er:.2f} rad)")
        if error is not None:  # fall back to the seeded random start, then report
            pos = rng.uniform(cfg.start_min, cfg.start_max)
            q, _, _ = self._solve_ik(pos, DOWN_QUAT, REST_POSE)
        self._teleport_arm(q, (1.0 - g) * MAX_GRIPPER_WIDTH)
        self._q_cmd = q.copy()
        self._finger_cmd = self._finger_target = (1.0 - g) * MAX_GRIPPER_WIDTH / 2.0
        self._finger_speed = cfg.gripper_speed / 2.0
        self._finger_force = FINGER_MOVE_FORCE
        ee_pos, ee_quat = self.ee_pose()
        self._cmd_pos, self._cmd_quat = ee_pos.copy(), ee_quat.copy()
        self._target_pos, self._target_quat = ee_pos.copy(), ee_quat.copy()
        self.last_tracking_warning = ""
        self._episode_steps = 0
        self._apply_motors()
        if held is not None and error is None:
            self._start_held(int(held))
            ee_pos, ee_quat = self.ee_pose()
        if error is not None:
            raise error
        return ee_pos, ee_quat

    def _start_held(self, index: int) -> None:
        """Put object ``index`` between the fingers at the current pose, grasp it and let the grasp settle."""
        c = self._client
        obj = self.objects[index]
        kind = OBJECT_KINDS.get(obj.kind)
        grip = kind.grip_width if kind is not None else float(obj.size[1])
        ee_pos, ee_quat = self.ee_pose()
        # the object's y side lies across the fingers: its yaw is the wrist's (the box's long side along x)
        p.resetBasePositionAndOrientation(self._object_ids[index], list(held_object_position(ee_pos)),
                                          list(yaw_quat(wrist_yaw(ee_quat))), physicsClientId=c)
        width = min(MAX_GRIPPER_WIDTH, grip + 0.004)
        for j in FINGER_JOINTS:
            p.resetJointState(self._robot, j, width / 2.0, 0.0, physicsClientId=c)
        self._finger_cmd = width / 2.0
        self.set_gripper(0.0, grasp=True)
        self._apply_motors()
        self.step(int(round(HELD_START_SETTLE_S * self.config.physics_rate_hz)))

    def _validated_start(self, start_pose: tuple) -> tuple:
        """Check a requested start pose: finite, unit-normalisable quaternion, inside the workspace."""
        pos = _check_vec(start_pose[0], 3, "start position")
        quat = quat_normalize(_check_vec(start_pose[1], 4, "start quaternion"))
        lo, hi = np.array(self.config.workspace_min), np.array(self.config.workspace_max)
        if np.any(pos < lo) or np.any(pos > hi):
            raise ValueError(f"start position {pos.round(3).tolist()} is outside the workspace {lo} .. {hi}")
        return pos, quat

    def _teleport_arm(self, q: np.ndarray, width: float) -> None:
        """Set joint positions directly (zero velocity), without physics."""
        c = self._client
        for j, qj in zip(ARM_JOINTS, q):
            p.resetJointState(self._robot, j, float(qj), 0.0, physicsClientId=c)
        for j in FINGER_JOINTS:
            p.resetJointState(self._robot, j, width / 2.0, 0.0, physicsClientId=c)

    # ------------------------------------------------------------------ kinematics
    def _solve_ik(self, pos: np.ndarray, quat: np.ndarray, seed_q: tuple) -> tuple:
        """IK in the kinematics-only client from ``seed_q``: returns (q[7], position error, rotation error).

        Deterministic: the result depends only on (pos, quat, seed_q), never on the episode's state.
        """
        c, r = self._ik_client, self._ik_robot
        pos_l, quat_l = [float(x) for x in pos], [float(x) for x in quat]
        q = np.asarray(seed_q, dtype=np.float64)
        ep = er = math.inf
        # Round 0 uses the null-space pull toward the rest pose (picks the redundant elbow consistently);
        # that solve trades mm of accuracy for it, so later rounds refine with plain damped least squares
        # seeded from the previous answer (max error < 1 mm except at the edge of reach).
        for k in range(IK_ROUNDS):
            for j, qj in zip(ARM_JOINTS, q):
                p.resetJointState(r, j, float(qj), physicsClientId=c)
            null_space = (
                dict(lowerLimits=self._ll, upperLimits=self._ul, jointRanges=self._jr, restPoses=self._rest_full)
                if k == 0 else {}
            )
            sol = p.calculateInverseKinematics(
                r, EE_LINK, pos_l, quat_l, maxNumIterations=100, residualThreshold=1e-6, physicsClientId=c,
                **null_space,
            )
            q = np.clip(np.array(sol[:7]), self._arm_lo, self._arm_hi)
            for j, qj in zip(ARM_JOINTS, q):
                p.resetJointState(r, j, float(qj), physicsClientId=c)
            ls = p.getLinkState(r, EE_LINK, computeForwardKinematics=True, physicsClientId=c)
            ep = float(np.linalg.norm(np.array(ls[4]) - pos))
            er = quat_angle(np.array(ls[5]), quat)
            if ep < 2e-4 and er < 2e-3:
                break
        return q, ep, er

    def _reachable_ik(self, pos: np.ndarray, quat: np.ndarray) -> tuple:
        """IK from the current command, retried from the rest pose; returns (q, pos err, rot err, ok)."""
        cfg = self.config
        best = None
        for seed_q in (tuple(self._q_cmd), REST_POSE):
            q, ep, er = self._solve_ik(pos, quat, seed_q)
            if ep <= cfg.ik_tolerance and er <= cfg.ik_rot_tolerance:
                return q, ep, er, True
            if best is None or ep < best[1]:
                best = (q, ep, er)
        return best[0], best[1], best[2], False

    # ------------------------------------------------------------------ commands
    def set_target(self, position: object, quaternion: object) -> TargetResult:
        """Ask the tracker to move the end effector to a pose in the base frame.

        NaN/inf or a degenerate quaternion: rejected. Outside the workspace box: clamped into it
        (``workspace_policy: clamp``) or rejected. IK cannot reach it within ``ik_tolerance``: unreachable,
        and the previous target stays. The quaternion is normalised, as franka's impedance controller does.
        """
        try:
            pos = _check_vec(position, 3, "target position")
            quat = quat_normalize(_check_vec(quaternion, 4, "target orientation"))
        except ValueError as err:
            return TargetResult("rejected", f"target rejected: {err}")
        status, message = "accepted", "target accepted"
        lo, hi = np.array(self.config.workspace_min), np.array(self.config.workspace_max)
        if np.any(pos < lo) or np.any(pos > hi):
            box = f"workspace x[{lo[0]:.2f},{hi[0]:.2f}] y[{lo[1]:.2f},{hi[1]:.2f}] z[{lo[2]:.2f},{hi[2]:.2f}]"
            if self.config.workspace_policy == "reject":
                return TargetResult("rejected", f"target {pos.round(3).tolist()} rejected: outside {box}")
            clamped = np.clip(pos, lo, hi)
            status = "clamped"
            message = f"target {pos.round(3).tolist()} outside {box}: clamped to {clamped.round(3).tolist()}"
            pos = clamped
        _, ep, er, ok = self._reachable_ik(pos, quat)
        if not ok:
            clamp_note = f" ({message})" if status == "clamped" else ""
            return TargetResult(
                "unreachable",
                f"target {pos.round(3).tolist()} unreachable: IK misses it by {ep * 100:.1f} cm / {er:.2f} rad;"
                f" keeping the previous target{clamp_note}",
            )
        self._target_pos, self._target_quat = pos, quat
        return TargetResult(status, message, pos.copy(), quat.copy())

    def set_gripper(self, width: float, speed: float = 0.0, grasp: bool = False, force: float = 0.0) -> str:
        """Move the fingers to an opening ``width`` [m] at ``speed`` [m/s] (0 = default).

        ``grasp=True`` closes with at most ``force`` [N] (0 = default) and stops at contact, like
        franka_gripper's grasp action. Returns "" or a warning when the width was clamped to [0, 0.08].
        Raises ``ValueError`` for NaN/inf or negative speed/force (nothing changes then).
        """
        vals = _check_vec([width, speed, force], 3, "gripper command (width, speed, force)")
        if vals[1] < 0.0 or vals[2] < 0.0:
            raise ValueError(f"gripper speed and force must be >= 0, got {vals[1]}, {vals[2]}")
        w = float(np.clip(vals[0], 0.0, MAX_GRIPPER_WIDTH))
        warning = "" if w == vals[0] else f"gripper width {vals[0]:.3f} m clamped to {w:.3f} m"
        # A new command starts from where the fingers are, as franka_gripper's actions do: after a grasp that
        # stopped at an object the command has run on toward 0, and opening from there would wait until it
        # wound back up to the object's width.
        self._finger_cmd = float(self.finger_positions().mean())
        self._finger_target = w / 2.0
        self._finger_speed = (vals[1] or self.config.gripper_speed) / 2.0
        self._finger_force = (vals[2] or self.config.gripper_force) if grasp else FINGER_MOVE_FORCE
        return warning

    # ------------------------------------------------------------------ stepping
    def step(self, n: int = 1) -> None:
        """Advance ``n`` physics steps (tracker and gripper update at ``control_rate_hz``)."""
        for _ in range(int(n)):
            if self._episode_steps % self._control_every == 0:
                self._control_update(self._control_every * self.config.physics_dt)
            p.stepSimulation(physicsClientId=self._client)
            self._steps += 1
            self._episode_steps += 1

    def _control_update(self, dt: float) -> None:
        """One tracker tick: move the commanded pose toward the target, solve IK, set motor targets."""
        cfg = self.config
        d = self._target_pos - self._cmd_pos
        dist = float(np.linalg.norm(d))
        moved = False
        if dist > 1e-6:
            step = min(cfg.max_linear_velocity * dt, cfg.tracking_gain * dt * dist, dist)
            self._cmd_pos = self._cmd_pos + d * (step / dist)
            moved = True
        ang = quat_angle(self._cmd_quat, self._target_quat)
        if ang > 1e-6:
            step = min(cfg.max_angular_velocity * dt, cfg.tracking_gain * dt * ang, ang)
            self._cmd_quat = quat_slerp(self._cmd_quat, self._target_quat, step / ang)
            moved = True
        if moved:
            q, ep, er = self._solve_ik(self._cmd_pos, self._cmd_quat, tuple(self._q_cmd))
            if ep <= cfg.ik_tolerance and er <= cfg.ik_rot_tolerance:
                self._q_cmd = q
                self.last_tracking_warning = ""
            else:
                self.last_tracking_warning = (
                    f"tracker: intermediate pose {self._cmd_pos.round(3).tolist()} unreachable "
                    f"({ep * 100:.1f} cm); holding joints"
                )
        df = self._finger_target - self._finger_cmd
        if df != 0.0:
            self._finger_cmd += float(np.clip(df, -self._finger_speed * dt, self._finger_speed * dt))
        self._apply_motors()

    def _apply_motors(self) -> None:
        """Send joint position targets with torque and joint-speed limits to the arm and fingers."""
        c, r = self._client, self._robot
        for j, qj, f, v in zip(ARM_JOINTS, self._q_cmd, ARM_MAX_FORCE, ARM_MAX_VELOCITY):
            p.setJointMotorControl2(r, j, p.POSITION_CONTROL, targetPosition=float(qj), force=f,
                                    maxVelocity=v, positionGain=0.2, physicsClientId=c)
        for j in FINGER_JOINTS:
            p.setJointMotorControl2(r, j, p.POSITION_CONTROL, targetPosition=self._finger_cmd,
                                    force=self._finger_force, maxVelocity=0.2, physicsClientId=c)

    # ------------------------------------------------------------------ state
    def ee_pose(self) -> tuple:
        """Measured end-effector pose in the base frame: (position[3], quaternion[4])."""
        ls = p.getLinkState(self._robot, EE_LINK, computeForwardKinematics=True, physicsClientId=self._client)
        return np.array(ls[4]), np.array(ls[5])

    def ee_state(self) -> np.ndarray:
        """7-D state as V-JEPA 2-AC/DROID use it: x, y, z, roll, pitch, yaw (extrinsic xyz), closedness."""
        pos, quat = self.ee_pose()
        euler = p.getEulerFromQuaternion(list(quat))
        return np.array([*pos, *euler, self.gripper_closedness()])

    def target_pose(self) -> tuple:
        """The pose the tracker is heading to: (position[3], quaternion[4])."""
        return self._target_pos.copy(), self._target_quat.copy()

    def joint_positions(self) -> np.ndarray:
        """Arm joint angles [rad], joints 1..7."""
        return np.array([s[0] for s in p.getJointStates(self._robot, ARM_JOINTS, physicsClientId=self._client)])

    def joint_velocities(self) -> np.ndarray:
        """Arm joint velocities [rad/s]."""
        return np.array([s[1] for s in p.getJointStates(self._robot, ARM_JOINTS, physicsClientId=self._client)])

    def joint_efforts(self) -> np.ndarray:
        """Arm joint motor torques applied in the last step [Nm]."""
        return np.array([s[3] for s in p.getJointStates(self._robot, ARM_JOINTS, physicsClientId=self._client)])

    def finger_positions(self) -> np.ndarray:
        """The two finger joint positions [m] (each is half the opening, as franka_gripper reports)."""
        return np.array([s[0] for s in p.getJointStates(self._robot, FINGER_JOINTS, physicsClientId=self._client)])

    def finger_velocities(self) -> np.ndarray:
        """Finger joint velocities [m/s]."""
        return np.array([s[1] for s in p.getJointStates(self._robot, FINGER_JOINTS, physicsClientId=self._client)])

    def gripper_width(self) -> float:
        """Opening between the fingers [m]."""
        return float(self.finger_positions().sum())

    def gripper_closedness(self) -> float:
        """DROID-style gripper state: 0 open .. 1 closed."""
        return float(np.clip(1.0 - self.gripper_width() / MAX_GRIPPER_WIDTH, 0.0, 1.0))

    def object_states(self) -> list:
        """Current poses of the objects (same order as ``objects``)."""
        out = []
        for obj, body in zip(self.objects, self._object_ids):
            pos, quat = p.getBasePositionAndOrientation(body, physicsClientId=self._client)
            out.append(ObjectState(obj.name, obj.shape, obj.rgb, np.array(pos), np.array(quat), obj.kind, obj.size))
        return out

    def object_velocity(self, index: int) -> np.ndarray:
        """Linear velocity [m/s] of object ``index``."""
        lin, _ = p.getBaseVelocity(self._object_ids[index], physicsClientId=self._client)
        return np.array(lin)

    def finger_normal_forces(self, index: int) -> tuple[float, float]:
        """Sum of the contact normal forces [N] each finger (left, right) exerts on object ``index`` now."""
        c, body = self._client, self._object_ids[index]
        return tuple(float(sum(pt[9] for pt in p.getContactPoints(self._robot, body, linkIndexA=j, physicsClientId=c)))
                     for j in FINGER_JOINTS)

    def finger_contacts(self, index: int) -> tuple[bool, bool]:
        """Whether each finger (left, right) touches object ``index`` now (from the last physics step)."""
        c, body = self._client, self._object_ids[index]
        return tuple(bool(p.getContactPoints(self._robot, body, linkIndexA=j, physicsClientId=c))
                     for j in FINGER_JOINTS)

    def state_vector(self) -> np.ndarray:
        """Everything that evolves in an episode, flattened (for exact equality checks in tests)."""
        parts = [self.joint_positions(), self.joint_velocities(), self.finger_positions(),
                 self.finger_velocities()]
        parts += [np.concatenate([o.position, o.quaternion]) for o in self.object_states()]
        return np.concatenate(parts)

    # ------------------------------------------------------------------ cameras
    @staticmethod
    def _camera_matrices(cam: CameraConfig) -> tuple:
        view = p.computeViewMatrix(list(cam.eye), list(cam.target), list(cam.up))
        proj = p.computeProjectionMatrixFOV(cam.fov_deg, cam.width / cam.height, cam.near, cam.far)
        return view, proj

    def camera(self, name: str | None = None) -> CameraConfig:
        """The camera called ``name`` (``None`` or "" = the first one); ``ValueError`` if unknown."""
        if not name:
            return self.config.cameras[0]
        if name not in self._cameras:
            raise ValueError(f"unknown camera {name!r}; configured: {', '.join(self.camera_names)}")
        return self._cameras[name]

    def intrinsics(self, name: str | None = None) -> np.ndarray:
        """3x3 pinhole matrix K of a camera (square pixels; PyBullet's fov is the vertical one)."""
        cam = self.camera(name)
        fy = (cam.height / 2.0) / math.tan(math.radians(cam.fov_deg) / 2.0)
        return np.array([[fy, 0.0, cam.width / 2.0], [0.0, fy, cam.height / 2.0], [0.0, 0.0, 1.0]])

    def render(self, name: str | None = None) -> np.ndarray:
        """Render a camera with the CPU TinyRenderer: [H, W, 3] uint8 RGB.

        A camera with ``tile_below`` returns its own view with that camera's view stacked below it
        ([H1 + H2, W, 3]), the image its topic publishes.
        """
        cam = self.camera(name)
        if cam.tile_below:
            return np.concatenate([self._render_view(cam), self._render_view(self.camera(cam.tile_below))], axis=0)
        return self._render_view(cam)

    def image_shape(self, name: str | None = None) -> tuple[int, int]:
        """(height, width) of the image :meth:`render` returns for a camera (tiles included)."""
        cam = self.camera(name)
        extra = self.camera(cam.tile_below).height if cam.tile_below else 0
        return cam.height + extra, cam.width

    def _hand_view_matrix(self, cam: CameraConfig) -> list:
        """View matrix of a hand-mounted camera now: its eye / target / up (end-effector frame) moved into the
        base frame by the current end-effector pose (after a goal rendering's teleport, that pose's)."""
        pos, quat = self.ee_pose()
        rot = np.asarray(p.getMatrixFromQuaternion(list(quat)), dtype=np.float64).reshape(3, 3)
        eye = pos + rot @ np.asarray(cam.eye, dtype=np.float64)
        target = pos + rot @ np.asarray(cam.target, dtype=np.float64)
        up = rot @ np.asarray(cam.up, dtype=np.float64)
        return p.computeViewMatrix(eye.tolist(), target.tolist(), up.tolist())

    def _render_view(self, cam: CameraConfig) -> np.ndarray:
        """One camera's own view, [H, W, 3] uint8 RGB."""
        view, proj = self._view[cam.name]
        if cam.mount == "hand":
            view = self._hand_view_matrix(cam)
        _, _, rgba, _, _ = p.getCameraImage(
            cam.width, cam.height, view, proj, shadow=int(self.config.shadows), lightDirection=LIGHT_DIRECTION,
            renderer=p.ER_TINY_RENDERER, flags=p.ER_NO_SEGMENTATION_MASK, physicsClientId=self._client,
        )
        img = np.asarray(rgba, dtype=np.uint8).reshape(cam.height, cam.width, 4)
        return np.ascontiguousarray(img[:, :, :3])

    def render_goal(self, position: object, quaternion: object, gripper: float = 0.0,
                    camera: str | None = None, objects: list | None = None) -> GoalImage:
        """Render what ``camera`` would see with the end effector at a pose, leaving the episode untouched.

        The arm is placed by IK from the rest pose (so the image depends on the pose only), the fingers at
        closedness ``gripper``; ``objects`` optionally gives ``(position, quaternion)`` per block, else the
        blocks stay where they are. Raises ``ValueError`` for a non-finite pose or gripper outside [0, 1].
        """
        pos = _check_vec(position, 3, "goal position")
        quat = quat_normalize(_check_vec(quaternion, 4, "goal orientation"))
        g = float(gripper)
        if not (math.isfinite(g) and 0.0 <= g <= 1.0):
            raise ValueError(f"gripper closedness must be in [0, 1], got {gripper!r}")
        self.camera(camera)  # fail before touching the state
        if objects is not None and len(objects) != len(self._object_ids):
            raise ValueError(f"objects must give {len(self._object_ids)} poses, got {len(objects)}")
        q, ep, er = self._solve_ik(pos, quat, REST_POSE)
        c = self._client
        state = p.saveState(physicsClientId=c)
        try:
            self._teleport_arm(q, (1.0 - g) * MAX_GRIPPER_WIDTH)
            for body, (opos, oquat) in zip(self._object_ids, objects or []):
                p.resetBasePositionAndOrientation(body, list(opos), list(oquat), physicsClientId=c)
            img = self.render(camera)
            apos, aquat = self.ee_pose()
        finally:
            p.restoreState(stateId=state, physicsClientId=c)
            p.removeState(state, physicsClientId=c)
        cfg = self.config
        return GoalImage(img, apos, aquat, ep, er, ep <= cfg.ik_tolerance and er <= cfg.ik_rot_tolerance)
