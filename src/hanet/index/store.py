"""The on-disk index: a manifest, immutable segments of float16 records, tombstones, FAISS files.

Layout::

    INDEX_DIR/manifest.json             the commit point: everything else is read through it
    INDEX_DIR/model.pt                  the model queries are encoded with (checkpoint format)
    INDEX_DIR/vocab.json                word2int of that model
    INDEX_DIR/concepts.json             {"verb": [names by id], "noun": [...]} (optional)
    INDEX_DIR/segments/v-000001-000/    one batch of videos, never modified after it is written:
        ids.json                        video ids in row order
        meta.jsonl                      one JSON object per row (source, frame times, thumbnail)
        records.npy                     (N,) structured rows, one field per stored output:
                                        encodings in float16, their norms and Gram matrices
                                        (hanet.index.scorer) in float32, indices in int32
        thumbs/<row>.jpg                thumbnail strips (named by row, never by id)
    INDEX_DIR/segments/c-000001-000/    captions (video-to-text search), same scheme
    INDEX_DIR/faiss/videos-000001-global.faiss, -verbs.faiss, -nouns.faiss
                                        the first stage of generation 1 (hanet.index.faiss_stage)
    INDEX_DIR/tombstones/videos-000001.npy  deleted rows of generation 1 (sorted int64)
    INDEX_DIR/.lock                     held by the one writer (readers never write)

Crash safety: a writer builds every new file under a temporary name, fsyncs it and renames it
into place; a new segment is a temporary folder renamed whole. Only then is ``manifest.json``
replaced (temporary file, fsync, rename): that rename is the commit. A writer killed at any
point leaves the previous manifest, which names only complete files; whatever it left behind is
not referenced and is removed by the next writer. Readers load the manifest once and see one
generation, whatever writers do meanwhile (segments are immutable; old FAISS and tombstone files
are only removed after a newer manifest is in place, and a reader loads them when it opens).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import mmap
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from hanet.errors import HanetError
from hanet.io import atomic_write_text, commit_dir, ensure_dir, write_failure
from hanet.index.memory import MAP_DROP_BYTES, MAP_FOLIO_BYTES, READ_BYTES

INDEX_FORMAT = "hanet-index"
INDEX_VERSION = 1
MANIFEST = "manifest.json"
MODEL_FILE = "model.pt"
VOCAB_FILE = "vocab.json"
CONCEPTS_FILE = "concepts.json"

VIDEO_FLOAT_FIELDS: tuple[str, ...] = ("global_embeds", "verb_clips", "noun_clips", "verb_frames", "noun_frames",
                                       "verb_probs", "noun_probs")
VIDEO_INT_FIELDS: tuple[str, ...] = ("lengths", "top_verbs", "top_nouns", "verb_peaks", "noun_peaks")
#: What time spans read (:mod:`hanet.model.moments`): each frame's verb concept probabilities.
#: Scoring never reads them; an index written before they were stored gives no spans.
MOMENT_FIELDS: tuple[str, ...] = ("verb_frame_probs",)
TEXT_FLOAT_FIELDS: tuple[str, ...] = ("global_embeds", "verb_embeds", "noun_embeds", "verb_phrases", "noun_phrases",
                                      "verb_probs", "noun_probs")
TEXT_INT_FIELDS: tuple[str, ...] = ("verb_lens", "noun_lens", "lengths")
PARTS = ("videos", "captions")
#: Up to this many rows, one field is read alone from each record (a read per row); more rows
#: read whole records, a read per run of consecutive rows.
FIELD_READ_ROWS = 64
_PREFIX = {"videos": "v", "captions": "c"}


class IndexFormatError(HanetError):
    """The index directory is missing, damaged, or was written by another version or model."""


#: The per-frame and per-clip tensors (most of a video's bytes), which ``frame_dtype="int8"`` stores
#: as 8-bit integers with one float16 scale per frame or clip (``<field>_scale``).
FRAME_FIELDS: tuple[str, ...] = ("verb_frames", "noun_frames", "verb_clips", "noun_clips")
FRAME_DTYPES = ("float16", "int8")


def field_shapes(config: Any, kind: str, frame_dtype: str = "float16") -> dict[str, tuple[tuple[int, ...], str]]:
    """Per-row shape and dtype of every stored array.

    Args:
        config: the :class:`~hanet.config.ModelConfig`.
        kind: ``videos`` or ``captions``.
        frame_dtype: how videos store :data:`FRAME_FIELDS`: ``float16``, or ``int8`` with a scale
            per frame (about half the bytes; :func:`hanet.index.scorer.quantize_frames`).

    Returns:
        field -> (row shape, numpy dtype name).
    """
    if frame_dtype not in FRAME_DTYPES:
        raise HanetError(f"frame dtype {frame_dtype!r}: choose one of {', '.join(FRAME_DTYPES)}")
    d = config.video.dim_embed
    if kind == "videos":
        T = config.max_frames_in_video
        Sv, Sn = config.num_selected_verbs, config.num_selected_nouns
        K = config.noun_topk if T >= config.noun_topk else 1
        shapes = {
            "global_embeds": ((d,), "float16"), "verb_clips": ((Sv, d), "float16"),
            "noun_clips": ((Sn, d), "float16"), "verb_frames": ((T, d), "float16"),
            "noun_frames": ((T, d), "float16"), "verb_probs": ((config.num_verb_concepts,), "float16"),
            "verb_frame_probs": ((T, config.num_verb_concepts), "float16"),
            "noun_probs": ((config.num_noun_concepts,), "float16"), "lengths": ((), "int32"),
            "top_verbs": ((Sv,), "int32"), "top_nouns": ((Sn,), "int32"), "verb_peaks": ((Sv,), "int32"),
            "noun_peaks": ((K, Sn), "int32"),
            # precomputed from the stored float16 frames and clips (see hanet.index.scorer)
            "verb_frame_norms": ((T,), "float32"), "noun_frame_norms": ((T,), "float32"),
            "verb_clip_norms": ((Sv,), "float32"), "noun_clip_norms": ((Sn,), "float32"),
            "verb_frame_grams": ((T, T), "float32"), "noun_frame_grams": ((T, T), "float32"),
            "verb_clip_grams": ((Sv, Sv), "float32"), "noun_clip_grams": ((Sn, Sn), "float32"),
        }
        if frame_dtype == "int8":
            for name in FRAME_FIELDS:
                shape, _ = shapes[name]
                shapes[name] = (shape, "int8")
                shapes[name + "_scale"] = (shape[:1], "float16")
        return shapes
    if kind == "captions":
        Pv, Pn = config.num_verbs, config.num_nouns
        return {
            "global_embeds": ((d,), "float16"), "verb_embeds": ((Pv, d), "float16"),
            "noun_embeds": ((Pn, d), "float16"), "verb_phrases": ((Pv, d), "float16"),
            "noun_phrases": ((Pn, d), "float16"), "verb_probs": ((config.num_verb_concepts,), "float16"),
            "noun_probs": ((config.num_noun_concepts,), "float16"), "verb_lens": ((Pv,), "int32"),
            "noun_lens": ((Pn,), "int32"), "lengths": ((), "int32"),
        }
    raise ValueError(f"unknown segment kind {kind!r}")


def model_fingerprint(model: Any) -> str:
    """SHA-256 of a model's variant, model config and weights (what decides every embedding).

    Args:
        model: a :class:`~hanet.model.HANet`.

    Returns:
        64 hex digits.
    """
    import torch

    h = hashlib.sha256()
    h.update(model.variant.encode())
    cfg = json.dumps(_asdict(model.config), sort_keys=True)
    h.update(cfg.encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _asdict(cfg: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(cfg)


# ---------------------------------------------------------------------- manifest
def read_manifest(index_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check an index's manifest.

    Args:
        index_dir: the index directory.

    Returns:
        The manifest dict.

    Raises:
        IndexFormatError: not an index, unreadable, or written by a newer format version.
    """
    d = Path(index_dir)
    p = d / MANIFEST
    if not d.is_dir():
        raise IndexFormatError(f"{d}: no such index directory (build one with `hanet index build`)")
    if not p.is_file():
        raise IndexFormatError(f"{d}: not a hanet index (no {MANIFEST}; build one with `hanet index build`)")
    try:
        m = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{p}: unreadable manifest ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != INDEX_FORMAT:
        raise IndexFormatError(f"{p}: not a hanet index manifest")
    if int(m.get("version", 0)) != INDEX_VERSION:
        raise IndexFormatError(f"{p}: index format v{m.get('version')} but this hanet reads v{INDEX_VERSION}; "
                               f"rebuild the index with this version (`hanet index build`)")
    return m


def write_manifest(index_dir: Path, manifest: dict[str, Any]) -> None:
    """Commit a manifest (the atomic step of every index change)."""
    atomic_write_text(Path(index_dir) / MANIFEST, json.dumps(manifest, indent=1) + "\n")


# ---------------------------------------------------------------------- file integrity
#: bytes read from each end of a file when an index is opened (the whole file: ``index verify``)
SAMPLE_BYTES = 64 << 10

#: the files of a segment the manifest records (thumbnails are checked when served)
SEGMENT_FILES = ("records.npy", "ids.json", "meta.jsonl")


def _sample_digest(path: Path, size: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(SAMPLE_BYTES))
        if size > SAMPLE_BYTES:
            f.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
            h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()


def _full_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    """What the manifest records of a committed file: its size, a digest of its ends (checked at
    every open) and its SHA-256 (checked by ``hanet index verify``)."""
    size = path.stat().st_size
    return {"size": size, "sample": _sample_digest(path, size), "sha256": _full_digest(path)}


def recorded_files(manifest: dict[str, Any]) -> list[str]:
    """The files (relative paths) a manifest binds to itself."""
    out = [MODEL_FILE, VOCAB_FILE] + ([CONCEPTS_FILE] if manifest.get("concepts") else [])
    for part in PARTS:
        info = manifest.get(part) or {}
        out += [f"segments/{s['name']}/{f}" for s in info.get("segments", []) for f in SEGMENT_FILES]
        if info.get("tombstones"):
            out.append(info["tombstones"])
        out += sorted((info.get("faiss") or {}).values())
    return out


def record_files(index_dir: Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``files`` entry of a manifest about to be committed: earlier records kept, new files recorded."""
    old = manifest.get("files") or {}
    return {rel: old[rel] if rel in old else file_record(Path(index_dir) / rel) for rel in recorded_files(manifest)}


def file_problems(index_dir: str | os.PathLike, manifest: dict[str, Any], full: bool = False) -> dict[str, str]:
    """Files of the index that are not those its manifest recorded at commit, path -> why:
    missing, another size, other ends (at open; ``full``: other bytes anywhere). Empty for an
    index that records none."""
    d = Path(index_dir)
    recorded = manifest.get("files")
    if not recorded:
        return {}
    out = {}
    for rel in recorded_files(manifest):
        rec, p = recorded.get(rel), d / rel
        if rec is None:
            out[str(p)] = "not recorded in the manifest"
            continue
        try:
            size = p.stat().st_size
            if size != rec["size"]:
                out[str(p)] = f"{size:,} bytes, the manifest recorded {rec['size']:,} (truncated, or another index's file)"
            elif _sample_digest(p, size) != rec["sample"] or (full and _full_digest(p) != rec["sha256"]):
                out[str(p)] = "its content is not what the manifest recorded (another index's file, or damaged)"
        except OSError as exc:
            out[str(p)] = f"missing or unreadable ({exc.strerror or exc})"
    return out


def check_files(index_dir: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Raise IndexFormatError naming every file that is not the index's own (the cheap checks)."""
    problems = file_problems(index_dir, manifest)
    if problems:
        raise IndexFormatError(f"{index_dir}: {len(problems)} file(s) do not belong to this index: "
                               + "; ".join(f"{p}: {why}" for p, why in problems.items()) + " (`hanet index verify` checks every byte and says "
                               "which videos the damaged files hold)")


# ---------------------------------------------------------------------- lock
class IndexLock:
    """The writer lock of an index (an exclusive ``flock`` on ``INDEX_DIR/.lock``).

    Args:
        index_dir: the index directory (created if absent).

    Raises:
        HanetError: another writer holds the lock.
    """

    def __init__(self, index_dir: str | os.PathLike) -> None:
        d = ensure_dir(index_dir, "index folder")
        try:
            self._f = open(d / ".lock", "w")
        except OSError as exc:
            raise write_failure(d / ".lock", exc) from None
        try:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._f.close()
            raise HanetError(f"{d}: another `hanet index` command is writing this index (lock held)") from None

    def release(self) -> None:
        if not self._f.closed:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
            self._f.close()

    def __enter__(self) -> "IndexLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


# ---------------------------------------------------------------------- segments
def record_dtype(shapes: dict[str, tuple[tuple[int, ...], str]]) -> np.dtype:
    """The structured dtype of one stored row, fields naturally aligned.

    Args:
        shapes: from :func:`field_shapes`.
    """
    return np.dtype([(f, dt, shape) for f, (shape, dt) in shapes.items()], align=True)


class Segment:
    """One immutable segment: ``records.npy``, one structured row per video (or caption).

    :meth:`array` memory-maps it. :meth:`read` fetches rows with
    ``pread`` instead (what search uses): on current kernels, touching scattered rows of a
    memory map maps whole page-cache folios around each of them, so the resident set of a
    process that reads a few megabytes per query grows towards the size of the index; a
    positional read copies only the rows, straight from the page cache. :meth:`mapped` is the
    exception: the compiled kernel multiplies frames in place there, and the pages it touched
    are unmapped again (:meth:`drop_mapped_pages`, :meth:`Collection.release_mapped`).

    Args:
        path: the segment folder.
        kind: ``videos`` or ``captions``.
        count: rows, as the manifest records them.
    """

    def __init__(self, path: Path, kind: str, count: int) -> None:
        self.path = Path(path)
        self.kind = kind
        self.count = int(count)
        self._arrays: dict[str, np.ndarray] = {}
        self._meta: Optional[list[dict[str, Any]]] = None
        self._fd: Optional[int] = None
        self._dtype: Optional[np.dtype] = None
        self._offset = 0
        self._map: Optional[mmap.mmap] = None
        self._mapped: Optional[np.ndarray] = None
        self._map_lock = threading.Lock()

    def _load(self, file: str) -> np.ndarray:
        a = self._arrays.get(file)
        if a is None:
            p = self.path / f"{file}.npy"
            try:
                a = np.load(p, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise IndexFormatError(f"{p}: missing or unreadable index array ({exc})") from None
            if a.shape[0] != self.count:
                raise IndexFormatError(f"{p}: has {a.shape[0]} rows, the manifest says {self.count}")
            self._arrays[file] = a
        return a

    def array(self, name: str) -> np.ndarray:
        """(count, ...) a stored field, memory-mapped (a view into ``records.npy``)."""
        return self._load("records")[name]

    @property
    def dtype(self) -> np.dtype:
        if self._dtype is None:
            self._open_records()
        return self._dtype

    def _open_records(self) -> int:
        if self._fd is None:
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
            self._fd = os.open(p, os.O_RDONLY)
        return self._fd

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows of ``records.npy`` by positional reads (one per run of consecutive rows).

        Args:
            rows: (n,) local rows, ascending.

        Returns:
            (n,) structured array (a private copy).
        """
        fd = self._open_records()
        dt = self._dtype
        out = np.empty(len(rows), dtype=dt)
        if not len(rows):
            return out
        buf = memoryview(out.view(np.uint8).reshape(-1))
        size = dt.itemsize
        rows = np.asarray(rows, dtype=np.int64)
        starts = np.flatnonzero(np.diff(rows, prepend=rows[0] - 2) != 1)
        ends = np.append(starts[1:], len(rows))
        for s, e in zip(starts.tolist(), ends.tolist()):
            self._read_exactly(fd, buf[s * size:e * size], self._offset + int(rows[s]) * size, int(rows[s]))
        return out

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

    def mapped(self) -> np.ndarray:
        """(count,) the records as a read-only memory map, for the second stage's kernel
        (:meth:`Collection.mapped_groups`), which reads only the fields it multiplies, in place.

        The file's size is checked against the rows first: a truncated file is an
        :class:`IndexFormatError` here, not a bus error at the first row it lacks. (A file
        truncated while mapped still would be one; segments are never rewritten in place.)
        """
        if self._mapped is None:
            with self._map_lock:
                if self._mapped is None:
                    fd = self._open_records()
                    p = self.path / "records.npy"
                    need = self._offset + self.count * self._dtype.itemsize
                    size = os.fstat(fd).st_size
                    if size < need:
                        raise IndexFormatError(f"{p}: {size} bytes, but {self.count} rows of "
                                               f"{self._dtype.itemsize} need {need}: the file is truncated")
                    try:
                        mm = mmap.mmap(fd, need, access=mmap.ACCESS_READ)
                    except (OSError, ValueError) as exc:
                        raise IndexFormatError(f"{p}: cannot be mapped ({exc})") from None
                    self._map = mm
                    self._mapped = np.frombuffer(mm, dtype=self._dtype, count=self.count, offset=self._offset)
        return self._mapped

    def will_need(self, rows: np.ndarray) -> None:
        """Ask the kernel to bring the records of ``rows`` (local, ascending) into the page cache
        now, all at once (``posix_fadvise(WILLNEED)``, one call per record): a mapped page the
        cache lacks is otherwise read when first touched, one fault at a time, where a
        positional read fetches a whole record in one request. Cheap when they are cached."""
        advise = getattr(os, "posix_fadvise", None)
        if advise is None:
            return
        fd = self._open_records()
        size = self._dtype.itemsize
        for r in np.asarray(rows, dtype=np.int64).tolist():
            try:
                advise(fd, self._offset + r * size, size, os.POSIX_FADV_WILLNEED)
            except OSError:
                return  # advice only

    def drop_mapped_pages(self) -> None:
        """Unmap the pages of :meth:`mapped` touched so far (they stay in the page cache), so
        that they leave this process's resident set; the next read maps them again."""
        mm = self._map
        if mm is not None:
            try:
                mm.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError, AttributeError):  # closed meanwhile, or no madvise here
                pass

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._map is not None:
            self._mapped = None
            try:
                self._map.close()
            except BufferError:  # a view of it is still held somewhere: closed when that goes
                pass
            self._map = None

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
        self._map_lock = threading.Lock()
        self._map_touched = 0
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
        """The records of rows, one positional read per run of consecutive rows, segment by segment.

        Args:
            rows: (n,) global rows, any order.
            max_bytes: records per group at most (default :data:`~hanet.index.memory.READ_BYTES`).

        Yields:
            (positions in ``rows`` (m,) int64, their records (m,) structured array, a private copy),
            at most :data:`~hanet.index.memory.READ_BYTES` of records at a time.
        """
        for segment, group, local in self._by_segment(rows):
            # reads of a few MiB at a time: the memory a read holds stays bounded (memory.py)
            step = max(1, min(READ_BYTES, max_bytes or READ_BYTES) // max(segment.dtype.itemsize, 1))
            for s in range(0, len(group), step):
                yield group[s:s + step], segment.read(local[s:s + step])

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

    def mapped_groups(self, rows: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The rows segment by segment, as positions into memory-mapped records (nothing read yet).

        What the caller touches counts towards :data:`MAP_DROP_BYTES`; :meth:`release_mapped`
        afterwards keeps the resident set bounded.

        Args:
            rows: (n,) global rows, any order.

        Yields:
            (positions in ``rows`` (m,) int64, the segment's records (count,) mapped, the rows
            within them (m,) int64 ascending).
        """
        groups = self._by_segment(rows)
        for segment, _, local in groups:  # every group's reads asked for before the first is touched
            segment.will_need(local)
        for segment, group, local in groups:
            yield group, segment.mapped(), local

    def release_mapped(self, rows: int) -> None:
        """Count ``rows`` records of :meth:`mapped_groups` touched, each with the most a fault maps
        around it (:data:`~hanet.index.memory.MAP_FOLIO_BYTES`); past :data:`MAP_DROP_BYTES` since
        the last drop, unmap the touched pages of every segment (one call each)."""
        if not self.segments:
            return
        touched = int(rows) * (self.segments[0].dtype.itemsize + MAP_FOLIO_BYTES)
        with self._map_lock:
            self._map_touched += touched
            if self._map_touched < MAP_DROP_BYTES:
                return
            self._map_touched = 0
        for s in self.segments:
            s.drop_mapped_pages()

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


def referenced_paths(manifest: dict[str, Any]) -> set[str]:
    """Paths (relative to the index directory) that a manifest uses."""
    out = {MANIFEST, MODEL_FILE, VOCAB_FILE, CONCEPTS_FILE, ".lock"}
    for part in PARTS:
        info = manifest.get(part) or {}
        out |= {f"segments/{s['name']}" for s in info.get("segments", [])}
        if info.get("tombstones"):
            out.add(info["tombstones"])
        out |= set((info.get("faiss") or {}).values())
    return out


def collect_garbage(index_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Remove what a manifest does not reference (leftovers of crashed or superseded writes).

    Only the writer holding the lock calls this.

    Returns:
        The removed paths, relative to the index directory.
    """
    keep = referenced_paths(manifest)
    removed = []
    for sub in ("segments", "faiss", "tombstones"):
        folder = Path(index_dir) / sub
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            rel = f"{sub}/{p.name}"
            if rel in keep:
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(rel)
    for p in Path(index_dir).iterdir():
        if p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


__all__ = ["file_problems", "check_files", "record_files", "recorded_files", "INDEX_FORMAT", "INDEX_VERSION", "MANIFEST", "MODEL_FILE", "VOCAB_FILE", "CONCEPTS_FILE",
           "VIDEO_FLOAT_FIELDS", "VIDEO_INT_FIELDS", "MOMENT_FIELDS", "TEXT_FLOAT_FIELDS", "TEXT_INT_FIELDS", "PARTS",
           "FRAME_FIELDS", "FRAME_DTYPES", "IndexFormatError", "field_shapes", "record_dtype", "model_fingerprint", "read_manifest", "write_manifest", "IndexLock",
           "Segment", "Collection", "SegmentWriter", "collect_garbage", "referenced_paths"]
