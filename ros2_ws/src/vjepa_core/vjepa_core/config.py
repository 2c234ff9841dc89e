"""Typed configurations for the V-JEPA 2 encoder, the action-conditioned predictor and the pretraining predictor.

Field names are the project's contract (``fixtures/parity_tiny_a/config.json``): ``EncoderConfig(**d)`` and
``ACPredictorConfig(**d)`` accept exactly those keys and reject unknown ones, so a typo in a YAML file or a
saved run config fails loudly instead of silently building another network. ``.preset(name)`` returns the
released architectures (reference ``src/models/vision_transformer.py`` / ``ac_predictor.py`` / ``predictor.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACPredictorConfig",
    "ConfigError",
    "EncoderConfig",
    "PretrainPredictorConfig",
    "ENCODER_PRESETS",
    "mlp_hidden_dim",
]


class ConfigError(ValueError):
    """A model configuration is invalid (unknown key, bad value, unknown preset)."""


def mlp_hidden_dim(dim: int, mlp_ratio: float) -> int:
    """Hidden width of the MLP, ``int(dim * mlp_ratio)`` as the reference computes it.

    Rounds when the product is within 1e-6 of an integer, so that ratios read back from JSON
    (``4.363636...`` for ViT-g, 48/11) still give exactly 6144.
    """
    prod = dim * float(mlp_ratio)
    nearest = round(prod)
    return int(nearest) if abs(prod - nearest) < 1e-6 else int(prod)


def _img_hw(img_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Normalise an image size (int or [H, W]) to an (H, W) tuple."""
    if isinstance(img_size, int):
        return (img_size, img_size)
    h, w = img_size
    return (int(h), int(w))


class _StrictConfig:
    """Mixin: strict construction from dicts, validation helpers and a plain-dict export."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        """Build from a dict, naming every unknown key in the error (dataclass ``__init__`` names only one)."""
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__}: expected a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown keys {unknown}; allowed keys are {sorted(known)}")
        return cls(**d)

    @property
    def grid_hw(self) -> tuple[int, int]:
        """Patch grid (H/p, W/p) at the configured image size (the token grid of one latent frame)."""
        h, w = _img_hw(self.img_size)  # type: ignore[attr-defined]
        return (h // self.patch_size, w // self.patch_size)  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-serialisable dict (tuples become lists); ``from_dict`` round-trips it."""
        out = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def _check_common(self, width_field: str) -> None:
        """Shared normalisation and validation: img_size lists become tuples, numbers given as strings (YAML
        reads ``1e-06`` as a string) become numbers or a clear error; image/patch/heads/activation checks."""
        name = type(self).__name__
        if isinstance(self.img_size, list):  # type: ignore[attr-defined]
            object.__setattr__(self, "img_size", tuple(self.img_size))  # type: ignore[attr-defined]
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.type in ("float", "int") and isinstance(value, str):
                try:
                    object.__setattr__(self, f.name, float(value) if f.type == "float" else int(value))
                except ValueError:
                    raise ConfigError(f"{name}: {f.name} must be a number, got {value!r}") from None
        width, heads = getattr(self, width_field), self.num_heads  # type: ignore[attr-defined]
        if width % heads:
            raise ConfigError(f"{name}: {width_field} {width} not divisible by num_heads {heads}")
        h, w = _img_hw(self.img_size)  # type: ignore[attr-defined]
        p = self.patch_size  # type: ignore[attr-defined]
        if p <= 0 or h % p or w % p:
            raise ConfigError(f"{name}: img_size {self.img_size} must be a multiple of patch_size {p}")  # type: ignore[attr-defined]
        if self.tubelet_size <= 0 or self.num_frames < 1:  # type: ignore[attr-defined]
            raise ConfigError(f"{name}: tubelet_size and num_frames must be positive")
        if self.activation != "gelu":  # type: ignore[attr-defined]
            raise ConfigError(f"{name}: activation {self.activation!r} not supported (only 'gelu', "  # type: ignore[attr-defined]
                              "as in every released checkpoint)")
        if not self.use_rope:  # type: ignore[attr-defined]
            raise ConfigError(f"{name}: use_rope=False (sincos position embeddings) is not supported; "
                              "every released V-JEPA 2 model uses 3D RoPE")


@dataclass(frozen=True)
class EncoderConfig(_StrictConfig):
    """V-JEPA 2 ViT encoder: 3D tubelet patch embedding, 3D RoPE, no CLS token, final LayerNorm."""

    img_size: int | tuple[int, int] = 256
    patch_size: int = 16
    num_frames: int = 64
    tubelet_size: int = 2
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    use_rope: bool = True
    activation: str = "gelu"
    uniform_power: bool = False

    def __post_init__(self) -> None:
        self._check_common("embed_dim")

    @property
    def head_dim(self) -> int:
        """Per-head width."""
        return self.embed_dim // self.num_heads

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> EncoderConfig:
        """Released encoder: ``vit_large``, ``vit_huge``, ``vit_giant`` (the 22-head release), ``vit_giant_384``."""
        if name not in ENCODER_PRESETS:
            raise ConfigError(f"unknown encoder preset {name!r}; choose from {sorted(ENCODER_PRESETS)}")
        return cls.from_dict({**ENCODER_PRESETS[name], **overrides})


@dataclass(frozen=True)
class ACPredictorConfig(_StrictConfig):
    """V-JEPA 2-AC predictor: per frame [action, state, (extrinsics), patches], block-causal attention.

    ``num_frames // tubelet_size`` is the maximum number of latent frames it accepts; ``embed_dim`` is the
    encoder width, ``predictor_embed_dim`` its own width.
    """

    img_size: int | tuple[int, int] = 256
    patch_size: int = 16
    num_frames: int = 64
    tubelet_size: int = 2
    embed_dim: int = 1408
    predictor_embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    use_rope: bool = True
    is_frame_causal: bool = True
    action_embed_dim: int = 7
    use_extrinsics: bool = False
    activation: str = "gelu"

    def __post_init__(self) -> None:
        self._check_common("predictor_embed_dim")

    @property
    def max_frames(self) -> int:
        """Most latent frames (tubelets) one forward may hold."""
        return max(1, self.num_frames // self.tubelet_size)

    @property
    def cond_tokens(self) -> int:
        """Conditioning tokens per frame: action, state (+ extrinsics)."""
        return 3 if self.use_extrinsics else 2

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ACPredictorConfig:
        """Released AC predictor: ``vit_giant`` (V-JEPA 2-AC on the 1408-wide ViT-g, 256 px, 64 frames)."""
        if name not in AC_PREDICTOR_PRESETS:
            raise ConfigError(f"unknown AC predictor preset {name!r}; choose from {sorted(AC_PREDICTOR_PRESETS)}")
        return cls.from_dict({**AC_PREDICTOR_PRESETS[name], **overrides})


@dataclass(frozen=True)
class PretrainPredictorConfig(_StrictConfig):
    """V-JEPA 2 pretraining (mask-token) predictor, "ViT-s": width 384, depth 12, 12 heads in the recipe."""

    img_size: int | tuple[int, int] = 256
    patch_size: int = 16
    num_frames: int = 64
    tubelet_size: int = 2
    embed_dim: int = 1024
    predictor_embed_dim: int = 384
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    use_rope: bool = True
    use_mask_tokens: bool = True
    num_mask_tokens: int = 10
    zero_init_mask_tokens: bool = True
    activation: str = "gelu"

    def __post_init__(self) -> None:
        self._check_common("predictor_embed_dim")
        if not self.use_mask_tokens or self.num_mask_tokens < 1:
            raise ConfigError("PretrainPredictorConfig: use_mask_tokens must be true with num_mask_tokens >= 1")

    @property
    def num_patches(self) -> int:
        """Tokens of one full clip: (T/tubelet) * (H/p) * (W/p)."""
        gh, gw = self.grid_hw
        return max(1, self.num_frames // self.tubelet_size) * gh * gw

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> PretrainPredictorConfig:
        """Pretraining predictor for a released encoder preset (``vit_large`` ... ``vit_giant_384``)."""
        if name not in ENCODER_PRESETS:
            raise ConfigError(f"unknown encoder preset {name!r}; choose from {sorted(ENCODER_PRESETS)}")
        enc = ENCODER_PRESETS[name]
        base = {k: enc[k] for k in ("img_size", "patch_size", "num_frames", "tubelet_size", "embed_dim")}
        return cls.from_dict({**base, **overrides})


_COMMON = {"patch_size": 16, "num_frames": 64, "tubelet_size": 2, "qkv_bias": True, "layer_norm_eps": 1e-6,
           "use_rope": True, "activation": "gelu", "uniform_power": False}

#: Released encoders (reference hub constructors: 64 frames; 256 px, 384 px for ``vit_giant_384``).
ENCODER_PRESETS: dict[str, dict[str, Any]] = {
    "vit_large": {**_COMMON, "img_size": 256, "embed_dim": 1024, "depth": 24, "num_heads": 16, "mlp_ratio": 4.0},
    "vit_huge": {**_COMMON, "img_size": 256, "embed_dim": 1280, "depth": 32, "num_heads": 16, "mlp_ratio": 4.0},
    # The released "giant" is the reference's vit_giant_xformers: 22 heads of 64, MLP 6144 (ratio 48/11).
    "vit_giant": {**_COMMON, "img_size": 256, "embed_dim": 1408, "depth": 40, "num_heads": 22,
                  "mlp_ratio": 48 / 11},
    "vit_giant_384": {**_COMMON, "img_size": 384, "embed_dim": 1408, "depth": 40, "num_heads": 22,
                      "mlp_ratio": 48 / 11},
}

#: Released V-JEPA 2-AC predictor (``vjepa2-ac-vitg.pt``), reference class defaults since PR #19.
AC_PREDICTOR_PRESETS: dict[str, dict[str, Any]] = {
    "vit_giant": {"img_size": 256, "patch_size": 16, "num_frames": 64, "tubelet_size": 2, "embed_dim": 1408,
                  "predictor_embed_dim": 1024, "depth": 24, "num_heads": 16, "mlp_ratio": 4.0, "qkv_bias": True,
                  "layer_norm_eps": 1e-6, "use_rope": True, "is_frame_causal": True, "action_embed_dim": 7,
                  "use_extrinsics": False, "activation": "gelu"},
}
