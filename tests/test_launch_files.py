"""Launch files (for real ROS 2 installs) and run files (for `vjepa-run`) name executables and parameter files
that exist, checked statically (no ROS 2 launch system needed). tests/test_ros2_launch.py runs every launch file
with the real `ros2 launch`; the last test here keeps it that way for launch files added later."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "ros2_ws" / "src"
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
RUN_FILES = sorted((ROOT / "launch").glob("*.run.yaml"))
OUR_PACKAGES = {p.parent.name for p in SRC.glob("*/package.xml")}
# Executables of other ROS packages a lab launch file may start (they exist on lab machines, not here).
EXTERNAL = {("controller_manager", "spawner")}


def console_scripts(package: str) -> set[str]:
    """Console-script names declared in a package's setup.py (read from source, not from an install)."""
    setup_py = SRC / package / "setup.py"
    if not setup_py.is_file():
        return set()
    names: set[str] = set()
    for node in ast.walk(ast.parse(setup_py.read_text())):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    for elt in value.elts:
                        names.add(elt.value.split("=")[0].strip())
    return names


def launched_nodes(path: Path) -> list[tuple[str, str]]:
    """(package, executable) of every `Node(...)` call with literal arguments in a launch file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Node":
            kw = {k.arg: k.value for k in node.keywords}
            pkg, exe = kw.get("package"), kw.get("executable")
            assert isinstance(pkg, ast.Constant) and isinstance(exe, ast.Constant), (
                f"{path.name}: Node(...) at line {node.lineno} must give package and executable as literals")
            found.append((pkg.value, exe.value))
    return found


def yaml_names(path: Path) -> set[str]:
    """Every string literal in a launch file that names a .yaml file."""
    return {n.value for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.endswith(".yaml")}


def test_there_are_launch_and_run_files():
    assert LAUNCH_FILES, "launch/ holds no *.launch.py"
    assert RUN_FILES, "launch/ holds no *.run.yaml for vjepa-run"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_real_executables_and_configs(path):
    tree = ast.parse(path.read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions, f"{path.name} lacks generate_launch_description()"
    for pkg, exe in launched_nodes(path):
        if pkg not in OUR_PACKAGES:
            assert (pkg, exe) in EXTERNAL, f"{path.name}: unknown external executable {pkg}/{exe}"
            continue
        assert exe in console_scripts(pkg), f"{path.name}: {pkg}/{exe} is not a console script of {pkg}"
    for name in yaml_names(path):
        found = (ROOT / "config" / name).is_file() or (ROOT / "config" / Path(name).name).is_file()
        assert found, f"{path.name} names config/{name}, which is missing"
    for arg in ast.walk(tree):  # every launch argument is documented
        if isinstance(arg, ast.Call) and getattr(arg.func, "id", "") == "DeclareLaunchArgument":
            assert any(k.arg == "description" for k in arg.keywords), (
                f"{path.name}: DeclareLaunchArgument at line {arg.lineno} has no description")


@pytest.mark.parametrize("path", RUN_FILES, ids=lambda p: p.name)
def test_run_file_matches_its_launch_file(path):
    from vjepa_core.runner import load_run_file

    specs = load_run_file(path)
    for spec in specs:
        assert spec.executable in console_scripts(spec.package), f"{path.name}: {spec.package}/{spec.executable}"
        for entry in spec.parameters:
            if isinstance(entry, str):
                assert (ROOT / entry).is_file(), f"{path.name}: parameter file {entry} missing"
                doc = yaml.safe_load((ROOT / entry).read_text())
                assert any("ros__parameters" in (v or {}) for v in doc.values()), f"{entry} is not a ROS params file"
    twin = path.with_name(path.name.replace(".run.yaml", ".launch.py"))
    if twin.is_file():
        assert {(s.package, s.executable) for s in specs} <= set(launched_nodes(twin)), (
            f"{path.name} starts nodes that {twin.name} does not")


def test_every_launch_file_is_run_by_the_real_launch_tests():
    """Each launch/*.launch.py is started with `ros2 launch` in tests/test_ros2_launch.py (which checks the installed
    copy first with ``_installed_launch_file(NAME)``): a new launch file needs a test there."""
    text = (ROOT / "tests" / "test_ros2_launch.py").read_text()
    run = set(re.findall(r'_installed_launch_file\("([\w.]+)"\)', text))
    run |= {name for group in re.findall(r'for name in \(([^)]*)\):\n\s+_installed_launch_file\(name\)', text)
            for name in re.findall(r'"([\w.]+)"', group)}
    missing = sorted(p.name for p in LAUNCH_FILES if p.name not in run)
    assert not missing, f"launch files never run by tests/test_ros2_launch.py: {missing}"
