"""The HDF5 feature file: its layout, its reader, its crash-safe writer and the merge of shards.

One module for the one file format that ``hanet extract`` writes and training, evaluation and
indexing read (the MSR-VTT/VATEX releases' layout, with hanet's attributes added).

Layout (what ``hanet``'s data reader and the MSR-VTT/VATEX releases use)::

    features.h5
      <key>            dataset (frames, dim) float16|float32, one per video
        .attrs         timestamps (frames,) float64 seconds; source; duration; source_fps;
                       source_frames; width; height; rotation
      .attrs           hanet_features=1, backbone, feature_dim, image_size, sampling, dtype,
                       weights, hanet_version

Crash safety: the file at ``out_path`` is only ever replaced whole, by ``os.replace`` of a
finished copy, so at any instant it is a complete HDF5 file (an HDF5 file killed in the middle of
a write can be unreadable as a whole). Videos finished since the last commit live in a journal
folder ``<out_path>.journal/``, one small HDF5 file per video, each renamed into place only once
written. A commit copies the file, appends the journal, swaps the copy in and then deletes the
journal entries it holds; a run that dies at any point leaves the old file plus a journal that
the next run commits before it starts. The copy makes a commit cost O(file size), so commits are
spaced in time (``checkpoint_seconds``).
"""

from __future__ import annotations

import fcntl
import glob
import io
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import h5py
import numpy as np

from hanet.errors import DataError
from hanet.io import WriteError, atomic_write, atomic_write_bytes, ensure_dir, write_failure

#: Frame features beyond this magnitude are refused: CNN features are O(1)-O(100), and values
#: near float32's range overflow in the model's dot products (every score NaN).
MAX_FEATURE_MAGNITUDE = 1e6


#: Most frames a video's features may declare: an hour at 25 frames/s. A declared shape is a claim
#: (a chunked dataset declares any size in a few KB), so it is checked before anything is read.
MAX_FRAMES = 90_000
#: videos whose widths decide a feature file's width (the most common among them)
WIDTH_SAMPLE = 64


def feature_key(name: str) -> str:
    """HDF5 dataset key of a video name: VATEX names contain '/', stored as '_'."""
    return name.replace("/", "_")


class FeatureStore:
    """Frame features of one split, from one or more HDF5 files concatenated on the last axis.

    Files are opened lazily, once per process, so a store can be sent to DataLoader workers.

    Args:
        files: HDF5 files with one (frames, dim) dataset per video.
    """

    def __init__(self, files: list[Path]) -> None:
        if not files:
            raise DataError("no feature files given")
        for f in files:
            if not Path(f).is_file():
                raise DataError(f"{f}: feature file not found")
        self.files = [Path(f) for f in files]
        self._handles: Optional[list[Any]] = None
        self._pid: Optional[int] = None

    def __getstate__(self) -> dict[str, Any]:
        return {"files": self.files, "_handles": None, "_pid": None, "_dims": None}

    _dims: Optional[list[int]] = None

    def _open(self) -> list[Any]:
        if self._handles is None or self._pid != os.getpid():
            import h5py

            handles = []
            for f in self.files:
                try:
                    handles.append(h5py.File(f, "r"))
                except Exception as exc:  # noqa: BLE001
                    raise DataError(f"{f}: not a readable HDF5 feature file ({exc})") from None
            self._handles, self._pid = handles, os.getpid()
        return self._handles

    def dims(self) -> list[int]:
        """Feature size of each file: the width most of its first videos share (up to
        :data:`WIDTH_SAMPLE` usable ones), so one odd video is the one named, not the rest;
        :meth:`video_problem` checks every video against it."""
        if self._dims is not None:
            return list(self._dims)
        out = []
        for f, h in zip(self.files, self._open()):
            first_problem, widths = None, []
            for key in h.keys():
                entry, problem = _entry(h, key, None)
                if entry is not None:
                    widths.append(int(entry.shape[1]))
                    if len(widths) == WIDTH_SAMPLE:
                        break
                else:
                    first_problem = first_problem or f"{f}: video {key!r}: {problem}"
            if not widths:
                raise DataError(first_problem or f"{f}: the feature file holds no videos")
            out.append(max(dict.fromkeys(widths), key=widths.count))  # the most common; the first on a tie
        self._dims = out
        return list(out)

    def video_problem(self, name: str) -> Optional[str]:
        """What is wrong with a video's stored features, from the HDF5 metadata alone (nothing
        is read), or None: not a dataset (a group, a dangling or external link), not real numbers
        (strings, compound, complex), not (frames, the file's width), no frames, more than
        :data:`MAX_FRAMES`. A video absent from a file is :meth:`missing`'s business; its
        attributes are :meth:`attr_problems`'.
        """
        key = feature_key(name)
        for f, h, dim in zip(self.files, self._open(), self.dims()):
            if not _has(h, key):
                continue
            _, problem = _entry(h, key, dim)
            if problem is not None:
                return f"{f}: video {name!r}: {problem}"
        return None

    def shape_problems(self, names: Iterable[str], limit: int = 20) -> list[str]:
        """Videos whose stored features cannot be read (:meth:`video_problem`), from the HDF5
        metadata alone (no feature is read).

        Args:
            names: the videos to check (those absent are :meth:`missing`'s business).
            limit: at most this many problems are described (a count of the rest follows).
        """
        bad: list[str] = []
        count = 0
        names = list(names)
        for n in names:
            problem = self.video_problem(n)
            if problem is not None:
                count += 1
                if len(bad) < limit:
                    bad.append(problem)
        if count > len(bad):
            bad.append(f"... and {count - len(bad)} more")
        return bad

    def missing(self, names: Iterable[str]) -> list[tuple[str, Path]]:
        """(name, file) for every video absent from a file."""
        out = []
        for f, h in zip(self.files, self._open()):
            keys = set(h.keys())
            out.extend((n, f) for n in names if feature_key(n) not in keys)
        return out

    def get(self, name: str) -> np.ndarray:
        """(frames, sum of dims) float32 features of a video; DataError if absent, empty or NaN."""
        parts = []
        key = feature_key(name)
        for f, h, dim in zip(self.files, self._open(), self.dims()):
            if not _has(h, key):
                raise DataError(f"{f}: no features for video {name!r}")
            entry, problem = _entry(h, key, dim)
            if problem is not None:
                raise DataError(f"{f}: video {name!r}: {problem}")
            try:
                arr = np.asarray(entry[...], dtype=np.float32)
            except (OSError, RuntimeError, ValueError) as exc:  # a damaged chunk, a filter not installed
                raise DataError(f"{f}: features of {name!r} cannot be read ({exc})") from None
            parts.append(arr)
        if len({p.shape[0] for p in parts}) > 1:
            raise DataError(f"video {name!r} has different frame counts in {', '.join(map(str, self.files))}: "
                            f"{[p.shape[0] for p in parts]} (files are concatenated per frame)")
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        if not np.isfinite(out).all():
            raise DataError(f"{self.files[0] if len(self.files) == 1 else self.files}: "
                            f"features of {name!r} contain NaN or inf")
        if np.abs(out).max() > MAX_FEATURE_MAGNITUDE:
            # float32 products of such values overflow to inf and every score becomes NaN
            raise DataError(f"{self.files[0] if len(self.files) == 1 else self.files}: features of {name!r} reach "
                            f"{np.abs(out).max():.3g}; values beyond {MAX_FEATURE_MAGNITUDE:.0e} are not features "
                            f"(a corrupt or mis-scaled file)")
        return out

    def names(self) -> list[str]:
        """The dataset keys of the first file (its videos)."""
        return list(self._open()[0].keys())

    def attrs(self, name: str) -> dict[str, Any]:
        """Per-video attributes of the first file (timestamps, source...; {} if none), as Python values."""
        out, _ = self._attrs(name)
        return out

    def attr_problems(self, name: str) -> list[str]:
        """Per-video attributes :meth:`attrs` leaves out, and why (frame times that are not a
        finite, non-decreasing 1-D list of the video's frame count; a duration that is not a
        finite number >= 0)."""
        return self._attrs(name)[1]

    def _attrs(self, name: str) -> tuple[dict[str, Any], list[str]]:
        h = self._open()[0]
        key = feature_key(name)
        entry, problem = _entry(h, key, None) if _has(h, key) else (None, "absent")
        if entry is None:
            return {}, []
        out: dict[str, Any] = {}
        problems: list[str] = []
        for k, v in entry.attrs.items():
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            elif isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, np.generic):
                v = v.item()
            out[k] = v
        if "timestamps" in out:
            why = _times_problem(out["timestamps"], int(entry.shape[0]))
            if why:
                problems.append(f"frame times (attribute 'timestamps') {why}; left out")
                del out["timestamps"]
        if "duration" in out:
            d = out["duration"]
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not np.isfinite(d) or d < 0:
                problems.append(f"duration {d!r} is not a number of seconds >= 0; left out")
                del out["duration"]
        return out, problems

    def meta(self) -> dict[str, Any]:
        """File-level attributes of the first file ({} for a file not written by ``hanet extract``)."""
        return {k: _decode_attr(v) for k, v in self._open()[0].attrs.items()}

    def close(self) -> None:
        for h in self._handles or []:
            h.close()
        self._handles = None



def _has(h: Any, key: str) -> bool:
    """Whether the file has an entry (a link of any kind, even a dangling one) under ``key``."""
    try:
        return h.get(key, getlink=True) is not None
    except (KeyError, RuntimeError, OSError, ValueError):
        return False


def _entry(h: Any, key: str, dim: Optional[int]) -> tuple[Any, Optional[str]]:
    """``(dataset, None)`` when ``key`` holds (frames, dim) real-number features, else ``(None, why)``.

    Links to other files are not followed: a feature file says what it holds itself.
    """
    import h5py

    try:
        link = h.get(key, getlink=True)
    except (KeyError, RuntimeError, OSError, ValueError) as exc:
        return None, f"cannot be looked up ({exc})"
    if isinstance(link, h5py.ExternalLink):
        return None, f"is a link to another file ({link.filename}); such links are not followed"
    try:
        obj = h.get(key)
    except (KeyError, RuntimeError, OSError, ValueError) as exc:
        return None, f"is a link that cannot be resolved ({exc})"
    if obj is None:
        return None, "is a link that leads nowhere"
    if not isinstance(obj, h5py.Dataset):
        return None, f"is a {type(obj).__name__.lower()}, not a dataset of features"
    if obj.dtype.kind not in "fiu" or obj.dtype.fields is not None:
        return None, f"stores values of type {obj.dtype}; features are real numbers"
    shape = obj.shape
    if shape is None or len(shape) != 2:
        return None, f"has shape {shape}; expected (frames, dim)"
    if shape[0] == 0:
        return None, "has no frames"
    if shape[0] > MAX_FRAMES:
        return None, f"declares {shape[0]:,} frames (at most {MAX_FRAMES:,} are read)"
    if dim is not None and shape[1] != dim:
        return None, f"has features of shape {shape}; expected (frames, {dim}) as the file's other videos"
    return obj, None


def _times_problem(times: Any, frames: int) -> Optional[str]:
    """Why ``times`` are not the frame times of a video of ``frames`` frames, or None."""
    try:
        t = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError):
        return "are not numbers"
    if t.ndim != 1:
        return f"have shape {t.shape}; expected one time per frame"
    if len(t) != frames:
        return f"are {len(t)} for {frames} frames"
    if not np.isfinite(t).all():
        return "contain NaN or inf"
    if (np.diff(t) < 0).any():
        return "go backwards"
    return None


H5_LIBVER = ("v110", "v110")
META_KEYS_MUST_MATCH = ("backbone", "feature_dim", "image_size", "sampling", "dtype", "weights")
JOURNAL_SUFFIX = ".journal"


def _decode_attr(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_meta(path: str) -> dict[str, object]:
    """File-level attributes of a feature file.

    Args:
        path: the HDF5 file.

    Returns:
        ``{name: value}`` with strings decoded and numpy scalars as Python scalars.

    Raises:
        DataError: the file is not readable HDF5.
    """
    try:
        with h5py.File(path, "r") as f:
            return {k: _decode_attr(v) for k, v in f.attrs.items()}
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from exc


def _write_meta(f: h5py.File, meta: dict[str, object]) -> None:
    for k, v in meta.items():
        f.attrs[k] = v


class FeatureWriter:
    """Crash-safe writer of one feature file (see the module docstring).

    Args:
        out_path: the HDF5 file to create or extend.
        meta: file-level attributes; when the file exists, those in ``META_KEYS_MUST_MATCH``
            must equal its own (a file never mixes backbones or samplings).

    Raises:
        DataError: the existing file is unreadable or was written with other settings.
    """

    def __init__(self, out_path: str, meta: dict[str, object]):
        self.out_path = os.path.abspath(out_path)
        self.meta = dict(meta)
        self.journal = self.out_path + JOURNAL_SUFFIX
        self._seq = 0
        if os.path.isdir(self.out_path):
            raise DataError(f"{out_path}: is a folder; give the path of the HDF5 file to write (e.g. "
                            f"{os.path.join(out_path, 'features.hdf5')})")
        ensure_dir(os.path.dirname(self.out_path), "output folder")
        # one writer per file: two runs on one output would each commit over the other's work
        try:
            self._lock = open(self.out_path + ".lock", "w")
        except OSError as exc:
            raise write_failure(self.out_path + ".lock", exc) from None
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock.close()
            raise DataError(f"{out_path}: another extraction is writing this file (lock held)") from exc
        try:
            self._open_existing()
        except BaseException:
            self._release()
            raise

    def _open_existing(self) -> None:
        out_path = self.out_path
        # copies left by a commit that was killed before its rename (we hold the lock: no
        # other run is writing them)
        folder, base = glob.escape(os.path.dirname(out_path)), glob.escape(os.path.basename(out_path))
        # temporaries of hanet.io.atomic_write (".name.*.tmp") and of older versions ("name.*.tmp")
        stale = (glob.glob(os.path.join(folder, "." + base + ".*.tmp"))
                 + glob.glob(os.path.join(folder, base + ".*.tmp")))
        for path in stale:
            os.unlink(path)
        if os.path.exists(self.out_path):
            old = read_meta(self.out_path)
            if old.get("hanet_features") != 1:
                raise DataError(f"{out_path}: exists and is not a hanet feature file; choose another output path")
            diff = [f"{k}: file has {old.get(k)!r}, this run {self.meta.get(k)!r}"
                    for k in META_KEYS_MUST_MATCH if k in self.meta and old.get(k) != self.meta[k]]
            if diff:
                raise DataError(f"{out_path}: was written with other settings ({'; '.join(diff)}); "
                                f"use another output path or the same settings")
        else:
            # create it at once, so even a run killed before its first commit leaves a valid file
            self._swap_in(lambda tmp: None)
        # a killed run's journal is committed first: its videos are done
        self.commit()
        with h5py.File(self.out_path, "r") as f:
            self.keys: set[str] = set(f.keys())

    def _journal_parts(self) -> list[str]:
        return sorted(glob.glob(os.path.join(glob.escape(self.journal), "*.h5")))

    def add(self, key: str, features: np.ndarray, attrs: dict[str, object]) -> None:
        """Journal one video's features (durable once this returns).

        Args:
            key: dataset name (no '/').
            features: ``(frames, dim)`` array, stored as the store's dtype.
            attrs: dataset attributes (timestamps, source...).
        """
        ensure_dir(self.journal, "journal folder")
        self._seq += 1
        final = os.path.join(self.journal, f"{os.getpid()}-{self._seq:08d}.h5")
        # The entry is built in memory and written with plain file I/O: HDF5 that meets a full
        # disk mid-write leaves its library state broken (errors at every later close, and a
        # crash at exit), while a failed os.write is just an error.
        image = io.BytesIO()
        with h5py.File(image, "w", libver=H5_LIBVER) as f:
            d = f.create_dataset(key, data=features.astype(str(self.meta.get("dtype", "float32")), copy=False))
            for k, v in attrs.items():
                d.attrs[k] = v
        try:
            atomic_write_bytes(final, image.getbuffer())  # a journal entry exists whole or not at all
        except WriteError as exc:
            raise self._kept(exc) from None
        self.keys.add(key)

    def _kept(self, err: WriteError) -> WriteError:
        """The error, plus what is safe: finished videos stay in the file or its journal."""
        waiting = len(self._journal_parts())
        kept = f"{waiting} of them wait in {self.journal} to be committed" if waiting else "all in the file"
        return WriteError(f"{err}; the videos finished before it are kept ({kept}): free some space and run "
                          f"the same command again to resume")

    def _swap_in(self, fill) -> None:
        """Copy the file (if any) to a temp, let ``fill(h5file)`` add to it, then replace."""

        def write(tmp: str) -> None:
            mode = "w"
            if os.path.exists(self.out_path):
                shutil.copyfile(self.out_path, tmp)
                mode = "a"
            with h5py.File(tmp, mode, libver=H5_LIBVER) as f:
                _write_meta(f, self.meta)
                fill(f)

        # HDF5 must not meet a full disk (see add): the copy and the journal must fit first
        journal = sum(os.path.getsize(p) for p in self._journal_parts())
        need = (os.path.getsize(self.out_path) if os.path.exists(self.out_path) else 0) + journal + journal // 8 + (64 << 10)
        free = shutil.disk_usage(os.path.dirname(self.out_path)).free
        if free < need:
            raise self._kept(WriteError(f"{self.out_path}: cannot commit (no space left on device: the commit needs "
                                        f"{need / 2 ** 20:.1f} MiB, {free / 2 ** 20:.1f} MiB free)"))
        try:
            atomic_write(self.out_path, write)
        except WriteError as exc:
            raise self._kept(exc) from None

    def commit(self) -> int:
        """Move journalled videos into the file (atomic replace); returns how many."""
        parts = self._journal_parts()
        if not parts:
            return 0
        moved = 0

        def fill(f: h5py.File) -> None:
            nonlocal moved
            for part in parts:
                try:
                    with h5py.File(part, "r") as src:
                        for key in src:
                            if key not in f:
                                src.copy(src[key], f, name=key)
                                moved += 1
                except OSError:
                    continue  # unreadable entry: its video is simply redone

        self._swap_in(fill)
        for part in parts:
            os.unlink(part)
        journal = glob.escape(self.journal)
        for stale in glob.glob(os.path.join(journal, "*.tmp")) + glob.glob(os.path.join(journal, ".*.tmp")):
            os.unlink(stale)  # half-written entries of a killed run
        try:
            os.rmdir(self.journal)
        except OSError:
            pass
        return moved

    def _release(self) -> None:
        if not self._lock.closed:
            try:
                os.unlink(self._lock.name)
            except OSError:
                pass
            self._lock.close()

    def close(self) -> None:
        """Final commit, then release the file's lock."""
        try:
            self.commit()
        finally:
            self._release()


def merge_files(inputs: Sequence[str], out_path: str) -> list[str]:
    """Join feature files (shards) into one, crash-safely.

    All inputs must share backbone, sampling, image size, dtype and feature dim. A key in
    several inputs must hold the same data (kept once); different data is an error.

    Args:
        inputs: shard files.
        out_path: the merged file (replaced atomically if it exists).

    Returns:
        The merged keys, sorted.

    Raises:
        DataError: no inputs, an unreadable input, mismatching settings or conflicting keys.
    """
    if not inputs:
        raise DataError(f"{out_path}: nothing to merge (no shard files given or found)")
    out_abs = os.path.abspath(out_path)
    metas = {p: read_meta(p) for p in inputs}
    first = inputs[0]
    for p, m in metas.items():
        if m.get("hanet_features") != 1:
            raise DataError(f"{p}: not a hanet feature file")
        diff = [k for k in META_KEYS_MUST_MATCH if m.get(k) != metas[first].get(k)]
        if diff:
            raise DataError(f"{p}: settings differ from {first} ({', '.join(diff)}); cannot merge")
        if os.path.abspath(p) == out_abs:
            raise DataError(f"{p}: is also the merge output; write the merge to another path")
    origin: dict[str, str] = {}

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w", libver=H5_LIBVER) as out:
            meta = dict(metas[first])
            meta["merged_from"] = len(inputs)
            _write_meta(out, meta)
            for p in inputs:
                with h5py.File(p, "r") as src:
                    for key in src:
                        if key in out:
                            if not np.array_equal(out[key][...], src[key][...]):
                                raise DataError(f"key {key!r} has different features in {origin[key]} and {p}")
                            continue
                        src.copy(src[key], out, name=key)
                        origin[key] = p

    atomic_write(out_abs, write)
    return sorted(origin)


__all__ = ["H5_LIBVER", "MAX_FEATURE_MAGNITUDE", "feature_key", "FeatureStore", "FeatureWriter", "read_meta",
           "merge_files"]
