"""Graspable object kinds of the manipulation scenes and the grasp geometry they share (numpy only, no PyBullet).

Two kinds, like the paper's cup and box (V-JEPA 2 Table 2):

- ``cup``: an upright cylinder, 5 cm across and 8 cm tall. It is round, so the gripper takes it at any wrist
  angle (yaw).
- ``box``: 12 x 4 x 5 cm. It is longer than the open Franka hand (8 cm) along its own x axis, so the fingers
  fit only across its 4 cm side: the wrist yaw has to match the box's yaw (within about 15 degrees, after which
  the 12 cm side no longer fits between the open fingers).

The gripper points down; its fingers open along the gripper's y axis, which is the base y axis at wrist yaw 0
(``DOWN_QUAT``). A grasp puts the grasp point (``panda_grasptarget``, between the fingertips, about 1 cm above
their ends) at the centre of the object, so a held object's centre is at the end-effector position and its
yaw follows the wrist (the closing fingers square a box up against their pads).

:class:`ObjectSpec` says where an object goes when a scene is built, so tasks (``vjepa_sim.tasks``) can lay out
scenes without the simulator; :func:`manipulation_layout` is the seeded one-object layout of play scenes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "OBJECT_KINDS",
    "ObjectKind",
    "ObjectSpec",
    "fold_yaw",
    "grasp_height",
    "held_object_position",
    "manipulation_layout",
    "resting_height",
]

@dataclass(frozen=True)
class ObjectKind:
    """Shape, size and grasp rule of one object kind."""

    name: str
    shape: str  # "cylinder" or "box" (PyBullet primitive)
    size: tuple  # full extents (x, y, z) in the object's frame [m]; a cylinder has x = y = its diameter
    mass: float  # [kg]
    needs_yaw: bool  # True: the fingers fit only across the object's y side (the wrist yaw must match)

    @property
    def grip_width(self) -> float:
        """The opening the fingers close to on this object [m]: the side across the fingers."""
        return float(self.size[1])

    @property
    def height(self) -> float:
        """Height of the object standing on the table [m]."""
        return float(self.size[2])


OBJECT_KINDS: dict[str, ObjectKind] = {
    "cup": ObjectKind("cup", "cylinder", (0.05, 0.05, 0.08), 0.10, needs_yaw=False),
    "box": ObjectKind("box", "box", (0.12, 0.04, 0.05), 0.15, needs_yaw=True),
}

# The 8 colours of the scene's palette, by name (vjepa_sim.scene.PALETTE holds the RGB values).
COLOUR_NAMES = ("red", "green", "blue", "yellow", "orange", "purple", "cyan", "white")


@dataclass(frozen=True)
class ObjectSpec:
    """Where and what one object is when a scene is built: kind, colour, position of its centre, yaw."""

    kind: str  # a key of OBJECT_KINDS
    colour: str  # a name of COLOUR_NAMES
    position: tuple  # centre (x, y, z) in the base frame [m]
    yaw: float = 0.0  # rotation about the base z axis [rad]

    def validate(self) -> None:
        """Raise ``ValueError`` on an unknown kind/colour or a non-finite pose."""
        if self.kind not in OBJECT_KINDS:
            raise ValueError(f"unknown object kind {self.kind!r} (known: {', '.join(OBJECT_KINDS)})")
        if self.colour not in COLOUR_NAMES:
            raise ValueError(f"unknown colour {self.colour!r} (known: {', '.join(COLOUR_NAMES)})")
        vals = [*self.position, self.yaw]
        if len(self.position) != 3 or not all(math.isfinite(float(v)) for v in vals):
            raise ValueError(f"object pose must be a finite position (3) and yaw, got {self.position}, {self.yaw}")


def resting_height(kind: str) -> float:
    """z of the centre of an object of ``kind`` standing upright on the table (the table top is z = 0)."""
    return OBJECT_KINDS[kind].height / 2.0


def grasp_height(kind: str) -> float:
    """End-effector z that grasps an object of ``kind`` standing on the table: at its centre."""
    return resting_height(kind)


def held_object_position(ee_position: object) -> np.ndarray:
    """Centre of a held object for an end-effector position (the grasp point is the object's centre)."""
    return np.asarray(ee_position, dtype=np.float64).copy()


def fold_yaw(yaw: float) -> float:
    """A yaw modulo pi, in [-pi/2, pi/2): both ends of a box, and both finger orders, look the same."""
    return float((yaw + math.pi / 2.0) % math.pi - math.pi / 2.0)


def manipulation_layout(rng: np.random.Generator, min_xy: tuple, max_xy: tuple, box_yaw_range: float) -> list:
    """The seeded object layout of a manipulation (play) scene: one cup or one box at a random spot.

    The box's yaw is drawn within ``box_yaw_range`` of the pointing-down wrist's grasp yaw (0) half of the
    time, so play data has boxes the fixed wrist can take, and uniformly otherwise (boxes it cannot take).
    """
    kind = ("cup", "box")[int(rng.integers(2))]
    colour = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
    xy = rng.uniform(np.asarray(min_xy, dtype=float), np.asarray(max_xy, dtype=float))
    if kind == "box" and rng.random() < 0.5:
        yaw = float(rng.uniform(-box_yaw_range, box_yaw_range))
    else:
        yaw = float(rng.uniform(-math.pi / 2.0, math.pi / 2.0))
    return [ObjectSpec(kind, colour, (float(xy[0]), float(xy[1]), resting_height(kind) + 1e-4), yaw)]
