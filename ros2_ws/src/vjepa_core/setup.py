"""ament_python build for vjepa_core."""
from setuptools import find_packages, setup

PACKAGE = "vjepa_core"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="vjepa2_ros maintainers",
    maintainer_email="maintainers@vjepa2-ros.org",
    description=(
        "Pure-Python V-JEPA 2 core (no rclpy): models, checkpoints, preprocessing, pose math, CEM planning, "
        "inference backends, export."
    ),
    license="MIT",
    entry_points={
        "console_scripts": [
            "vjepa-export = vjepa_core.cli.export:main",
            "vjepa-bench = vjepa_core.cli.bench:main",
            "vjepa-run = vjepa_core.runner:main",
        ],
    },
)
