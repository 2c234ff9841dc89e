"""Energy-landscape tool: the tiny real checkpoint on the real Franka transition, and an analytic world model
whose energy minimum is known exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vjepa_core.cli import bench
from vjepa_core.loading import load_world_model
from vjepa_core.planning import compute_new_pose_torch, l1_energy
from vjepa_core.planning.landscape import energy_landscape, grid_actions, model_image_size, plot_landscape
from vjepa_core.pose import poses_to_diff
from vjepa_core.preprocessing import preprocess_frames

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny(fixtures_dir):
    d = fixtures_dir / "parity_tiny_a"
    return load_world_model(d / "checkpoint.pt", str(d / "config.json"))


@pytest.fixture(scope="module")
def traj(fixtures_dir):
    with np.load(fixtures_dir / "franka_example_traj.npz") as data:
        return data["observations"][0], data["states"][0]


def test_tiny_checkpoint_on_franka_transition(tiny, traj, tmp_path):
    obs, states = traj
    wm = tiny.world_model
    assert model_image_size(wm) == 64
    res = energy_landscape(wm, obs[0], obs[1], states[0], states[1], grid=5, range_m=0.075)
    assert res.energies.shape == (5, 5, 5) and res.num_actions == 125
    assert res.dx.shape == res.dy.shape == res.dz.shape == (5,)
    np.testing.assert_allclose(res.dx, np.linspace(-0.075, 0.075, 5))
    assert np.all(np.isfinite(res.energies)) and np.all(res.energies > 0)
    # argmin consistent with the grid
    assert res.argmin_energy == res.energies.min() == res.energies[res.argmin_index]
    i, j, k = res.argmin_index
    np.testing.assert_allclose(res.argmin_action, [res.dx[i], res.dy[j], res.dz[k], 0, 0, 0, 0])
    # true action = poses_to_diff of the real states; (0.092, 0.031, 0.084) lies outside +-0.075 in x and z
    true = poses_to_diff(states[0].astype(np.float64), states[1].astype(np.float64))
    np.testing.assert_allclose(res.true_action, true)
    assert res.true_action[0] == pytest.approx(0.0924, abs=1e-3)
    assert res.true_in_range is False
    np.testing.assert_allclose(res.error_xyz, res.argmin_action[:3] - true[:3])
    assert res.error_m == pytest.approx(float(np.linalg.norm(res.error_xyz)))
    assert res.nearest_grid_error_m <= res.error_m and np.isfinite(res.true_energy)

    # the single batched call equals scoring actions one at a time with the planner's energy (the world model
    # has normed the tokens already: the energy does not norm them again)
    x = preprocess_frames(np.stack([obs[0], obs[1]]), 64, tubelet_size=1)[:, :, 0]
    tok = wm.encode(x)
    st = torch.as_tensor(states[0], dtype=torch.float32)[None]
    for idx in [(0, 0, 0), res.argmin_index, (4, 2, 1)]:
        a = torch.tensor([[[res.dx[idx[0]], res.dy[idx[1]], res.dz[idx[2]], 0, 0, 0, 0]]], dtype=torch.float32)
        e = l1_energy(wm.unroll(tok[:1], st, a), tok[1], normalize=False)
        assert float(e[0]) == pytest.approx(res.energies[idx], abs=1e-6)

    png = plot_landscape(res, tmp_path / "sub" / "landscape.png")
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000

    # dx/dy only, the true dz fixed; a range that contains the true action
    flat = energy_landscape(wm, obs[0], obs[1], states[0], states[1], grid=4, range_m=0.1, sweep_z=False)
    assert flat.energies.shape == (4, 4, 1) and flat.dz[0] == pytest.approx(true[2])
    assert flat.true_in_range is True and np.all(np.isfinite(flat.energies))
    assert plot_landscape(flat, tmp_path / "flat.png").read_bytes()[:8] == PNG_MAGIC
    json.dumps(flat.to_dict())  # JSON-able


class AnalyticWorld:
    """Latent of a state = W @ [x, y, z, 1] as a [N, D] token map; actions move the state with the real pose
    math. ``encode`` recognises the two frames it is given (in order) as the two known states, so the energy
    is exactly zero at the action that takes the first state to the second, and positive elsewhere."""

    N, D = 4, 8

    def __init__(self, frame_states: list[np.ndarray], seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(self.N * self.D, 4, generator=g)
        self.frame_states = [torch.as_tensor(s, dtype=torch.float32) for s in frame_states]
        self.calls = 0

    def latent(self, state: torch.Tensor) -> torch.Tensor:
        feat = torch.cat([state[..., :3], torch.ones_like(state[..., :1])], dim=-1)
        return (feat @ self.W.T).reshape(*state.shape[:-1], self.N, self.D)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        assert frames.shape[0] == len(self.frame_states) and frames.shape[1:] == (3, 32, 32)
        return torch.stack([self.latent(s) for s in self.frame_states])

    def unroll(self, ctx: torch.Tensor, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        new = compute_new_pose_torch(states[-1].expand(actions.shape[0], 7), actions[:, 0])
        return self.latent(new)


@pytest.mark.parametrize("sweep_z,fill", [(True, "zero"), (True, "true"), (False, "zero")])
def test_analytic_minimum_is_found(traj, sweep_z, fill):
    obs, states = traj
    s0 = states[0].astype(np.float64)
    dx, dy, dz, _ = grid_actions(9, 0.075)
    optimum = np.array([dx[2], dy[6], dz[1]])  # (-0.0375, +0.0375, -0.05625) m: on the grid, not at the centre
    s1 = s0.copy()
    s1[:3] += optimum
    s1[3:6] += [0.02, -0.01, 0.03]  # rotation changes too: the analytic latent ignores it
    world = AnalyticWorld([s0, s1])
    res = energy_landscape(world, obs[0], obs[1], s0, s1, grid=9, range_m=0.075, sweep_z=sweep_z, fill=fill,
                           image_size=32)
    assert world.calls == 1  # every grid action (and the true action) in one batched call
    assert res.energies.shape == ((9, 9, 9) if sweep_z else (9, 9, 1))
    np.testing.assert_allclose(res.argmin_action[:3], optimum, atol=1e-12)
    np.testing.assert_allclose(res.true_action[:3], optimum, atol=1e-6)
    assert res.error_m < 1e-6 and res.true_in_range
    assert res.argmin_energy < 1e-5 and res.true_energy < 1e-5
    others = np.delete(res.energies.ravel(), np.ravel_multi_index(res.argmin_index, res.energies.shape))
    assert others.min() > 10 * max(res.argmin_energy, 1e-7)  # a unique, clear minimum
    if fill == "true":
        np.testing.assert_allclose(res.argmin_action[3:], res.true_action[3:])


def test_bad_inputs_are_rejected(traj, tiny):
    obs, states = traj
    wm = tiny.world_model
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        energy_landscape(wm, obs[0].astype(np.float32), obs[1], states[0])
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        energy_landscape(wm, obs[0], obs[1][..., :2], states[0])
    with pytest.raises(ValueError, match="7 finite numbers"):
        energy_landscape(wm, obs[0], obs[1], [0.5, 0.0, np.nan, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="grid must be >= 2"):
        energy_landscape(wm, obs[0], obs[1], states[0], grid=1)
    with pytest.raises(ValueError, match="range must be a positive"):
        energy_landscape(wm, obs[0], obs[1], states[0], range_m=-0.1)
    with pytest.raises(ValueError, match="fill='true' needs next_state"):
        energy_landscape(wm, obs[0], obs[1], states[0], fill="true")
    with pytest.raises(ValueError, match="pass image_size"):
        energy_landscape(AnalyticWorld([states[0], states[1]]), obs[0], obs[1], states[0])
    # without a next state: no true action, but the grid is still evaluated
    res = energy_landscape(wm, obs[0], obs[1], states[0], grid=2)
    assert res.true_action is None and res.error_m is None and res.energies.shape == (2, 2, 2)


def test_cli_landscape(tmp_path, capsys, monkeypatch, fixtures_dir):
    monkeypatch.chdir(fixtures_dir.parent.parent)
    d = fixtures_dir / "parity_tiny_a"
    png, js = tmp_path / "l.png", tmp_path / "l.json"
    rc = bench.main(["landscape", "--checkpoint", str(d / "checkpoint.pt"), "--config", str(d / "config.json"),
                     "--grid", "3", "--range", "0.1", "--png", str(png), "--json", str(js), "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "argmin" in out and "true action" in out
    rec = json.loads(js.read_text())
    assert rec["grid_shape"] == [3, 3, 3] and rec["num_actions"] == 27 and rec["true_in_range"] is True
    assert rec["error_m"] == pytest.approx(np.linalg.norm(np.subtract(rec["argmin_action"][:3],
                                                                      rec["true_action"][:3])))
    assert png.read_bytes()[:8] == PNG_MAGIC
    rc = bench.main(["landscape", "--config", "tiny", "--step", "1", "--grid", "2"])
    assert rc == 2 and "out of range" in capsys.readouterr().err
    rc = bench.main(["landscape", "--config", str(d / "config.json"), "--grid", "2"])
    assert rc == 2 and "--checkpoint is required" in capsys.readouterr().err
