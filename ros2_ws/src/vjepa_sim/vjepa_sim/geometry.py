"""Small quaternion helpers for the tracker (numpy, ROS/PyBullet order ``(x, y, z, w)``).

Kept separate from PyBullet so the maths is unit-testable and the tracker's interpolation is explicit.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["quat_angle", "quat_conj", "quat_mul", "quat_normalize", "quat_slerp"]


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternion of ``q``; raises ``ValueError`` for a non-finite or degenerate (norm ~ 0) one."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (4,) or not np.all(np.isfinite(q)):
        raise ValueError(f"quaternion must be 4 finite numbers, got {q.tolist()}")
    n = float(np.linalg.norm(q))
    if n < 1e-6:
        raise ValueError(f"degenerate quaternion (norm {n:.2g})")
    return q / n


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Conjugate (inverse of a unit quaternion)."""
    return np.array([-q[0], -q[1], -q[2], q[3]], dtype=np.float64)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        dtype=np.float64,
    )


def quat_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Rotation angle [rad] between two unit quaternions, in [0, pi]."""
    d = abs(float(np.dot(a, b)))
    return 2.0 * math.acos(min(1.0, d))


def quat_slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from ``a`` (t=0) to ``b`` (t=1) along the shorter arc."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = float(np.dot(a, b))
    if d < 0.0:  # same rotation, shorter way round
        b, d = -b, -d
    if d > 0.9995:  # nearly identical: linear interpolation is exact enough and stable
        q = a + t * (b - a)
        return q / np.linalg.norm(q)
    theta = math.acos(d)
    s = math.sin(theta)
    return (math.sin((1.0 - t) * theta) * a + math.sin(t * theta) * b) / s
