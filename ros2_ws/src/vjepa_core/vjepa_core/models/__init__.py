"""V-JEPA 2 networks: encoder, action-conditioned predictor (V-JEPA 2-AC) and pretraining predictor.

``build_*`` take a config object (or a plain dict of its fields) and return a model in eval mode with
uninitialised-from-checkpoint weights set by the reference init; load real weights with
:mod:`vjepa_core.checkpoint`. They work under ``with torch.device("meta"):`` for cheap shape inspection.
"""

from __future__ import annotations

from typing import Any

from ..config import ACPredictorConfig, EncoderConfig, PretrainPredictorConfig
from .ac_predictor import ACPredictor, build_block_causal_mask, frame_token_positions
from .attentive_pooler import AnticipationClassifier, AttentiveClassifier, AttentivePooler
from .predictor import PretrainPredictor
from .vision_transformer import VisionTransformer

__all__ = [
    "ACPredictor",
    "AnticipationClassifier",
    "AttentiveClassifier",
    "AttentivePooler",
    "PretrainPredictor",
    "VisionTransformer",
    "build_ac_predictor",
    "build_block_causal_mask",
    "build_encoder",
    "build_pretrain_predictor",
    "frame_token_positions",
]


def _finish(model: Any, init: bool) -> Any:
    """Initialise (skipped on the meta device, where there is no storage) and switch to eval mode."""
    if init and not any(p.is_meta for p in model.parameters()):
        model.init_weights()
    return model.eval()


def build_encoder(cfg: EncoderConfig | dict[str, Any], init: bool = True) -> VisionTransformer:
    """Build the ViT encoder for ``cfg``: ``forward(video[B,3,T,H,W]) -> tokens[B,N,D]``."""
    cfg = cfg if isinstance(cfg, EncoderConfig) else EncoderConfig.from_dict(cfg)
    return _finish(VisionTransformer(cfg), init)


def build_ac_predictor(cfg: ACPredictorConfig | dict[str, Any], init: bool = True) -> ACPredictor:
    """Build V-JEPA 2-AC: ``forward(tokens[B,T*h*w,D], actions[B,T,7], states[B,T,7]) -> [B,T*h*w,D]``."""
    cfg = cfg if isinstance(cfg, ACPredictorConfig) else ACPredictorConfig.from_dict(cfg)
    return _finish(ACPredictor(cfg), init)


def build_pretrain_predictor(cfg: PretrainPredictorConfig | dict[str, Any], init: bool = True) -> PretrainPredictor:
    """Build the mask-token pretraining predictor."""
    cfg = cfg if isinstance(cfg, PretrainPredictorConfig) else PretrainPredictorConfig.from_dict(cfg)
    return _finish(PretrainPredictor(cfg), init)
