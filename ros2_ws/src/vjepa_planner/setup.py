"""ament_python build for vjepa_planner."""
from setuptools import find_packages, setup

PACKAGE = "vjepa_planner"

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
        "Planner node: CEM with the V-JEPA 2-AC world model toward a goal image, with safety limits and robot adapters."
    ),
    license="MIT",
    entry_points={
        "console_scripts": [
            "planner_node = vjepa_planner.planner_node:main",
        ],
    },
)
