"""Source rules of issue 14 that a grep can check, as tests (each has a sample it must catch, so it can fail):

- one token normalization: no layer norm, written by hand or called, outside ``vjepa_core/tokens.py`` and the
  model code (the models' learned ``nn.LayerNorm`` layers are part of the architecture, not token normalization);
- no library module sets the process's torch thread count (``torch.set_num_threads``): entry points decide it;
- vjepa_sim modules import no private (``_name``) helper from another module.

Test code is not scanned: the tests compute independent references (e.g. ``F.layer_norm``) on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "ros2_ws" / "src"


def library_sources() -> list[Path]:
    """Every Python module of the ROS packages (``ros2_ws/src/<pkg>/<pkg>/**``; not tests, not setup.py)."""
    return sorted(p for pkg in SRC.iterdir() if (pkg / pkg.name).is_dir() for p in (pkg / pkg.name).rglob("*.py"))


def bench_sources() -> list[Path]:
    """The benchmark scripts."""
    return sorted((ROOT / "bench").glob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` of a Name/Attribute chain ('' for anything else)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def _calls(node: ast.AST) -> list[str]:
    """The last name of every call inside ``node`` (``x.var(-1)`` -> ``var``)."""
    return [_dotted(c.func).rsplit(".", 1)[-1] for c in ast.walk(node) if isinstance(c, ast.Call)]


# ------------------------------------------------------------------------------------------------ normalization
TOKENS_MODULE = "ros2_ws/src/vjepa_core/vjepa_core/tokens.py"
MODEL_CODE = "ros2_ws/src/vjepa_core/vjepa_core/models/"  # learned LayerNorm layers of the architectures
# Allowed exceptions, each with the reason (none today). Keep this list short.
NORMALIZATION_ALLOWED: set[str] = set()


def _affine(call: ast.Call) -> bool:
    """A ``layer_norm`` call with weight/bias (positional, starred or keyword): a model's learned LayerNorm
    applied functionally (e.g. the fused inference modules), not token normalization."""
    return (len(call.args) > 2 or any(isinstance(a, ast.Starred) for a in call.args)
            or any(k.arg in ("weight", "bias") for k in call.keywords))


def normalization_sites(path: Path) -> list[str]:
    """``file:line what`` for each token normalization in ``path``: a ``layer_norm(...)`` call without affine
    parameters, an ``nn.LayerNorm`` layer (outside the model code) or a hand-written
    ``(x - x.mean(...)) / sqrt(x.var(...) + eps)`` / ``/ x.std(...)`` / ``* rsqrt(...)``."""
    rel = _rel(path)
    tree = ast.parse(path.read_text(), rel)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func).rsplit(".", 1)[-1]
            if (name == "layer_norm" and not _affine(node)) or (name == "LayerNorm" and not rel.startswith(MODEL_CODE)):
                found.append(f"{rel}:{node.lineno} {name}(...)")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.Mult)):
            left, right = _calls(node.left), _calls(node.right)
            centred = isinstance(node.left, ast.BinOp) and isinstance(node.left.op, ast.Sub) and "mean" in left
            if centred and ({"var", "std"} & set(right) or "rsqrt" in right):
                found.append(f"{rel}:{node.lineno} hand-written layer norm")
    return found


def test_one_token_normalization():
    """Issue 14, "one token-normalization function": vjepa_core.tokens.normalize_tokens (numpy or torch)."""
    found = [hit for path in library_sources() + bench_sources()
             if _rel(path) != TOKENS_MODULE and _rel(path) not in NORMALIZATION_ALLOWED
             for hit in normalization_sites(path)]
    assert not found, "normalize tokens with vjepa_core.tokens.normalize_tokens:\n" + "\n".join(found)


def test_normalization_scan_catches_copies(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import numpy as np\nimport torch.nn.functional as F\nfrom torch import nn\n"
        "a = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6)\n"
        "b = F.layer_norm(t, (t.shape[-1],))\n"
        "c = (t - t.mean(-1, keepdim=True)) * torch.rsqrt(t.var(-1, keepdim=True) + 1e-5)\n"
        "d = nn.LayerNorm(8)\n"
        "g = F.layer_norm(x, (c,), *self.norm1)\n"  # a model's learned LayerNorm, applied functionally
        "h = F.layer_norm(x, (c,), w, b, 1e-6)\n"
        "e = (img - MEAN) / STD\n"  # ImageNet pixel normalization: not a layer norm
        "f = x.mean(-1) / x.std(-1)\n")  # not centred: not a layer norm
    lines = [hit.split()[0] for hit in normalization_sites(sample)]
    assert lines == ["sample.py:4", "sample.py:5", "sample.py:6", "sample.py:7"], lines


def test_normalization_allow_list_names_real_files():
    for entry in sorted(NORMALIZATION_ALLOWED):
        assert (ROOT / entry).is_file(), f"{entry} is gone: drop it from NORMALIZATION_ALLOWED"


# ------------------------------------------------------------------------------------------------ msgconv
# Where poses and gripper states are converted through vjepa_core.msgconv only: the simulator package, its tests
# and the benchmarks (issue 14: "all nodes, the sim pipeline and tests use it").
MSGCONV_SCOPE = ("ros2_ws/src/vjepa_sim/", "bench/")


def message_field_sites(path: Path) -> list[str]:
    """``file:line what`` for each pose field read or written by hand (``<msg>.position.x``,
    ``<msg>.orientation.w``, ...) and each gripper width summed from ``<msg>.position``."""
    rel = _rel(path)
    tree = ast.parse(path.read_text(), rel)
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in ("x", "y", "z", "w")
                and isinstance(node.value, ast.Attribute)
                and node.value.attr in ("position", "orientation", "translation", "rotation")):
            found.append(f"{rel}:{node.lineno} .{node.value.attr}.{node.attr}")
        elif (isinstance(node, ast.Call) and _dotted(node.func) in ("sum", "np.sum") and node.args
              and isinstance(node.args[0], ast.Attribute) and node.args[0].attr == "position"):
            found.append(f"{rel}:{node.lineno} sum(....position)")
    return found


def test_sim_and_bench_convert_messages_through_msgconv():
    paths = [p for p in sorted((SRC / "vjepa_sim").rglob("*.py")) + bench_sources()
             if _rel(p).startswith(MSGCONV_SCOPE)]
    found = [hit for path in paths for hit in message_field_sites(path)]
    assert not found, ("read and write poses and gripper states with vjepa_core.msgconv "
                       "(pose_xyzq_from_msg, fill_pose_xyzq, gripper_closedness):\n" + "\n".join(found))


def test_message_field_scan_catches_copies(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("p = msg.pose.position\n"
                      "xyz = (p.x, msg.pose.position.y)\n"
                      "msg.pose.orientation.w = 1.0\n"
                      "width = sum(grip.position)\n"
                      "scale = m.scale.x\n")
    lines = sorted({hit.split()[0] for hit in message_field_sites(sample)})
    assert lines == ["sample.py:2", "sample.py:3", "sample.py:4"], lines


# ------------------------------------------------------------------------------------------------ threads
# Library code that sets the thread count from a value the user gave explicitly for that purpose. Keep it short.
THREADS_ALLOWED = {
    # the training config's `threads` (vjepa-train, and vjepa-sim pretrain/posttrain, which hand it their --threads)
    "ros2_ws/src/vjepa_training/vjepa_training/train/engine.py",
    # the probe config's `threads` (vjepa-train probe / anticipation-probe)
    "ros2_ws/src/vjepa_training/vjepa_training/train/probe.py",
    # load_model(threads=...): the nodes pass their `threads` parameter
    "ros2_ws/src/vjepa_core/vjepa_core/loading.py",
}


def entry_modules() -> set[str]:
    """The modules behind the packages' console scripts (``name = pkg.module:main`` in each setup.py): process
    entry points, which may choose the process's thread count."""
    import re

    found = set()
    for setup in SRC.glob("*/setup.py"):
        for module in re.findall(r"=\s*([A-Za-z_][\w.]*):\w+", setup.read_text()):
            found.add(f"{_rel(setup.parent)}/{module.replace('.', '/')}.py")
    return found


def thread_setting_sites(path: Path) -> list[str]:
    """``file:line`` of each ``torch.set_num_threads`` / ``set_num_interop_threads`` call in ``path``."""
    rel = _rel(path)
    return [f"{rel}:{node.lineno}" for node in ast.walk(ast.parse(path.read_text(), rel))
            if isinstance(node, ast.Call)
            and _dotted(node.func).rsplit(".", 1)[-1] in ("set_num_threads", "set_num_interop_threads")]


def test_library_code_does_not_set_torch_threads():
    """Issue 14: "sets torch.set_num_threads from library code". Entry modules (console scripts) and the
    benchmarks (bench/, not scanned) choose the thread count; library code only applies an explicit setting."""
    entries = entry_modules()
    assert "ros2_ws/src/vjepa_sim/vjepa_sim/cli.py" in entries and len(entries) >= 10, sorted(entries)
    found = [hit for path in library_sources() if _rel(path) not in entries | THREADS_ALLOWED
             for hit in thread_setting_sites(path)]
    assert not found, "set torch threads in the entry point (its main), not in library code:\n" + "\n".join(found)


def test_thread_scan_catches_calls(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import torch\nfrom torch import set_num_threads\n"
                      "torch.set_num_threads(2)\nset_num_threads(1)\ntorch.get_num_threads()\n"
                      "torch.set_num_interop_threads(1)\n")
    assert [hit.split(":")[1] for hit in thread_setting_sites(sample)] == ["3", "4", "6"]


@pytest.mark.parametrize("entry", sorted(THREADS_ALLOWED))
def test_thread_allow_list_entries_still_set_threads(entry):
    assert thread_setting_sites(ROOT / entry), f"{entry} no longer sets threads: drop it from THREADS_ALLOWED"


# ------------------------------------------------------------------------------------------------ private helpers
def private_imports(path: Path, package: str = "vjepa_sim") -> list[str]:
    """``file:line name`` for each private (``_name``, not dunder) helper that ``path`` takes from another module of
    ``package``: ``from .x import _helper`` / ``from package.x import _helper``, or ``x._helper`` on a module
    imported from the package."""
    rel = _rel(path)
    tree = ast.parse(path.read_text(), rel)

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").split(".")[0] == package):
            for alias in node.names:
                if private(alias.name):
                    found.append(f"{rel}:{node.lineno} {alias.name}")
                else:
                    modules.add(alias.asname or alias.name)  # may be a module (from . import tasks)
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] == package}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in modules:
                found.append(f"{rel}:{node.lineno} {_dotted(node)}")
    return found


def test_vjepa_sim_modules_import_no_private_helpers_of_others():
    """Issue 14: the sim pipeline "imports private helpers across modules". A helper another module needs is
    public (named without the underscore, in ``__all__``)."""
    found = [hit for path in sorted((SRC / "vjepa_sim" / "vjepa_sim").rglob("*.py")) for hit in private_imports(path)]
    assert not found, "\n".join(found)


def test_private_import_scan_catches_them(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from .settings import _planner_param, Settings\n"
                      "from vjepa_sim.pipeline.eval import _graph\n"
                      "from . import tasks\n"
                      "import vjepa_sim.scene\n"
                      "x = tasks._budget(1)\n"
                      "y = vjepa_sim.scene._teleport\n"
                      "z = self._lock\n"
                      "from __future__ import annotations\n"
                      "from numpy import _private\n")
    lines = sorted(hit.split()[0] for hit in private_imports(sample))
    assert lines == ["sample.py:1", "sample.py:2", "sample.py:5", "sample.py:6"], lines
