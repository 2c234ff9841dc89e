"""Torch port of :func:`vjepa_core.pose.compute_new_pose` that stays on the tensor's device.

The reference planner moves every imagined pose to the CPU and runs scipy ``Rotation`` once per horizon
step and CEM iteration (a host round trip per step on a GPU). This module does the same arithmetic with
batched torch ops so imagined state updates never leave the model's device. Conventions are those of
``vjepa_core.pose``: ``[x, y, z, rx, ry, rz, g]`` with extrinsic ``"xyz"`` Euler angles (radians),
``R = Rz(rz) @ Ry(ry) @ Rx(rx)``, new rotation ``R_delta @ R``, gripper clipped to [0, 1].
"""

from __future__ import annotations

import torch

__all__ = ["compute_new_pose_torch", "euler_to_matrix_torch", "matrix_to_euler_torch"]


def euler_to_matrix_torch(euler: torch.Tensor) -> torch.Tensor:
    """Extrinsic "xyz" Euler angles [..., 3] -> rotation matrices [..., 3, 3] (same dtype/device)."""
    a, b, c = euler[..., 0], euler[..., 1], euler[..., 2]
    ca, sa, cb, sb, cc, sc = a.cos(), a.sin(), b.cos(), b.sin(), c.cos(), c.sin()
    rows = [
        torch.stack([cb * cc, sa * sb * cc - ca * sc, ca * sb * cc + sa * sc], dim=-1),
        torch.stack([cb * sc, sa * sb * sc + ca * cc, ca * sb * sc - sa * cc], dim=-1),
        torch.stack([-sb, sa * cb, ca * cb], dim=-1),
    ]
    return torch.stack(rows, dim=-2)


def matrix_to_euler_torch(mat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] -> extrinsic "xyz" Euler angles [..., 3].

    Same branch choices as the numpy version (scipy's): middle angle in [-pi/2, pi/2]; at gimbal lock the
    third angle is 0 and the whole in-plane rotation goes into the first one.
    """
    r00, r10, r20 = mat[..., 0, 0], mat[..., 1, 0], mat[..., 2, 0]
    r21, r22 = mat[..., 2, 1], mat[..., 2, 2]
    cb = torch.sqrt(r00 * r00 + r10 * r10)
    b = torch.atan2(-r20, cb)
    a = torch.atan2(r21, r22)
    c = torch.atan2(r10, r00)
    lock = cb < 1e-12
    # Evaluated unconditionally (no data-dependent branch, so no device sync); selected where locked.
    a_lock = torch.atan2(mat[..., 0, 1] * torch.sign(-r20), mat[..., 1, 1])
    a = torch.where(lock, a_lock, a)
    c = torch.where(lock, torch.zeros_like(c), c)
    return torch.stack([a, b, c], dim=-1)


def compute_new_pose_torch(poses: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Apply 7-D actions to 7-D poses on the tensors' device: xyz added, ``R_new = R_delta @ R``, gripper
    added and clipped to [0, 1].

    Args:
        poses: [..., 7] current states.
        actions: [..., 7] actions (dxyz, delta extrinsic-xyz Euler, dgripper), broadcastable to ``poses``.
    Returns:
        [..., 7] new states in the dtype of ``poses`` (computed in at least float32).
    """
    if poses.shape[-1] != 7 or actions.shape[-1] != 7:
        raise ValueError(
            f"poses and actions must end in 7, got {tuple(poses.shape)} and {tuple(actions.shape)}"
        )
    out_dtype = poses.dtype
    work = torch.promote_types(torch.promote_types(poses.dtype, actions.dtype), torch.float32)
    p, a = torch.broadcast_tensors(poses.to(work), actions.to(work))
    xyz = p[..., :3] + a[..., :3]
    rot = euler_to_matrix_torch(a[..., 3:6]) @ euler_to_matrix_torch(p[..., 3:6])
    euler = matrix_to_euler_torch(rot)
    grip = (p[..., 6:7] + a[..., 6:7]).clamp(0.0, 1.0)
    return torch.cat([xyz, euler, grip], dim=-1).to(out_dtype)
