"""Core simulator tests (real PyBullet, no ROS): tracking, determinism, goal images, bad input, exploration."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from vjepa_sim.cli import _COMMANDS, main
from vjepa_sim.config import (
    CameraConfig,
    SimConfig,
    config_from_ros_params,
    default_ros_params,
    load_params_file,
)
from vjepa_sim.explore import ExplorationPolicy, ExploreConfig, run_episode
from vjepa_sim.geometry import quat_angle, quat_slerp
from vjepa_sim.scene import DOWN_QUAT, FrankaSim

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SMALL = CameraConfig(width=96, height=96)  # fast renders where image size does not matter


@pytest.fixture(scope="module")
def sim():
    s = FrankaSim()
    yield s
    s.close()


def run_until_reached(sim, goal, tol=0.01, max_time=5.0):
    """Step until the end effector is within tol of goal; returns the sim time it took (or inf)."""
    t0 = sim.time
    while sim.time - t0 < max_time:
        sim.step(4)
        if np.linalg.norm(sim.ee_pose()[0] - goal) < tol:
            return sim.time - t0
    return float("inf")


def test_reaches_target_10cm_away_within_1cm_in_under_5s(sim):
    sim.reset(1)
    pos, quat = sim.ee_pose()
    goal = pos + np.array([0.06, -0.06, -0.0529])  # 10 cm away
    assert abs(np.linalg.norm(goal - pos) - 0.10) < 1e-3
    result = sim.set_target(goal, quat)
    assert result.status == "accepted", result.message
    took = run_until_reached(sim, goal)
    assert took < 5.0
    sim.step(240)  # settles: stays on target, orientation held
    pos2, quat2 = sim.ee_pose()
    assert np.linalg.norm(pos2 - goal) < 0.005
    assert quat_angle(quat2, quat) < 0.02


def test_speed_limit_is_respected(sim):
    sim.reset(2)
    pos, quat = sim.ee_pose()
    sim.set_target(pos + [0.0, 0.2, 0.0], quat)
    prev, top = pos, 0.0
    for _ in range(60):
        sim.step(4)
        cur = sim.ee_pose()[0]
        top = max(top, np.linalg.norm(cur - prev) / (4 * sim.config.physics_dt))
        prev = cur
    assert top < sim.config.max_linear_velocity * 1.3


def _episode(seed, warm_up=False):
    s = FrankaSim(SimConfig(cameras=(SMALL,)))
    try:
        if warm_up:  # a used instance must behave exactly like a fresh one after reset
            s.reset(seed + 100)
            p, q = s.ee_pose()
            s.set_target(p + [0.05, 0.05, 0.0], q)
            s.step(50)
        s.reset(seed)
        p, q = s.ee_pose()
        s.set_target(p + [0.05, -0.08, -0.05], q)
        s.set_gripper(0.03)
        s.step(120)
        return s.render(), s.state_vector()
    finally:
        s.close()


def test_identical_seeds_give_identical_images_and_states():
    img_a, st_a = _episode(5)
    img_b, st_b = _episode(5, warm_up=True)
    img_c, _ = _episode(6)
    assert np.array_equal(img_a, img_b)
    assert np.array_equal(st_a, st_b)
    assert np.abs(img_a.astype(int) - img_c.astype(int)).mean() > 1.0  # other layout and start


def test_images_change_when_the_arm_moves(sim):
    sim.reset(3)
    before = sim.render()
    pos, quat = sim.ee_pose()
    sim.set_target(pos + [0.0, 0.1, 0.05], quat)
    sim.step(240)
    after = sim.render()
    sim.step(10)  # no command: a still arm gives (nearly) the same picture
    still = sim.render()
    moved = np.abs(after.astype(int) - before.astype(int)).mean()
    idle = np.abs(still.astype(int) - after.astype(int)).mean()
    assert moved > 2.0
    assert idle < 0.1 * moved


def test_goal_image_shows_the_target_pose_and_leaves_the_episode_unchanged():
    def run(render):
        s = FrankaSim(SimConfig(seed=4))
        p, q = s.ee_pose()
        s.set_target(p + [0.05, 0.05, -0.05], q)
        s.step(60)  # mid-motion: velocities are non-zero
        goal = None
        if render:
            before = s.state_vector()
            goal = s.render_goal([0.5, -0.1, 0.15], DOWN_QUAT, gripper=1.0)
            assert np.array_equal(before, s.state_vector())
        s.step(120)
        out = s.render(), s.state_vector(), goal
        if render:  # now really drive there: the goal image should match what the camera sees
            s.set_target([0.5, -0.1, 0.15], DOWN_QUAT)
            s.set_gripper(0.0)
            s.step(5 * 240)
            out = out + (s.render(),)
        s.close()
        return out

    img_plain, st_plain, _ = run(False)
    img, st, goal, arrived = run(True)
    assert np.array_equal(st, st_plain) and np.array_equal(img, img_plain)  # episode undisturbed
    assert goal.reachable and goal.position_error < 1e-3
    assert np.linalg.norm(goal.position - [0.5, -0.1, 0.15]) < 1e-3
    assert goal.image.shape == (256, 256, 3) and goal.image.dtype == np.uint8
    d_goal = np.abs(goal.image.astype(int) - arrived.astype(int)).mean()
    d_start = np.abs(goal.image.astype(int) - img.astype(int)).mean()
    assert d_goal < 0.3 * d_start, (d_goal, d_start)


@pytest.mark.parametrize(
    "position, quaternion, status",
    [
        ([np.nan, 0.0, 0.3], [1, 0, 0, 0], "rejected"),
        ([0.5, np.inf, 0.3], [1, 0, 0, 0], "rejected"),
        ([0.5, 0.0, 0.3], [0, 0, 0, 0], "rejected"),  # degenerate quaternion
        ([0.5, 0.0, 0.3], [1, 0, 0, np.nan], "rejected"),
        ([0.5, 0.0, 0.3, 1.0], [1, 0, 0, 0], "rejected"),  # wrong length
        ([0.5, 0.0, -0.3], [1, 0, 0, 0], "clamped"),  # below the table
        ([0.85, 0.45, 0.75], [1, 0, 0, 0], "unreachable"),  # in the box, out of reach
    ],
)
def test_bad_targets_are_rejected_or_clamped_and_the_sim_keeps_running(sim, position, quaternion, status):
    sim.reset(7)
    old_target = sim.target_pose()[0]
    result = sim.set_target(position, quaternion)
    assert result.status == status, result.message
    assert result.message
    if status == "clamped":
        assert result.position[2] == pytest.approx(sim.config.workspace_min[2])
        assert "clamped" in result.message
    else:
        assert not result.accepted and np.array_equal(sim.target_pose()[0], old_target)
    t = sim.time
    sim.step(24)
    assert sim.time > t and np.all(np.isfinite(sim.state_vector()))
    pos, quat = sim.ee_pose()  # still obeys a good target afterwards
    goal = np.clip(pos + [0.05, 0.0, 0.05], sim.config.workspace_min, sim.config.workspace_max)
    assert sim.set_target(goal, DOWN_QUAT).accepted
    assert run_until_reached(sim, goal) < 5.0


def test_reject_policy_and_bad_reset():
    s = FrankaSim(SimConfig(workspace_policy="reject", cameras=(SMALL,)))
    try:
        assert s.set_target([0.5, 0.0, -0.3], DOWN_QUAT).status == "rejected"
        with pytest.raises(ValueError, match="unreachable|outside"):
            s.reset(1, start_pose=([0.85, 0.45, 0.75], DOWN_QUAT))
        with pytest.raises(ValueError, match="NaN"):
            s.reset(1, start_pose=([np.nan, 0.0, 0.3], DOWN_QUAT))
        with pytest.raises(ValueError, match="seed"):
            s.reset(-1)
        with pytest.raises(ValueError, match="closedness"):
            s.reset(1, gripper=2.0)
        s.step(10)  # still usable after a failed reset
        assert np.all(np.isfinite(s.state_vector()))
        pos, _ = s.reset(1, start_pose=([0.45, 0.1, 0.2], DOWN_QUAT), gripper=1.0)
        assert np.linalg.norm(pos - [0.45, 0.1, 0.2]) < 1e-3 and s.gripper_width() < 1e-3
    finally:
        s.close()


def test_gripper_moves_to_width_and_rejects_nan(sim):
    sim.reset(8)
    assert sim.set_gripper(0.02, speed=0.1) == ""
    sim.step(240)
    assert sim.gripper_width() == pytest.approx(0.02, abs=0.002)
    assert "clamped" in sim.set_gripper(0.5)
    with pytest.raises(ValueError):
        sim.set_gripper(float("nan"))
    sim.step(240)
    assert sim.gripper_width() == pytest.approx(0.08, abs=0.002)


def test_grasp_stops_at_the_block(sim):
    sim.reset(9)
    block = sim.object_states()[0].position
    sim.set_target([block[0], block[1], block[2] + 0.1], DOWN_QUAT)
    sim.step(2 * 240)
    sim.set_target([block[0], block[1], block[2] + 0.005], DOWN_QUAT)
    sim.step(240)
    sim.set_gripper(0.0, grasp=True, force=40.0)
    sim.step(240)
    width = sim.gripper_width()
    assert 0.6 * sim.config.object_size < width < 1.2 * sim.config.object_size


def test_exploration_is_deterministic_and_stays_in_its_box():
    cfg = ExploreConfig(seed=3, approach_prob=0.5)

    def go():
        s = FrankaSim(SimConfig(cameras=(SMALL,)))
        s.reset(3)
        ep = run_episode(s, ExplorationPolicy(cfg), steps=20)
        s.close()
        return ep

    a, b = go(), go()
    assert np.array_equal(a.states, b.states) and np.array_equal(a.images["ext1"], b.images["ext1"])
    assert a.states.shape == (21, 7) and a.targets.shape == (20, 7) and a.images["ext1"].shape == (21, 96, 96, 3)
    lo, hi = np.array(cfg.workspace_min), np.array(cfg.workspace_max)
    assert np.all(a.targets[:, :3] >= lo - 1e-9) and np.all(a.targets[:, :3] <= hi + 1e-9)
    assert np.abs(np.diff(a.targets[:, :3], axis=0)).max() > 0.01  # it actually moves


def test_config_round_trip_and_unknown_keys():
    params = default_ros_params(["ext1", "ext2"])
    cfg = config_from_ros_params(params)
    assert [c.name for c in cfg.cameras] == ["ext1", "ext2"] and cfg.cameras[1].eye != cfg.cameras[0].eye
    with pytest.raises(ValueError, match="unknown camera parameter"):
        config_from_ros_params({**params, "cameras.ext1.fov": 40.0})
    with pytest.raises(ValueError, match="workspace_policy"):
        config_from_ros_params({"workspace_policy": "ignore"})
    with pytest.raises(ValueError, match="min <= max"):
        config_from_ros_params({"workspace_min": [1.0, 0.0, 0.0], "workspace_max": [0.5, 0.5, 0.5]})
    yaml_cfg = config_from_ros_params(load_params_file(os.path.join(REPO, "config", "sim.yaml")))
    yaml_cfg.validate()


def _tiled_params(**extra):
    """Two 96 x 48 views, ext2 stacked below ext1 (the sim pipeline's layout)."""
    params = default_ros_params(["ext1", "ext2"])
    for name in ("ext1", "ext2"):
        params[f"cameras.{name}.width"], params[f"cameras.{name}.height"] = 96, 48
    params["cameras.ext1.tile_below"] = "ext2"
    params.update(extra)
    return params


def test_tiled_camera_stacks_two_views_in_one_image():
    cfg = config_from_ros_params(_tiled_params())
    assert [c.name for c in cfg.published_cameras] == ["ext1"] and cfg.cameras[0].tile_below == "ext2"
    tiled = FrankaSim(cfg)
    single = FrankaSim(config_from_ros_params({**_tiled_params(), "cameras.ext1.tile_below": ""}))
    try:
        assert tiled.image_shape() == (96, 96) and single.image_shape() == (48, 96)
        img = tiled.render()
        assert img.shape == (96, 96, 3)
        # the top half is ext1's own view, the bottom half ext2's, pixel for pixel
        np.testing.assert_array_equal(img[:48], single.render("ext1"))
        np.testing.assert_array_equal(img[48:], single.render("ext2"))
        assert not np.array_equal(img[:48], img[48:])
        goal = tiled.render_goal((0.5, 0.0, 0.2), DOWN_QUAT)
        assert goal.image.shape == (96, 96, 3)
    finally:
        tiled.close()
        single.close()


@pytest.mark.parametrize("extra, match", [
    ({"cameras.ext1.tile_below": "ext3"}, "tile_below must name another configured camera"),
    ({"cameras.ext1.tile_below": "ext1"}, "tile_below must name another configured camera"),
    ({"cameras.ext2.width": 64}, "same width"),
    ({"cameras.ext2.tile_below": "ext1"}, "nested"),
    ({"cameras.ext1.tile_below": "", "cameras.ext2.tile_below": "ext1"}, "first camera"),
])
def test_bad_tiles_are_refused_with_a_message(extra, match):
    with pytest.raises(ValueError, match=match):
        config_from_ros_params(_tiled_params(**extra))


def _wrist_config(**extra):
    """ext1 over a hand-mounted wrist camera (config/sim_pipeline/sim_manip_wrist.yaml's layout)."""
    params = {**_tiled_params(), "camera_names": ["ext1", "wrist"], "cameras.ext1.tile_below": "wrist",
              "cameras.wrist.mount": "hand", "cameras.wrist.eye": [0.05, 0.0, -0.06],
              "cameras.wrist.target": [0.0, 0.0, 0.16], "cameras.wrist.up": [0.0, 1.0, 0.0],
              "cameras.wrist.fov_deg": 45.0, "cameras.wrist.width": 96, "cameras.wrist.height": 48,
              "cameras.wrist.near": 0.01}
    params.update(extra)
    return config_from_ros_params(params)


def test_a_hand_mounted_camera_follows_the_arm_and_sees_the_fingers_close():
    sim = FrankaSim(_wrist_config())
    try:
        assert sim.config.cameras[1].mount == "hand"
        here = sim.render_goal((0.5, 0.0, 0.2), DOWN_QUAT).image
        there = sim.render_goal((0.5, 0.1, 0.2), DOWN_QUAT).image
        closed = sim.render_goal((0.5, 0.0, 0.2), DOWN_QUAT, gripper=0.9).image
        ext1_moved = np.abs(here[:48].astype(int) - there[:48].astype(int)).mean()
        wrist_moved = np.abs(here[48:].astype(int) - there[48:].astype(int)).mean()
        assert ext1_moved > 0 and wrist_moved > 0  # both views change when the arm moves
        # closing the fingers barely shows from the exterior camera; in the wrist view a finger comes in
        ext1_fingers = np.abs(here[:48].astype(int) - closed[:48].astype(int)).mean()
        wrist_fingers = np.abs(here[48:].astype(int) - closed[48:].astype(int)).mean()
        assert wrist_fingers > 5.0 > ext1_fingers and wrist_fingers > 20 * ext1_fingers
        # the live render follows the arm: after a real move the wrist view is that of the new pose
        sim.set_target((0.5, 0.1, 0.2), DOWN_QUAT)
        run_until_reached(sim, np.array([0.5, 0.1, 0.2]), tol=0.002)
        live = sim.render()
        assert np.abs(live[48:].astype(int) - there[48:].astype(int)).mean() < \
            np.abs(live[48:].astype(int) - here[48:].astype(int)).mean()
    finally:
        sim.close()


def test_a_fixed_camera_does_not_move_with_the_arm():
    sim = FrankaSim(_wrist_config())
    try:
        a = sim.render_goal((0.45, -0.1, 0.15), DOWN_QUAT).image
        b = sim.render_goal((0.55, 0.1, 0.25), DOWN_QUAT).image
        # ext1's floor and far table corner stay put (only the arm's pixels change): most pixels are equal
        assert (a[:48] == b[:48]).all(axis=2).mean() > 0.7
        assert not np.array_equal(a[48:], b[48:])  # the wrist camera moved with the hand
    finally:
        sim.close()


def test_an_unknown_camera_mount_is_refused():
    with pytest.raises(ValueError, match="mount must be one of"):
        _wrist_config(**{"cameras.wrist.mount": "elbow"})


def test_geometry_slerp_endpoints():
    a = np.array([0.0, 0.0, 0.0, 1.0])
    b = np.array([1.0, 0.0, 0.0, 0.0])
    assert np.allclose(quat_slerp(a, b, 0.0), a) and np.allclose(quat_slerp(a, b, 1.0), b)
    assert quat_angle(a, quat_slerp(a, b, 0.5)) == pytest.approx(np.pi / 2)


def test_cli_goal_writes_png_and_rejects_nan(tmp_path, capsys):
    from PIL import Image  # Pillow decodes the PNG independently of our encoder

    assert {"goal", "explore"} <= set(_COMMANDS)
    out = tmp_path / "goal.png"
    rc = main(["goal", "--seed", "2", "--position", "0.5", "0.0", "0.2", "--gripper", "1", "--out", str(out)])
    assert rc == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (256, 256, 3)
    s = FrankaSim(SimConfig(seed=2))
    ref = s.render_goal([0.5, 0.0, 0.2], DOWN_QUAT, 1.0).image
    s.close()
    assert np.array_equal(img, ref)  # same seed, same pose -> same pixels as the service path
    assert main(["goal", "--position", "nan", "0", "0.2", "--out", str(out)]) == 2
    assert "NaN" in capsys.readouterr().err
    assert main(["goal", "--position", "1.5", "0", "0.3", "--out", str(out)]) == 1  # unreachable


def test_cli_help_runs_as_a_program():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-m", "vjepa_sim.cli", "--help"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0 and "goal" in out.stdout and "explore" in out.stdout
