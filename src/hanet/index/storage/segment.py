"""Segments: the immutable files of a batch of rows, read by positional reads, and their writer."""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from hanet.index.storage.layout import IndexFormatError, record_dtype
from hanet.io import commit_dir, ensure_dir, write_failure


class Segment:
    """One immutable segment: ``records.npy``, one structured row per video (or caption).

    Records are read with ``pread`` into the caller's buffer (:meth:`read_into`), one request
    per run of consecutive rows, straight from the page cache: nothing is memory-mapped, so a
    search's resident memory is its buffers, whatever the index's size, and a file truncated
    under a running process is an :class:`IndexFormatError` naming it, not a bus error.

    Args:
        path: the segment folder.
        kind: ``videos`` or ``captions``.
        count: rows, as the manifest records them.
    """

    def __init__(self, path: Path, kind: str, count: int) -> None:
        self.path = Path(path)
        self.kind = kind
        self.count = int(count)
        self._meta: Optional[list[dict[str, Any]]] = None
        self._fd: Optional[int] = None
        self._dtype: Optional[np.dtype] = None
        self._offset = 0
        self._open_lock = threading.Lock()

    @property
    def dtype(self) -> np.dtype:
        if self._dtype is None:
            self._open_records()
        return self._dtype

    def _open_records(self) -> int:
        if self._fd is None:
            with self._open_lock:
                if self._fd is None:
                    self._fd = self._open_checked()
        return self._fd

    def _open_checked(self) -> int:
        p = self.path / "records.npy"
        try:
            with open(p, "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(f)
                offset = f.tell()
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"{p}: missing or unreadable index array ({exc})") from None
        if fortran or shape != (self.count,):
            raise IndexFormatError(f"{p}: has shape {shape}, the manifest says ({self.count},)")
        self._dtype, self._offset = dtype, offset
        return os.open(p, os.O_RDONLY)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows of ``records.npy`` (a private copy).

        Args:
            rows: (n,) local rows, ascending.

        Returns:
            (n,) structured array.
        """
        self._open_records()
        out = np.empty(len(rows), dtype=self._dtype)
        self.read_into(rows, out)
        return out

    def read_into(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Fill ``out`` (n,) with the records of ``rows`` (n,) local, ascending: one positional
        read per run of consecutive rows."""
        fd = self._open_records()
        if not len(rows):
            return
        buf = memoryview(out.view(np.uint8).reshape(-1))
        size = self._dtype.itemsize
        rows = np.asarray(rows, dtype=np.int64)
        starts = np.flatnonzero(np.diff(rows, prepend=rows[0] - 2) != 1)
        ends = np.append(starts[1:], len(rows))
        for s, e in zip(starts.tolist(), ends.tolist()):
            self._read_exactly(fd, buf[s * size:e * size], self._offset + int(rows[s]) * size, int(rows[s]))

    def _read_exactly(self, fd: int, view: memoryview, pos: int, row: int) -> None:
        """Fill ``view`` from ``records.npy`` at byte ``pos`` (``row``: the first row, for the error)."""
        done, want = 0, len(view)
        while done < want:  # a short read is legal; finish it
            n = os.preadv(fd, [view[done:]], pos + done)
            if n <= 0:
                raise IndexFormatError(f"{self.path / 'records.npy'}: truncated (row {row})")
            done += n

    def read_field(self, rows: np.ndarray, name: str) -> np.ndarray:
        """One field of rows, reading only that field's bytes of each record (a search's few
        hits need their 20 KiB of per-frame concepts, not the 171 KiB records at MSR-VTT's sizes).

        Args:
            rows: (n,) local rows, any order.
            name: the field.

        Returns:
            (n, ...) array in the field's stored dtype (a private copy).
        """
        fd = self._open_records()
        dt = self._dtype
        base, offset = dt[name], dt.fields[name][1]
        out = np.empty((len(rows),) + base.shape, dtype=base.base)
        buf = memoryview(out.view(np.uint8).reshape(-1))
        want = base.itemsize
        for i, r in enumerate(np.asarray(rows, dtype=np.int64).tolist()):
            self._read_exactly(fd, buf[i * want:(i + 1) * want], self._offset + r * dt.itemsize + offset, r)
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def ids(self) -> list[str]:
        p = self.path / "ids.json"
        try:
            ids = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise IndexFormatError(f"{p}: missing or unreadable ({exc})") from None
        if len(ids) != self.count:
            raise IndexFormatError(f"{p}: has {len(ids)} ids, the manifest says {self.count}")
        return ids

    def meta(self) -> list[dict[str, Any]]:
        """Per-row metadata (read on first use, then cached)."""
        if self._meta is None:
            p = self.path / "meta.jsonl"
            try:
                lines = p.read_text().splitlines()
            except OSError as exc:
                raise IndexFormatError(f"{p}: missing or unreadable ({exc})") from None
            meta = []
            for i, line in enumerate(lines):
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise IndexFormatError(f"{p}: line {i + 1} is not JSON ({exc.msg})") from None
                if not isinstance(rec, dict):
                    raise IndexFormatError(f"{p}: line {i + 1} is not an object")
                meta.append(rec)
            if len(meta) != self.count:
                raise IndexFormatError(f"{p}: has {len(meta)} rows, the manifest says {self.count}")
            self._meta = meta
        return self._meta

    def thumbnail(self, row: int) -> Optional[Path]:
        p = self.path / "thumbs" / f"{int(row)}.jpg"
        return p if p.is_file() else None


class SegmentWriter:
    """Builds one segment in a temporary folder; :meth:`finish` makes it whole and final.

    Arrays are preallocated as ``.npy`` memory maps, so a segment of any size is written in
    bounded memory.

    Args:
        index_dir: the index directory.
        kind: ``videos`` or ``captions``.
        name: the final folder name under ``segments/``.
        count: rows.
        shapes: from :func:`field_shapes`.
    """

    def __init__(self, index_dir: Path, kind: str, name: str, count: int,
                 shapes: dict[str, tuple[tuple[int, ...], str]]) -> None:
        self.root = ensure_dir(Path(index_dir) / "segments", "index segment folder")
        self.name = name
        self.kind = kind
        self.count = int(count)
        self.tmp = self.root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        ensure_dir(self.tmp / "thumbs", "index segment folder")
        path = self.tmp / "records.npy"
        try:
            self.records = np.lib.format.open_memmap(path, mode="w+", dtype=record_dtype(shapes), shape=(self.count,))
            # The map is a sparse file: a full disk would kill the process (SIGBUS) at the first
            # page it cannot back. Reserve the blocks now, so a full disk is an error here instead.
            with open(path, "r+b") as fh:
                os.posix_fallocate(fh.fileno(), 0, os.path.getsize(path))
        except OSError as exc:
            self.records = None
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise write_failure(path, exc) from None
        self.ids: list[Optional[str]] = [None] * self.count
        self.meta: list[Optional[dict[str, Any]]] = [None] * self.count

    @property
    def thumbs_dir(self) -> Path:
        return self.tmp / "thumbs"

    def write(self, start: int, fields: dict[str, np.ndarray], ids: Sequence[str],
              meta: Sequence[dict[str, Any]]) -> None:
        """Write rows ``start .. start + len(ids)``.

        Args:
            start: first row.
            fields: field -> (n, ...) array (converted to the stored dtype).
            ids: the n ids.
            meta: the n metadata dicts.
        """
        n = len(ids)
        for f in self.records.dtype.names:
            self.records[f][start:start + n] = fields[f]
        self.ids[start:start + n] = list(ids)
        self.meta[start:start + n] = list(meta)

    def finish(self) -> dict[str, Any]:
        """Flush, fsync and rename into place; returns the manifest entry."""
        if any(i is None for i in self.ids):
            raise RuntimeError(f"segment {self.name}: not every row was written")
        self.records.flush()
        del self.records
        final = self.root / self.name
        try:
            (self.tmp / "ids.json").write_text(json.dumps(self.ids))
            (self.tmp / "meta.jsonl").write_text("".join(json.dumps(m, separators=(",", ":")) + "\n"
                                                         for m in self.meta))
        except OSError as exc:
            raise write_failure(final, exc) from None
        commit_dir(self.tmp, final)
        return {"name": self.name, "count": self.count}

    def abort(self) -> None:
        self.records = None
        shutil.rmtree(self.tmp, ignore_errors=True)


__all__ = ["Segment", "SegmentWriter"]
