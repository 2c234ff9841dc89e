"""Energy landscape of a V-JEPA 2-AC world model around one real transition (issue 4).

For a ``(frame, next frame, state)`` triple, every action of a regular ``dx x dy x dz`` grid is imagined from
``frame`` and scored by the planning energy against ``next frame`` (the goal): L1 between layer-normed
predicted and goal tokens, exactly what :class:`~vjepa_core.planning.CEMPlanner` minimises. The argmin of the
grid is compared with the action that really happened, ``poses_to_diff(state, next_state)``. A good world
model has a smooth bowl whose minimum sits at the true action (the paper's energy-landscape figure; the
released ``energy_landscape_example.ipynb`` sweeps ``linspace(-0.075, 0.075, 5)`` per axis with rotation and
gripper deltas at zero, which is the default here).

All grid actions (plus the true action, for its energy) go through the model in **one** batched
``unroll`` call; the world model chunks it to its memory budget. Pure: no ROS, no files, except
:func:`plot_landscape`, which writes the PNG (matplotlib, Agg backend, imported lazily).

The model is duck-typed: anything with ``encode(frames[F, 3, S, S]) -> tokens[F, N, D]`` and
``unroll(context_tokens[1, N, D], context_states[1, 7], actions[S, 1, 7]) -> [S, N, D]`` works, e.g.
:class:`vjepa_core.inference.WorldModel` (from :func:`vjepa_core.loading.load_world_model`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..pose import poses_to_diff
from ..preprocessing import preprocess_frames
from .energy import get_objective

__all__ = ["LandscapeResult", "energy_landscape", "grid_actions", "model_image_size", "plot_landscape"]

FILL_MODES = ("zero", "true")


@dataclass
class LandscapeResult:
    """Energies over the action grid and how the grid's argmin compares with the true action.

    ``energies[i, j, k]`` is the energy of the action ``(dx[i], dy[j], dz[k])`` (the other four components as
    in ``fill``). Distances are in metres; the ``true_*`` / ``error*`` fields are ``None`` without a next state.
    """

    dx: np.ndarray                        # [G] swept values
    dy: np.ndarray                        # [G]
    dz: np.ndarray                        # [G], or [1] when dz is not swept
    energies: np.ndarray                  # [G, G, Gz] float64
    argmin_index: tuple[int, int, int]
    argmin_action: np.ndarray             # [7]
    argmin_energy: float
    true_action: np.ndarray | None        # [7] poses_to_diff(state, next_state)
    true_energy: float | None             # energy of the true action itself
    error_xyz: np.ndarray | None          # argmin - true, [3]
    error_m: float | None                 # Euclidean norm of error_xyz
    true_in_range: bool | None            # whether the true xyz lies inside the swept box
    nearest_grid_error_m: float | None    # distance from the true xyz to the closest grid point (best possible)
    fill: str = "zero"
    energy: str = "l1"
    seconds: float = 0.0                  # wall time of the batched model call
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_actions(self) -> int:
        """Grid actions evaluated."""
        return int(self.energies.size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record (lists instead of arrays)."""
        def arr(x: Any) -> Any:
            return None if x is None else np.asarray(x).tolist()

        return {
            "dx": arr(self.dx), "dy": arr(self.dy), "dz": arr(self.dz), "energies": arr(self.energies),
            "grid_shape": list(self.energies.shape), "num_actions": self.num_actions,
            "argmin_index": list(self.argmin_index), "argmin_action": arr(self.argmin_action),
            "argmin_energy": self.argmin_energy, "true_action": arr(self.true_action),
            "true_energy": self.true_energy, "error_xyz": arr(self.error_xyz), "error_m": self.error_m,
            "true_in_range": self.true_in_range, "nearest_grid_error_m": self.nearest_grid_error_m,
            "energy_min": float(self.energies.min()), "energy_max": float(self.energies.max()),
            "fill": self.fill, "energy": self.energy, "seconds": self.seconds, **self.meta,
        }


def model_image_size(world_model: Any) -> int:
    """Square input size of the model's encoder (pixels), read from a torch encoder or an ONNX manifest."""
    backend = getattr(world_model, "backend", None)
    enc = getattr(backend, "encoder", None)
    cfg = getattr(enc, "cfg", None)
    if cfg is not None and hasattr(cfg, "grid_hw"):
        return int(cfg.grid_hw[0] * cfg.patch_size)
    manifest = getattr(backend, "manifest", None)
    if isinstance(manifest, dict):
        for g in manifest.get("encoder", {}).values():
            shape = g.get("input_shape")
            if shape:
                return int(shape[-1])
    raise ValueError("cannot tell the encoder's input size from this world model: pass image_size=")


def _check_frame(frame: Any, name: str) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"{name} must be a uint8 H x W x 3 RGB array, got "
                         f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}")
    return frame


def _check_state(state: Any, name: str) -> np.ndarray:
    s = np.asarray(state, dtype=np.float64)
    if s.shape != (7,) or not np.all(np.isfinite(s)):
        raise ValueError(f"{name} must be 7 finite numbers (x, y, z, roll, pitch, yaw, gripper), got {s.tolist()}")
    return s


def grid_actions(grid: int, range_m: float, sweep_z: bool = True, fixed_dz: float = 0.0,
                 fill: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dy, dz, actions[G*G*Gz, 7])``: ``linspace(-range_m, range_m, grid)`` per swept axis, in
    ``ij`` order (dz fastest). Rotation/gripper components come from ``fill`` (default zeros)."""
    if int(grid) < 2:
        raise ValueError(f"grid must be >= 2 points per axis, got {grid}")
    if not (math.isfinite(range_m) and range_m > 0):
        raise ValueError(f"range must be a positive number of metres, got {range_m}")
    vals = np.linspace(-range_m, range_m, int(grid))
    dz = vals if sweep_z else np.array([float(fixed_dz)])
    gx, gy, gz = np.meshgrid(vals, vals, dz, indexing="ij")
    base = np.zeros(7) if fill is None else np.asarray(fill, dtype=np.float64).copy()
    acts = np.repeat(base[None], gx.size, axis=0)
    acts[:, 0], acts[:, 1], acts[:, 2] = gx.ravel(), gy.ravel(), gz.ravel()
    return vals, vals.copy(), dz, acts


@torch.no_grad()
def energy_landscape(
    world_model: Any,
    frame: np.ndarray,
    next_frame: np.ndarray,
    state: Any,
    next_state: Any | None = None,
    *,
    grid: int = 9,
    range_m: float = 0.075,
    sweep_z: bool = True,
    fill: str = "zero",
    energy: str = "l1",
    image_size: int | None = None,
    crop: str = "center",
) -> LandscapeResult:
    """Sweep ``dx, dy`` (and ``dz``) on a grid from ``frame``/``state`` toward ``next_frame``.

    Args:
        world_model: a :class:`~vjepa_core.inference.WorldModel` (or any object with ``encode``/``unroll``).
        frame, next_frame: uint8 ``H x W x 3`` RGB camera frames (any size; centre-cropped and resized).
        state: the 7-D end-effector state at ``frame``; ``next_state`` the one at ``next_frame`` (gives the
            true action ``poses_to_diff(state, next_state)``; optional).
        grid: points per axis; ``range_m``: sweep ``[-range_m, range_m]`` metres per axis.
        sweep_z: sweep dz too (``grid**3`` actions); otherwise dz is fixed at the true dz (0 without one).
        fill: rotation and gripper deltas of the grid actions: ``zero`` (the reference notebook) or ``true``
            (those of the true action, so only the position varies).
        energy: ``l1`` (the paper) or ``l2``, both between layer-normed tokens.
        image_size: encoder input size (default: read from the model).
    Returns:
        A :class:`LandscapeResult`.
    Raises:
        ValueError: bad frames, states, grid, range or fill mode.
    """
    frame = _check_frame(frame, "frame")
    next_frame = _check_frame(next_frame, "next_frame")
    s0 = _check_state(state, "state")
    true = None
    if next_state is not None:
        true = poses_to_diff(s0, _check_state(next_state, "next_state")).astype(np.float64)
    if fill not in FILL_MODES:
        raise ValueError(f"fill must be one of {FILL_MODES}, got {fill!r}")
    if fill == "true" and true is None:
        raise ValueError("fill='true' needs next_state (the true action)")
    # the world model's encode/unroll already layer-norm their outputs when it normalises: norm once
    objective = get_objective(energy, normalize=not bool(getattr(world_model, "normalize", False)))
    size = int(image_size) if image_size else model_image_size(world_model)

    base = true.copy() if fill == "true" else np.zeros(7)
    fixed_dz = float(true[2]) if (true is not None and not sweep_z) else 0.0
    dx, dy, dz, acts = grid_actions(grid, range_m, sweep_z, fixed_dz, base)
    all_acts = acts if true is None else np.concatenate([acts, true[None]], axis=0)

    if frame.shape != next_frame.shape:  # preprocess separately: both end up size x size
        x = torch.cat([preprocess_frames(f[None], size, crop, tubelet_size=1)[:, :, 0] for f in (frame, next_frame)])
    else:
        x = preprocess_frames(np.stack([frame, next_frame]), size, crop, tubelet_size=1)[:, :, 0]  # [2, 3, S, S]
    tokens = world_model.encode(x)  # [2, N, D]
    ctx, goal = tokens[:1], tokens[1]
    st = torch.as_tensor(s0, dtype=torch.float32, device=ctx.device)[None]
    a = torch.as_tensor(all_acts, dtype=torch.float32, device=ctx.device)[:, None]  # [S, 1, 7]
    t0 = time.perf_counter()
    pred = world_model.unroll(ctx, st, a)  # one batched call for every action
    e = objective(pred, goal).double().cpu().numpy()
    seconds = time.perf_counter() - t0
    if e.shape != (all_acts.shape[0],):
        raise ValueError(f"the model returned {e.shape} energies for {all_acts.shape[0]} actions")

    energies = e[: acts.shape[0]].reshape(len(dx), len(dy), len(dz))
    flat = int(np.argmin(energies))
    idx = tuple(int(i) for i in np.unravel_index(flat, energies.shape))
    argmin_action = acts[flat].copy()
    res = LandscapeResult(
        dx=dx, dy=dy, dz=dz, energies=energies, argmin_index=idx,  # type: ignore[arg-type]
        argmin_action=argmin_action, argmin_energy=float(energies[idx]), true_action=true, true_energy=None,
        error_xyz=None, error_m=None, true_in_range=None, nearest_grid_error_m=None, fill=fill, energy=energy,
        seconds=seconds, meta={"grid": int(grid), "range_m": float(range_m), "sweep_z": bool(sweep_z),
                               "image_size": size, "state": s0.tolist()},
    )
    if true is not None:
        res.true_energy = float(e[-1])
        res.error_xyz = argmin_action[:3] - true[:3]
        res.error_m = float(np.linalg.norm(res.error_xyz))
        swept = np.abs(true[:3] if sweep_z else true[:2]) <= range_m + 1e-12
        res.true_in_range = bool(np.all(swept))
        nearest = np.array([dx[np.argmin(np.abs(dx - true[0]))], dy[np.argmin(np.abs(dy - true[1]))],
                            dz[np.argmin(np.abs(dz - true[2]))]])
        res.nearest_grid_error_m = float(np.linalg.norm(nearest - true[:3]))
    return res


def _nearest(values: np.ndarray, v: float) -> int:
    return int(np.argmin(np.abs(values - v)))


def plot_landscape(result: LandscapeResult, path: str | Path, title: str = "") -> Path:
    """Write a PNG: ``dx`` vs ``dy`` at the dz grid value nearest the true dz (0 without one), and ``dx`` vs
    ``dz`` at the dy nearest the true dy (when dz was swept); the true action (x) and the grid argmin (o)
    are marked. Returns the path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    true = result.true_action
    ref = true[:3] if true is not None else np.zeros(3)
    am = result.argmin_action
    e = result.energies
    names = ("dx", "dy", "dz")
    panels: list[tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int, float]] = []
    kz = _nearest(result.dz, ref[2])
    panels.append((result.dx, result.dy, e[:, :, kz], 0, 1, 2, float(result.dz[kz])))
    if len(result.dz) > 1:
        jy = _nearest(result.dy, ref[1])
        panels.append((result.dx, result.dz, e[:, jy, :], 0, 2, 1, float(result.dy[jy])))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.9), squeeze=False)
    vmin, vmax = float(e.min()), float(e.max())
    for ax, (u, v, z, iu, iv, iw, w) in zip(axes[0], panels):
        # z is indexed [u, v]; imshow wants rows = v; cells centred on the grid values
        hu, hv = (u[1] - u[0]) / 2, (v[1] - v[0]) / 2
        im = ax.imshow(z.T, origin="lower", extent=(u[0] - hu, u[-1] + hu, v[0] - hv, v[-1] + hv),
                       aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xlabel(f"{names[iu]} [m]")
        ax.set_ylabel(f"{names[iv]} [m]")
        ax.set_title(f"slice {names[iw]} = {w:+.3f} m", fontsize=10)
        ax.plot(am[iu], am[iv], "o", mfc="none", mec="orange", ms=12, mew=2.5,
                label=f"grid argmin ({names[iw]} = {am[iw]:+.3f})")
        if true is not None:
            ax.plot(true[iu], true[iv], "x", color="red", ms=11, mew=2.5,
                    label=f"true action ({names[iw]} = {true[iw]:+.3f})")
            ax.set_xlim(min(u[0] - hu, true[iu] - 0.01), max(u[-1] + hu, true[iu] + 0.01))
            ax.set_ylim(min(v[0] - hv, true[iv] - 0.01), max(v[-1] + hv, true[iv] + 0.01))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)
        cbar = fig.colorbar(im, ax=ax, label=f"{result.energy.upper()} energy")
        cbar.formatter.set_useOffset(False)
        cbar.update_ticks()
    head = title or "V-JEPA 2-AC energy landscape"
    if result.error_m is not None:
        head += f"  (argmin error {result.error_m * 100:.1f} cm)"
    fig.suptitle(head, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
