"""One place that turns user-facing model parameters into a ready world model.

Nodes, CLIs and benchmarks all take the same four things from a user: a ``checkpoint`` path, a ``model_config``
(a preset name, a JSON/YAML file with ``encoder`` / ``predictor`` dicts as in
``fixtures/parity_tiny_a/config.json``, or empty for checkpoints written by this project, which embed their
configs), a ``backend`` and a ``device``. :func:`load_world_model` resolves them, loads the weights strictly, and
returns a :class:`LoadedModel` with the :class:`~vjepa_core.inference.WorldModel` and the model ids that
``vjepa_interfaces/Latent.model_id`` carries.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .checkpoint import CheckpointError, arch_name, file_sha256, load_hf, load_official, read_checkpoint
from .config import AC_PREDICTOR_PRESETS, ENCODER_PRESETS, ACPredictorConfig, EncoderConfig
from .inference import WorldModel, make_backend

__all__ = ["CheckpointError", "ModelLoadError", "LoadedModel", "resolve_model_config", "load_world_model"]


class ModelLoadError(RuntimeError):
    """The model parameters do not describe a loadable model (the message says which and why)."""


@dataclass
class LoadedModel:
    """A world model ready for inference, with what consumers need to check they got the right one."""

    world_model: WorldModel
    encoder_cfg: EncoderConfig | None
    predictor_cfg: ACPredictorConfig | None
    encoder_id: str            # "<arch>@<sha256 prefix>" of the encoder weights ("" when not loaded)
    predictor_id: str


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"cannot read model config {path}: {exc}") from exc
    if not isinstance(data, dict) or not ({"encoder", "predictor"} & set(data)):
        raise ModelLoadError(f"model config {path} needs an 'encoder' and/or 'predictor' mapping")
    return data


def resolve_model_config(model_config: str | dict | None, checkpoint: str | os.PathLike[str] | None = None
                         ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(encoder dict | None, predictor dict | None) from a preset name, a config file, a dict, or the checkpoint.

    An empty ``model_config`` reads the configs that :func:`vjepa_core.checkpoint.save` embeds in the project's
    own checkpoints; released checkpoints carry none, so they need a preset or a file.
    """
    if isinstance(model_config, dict):
        return model_config.get("encoder"), model_config.get("predictor")
    if model_config:
        if model_config in ENCODER_PRESETS or model_config in AC_PREDICTOR_PRESETS:
            enc = dict(ENCODER_PRESETS[model_config]) if model_config in ENCODER_PRESETS else None
            pred = dict(AC_PREDICTOR_PRESETS[model_config]) if model_config in AC_PREDICTOR_PRESETS else None
            return enc, pred
        path = Path(model_config)
        if path.is_file():
            data = _read_config_file(path)
            return data.get("encoder"), data.get("predictor")
        raise ModelLoadError(
            f"model_config {model_config!r} is neither a preset ({', '.join(sorted(ENCODER_PRESETS))}) "
            "nor an existing JSON/YAML file")
    if checkpoint is None:
        raise ModelLoadError("model_config is empty and no checkpoint was given to read configs from")
    meta = read_checkpoint(checkpoint, mmap=True).get("vjepa2_ros") or {}
    if not meta:
        raise ModelLoadError(f"{checkpoint} embeds no model configs (a released checkpoint?): set model_config "
                             "to a preset such as vit_giant or to a JSON file")
    if meta.get("predictor_type") not in (None, "ACPredictorConfig"):
        meta = {k: v for k, v in meta.items() if not k.startswith("predictor")}
    return meta.get("encoder_config"), meta.get("predictor_config")


def load_world_model(checkpoint: str | os.PathLike[str], model_config: str | dict | None = "", *,
                     encoder: bool = True, predictor: bool = True, checkpoint_key: str = "encoder",
                     backend: str = "torch", device: str = "cpu", export_dir: str | os.PathLike[str] | None = None,
                     normalize: bool = True, threads: int = 0, **backend_kwargs: Any) -> LoadedModel:
    """Load the encoder and/or AC predictor named by user parameters into a :class:`WorldModel`.

    ``checkpoint`` is a ``.pt`` (released layout or ours), or for an encoder alone a Hugging Face directory /
    ``.safetensors`` file. Non-torch backends run the graphs in ``export_dir`` (``vjepa-export onnx``); the
    checkpoint still names the weights (and gives the model id). ``threads > 0`` caps CPU threads (torch: the
    process-wide intra-op pool; onnxruntime: the session), so inference does not starve a camera driver.
    Raises :class:`ModelLoadError` or
    :class:`~vjepa_core.checkpoint.CheckpointError` with a clear message.
    """
    if not (encoder or predictor):
        raise ModelLoadError("nothing to load: ask for the encoder, the predictor, or both")
    path = Path(checkpoint) if checkpoint else None
    if path is None or not path.exists():
        raise ModelLoadError(f"checkpoint {str(checkpoint)!r} does not exist: set the checkpoint parameter to a "
                             "released V-JEPA 2 .pt, a checkpoint of ours, or a Hugging Face model directory")
    if checkpoint_key not in ("encoder", "target_encoder"):
        raise ModelLoadError(f"checkpoint_key must be 'encoder' or 'target_encoder', got {checkpoint_key!r}")
    hf = path.is_dir() or path.suffix == ".safetensors"
    if hf:
        if predictor:
            raise ModelLoadError(f"{path} is a Hugging Face encoder; the AC predictor needs a .pt checkpoint")
        enc_mod, enc_cfg = load_hf(path)
        pred_mod, pred_cfg = None, None
    else:
        enc_dict, pred_dict = resolve_model_config(model_config, path)
        if encoder and enc_dict is None:
            raise ModelLoadError(f"model_config {model_config!r} has no encoder config")
        if predictor and pred_dict is None:
            raise ModelLoadError(f"model_config {model_config!r} has no AC predictor config")
        enc_mod, pred_mod = load_official(path, enc_dict if encoder else None, pred_dict if predictor else None,
                                          encoder_key=checkpoint_key)
        enc_cfg = enc_mod.cfg if enc_mod is not None else None
        pred_cfg = pred_mod.cfg if pred_mod is not None else None
    if threads > 0 and backend == "torch":
        import torch

        torch.set_num_threads(int(threads))
    elif threads > 0 and backend.startswith("onnxruntime"):
        backend_kwargs["threads"] = int(threads)
    if backend == "torch":
        be = make_backend("torch", encoder=enc_mod, predictor=pred_mod, device=device, **backend_kwargs)
    else:
        if not export_dir:
            raise ModelLoadError(f"backend {backend!r} needs export_dir / onnx_dir (run `vjepa-export onnx`)")
        be = make_backend(backend, export_dir=export_dir, device=device, **backend_kwargs)
    wm = WorldModel(be, normalize=normalize)
    weights = path if path.is_file() else sorted(path.glob("*.safetensors"))[0]
    digest = file_sha256(weights)[:12]  # once: released checkpoints are several GB
    return LoadedModel(
        world_model=wm, encoder_cfg=enc_cfg, predictor_cfg=pred_cfg,
        encoder_id=f"{arch_name(enc_cfg)}@{digest}" if enc_cfg is not None else "",
        predictor_id=f"{arch_name(pred_cfg)}@{digest}" if pred_cfg is not None else "",
    )
