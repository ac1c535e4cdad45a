"""All segments of one part of an index as one row space: the one reader of records."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from hanet.index.storage.layout import IndexFormatError
from hanet.index.storage.segment import Segment
from hanet.index.tuning import FIELD_READ_ROWS, READ_BYTES


class Collection:
    """All segments of one part of the index (``videos`` or ``captions``) as one row space.

    Rows are numbered across segments in manifest order; a deleted row keeps its number and is
    marked dead by the tombstones.

    Args:
        index_dir: the index directory.
        part: ``videos`` or ``captions``.
        manifest: the manifest dict.
    """

    def __init__(self, index_dir: Path, part: str, manifest: dict[str, Any]) -> None:
        info = manifest.get(part) or {"segments": [], "tombstones": None}
        self.part = part
        self.segments = [Segment(Path(index_dir) / "segments" / s["name"], part, s["count"])
                         for s in info["segments"]]
        self._buffers = threading.local()  # each thread's read buffer (read_groups)
        counts = np.array([s.count for s in self.segments], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.size = int(self.offsets[-1])
        self.alive = np.ones(self.size, dtype=bool)
        tomb = info.get("tombstones")
        if tomb:
            dead = np.load(Path(index_dir) / tomb, allow_pickle=False)
            self.alive[dead[dead < self.size]] = False
        self.ids: list[str] = [i for s in self.segments for i in s.ids()]
        # Dead rows keep their id in `ids` (row numbers never move); the lookup knows only
        # live ones, so a deleted and re-added id maps to its newest row.
        self.row_of: dict[str, int] = {}
        for r in np.flatnonzero(self.alive).tolist():
            self.row_of[self.ids[r]] = r

    @property
    def num_alive(self) -> int:
        return int(self.alive.sum())

    def locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment number and row within it of each global row."""
        seg = np.searchsorted(self.offsets, rows, side="right") - 1
        return seg, rows - self.offsets[seg]

    def gather(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Rows of a field across segments.

        Args:
            name: the field.
            rows: (n,) global rows, any order.

        Returns:
            (n, ...) array in the order of ``rows`` (a copy, in the stored dtype).
        """
        rows = np.asarray(rows, dtype=np.int64)
        if not self.segments or len(rows) > FIELD_READ_ROWS:
            return self.gather_many((name,), rows)[name]
        seg, local = self.locate(rows)
        base = self.segments[0].dtype[name]
        out = np.empty((len(rows),) + base.shape, dtype=base.base)
        for s in np.unique(seg).tolist():
            at = np.flatnonzero(seg == s)
            out[at] = self.segments[s].read_field(local[at], name)
        return out

    def read_groups(self, rows: np.ndarray, max_bytes: Optional[int] = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The records of rows, group after group, segment by segment: the one way records are
        read (positional reads, :meth:`Segment.read_into`).

        Each group is read into one buffer this thread reuses: a group is valid until the next
        one is asked for (copy what must outlive it). So reading holds at most
        ``max_bytes`` per thread, whatever the rows or the index's size.

        Args:
            rows: (n,) global rows, any order.
            max_bytes: bytes of records per group at most (default :data:`~hanet.index.tuning.READ_BYTES`;
                at least one record).

        Yields:
            (positions in ``rows`` (m,) int64, their records (m,) structured array).
        """
        limit = min(READ_BYTES, max_bytes or READ_BYTES)
        nested = getattr(self._buffers, "busy", False)  # a read inside a read gets its own buffer
        self._buffers.busy = True
        try:
            for segment, group, local in self._by_segment(rows):
                size = max(segment.dtype.itemsize, 1)
                step = max(1, limit // size)
                rows_per_read = min(step, len(group))
                buf = (np.empty(rows_per_read, segment.dtype) if nested
                       else self._buffer(segment.dtype, rows_per_read))
                for s in range(0, len(group), step):
                    view = buf[:len(group[s:s + step])]
                    segment.read_into(local[s:s + step], view)
                    yield group[s:s + step], view
        finally:
            if not nested:
                self._buffers.busy = False

    def _buffer(self, dtype: np.dtype, rows: int) -> np.ndarray:
        """This thread's read buffer, of at least ``rows`` records of ``dtype`` (grown, never shrunk
        below what :data:`~hanet.index.tuning.READ_BYTES` allows)."""
        have = getattr(self._buffers, "records", None)
        if have is None or have.dtype != dtype or len(have) < rows:
            have = self._buffers.records = np.empty(rows, dtype=dtype)
        return have

    def _by_segment(self, rows: np.ndarray) -> list[tuple["Segment", np.ndarray, np.ndarray]]:
        """(segment, positions in ``rows`` (m,), their rows within it (m,) ascending) per segment
        holding some of the global ``rows`` (any order)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not self.segments:
            raise IndexFormatError(f"the index holds no {self.part}")
        seg, local = self.locate(rows)
        order = np.lexsort((local, seg))
        bounds = np.flatnonzero(np.diff(seg[order])) + 1
        return [(self.segments[int(seg[g[0]])], g, local[g]) for g in np.split(order, bounds) if len(g)]

    def gather_many(self, names: Sequence[str], rows: np.ndarray) -> dict[str, np.ndarray]:
        """Rows of several fields, read once per row (positional reads, see :class:`Segment`).

        Args:
            names: the fields.
            rows: (n,) global rows, any order.

        Returns:
            field -> (n, ...) contiguous array in the order of ``rows``.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if not self.segments:
            raise IndexFormatError(f"the index holds no {self.part}")
        dt = self.segments[0].dtype
        out = {n: np.empty((len(rows),) + dt[n].shape, dtype=dt[n].base) for n in names}
        for idx, recs in self.read_groups(rows):
            for n in names:
                out[n][idx] = recs[n]
        return out

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """Live rows in ascending order, ``size`` at a time."""
        live = np.flatnonzero(self.alive)
        for s in range(0, len(live), size):
            yield live[s:s + size]

    def meta(self, row: int) -> dict[str, Any]:
        s, loc = self.locate(np.array([row]))
        return self.segments[int(s[0])].meta()[int(loc[0])]

    def thumbnail(self, row: int) -> Optional[Path]:
        s, loc = self.locate(np.array([row]))
        return self.segments[int(s[0])].thumbnail(int(loc[0]))


__all__ = ["Collection"]
