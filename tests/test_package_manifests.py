"""Every package.xml is valid (catkin_pkg) and declares the dependencies its Python code imports."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = [ROOT] + sorted(p.parent for p in (ROOT / "ros2_ws" / "src").glob("*/package.xml"))

# Python import name -> rosdep key / ROS package name that provides it.
IMPORT_TO_DEP = {
    "numpy": "python3-numpy", "torch": "python3-torch", "yaml": "python3-yaml", "rclpy": "rclpy",
    "rosbags": "python3-rosbags", "onnx": "python3-onnx", "onnxruntime": "python3-onnxruntime",
    "pybullet": "python3-pybullet", "tqdm": "python3-tqdm", "matplotlib": "python3-matplotlib",
    "PIL": "python3-pil", "safetensors": "python3-safetensors", "h5py": "python3-h5py", "av": "python3-av",
    "tensorrt": None, "catkin_pkg": "python3-catkin-pkg", "ament_index_python": "ament_index_python",
    "pybullet_data": "python3-pybullet", "tensorboard": "python3-tensorboard", "imageio": "python3-imageio",
    "lz4": "python3-lz4",
    # optional, imported lazily where used and documented there:
    "franka_msgs": None, "control_msgs": None,        # lab gripper adapters (franka_ros2 / ros2_control)
    "compression": None, "backports": None,          # zstd: Python 3.14 stdlib or its backport (rosbags dep)
}
OPTIONAL = {"tensorrt", "onnxruntime", "onnx", "matplotlib", "tensorboard", "av", "h5py", "imageio", "PIL"}


@pytest.mark.parametrize("pkg_dir", PACKAGE_DIRS, ids=lambda p: p.name)
def test_package_xml_is_valid(pkg_dir):
    pkg = parse_package(pkg_dir / "package.xml")
    pkg.validate()
    assert pkg.package_format == 3
    assert pkg.name == ("vjepa2_ros" if pkg_dir == ROOT else pkg_dir.name)
    if pkg_dir != ROOT and pkg.get_build_type() == "ament_python":
        assert (pkg_dir / "resource" / pkg.name).is_file(), "ament_python packages need resource/<name>"
        assert (pkg_dir / "setup.cfg").is_file()


def test_metapackage_depends_on_every_package():
    meta = parse_package(ROOT / "package.xml")
    deps = {d.name for d in meta.exec_depends}
    assert {p.name for p in PACKAGE_DIRS[1:]} <= deps


def imported_top_levels(pkg_dir: Path) -> set[str]:
    names: set[str] = set()
    for py in (pkg_dir / pkg_dir.name).rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__", pkg_dir.name}


@pytest.mark.parametrize("pkg_dir", [p for p in PACKAGE_DIRS[1:] if (p / p.name).is_dir()], ids=lambda p: p.name)
def test_package_xml_lists_python_imports(pkg_dir):
    pkg = parse_package(pkg_dir / "package.xml")
    declared = {d.name for d in pkg.exec_depends + pkg.build_export_depends + pkg.run_depends if d}
    missing = []
    for name in sorted(imported_top_levels(pkg_dir)):
        dep = IMPORT_TO_DEP.get(name, name)  # ROS packages (sensor_msgs, vjepa_core, ...) import by their own name
        if dep is None or name in OPTIONAL and dep not in declared:
            continue  # optional accelerators are imported lazily and documented, not hard dependencies
        if dep not in declared:
            missing.append(f"{name} (needs <exec_depend>{dep}</exec_depend>)")
    assert not missing, f"{pkg_dir.name}/package.xml does not declare: {', '.join(missing)}"


def test_vjepa_core_never_imports_rclpy():
    assert "rclpy" not in imported_top_levels(ROOT / "ros2_ws" / "src" / "vjepa_core")
