"""Time alignment of multi-rate streams: sample camera frames at a fixed rate, attach the latest state.

Pure numpy on integer nanosecond stamps, so it is exact and testable without bags.

- :func:`sample_frames` picks, from camera stamps, one frame per ``1/fps`` period: the frame nearest to each
  time of a fixed grid ``start + k / fps`` (so the mean rate is exactly ``fps``), within ``tolerance``; when
  no frame is that close the camera had a gap and the segment ends (the next segment starts at the first
  frame after the gap).
- :func:`nearest_before` gives, for each query time, the latest sample at or before it (causal: a state
  is never taken from the future of its frame).
- :func:`align` combines both: frames whose pose or gripper sample is missing or older than ``max_skew``
  split the segment too, so every returned segment is a run of frames with fresh states.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["AlignConfig", "Segment", "align", "nearest_before", "sample_frames"]


@dataclass
class AlignConfig:
    """Alignment parameters (seconds are converted to integer nanoseconds internally).

    fps: sampling rate of the dataset (the reference DROID config uses 4).
    max_skew_s: oldest allowed pose/gripper sample relative to its frame.
    frame_tolerance_s: largest distance between a chosen frame and its ideal time; default a quarter period.
    min_frames: shorter segments are dropped (an AC clip needs at least 2 frames for one action).
    """

    fps: float = 4.0
    max_skew_s: float = 0.1
    frame_tolerance_s: float | None = None
    min_frames: int = 2

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if not self.max_skew_s >= 0:
            raise ValueError(f"max_skew_s must be >= 0, got {self.max_skew_s}")
        if self.frame_tolerance_s is not None and not self.frame_tolerance_s > 0:
            raise ValueError(f"frame_tolerance_s must be > 0, got {self.frame_tolerance_s}")
        if self.min_frames < 1:
            raise ValueError(f"min_frames must be >= 1, got {self.min_frames}")

    @property
    def period_ns(self) -> int:
        """Sampling period in nanoseconds."""
        return int(round(1e9 / self.fps))

    @property
    def tolerance_ns(self) -> int:
        """Frame tolerance in nanoseconds."""
        tol = self.frame_tolerance_s if self.frame_tolerance_s is not None else 0.25 / self.fps
        return int(round(tol * 1e9))


@dataclass
class Segment:
    """One continuous run of sampled frames: indices into the input arrays of :func:`align`."""

    frames: np.ndarray
    poses: np.ndarray
    grippers: np.ndarray | None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.frames.size)


def sample_frames(stamps_ns: np.ndarray, period_ns: int, tolerance_ns: int) -> list[np.ndarray]:
    """Split sorted frame stamps into segments sampled at ``period_ns`` (see module doc).

    Args:
        stamps_ns: [N] int64 sorted frame stamps.
        period_ns: target spacing.
        tolerance_ns: max distance from the ideal time.
    Returns:
        list of int arrays of indices into ``stamps_ns``, each strictly increasing in time.
    """
    t = np.asarray(stamps_ns, dtype=np.int64)
    if t.size and np.any(np.diff(t) < 0):
        raise ValueError("frame stamps must be sorted")
    segments: list[np.ndarray] = []
    i = 0
    n = t.size
    while i < n:
        chosen = [i]
        start = int(t[i])
        k = 1
        while True:
            target = start + k * period_ns  # a fixed grid from the segment start: the mean rate is exact
            j = int(np.searchsorted(t, target))
            best = -1
            for c in (j - 1, j):  # the two neighbours of the ideal time
                if chosen[-1] < c < n and abs(int(t[c]) - target) <= tolerance_ns:
                    if best < 0 or abs(int(t[c]) - target) < abs(int(t[best]) - target):
                        best = c
            if best < 0:
                break
            chosen.append(best)
            k += 1
        segments.append(np.asarray(chosen, dtype=np.int64))
        # No frame near the ideal time: a gap. The next segment starts at the first frame after the window
        # (frames inside it would have been chosen; frames before it are too early to continue this one).
        i = int(np.searchsorted(t, start + k * period_ns + tolerance_ns, side="right"))
    return segments


def nearest_before(query_ns: np.ndarray, stamps_ns: np.ndarray) -> np.ndarray:
    """For each query time the index of the latest stamp ``<=`` it, or -1 if there is none."""
    s = np.asarray(stamps_ns, dtype=np.int64)
    q = np.asarray(query_ns, dtype=np.int64)
    return np.searchsorted(s, q, side="right").astype(np.int64) - 1


def _fresh(query: np.ndarray, stamps: np.ndarray, max_skew_ns: int) -> tuple[np.ndarray, np.ndarray]:
    idx = nearest_before(query, stamps)
    ok = idx >= 0
    age = np.where(ok, query - stamps[np.clip(idx, 0, None)] if stamps.size else 0, np.iinfo(np.int64).max)
    return idx, ok & (age <= max_skew_ns)


def align(frame_ns: np.ndarray, pose_ns: np.ndarray, gripper_ns: np.ndarray | None,
          cfg: AlignConfig) -> tuple[list[Segment], list[str]]:
    """Sample frames and attach nearest-before pose/gripper samples; gaps split segments.

    Args:
        frame_ns, pose_ns, gripper_ns: sorted int64 stamps of each stream (``gripper_ns`` None: no gripper).
        cfg: alignment parameters.
    Returns:
        (segments of at least ``cfg.min_frames`` frames, notes on what was dropped and why).
    """
    frame_ns = np.asarray(frame_ns, dtype=np.int64)
    pose_ns = np.asarray(pose_ns, dtype=np.int64)
    grip = None if gripper_ns is None else np.asarray(gripper_ns, dtype=np.int64)
    skew = int(round(cfg.max_skew_s * 1e9))
    notes: list[str] = []
    out: list[Segment] = []
    for seg in sample_frames(frame_ns, cfg.period_ns, cfg.tolerance_ns):
        q = frame_ns[seg]
        pidx, pok = _fresh(q, pose_ns, skew)
        if grip is not None:
            gidx, gok = _fresh(q, grip, skew)
        else:
            gidx, gok = None, np.ones_like(pok)
        ok = pok & gok
        bad = int((~ok).sum())
        if bad:
            notes.append(f"{bad} sampled frame(s) without a pose/gripper sample within {cfg.max_skew_s}s "
                         "before them; segment split there")
        # Runs of consecutive ok frames.
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a < cfg.min_frames:
                notes.append(f"dropped a segment of {b - a} frame(s) (< min_frames {cfg.min_frames})")
                continue
            out.append(Segment(seg[a:b], pidx[a:b], None if gidx is None else gidx[a:b]))
    return out, notes
