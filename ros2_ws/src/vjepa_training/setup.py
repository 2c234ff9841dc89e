"""ament_python build for vjepa_training."""
from setuptools import find_packages, setup

PACKAGE = "vjepa_training"

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
    description="Rosbag recording, datasets, V-JEPA 2 pretraining and action-conditioned post-training.",
    license="MIT",
    entry_points={
        "console_scripts": [
            "recorder_node = vjepa_training.recorder_node:main",
            "vjepa-train = vjepa_training.train_cli:main",
            "vjepa-dataset = vjepa_training.dataset_cli:main",
        ],
    },
)
