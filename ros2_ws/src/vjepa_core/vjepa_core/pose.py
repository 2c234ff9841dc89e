"""End-effector pose math for V-JEPA 2-AC states and actions (pure numpy, float64, batched).

A *pose* (the AC model's "state") is 7-D: ``[x, y, z, rx, ry, rz, g]`` with the orientation as extrinsic
``"xyz"`` Euler angles in radians (rotate about fixed x, then y, then z: ``R = Rz(rz) @ Ry(ry) @ Rx(rx)``,
the convention of scipy's ``Rotation.as_euler("xyz")`` used by the reference DROID loader) and ``g`` the
gripper closedness in [0, 1]. An *action* is the difference between two poses: ``[dx, dy, dz, drx, dry,
drz, dg]`` where the rotation delta is ``euler(R_end @ R_start^T)``.

These functions mirror ``compute_new_pose`` / ``poses_to_diff`` of the reference planning code, without a
scipy dependency, so the planner can propagate imagined states and datasets can derive actions.
Quaternions are in ROS order ``(qx, qy, qz, qw)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "compute_new_pose",
    "euler_to_matrix",
    "matrix_to_euler",
    "matrix_to_quat",
    "pose_from_pose_stamped",
    "pose_to_pose_stamped",
    "poses_to_diff",
    "quat_to_matrix",
    "quat_to_euler",
    "euler_to_quat",
]


def _as_batch(a: np.ndarray, last: int, name: str) -> tuple[np.ndarray, bool]:
    """Return ``a`` as float64 with a leading batch axis, and whether the input was unbatched."""
    arr = np.asarray(a, dtype=np.float64)
    single = arr.ndim == 1
    if single:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[-1] != last:
        raise ValueError(f"{name} must have shape [N,{last}] or [{last}], got {np.shape(a)}")
    return arr, single


def euler_to_matrix(euler: np.ndarray) -> np.ndarray:
    """Extrinsic "xyz" Euler angles [..., 3] (radians) -> rotation matrices [..., 3, 3].

    ``R = Rz(c) @ Ry(b) @ Rx(a)`` for angles ``(a, b, c)``, matching scipy ``from_euler("xyz", ...)``.
    """
    e = np.asarray(euler, dtype=np.float64)
    a, b, c = e[..., 0], e[..., 1], e[..., 2]
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    r = np.empty(e.shape[:-1] + (3, 3), dtype=np.float64)
    r[..., 0, 0] = cb * cc
    r[..., 0, 1] = sa * sb * cc - ca * sc
    r[..., 0, 2] = ca * sb * cc + sa * sc
    r[..., 1, 0] = cb * sc
    r[..., 1, 1] = sa * sb * sc + ca * cc
    r[..., 1, 2] = ca * sb * sc - sa * cc
    r[..., 2, 0] = -sb
    r[..., 2, 1] = sa * cb
    r[..., 2, 2] = ca * cb
    return r


def matrix_to_euler(mat: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> extrinsic "xyz" Euler angles [..., 3] in radians.

    The middle angle lies in [-pi/2, pi/2] and the others in (-pi, pi], like scipy ``as_euler("xyz")``.
    At gimbal lock (middle angle = +-pi/2) the third angle is set to 0, as scipy does.
    """
    m = np.asarray(mat, dtype=np.float64)
    r00, r10, r20 = m[..., 0, 0], m[..., 1, 0], m[..., 2, 0]
    r21, r22 = m[..., 2, 1], m[..., 2, 2]
    cb = np.sqrt(r00 * r00 + r10 * r10)
    b = np.arctan2(-r20, cb)
    a = np.arctan2(r21, r22)
    c = np.arctan2(r10, r00)
    lock = cb < 1e-12
    if np.any(lock):
        # R = Rz(c) Ry(+-pi/2) Rx(a): only a -+ c is defined; put it all in a (c = 0).
        r01, r11 = m[..., 0, 1], m[..., 1, 1]
        a_lock = np.arctan2(r01 * np.sign(-r20), r11)
        a = np.where(lock, a_lock, a)
        c = np.where(lock, 0.0, c)
    return np.stack([a, b, c], axis=-1)


def quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    """Quaternions [..., 4] in (qx, qy, qz, qw) order -> rotation matrices [..., 3, 3] (normalised first)."""
    q = np.asarray(quat, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm < 1e-12) or not np.all(np.isfinite(q)):
        raise ValueError("quaternion has zero norm or non-finite values")
    x, y, z, w = np.moveaxis(q / norm, -1, 0)
    r = np.empty(q.shape[:-1] + (3, 3), dtype=np.float64)
    r[..., 0, 0] = 1 - 2 * (y * y + z * z)
    r[..., 0, 1] = 2 * (x * y - z * w)
    r[..., 0, 2] = 2 * (x * z + y * w)
    r[..., 1, 0] = 2 * (x * y + z * w)
    r[..., 1, 1] = 1 - 2 * (x * x + z * z)
    r[..., 1, 2] = 2 * (y * z - x * w)
    r[..., 2, 0] = 2 * (x * z - y * w)
    r[..., 2, 1] = 2 * (y * z + x * w)
    r[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return r


def matrix_to_quat(mat: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> unit quaternions [..., 4] (qx, qy, qz, qw) with qw >= 0.

    Uses the numerically stable largest-diagonal branch (Shepperd's method).
    """
    m = np.asarray(mat, dtype=np.float64)
    batch = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    # Candidates: 4*q_i^2 for i in (x, y, z, w); pick the largest per matrix.
    cand = np.stack([1 + 2 * m[:, 0, 0] - tr, 1 + 2 * m[:, 1, 1] - tr, 1 + 2 * m[:, 2, 2] - tr, 1 + tr], -1)
    best = np.argmax(cand, axis=-1)
    s = 0.5 * np.sqrt(np.maximum(cand, 1e-300))  # |q_i| for each candidate branch, [M,4]
    xy = m[:, 0, 1] + m[:, 1, 0]
    xz = m[:, 0, 2] + m[:, 2, 0]
    yz = m[:, 1, 2] + m[:, 2, 1]
    wx = m[:, 2, 1] - m[:, 1, 2]
    wy = m[:, 0, 2] - m[:, 2, 0]
    wz = m[:, 1, 0] - m[:, 0, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        # One quaternion per branch, each built around its own large component: [M, 4 branches, 4]
        branches = np.stack([
            np.stack([4 * s[:, 0] ** 2, xy, xz, wx], -1) / (4 * s[:, 0:1]),
            np.stack([xy, 4 * s[:, 1] ** 2, yz, wy], -1) / (4 * s[:, 1:2]),
            np.stack([xz, yz, 4 * s[:, 2] ** 2, wz], -1) / (4 * s[:, 2:3]),
            np.stack([wx, wy, wz, 4 * s[:, 3] ** 2], -1) / (4 * s[:, 3:4]),
        ], axis=1)
    q = branches[np.arange(m.shape[0]), best]  # [M,4]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[:, 3:4] < 0, -q, q)
    return q.reshape(batch + (4,))


def euler_to_quat(euler: np.ndarray) -> np.ndarray:
    """Extrinsic "xyz" Euler angles [..., 3] -> quaternions [..., 4] (qx, qy, qz, qw), qw >= 0."""
    return matrix_to_quat(euler_to_matrix(euler))


def quat_to_euler(quat: np.ndarray) -> np.ndarray:
    """Quaternions [..., 4] (qx, qy, qz, qw) -> extrinsic "xyz" Euler angles [..., 3]."""
    return matrix_to_euler(quat_to_matrix(quat))


def compute_new_pose(poses: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Apply 7-D actions to 7-D poses: xyz added, ``R_new = R_delta @ R``, gripper added and clipped to [0,1].

    Args:
        poses: [N,7] (or [7]) current states.
        actions: [N,7] (or [7]) actions (dxyz, delta extrinsic-xyz Euler, dgripper).
    Returns:
        [N,7] (or [7]) float64 new states, Euler angles in canonical range.
    """
    p, single_p = _as_batch(poses, 7, "poses")
    a, single_a = _as_batch(actions, 7, "actions")
    if p.shape[0] != a.shape[0]:
        raise ValueError(f"poses and actions batch sizes differ: {p.shape[0]} vs {a.shape[0]}")
    out = np.empty_like(p)
    out[:, :3] = p[:, :3] + a[:, :3]
    r_new = euler_to_matrix(a[:, 3:6]) @ euler_to_matrix(p[:, 3:6])  # [N,3,3]
    out[:, 3:6] = matrix_to_euler(r_new)
    out[:, 6] = np.clip(p[:, 6] + a[:, 6], 0.0, 1.0)
    return out[0] if (single_p and single_a) else out


def poses_to_diff(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The action taking ``start`` to ``end``: dxyz, ``euler(R_end @ R_start^T)``, dgripper.

    Args:
        start: [N,7] (or [7]) poses.
        end: [N,7] (or [7]) poses.
    Returns:
        [N,7] (or [7]) float64 actions.
    """
    s, single_s = _as_batch(start, 7, "start")
    e, single_e = _as_batch(end, 7, "end")
    if s.shape[0] != e.shape[0]:
        raise ValueError(f"start and end batch sizes differ: {s.shape[0]} vs {e.shape[0]}")
    out = np.empty_like(s)
    out[:, :3] = e[:, :3] - s[:, :3]
    r_s = euler_to_matrix(s[:, 3:6])
    r_e = euler_to_matrix(e[:, 3:6])
    out[:, 3:6] = matrix_to_euler(r_e @ np.swapaxes(r_s, -1, -2))
    out[:, 6] = e[:, 6] - s[:, 6]
    return out[0] if (single_s and single_e) else out


def pose_to_pose_stamped(poses: np.ndarray) -> np.ndarray:
    """7-D poses [N,7] -> PoseStamped-style arrays [N,7] ``(x, y, z, qx, qy, qz, qw)`` (gripper dropped)."""
    p, single = _as_batch(poses, 7, "poses")
    out = np.concatenate([p[:, :3], euler_to_quat(p[:, 3:6])], axis=-1)
    return out[0] if single else out


def pose_from_pose_stamped(xyzq: np.ndarray, gripper: np.ndarray | float = 0.0) -> np.ndarray:
    """PoseStamped-style ``(x, y, z, qx, qy, qz, qw)`` [N,7] plus gripper [N] -> 7-D poses [N,7]."""
    p, single = _as_batch(xyzq, 7, "xyzq")
    g = np.broadcast_to(np.asarray(gripper, dtype=np.float64), (p.shape[0],))
    out = np.concatenate([p[:, :3], quat_to_euler(p[:, 3:7]), g[:, None]], axis=-1)
    return out[0] if single else out
