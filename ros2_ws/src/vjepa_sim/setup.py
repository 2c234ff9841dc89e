"""ament_python build for vjepa_sim."""
from setuptools import find_packages, setup

PACKAGE = "vjepa_sim"

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
    description="Headless PyBullet Franka Panda with franka_ros2-shaped interfaces.",
    license="MIT",
    entry_points={
        "console_scripts": [
            "sim_node = vjepa_sim.sim_node:main",
            "vjepa-sim = vjepa_sim.cli:main",
        ],
    },
)
