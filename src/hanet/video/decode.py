"""Open a video with PyAV (FFmpeg) and sample frames from it, as FFmpeg plays it.

Any container and codec that FFmpeg reads works (mp4/h264, webm/vp9, avi/mpeg4, gif, mkv, mpeg-ts,
raw mpeg-2 elementary streams...), including variable frame rate, rotation metadata (phone
videos) and odd sizes.

What a file *holds* decides, never what it declares: frame times are the presentation times of
the frames the decoder actually outputs, so

- an edit list (``ffmpeg -ss 2.5 -i in.mp4 -c copy out.mp4``) is honoured: the leading packets
  it flags "discard" are decoded as references but their frames are dropped, and the first shown
  frame is at 0;
- an AVI's zero-size "drop frame" chunks (what FFmpeg's AVI muxer writes for gaps in
  variable-frame-rate input) hold the previous frame on screen, so a file whose header counts 444
  frames but holds 68 pictures over 29.6 s is complete;
- timestamp discontinuities (concatenated MPEG-TS, ``cat a.ts b.ts``: the clock restarts) are
  stitched into one timeline, as FFmpeg's own command line does: a frame that goes back in time,
  or (in formats that allow discontinuities) jumps ahead by more than
  ``DISCONTINUITY_SECONDS``, continues one frame after the previous one;
- truncation is judged by the time span decoded against the declared duration.

Sampling works on presentation time, so variable-frame-rate clips are sampled evenly in time:

- ``num_frames=N``: the clip's duration ``D`` is cut into ``N`` equal segments and the frame on
  screen at the centre of each, ``(k + 0.5) * D / N``, is taken (TSN-style uniform sampling);
- ``fps=F``: the frame on screen at ``0, 1/F, 2/F, ...`` (a constant rate whatever the source's);
- neither: every frame.

A frame chosen twice (``N`` larger than the frame count, ``F`` above the source's rate) is kept
once, so timestamps are strictly increasing and a clip may give fewer than ``N`` frames.

Motion: with ``motion_gain`` set, each sampled frame also gets a *motion image*, the signed
difference of its two neighbours (``frame[i+1] - frame[i-1]``, the previous or next frame
standing in for itself at the ends), times the gain, drawn as uint8 around mid-grey (127.5;
clipped). An image backbone then sees moving edges (a bright leading and a dark trailing edge,
coloured like what changed) instead of the scene: a cheap second stream that keeps the direction
and kind of motion which pooled appearance features lose (two-stream networks feed optical flow
to an image CNN for the same reason).

One decoding pass usually suffices: the frames are chosen on the fly for the duration the
header declares, and only converted to RGB (and resized, inside FFmpeg's swscale, several times
cheaper than in numpy) when chosen. When the decoded duration turns out to choose other frames
(the header lied, or declared nothing), a second pass converts exactly those.

The video stream is the one FFmpeg would pick: decodable, not a still picture (the cover art of
an audio file is an "attached picture" video stream), the default-flagged one first, then the
largest.

Every problem with a file (missing, empty, not a video, only a cover picture, no decoder for its
codec, truncated, no frame decodable) raises ``hanet.errors.DataError`` whose message starts with
the path.
"""

from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from hanet.errors import DataError

__all__ = ["VIDEO_EXTENSIONS", "VideoInfo", "DecodedVideo", "probe", "sample_indices", "decode_video",
           "motion_images", "decode_for_extraction", "worker_init"]

VIDEO_EXTENSIONS = frozenset(
    (".mp4 .m4v .mov .qt .mkv .webm .avi .gif .mpg .mpeg .mpe .m1v .m2v .mpv .m2p .ps .ts .mts .m2ts .tsv "
     ".wmv .flv .f4v .3gp .3g2 .ogv .ogg .vob .asf .mxf .dv .divx .y4m .mj2 .nut .rm .rmvb .h264 .264 "
     ".hevc .265 .ivf").split()
) - {".tsv"}  # .tsv is a list file for hanet extract, never a video

# A video whose decoded frames end short of the duration its header declares by more than
# this many frame durations and this fraction of the duration is reported as truncated (the
# slack absorbs rounding of the last frame's duration in valid files).
TRUNCATION_SLACK_FRAMES = 3
TRUNCATION_SLACK_FRACTION = 0.02
# FFmpeg's command line treats a forward jump of more than this (its -dts_delta_threshold) as a
# timestamp discontinuity in formats that allow them (MPEG-TS/PS, FLV...).
DISCONTINUITY_SECONDS = 10.0


@dataclass
class VideoInfo:
    """What the decoding pass learnt about a video.

    Attributes:
        path: the file.
        container: FFmpeg's format name (``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"matroska,webm"``...).
        codec: the video codec (``"h264"``, ``"vp9"``...).
        width, height: the frame size as displayed (after rotation).
        rotation: counter-clockwise degrees applied to the coded frames (0, 90, 180, -90).
        fps: average frame rate (frames / duration).
        duration: seconds from the first frame to the end of the last.
        num_frames: frames the decoder output (what is shown; discarded frames not counted).
        stream_index: the container's index of the stream that was read.
        discontinuities: timestamp jumps that were stitched over.
    """

    path: str
    container: str
    codec: str
    width: int
    height: int
    rotation: int
    fps: float
    duration: float
    num_frames: int
    stream_index: int = 0
    discontinuities: int = 0


@dataclass
class DecodedVideo:
    """Sampled frames of one video.

    Attributes:
        frames: ``(N, H, W, 3)`` uint8 RGB, upright (rotation metadata applied).
        timestamps: ``(N,)`` float64 presentation times in seconds from the first frame,
            strictly increasing.
        info: the video's ``VideoInfo``.
        motion: ``(N, H, W, 3)`` uint8 motion images of the same frames (see the module
            docstring), or None when not asked for.
        flow: ``(N, s, s, 3)`` uint8 optical-flow images of the same frames
            (:mod:`hanet.video.flow`), or None when not asked for.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    info: VideoInfo
    motion: np.ndarray | None = None
    flow: np.ndarray | None = None


def _av():
    try:
        import av
    except ImportError as exc:  # the 'video' extra is optional
        raise DataError("decoding videos needs PyAV: pip install 'hanet[video]'") from exc
    av.logging.set_level(av.logging.PANIC)  # FFmpeg's own stderr chatter; errors still raise
    return av


def _reason(exc: BaseException) -> str:
    # PyAV messages repeat the path; keep FFmpeg's own words
    msg = getattr(exc, "strerror", None) or str(exc)
    return f"{type(exc).__name__}: {msg}"


def _open(path: str):
    """Open ``path`` and pick its video stream; ``(container, stream)``."""
    av = _av()
    if not os.path.exists(path):
        raise DataError(f"{path}: file not found")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder, not a video file")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(path, "r")
    except av.FFmpegError as exc:
        hint = ""
        with open(path, "rb") as fh:
            if fh.read(12)[4:8] == b"ftyp":
                # the mp4 index (moov) is usually written last: a cut file loses it first
                hint = "; an MP4 without a readable index: truncated or still being written?"
        raise DataError(f"{path}: not a readable video ({_reason(exc)}{hint})") from exc
    try:
        return container, _pick_stream(container, path)
    except BaseException:
        container.close()
        raise


def _pick_stream(container, path: str):
    """The stream FFmpeg's command line would map: decodable moving pictures, the default-flagged
    one first, then the largest, then the first."""
    from av.stream import Disposition

    streams = list(container.streams.video)
    moving = [s for s in streams if not s.disposition & Disposition.attached_pic]
    kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
    if not streams:
        raise DataError(f"{path}: no video stream (container {container.format.name}; streams: {kinds})")
    if not moving:
        raise DataError(f"{path}: no video stream, only a still picture (cover art attached to "
                        f"{kinds} in a {container.format.name} file)")
    decodable = [s for s in moving if s.codec_context is not None]
    if not decodable:
        import av

        raise DataError(f"{path}: no decoder for its video codec in this FFmpeg build "
                        f"(FFmpeg {getattr(av, 'ffmpeg_version_info', '?')} inside PyAV {av.__version__}); "
                        f"re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")

    def rank(s) -> tuple[int, int, int]:
        cc = s.codec_context
        return (int(bool(s.disposition & Disposition.default)), int(cc.width or 0) * int(cc.height or 0), -s.index)

    return max(decodable, key=rank)


def _stream_rotation(stream) -> int:
    """Rotation from the old-style ``rotate`` tag (clockwise degrees), as CCW degrees; 0 if none.

    Current FFmpeg keeps rotation in a display matrix that it attaches to every decoded frame
    (``VideoFrame.rotation``), which the decoding pass reads; this tag is the fallback.
    """
    tag = (stream.metadata or {}).get("rotate")
    try:
        return _norm_rotation(-float(tag)) if tag else 0
    except ValueError:
        return 0


def _norm_rotation(deg: float) -> int:
    r = int(round(deg / 90.0)) * 90 % 360
    return r - 360 if r > 180 else r


def _declared_end(container, stream) -> float | None:
    """Where the header says the stream ends, in seconds on the stream's clock (None: it says nothing)."""
    tb = stream.time_base
    if stream.duration and tb:
        return float((stream.duration + (stream.start_time or 0)) * tb)
    if container.duration and len(container.streams) == 1:
        start = container.start_time or 0
        return (container.duration + start) / 1e6  # AV_TIME_BASE
    return None


class _Timeline:
    """Places decoded frames on one increasing timeline (seconds), stitching discontinuities.

    Args:
        time_base: the stream's time base (seconds per tick), or None.
        rate: the stream's average frame rate (frames/s), for frames without timestamps.
        discontinuous: the format allows timestamp discontinuities (forward jumps count too).
    """

    def __init__(self, time_base: float | None, rate: float, discontinuous: bool) -> None:
        self.tb = time_base
        self.step = 1.0 / rate
        self.discontinuous = discontinuous
        self.offset = 0.0
        self.last: float | None = None
        self.end: float | None = None  # end of the last frame, or of a held "drop frame"
        self.jumps = 0
        self._faulty_pts = self._faulty_dts = 0
        self._last_pts: int | None = None
        self._last_dts: int | None = None

    def best_effort(self, pts: int | None, dts: int | None) -> int | None:
        """A frame's timestamp as libavcodec's ``best_effort_timestamp`` (guess_correct_pts): the
        reordered pts unless pts went backwards more often than the decoding timestamps (packed
        B-frames in AVI: the pts the demuxer guessed are out of order, the dts are right)."""
        if dts is not None:
            self._faulty_dts += self._last_dts is not None and dts <= self._last_dts
            self._last_dts = dts
        elif pts is not None:
            self._last_dts = pts
        if pts is not None:
            self._faulty_pts += self._last_pts is not None and pts <= self._last_pts
            self._last_pts = pts
        elif dts is not None:
            self._last_pts = dts
        if pts is not None and (dts is None or self._faulty_pts <= self._faulty_dts):
            return pts
        return dts

    def raw(self, ts: int | None) -> float | None:
        return None if ts is None or self.tb is None else ts * self.tb

    def place(self, ts: int | None, duration: int | None) -> float:
        """Time of the next frame in output order from its pts (time-base ticks) and duration."""
        r = self.raw(ts)
        if r is None:
            t = 0.0 if self.last is None else self.last + self.step
        else:
            t = r + self.offset
            if self.last is not None and (t <= self.last or (self.discontinuous
                                                              and t - self.last > DISCONTINUITY_SECONDS)):
                # back in time (a restarted clock, a repeated pts) or a jump: continue one frame on
                self.offset += self.last + self.step - t
                t = self.last + self.step
                self.jumps += 1
            elif self.last is not None:
                self.step = t - self.last
        d = self.raw(duration) if duration else None
        if d:
            self.step = d
        self.last = t
        self.end = max(self.end or t, t + (d or self.step))
        return t

    def hold(self, ts: int | None, duration: int | None) -> None:
        """A zero-size packet (AVI drop frame): the previous frame stays on screen through it."""
        r = self.raw(ts)
        if r is None or self.last is None:
            return
        t = r + self.offset
        if t > self.last and not (self.discontinuous and t - self.last > DISCONTINUITY_SECONDS):
            self.end = max(self.end or t, t + (self.raw(duration) if duration else self.step))


class _Pass:
    """One decoding pass over a file's video stream: every frame, in presentation order.

    After :meth:`run`, the header facts (``container``, ``codec``, ``width``, ``height``,
    ``stream_index``, ``declared_end``, ``sar``, ``tag_rotation``) and what was decoded
    (``times`` on the stitched timeline, ``timeline``, ``first_frame``, ``failed_packets``,
    ``demux_error``) are attributes.

    Args:
        path: the video file.
        threads: FFmpeg decoding threads.
    """

    def __init__(self, path: str, threads: int = 1) -> None:
        self.path = path
        self.threads = threads
        self.times: list[float] = []
        self.first_frame = None
        self.failed_packets = 0
        self.demux_error: BaseException | None = None
        self.timeline: _Timeline | None = None
        self.declared_end: float | None = None
        self.stream_start = 0.0
        self.indexed: int | None = None  # frames the demuxer's index lists, when it lists each

    def run(self, on_frame: Callable[[int, float, object], None]) -> "_Pass":
        """Decode, calling ``on_frame(index, time, frame)`` for each frame shown (times on the
        stitched timeline, not yet shifted to start at 0)."""
        av = _av()
        container, stream = _open(self.path)
        try:
            cc = stream.codec_context
            cc.thread_type = "AUTO"
            cc.thread_count = self.threads
            tb = float(stream.time_base) if stream.time_base else None
            self.container, self.codec, self.stream_index = container.format.name, cc.name, int(stream.index)
            self.width, self.height = int(cc.width or 0), int(cc.height or 0)
            self.declared_end = _declared_end(container, stream)
            self.stream_start = float((stream.start_time or 0) * (tb or 0.0))
            self.sar = _pixel_aspect(stream)
            self.tag_rotation = _stream_rotation(stream)
            rate = float(stream.average_rate or stream.guessed_rate or 25) or 25.0
            self.timeline = tl = _Timeline(tb, rate, bool(container.format.flags & av.format.Flags.ts_discont.value))

            def emit(frames) -> None:
                for frame in frames:
                    if self.first_frame is None:
                        self.first_frame = frame
                    t = tl.place(tl.best_effort(frame.pts, frame.dts), frame.duration)
                    on_frame(len(self.times), t, frame)
                    self.times.append(t)

            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.FFmpegError as exc:  # the file ends mid-packet, or its structure breaks
                    self.demux_error = exc
                    break
                if packet.size == 0:
                    # the flush packet at the end, or an AVI "drop frame" chunk: the decoder must
                    # not see an empty packet before the end (to it, that means end of stream)
                    tl.hold(packet.pts if packet.pts is not None else packet.dts, packet.duration)
                    continue
                try:
                    emit(cc.decode(packet))
                except av.FFmpegError:
                    self.failed_packets += 1  # FFmpeg skips a packet it cannot decode; so do we
            try:
                emit(cc.decode(None))
            except av.FFmpegError:
                self.failed_packets += 1
            self.indexed = self._indexed_frames(stream.index_entries)
        finally:
            container.close()
        return self

    def duration(self) -> float:
        """Seconds from the first frame to the end of the last; DataError unless the file is whole."""
        path, tl = self.path, self.timeline
        if not self.times:
            why = f" ({_reason(self.demux_error)})" if self.demux_error is not None else ""
            raise DataError(f"{path}: no frame could be decoded{why}")
        start = self.times[0]
        end = tl.end if tl.end is not None else self.times[-1] + tl.step
        duration = float(end - start)
        declared = self.declared_end
        indexed = self.indexed
        if indexed is not None:
            # The file lists every frame it holds (mp4 sample tables, AVI idx1): complete when the
            # decoder showed them all. A header's duration beyond them is held pictures (AVI
            # "drop frame" chunks are not in the index), not missing ones.
            if len(self.times) + TRUNCATION_SLACK_FRAMES < indexed:
                cause = f"; {_reason(self.demux_error)}" if self.demux_error is not None else ""
                raise DataError(f"{path}: truncated ({len(self.times)} of the {indexed} frames its index lists "
                                f"could be decoded{cause})")
        elif declared is not None and not (tl.discontinuous and tl.jumps):
            slack = max(TRUNCATION_SLACK_FRAMES * duration / len(self.times), TRUNCATION_SLACK_FRACTION * declared)
            if declared - end > slack:
                cause = f"; {_reason(self.demux_error)}" if self.demux_error is not None else ""
                raise DataError(f"{path}: truncated (frames end at {duration:.2f}s of a declared "
                                f"{declared - start:.2f}s{cause})")
        elif self.demux_error is not None:
            raise DataError(f"{path}: corrupt or truncated ({_reason(self.demux_error)} after "
                            f"{len(self.times)} frames)")
        return duration

    def _indexed_frames(self, index) -> int | None:
        """Frames shown per the demuxer's index (mp4 sample tables, AVI idx1), when it has one
        entry per frame; else None (no index, or a sparse one such as Matroska's keyframe cues)."""
        n = len(index) if index is not None else 0
        if n < len(self.times) or n == 0:
            return None
        if n > len(self.times) + TRUNCATION_SLACK_FRAMES:
            n = sum(1 for e in index if not e.is_discard)  # edit lists index the frames they discard
        return n

    def rotation(self) -> int:
        """CCW degrees: the display matrix of the decoded frames, else the old ``rotate`` tag."""
        return _norm_rotation(getattr(self.first_frame, "rotation", 0) or 0) or self.tag_rotation

    def info(self, duration: float) -> VideoInfo:
        rotation = self.rotation()
        w = self.width or self.first_frame.width
        h = self.height or self.first_frame.height
        if rotation in (90, -90):
            w, h = h, w
        n = len(self.times)
        return VideoInfo(path=self.path, container=self.container, codec=self.codec, width=w, height=h,
                         rotation=rotation, fps=n / duration if duration > 0 else float(n), duration=duration,
                         num_frames=n, stream_index=self.stream_index, discontinuities=self.timeline.jumps)


def _targets(duration: float, num_frames: int | None, fps: float | None) -> np.ndarray | None:
    """Sampling times for a clip of ``duration`` seconds (None: every frame)."""
    if num_frames is None and fps is None:
        return None
    if num_frames is not None:
        return (np.arange(num_frames) + 0.5) * (duration / num_frames)
    count = max(1, int(math.ceil(duration * fps - 1e-9)))
    return np.arange(count) / fps


def sample_indices(times: np.ndarray, duration: float, num_frames: int | None = None,
                   fps: float | None = None) -> np.ndarray:
    """Choose frames by presentation time.

    Args:
        times: ``(F,)`` sorted frame start times in seconds (first frame at 0).
        duration: seconds from the first frame's start to the last frame's end.
        num_frames: uniform sampling: the frame on screen at the centre of each of ``N`` equal
            segments.
        fps: fixed-rate sampling: the frame on screen at ``0, 1/F, 2/F, ...`` while ``< duration``.

    Returns:
        ``(M,)`` strictly increasing int64 indices into ``times`` (``M <= N``; duplicates dropped).

    Raises:
        ValueError: both or a non-positive ``num_frames``/``fps`` given.
    """
    _check_sampling(num_frames, fps)
    n = len(times)
    targets = _targets(duration, num_frames, fps)
    if targets is None:
        return np.arange(n, dtype=np.int64)
    # the frame on screen at t is the last one that started at or before t
    idx = np.searchsorted(times, targets + 1e-9, side="right") - 1
    return np.unique(np.clip(idx, 0, n - 1)).astype(np.int64)


def _check_sampling(num_frames: int | None, fps: float | None) -> None:
    if num_frames is not None and fps is not None:
        raise ValueError("give num_frames or fps, not both")
    if num_frames is not None and num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if fps is not None and (not fps or fps <= 0 or not math.isfinite(fps)):
        raise ValueError(f"fps must be positive, got {fps}")


def _pixel_aspect(stream) -> float | None:
    if stream.codec_context.name == "gif":
        return None  # browsers ignore a GIF's pixel-aspect byte, so its authors never see it
    sar = stream.sample_aspect_ratio
    return float(sar) if sar else None


def _to_rgb(frame, rotation: int, size: int | None, interpolation: str, sar: float | None) -> np.ndarray:
    """One decoded frame -> upright uint8 RGB, optionally short side -> ``size`` + centre crop."""
    w, h = frame.width, frame.height
    if size is None:
        rgb = frame.to_ndarray(format="rgb24")
    else:
        # resize to the displayed shape: non-square pixels (anamorphic DVD/broadcast video)
        # are stretched to square ones; rotation comes after and does not change the short side
        dw = w * sar if sar else float(w)
        dh = float(h)
        scale = size / min(dw, dh)
        tw, th = max(size, round(dw * scale)), max(size, round(dh * scale))
        rgb = frame.reformat(width=tw, height=th, format="rgb24", interpolation=interpolation).to_ndarray()
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)
    if size is not None:
        hh, ww = rgb.shape[:2]
        top, left = (hh - size) // 2, (ww - size) // 2
        rgb = rgb[top : top + size, left : left + size]
    return np.ascontiguousarray(rgb)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Describe a video as FFmpeg plays it: one decoding pass, no frame converted.

    Args:
        path: the video file.

    Returns:
        Its ``VideoInfo`` (``width``/``height`` as displayed).

    Raises:
        DataError: the file is missing, empty, not a video, truncated or undecodable.
    """
    p = _Pass(os.fspath(path)).run(lambda i, t, f: None)
    return p.info(p.duration())


def motion_images(before: np.ndarray, after: np.ndarray, gain: float) -> np.ndarray:
    """Motion images: ``after - before`` times ``gain``, around mid-grey.

    Args:
        before: ``(N, H, W, 3)`` uint8 frames before the sampled ones.
        after: ``(N, H, W, 3)`` uint8 frames after them.
        gain: contrast of the difference (2: a full black-to-white change saturates).

    Returns:
        ``(N, H, W, 3)`` uint8: 127.5 + gain * (after - before) / 2, rounded and clipped, so that
        a backbone that scales pixels to [-1, 1] sees ``gain * (after - before) / 255``.
    """
    diff = after.astype(np.float32) - before.astype(np.float32)
    out = np.rint(127.5 + diff * np.float32(gain / 2.0))
    return np.clip(out, 0, 255).astype(np.uint8)


class _Picker:
    """Converts, during the first pass, the frames that sampling for the header's duration picks.

    A frame is known to be on screen at a target time only once the next frame arrives, so the
    last ``2 + radius`` frames are held (as decoded frames, not converted).

    Args:
        p: the pass (its header facts are read at the first frame).
        num_frames, fps: the sampling.
        radius: neighbours converted with each chosen frame (1 for motion images).
        convert: ``convert(index, frame)``.
    """

    def __init__(self, p: _Pass, num_frames: int | None, fps: float | None, radius: int,
                 convert: Callable[[int, object], None]) -> None:
        self.p, self.num_frames, self.fps, self.radius, self.convert = p, num_frames, fps, radius, convert
        self.every = num_frames is None and fps is None
        self.window: deque = deque(maxlen=2 + radius)
        self.targets: deque | None = None

    def __call__(self, i: int, t: float, frame) -> None:
        if self.every:
            self.convert(i, frame)
            return
        if not self.window:
            declared, start = self.p.declared_end, self.p.stream_start
            if declared is not None and declared > start:
                self.targets = deque((_targets(declared - start, self.num_frames, self.fps) + t).tolist())
        self.window.append((i, t, frame))
        if len(self.window) >= 2:
            self._decide(len(self.window) - 2, t)

    def finish(self) -> None:
        """The last frame stays on screen to the end."""
        if self.window and not self.every:
            self._decide(len(self.window) - 1, None)

    def _decide(self, k: int, until: float | None) -> None:
        targets = self.targets
        if not targets:
            return
        start = self.window[k][1]
        hit = False
        while targets and (until is None or targets[0] < until - 1e-9):
            hit = hit or targets[0] + 1e-9 >= start
            targets.popleft()
        if hit:
            for j in range(max(0, k - self.radius), min(len(self.window), k + self.radius + 1)):
                self.convert(self.window[j][0], self.window[j][2])


def decode_video(path: str | os.PathLike, num_frames: int | None = None, fps: float | None = None,
                 size: int | None = None, threads: int = 1, interpolation: str = "BICUBIC",
                 motion_gain: float | None = None, flow_size: int | None = None) -> DecodedVideo:
    """Decode a video and return the sampled frames with their timestamps.

    Args:
        path: the video file.
        num_frames: uniform sampling of ``N`` frames over the clip (see the module docstring).
        fps: sampling at ``F`` frames per second.
        size: if given, frames are resized (short side -> ``size``, in FFmpeg) and centre-cropped
            to ``size x size``; otherwise they keep the coded size (upright).
        threads: FFmpeg decoding threads for this video (0: FFmpeg decides). 1 suits worker
            processes that already run in parallel.
        interpolation: swscale filter for the resize (``"BICUBIC"``, ``"BILINEAR"``, ``"AREA"``).
        motion_gain: also make each sampled frame's motion image with this gain (converts the
            neighbours of the sampled frames too); None: no motion images.
        flow_size: also make each sampled frame's optical-flow image, ``flow_size`` pixels a side
            (:func:`hanet.video.flow.flow_images`; needs ``size``, a multiple of it); None: none.

    Returns:
        ``DecodedVideo`` with ``frames`` ``(N, H, W, 3)`` uint8 RGB and ``timestamps`` ``(N,)``
        (and ``motion`` ``(N, H, W, 3)`` with ``motion_gain``).

    Raises:
        DataError: naming the file: missing, empty, not a video, truncated, undecodable.
        ValueError: bad ``num_frames``/``fps``/``motion_gain``.
    """
    if motion_gain is not None and not (math.isfinite(motion_gain) and motion_gain > 0):
        raise ValueError(f"motion_gain must be positive, got {motion_gain}")
    _check_sampling(num_frames, fps)
    path = os.fspath(path)
    if flow_size is not None and (size is None or flow_size < 8 or size % flow_size):
        raise ValueError(f"flow_size must divide the decoded size {size}, got {flow_size}")
    radius = 1 if motion_gain is not None or flow_size is not None else 0
    converted: dict[int, np.ndarray] = {}
    p = _Pass(path, threads)

    def convert(i: int, frame) -> None:
        if i not in converted:
            converted[i] = _to_rgb(frame, p.rotation(), size, interpolation, p.sar)

    picker = _Picker(p, num_frames, fps, radius, convert)
    p.run(picker)
    picker.finish()
    duration = p.duration()
    times = np.asarray(p.times, dtype=np.float64) - p.times[0]
    chosen = sample_indices(times, duration, num_frames, fps)
    last = len(times) - 1
    needed = set(chosen.tolist())
    if radius:
        needed |= set(np.clip(chosen - 1, 0, last).tolist()) | set(np.clip(chosen + 1, 0, last).tolist())
    missing = needed - converted.keys()
    if missing:
        # the header's duration chose other frames (or it declared none): convert exactly these
        again = _Pass(path, threads).run(lambda i, t, frame: convert(i, frame) if i in missing else None)
        if len(again.times) != len(p.times):
            raise DataError(f"{path}: decodes differently each time ({len(p.times)} frames, then "
                            f"{len(again.times)})")
    frames_arr = np.stack([converted[i] for i in chosen.tolist()])
    motion = flow = None
    if radius:
        before = np.stack([converted[max(i - 1, 0)] for i in chosen.tolist()])
        after = np.stack([converted[min(i + 1, last)] for i in chosen.tolist()])
        if motion_gain is not None:
            motion = motion_images(before, after, motion_gain)
        if flow_size is not None:
            from hanet.video.flow import flow_images

            flow = flow_images(before, frames_arr, after, flow_size)
    return DecodedVideo(frames=frames_arr, timestamps=times[chosen], info=p.info(duration), motion=motion, flow=flow)


def worker_init() -> None:
    """Initialiser of decoding worker processes.

    Ctrl-C is the parent's to handle (it stops the pool and commits finished videos; workers that
    also caught SIGINT would die mid-task and print a traceback each). And a worker dies with its
    parent: after a ``kill -9`` of ``hanet extract`` nothing would ever send it work again, yet a
    worker blocked on its task queue would wait forever.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()


def _die_with_parent() -> None:
    import threading
    import time

    parent = os.getppid()
    try:  # Linux: the kernel delivers SIGKILL when the parent exits
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)

    def watch() -> None:  # elsewhere (and as a backstop): poll for re-parenting
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="hanet-parent-watch", daemon=True).start()


def decode_for_extraction(path: str, num_frames: int | None = None, fps: float | None = None,
                          size: int | None = None, threads: int = 1,
                          motion_gain: float | None = None, flow_size: int | None = None) -> DecodedVideo | Exception:
    """``decode_video`` for worker processes: returns the error instead of raising it.

    Any exception (not only ``DataError``: FFmpeg can fail in many ways on hostile files)
    comes back as a ``DataError`` naming the file, so one bad video never stops a run.

    Returns:
        The ``DecodedVideo``, or the ``DataError`` describing why there is none.
    """
    try:
        return decode_video(path, num_frames=num_frames, fps=fps, size=size, threads=threads,
                            motion_gain=motion_gain, flow_size=flow_size)
    except DataError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - reported per file, never fatal to the run
        return DataError(f"{path}: {type(exc).__name__}: {exc}")

