"""bench/make_readme.py renders the action_node section (issue 17) from bench/results/action.json, and
bench/run_all.sh knows the benchmark by the name ``action``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _section(results: Path) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "make_readme.py"), "--section", "action",
                          "--results", str(results), "--stdout"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_section_renders_the_rows_and_the_live_episode_of_the_json(tmp_path):
    doc = json.loads((ROOT / "bench" / "results" / "action.json").read_text())
    doc["rows"][0]["latency_ms"]["p50"] = 12.34
    doc["live_episode"].update(scored=20, correct=15, top1=0.75)
    (tmp_path / "action.json").write_text(json.dumps(doc))
    text = _section(tmp_path)
    assert text.startswith("## Video understanding: action_node (issue 17)")
    assert f"| {doc['rows'][0]['config']} | {doc['rows'][0]['clips']} | 12.3 / " in text
    assert f"| {doc['rows'][1]['config']} |" in text
    assert "top-1 **75%** (15/20 clips inside a primitive)" in text
    assert f"Reproduce: `{doc['command']}`" in text and f"date: {doc['date']}" in text


def test_a_missing_result_says_how_to_make_it(tmp_path):
    assert "_Not run yet: no `bench/results/action.json`. Run `python bench/bench_action.py`._" in _section(tmp_path)


def test_run_all_runs_it_under_the_name_action():
    script = (ROOT / "bench" / "run_all.sh").read_text()
    assert 'action)       run action "$PY" bench/bench_action.py ;;' in script
    assert "landscape reach action)" in script
