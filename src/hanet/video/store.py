"""The HDF5 feature file, written crash-safely, and the merge of shard files.

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

Signatures::

    H5_LIBVER = ('v110', 'v110')          # readable by HDF5 >= 1.10; allows large attributes
    class FeatureWriter:
        def __init__(self, out_path: str, meta: dict[str, object])
        keys: set[str]                     # videos in the file or journal
        def add(self, key: str, features: np.ndarray, attrs: dict[str, object]) -> None
        def commit(self) -> int            # journal -> file; returns videos moved
        def close(self) -> None            # final commit
    read_meta(path: str) -> dict[str, object]
    merge_files(inputs: Sequence[str], out_path: str) -> list[str]
"""

from __future__ import annotations

import fcntl
import glob
import io
import os
import shutil
from typing import Sequence

import h5py
import numpy as np

from hanet.errors import DataError
from hanet.io import WriteError, atomic_write, ensure_dir, write_failure

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
        tmp = final + ".tmp"
        # The entry is built in memory and written with plain file I/O: HDF5 that meets a full
        # disk mid-write leaves its library state broken (errors at every later close, and a
        # crash at exit), while a failed os.write is just an error.
        image = io.BytesIO()
        with h5py.File(image, "w", libver=H5_LIBVER) as f:
            d = f.create_dataset(key, data=features.astype(str(self.meta.get("dtype", "float32")), copy=False))
            for k, v in attrs.items():
                d.attrs[k] = v
        try:
            with open(tmp, "wb") as fh:
                fh.write(image.getbuffer())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)  # a journal entry exists whole or not at all
        except OSError as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise self._kept(write_failure(final, exc)) from None
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
        for stale in glob.glob(os.path.join(glob.escape(self.journal), "*.tmp")):
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
