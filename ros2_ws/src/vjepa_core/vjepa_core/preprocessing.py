"""Camera-frame preprocessing for the V-JEPA 2 encoder, as the reference does it (pure functions).

uint8 ``H x W x 3`` RGB frames of any size -> resize / crop to the model's square size -> ``[0, 1]`` ->
ImageNet mean/std -> channels-first; a single frame is repeated into a 2-frame tubelet (``[3, 2, S, S]``),
as V-JEPA 2-AC encodes each camera frame independently.

Crop policies (``crop=``):
- ``"center"`` (default, the AC / planner path): centre-crop the largest square, resize it to ``size``.
  For the 256x256 Franka/DROID frames this is a plain identity-size pass, like the reference notebook.
- ``"eval"``: the reference video-classification eval transform: resize the short side to
  ``int(size * 256 / 224)`` (292 for 256), then centre-crop ``size`` x ``size``.
- ``"resize"``: stretch to ``size`` x ``size`` without cropping (keeps the whole field of view).
- ``"droid"``: what the released V-JEPA 2-AC (``vjepa2-ac-vitg.pt``) saw during training on DROID: the centre
  box of full height and 1.35 x height wide, stretched (not cropped) to ``size`` x ``size``; frames narrower
  than 1.35:1 keep their whole width (see :func:`droid_crop_box`). Use it with 16:9 cameras and the released
  model (encoder_node ``crop: droid``), and for DROID imports meant to fine-tune it
  (``vjepa-dataset import-droid --crop droid``).

Why ``"droid"`` is what the reference trained with: ``app/vjepa_droid/train.py`` (facebookresearch/vjepa2)
builds its transform with ``random_resize_scale [1.777, 1.777]`` and ``random_resize_aspect_ratio
[0.75, 1.35]`` (``configs/train/vitg16/droid-256px-8f.yaml``). The Inception-style random crop samples an area
of 1.777 x the frame's, which never fits, so all of its 10 tries fail and it falls back to a deterministic
centre crop: the full height and ``round(1.35 * height)`` wide for a 16:9 frame, then a bilinear resize to
256 x 256 (the fallback branch of ``_get_param_spatial_crop`` in ``src/datasets/utils/video/transforms.py``;
../shared/reference/vjepa2-paper-and-code.md, section 3.3). Our ``"center"`` crop instead keeps the largest
square (a narrower field of view, undistorted), which the released model never saw on 16:9 frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "CROP_POLICIES",
    "DROID_ASPECT_RANGE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PreprocessError",
    "droid_crop_box",
    "preprocess_clip",
    "preprocess_frame",
    "preprocess_frames",
]

# The one definition of the pixel statistics V-JEPA 2 was trained with (RGB, [0, 1] scale); training and every
# other consumer import them from here.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_POLICIES = ("center", "eval", "resize", "droid")
_EVAL_RATIO = 256 / 224
# random_resize_aspect_ratio of the reference AC training config (configs/train/vitg16/droid-256px-8f.yaml)
DROID_ASPECT_RANGE = (0.75, 1.35)


class PreprocessError(ValueError):
    """A frame has the wrong dtype, shape or channel count, or an option is invalid."""


def _check_frames(frames: np.ndarray) -> np.ndarray:
    """Validate a ``[N, H, W, 3]`` uint8 stack."""
    if not isinstance(frames, np.ndarray):
        raise PreprocessError(f"expected a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise PreprocessError(f"expected uint8 RGB frames, got dtype {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[1] < 1 or frames.shape[2] < 1:
        raise PreprocessError(f"expected H x W x 3 frames, got shape {frames.shape[1:]}")
    return frames


def _resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of ``[N, 3, H, W]`` float frames."""
    if tuple(x.shape[-2:]) == hw:
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)


def _center_crop(x: torch.Tensor, ch: int, cw: int) -> torch.Tensor:
    """Centre crop ``[..., H, W]`` to ``ch x cw`` (same rounding as torchvision)."""
    h, w = x.shape[-2:]
    top = int(round((h - ch) / 2.0))
    left = int(round((w - cw) / 2.0))
    return x[..., top:top + ch, left:left + cw]


def droid_crop_box(height: int, width: int) -> tuple[int, int, int, int]:
    """``(top, left, crop_height, crop_width)`` of the reference AC training crop of a ``height x width`` frame.

    The fallback branch of the reference ``_get_param_spatial_crop`` (the branch every DROID frame takes, see
    the module docstring), with its rounding: a frame wider than 1.35:1 keeps its full height and
    ``round(1.35 * height)`` of its width, one narrower than 0.75:1 its full width and ``round(width / 0.75)``
    of its height, anything between stays whole; the box is centred with floor division. A 1280 x 720 frame
    gives ``(0, 154, 720, 972)``, a 320 x 180 one ``(0, 38, 180, 243)``.
    """
    if height < 1 or width < 1:
        raise PreprocessError(f"frame size must be positive, got {height} x {width}")
    lo, hi = DROID_ASPECT_RANGE
    ratio = width / height
    if ratio < lo:
        ch, cw = int(round(width / lo)), width
    elif ratio > hi:
        ch, cw = height, int(round(height * hi))
    else:
        ch, cw = height, width
    return (height - ch) // 2, (width - cw) // 2, ch, cw


def _spatial(x: torch.Tensor, size: int, crop: str) -> torch.Tensor:
    """Apply the crop policy: ``[N, 3, H, W] -> [N, 3, size, size]``."""
    h, w = x.shape[-2:]
    if crop == "resize":
        return _resize(x, (size, size))
    if crop == "center":
        side = min(h, w)
        return _resize(_center_crop(x, side, side), (size, size))
    if crop == "droid":
        top, left, ch, cw = droid_crop_box(h, w)
        return _resize(x[..., top:top + ch, left:left + cw], (size, size))
    if crop == "eval":
        short = int(size * _EVAL_RATIO)
        nh, nw = (short, max(short, int(round(w * short / h)))) if h <= w else \
            (max(short, int(round(h * short / w))), short)
        return _center_crop(_resize(x, (nh, nw)), size, size)
    raise PreprocessError(f"unknown crop policy {crop!r}; choose from {CROP_POLICIES}")


def _normalize(frames: np.ndarray, size: int, crop: str, dtype: torch.dtype) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` -> normalised float ``[N, 3, size, size]``."""
    if size <= 0:
        raise PreprocessError(f"size must be positive, got {size}")
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(torch.float32) / 255.0  # [N,3,H,W]
    x = _spatial(x, size, crop).clamp_(0.0, 1.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).to(dtype)


def _out(x: torch.Tensor, as_numpy: bool) -> torch.Tensor | np.ndarray:
    return x.numpy() if as_numpy else x


def preprocess_frames(frames: np.ndarray | Sequence[np.ndarray], size: int = 256, crop: str = "center",
                      tubelet_size: int = 2, dtype: torch.dtype = torch.float32,
                      as_numpy: bool = False) -> torch.Tensor | np.ndarray:
    """Batch of independent frames ``[N, H, W, 3]`` (or a list of equal-size frames) -> ``[N, 3, t, S, S]``.

    Each frame is repeated ``tubelet_size`` times along time, so the encoder sees one tubelet per frame.
    """
    stack = np.stack(list(frames)) if not isinstance(frames, np.ndarray) else frames
    x = _normalize(_check_frames(stack), size, crop, dtype)  # [N, 3, S, S]
    x = x.unsqueeze(2).repeat(1, 1, tubelet_size, 1, 1)  # [N, 3, t, S, S]
    return _out(x, as_numpy)


def preprocess_frame(frame: np.ndarray, size: int = 256, crop: str = "center", tubelet_size: int = 2,
                     dtype: torch.dtype = torch.float32, as_numpy: bool = False) -> torch.Tensor | np.ndarray:
    """One uint8 ``H x W x 3`` frame -> ``[3, t, S, S]`` (add a batch axis before the encoder)."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        raise PreprocessError(f"expected one H x W x 3 frame, got shape {getattr(frame, 'shape', None)}")
    return _out(preprocess_frames(frame[None], size, crop, tubelet_size, dtype)[0], as_numpy)


def preprocess_clip(frames: np.ndarray, size: int = 256, crop: str = "center",
                    dtype: torch.dtype = torch.float32, as_numpy: bool = False) -> torch.Tensor | np.ndarray:
    """A video clip ``[T, H, W, 3]`` (T a multiple of the tubelet size) -> ``[3, T, S, S]``."""
    x = _normalize(_check_frames(frames), size, crop, dtype)  # [T, 3, S, S]
    return _out(x.permute(1, 0, 2, 3).contiguous(), as_numpy)  # [3, T, S, S]
