"""The simulation pipeline (``vjepa-sim collect|build|pretrain|posttrain|export|eval|action-error``).

Pure parts (task sampling, settings, reports) are tested directly. The stages run for real on a tiny scale:
two short exploration episodes recorded through sim_node + recorder_node over Fast DDS (own ROS domain), the
dataset built from those bags, a few steps of our pretraining and post-training, an ONNX export, the held-out
action-inference metric, and one short closed-loop reach episode with the shipped model through sim_node +
encoder_node + planner_node (plus the random baseline).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from vjepa_sim.cli import build_parser, main
from vjepa_sim.pipeline.eval import sample_tasks
from vjepa_sim.pipeline.report import summarize, write_episode_figure, write_report
from vjepa_sim.pipeline.settings import load_settings

ROOT = Path(__file__).resolve().parents[4]
SHIPPED = ROOT / "models" / "sim_reach"


# ------------------------------------------------------------------------------------------------ pure parts
def test_subcommands_registered():
    parser = build_parser()
    names = set(parser._subparsers._group_actions[0].choices)  # noqa: SLF001 (argparse has no public accessor)
    assert {"collect", "build", "pretrain", "posttrain", "export", "eval", "demo", "action-error"} <= names


def test_sample_tasks_deterministic_and_far_enough():
    lo, hi = [0.38, -0.17, 0.08], [0.62, 0.17, 0.33]
    a = sample_tasks(50, 3, lo, hi, 0.10)
    assert a == sample_tasks(50, 3, lo, hi, 0.10)
    assert a != sample_tasks(50, 4, lo, hi, 0.10)
    for t in a:
        s, g = np.array(t["start"]), np.array(t["target"])
        assert np.linalg.norm(s - g) >= 0.10 - 1e-3  # rounded to 0.1 mm
        assert np.all(g >= np.array(lo) - 1e-4) and np.all(g <= np.array(hi) + 1e-4)
    assert len({t["scene_seed"] for t in a}) == 50


def test_sample_tasks_rejects_bad_boxes():
    with pytest.raises(ValueError, match="min < max"):
        sample_tasks(1, 0, [0.5, 0, 0], [0.4, 0.1, 0.1], 0.1)
    with pytest.raises(ValueError, match="does not fit"):
        sample_tasks(1, 0, [0, 0, 0], [0.05, 0.05, 0.05], 0.2)


def test_settings_reject_unknown_keys(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("collect: {episodes: 3, episdoes: 4}\n")
    with pytest.raises(ValueError, match="episdoes"):
        load_settings(str(bad))
    assert main(["collect", "--pipeline", str(bad)]) == 2  # a clear one-line error, exit 2


def test_report_from_records(tmp_path):
    trace = [{"step": k + 1, "distance": 0.2 - 0.04 * k, "energy": 0.5 - 0.1 * k, "goal_energy": 0.6 - 0.1 * k,
              "action": [0.04, 0, 0], "planning_time": 0.3} for k in range(4)]
    rec = {"index": 0, "scene_seed": 1, "start": [0.4, 0, 0.2], "target": [0.6, 0, 0.2], "initial_distance": 0.2,
           "final_distance": 0.03, "min_distance": 0.03, "steps": 4, "success": True, "message": "", "trace": trace}
    fail = dict(rec, index=1, final_distance=0.2, min_distance=0.1, success=False)
    summary = summarize([rec, fail], "planner", {"max_steps": 20, "success_radius": 0.05})
    assert summary["success_rate"] == 0.5 and summary["successes"] == 1
    assert summary["planning_time_median_s"] == pytest.approx(0.3)
    slow = dict(rec, index=2, trace=[dict(t, planning_time=0.3 + 0.1 * k) for k, t in enumerate(trace)])
    times = summarize([rec, slow], "planner", {})  # planning time per step over every planned step
    assert times["planning_time_p50_s"] == pytest.approx(0.3)
    assert times["planning_time_p99_s"] == pytest.approx(float(np.percentile([0.3] * 5 + [0.4, 0.5, 0.6], 99)))
    img = np.zeros((96, 96, 3), np.uint8)
    write_episode_figure(tmp_path / "ep.png", rec, img, img, img, 0.05)
    assert (tmp_path / "ep.png").stat().st_size > 1000
    md = write_report(tmp_path / "r.md", summary, "vjepa-sim eval ...").read_text()
    assert "1 / 2 = 50%" in md and "| 1 | 1 | 20.0 | 20.0 |" in md


# ------------------------------------------------------------------------------------------------ real stages
@pytest.fixture
def pipeline_yaml(tmp_path):
    cfg = {
        "workdir": str(tmp_path / "it's work"),  # a quote in a path must not break any stage
        "collect": {"episodes": 3, "episode_seconds": 6.0},
        "build": {"heldout_episodes": 1},
        "eval": {"max_steps": 2},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_collect_build_train_export_on_a_tiny_scale(pipeline_yaml, tmp_path, ros_domain_id):
    p = ["--pipeline", str(pipeline_yaml)]
    work = tmp_path / "it's work"
    # collect through sim_node + recorder_node; a rerun keeps the recorded episodes
    assert main(["collect", *p, "--episodes", "2"]) == 0
    manifest = json.loads((work / "bags" / "collect.json").read_text())["episodes"]
    assert sorted(manifest) == ["0", "1"]
    first = dict(manifest)
    assert main(["collect", *p]) == 0  # settings say 3: only episode 2 is recorded
    manifest = json.loads((work / "bags" / "collect.json").read_text())["episodes"]
    assert sorted(manifest) == ["0", "1", "2"] and all(manifest[k] == first[k] for k in first)
    for entry in manifest.values():
        assert (work / "bags" / entry["bag"] / "metadata.yaml").is_file()
    # build: train (episodes 0, 1) and held-out (episode 2) datasets with states and actions
    assert main(["build", *p, "--quiet"]) == 0
    for name in ("dataset", "dataset_heldout"):
        index = json.loads((work / name / "index.json").read_text())
        assert index["episodes"], name
    shard = work / "dataset" / "shards" / "shard_00000"
    frames, actions = np.load(shard / "frames.npy"), np.load(shard / "actions.npy")
    assert frames.shape[1:] == (96, 96, 3) and frames.std() > 5
    assert np.abs(actions[:, :3]).max() > 0.005  # the arm moved between frames
    # a few steps of our pretraining and post-training, then the export with ONNX parity checks
    assert main(["pretrain", *p, "--max-steps", "2"]) == 0
    assert (work / "pretrain" / "latest.pt").is_file() and (work / "pretrain" / "encoder.json").is_file()
    assert main(["posttrain", *p, "--max-steps", "2"]) == 0
    assert list((work / "dataset" / "latents").iterdir())  # the latent cache was used
    assert main(["export", *p]) == 0
    model = work / "model"
    for f in ("vjepa2_sim.pt", "config.json", "model.json", "onnx/encoder_f1.onnx", "onnx/predictor_t1.onnx"):
        assert (model / f).is_file(), f
    assert json.loads((model / "model.json").read_text())["posttrain_step"] == 2
    # the held-out action-inference metric runs on the exported model
    out = tmp_path / "ae.json"
    assert main(["action-error", *p, "--model", str(model), "--transitions", "4", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["transitions"] == 4 and np.isfinite(res["mean_position_error_cm"])
    assert res["energy_at_1cm"] > 0 and {r["direction"] for r in res["energy_profile"]} >= {"random", "ext1 axis"}
    assert main(["action-error", *p, "--model", str(model), "--transitions", "2", "--no-profile", "--json",
                 str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["transitions"] == 2 and res["energy_profile"] == [] and res["energy_at_1cm"] is None


def test_energy_profile_shows_what_each_view_sees():
    """Pixels as the 'encoder': both views together see motion along ext1's axis; ext1's view alone barely."""
    from vjepa_sim.pipeline.action_error import PROFILE_DISPLACEMENTS_CM, energy_profile

    settings = load_settings(None, None)

    def both(images):
        return images.reshape(len(images), -1, 3).astype(np.float32) / 255.0

    def top_only(images):
        return both(images[:, : images.shape[1] // 2])

    prof = {fn.__name__: energy_profile(settings, fn, positions=6, scenes=2) for fn in (both, top_only)}
    rows = {k: {(r["direction"], r["displacement_cm"]): r["energy_mean"] for r in v} for k, v in prof.items()}
    assert {d for d, _ in rows["both"]} == {"random", "ext1 axis", "ext2 axis"}
    assert all(r["pairs"] == 6 for r in prof["both"])
    for name in ("random", "ext1 axis"):  # energy grows with the displacement
        e = [rows["both"][(name, d)] for d in PROFILE_DISPLACEMENTS_CM]
        assert e[0] < e[3] < e[-1], (name, e)

    def ratio(k):
        return rows[k][("ext1 axis", 5.0)] / rows[k][("random", 5.0)]

    assert ratio("both") > 1.3 * ratio("top_only"), (ratio("both"), ratio("top_only"))


@pytest.mark.parametrize("model, pipeline", [("sim_reach", None), ("sim_manip", "config/sim_pipeline/manip.yaml"),
                                             ("sim_manip_wrist", "config/sim_pipeline/manip_wrist.yaml")])
def test_shipped_model_card_and_size(model, pipeline):
    """Each shipped sim model: present, small, with a model card, and fed exactly the frame its pipeline's sim
    publishes (two tiled views, no resize); ONNX graphs for every frame count its planner may ask for."""
    shipped = ROOT / "models" / model
    assert (shipped / "vjepa2_sim.pt").is_file(), f"models/{model} is not shipped"
    total = sum(f.stat().st_size for f in shipped.rglob("*") if f.is_file())
    assert total <= 25e6, f"models/{model} is {total / 1e6:.1f} MB (limit 25 MB)"
    card = (shipped / "MODEL_CARD.md").read_text()
    settings = load_settings(str(ROOT / pipeline) if pipeline else None, None)
    cams = {c.name: c for c in settings.sim_config().cameras}
    first = next(iter(cams.values()))
    assert first.tile_below, "the pipeline's camera should carry two tiled views"
    img = json.loads((shipped / "config.json").read_text())["encoder"]["img_size"]
    assert [first.height + cams[first.tile_below].height, first.width] == ([img, img] if isinstance(img, int) else img)
    for word in ("vjepa-sim collect", "vjepa-sim pretrain", "vjepa-sim posttrain", "success"):
        assert word in card
    frames = settings.section("export")["frames"]  # the settings hold the defaults under the file
    onnx = {f.name for f in (shipped / "onnx").glob("*.onnx")}
    assert {f"predictor_t{t}.onnx" for t in frames} <= onnx, onnx


def test_eval_one_episode_with_the_shipped_model(pipeline_yaml, tmp_path, ros_domain_id):
    out = tmp_path / "eval" / "e.json"
    assert main(["eval", "--pipeline", str(pipeline_yaml), "--model", str(SHIPPED), "--episodes", "1",
                 "--seed", "5", "--json", str(out), "--quiet"]) == 0
    res = json.loads(out.read_text())
    ep = res["per_episode"][0]
    assert res["episodes"] == 1 and 1 <= ep["steps"] <= 2  # the energy threshold may end it after one step
    assert all(np.isfinite(t["energy"]) and t["planning_time"] > 0 for t in ep["trace"])
    assert ep["initial_distance"] >= 0.099
    # the planner moved the arm
    assert np.linalg.norm(np.array(ep["final_position"]) - np.array(ep["start"])) > 0.01
    assert (out.parent / ep["figure"]).stat().st_size > 1000
    assert "success" in out.with_suffix(".md").read_text()


def test_random_baseline_episode(pipeline_yaml, tmp_path, ros_domain_id):
    out = tmp_path / "rand.json"
    assert main(["eval", "--pipeline", str(pipeline_yaml), "--policy", "random", "--episodes", "1",
                 "--json", str(out), "--quiet"]) == 0
    ep = json.loads(out.read_text())["per_episode"][0]
    assert ep["steps"] == 2 and ep["trace"][0]["energy"] is None
