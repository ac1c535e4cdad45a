"""Open a video with PyAV (FFmpeg) and sample frames from it.

Any container and codec that FFmpeg reads works (mp4/h264, webm/vp9, avi/mpeg4, gif, mkv...),
including variable frame rate, rotation metadata (phone videos) and odd sizes.

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

A first pass only demuxes (reads packet timestamps, no decoding; cheap) to learn the exact frame
times, duration and whether the file is complete; the second pass decodes and converts only the
chosen frames to RGB. Resizing, when asked, happens inside FFmpeg (swscale) on the chosen frames,
which is several times cheaper than resizing full frames in numpy or torch.

Signatures::

    VIDEO_EXTENSIONS: frozenset[str]
    @dataclass class VideoInfo: path, container, codec, width, height, rotation, fps, duration,
                                num_frames
    @dataclass class DecodedVideo: frames (N, H, W, 3) uint8 RGB, timestamps (N,) float64 seconds,
                                   info: VideoInfo, motion (N, H, W, 3) uint8 | None
    probe(path: str | os.PathLike) -> VideoInfo
    sample_indices(times: np.ndarray, duration: float, num_frames: int | None = None,
                   fps: float | None = None) -> np.ndarray
    decode_video(path, num_frames: int | None = None, fps: float | None = None,
                 size: int | None = None, threads: int = 1,
                 interpolation: str = 'BICUBIC', motion_gain: float | None = None) -> DecodedVideo
    motion_images(before: np.ndarray, after: np.ndarray, gain: float) -> np.ndarray   # uint8
    decode_for_extraction(path, num_frames=None, fps=None, size=None,
                          threads=1, motion_gain=None) -> DecodedVideo | Exception   # never raises
    worker_init() -> None      # initializer of decoding worker processes

Every problem with a file (missing, empty, not a video, no video stream, truncated, no frame
decodable) raises ``hanet.errors.DataError`` whose message starts with the path.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from hanet.errors import DataError

__all__ = ["VIDEO_EXTENSIONS", "VideoInfo", "DecodedVideo", "probe", "sample_indices", "decode_video",
           "motion_images", "decode_for_extraction"]

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .gif .mpg .mpeg .ts .mts .m2ts .wmv .flv .3gp .ogv .vob .asf .mxf".split()
)

# A video stream whose demuxed frames end short of the duration its header declares by more than
# this many frame durations and this fraction of the duration is reported as truncated (the
# slack absorbs rounding of the last frame's duration in valid files).
TRUNCATION_SLACK_FRAMES = 3
TRUNCATION_SLACK_FRACTION = 0.02


@dataclass
class VideoInfo:
    """What the demux pass learnt about a video.

    Attributes:
        path: the file.
        container: FFmpeg's format name (``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"matroska,webm"``...).
        codec: the video codec (``"h264"``, ``"vp9"``...).
        width, height: the frame size as displayed (after rotation).
        rotation: counter-clockwise degrees applied to the coded frames (0, 90, 180, -90).
        fps: average frame rate (frames / duration).
        duration: seconds from the first frame to the end of the last.
        num_frames: frames in the video stream.
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
    """

    frames: np.ndarray
    timestamps: np.ndarray
    info: VideoInfo
    motion: np.ndarray | None = None


def _av():
    try:
        import av
    except ImportError as exc:  # the 'video' extra is optional
        raise DataError("decoding videos needs PyAV: pip install 'hanet[video]'") from exc
    av.logging.set_level(av.logging.PANIC)  # FFmpeg's own stderr chatter; errors still raise
    return av


def _open(path: str):
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
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: no video stream (container {container.format.name})")
    return container


def _reason(exc: BaseException) -> str:
    # PyAV messages repeat the path; keep FFmpeg's own words
    msg = getattr(exc, "strerror", None) or str(exc)
    return f"{type(exc).__name__}: {msg}"


def _stream_rotation(stream) -> int:
    """Rotation from the old-style ``rotate`` tag (clockwise degrees), as CCW degrees; 0 if none.

    Current FFmpeg keeps rotation in a display matrix that it attaches to every decoded frame
    (``VideoFrame.rotation``), which ``decode_video`` reads; this tag is the fallback.
    """
    tag = (stream.metadata or {}).get("rotate")
    try:
        return _norm_rotation(-float(tag)) if tag else 0
    except ValueError:
        return 0


def _norm_rotation(deg: float) -> int:
    r = int(round(deg / 90.0)) * 90 % 360
    return r - 360 if r > 180 else r


def _demux(path: str) -> tuple[VideoInfo, np.ndarray, np.ndarray, object]:
    """First pass: packet timestamps of the first video stream, without decoding.

    Returns:
        ``(info, times, pts, time_base)``: frame start times in seconds from the first frame
        (sorted, ``(F,)``), the matching raw pts (``(F,)`` int64, or empty when the container
        has no timestamps) and the stream time base.
    """
    av = _av()
    container = _open(path)
    try:
        stream = container.streams.video[0]
        tb = stream.time_base
        pts_list: list[int] = []
        durations: list[int] = []
        missing_pts = False
        n_packets = 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the flush packet at the end, or an AVI "repeat frame"
                    n_packets += packet.dts is not None
                    continue
                n_packets += 1
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    missing_pts = True
                    ts = len(pts_list)
                pts_list.append(ts)
                durations.append(packet.duration or 0)
        except av.FFmpegError as exc:
            raise DataError(f"{path}: corrupt or truncated ({_reason(exc)} after {len(pts_list)} frames)") from exc
        if not pts_list:
            raise DataError(f"{path}: no video frames in the stream")
        declared = stream.frames or 0
        # mp4/mov index every sample and AVI headers count them: fewer packets means a cut file
        if declared and n_packets < declared:
            raise DataError(f"{path}: truncated ({n_packets} of {declared} frames present)")
        order = np.argsort(np.asarray(pts_list, dtype=np.int64), kind="stable")
        pts = np.asarray(pts_list, dtype=np.int64)[order]
        # duplicated pts (broken muxers) would make two frames share one time: keep the first
        keep = np.concatenate([[True], np.diff(pts) > 0])
        pts = pts[keep]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        if missing_pts or tb is None:
            times = np.arange(len(pts), dtype=np.float64) / rate
            pts = np.zeros(0, dtype=np.int64)
            last_dur = 1.0 / rate
        else:
            times = (pts - pts[0]).astype(np.float64) * float(tb)
            last = durations[int(order[-1])] if durations else 0
            last_dur = last * float(tb) if last else (float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / rate)
        duration = float(times[-1] + last_dur)
        declared_s = float(stream.duration * tb) if (stream.duration and tb) else None
        if declared_s is None and len(container.streams) == 1 and container.duration:
            declared_s = container.duration / 1e6  # AV_TIME_BASE
        slack = max(TRUNCATION_SLACK_FRAMES * duration / len(times), TRUNCATION_SLACK_FRACTION * (declared_s or 0))
        if declared_s is not None and declared_s - duration > slack:
            raise DataError(f"{path}: truncated (frames end at {duration:.2f}s of a declared {declared_s:.2f}s)")
        rotation = _stream_rotation(stream)
        w, h = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, -90):
            w, h = h, w
        info = VideoInfo(
            path=path, container=container.format.name, codec=stream.codec_context.name,
            width=w, height=h, rotation=rotation, fps=len(times) / duration if duration > 0 else rate,
            duration=duration, num_frames=len(times),
        )
        return info, times, pts, tb
    finally:
        container.close()


def probe(path: str | os.PathLike) -> VideoInfo:
    """Describe a video: one demux pass plus the first decoded frame (for its rotation).

    Args:
        path: the video file.

    Returns:
        Its ``VideoInfo`` (``width``/``height`` as displayed).

    Raises:
        DataError: the file is missing, empty, not a video, truncated or undecodable.
    """
    av = _av()
    path = os.fspath(path)
    info = _demux(path)[0]
    container = _open(path)
    try:
        frame = next(container.decode(container.streams.video[0]), None)
    except av.FFmpegError as exc:
        raise DataError(f"{path}: first frame undecodable ({_reason(exc)})") from exc
    finally:
        container.close()
    if frame is None:
        raise DataError(f"{path}: no frame could be decoded")
    _set_rotation(info, frame)
    return info


def _set_rotation(info: VideoInfo, frame) -> None:
    """Take the rotation from a decoded frame's display matrix when it has one."""
    r = _norm_rotation(getattr(frame, "rotation", 0) or 0)
    if r == 0 or r == info.rotation:
        return
    w, h = frame.width, frame.height
    info.rotation = r
    info.width, info.height = (h, w) if r in (90, -90) else (w, h)


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
    n = len(times)
    if num_frames is not None and fps is not None:
        raise ValueError("give num_frames or fps, not both")
    if num_frames is None and fps is None:
        return np.arange(n, dtype=np.int64)
    if num_frames is not None:
        if num_frames <= 0:
            raise ValueError(f"num_frames must be positive, got {num_frames}")
        targets = (np.arange(num_frames) + 0.5) * (duration / num_frames)
    else:
        if not fps or fps <= 0 or not math.isfinite(fps):
            raise ValueError(f"fps must be positive, got {fps}")
        count = max(1, int(math.ceil(duration * fps - 1e-9)))
        targets = np.arange(count) / fps
    # the frame on screen at t is the last one that started at or before t
    idx = np.searchsorted(times, targets + 1e-9, side="right") - 1
    return np.unique(np.clip(idx, 0, n - 1))


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


def decode_video(path: str | os.PathLike, num_frames: int | None = None, fps: float | None = None,
                 size: int | None = None, threads: int = 1, interpolation: str = "BICUBIC",
                 motion_gain: float | None = None) -> DecodedVideo:
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
        motion_gain: also make each sampled frame's motion image with this gain (decodes the
            neighbours of the sampled frames too); None: no motion images.

    Returns:
        ``DecodedVideo`` with ``frames`` ``(N, H, W, 3)`` uint8 RGB and ``timestamps`` ``(N,)``
        (and ``motion`` ``(N, H, W, 3)`` with ``motion_gain``).

    Raises:
        DataError: naming the file: missing, empty, not a video, truncated, undecodable.
        ValueError: bad ``num_frames``/``fps``/``motion_gain``.
    """
    if motion_gain is not None and not (math.isfinite(motion_gain) and motion_gain > 0):
        raise ValueError(f"motion_gain must be positive, got {motion_gain}")
    av = _av()
    path = os.fspath(path)
    info, times, pts, _ = _demux(path)
    chosen = sample_indices(times, info.duration, num_frames, fps)
    last = len(times) - 1
    wanted = set(chosen.tolist())
    if motion_gain is not None:
        wanted |= set(np.clip(chosen - 1, 0, last).tolist()) | set(np.clip(chosen + 1, 0, last).tolist())
    by_pts = len(pts) > 0
    index_of_pts = {int(pts[i]): i for i in wanted} if by_pts else {}

    container = _open(path)
    decoded: dict[int, np.ndarray] = {}
    rotation_known = False
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        sar_frac = stream.sample_aspect_ratio
        sar = float(sar_frac) if sar_frac else None
        index = 0
        try:
            for frame in container.decode(stream):
                if not rotation_known:
                    _set_rotation(info, frame)
                    rotation_known = True
                if by_pts and frame.pts is not None:
                    # the first frame with a wanted timestamp counts (duplicated pts are rare)
                    i = index_of_pts.pop(frame.pts, None)
                else:
                    i = index if index in wanted else None
                if i is not None and i not in decoded:
                    decoded[i] = _to_rgb(frame, info.rotation, size, interpolation, sar)
                index += 1
        except av.FFmpegError as exc:
            raise DataError(f"{path}: corrupt or truncated ({_reason(exc)} at frame {index})") from exc
    finally:
        container.close()
    kept = [i for i in chosen.tolist() if i in decoded]
    if not kept:
        raise DataError(f"{path}: no frame could be decoded ({info.num_frames} frames demuxed)")
    frames_arr = np.stack([decoded[i] for i in kept])
    stamps_arr = times[np.asarray(kept)].astype(np.float64)
    motion = None
    if motion_gain is not None:
        # a neighbour that did not decode is replaced by the frame itself (half the difference)
        before = np.stack([decoded.get(max(i - 1, 0), decoded[i]) for i in kept])
        after = np.stack([decoded.get(min(i + 1, last), decoded[i]) for i in kept])
        motion = motion_images(before, after, motion_gain)
    return DecodedVideo(frames=frames_arr, timestamps=stamps_arr, info=info, motion=motion)


def worker_init() -> None:
    """Initialiser of decoding worker processes: Ctrl-C is the parent's to handle.

    The parent stops the pool and commits finished videos; workers that also caught SIGINT
    would die mid-task and print a traceback each.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def decode_for_extraction(path: str, num_frames: int | None = None, fps: float | None = None,
                          size: int | None = None, threads: int = 1,
                          motion_gain: float | None = None) -> DecodedVideo | Exception:
    """``decode_video`` for worker processes: returns the error instead of raising it.

    Any exception (not only ``DataError``: FFmpeg can fail in many ways on hostile files)
    comes back as a ``DataError`` naming the file, so one bad video never stops a run.

    Returns:
        The ``DecodedVideo``, or the ``DataError`` describing why there is none.
    """
    try:
        return decode_video(path, num_frames=num_frames, fps=fps, size=size, threads=threads,
                            motion_gain=motion_gain)
    except DataError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - reported per file, never fatal to the run
        return DataError(f"{path}: {type(exc).__name__}: {exc}")
