"""An index's manifest (the commit point), the files it binds to itself, and the writer lock.

Every file an index reads is recorded in ``manifest.json`` at commit (size, a digest of its
ends, SHA-256): opening checks sizes and ends, ``hanet index verify`` every byte.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from hanet.errors import HanetError
from hanet.index.storage.layout import (CONCEPTS_FILE, INDEX_FORMAT, INDEX_VERSION, MANIFEST, MODEL_FILE, PARTS,
                                        VOCAB_FILE, IndexFormatError)
from hanet.index.tuning import SAMPLE_BYTES
from hanet.io import atomic_write_text, ensure_dir, write_failure


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


def read_index_json(path: Path) -> Any:
    """One of an index's JSON files (``vocab.json``, ``concepts.json``), or an
    :class:`IndexFormatError` naming it."""
    from hanet.data.formats import load_json
    from hanet.errors import DataError

    try:
        return load_json(path, "index")
    except DataError as exc:
        raise IndexFormatError(str(exc)) from None


def write_manifest(index_dir: Path, manifest: dict[str, Any]) -> None:
    """Commit a manifest (the atomic step of every index change)."""
    atomic_write_text(Path(index_dir) / MANIFEST, json.dumps(manifest, indent=1) + "\n")


# ---------------------------------------------------------------------- file integrity
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


__all__ = ["read_manifest", "read_index_json", "write_manifest", "SEGMENT_FILES", "file_record", "recorded_files", "record_files",
           "file_problems", "check_files", "IndexLock", "referenced_paths", "collect_garbage"]
