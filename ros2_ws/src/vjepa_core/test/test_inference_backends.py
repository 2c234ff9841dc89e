"""Torch backend and WorldModel over the tiny checkpoint: same numbers as the models, ONNX Runtime and
torch world models agree, the planner runs end to end on the real Franka example frames, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa_core.export import export_onnx, load_models
from vjepa_core.inference import BackendError, ShapeMismatchError, WorldModel, make_backend
from vjepa_core.planning import CEMConfig, CEMPlanner, l1_energy
from vjepa_core.tokens import normalize_tokens


@pytest.fixture(scope="module")
def models(fixtures_dir):
    d = fixtures_dir / "parity_tiny_a"
    enc, pred, cfg = load_models(d / "checkpoint.pt", d / "config.json")
    return enc, pred, cfg


def test_torch_backend_matches_models(models, fixtures_dir):
    enc, pred, _ = models
    io = np.load(fixtures_dir / "parity_tiny_a" / "io.npz")
    b = make_backend("torch", encoder=enc, predictor=pred)
    out = b.encode(torch.from_numpy(io["image"])[:, None])
    assert np.abs(out[:, 0].numpy() - io["encoder_image_out"]).max() < 1e-4
    got = b.predict(*(torch.from_numpy(io[k]) for k in ("predictor_tokens", "predictor_actions",
                                                        "predictor_states")))
    assert np.abs(got.numpy() - io["predictor_out"]).max() < 1e-4
    assert b.describe()["backend"] == "torch"


def test_torch_backend_errors(models):
    enc, pred, _ = models
    with pytest.raises(BackendError, match="encoder, a predictor"):
        make_backend("torch")
    with pytest.raises(BackendError, match="fp16 autocast is only supported on CUDA"):
        make_backend("torch", predictor=pred, precision="fp16")
    with pytest.raises(BackendError, match="unknown precision"):
        make_backend("torch", predictor=pred, precision="int4")
    b = make_backend("torch", encoder=enc, predictor=pred)
    with pytest.raises(ShapeMismatchError, match="tokens must be"):
        b.predict(torch.zeros(2, 20, 96), torch.zeros(2, 1, 7), torch.zeros(2, 1, 7))
    with pytest.raises(ShapeMismatchError, match="frames must be"):
        b.encode(torch.zeros(2, 3, 64, 64))
    with pytest.raises(ShapeMismatchError, match="multiple of the patch size"):
        b.encode(torch.zeros(1, 1, 3, 60, 64))
    wm = WorldModel(b)
    with pytest.raises(ShapeMismatchError, match="context tokens"):
        wm.unroll(torch.zeros(1, 15, 96), torch.zeros(1, 7), torch.zeros(4, 1, 7))
    with pytest.raises(ShapeMismatchError, match="actions must be"):
        wm.unroll(torch.zeros(1, 16, 96), torch.zeros(1, 7), torch.zeros(4, 7))
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="cuda"):
            make_backend("torch", predictor=pred, device="cuda")


def test_bf16_autocast_runs_close_on_cpu(models):
    _, pred, _ = models
    g = torch.Generator().manual_seed(0)
    tok, act, st = torch.randn(3, 32, 96, generator=g), torch.randn(3, 2, 7, generator=g), torch.rand(3, 2, 7)
    ref = make_backend("torch", predictor=pred).predict(tok, act, st)
    got = make_backend("torch", predictor=pred, precision="bf16").predict(tok, act, st)
    assert got.dtype == torch.float32 and (got - ref).abs().max().item() < 0.1


def test_onnxruntime_world_model_equals_torch_cached(models, tmp_path):
    enc, pred, cfg = models
    export_onnx(tmp_path, enc, pred, predictor_frames=(1, 2), encoder_frames=(1,), config=cfg)
    ort_wm = WorldModel(make_backend("onnxruntime", export_dir=tmp_path, threads=1))
    assert ort_wm.use_kv_cache  # the export has the KV-cached step graphs (format 2)
    no_steps = tmp_path / "no_steps"
    export_onnx(no_steps, None, pred, predictor_frames=(1,), step_frames=0, config=cfg)
    with pytest.raises(ValueError, match="no KV-cached step"):
        WorldModel(make_backend("onnxruntime", export_dir=no_steps, threads=1), use_kv_cache=True)
    torch_wm = WorldModel(make_backend("torch", encoder=enc, predictor=pred))
    frames = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    ctx = torch_wm.encode(frames)
    assert (ort_wm.encode(frames) - ctx).abs().max().item() < 1e-4
    states = torch.tensor([[0.4, 0.0, 0.3, 3.1, 0.1, -0.2, 0.0]])
    actions = torch.randn(20, 2, 7, generator=torch.Generator().manual_seed(4)) * 0.05
    a = torch_wm.rollout(ctx[:1], states, actions)
    b = ort_wm.rollout(ctx[:1], states, actions)
    assert (a - b).abs().max().item() < 1e-4


def test_planner_end_to_end_on_franka_example(models, fixtures_dir):
    from vjepa_core.preprocessing import preprocess_frames

    enc, pred, _ = models
    traj = np.load(fixtures_dir / "franka_example_traj.npz")
    frames = preprocess_frames(traj["observations"][0], size=64, tubelet_size=1)[:, :, 0]  # [2, 3, 64, 64]
    wm = WorldModel(make_backend("torch", encoder=enc, predictor=pred))
    tokens = wm.encode(frames)  # [2, 16, 96]
    states = torch.from_numpy(traj["states"][0])
    cfg = CEMConfig(samples=64, iterations=3, horizon=2, seed=0)
    r1 = CEMPlanner.for_world_model(wm, cfg).plan(tokens[:1], states[:1], tokens[1])
    r2 = CEMPlanner.for_world_model(wm, cfg).plan(tokens[:1], states[:1], tokens[1])
    assert torch.equal(r1.actions, r2.actions)
    assert r1.actions.shape == (2, 7) and r1.actions[:, :3].abs().max() <= 0.075
    assert np.isfinite(r1.best_energy)
    # the reported energy is the plan's own: the final imagined frame of the whole plan against the goal
    again = l1_energy(wm.unroll(tokens[:1], states[:1], r1.actions[None]), tokens[1], normalize=False)
    assert r1.energy == pytest.approx(float(again[0]), abs=1e-6)


def test_planner_norms_tokens_once(models):
    """A normalising world model's predictions are layer-normed by the model, not again by the energy; a
    non-normalising one leaves it to the energy. Either way each token is normed exactly once."""
    enc, pred, _ = models
    g = torch.Generator().manual_seed(0)
    x, goal = torch.randn(3, 16, 96, generator=g) * 3 + 1, torch.randn(16, 96, generator=g)
    normed = CEMPlanner.for_world_model(WorldModel(make_backend("torch", predictor=pred)), CEMConfig())
    torch.testing.assert_close(normed.objective(x, goal), (x - goal).abs().mean(dim=(1, 2)))
    raw = CEMPlanner.for_world_model(WorldModel(make_backend("torch", predictor=pred), normalize=False),
                                     CEMConfig())
    torch.testing.assert_close(raw.objective(x, goal),
                               (normalize_tokens(x) - normalize_tokens(goal)).abs().mean(dim=(1, 2)))
    states = torch.tensor([[0.4, 0.0, 0.3, 3.1, 0.1, -0.2, 0.0]])
    out = WorldModel(make_backend("torch", predictor=pred)).unroll(normalize_tokens(x[:1]), states,
                                                                   torch.zeros(2, 1, 7))
    # the model's own (single) normalisation: zero mean, unit variance per token
    assert out.mean(-1).abs().max() < 1e-5 and (out.var(-1, unbiased=False) - 1).abs().max() < 1e-3


def planning_imports(path: Path) -> list[str]:
    """``file:line module`` of each import of the planning layer in ``path`` (absolute, relative, or
    ``from .. import planning``)."""
    import ast

    hits = []
    for n in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(n, ast.ImportFrom):
            names = [n.module or ""] + [f"{n.module or ''}.{a.name}" for a in n.names]
        elif isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        else:
            continue
        hits += [f"{path.name}:{n.lineno} {m}" for m in names if "planning" in m.split(".")][:1]
    return hits


def test_inference_layer_does_not_import_planning_logic(tmp_path):
    """Dependencies point planning -> inference: no module of the vjepa_core.inference package imports a planner,
    energy or CEM config."""
    import vjepa_core.inference as inference

    package = Path(inference.__file__).parent
    modules = sorted(package.rglob("*.py"))
    assert {"__init__.py", "world_model.py", "torch_backend.py"} <= {p.name for p in modules}
    found = [hit for path in modules for hit in planning_imports(path)]
    assert not found, found
    assert not hasattr(WorldModel, "planner")
    sample = tmp_path / "sample.py"  # the scan sees each import form
    sample.write_text("from ..planning import cem\nfrom .. import planning\nimport vjepa_core.planning.energy\n"
                      "from vjepa_core.planning.cem import CEMConfig\nfrom .base import planning_free\n")
    assert [h.split()[0] for h in planning_imports(sample)] == ["sample.py:1", "sample.py:2", "sample.py:3",
                                                                 "sample.py:4"]


def test_auto_chunk_size(models):
    _, pred, _ = models
    b = make_backend("torch", predictor=pred)
    wm = WorldModel(b, memory_budget_mb=1.0)
    c = wm.auto_chunk_size(800, 2)
    assert 1 <= c < 800
    assert WorldModel(b, memory_budget_mb=1e6).auto_chunk_size(800, 2) == 800
    assert WorldModel(b, chunk_size=50).auto_chunk_size(800, 2) == 50
    assert WorldModel(b, use_kv_cache=False, memory_budget_mb=1.0).auto_chunk_size(800, 3) < c


def test_onnxruntime_chunks_larger_by_default(models, tmp_path):
    """On the CPU the default chunk follows the backend: torch keeps 8 MB (cache-resident) chunks (16 MB for a
    bf16 step, which keeps some activations in float32), onnxruntime a
    256 MB budget (its per-call overhead made 89-sample chunks 2.2x slower than 800 at 2 threads); an explicit
    budget or chunk size still wins."""
    _, pred, cfg = models
    export_onnx(tmp_path, None, pred, predictor_frames=(1, 2), config=cfg)
    ort = make_backend("onnxruntime", export_dir=tmp_path, threads=1)
    tb = make_backend("torch", predictor=pred)  # fp32
    assert tb.cpu_memory_budget_mb == 8.0 and ort.cpu_memory_budget_mb == 256.0
    half = make_backend("torch", predictor=pred, precision="bf16")  # a bf16 step: twice the budget, 2-byte elements
    assert half.cpu_memory_budget_mb == 16.0 and half.activation_bytes == 2
    assert WorldModel(half).auto_chunk_size(800, 2) >= 3 * WorldModel(tb).auto_chunk_size(800, 2)
    assert WorldModel(tb).auto_chunk_size(800, 2) < 200
    assert WorldModel(ort).auto_chunk_size(800, 2) == 800
    assert WorldModel(ort, memory_budget_mb=8.0).auto_chunk_size(800, 2) == WorldModel(tb).auto_chunk_size(800, 2)
    assert WorldModel(ort, chunk_size=50).auto_chunk_size(800, 2) == 50
