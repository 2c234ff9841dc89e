"""Pose math: euler/matrix/quaternion conversions, compose/diff inverse, real Franka states."""

from __future__ import annotations

import numpy as np
import pytest

from vjepa_core.pose import (
    compute_new_pose,
    euler_to_matrix,
    euler_to_quat,
    matrix_to_euler,
    pose_from_pose_stamped,
    pose_to_pose_stamped,
    poses_to_diff,
    quat_to_euler,
    quat_to_matrix,
)

RNG = np.random.default_rng(0)


def _random_euler(n):
    return np.stack([RNG.uniform(-np.pi, np.pi, n), RNG.uniform(-1.5, 1.5, n), RNG.uniform(-np.pi, np.pi, n)], -1)


def test_euler_matrix_round_trip_and_orthonormal():
    e = _random_euler(500)
    m = euler_to_matrix(e)
    assert np.allclose(m @ np.swapaxes(m, -1, -2), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(m), 1.0)
    assert np.abs(matrix_to_euler(m) - e).max() < 1e-9


def test_extrinsic_xyz_convention():
    """Extrinsic xyz: R = Rz @ Ry @ Rx."""
    a, b, c = 0.3, -0.4, 1.1
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    assert np.allclose(euler_to_matrix(np.array([a, b, c])), rz @ ry @ rx, atol=1e-15)


@pytest.mark.parametrize("pitch", [np.pi / 2, -np.pi / 2])
def test_gimbal_lock(pitch):
    m = euler_to_matrix(np.array([0.3, pitch, 0.5]))
    e = matrix_to_euler(m)
    assert abs(e[1] - pitch) < 1e-7 and e[2] == 0.0
    assert np.abs(euler_to_matrix(e) - m).max() < 1e-12


def test_quaternions():
    e = _random_euler(300)
    q = euler_to_quat(e)
    assert np.allclose(np.linalg.norm(q, axis=-1), 1.0) and (q[:, 3] >= 0).all()
    assert np.abs(quat_to_matrix(q) - euler_to_matrix(e)).max() < 1e-12
    assert np.abs(quat_to_euler(q) - e).max() < 1e-9
    assert np.allclose(euler_to_quat(np.array([0.0, 0.0, np.pi / 2])), [0, 0, np.sqrt(0.5), np.sqrt(0.5)])
    with pytest.raises(ValueError):
        quat_to_matrix(np.zeros(4))


def test_pose_stamped_round_trip():
    poses = np.concatenate([RNG.normal(size=(20, 3)), _random_euler(20), RNG.uniform(0, 1, (20, 1))], -1)
    ps = pose_to_pose_stamped(poses)
    assert ps.shape == (20, 7)
    back = pose_from_pose_stamped(ps, poses[:, 6])
    assert np.abs(back - poses).max() < 1e-9


def test_new_pose_and_diff_are_inverse():
    poses = np.concatenate([RNG.normal(size=(50, 3)), _random_euler(50), RNG.uniform(0.1, 0.9, (50, 1))], -1)
    acts = np.concatenate([RNG.normal(0, 0.05, (50, 3)), RNG.normal(0, 0.2, (50, 3)), RNG.normal(0, 0.05, (50, 1))], -1)
    new = compute_new_pose(poses, acts)
    rec = poses_to_diff(poses, new)
    assert np.abs(rec[:, :6] - acts[:, :6]).max() < 1e-9
    single = compute_new_pose(poses[0], acts[0])
    assert single.shape == (7,) and np.allclose(single, new[0])


def test_gripper_clipped():
    p = np.array([[0, 0, 0, 0, 0, 0, 0.9], [0, 0, 0, 0, 0, 0, 0.1]])
    a = np.array([[0, 0, 0, 0, 0, 0, 0.5], [0, 0, 0, 0, 0, 0, -0.5]])
    assert compute_new_pose(p, a)[:, 6].tolist() == [1.0, 0.0]


def test_shape_errors():
    with pytest.raises(ValueError):
        compute_new_pose(np.zeros((2, 6)), np.zeros((2, 7)))
    with pytest.raises(ValueError):
        poses_to_diff(np.zeros((2, 7)), np.zeros((3, 7)))


def test_franka_trajectory_action(fixtures_dir):
    states = np.load(fixtures_dir / "franka_example_traj.npz")["states"][0].astype(np.float64)  # [2, 7]
    action = poses_to_diff(states[:1], states[1:])
    assert action.shape == (1, 7) and np.isfinite(action).all()
    assert np.abs(action[0, :3]).max() < 0.2  # metres
    assert np.abs(action[0, 3:6]).max() < 0.2  # radians
    assert np.abs(compute_new_pose(states[:1], action) - states[1:]).max() < 1e-6
