"""Load and save V-JEPA 2 checkpoints: the released ``.pt`` files, the project's own, and Hugging Face.

Released files (``https://dl.fbaipublicfiles.com/vjepa2/{vitl,vith,vitg,vitg-384,vjepa2-ac-vitg}.pt``) are
dicts with ``encoder`` / ``target_encoder`` / ``predictor`` state dicts whose keys carry ``module.`` and/or
``backbone.`` prefixes. They are read with ``torch.load(weights_only=True)``: tensors and plain containers
only, so a file holding arbitrary pickled objects is refused instead of executed. Loading is strict: every
missing, unexpected or mis-shaped key is reported by name in a :class:`CheckpointError`.

:func:`save_state_dicts` is the one writer of that layout (``encoder``, ``target_encoder``, ``predictor``,
``epoch``, keys with ``module.backbone.`` prefixes; written atomically), so the reference loaders read our
checkpoints too: :func:`save` (networks) and the trainer's ``latest.pt`` both go through it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import (
    AC_PREDICTOR_PRESETS,
    ENCODER_PRESETS,
    ACPredictorConfig,
    ConfigError,
    EncoderConfig,
    PretrainPredictorConfig,
)

__all__ = [
    "CheckpointError",
    "arch_name",
    "clean_key",
    "load_hf",
    "load_official",
    "load_state_dict_strict",
    "model_id",
    "read_checkpoint",
    "save",
    "save_state_dicts",
    "write_atomic",
]

PathLike = str | os.PathLike

#: The prefix our writer adds (the reference pretraining layout: DDP ``module.`` + MultiSeqWrapper ``backbone.``).
SAVE_PREFIX = "module.backbone."
#: Keys a released RoPE encoder may carry that the RoPE model legitimately has no parameter for.
_BENIGN_ENCODER_KEYS = ("pos_embed",)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not match the requested architecture."""


def clean_key(key: str) -> str:
    """Strip the ``module.`` (DDP) and ``backbone.`` (MultiSeqWrapper) prefixes, as the reference loaders do."""
    return key.replace("module.", "").replace("backbone.", "")


def _as_config(cfg: Any, cls: type, presets: dict[str, Any]) -> Any:
    """Accept a config object, a preset name or a plain dict."""
    if cfg is None or isinstance(cfg, cls):
        return cfg
    if isinstance(cfg, str):
        return cls.preset(cfg)
    if isinstance(cfg, dict):
        return cls.from_dict(cfg)
    raise ConfigError(f"expected {cls.__name__}, a preset name from {sorted(presets)} or a dict; "
                      f"got {type(cfg).__name__}")


def _describe_unreadable(p: Path, size: int, head: bytes) -> str:
    """Why a file that is neither a readable zip archive nor a pickle cannot be a torch checkpoint."""
    if size == 0:
        return f"{p} is not a readable torch checkpoint: the file is empty (0 bytes; an interrupted write?)"
    if head.startswith(b"PK"):
        return (f"{p} is not a readable torch checkpoint: it is truncated or corrupt, starting like a torch zip "
                f"archive but with its end (the zip central directory) missing or damaged ({size} bytes; an "
                "interrupted write, copy or download?)")
    return (f"{p} is not a readable torch checkpoint: neither a torch zip archive nor a pickle (it starts with "
            f"{head!r}; a text/HTML file or a failed download?)")


def read_checkpoint(path: PathLike, mmap: bool = False, verify: bool = False) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with clear errors; returns the top-level dict.

    Refuses (``CheckpointError``) a missing or empty file, a truncated or corrupt one (named as such), a file
    that is not a torch checkpoint (text, HTML error page), and any pickle that needs non-tensor globals
    (arbitrary objects are never constructed, so no code from the file runs). ``verify=True`` also checks the
    CRC-32 of every member of a zip checkpoint first (one extra read of the file), which catches damage inside
    the tensor data that ``torch.load`` itself does not notice; resuming a training run uses it.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist or is not a file")
    if p.suffix == ".safetensors":
        raise CheckpointError(f"{p} is a safetensors file: use load_hf() for Hugging Face checkpoints")
    is_zip = zipfile.is_zipfile(p)
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(8)
    if not is_zip and not head.startswith(b"\x80"):
        raise CheckpointError(_describe_unreadable(p, size, head))
    if verify and is_zip:
        try:
            with zipfile.ZipFile(p) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise CheckpointError(f"{p} is not a readable torch checkpoint: it is truncated or corrupt "
                                  f"({type(e).__name__}: {e})") from None
        if bad is not None:
            raise CheckpointError(f"{p} is not a readable torch checkpoint: it is corrupt, member {bad!r} fails its "
                                  "CRC check (damaged on disk or in a copy)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "truncated" in text or "EOF" in text:
            raise CheckpointError(f"{p} is not a readable torch checkpoint: it is truncated ({size} bytes; an "
                                  "interrupted write, copy or download?)") from None
        detail = [ln.strip() for ln in text.splitlines() if "Unsupported" in ln or "unpickler error" in ln.lower()]
        raise CheckpointError(
            f"{p} was refused by the safe loader (weights_only=True): it holds Python objects other than "
            f"tensors and plain containers, which are never unpickled. {detail[0] if detail else ''}".rstrip()
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, UnicodeDecodeError, zipfile.BadZipFile) as e:
        first = str(e).splitlines()[0] if str(e) else ""
        why = ": it is truncated or corrupt" if isinstance(e, EOFError) or "EOF" in first or "corrupt" in first \
            else ""
        raise CheckpointError(f"{p} is not a readable torch checkpoint{why} ({type(e).__name__}: {first})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj


def _section(ckpt: dict[str, Any], key: str, path: PathLike) -> dict[str, torch.Tensor]:
    """The state dict stored under ``key``, prefixes stripped."""
    if key not in ckpt:
        raise CheckpointError(f"{path}: no {key!r} entry; top-level keys are {sorted(map(str, ckpt))}")
    sd = ckpt[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: {key!r} is not a state dict of tensors")
    return {clean_key(k): v for k, v in sd.items()}


def state_dict_diff(model: nn.Module, sd: dict[str, torch.Tensor],
                    ignore_unexpected: tuple[str, ...] = ()) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mis-shaped as ``"key: ckpt [..] vs model [..]"``) between ``sd`` and ``model``."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(k for k in set(sd) - set(own) if k not in ignore_unexpected)
    shaped = sorted(f"{k}: checkpoint {list(sd[k].shape)} vs model {list(own[k].shape)}"
                    for k in set(sd) & set(own) if sd[k].shape != own[k].shape)
    return missing, unexpected, shaped


def load_state_dict_strict(model: nn.Module, sd: dict[str, torch.Tensor], what: str = "model",
                           ignore_unexpected: tuple[str, ...] = ()) -> None:
    """Load ``sd`` into ``model`` or raise ``CheckpointError`` naming every missing/unexpected/mis-shaped key."""
    missing, unexpected, shaped = state_dict_diff(model, sd, ignore_unexpected)
    if missing or unexpected or shaped:
        lines = [f"{what}: checkpoint does not match the configured architecture"]
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", shaped)):
            if keys:
                shown = ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)" if len(keys) > 20 else "")
                lines.append(f"  {label}: {shown}")
        raise CheckpointError("\n".join(lines))
    model.load_state_dict({k: v for k, v in sd.items() if k not in ignore_unexpected}, strict=True)


def _build_predictor(cfg: ACPredictorConfig | PretrainPredictorConfig) -> nn.Module:
    """The predictor class matching the config type."""
    from .models import build_ac_predictor, build_pretrain_predictor

    if isinstance(cfg, ACPredictorConfig):
        return build_ac_predictor(cfg, init=False)
    return build_pretrain_predictor(cfg, init=False)


def load_official(path: PathLike, encoder_cfg: EncoderConfig | str | dict | None,
                  predictor_cfg: ACPredictorConfig | PretrainPredictorConfig | str | dict | None = None, *,
                  encoder_key: str = "encoder", predictor_key: str = "predictor",
                  ) -> tuple[nn.Module | None, nn.Module | None]:
    """Load a released (or our own) ``.pt`` checkpoint into (encoder, predictor), both in eval mode.

    Args:
        path: the ``.pt`` file.
        encoder_cfg: encoder config, preset name or dict; ``None`` skips the encoder.
        predictor_cfg: ``ACPredictorConfig`` / ``PretrainPredictorConfig`` (a string or dict means the AC
            predictor); ``None`` skips the predictor.
        encoder_key: ``"encoder"`` (hub/demo) or ``"target_encoder"`` (the EMA encoder; evals, AC training).
        predictor_key: top-level key of the predictor state dict.
    Raises:
        CheckpointError: unreadable/unsafe file, absent section, or any key/shape mismatch (named).
    """
    from .models import build_encoder

    encoder_cfg = _as_config(encoder_cfg, EncoderConfig, ENCODER_PRESETS)
    if not isinstance(predictor_cfg, PretrainPredictorConfig):
        predictor_cfg = _as_config(predictor_cfg, ACPredictorConfig, AC_PREDICTOR_PRESETS)
    ckpt = read_checkpoint(path)
    encoder = predictor = None
    if encoder_cfg is not None:
        encoder = build_encoder(encoder_cfg, init=False)
        load_state_dict_strict(encoder, _section(ckpt, encoder_key, path), f"{path} [{encoder_key}]",
                               ignore_unexpected=_BENIGN_ENCODER_KEYS)
    if predictor_cfg is not None:
        predictor = _build_predictor(predictor_cfg)
        load_state_dict_strict(predictor, _section(ckpt, predictor_key, path), f"{path} [{predictor_key}]")
    return encoder, predictor


def _state_dict(part: nn.Module | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A module's (or an already gathered) state dict, tensors detached on the CPU."""
    sd = part.state_dict() if isinstance(part, nn.Module) else part
    return {k: v.detach().cpu() for k, v in sd.items()}


def _prefixed(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys with the reference ``module.backbone.`` prefix."""
    return {SAVE_PREFIX + k: v for k, v in sd.items()}


def write_atomic(path: PathLike, payload: dict[str, Any]) -> Path:
    """``torch.save(payload)`` to ``path`` atomically: write ``<name>.tmp`` beside it, fsync, ``os.replace``.

    A crash or kill at any moment leaves the old file or the new one, never a torn one; a failed write removes
    its temporary file and leaves the old file as it was.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable (best effort: not every file system allows fsync on a directory)
        fd = os.open(p.parent, os.O_RDONLY)
    except OSError:
        return p
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    return p


def save_state_dicts(path: PathLike, *, encoder: dict[str, torch.Tensor] | None = None,
                     target_encoder: dict[str, torch.Tensor] | None = None,
                     predictor: dict[str, torch.Tensor] | None = None, meta: dict[str, Any] | None = None,
                     epoch: int = 0, extra: dict[str, Any] | None = None) -> Path:
    """The one writer of the released checkpoint layout (:func:`save` and the trainer's checkpoints use it).

    Top-level keys: ``encoder`` / ``target_encoder`` / ``predictor`` (state dicts, keys prefixed
    ``module.backbone.``; ``target_encoder`` defaults to the encoder), ``epoch``, ``vjepa2_ros`` (``meta``: the
    configs as plain dicts), and the ``extra`` entries as-is (plain containers/tensors, so that
    ``weights_only=True`` still reads the file; they may not replace a section). Written with
    :func:`write_atomic`.
    """
    out: dict[str, Any] = {"epoch": int(epoch)}
    if encoder is not None:
        out["encoder"] = _prefixed(_state_dict(encoder))
        out["target_encoder"] = _prefixed(_state_dict(target_encoder if target_encoder is not None else encoder))
    elif target_encoder is not None:
        out["target_encoder"] = _prefixed(_state_dict(target_encoder))
    if predictor is not None:
        out["predictor"] = _prefixed(_state_dict(predictor))
    out["vjepa2_ros"] = dict(meta or {})
    if extra:
        clash = set(extra) & set(out)
        if clash:
            raise ValueError(f"extra keys {sorted(clash)} would overwrite checkpoint sections")
        out.update(extra)
    return write_atomic(path, out)


def save(path: PathLike, encoder: nn.Module | None = None, predictor: nn.Module | None = None, *,
         target_encoder: nn.Module | None = None, epoch: int = 0,
         extra: dict[str, Any] | None = None) -> Path:
    """Write networks in the released layout that :func:`load_official` and the reference read.

    Top-level keys: ``encoder`` and ``target_encoder`` (the encoder again unless a separate EMA encoder is
    given; AC training reads ``target_encoder``), ``predictor`` if given, ``epoch``, and ``vjepa2_ros`` with
    the resolved configs as plain dicts. ``extra`` entries (e.g. ``opt``, ``loss``) are added as-is; they
    must be plain containers/tensors so that ``weights_only=True`` still reads the file. Written atomically
    by :func:`save_state_dicts`.
    """
    meta: dict[str, Any] = {}
    if encoder is not None:
        meta["encoder_config"] = encoder.cfg.to_dict()
    if predictor is not None:
        meta["predictor_type"] = type(predictor.cfg).__name__
        meta["predictor_config"] = predictor.cfg.to_dict()
    return save_state_dicts(path, encoder=_state_dict(encoder) if encoder is not None else None,
                            target_encoder=_state_dict(target_encoder) if target_encoder is not None else None,
                            predictor=_state_dict(predictor) if predictor is not None else None,
                            meta=meta, epoch=epoch, extra=extra)


# ---------------------------------------------------------------------------------------------------------
# Hugging Face format (transformers VJEPA2Model: config.json + model.safetensors)

_HF_BLOCK_RENAMES = {"attention.proj": "attn.proj", "norm1": "norm1", "norm2": "norm2",
                     "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}


def hf_config_to_encoder(hf: dict[str, Any]) -> EncoderConfig:
    """Map a transformers ``VJEPA2Config`` dict to :class:`EncoderConfig`."""
    try:
        return EncoderConfig(
            img_size=int(hf["crop_size"]), patch_size=int(hf["patch_size"]),
            num_frames=int(hf["frames_per_clip"]), tubelet_size=int(hf["tubelet_size"]),
            embed_dim=int(hf["hidden_size"]), depth=int(hf["num_hidden_layers"]),
            num_heads=int(hf["num_attention_heads"]), mlp_ratio=float(hf.get("mlp_ratio", 4.0)),
            qkv_bias=bool(hf.get("qkv_bias", True)), layer_norm_eps=float(hf.get("layer_norm_eps", 1e-6)),
            use_rope=True, activation=str(hf.get("hidden_act", "gelu")), uniform_power=False,
        )
    except KeyError as e:
        raise CheckpointError(f"Hugging Face config lacks {e.args[0]!r}; is this a VJEPA2 config.json?") from None


def hf_to_official_encoder(sd: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """Rename HF encoder keys to reference names and fuse query/key/value into ``qkv`` (rows q, k, v)."""
    sd = {k[len("vjepa2."):] if k.startswith("vjepa2.") else k: v for k, v in sd.items()}
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise CheckpointError(f"Hugging Face checkpoint lacks {key!r}")
        used.add(key)
        return sd[key]

    pe = "encoder.embeddings.patch_embeddings.proj"
    out["patch_embed.proj.weight"], out["patch_embed.proj.bias"] = take(pe + ".weight"), take(pe + ".bias")
    for i in range(depth):
        src = f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat(
                [take(f"{src}attention.{n}.{kind}") for n in ("query", "key", "value")], dim=0)
            for hf_name, name in _HF_BLOCK_RENAMES.items():
                out[f"blocks.{i}.{name}.{kind}"] = take(f"{src}{hf_name}.{kind}")
    out["norm.weight"], out["norm.bias"] = take("encoder.layernorm.weight"), take("encoder.layernorm.bias")
    stray = sorted(k for k in sd if k.startswith("encoder.") and k not in used)
    if stray:
        raise CheckpointError(f"Hugging Face checkpoint has unexpected encoder keys: {', '.join(stray[:20])}")
    return out


def _read_safetensors(files: list[Path]) -> dict[str, torch.Tensor]:
    """Read (possibly sharded) safetensors files into one dict."""
    try:
        from safetensors.torch import load_file
    except ImportError as e:  # pragma: no cover - safetensors is a declared dependency
        raise CheckpointError("reading Hugging Face checkpoints needs the 'safetensors' package") from e
    sd: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            sd.update(load_file(str(f), device="cpu"))
        except Exception as e:  # safetensors raises its own SafetensorError type
            raise CheckpointError(f"{f} is not a readable safetensors file: {e}") from None
    return sd


def load_hf(path: PathLike) -> tuple[nn.Module, EncoderConfig]:
    """Load the encoder of a Hugging Face ``facebook/vjepa2-*`` checkpoint -> (encoder in eval mode, config).

    ``path`` is the model directory (``config.json`` + ``model.safetensors`` or a sharded
    ``model.safetensors.index.json``) or a ``.safetensors`` file with ``config.json`` beside it. The HF
    model takes ``[B, T, 3, H, W]``; ours takes ``[B, 3, T, H, W]`` (permute with ``x.transpose(1, 2)``).
    """
    from .models import build_encoder

    p = Path(path)
    folder = p if p.is_dir() else p.parent
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"no config.json next to {p}: a Hugging Face checkpoint needs its config")
    try:
        hf_cfg = json.loads(cfg_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfg_file} is not valid JSON: {e}") from None
    if p.is_dir():
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            files = sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()})
        else:
            files = [folder / "model.safetensors"]
    else:
        files = [p]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(f"Hugging Face weights not found: {missing}")
    cfg = hf_config_to_encoder(hf_cfg)
    sd = hf_to_official_encoder(_read_safetensors(files), cfg.depth)
    encoder = build_encoder(cfg, init=False)
    load_state_dict_strict(encoder, sd, f"{p} [HF encoder]")
    return encoder, cfg


# ---------------------------------------------------------------------------------------------------------
# Identity

def arch_name(cfg: EncoderConfig | ACPredictorConfig | PretrainPredictorConfig) -> str:
    """Preset name whose config equals ``cfg`` (ignoring ``num_frames``), else a compact descriptive name."""
    if isinstance(cfg, EncoderConfig):
        for name, d in ENCODER_PRESETS.items():
            if EncoderConfig.from_dict({**d, "num_frames": cfg.num_frames}) == cfg:
                return name
        return f"vit_custom_d{cfg.embed_dim}_l{cfg.depth}_h{cfg.num_heads}_{cfg.grid_hw[0] * cfg.patch_size}px"
    if isinstance(cfg, ACPredictorConfig):
        for name, d in AC_PREDICTOR_PRESETS.items():
            if ACPredictorConfig.from_dict({**d, "num_frames": cfg.num_frames}) == cfg:
                return f"ac_predictor_{name}"
        return f"ac_predictor_custom_d{cfg.predictor_embed_dim}_l{cfg.depth}_in{cfg.embed_dim}"
    return f"pretrain_predictor_d{cfg.predictor_embed_dim}_l{cfg.depth}_in{cfg.embed_dim}"


def file_sha256(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (released checkpoints are several GB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()


def model_id(cfg: EncoderConfig | ACPredictorConfig | PretrainPredictorConfig | str,
             checkpoint_path: PathLike | None, prefix_len: int = 12) -> str:
    """``"<arch>@<sha256 prefix>"`` identifying weights, e.g. ``vit_giant@1a2b3c4d5e6f`` (``@random`` if no file)."""
    arch = cfg if isinstance(cfg, str) else arch_name(cfg)
    if checkpoint_path is None:
        return f"{arch}@random"
    return f"{arch}@{file_sha256(checkpoint_path)[:prefix_len]}"
