"""CEM planner against an analytic world model whose optimum is known, plus the torch pose port."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vjepa_core.planning import (
    PRESETS,
    CEMConfig,
    CEMPlanner,
    compute_new_pose_torch,
    l1_energy,
)
from vjepa_core.pose import compute_new_pose

N_TOK, DIM = 4, 8


class LinearWorld:
    """Latent of a state = W @ [x, y, z, g] reshaped to [N, D]; actions move the state exactly (pose math
    on the tensors' device). The energy is minimal exactly when the final state equals the goal state."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(N_TOK * DIM, 4, generator=g)
        self.seen: list[torch.Tensor] = []
        self.calls = 0

    def latent(self, state: torch.Tensor) -> torch.Tensor:
        feat = torch.cat([state[..., :3], state[..., 6:7]], dim=-1)  # [..., 4]
        return (feat @ self.W.T).reshape(*state.shape[:-1], N_TOK, DIM)

    def unroll(self, ctx_tokens: torch.Tensor, ctx_states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.seen.append(actions.clone())
        state = ctx_states[-1].expand(actions.shape[0], 7)
        for h in range(actions.shape[1]):
            state = compute_new_pose_torch(state, actions[:, h])
        return self.latent(state)


def raw_l1(pred: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    return l1_energy(pred, goal, normalize=False)


def _problem(world: LinearWorld, target_delta: list[float]) -> tuple[torch.Tensor, ...]:
    start = torch.tensor([0.4, 0.0, 0.3, 3.1, 0.1, -0.2, 0.2])
    goal_state = start.clone()
    goal_state[:3] += torch.tensor(target_delta[:3])
    goal_state[6] += target_delta[3]
    ctx = world.latent(start)[None]
    return ctx, start[None], world.latent(goal_state)


def test_finds_known_optimum_paper_defaults():
    world = LinearWorld()
    ctx, st, goal = _problem(world, [0.031, -0.052, 0.018, 0.4])
    cfg = CEMConfig(seed=0)  # paper: 800 samples, 10 iterations, top-10, H=1
    assert (cfg.samples, cfg.iterations, cfg.topk, cfg.horizon, cfg.maxnorm) == (800, 10, 10, 1, 0.075)
    res = CEMPlanner(cfg, world.unroll, raw_l1).plan(ctx, st, goal)
    a = res.actions[0]
    err_mm = (a[:3] - torch.tensor([0.031, -0.052, 0.018])).abs().max().item() * 1e3
    assert err_mm < 3.0, f"position error {err_mm:.2f} mm"
    assert abs(a[6].item() - 0.4) < 0.03
    assert torch.all(a[3:6] == 0)
    assert res.samples_evaluated == 8000
    assert res.elite_energy[-1] < res.elite_energy[0]


@pytest.mark.parametrize("preset", ["reference_world_model", "reference_cem"])
def test_reference_variants_move_toward_optimum(preset):
    world = LinearWorld(1)
    target = [0.02, 0.04, -0.03, 0.0]
    ctx, st, goal = _problem(world, target)
    cfg = CEMConfig.preset(preset, seed=1, horizon=1)
    res = CEMPlanner(cfg, world.unroll, raw_l1).plan(ctx, st, goal)
    err = (res.actions[0, :3] - torch.tensor(target[:3])).abs().max().item()
    tol = 0.004
    assert err < tol
    assert res.actions[0, 6].item() == 0.0 or abs(res.actions[0, 6].item()) >= cfg.gripper_round


def test_horizon_two_reaches_goal_in_sum():
    world = LinearWorld(2)
    target = [0.11, -0.09, 0.05, 0.0]  # needs two steps: outside a single 0.075 box
    ctx, st, goal = _problem(world, target)
    res = CEMPlanner(CEMConfig.preset("bench_h2", seed=0), world.unroll, raw_l1).plan(ctx, st, goal)
    assert res.actions.shape == (2, 7)
    total = res.actions[:, :3].sum(0)
    assert (total - torch.tensor(target[:3])).abs().max().item() < 5e-3


def test_every_sample_respects_bounds_and_unreachable_goal_saturates():
    world = LinearWorld()
    ctx, st, goal = _problem(world, [0.2, -0.3, 0.01, 0.0])
    cfg = CEMConfig(seed=0)
    res = CEMPlanner(cfg, world.unroll, raw_l1).plan(ctx, st, goal)
    seen = torch.cat(world.seen[:-1])  # the CEM samples (the last call scores the plan itself)
    assert seen.shape == (800 * 10, 1, 7)
    assert seen[..., :3].abs().max().item() <= cfg.maxnorm + 1e-7
    assert torch.all(seen[..., 3:6] == 0)
    assert seen[..., 6].abs().max().item() <= cfg.gripper_limit + 1e-7
    for arr in (res.actions, res.best_actions):
        assert arr[..., :3].abs().max().item() <= cfg.maxnorm + 1e-7
    # the goal is outside the box: the plan pushes x and y against their limits
    assert res.actions[0, 0].item() > 0.07 and res.actions[0, 1].item() < -0.07


def test_l1_ball_and_sampled_rotation_bounds():
    world = LinearWorld()
    ctx, st, goal = _problem(world, [0.05, 0.05, 0.05, 0.0])
    cfg = CEMConfig(samples=200, iterations=4, seed=0, position_constraint="l1", rotation="sample",
                    max_rotation=0.05, close_gripper=1, horizon=2)
    CEMPlanner(cfg, world.unroll, raw_l1).plan(ctx, st, goal)
    seen = torch.cat(world.seen)  # the samples and the plan: all feasible
    assert seen[..., :3].abs().sum(-1).max().item() <= cfg.maxnorm + 1e-6
    assert seen[..., 3:6].abs().max().item() <= 0.05 + 1e-7
    assert seen[..., 3:6].abs().max().item() > 0.0  # really sampled
    assert torch.all(seen[:, 1, 6] == 1.0)  # close_gripper from step 1 on
    assert seen[:, 0, 6].abs().max().item() <= 0.75 + 1e-7


def test_reproducible_with_seed_and_one_unroll_per_iteration():
    world = LinearWorld()
    ctx, st, goal = _problem(world, [0.01, 0.02, 0.03, 0.0])
    cfg = CEMConfig(samples=200, iterations=4, seed=7)
    a = CEMPlanner(cfg, world.unroll, raw_l1).plan(ctx, st, goal)
    b = CEMPlanner(cfg, world.unroll, raw_l1).plan(ctx, st, goal)
    assert torch.equal(a.actions, b.actions) and torch.equal(a.std, b.std)
    world.calls = 0
    CEMPlanner(cfg, world.unroll, raw_l1).plan(ctx, st, goal)
    assert world.calls == 4 + 1  # one unroll per iteration (the unroll chunks itself), then the plan's own energy
    assert "chunk_size" not in CEMConfig.__dataclass_fields__  # one chunking setting: the world model's
    d = CEMPlanner(CEMConfig(samples=200, iterations=4, seed=8), world.unroll, raw_l1).plan(ctx, st, goal)
    assert not torch.equal(d.best_actions, a.best_actions)
    # an explicit generator overrides the config seed
    g1 = torch.Generator().manual_seed(5)
    g2 = torch.Generator().manual_seed(5)
    p = CEMPlanner(CEMConfig(samples=50, iterations=2), world.unroll, raw_l1)
    assert torch.equal(p.plan(ctx, st, goal, generator=g1).actions, p.plan(ctx, st, goal, generator=g2).actions)


def test_warm_start_shifts_previous_plan():
    world = LinearWorld()
    ctx, st, goal = _problem(world, [0.06, -0.06, 0.0, 0.0])
    cfg = CEMConfig(samples=400, iterations=5, horizon=2, seed=0, warm_start=True, init_std_position=0.01)
    planner = CEMPlanner(cfg, world.unroll, raw_l1)
    first = planner.plan(ctx, st, goal)
    world.seen.clear()
    planner.plan(ctx, st, goal)
    first_iter = world.seen[0]  # samples of iteration 1 of the second call
    # step 0 is centred on the previous plan's step 1 (clipping biases the mean only slightly)
    centre = first_iter[:, 0, :3].mean(0)
    assert (centre - first.mean[1, :3]).abs().max().item() < 0.003
    assert first.mean[1, :3].abs().max().item() > 0.01  # a real shift, not the cold-start zero
    planner.reset()
    world.seen.clear()
    planner.plan(ctx, st, goal)
    assert world.seen[0][:, 0, :3].mean(0).abs().max().item() < 0.003  # cold start: centred at zero


def test_default_objective_is_layernormed_l1():
    pred = torch.randn(5, N_TOK, DIM)
    goal = torch.randn(N_TOK, DIM)
    e = l1_energy(pred, goal)
    ln = torch.nn.functional.layer_norm
    ref = (ln(pred, (DIM,)) - ln(goal, (DIM,))).abs().mean(dim=(1, 2))
    torch.testing.assert_close(e, ref)
    # layer norm makes it invariant to per-token scale and shift of the prediction
    torch.testing.assert_close(l1_energy(pred * 3 + 1, goal), e, atol=1e-4, rtol=1e-4)


def test_clear_errors():
    world = LinearWorld()
    with pytest.raises(ValueError, match="topk"):
        CEMConfig(samples=5, topk=10)
    with pytest.raises(ValueError, match="unknown CEMConfig keys"):
        CEMConfig.from_dict({"sample": 10})
    with pytest.raises(ValueError, match="unknown CEM preset"):
        CEMConfig.preset("nope")
    with pytest.raises(ValueError, match="energy"):
        CEMConfig(energy="cosine")
    with pytest.raises(ValueError, match="unroll"):
        CEMPlanner(CEMConfig(), None)
    ctx, st, goal = _problem(world, [0.0, 0.0, 0.0, 0.0])
    planner = CEMPlanner(CEMConfig(samples=20, iterations=1), world.unroll, raw_l1)
    with pytest.raises(ValueError, match="context_states"):
        planner.plan(ctx, torch.zeros(2, 7), goal)
    with pytest.raises(ValueError, match="goal tokens"):
        planner.plan(ctx, st, torch.zeros(N_TOK + 1, DIM))
    bad = ctx.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        planner.plan(bad, st, goal)
    assert set(PRESETS) >= {"paper", "reference_cem", "reference_world_model", "notebook"}


def test_torch_pose_equals_numpy_pose(fixtures_dir):
    data = np.load(fixtures_dir / "parity_tiny_a" / "pose_io.npz")
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 2e-5)):
        out = compute_new_pose_torch(torch.tensor(data["poses"], dtype=dtype),
                                     torch.tensor(data["actions"], dtype=dtype))
        np.testing.assert_allclose(out.double().numpy(), data["new_poses"], atol=tol)
    rng = np.random.default_rng(0)
    poses = np.concatenate([rng.uniform(-1, 1, (500, 3)), rng.uniform(-3, 3, (500, 3)),
                            rng.uniform(0, 1, (500, 1))], 1)
    poses[:5, 4] = np.pi / 2  # gimbal lock cases
    acts = np.concatenate([rng.normal(0, 0.05, (500, 3)), rng.normal(0, 0.3, (500, 3)),
                           rng.normal(0, 0.5, (500, 1))], 1)
    acts[:5, 3:6] = 0.0
    ref = compute_new_pose(poses, acts)
    out = compute_new_pose_torch(torch.tensor(poses), torch.tensor(acts)).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-9)
    # batched leading dims and broadcasting work too
    out3 = compute_new_pose_torch(torch.tensor(poses).view(5, 100, 7), torch.tensor(acts).view(5, 100, 7))
    np.testing.assert_allclose(out3.reshape(500, 7).numpy(), ref, atol=1e-9)
    with pytest.raises(ValueError, match="end in 7"):
        compute_new_pose_torch(torch.zeros(3, 6), torch.zeros(3, 7))


def test_result_carries_the_energy_of_the_plan_itself():
    """The executed plan (the final mean) is scored once inside CEM, so callers need no extra model call."""
    world = LinearWorld()
    ctx, st, goal = _problem(world, [0.02, -0.01, 0.03, 0.0])
    res = CEMPlanner(CEMConfig(samples=100, iterations=3, seed=0), world.unroll, raw_l1).plan(ctx, st, goal)
    assert world.calls == 3 + 1 and world.seen[-1].shape == (1, 1, 7)
    torch.testing.assert_close(world.seen[-1][0], res.actions)
    expected = raw_l1(world.unroll(ctx, st, res.actions[None]), goal)[0]
    assert res.energy == pytest.approx(float(expected), abs=1e-7)
    assert res.energy <= res.elite_energy[0] and not res.cancelled


def test_cancel_is_asked_between_iterations_and_ends_the_plan_early():
    world = LinearWorld()
    ctx, st, goal = _problem(world, [0.02, -0.01, 0.03, 0.0])
    cfg = CEMConfig(samples=50, iterations=10, seed=0, warm_start=True)
    planner = CEMPlanner(cfg, world.unroll, raw_l1)
    asked = []

    def cancel() -> bool:
        asked.append(world.calls)
        return world.calls >= 2  # a stop arrives while the second iteration runs

    res = planner.plan(ctx, st, goal, cancel=cancel)
    assert res.cancelled and world.calls == 2 and asked == [0, 1, 2]
    assert res.samples_evaluated == 100 and np.isnan(res.energy)
    assert planner._last_mean is None  # an abandoned plan does not seed the next one
    full = planner.plan(ctx, st, goal, cancel=lambda: False)
    assert not full.cancelled and full.samples_evaluated == 500 and np.isfinite(full.energy)


def test_gripper_samples_are_clipped_to_the_reference_range_and_a_far_grip_saturates():
    """Reference ``cem``: gripper samples clipped to +-0.75 (std starts at 1, so many samples hit the clip)."""
    world = LinearWorld(3)
    ctx, st, goal = _problem(world, [0.0, 0.0, 0.0, 1.0])  # closedness 0.2 -> 1.2: beyond any single action
    cfg = CEMConfig(samples=200, iterations=4, seed=0)
    res = CEMPlanner(cfg, world.unroll, raw_l1).plan(ctx, st, goal)
    samples = torch.cat(world.seen[:-1])[..., 6]
    assert samples.abs().max().item() == pytest.approx(0.75)  # clipped, and the clip was reached
    assert (samples.abs() == 0.75).float().mean().item() > 0.1
    assert 0.7 < res.actions[0, 6].item() <= 0.75


@pytest.mark.parametrize(("grip", "rounded"), [(0.1, True), (-0.2, True), (0.4, False), (-0.4, False)])
def test_the_final_gripper_value_is_rounded_to_zero_below_a_quarter(grip, rounded):
    """Reference ``cem``: the returned gripper action is 0 when |mean| < 0.25 (the mean itself is not rounded)."""
    world = LinearWorld(4)
    start = torch.tensor([0.4, 0.0, 0.3, 3.1, 0.1, -0.2, 0.5])  # half closed: room to open and to close
    ctx, st = world.latent(start)[None], start[None]
    goal = world.latent(start + torch.tensor([0.01, 0.0, -0.01, 0.0, 0.0, 0.0, grip]))
    res = CEMPlanner(CEMConfig(seed=0), world.unroll, raw_l1).plan(ctx, st, goal)
    assert res.mean[0, 6].item() == pytest.approx(grip, abs=0.03)
    if rounded:
        assert res.actions[0, 6].item() == 0.0
    else:
        assert res.actions[0, 6].item() == pytest.approx(grip, abs=0.03)


@pytest.mark.parametrize(("m_pos", "m_grip"), [(0.0, 0.5), (0.5, 0.0)])
def test_the_gripper_has_its_own_momentum(m_pos, m_grip):
    """Reference ``cem``: mean = (1 - m) * elite mean + m * mean and the same for the std, with separate momenta for
    dx, dy, dz and for the gripper. One iteration, recomputed from the scored samples."""
    world = LinearWorld(5)
    ctx, st, goal = _problem(world, [0.03, -0.02, 0.01, 0.5])
    cfg = CEMConfig(samples=64, iterations=1, topk=8, seed=0, gripper_round=0.0, momentum_mean=m_pos,
                    momentum_std=m_pos, momentum_mean_gripper=m_grip, momentum_std_gripper=m_grip / 2)
    res = CEMPlanner(cfg, world.unroll, raw_l1).plan(ctx, st, goal)
    samples = world.seen[0]  # [64, 1, 7], as scored
    elites = samples[torch.topk(raw_l1(world.unroll(ctx, st, samples), goal), 8, largest=False).indices]
    e_mean, e_std = elites.mean(0)[0], elites.std(0)[0]
    init_std = torch.tensor([cfg.maxnorm] * 3 + [0.0] * 3 + [1.0])
    exp_mean = torch.cat([(1 - m_pos) * e_mean[:3], torch.zeros(3), (1 - m_grip) * e_mean[6:]])
    m_std = torch.tensor([m_pos] * 3 + [0.0] * 3 + [m_grip / 2])
    exp_std = torch.cat([((1 - m_std) * e_std + m_std * init_std)[:3], torch.zeros(3),
                         ((1 - m_std) * e_std + m_std * init_std)[6:]])
    torch.testing.assert_close(res.mean[0], exp_mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(res.std[0], exp_std, atol=1e-6, rtol=0)
    torch.testing.assert_close(res.actions[0], exp_mean, atol=1e-6, rtol=0)
