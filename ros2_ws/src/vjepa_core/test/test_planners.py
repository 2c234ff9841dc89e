"""The planners beyond CEM (MPPI, iCEM, gradient refinement) and make_planner, against an analytic world model whose
optimum is known, plus gradient refinement through the real tiny torch predictor."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from vjepa_core.export import load_models
from vjepa_core.inference import WorldModel, make_backend
from vjepa_core.planning import (
    PLANNER_KINDS,
    CEMConfig,
    CEMPlanner,
    GradientRefinedPlanner,
    ICEMConfig,
    ICEMPlanner,
    MPPIConfig,
    MPPIPlanner,
    colored_noise,
    make_planner,
    mppi_weights,
)

N_TOK, DIM = 4, 8
START = torch.tensor([0.4, 0.0, 0.3, 3.1, 0.1, -0.2, 0.2])
SAMPLING = ("cem", "icem", "mppi")
ALL = ("cem", "icem", "mppi", "cem_adam", "icem_adam", "mppi_adam")


class AdditiveWorld:
    """Latent of a state = W @ [x, y, z, g]; every action adds its position and gripper deltas to the state, so
    the energy (L1 between latents, not normalised) is minimal exactly where the summed actions reach the goal.
    ``unroll_differentiable`` is the same function (it is differentiable)."""

    normalize = True  # the planners' energy then does not layer-norm: plain L1 on the latents

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(N_TOK * DIM, 4, generator=g)
        self.seen: list[torch.Tensor] = []
        self.calls = 0

    def latent(self, state: torch.Tensor) -> torch.Tensor:
        feat = torch.cat([state[..., :3], state[..., 6:7]], dim=-1)
        return (feat @ self.W.T).reshape(*state.shape[:-1], N_TOK, DIM)

    def unroll(self, ctx_tokens: torch.Tensor, ctx_states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.seen.append(actions.detach().clone())
        return self.latent(ctx_states[-1] + actions.sum(dim=1))

    unroll_differentiable = unroll


def problem(world: AdditiveWorld, delta: list[float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Context tokens, states and goal tokens for a goal ``delta`` = [dx, dy, dz, dgripper] away."""
    goal = START.clone()
    goal[:3] += torch.tensor(delta[:3])
    goal[6] += delta[3]
    return world.latent(START)[None], START[None], world.latent(goal)


def config(kind: str, **over: object) -> dict:
    base = kind.removesuffix("_adam")
    d: dict = dict(samples=200, iterations=8, topk=10, horizon=1, maxnorm=0.075, seed=0)
    if base == "mppi":
        d["temperature"] = 0.2
    if kind.endswith("_adam"):
        d["gradient"] = {"steps": 10, "lr": 0.002}
    d.update(over)
    return d


@pytest.mark.parametrize("kind", ALL)
def test_every_planner_finds_the_known_optimum(kind):
    world = AdditiveWorld()
    ctx, st, goal = problem(world, [0.031, -0.052, 0.018, 0.5])
    result = make_planner(kind, config(kind), world).plan(ctx, st, goal)
    assert not result.cancelled and math.isfinite(result.energy)
    torch.testing.assert_close(result.actions[0, :3], torch.tensor([0.031, -0.052, 0.018]), atol=4e-3, rtol=0)
    assert abs(float(result.actions[0, 6]) - 0.5) < 0.05
    assert torch.all(result.actions[0, 3:6] == 0)  # rotation fixed at zero (not sampled)


@pytest.mark.parametrize("kind", ALL)
def test_bounds_respected_and_small_gripper_moves_rounded(kind):
    world = AdditiveWorld()
    ctx, st, goal = problem(world, [0.2, -0.3, 0.01, 0.1])  # x, y far out of reach; gripper change below 0.25
    result = make_planner(kind, config(kind, maxnorm=0.05), world).plan(ctx, st, goal)
    for actions in world.seen:
        assert actions[..., :3].abs().max() <= 0.05 + 1e-7
        assert actions[..., 6].abs().max() <= 0.75 + 1e-7
    torch.testing.assert_close(result.actions[0, :2], torch.tensor([0.05, -0.05]), atol=2e-3, rtol=0)
    assert float(result.actions[0, 6]) == 0.0  # |g| < gripper_round: rounded to 0
    assert abs(float(result.mean[0, 6]) - 0.1) < 0.05  # ... while the mean (warm start) keeps it


@pytest.mark.parametrize("kind", ALL)
def test_cancel_ends_the_plan_and_keeps_no_warm_start(kind):
    world = AdditiveWorld()
    ctx, st, goal = problem(world, [0.03, 0.0, 0.0, 0.0])
    planner = make_planner(kind, config(kind, warm_start=True), world)
    asked = []

    def cancel() -> bool:
        asked.append(1)
        return len(asked) > 3  # three sampling iterations run, the fourth is cancelled

    result = planner.plan(ctx, st, goal, cancel=cancel)
    assert result.cancelled and math.isnan(result.energy) and world.calls == 3
    assert len(result.elite_energy) == 3 and result.samples_evaluated == 3 * 200
    base = planner.base if isinstance(planner, GradientRefinedPlanner) else planner
    assert base._last_mean is None


@pytest.mark.parametrize("kind", ["cem_adam", "mppi_adam"])
def test_cancel_during_the_gradient_refinement(kind):
    world = AdditiveWorld()
    ctx, st, goal = problem(world, [0.03, 0.0, 0.0, 0.0])
    asked = []
    result = make_planner(kind, config(kind, iterations=2), world).plan(
        ctx, st, goal, cancel=lambda: asked.append(1) or len(asked) > 4)  # 2 iterations + 2 gradient steps
    assert result.cancelled and math.isnan(result.energy)
    assert len(result.refine_energy) == 2


@pytest.mark.parametrize("kind", ALL)
def test_same_seed_same_plan_and_reset_reseeds(kind):
    world = AdditiveWorld()
    ctx, st, goal = problem(world, [0.02, 0.01, -0.03, 0.4])
    a = make_planner(kind, config(kind, iterations=3), world)
    first = a.plan(ctx, st, goal).actions
    second = a.plan(ctx, st, goal).actions  # the generator moved on: different samples
    a.reset()
    torch.testing.assert_close(a.plan(ctx, st, goal).actions, first, atol=0, rtol=0)
    b = make_planner(kind, config(kind, iterations=3), world)
    torch.testing.assert_close(b.plan(ctx, st, goal).actions, first, atol=0, rtol=0)
    other = make_planner(kind, config(kind, iterations=3, seed=1), world).plan(ctx, st, goal).actions
    assert not torch.equal(first, second) and not torch.equal(first, other)


def test_mppi_weights_limits():
    e = torch.tensor([0.5, 0.2, 0.9, 0.2001])
    w = mppi_weights(e, 1e-6)
    assert int(w.argmax()) == 1 and float(w[1]) > 0.999
    torch.testing.assert_close(mppi_weights(e, 1e6), torch.full((4,), 0.25), atol=1e-5, rtol=0)
    torch.testing.assert_close(mppi_weights(torch.ones(5), 0.1), torch.full((5,), 0.2))  # no spread: uniform
    torch.testing.assert_close(mppi_weights(e, 0.1, "range"), mppi_weights(e * 7 + 3, 0.1, "range"))  # scale-free
    assert float(mppi_weights(e, 0.05, "absolute")[1]) < float(mppi_weights(e, 0.005, "absolute")[1])
    assert abs(float(mppi_weights(e, 0.3).sum()) - 1) < 1e-6


def test_mppi_temperature_to_zero_is_the_argmin_and_large_is_the_sample_mean():
    world = AdditiveWorld()
    ctx, st, goal = problem(world, [0.03, -0.02, 0.01, 0.3])
    cold = MPPIPlanner(MPPIConfig(samples=64, iterations=1, topk=4, seed=0, temperature=1e-6), world.unroll)
    r = cold.plan(ctx, st, goal)
    torch.testing.assert_close(r.mean, r.best_actions, atol=1e-6, rtol=0)  # all weight on the best sample
    hot = MPPIPlanner(MPPIConfig(samples=64, iterations=1, topk=4, seed=0, temperature=1e6), world.unroll)
    r = hot.plan(ctx, st, goal)
    torch.testing.assert_close(r.mean, world.seen[-2].mean(dim=0), atol=1e-5, rtol=0)  # [-1]: the plan's scoring
    # std kept at its initial value without update_std
    fixed = MPPIPlanner(MPPIConfig(samples=64, iterations=2, topk=4, seed=0, update_std=False), world.unroll)
    torch.testing.assert_close(fixed.plan(ctx, st, goal).std[0, :3], torch.full((3,), 0.075))


def test_icem_with_neutral_options_is_cem_sample_for_sample():
    world = AdditiveWorld()
    ctx, st, goal = problem(world, [0.02, 0.01, -0.03, 0.4])
    common = dict(samples=64, iterations=4, topk=8, horizon=3, seed=3)
    cem = CEMPlanner(CEMConfig(**common), world.unroll).plan(ctx, st, goal)
    icem = ICEMPlanner(ICEMConfig(**common, noise_beta=0.0, keep_elites=0.0, samples_decay=1.0),
                       world.unroll).plan(ctx, st, goal)
    torch.testing.assert_close(icem.actions, cem.actions, atol=0, rtol=0)
    assert icem.elite_energy == cem.elite_energy


def test_icem_kept_elites_make_the_elite_energy_monotone_and_are_not_rescored():
    world = AdditiveWorld()
    ctx, st, goal = problem(world, [0.04, -0.03, 0.02, 0.5])
    planner = ICEMPlanner(ICEMConfig(samples=40, iterations=6, topk=8, horizon=2, seed=0, keep_elites=1.0,
                                     samples_decay=1.25), world.unroll)
    r = planner.plan(ctx, st, goal)
    assert all(b <= a + 1e-7 for a, b in zip(r.elite_energy, r.elite_energy[1:])), r.elite_energy
    sizes = [a.shape[0] for a in world.seen[:-1]]  # the last call scores the plan
    assert sizes == [ICEMConfig(samples=40, topk=8, samples_decay=1.25).samples_at(i) for i in range(6)]
    assert sizes == [40, 32, 25, 20, 16, 16]  # decay 1.25 per iteration, never below 2 * topk
    assert r.samples_evaluated == sum(sizes)  # kept elites reuse their energies


def test_icem_shifts_the_last_plans_elites_into_the_next_plan():
    world = AdditiveWorld()
    ctx, st, goal = problem(world, [0.04, -0.03, 0.02, 0.5])
    planner = ICEMPlanner(ICEMConfig(samples=30, iterations=2, topk=10, horizon=3, seed=0, keep_elites=0.5,
                                     warm_start=True), world.unroll)
    planner.plan(ctx, st, goal)
    kept = planner._prev_elites.clone()
    assert kept.shape == (5, 3, 7)
    n = len(world.seen)
    planner.plan(ctx, st, goal)
    first = world.seen[n]
    assert first.shape[0] == 30 + 5
    torch.testing.assert_close(first[30:, :2], kept[:, 1:])  # shifted by one control step
    planner.reset()
    assert planner._prev_elites is None


def test_colored_noise_shape_and_statistics():
    g = torch.Generator().manual_seed(0)
    x = colored_noise(2.0, 4000, 16, 7, g)
    assert x.shape == (4000, 16, 7)
    assert abs(float(x.mean())) < 0.02
    var = x.var(dim=(0, 2))
    assert float(var.min()) > 0.95 and float(var.max()) < 1.05  # unit variance at every step
    lag1 = float((x[:, 1:] * x[:, :-1]).mean())
    assert lag1 > 0.6  # 1/f^2 noise: neighbouring actions strongly correlated
    white = colored_noise(0.0, 4000, 16, 7, g)
    assert abs(float((white[:, 1:] * white[:, :-1]).mean())) < 0.03
    # horizon 1 (the sim's planner) and horizons below 4 are white noise: exactly torch.randn
    for h in (1, 2, 3):
        torch.testing.assert_close(colored_noise(2.5, 5, h, 7, torch.Generator().manual_seed(1)),
                                   torch.randn(5, h, 7, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="beta"):
        colored_noise(-1.0, 2, 8)


def test_make_planner_kinds_and_errors():
    world = AdditiveWorld()
    assert set(PLANNER_KINDS) >= {"cem", "icem", "mppi", "cem_adam", "adam"}
    assert type(make_planner("cem", {}, world)) is CEMPlanner
    assert isinstance(make_planner("icem", {}, world), ICEMPlanner)
    assert isinstance(make_planner("mppi", None, world), MPPIPlanner)
    grad = make_planner("mppi_adam", {"gradient": {"steps": 2}}, world)
    assert isinstance(grad, GradientRefinedPlanner) and isinstance(grad.base, MPPIPlanner)
    assert grad.config is grad.base.config and grad.objective is grad.base.objective
    with pytest.raises(ValueError, match="unknown planner kind 'cmaes'.*cem, icem, mppi"):
        make_planner("cmaes", {}, world)
    with pytest.raises(ValueError, match="unknown CEMConfig keys.*temperature"):
        make_planner("cem", {"temperature": 0.1}, world)  # an MPPI setting given to CEM is not ignored
    with pytest.raises(ValueError, match="takes no 'gradient' settings"):
        make_planner("cem", {"gradient": {"steps": 2}}, world)
    with pytest.raises(ValueError, match="unknown GradientConfig keys"):
        make_planner("cem_adam", {"gradient": {"step": 2}}, world)
    with pytest.raises(ValueError, match="temperature must be a positive"):
        make_planner("mppi", {"temperature": 0.0}, world)
    with pytest.raises(ValueError, match="keep_elites must be a fraction"):
        make_planner("icem", {"keep_elites": 1.5}, world)
    with pytest.raises(ValueError, match="lr must be a positive"):
        make_planner("cem_adam", {"gradient": {"lr": -1.0}}, world)
    with pytest.raises(TypeError, match="CEMPlanner takes a CEMConfig, got MPPIConfig"):
        CEMPlanner(MPPIConfig(), world.unroll)
    exported = SimpleNamespace(backend=SimpleNamespace(name="onnxruntime"), unroll=world.unroll, normalize=True,
                               unroll_differentiable=world.unroll)
    with pytest.raises(ValueError, match="needs the torch backend"):
        make_planner("cem_adam", {}, exported)
    assert isinstance(make_planner("cem", {}, exported), CEMPlanner)  # sampling needs no gradients


def test_adam_only_starts_from_the_warm_start_mean():
    world = AdditiveWorld()
    ctx, st, goal = problem(world, [0.01, -0.01, 0.005, 0.0])
    planner = make_planner("adam", {"horizon": 1, "sample_gripper": False, "gradient": {"steps": 40, "lr": 0.001}},
                           world)
    r = planner.plan(ctx, st, goal)
    assert r.samples_evaluated == 0 and r.elite_energy == [] and len(r.refine_energy) == 41
    torch.testing.assert_close(r.actions[0, :3], torch.tensor([0.01, -0.01, 0.005]), atol=1.5e-3, rtol=0)


@pytest.fixture(scope="module")
def tiny_world_model(fixtures_dir):
    d = fixtures_dir / "parity_tiny_a"
    _, pred, _ = load_models(d / "checkpoint.pt", d / "config.json")
    return WorldModel(make_backend("torch", predictor=pred))


def test_differentiable_unroll_matches_the_unroll(tiny_world_model):
    wm = tiny_world_model
    g = torch.Generator().manual_seed(0)
    ctx = torch.randn(2, 16, 96, generator=g)
    states = torch.stack([START, START + 0.01])
    actions = (torch.randn(3, 2, 7, generator=g) * 0.05).requires_grad_(True)
    out = wm.unroll_differentiable(ctx, states, actions)
    torch.testing.assert_close(out, wm.unroll(ctx, states, actions.detach()), atol=1e-4, rtol=1e-4)
    (grad,) = torch.autograd.grad(out.abs().mean(), actions)
    assert grad.shape == actions.shape and float(grad[:, :, :3].abs().sum()) > 0
    assert all(p.grad is None for p in wm.backend.predictor.parameters())


def test_adam_refinement_lowers_the_energy_of_the_cem_mean_with_the_tiny_predictor(tiny_world_model):
    wm = tiny_world_model
    g = torch.Generator().manual_seed(1)
    ctx = torch.randn(1, 16, 96, generator=g)
    target = torch.tensor([[[0.03, -0.02, 0.04, 0.0, 0.0, 0.0, 0.0]]])
    goal = wm.unroll(ctx, START[None], target)[0]  # a reachable goal: the prediction of a known action
    cfg = dict(samples=24, iterations=2, topk=6, horizon=1, maxnorm=0.075, sample_gripper=False, seed=0)
    cem = make_planner("cem", cfg, wm).plan(ctx, START[None], goal)
    refined = make_planner("cem_adam", {**cfg, "gradient": {"steps": 5, "lr": 0.005}}, wm).plan(ctx, START[None], goal)
    # starts at the same CEM mean: the refinement's fp32 full-sequence unroll and CEM's KV-cached one agree to float
    # rounding, which differs between CPUs (1.3e-5 relative on an AMD EPYC), so the parity tolerance of
    # test_differentiable_unroll_matches_the_unroll; another start would differ by far more
    assert refined.refine_energy[0] == pytest.approx(cem.energy, rel=1e-4)
    assert refined.energy < cem.energy  # and ends lower
    assert refined.refine_energy[-1] < refined.refine_energy[0]
    assert refined.timings_ms["refine"] > 0
    assert float(refined.actions[0, :3].abs().max()) <= 0.075 + 1e-7
    assert all(p.grad is None for p in wm.backend.predictor.parameters())
