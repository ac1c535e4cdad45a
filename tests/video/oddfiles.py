"""Video files that FFmpeg plays but a naive reader gets wrong, made with PyAV the way FFmpeg makes them.

Each maker writes one file and returns its path; what FFmpeg's own command line makes of each
(``ffmpeg -i FILE -f null -``, FFmpeg 5.1) is in the docstring, and the decode tests hold hanet to it.
Frames carry their index in their brightness (``conftest.frame_level``) and a red top-left quadrant.
"""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
from av.stream import Disposition

from .conftest import frame_level


def _frame(i: int, w: int = 64, h: int = 48, base: int | None = None) -> av.VideoFrame:
    a = np.full((h, w, 3), frame_level(i) if base is None else base + 8 * (i % 10), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    return av.VideoFrame.from_ndarray(a, format="rgb24")


def _encode(path: Path, codec: str = "libx264", n: int = 30, rate: int = 30, fmt: str | None = None,
            size: tuple[int, int] = (64, 48), pix_fmt: str = "yuv420p", options: dict | None = None) -> Path:
    c = av.open(str(path), "w", format=fmt)
    s = c.add_stream(codec, rate=rate, options=options or {})
    s.width, s.height = size
    s.pix_fmt = pix_fmt
    for i in range(n):
        for p in s.encode(_frame(i, *size)):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return path


def avi_with_drop_frames(path: Path, trailing_hold: bool = False) -> Path:
    """10 pictures, each held for 3 frame periods at 10 fps: FFmpeg's AVI muxer fills each gap with
    zero-size "drop frame" chunks, so the header counts 28 frames (41 with the trailing hold). FFmpeg:
    10 frames, at 0, 0.3, ... 2.7 s; 2.80 s, with or without the trailing hold (time=2.80)."""
    c = av.open(str(path), "w")
    s = c.add_stream("mpeg4", rate=10)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    tb = fractions.Fraction(1, 10)
    s.codec_context.time_base = tb
    for i in range(10):
        f = _frame(i)
        f.pts, f.time_base = 3 * i, tb
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    if trailing_hold:  # a zero-size chunk at frame 40
        p = av.Packet(0)
        p.stream, p.pts, p.dts, p.time_base = s, 40, 40, tb
        c.mux(p)
    c.close()
    return path


def trimmed_mp4(path: Path, source: Path) -> Path:
    """``ffmpeg -ss 2.5 -i SRC -c copy -t 4 OUT.mp4``: packets from the keyframe before 2.5 s, times
    shifted so 2.5 s is 0, so the leading ones are negative and the mp4 gets an edit list that
    discards them. With SRC 300 frames at 30 fps, keyframes every 30: FFmpeg shows 122 frames from
    0 to 4.03 s (time=4.06), the first being source frame 75."""
    _encode(source, n=300, options={"g": "30", "bf": "2"})
    inp = av.open(str(source))
    ist = inp.streams.video[0]
    out = av.open(str(path), "w")
    ost = out.add_stream_from_template(ist)
    tb = ist.time_base
    cut, end = int(2.5 / tb), int(6.5 / tb)
    inp.seek(cut, stream=ist, backward=True, any_frame=False)
    for p in inp.demux(ist):
        if p.dts is None:
            continue
        if p.dts >= end:
            break
        p.pts -= cut
        p.dts -= cut
        p.stream = ost
        out.mux(p)
    out.close()
    inp.close()
    return path


def concatenated_ts(path: Path) -> Path:
    """``cat a.ts b.ts``: two 3-s MPEG-TS clips of 90 frames back to back; the second's clock
    restarts. FFmpeg: 180 frames over 6.0 s. The second part's frames have levels 100 + 8 * (i % 10),
    so a test can tell the halves apart."""
    a, b = path.with_suffix(".a.ts"), path.with_suffix(".b.ts")
    _encode(a, n=90)
    c = av.open(str(b), "w")
    s = c.add_stream("libx264", rate=30)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    for i in range(90):
        for p in s.encode(_frame(i, base=100)):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    path.write_bytes(a.read_bytes() + b.read_bytes())
    return path


def gif_with_pixel_aspect(path: Path) -> Path:
    """An 80x40 GIF whose logical-screen pixel-aspect byte says 1/4 (``(1 + 15) / 64``). Browsers
    ignore the byte. Its pictures have a red bar over the left eighth of their width."""
    c = av.open(str(path), "w")
    s = c.add_stream("gif", rate=10)
    s.width, s.height, s.pix_fmt = 80, 40, "rgb8"
    for i in range(5):
        a = np.full((40, 80, 3), 128, np.uint8)
        a[:, :10] = (255, 0, 0)
        for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    data = bytearray(path.read_bytes())
    assert data[:6] == b"GIF89a"
    data[12] = 1  # the pixel aspect ratio byte of the logical screen descriptor
    path.write_bytes(bytes(data))
    return path


def audio_with_cover(path: Path) -> Path:
    """An mp3 whose only "video" stream is its cover picture (an ID3 attached picture)."""
    c = av.open(str(path), "w")
    a = c.add_stream("libmp3lame", rate=44100)
    v = c.add_stream("png")
    v.width, v.height, v.pix_fmt = 32, 32, "rgb24"
    v.disposition = Disposition.attached_pic
    for p in v.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
        c.mux(p)
    for p in v.encode():
        c.mux(p)
    for _ in range(20):
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.float32), format="fltp", layout="mono")
        fr.sample_rate = 44100
        for p in a.encode(fr):
            c.mux(p)
    for p in a.encode():
        c.mux(p)
    c.close()
    return path


def mp4_without_decoder(path: Path) -> Path:
    """An h264 mp4 whose sample entry says JPEG XS (``jxsm``): FFmpeg knows the codec, but this build
    has no decoder for it."""
    src = _encode(path.with_suffix(".h264.mp4"), n=10)
    data = src.read_bytes()
    assert data.count(b"avc1") >= 1
    path.write_bytes(data.replace(b"avc1", b"jxsm"))
    return path


def two_video_tracks(path: Path) -> Path:
    """An mkv with a 64x48 track first and a 32x24 track flagged default second; FFmpeg maps the
    default one (``Stream #0:1 -> #0:0``). The second track's frames start at level 100."""
    c = av.open(str(path), "w")
    s0 = c.add_stream("libx264", rate=10)
    s0.width, s0.height, s0.pix_fmt = 64, 48, "yuv420p"
    s1 = c.add_stream("libx264", rate=10)
    s1.width, s1.height, s1.pix_fmt = 32, 24, "yuv420p"
    s0.disposition, s1.disposition = Disposition(0), Disposition.default
    for i in range(10):
        for p in s0.encode(_frame(i, 64, 48)):
            c.mux(p)
        for p in s1.encode(_frame(i, 32, 24, base=100)):
            c.mux(p)
    for s in (s0, s1):
        for p in s.encode():
            c.mux(p)
    c.close()
    return path


def elementary_streams(folder: Path) -> list[Path]:
    """A raw MPEG-2 stream as .m2v and .mpv and an MPEG-4 clip in a .3g2 file (25 frames each)."""
    return [_encode(folder / "es.m2v", "mpeg2video", 25, 25, "mpeg2video"),
            _encode(folder / "es.mpv", "mpeg2video", 25, 25, "mpeg2video"),
            _encode(folder / "clip.3g2", "mpeg4", 25, 25, "3g2")]
