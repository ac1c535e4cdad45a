"""Thumbnail strips: the frames the model saw, side by side, one JPEG per video.

A strip has one square tile per real model frame (``tile`` pixels, centre-cropped), in frame
order, so tile ``i`` of a strip is frame ``i`` of the explanations. The frames are decoded with
the sampling the feature file records (``num_frames=N`` or ``fps=F``), so they are the very
frames whose features were extracted; the index's frame subsampling then picks the model's frames
from them (by time when the feature file has timestamps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from hanet.errors import DataError

DEFAULT_TILE = 96


def find_video(name: str, videos_dir: Optional[Path], source: Optional[str]) -> Optional[Path]:
    """The video file of an indexed video, if it can be found.

    Args:
        name: the video id (feature key).
        videos_dir: a folder given at build time (``--videos``); searched first, for
            ``<name>.<ext>`` or the basename of ``source``.
        source: the path the feature file records (``source`` attribute of its dataset).

    Returns:
        An absolute path to an existing file, or None.
    """
    from hanet.video.decode import VIDEO_EXTENSIONS

    if videos_dir is not None:
        d = Path(videos_dir)
        if source:
            p = d / Path(source).name
            if p.is_file():
                return p.resolve()
        for ext in sorted(VIDEO_EXTENSIONS):
            p = d / f"{name}{ext}"
            if p.is_file():
                return p.resolve()
    if source and Path(source).is_file():
        return Path(source).resolve()
    return None


def _sampling_args(sampling: Optional[str], fallback_frames: int) -> dict[str, object]:
    if sampling:
        key, _, value = str(sampling).partition("=")
        try:
            if key == "num_frames":
                return {"num_frames": None if value == "None" else int(value)}
            if key == "fps":
                return {"fps": float(value)}
        except ValueError:
            pass
    return {"num_frames": fallback_frames}


def make_strip(video_path: Path, out_path: Path, frame_times: Optional[Sequence[float]], num_tiles: int,
               sampling: Optional[str] = None, subsample: Optional[Sequence[int]] = None,
               tile: int = DEFAULT_TILE) -> None:
    """Decode a video's model frames and save them as one strip JPEG.

    Args:
        video_path: the video file.
        out_path: the JPEG to write.
        frame_times: (num_tiles,) seconds of each model frame, or None if unknown.
        num_tiles: real model frames of the video.
        sampling: the feature file's sampling label (``num_frames=20``, ``fps=2``...).
        subsample: when times are unknown, the index of each model frame among the decoded ones.
        tile: tile side in pixels.

    Raises:
        DataError: the video cannot be decoded.
    """
    from PIL import Image

    from hanet.video.decode import decode_video

    if frame_times is not None:
        dec = decode_video(video_path, size=tile, **_sampling_args(sampling, num_tiles))
        stamps = dec.timestamps
        want = np.asarray(frame_times, dtype=np.float64)[:num_tiles]
        # nearest decoded frame to each model frame's time
        pos = np.clip(np.searchsorted(stamps, want), 1, max(len(stamps) - 1, 1))
        left = np.clip(pos - 1, 0, len(stamps) - 1)
        right = np.clip(pos, 0, len(stamps) - 1)
        pick = np.where(np.abs(stamps[left] - want) <= np.abs(stamps[right] - want), left, right)
    else:
        dec = decode_video(video_path, size=tile, num_frames=num_tiles if subsample is None else None)
        n = len(dec.frames)
        pick = (np.clip(np.asarray(subsample, dtype=np.int64)[:num_tiles], 0, n - 1) if subsample is not None
                else np.round(np.linspace(0, n - 1, num_tiles)).astype(np.int64))
    frames = dec.frames[pick]
    if len(frames) == 0:
        raise DataError(f"{video_path}: no frame for the thumbnail strip")
    strip = np.concatenate(list(frames), axis=1)  # (tile, tile * n, 3)
    from hanet.io import atomic_write

    atomic_write(out_path, lambda tmp: Image.fromarray(strip).save(tmp, format="JPEG", quality=82))


__all__ = ["DEFAULT_TILE", "find_video", "make_strip"]
