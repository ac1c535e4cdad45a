"""Writing clips as H.264 mp4 with PyAV.

yuv420p (what every decoder and browser reads), no timestamps taken from the clock, no codec
threads (the generator runs one process per core instead) and x264's macroblock tree off: with it
on, the bytes written for the same frames depended on what the process had encoded before (at
most frame sizes, e.g. 96x96; not at 128x128), which broke "same seed, same files".

RGB is converted to yuv420p here (BT.601, limited range: what decoders assume for untagged
video), so the colours written do not depend on the FFmpeg build's swscale.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np


def rgb_to_yuv420p(frames: np.ndarray) -> np.ndarray:
    """Convert RGB frames to planar yuv420p (BT.601, limited range), 2x2 chroma averaging.

    Args:
        frames: uint8 (frames, height, width, 3), height and width even.

    Returns:
        uint8 (frames, height * 3 // 2, width): the Y plane, then U, then V, as PyAV's
        ``VideoFrame.from_ndarray(..., format="yuv420p")`` expects.
    """
    f = frames.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    F, H, W = y.shape

    def half(c: np.ndarray) -> np.ndarray:
        return c.reshape(F, H // 2, 2, W // 2, 2).mean(axis=(2, 4)).reshape(F, -1)

    planes = np.concatenate([y.reshape(F, -1), half(u), half(v)], axis=1)
    return np.clip(np.rint(planes), 0, 255).astype(np.uint8).reshape(F, H * 3 // 2, W)


def write_mp4(path: str | Path, frames: np.ndarray, fps: float, crf: int = 20,
              preset: str = "veryfast") -> int:
    """Encode RGB frames to an mp4 file, atomically (a temporary file renamed at the end).

    Args:
        path: the mp4 to write.
        frames: uint8 array (frames, height, width, 3), RGB; height and width even.
        fps: frames per second.
        crf: x264 constant rate factor.
        preset: x264 speed preset.

    Returns:
        The file's size in bytes.

    Raises:
        ValueError: frames of the wrong shape or type.
    """
    import av  # heavy; only the writer needs it

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (F, H, W, 3), got {frames.dtype} {frames.shape}")
    F, H, W, _ = frames.shape
    if H % 2 or W % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {W}x{H}")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width = W
        stream.height = H
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(int(crf)), "preset": preset, "threads": "1",
                          "x264-params": "mbtree=0"}
        for planes in rgb_to_yuv420p(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path.stat().st_size


def read_mp4(path: str | Path) -> np.ndarray:
    """Decode every frame of a video file (for checks and tests).

    Args:
        path: a video file PyAV can read.

    Returns:
        uint8 array (frames, height, width, 3), RGB.
    """
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)
