"""Writing clips as H.264 mp4 with PyAV.

yuv420p (what every decoder and browser reads), no timestamps taken from the clock, no codec
threads (the generator runs one process per core instead) and x264's macroblock tree off: with it
on, the bytes written for the same frames depended on what the process had encoded before (at
most frame sizes, e.g. 96x96; not at 128x128), which broke "same seed, same files".

RGB is converted to yuv420p here (BT.601, limited range: what decoders assume for untagged
video), so the colours written do not depend on the FFmpeg build's swscale.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from hanet.io import atomic_write


def rgb_to_yuv420p(frames: np.ndarray) -> np.ndarray:
    """Convert RGB frames to planar yuv420p (BT.601, limited range), 2x2 chroma averaging.

    Args:
        frames: uint8 (frames, height, width, 3), height and width even.

    Returns:
        uint8 (frames, height * 3 // 2, width): the Y plane, then U, then V, as PyAV's
        ``VideoFrame.from_ndarray(..., format="yuv420p")`` expects.
    """
    F, H, W, _ = frames.shape
    f = frames.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    # +0.5: round to nearest in the truncating cast to uint8 below.
    y = (65.481 / 255) * r + (128.553 / 255) * g + (24.966 / 255) * b + 16.5
    # The conversion is linear, so averaging RGB over 2x2 first equals averaging U and V.
    s = f[:, 0::2, 0::2] + f[:, 1::2, 0::2] + f[:, 0::2, 1::2] + f[:, 1::2, 1::2]
    s *= 0.25
    r, g, b = s[..., 0], s[..., 1], s[..., 2]
    u = (-37.797 / 255) * r - (74.203 / 255) * g + (112.0 / 255) * b + 128.5
    v = (112.0 / 255) * r - (93.786 / 255) * g - (18.214 / 255) * b + 128.5
    out = np.empty((F, H * W * 3 // 2), np.uint8)
    q = H * W // 4
    out[:, :H * W] = np.clip(y, 0, 255).reshape(F, -1)
    out[:, H * W:H * W + q] = np.clip(u, 0, 255).reshape(F, -1)
    out[:, H * W + q:] = np.clip(v, 0, 255).reshape(F, -1)
    return out.reshape(F, H * 3 // 2, W)


def write_mp4(path: str | Path, frames: np.ndarray, fps: float, crf: int = 23,
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

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (F, H, W, 3), got {frames.dtype} {frames.shape}")
    F, H, W, _ = frames.shape
    if H % 2 or W % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {W}x{H}")
    path = Path(path)

    def write(tmp: str) -> None:
        _encode(tmp, frames, fps, crf, preset)

    atomic_write(path, write)
    return path.stat().st_size


def _encode(tmp: str, frames: np.ndarray, fps: float, crf: int, preset: str) -> None:
    import av

    F, H, W, _ = frames.shape
    with av.open(tmp, mode="w", format="mp4") as container:
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
