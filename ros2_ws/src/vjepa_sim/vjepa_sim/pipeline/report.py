"""Evaluation reports: JSON summary, markdown table, and per-episode pictures (matplotlib, Agg backend).

Plain Python on plain dicts (no ROS), so the report of a saved JSON can be regenerated and tested alone.
An episode record (what :mod:`.eval` produces) holds ``index``, ``scene_seed``, ``start``, ``target``,
``initial_distance``, ``final_distance``, ``min_distance``, ``steps``, ``success``, ``message``, ``seconds``,
and ``trace``: one entry per planning step with ``step``, ``distance``, ``energy``, ``goal_energy``, ``action``
and ``planning_time``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["summarize", "write_episode_figure", "write_json", "write_report"]


def summarize(episodes: list, policy: str, settings: dict) -> dict:
    """The JSON summary: success rate, distances, steps and planning times over ``episodes``."""
    n = len(episodes)
    final = np.array([e["final_distance"] for e in episodes], dtype=float) if n else np.zeros(0)
    init = np.array([e["initial_distance"] for e in episodes], dtype=float) if n else np.zeros(0)
    ptimes = [t["planning_time"] for e in episodes for t in e["trace"] if t.get("planning_time") is not None]
    return {
        "policy": policy,
        "episodes": n,
        "successes": int(sum(bool(e["success"]) for e in episodes)),
        "success_rate": float(np.mean([bool(e["success"]) for e in episodes])) if n else 0.0,
        "mean_initial_distance": float(init.mean()) if n else None,
        "mean_final_distance": float(final.mean()) if n else None,
        "median_final_distance": float(np.median(final)) if n else None,
        "mean_steps": float(np.mean([e["steps"] for e in episodes])) if n else None,
        "planning_time_mean_s": float(np.mean(ptimes)) if ptimes else None,
        "planning_time_median_s": float(np.median(ptimes)) if ptimes else None,
        "planning_time_p50_s": float(np.percentile(ptimes, 50)) if ptimes else None,
        "planning_time_p99_s": float(np.percentile(ptimes, 99)) if ptimes else None,
        "settings": settings,
        "per_episode": episodes,
    }


def write_episode_figure(path: Path, episode: dict, start: np.ndarray | None, goal: np.ndarray | None,
                         final: np.ndarray | None, success_radius: float) -> None:
    """One PNG per episode: start / goal / final camera frames, distance and energy per planning step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10, 6))
    grid = fig.add_gridspec(2, 6)
    for k, (img, title) in enumerate(((start, "start"), (goal, "goal"), (final, "final"))):
        ax = fig.add_subplot(grid[0, 2 * k: 2 * k + 2])
        if img is not None:
            ax.imshow(img)
        ax.set_title(title)
        ax.axis("off")
    trace = episode["trace"]
    steps = [t["step"] for t in trace]
    ax = fig.add_subplot(grid[1, 0:3])
    ax.plot(steps, [t["distance"] * 100 for t in trace], "o-", label="distance at plan time")
    ax.axhline(success_radius * 100, color="g", ls="--", label=f"success radius {success_radius * 100:.0f} cm")
    ax.scatter([len(trace)], [episode["final_distance"] * 100], color="k", zorder=3, label="final")
    ax.set_xlabel("planning step")
    ax.set_ylabel("distance to target [cm]")
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[1, 3:6])
    if any(t.get("energy") is not None for t in trace):
        ax.plot(steps, [t.get("energy") for t in trace], "o-", label="energy of chosen action")
        ax.plot(steps, [t.get("goal_energy") for t in trace], "s--", label="energy of current frame")
        ax.legend(fontsize=7)
    ax.set_xlabel("planning step")
    ax.set_ylabel("energy (L1 to goal latent)")
    verdict = "SUCCESS" if episode["success"] else "failure"
    fig.suptitle(f"episode {episode['index']} ({episode.get('policy', '')}): {verdict}, final distance "
                 f"{episode['final_distance'] * 100:.1f} cm (start {episode['initial_distance'] * 100:.1f} cm)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_report(path: Path, summary: dict, command: str = "") -> Path:
    """A markdown report at ``path``: the headline numbers, a per-episode table and links to the pictures."""
    s = summary
    lines = [
        f"# Reach evaluation: {s['policy']}",
        "",
        f"Command: `{command}`" if command else "",
        "",
        f"- success: **{s['successes']} / {s['episodes']} = {s['success_rate'] * 100:.0f}%** "
        f"(end effector within {s['settings'].get('success_radius', 0.05) * 100:.0f} cm of the target after at most "
        f"{s['settings'].get('max_steps')} planning steps)",
    ]
    if s["episodes"]:
        lines += [
            f"- distance to target: start {s['mean_initial_distance'] * 100:.1f} cm on average; final mean "
            f"{s['mean_final_distance'] * 100:.1f} cm, median {s['median_final_distance'] * 100:.1f} cm",
            f"- steps per episode: {s['mean_steps']:.1f} on average",
        ]
    if s.get("planning_time_mean_s") is not None:
        lines.append(f"- planning time per step: mean {s['planning_time_mean_s']:.3f} s, median "
                     f"{s['planning_time_median_s']:.3f} s")
    lines += ["", "| episode | scene seed | start distance [cm] | final [cm] | min [cm] | steps | result | picture |",
              "|---|---|---|---|---|---|---|---|"]
    for e in s["per_episode"]:
        pic = e.get("figure", "")
        lines.append(f"| {e['index']} | {e['scene_seed']} | {e['initial_distance'] * 100:.1f} | "
                     f"{e['final_distance'] * 100:.1f} | {e['min_distance'] * 100:.1f} | {e['steps']} | "
                     f"{'success' if e['success'] else 'failure'} | {f'[png]({pic})' if pic else ''} |")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON (parent directories created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
