"""Typed configuration of the simulated Franka scene, shared by the ROS node, the CLI and the tests.

One source of truth for defaults: ``sim_node`` declares its ROS parameters from :func:`default_ros_params`
and turns them back into a :class:`SimConfig` with :func:`config_from_ros_params`; ``vjepa-sim goal`` reads
the same flat keys from ``config/sim.yaml``. Unknown keys are rejected so a typo fails loudly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = [
    "CAMERA_MOUNTS",
    "CameraConfig",
    "SimConfig",
    "camera_topic",
    "config_from_ros_params",
    "default_ros_params",
    "flatten_params",
    "load_params_file",
]

Vec3 = tuple  # (x, y, z) in metres, base frame
CAMERA_MOUNTS = ("", "hand")  # fixed in the base frame, or on the end effector (CameraConfig.mount)


@dataclass(frozen=True)
class CameraConfig:
    """A fixed exterior camera looking at the table (DROID records two such "exterior" views)."""

    name: str = "ext1"
    eye: Vec3 = (1.3, 0.5, 0.8)  # camera position in the base frame [m]: front-left, not straight ahead
    target: Vec3 = (0.42, 0.0, 0.22)  # point the optical axis goes through [m]
    up: Vec3 = (0.0, 0.0, 1.0)  # world direction that appears "up" in the image
    fov_deg: float = 50.0  # vertical field of view [deg]
    width: int = 256
    height: int = 256
    near: float = 0.05  # clipping planes [m]
    far: float = 5.0
    topic: str = ""  # empty: "/camera/image_raw" for the first camera, "/camera/<name>/image_raw" otherwise
    frame_id: str = ""  # empty: "<name>_optical_frame"
    # Name of another camera whose image is stacked below this one's in the same published frame (equal
    # widths), so one image stream carries two views: a model then sees depth along either optical axis
    # without a second input stream. The stacked camera is not published on its own.
    tile_below: str = ""
    # Where the camera is mounted: "" fixed in the base frame; "hand" rides on the end effector (a wrist camera,
    # like DROID's): eye / target / up are then given in the end-effector frame (panda_grasptarget: z along
    # the fingers toward their tips, y across them), so the view follows the arm and shows the fingers.
    mount: str = ""

    def validate(self) -> None:
        """Raise ``ValueError`` on impossible camera settings."""
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"camera name must be a non-empty identifier, got {self.name!r}")
        if self.mount not in CAMERA_MOUNTS:
            raise ValueError(f"camera {self.name}: mount must be one of {CAMERA_MOUNTS}, got {self.mount!r}")
        for key in ("eye", "target", "up"):
            v = getattr(self, key)
            if len(v) != 3 or not all(math.isfinite(float(x)) for x in v):
                raise ValueError(f"camera {self.name}: {key} must be 3 finite numbers, got {v!r}")
        if not 1.0 <= self.fov_deg <= 170.0:
            raise ValueError(f"camera {self.name}: fov_deg must be in [1, 170], got {self.fov_deg}")
        if not (8 <= self.width <= 4096 and 8 <= self.height <= 4096):
            raise ValueError(f"camera {self.name}: size must be 8..4096 px, got {self.width}x{self.height}")
        if not 0.0 < self.near < self.far:
            raise ValueError(f"camera {self.name}: need 0 < near < far, got {self.near}, {self.far}")


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes the simulated episode (physics, workspace, tracker, objects, cameras)."""

    physics_rate_hz: float = 240.0  # fixed physics step = 1 / physics_rate_hz of sim time
    control_rate_hz: float = 60.0  # Cartesian tracker update (interpolation + IK) rate
    seed: int = 0  # layout/start seed used by the first reset
    num_objects: int = 3  # graspable blocks on the table (object_set "blocks")
    # "blocks": num_objects coloured blocks (the reach scenes); "manipulation": one cup or box (play data for the
    # manipulation tasks, vjepa_sim.objects). A task reset (vjepa_sim.tasks) brings its own objects either way.
    object_set: str = "blocks"
    box_yaw_range: float = 0.26  # manipulation layout: half the boxes lie within this yaw of the wrist's [rad]
    object_size: float = 0.045  # block edge [m] (Franka hand opens to 0.08 m)
    object_min_xy: tuple = (0.40, -0.20)  # objects are placed uniformly in this table area [m]
    object_max_xy: tuple = (0.65, 0.20)
    workspace_min: Vec3 = (0.25, -0.45, 0.02)  # targets outside this box are clamped or rejected [m]
    workspace_max: Vec3 = (0.85, 0.45, 0.75)
    workspace_policy: str = "clamp"  # "clamp" or "reject"
    start_min: Vec3 = (0.35, -0.15, 0.20)  # random start end-effector positions [m]
    start_max: Vec3 = (0.60, 0.15, 0.45)
    start_yaw_range: float = 0.0  # random start yaw offset in [-r, r] [rad] about the pointing-down pose
    max_linear_velocity: float = 0.25  # tracker end-effector speed limit [m/s]
    max_angular_velocity: float = 1.0  # tracker end-effector rotation speed limit [rad/s]
    tracking_gain: float = 5.0  # 1/s: the commanded pose approaches the target at gain * distance, capped
    ik_tolerance: float = 0.01  # a target whose IK solution misses it by more [m] is unreachable
    ik_rot_tolerance: float = 0.1  # ... or by more than this rotation [rad]
    gripper_speed: float = 0.1  # default finger opening speed [m/s] (franka_gripper default_speed 0.1)
    gripper_force: float = 20.0  # default grasp force [N]
    shadows: bool = False  # TinyRenderer shadows: a depth cue for the gripper height, but 2x render time
    arm_meshes: str = "collision"  # "collision" (low-poly, ~5x faster to render) or "visual" (stock meshes)
    cameras: tuple = (CameraConfig(),)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent setting."""
        if not 30.0 <= self.physics_rate_hz <= 2000.0:
            raise ValueError(f"physics_rate_hz must be in [30, 2000], got {self.physics_rate_hz}")
        if not 1.0 <= self.control_rate_hz <= self.physics_rate_hz:
            raise ValueError(f"control_rate_hz must be in [1, physics_rate_hz], got {self.control_rate_hz}")
        if not 0 <= self.num_objects <= 8:
            raise ValueError(f"num_objects must be in [0, 8], got {self.num_objects}")
        if not 0.01 <= self.object_size <= 0.075:
            raise ValueError(f"object_size must be in [0.01, 0.075] m, got {self.object_size}")
        for lo_key, hi_key, n in (
            ("workspace_min", "workspace_max", 3),
            ("start_min", "start_max", 3),
            ("object_min_xy", "object_max_xy", 2),
        ):
            lo, hi = getattr(self, lo_key), getattr(self, hi_key)
            if len(lo) != n or len(hi) != n or any(not a <= b for a, b in zip(lo, hi)):
                raise ValueError(f"{lo_key}/{hi_key} must be {n} numbers with min <= max, got {lo}, {hi}")
        if self.arm_meshes not in ("collision", "visual"):
            raise ValueError(f"arm_meshes must be 'collision' or 'visual', got {self.arm_meshes!r}")
        if self.object_set not in ("blocks", "manipulation"):
            raise ValueError(f"object_set must be 'blocks' or 'manipulation', got {self.object_set!r}")
        if not 0.0 <= self.box_yaw_range <= math.pi / 2:
            raise ValueError(f"box_yaw_range must be in [0, pi/2] rad, got {self.box_yaw_range}")
        if self.workspace_policy not in ("clamp", "reject"):
            raise ValueError(f"workspace_policy must be 'clamp' or 'reject', got {self.workspace_policy!r}")
        for key in ("max_linear_velocity", "max_angular_velocity", "tracking_gain", "ik_tolerance",
                    "ik_rot_tolerance", "gripper_speed", "gripper_force"):
            if not getattr(self, key) > 0.0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")
        if not self.cameras:
            raise ValueError("at least one camera is needed")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        for cam in self.cameras:
            cam.validate()
        by_name = {c.name: c for c in self.cameras}
        below = [c.tile_below for c in self.cameras if c.tile_below]
        for cam in self.cameras:
            if not cam.tile_below:
                continue
            other = by_name.get(cam.tile_below)
            if other is None or other.name == cam.name:
                raise ValueError(f"camera {cam.name}: tile_below must name another configured camera, "
                                 f"got {cam.tile_below!r} (configured: {', '.join(names)})")
            if other.tile_below or cam.name in below:
                raise ValueError(f"camera {cam.name}: tiles cannot be nested ({cam.name} -> {other.name})")
            if other.width != cam.width:
                raise ValueError(f"camera {cam.name}: tile_below camera {other.name} must have the same width "
                                 f"({other.width} != {cam.width})")
        if len(set(below)) != len(below):
            raise ValueError(f"a camera can be tiled below only one other camera, got tile_below {below}")
        if self.cameras[0].name in below:
            raise ValueError(f"the first camera ({self.cameras[0].name}) is the default stream and cannot be "
                             "tiled below another one")

    @property
    def published_cameras(self) -> tuple:
        """Cameras that get their own image topic: all but those stacked below another camera."""
        below = {c.tile_below for c in self.cameras if c.tile_below}
        return tuple(c for c in self.cameras if c.name not in below)

    @property
    def physics_dt(self) -> float:
        """Physics step [s of sim time]."""
        return 1.0 / self.physics_rate_hz


# ---------------------------------------------------------------------------------------------------------
# Flat ROS parameter view: {"num_objects": 3, "camera_names": ["ext1"], "cameras.ext1.eye": [...], ...}

_CAMERA_KEYS = ("eye", "target", "up", "fov_deg", "width", "height", "near", "far", "topic", "frame_id",
                "tile_below", "mount")
_SIM_KEYS = tuple(f.name for f in fields(SimConfig) if f.name != "cameras")


def _ros_value(v: Any) -> Any:
    """Tuples become lists of floats (ROS double arrays); scalars stay as they are."""
    if isinstance(v, tuple):
        return [float(x) for x in v]
    return v


def default_ros_params(camera_names: list | None = None) -> dict:
    """Flat ROS parameter defaults for the scene (the node adds its own topic/rate keys).

    A second camera defaults to a view from the robot's right side, so adding it needs only its name.
    """
    base = SimConfig()
    out = {k: _ros_value(getattr(base, k)) for k in _SIM_KEYS}
    names = list(camera_names) if camera_names else [c.name for c in base.cameras]
    out["camera_names"] = names
    for i, name in enumerate(names):
        cam = _default_camera(name, i)
        for k in _CAMERA_KEYS:
            out[f"cameras.{name}.{k}"] = _ros_value(getattr(cam, k))
    return out


def _default_camera(name: str, index: int) -> CameraConfig:
    """Default settings of the ``index``-th camera: even ones see the table from the front-left (``ext1``),
    odd ones from the robot's right side, so two cameras resolve depth along either optical axis."""
    cam = CameraConfig(name=name)
    if index % 2 == 1:
        cam = replace(cam, eye=(0.5, -1.0, 0.7), target=(0.45, 0.0, 0.2))
    return cam


def camera_topic(cam: CameraConfig, index: int) -> str:
    """Image topic of a camera: its ``topic`` setting, or the project default."""
    if cam.topic:
        return cam.topic
    return "/camera/image_raw" if index == 0 else f"/camera/{cam.name}/image_raw"


def config_from_ros_params(params: dict) -> SimConfig:
    """Build a validated :class:`SimConfig` from flat ROS-style parameters.

    ``params`` may hold keys this module does not own (the node's topic names); keys that look like scene
    or camera keys but are unknown raise ``ValueError``.
    """
    names = list(params.get("camera_names") or [c.name for c in SimConfig().cameras])
    cameras = []
    for i, name in enumerate(names):
        cam = _default_camera(str(name), i)
        updates = {}
        for k in _CAMERA_KEYS:
            key = f"cameras.{name}.{k}"
            if key in params:
                updates[k] = _coerce(getattr(cam, k), params[key], key)
        cameras.append(replace(cam, **updates))
    for key in params:
        if key.startswith("cameras."):
            parts = key.split(".")
            if len(parts) != 3 or parts[2] not in _CAMERA_KEYS:
                raise ValueError(f"unknown camera parameter {key!r} (known: {', '.join(_CAMERA_KEYS)})")
    base = SimConfig()
    updates = {k: _coerce(getattr(base, k), params[k], k) for k in _SIM_KEYS if k in params}
    cfg = replace(base, cameras=tuple(cameras), **updates)
    cfg.validate()
    return cfg


def _coerce(default: Any, value: Any, key: str) -> Any:
    """Convert ``value`` to the type of ``default`` (tuple of floats, int, float, bool, str)."""
    try:
        if isinstance(default, tuple):
            return tuple(float(x) for x in value)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise TypeError("expected true/false")
            return value
        if isinstance(default, int):
            if isinstance(value, bool) or int(value) != value:
                raise TypeError("expected an integer")
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"parameter {key!r}: cannot use {value!r} ({err})") from err


def flatten_params(tree: dict, prefix: str = "") -> dict:
    """Flatten nested YAML dicts into ROS's dotted parameter names (``cameras: {ext1: {eye: ..}}``)."""
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_params(v, key + "."))
        else:
            out[key] = v
    return out


def load_params_file(path: str, node_name: str = "sim_node") -> dict:
    """Read a ROS 2 params file (``<node>: ros__parameters: {...}``) into flat parameters.

    Accepts the ``/**`` wildcard key too. Raises ``ValueError`` when the file has no block for the node.
    """
    import yaml  # local import: only the CLI needs YAML

    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    for key in (node_name, "/" + node_name, "/**"):
        block = doc.get(key)
        if isinstance(block, dict) and isinstance(block.get("ros__parameters"), dict):
            return flatten_params(block["ros__parameters"])
    raise ValueError(f"{path}: no '{node_name}: ros__parameters:' block")

