"""Small synthetic training data (tests, benchmarks, smoke runs): videos, image folders, clip shards.

Clips show coloured squares moving at constant velocity over a gradient background, so there is
predictable structure for the masked-prediction objective; shard episodes add a 7-D state that moves with
known actions (the square's motion is the end-effector's), so an AC predictor has something to learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["moving_squares", "write_image_folder", "write_shard_dataset", "write_videos"]


def moving_squares(n_frames: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 frames ``[n_frames, size, size, 3]`` of two moving squares, and the first square's xy track."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    bg = np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 64)], -1).astype(np.uint8)
    pos = rng.uniform(0, size * 0.6, (2, 2))
    vel = rng.uniform(-2.0, 2.0, (2, 2))
    colors = rng.integers(80, 256, (2, 3))
    side = max(4, size // 5)
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    track = np.empty((n_frames, 2))
    for t in range(n_frames):
        f = bg.copy()
        for k in range(2):
            p = (pos[k] + vel[k] * t) % (size - side)
            y, x = int(p[0]), int(p[1])
            f[y:y + side, x:x + side] = colors[k]
            if k == 0:
                track[t] = p
        frames[t] = f
    return frames, track


def write_videos(folder: str | Path, n_videos: int = 4, n_frames: int = 16, size: int = 64) -> list[Path]:
    """Write ``n_videos`` mp4 files (mpeg4 via PyAV) of moving squares; returns their paths."""
    import av

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_videos):
        frames, _ = moving_squares(n_frames, size, seed=i)
        p = out / f"clip_{i:03d}.mp4"
        with av.open(str(p), mode="w") as c:
            s = c.add_stream("mpeg4", rate=8)
            s.width = s.height = size
            s.pix_fmt = "yuv420p"
            s.options = {"qscale": "2"}
            for f in frames:
                for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    c.mux(pkt)
            for pkt in s.encode():
                c.mux(pkt)
        paths.append(p)
    return paths


def write_image_folder(folder: str | Path, n_images: int = 8, size: int = 64) -> list[Path]:
    """Write ``n_images`` PNG files (first frames of moving-square clips) into class sub-folders."""
    from PIL import Image

    out = Path(folder)
    paths = []
    for i in range(n_images):
        frames, _ = moving_squares(1, size, seed=100 + i)
        p = out / f"class_{i % 2}" / f"img_{i:03d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frames[0]).save(p)
        paths.append(p)
    return paths


def write_shard_dataset(root: str | Path, n_episodes: int = 4, n_frames: int = 24, size: int = 64,
                        fps: float = 4.0) -> Path:
    """A ``vjepa-dataset``-format dataset (written with the data package's ``ShardWriter``) whose states
    follow the moving square: state xy = square position / size, other dims slowly varying, gripper 0/1."""
    from vjepa_core.pose import poses_to_diff

    from ..data.shards import Episode, ShardWriter

    writer = ShardWriter(root, {"fps": fps, "image_size": size, "crop": "center", "source": "synthetic"},
                         shard_frames=n_episodes * n_frames // 2)
    for e in range(n_episodes):
        frames, track = moving_squares(n_frames, size, seed=1000 + e)
        t = np.arange(n_frames) / fps
        states = np.zeros((n_frames, 7))
        states[:, 0:2] = track / size
        states[:, 2] = 0.3 + 0.01 * t
        states[:, 3] = np.pi - 0.05
        states[:, 6] = (t % 4.0 > 2.0).astype(np.float64)
        stamps = (1_000_000_000 + t * 1e9).astype(np.int64)
        ep = Episode(f"synthetic#{e}", frames, states, poses_to_diff(states[:-1], states[1:]), stamps)
        writer.add_source(f"synthetic_{e}", f"fp{e}", [ep], [])
    writer.close()
    return Path(root)
