"""`vjepa-export` and `vjepa-bench` end to end (in-process) on the tiny checkpoint."""

from __future__ import annotations

import json

import pytest

from vjepa_core.cli import bench, export


def test_export_onnx_trt_inspect(fixtures_dir, tmp_path, capsys):
    d = fixtures_dir / "parity_tiny_a"
    out = tmp_path / "onnx"
    rc = export.main(["onnx", "--checkpoint", str(d / "checkpoint.pt"), "--config", str(d / "config.json"),
                      "--out", str(out), "--frames", "1", "2"])
    text = capsys.readouterr().out
    assert rc == 0 and "max abs error onnxruntime vs torch" in text
    assert {p.name for p in out.iterdir()} >= {"encoder_f1.onnx", "predictor_t1.onnx", "predictor_t2.onnx",
                                              "predictor_step_f0.onnx", "predictor_step_f1.onnx", "manifest.json"}
    assert "wrote 5 graph(s)" in text and not list(out.glob("*.data"))
    ext = tmp_path / "ext"
    rc = export.main(["onnx", "--checkpoint", str(d / "checkpoint.pt"), "--config", str(d / "config.json"),
                      "--out", str(ext), "--frames", "1", "--step-frames", "0", "--no-encoder",
                      "--external-data", "yes"])
    assert rc == 0 and "wrote 1 graph(s)" in capsys.readouterr().out
    assert sorted(p.name for p in ext.iterdir()) == ["manifest.json", "predictor_t1.onnx", "predictor_t1.onnx.data"]
    rc = export.main(["trt", str(out)])
    err = capsys.readouterr().err
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert rc == 2 and "tensorrt is not installed" in err
    assert export.main(["inspect", str(d / "checkpoint.pt")]) == 0
    assert "predictor" in capsys.readouterr().out
    assert export.main(["inspect", str(tmp_path / "missing.pt")]) == 2
    assert "not found" in capsys.readouterr().err
    rc = export.main(["onnx", "--checkpoint", str(d / "checkpoint.pt"), "--config", str(d / "config.json"),
                      "--out", str(out), "--opset", "13"])
    assert rc == 2 and "opset 13" in capsys.readouterr().err


def test_bench_planner_and_encoder_json(tmp_path, capsys, monkeypatch, fixtures_dir):
    monkeypatch.chdir(fixtures_dir.parent.parent)  # the repo root: preset 'tiny' is found under tests/fixtures
    j = tmp_path / "planner.json"
    rc = bench.main(["planner", "--samples", "40", "--iterations", "2", "--horizon", "2", "--repeats", "1",
                     "--compare-reference", "--json", str(j)])
    assert rc == 0
    rec = json.loads(j.read_text())
    for key in ("ms_per_plan_median", "ms_per_plan_median_reference", "speedup_vs_reference", "device_name",
                "plan_energy_ours", "plan_energy_reference"):
        assert key in rec
    assert rec["kv_cache"] and rec["samples"] == 40
    assert abs(rec["plan_energy_ours"] - rec["plan_energy_reference"]) < 1e-3
    j3 = tmp_path / "side_by_side.json"
    rc = bench.main(["planner", "--samples", "40", "--iterations", "2", "--horizon", "2", "--repeats", "2",
                     "--threads", "1", "--compare-backend", "onnxruntime", "--json", str(j3)])
    assert rc == 0 and "onnxruntime" in capsys.readouterr().out
    rec = json.loads(j3.read_text())
    assert rec["backend"] == "torch" and rec["kv_cache"] and rec["kv_cache_onnxruntime"]  # step graphs exported
    assert len(rec["ms_per_plan_onnxruntime"]) == len(rec["ms_per_plan_ours"]) == 2
    assert rec["ratio_vs_ours_onnxruntime"] == pytest.approx(
        rec["ms_per_plan_median_onnxruntime"] / rec["ms_per_plan_median_ours"])
    assert abs(rec["plan_energy_onnxruntime"] - rec["plan_energy_ours"]) < 1e-4  # same plan quality
    j2 = tmp_path / "enc.json"
    assert bench.main(["encoder", "--repeats", "2", "--backend", "onnxruntime", "--json", str(j2)]) == 0
    rec = json.loads(j2.read_text())
    assert rec["ms_per_frame_median"] > 0 and rec["frames_per_s"] > 0 and "device_name" in rec
    reuse = tmp_path / "enc_export"
    capsys.readouterr()
    for _ in range(2):  # the second run reuses the export written by the first
        assert bench.main(["encoder", "--repeats", "1", "--backend", "onnxruntime", "--export-dir", str(reuse),
                           "--json", str(j2)]) == 0
    assert capsys.readouterr().out.count("[parity] encoder") == 1
    with pytest.raises(SystemExit):
        bench.main(["planner", "--config", str(tmp_path / "nope.json")])
