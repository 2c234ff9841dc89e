"""ament_python build for vjepa_perception."""
from setuptools import find_packages, setup

PACKAGE = "vjepa_perception"

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
    description="Encoder node: camera images to V-JEPA 2 latents.",
    license="MIT",
    entry_points={
        "console_scripts": [
            "encoder_node = vjepa_perception.encoder_node:main",
            "action_node = vjepa_perception.action_node:main",
        ],
    },
)
