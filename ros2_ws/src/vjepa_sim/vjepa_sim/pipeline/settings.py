"""Pipeline settings (``config/sim_pipeline/pipeline.yaml``) and the stage directory layout.

One YAML file configures every stage; unknown keys are errors (a typo never silently falls back to a
default). Stage outputs live under ``workdir``::

    workdir/bags/            collect: one rosbag2 (mcap) directory per episode + collect.json
    workdir/dataset/         build: vjepa-dataset shards (+ latents/<model id>/ after posttrain)
    workdir/dataset_heldout/ build: the held-out episodes (action-inference metric)
    workdir/pretrain/        pretrain: vjepa-train run (latest.pt, encoder.json, metrics.csv)
    workdir/posttrain/       posttrain: vjepa-train run
    workdir/model/           export: the deployable model (checkpoint + config.json + onnx/ + model.json)
    workdir/logs/            node logs of the ROS stages
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .graph import repo_root

__all__ = ["DEFAULTS", "Settings", "add_common_arguments", "load_settings"]

DEFAULTS: dict[str, Any] = {
    "workdir": "runs/sim_pipeline",
    "sim_params": ["config/sim.yaml", "config/sim_pipeline/sim.yaml"],
    "collect": {"episodes": 100, "seed": 1000, "episode_seconds": 40.0, "real_time_factor": 0.0,
                "explore_control_rate_hz": 2.5, "explore_max_delta": 0.05},
    "build": {"fps": 2.5, "image_size": 96, "heldout_episodes": 8},
    "pretrain": {"config": "config/train/sim_pretrain.yaml"},
    "posttrain": {"config": "config/train/sim_posttrain.yaml"},
    "export": {"frames": [1, 2]},
    "eval": {"episodes": 20, "seed": 0, "max_steps": 20, "success_radius": 0.05, "min_goal_distance": 0.10,
             "target_min": [0.38, -0.17, 0.08], "target_max": [0.62, 0.17, 0.33], "real_time_factor": 2.0,
             "planner_params": "config/sim_pipeline/planner.yaml",
             "encoder_params": "config/sim_pipeline/encoder.yaml"},
}


def _merge(base: dict, update: dict, where: str) -> dict:
    """``base`` updated by ``update``; unknown keys raise ``ValueError`` naming the path."""
    out = copy.deepcopy(base)
    for key, value in (update or {}).items():
        if key not in base:
            raise ValueError(f"unknown pipeline setting {where}{key!r} (known: {', '.join(sorted(base))})")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"pipeline setting {where}{key!r} must be a mapping")
            out[key] = _merge(base[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


@dataclass
class Settings:
    """Resolved pipeline settings plus the paths every stage uses."""

    data: dict
    root: Path

    def path(self, rel: str | Path) -> Path:
        """A path from the settings, relative to the repository root unless absolute."""
        p = Path(rel).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def workdir(self) -> Path:
        return self.path(self.data["workdir"])

    @property
    def bags(self) -> Path:
        return self.workdir / "bags"

    @property
    def dataset(self) -> Path:
        return self.workdir / "dataset"

    @property
    def heldout_dataset(self) -> Path:
        return self.workdir / "dataset_heldout"

    @property
    def pretrain_run(self) -> Path:
        return self.workdir / "pretrain"

    @property
    def posttrain_run(self) -> Path:
        return self.workdir / "posttrain"

    @property
    def model_dir(self) -> Path:
        return self.workdir / "model"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    def sim_params(self) -> list:
        """sim_node params files (absolute paths), later ones override earlier ones."""
        return [str(self.path(p)) for p in self.data["sim_params"]]

    def sim_config(self) -> object:
        """The scene the pipeline's sim_node runs (:class:`vjepa_sim.config.SimConfig` from the layered
        ``sim_params`` files), for work that renders without ROS (energy profiles, checks)."""
        from ..config import config_from_ros_params, load_params_file

        params: dict = {}
        for f in self.sim_params():
            params.update(load_params_file(f))
        return config_from_ros_params(params)

    def section(self, name: str) -> dict:
        """One stage's settings (``collect``, ``build``, ``pretrain``, ``posttrain``, ``export``, ``eval``)."""
        return self.data[name]

    def planner_params(self) -> list:
        """planner_node params files of the evaluation (absolute paths; ``eval.planner_params`` is one file or a
        list, later ones override earlier ones, e.g. the manipulation overlay on the reach settings)."""
        files = self.section("eval")["planner_params"]
        return [str(self.path(f)) for f in ([files] if isinstance(files, str) else files)]

    def planner_param(self, name: str, default: Any) -> Any:
        """A value from the evaluation's planner params files (the last one that sets it), e.g. ``cem_maxnorm``
        (the random baseline and the offline action-error use the planner's own settings)."""
        import yaml

        value = default
        for f in self.planner_params():
            doc = yaml.safe_load(Path(f).read_text()) or {}
            params = (doc.get("planner_node") or {}).get("ros__parameters") or {}
            value = params.get(name, value)
        return value


def load_settings(path: str | None = None, workdir: str | None = None) -> Settings:
    """Read the pipeline YAML (default ``config/sim_pipeline/pipeline.yaml``) over the built-in defaults."""
    import yaml

    root = repo_root()
    cfg_path = Path(path) if path else root / "config" / "sim_pipeline" / "pipeline.yaml"
    doc: dict = {}
    if path or cfg_path.is_file():
        try:
            doc = yaml.safe_load(cfg_path.read_text()) or {}
        except OSError as err:
            raise ValueError(f"cannot read pipeline settings {cfg_path}: {err}") from err
        if not isinstance(doc, dict):
            raise ValueError(f"{cfg_path}: expected a mapping at the top level")
    data = _merge(DEFAULTS, doc, "")
    if workdir:
        data["workdir"] = str(Path(workdir).resolve())
    return Settings(data, root)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--pipeline`` and ``--workdir``, shared by every pipeline subcommand."""
    parser.add_argument("--pipeline", metavar="YAML", default=None,
                        help="pipeline settings (default config/sim_pipeline/pipeline.yaml)")
    parser.add_argument("--workdir", metavar="DIR", default=None,
                        help="stage outputs directory (default: the settings' workdir, runs/sim_pipeline)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch CPU threads of this process, also for in-process training (replaces the "
                             "training config's threads; default 2; 0 = torch's default)")
