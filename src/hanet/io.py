"""Durable file writes: a file is replaced whole or not at all, and a failed write says why.

Every writer goes through :func:`atomic_write`: write a temporary file in the same folder,
fsync it, rename it over the target, fsync the folder. A crash at any point leaves either the
old file or the new one, never a truncated mix. New files get the mode the umask gives (as
every other tool's files do); a replaced file keeps its mode.

Every folder a command writes into is made by :func:`ensure_dir`. Both raise
:class:`WriteError` (a :class:`~hanet.errors.HanetError`: the command line prints it and exits
with status 2) naming the path and the problem: a path that is a file where a folder is needed
(or the reverse), a read-only or full disk, no permission.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable

from hanet.errors import HanetError


class WriteError(HanetError, OSError):
    """A file or folder could not be written; the message names it and says why."""


# A write that fails with less free space than this on its disk is reported as "disk full"
# even when the library that wrote did not say so (torch, FAISS and HDF5 word it their own way).
_NEARLY_FULL_BYTES = 1 << 20


def _umask() -> int:
    mask = os.umask(0o022)  # read it (there is no other way), then put it back
    os.umask(mask)
    return mask


def os_error_reason(exc: BaseException) -> str:
    """A short reason for an OSError (``"no space left on device"``, ``"read-only file system"``...)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        names = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
                 errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                 errno.EDQUOT: "disk quota exceeded", errno.ENOTDIR: "a path component is a file, not a folder",
                 errno.EISDIR: "is a folder, not a file", errno.EEXIST: "already exists"}
        return names.get(exc.errno, exc.strerror or str(exc))
    return str(exc) or type(exc).__name__


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def _blocking_file(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is not a folder, if any."""
    for p in [path, *path.parents]:
        if p.exists() or p.is_symlink():
            return None if p.is_dir() else p
    return None


def ensure_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Make a folder (and its parents) that a command will write into.

    Args:
        path: the folder.
        what: what it is, for the message.

    Returns:
        The folder.

    Raises:
        WriteError: the path (or a parent) is a file, or the folder cannot be made or written.
    """
    p = Path(path)
    blocker = _blocking_file(p)
    if blocker is not None:
        where = "is a file" if blocker == p else f"cannot be made: {blocker} is a file"
        raise WriteError(f"{p}: {where}, not a folder (needed as the {what}); choose another path")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"{p}: cannot make the {what} ({os_error_reason(exc)})") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise WriteError(f"{p}: the {what} is not writable ({_why_not_writable(p)})")
    return p


def _why_not_writable(p: Path) -> str:
    try:
        if os.statvfs(p).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except (OSError, AttributeError):
        pass
    return "permission denied"


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Fail early, before a long job, if ``path`` cannot be written as a file later.

    Makes the file's folder (as :func:`ensure_dir`); writes nothing else.

    Raises:
        WriteError: ``path`` is a folder, or its folder cannot be made or written.
    """
    p = Path(path)
    if p.is_dir():
        raise WriteError(f"{p}: is a folder, not a file (needed as the {what}); choose another path")
    ensure_dir(p.parent, f"folder of the {what}")
    if p.exists() and not os.access(p, os.W_OK):
        raise WriteError(f"{p}: the {what} is not writable ({_why_not_writable(p)})")
    return p


def write_failure(path: str | os.PathLike, exc: BaseException, what: str = "write") -> WriteError:
    """A :class:`WriteError` for a failed write of ``path`` (disk full detected even when the
    library that failed did not say so)."""
    path = Path(path)
    if isinstance(exc, WriteError):
        return exc
    reason = os_error_reason(exc)
    folder = path.parent if path.parent.exists() else Path(".")
    if not (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) and _nearly_full(folder):
        reason = f"no space left on device ({reason})"
    elif not isinstance(exc, OSError):
        reason = f"{type(exc).__name__}: {reason}"
    return WriteError(f"{path}: cannot {what} ({reason})")


def fsync_dir(path: str | os.PathLike) -> None:
    """Make renames inside ``path`` durable (no-op where a folder cannot be fsynced)."""
    try:
        fd = os.open(os.fspath(path) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Replace ``path`` with what ``write(tmp_path)`` writes, atomically and durably.

    Args:
        path: the target file.
        write: writes the whole content to the temporary path it is given.

    Raises:
        WriteError: the target is a folder, its folder cannot be made, or the write failed
            (disk full, read-only, no permission); the old file, if any, is untouched.
        HanetError: whatever ``write`` raises as such (bad data found while writing).
    """
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"{path}: is a folder; a file is to be written there, choose another path")
    ensure_dir(path.parent, "folder")
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise write_failure(path, exc) from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, mode)  # mkstemp makes 0600
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) or (isinstance(exc, HanetError)
                                                                 and not isinstance(exc, WriteError)):
            raise
        if isinstance(exc, Exception):
            raise write_failure(path, exc) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    import torch

    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_save_npy(path: str | os.PathLike, array: Any) -> None:
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)

    atomic_write(path, write)


def commit_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move a fully written folder into place, durably: its files and subfolders fsynced, then
    one rename (a folder appears whole or not at all), then its parent fsynced.

    Raises:
        WriteError: a write or the rename failed (the temporary folder is left for the caller).
    """
    tmp, final = Path(tmp), Path(final)
    try:
        for p in sorted(tmp.rglob("*"), key=lambda q: -len(q.parts)):  # files before their folders
            if p.is_file():
                fsync_file(p)
            else:
                fsync_dir(p)
        fsync_dir(tmp)
        os.replace(tmp, final)
    except OSError as exc:
        raise write_failure(final, exc) from None
    fsync_dir(final.parent)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log file, flushed; WriteError if it cannot be written."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line.rstrip("\n") + "\n")
    except OSError as exc:
        raise write_failure(path, exc, "append to") from None


def safe_torch_load(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load`` that never runs code from the file (``weights_only``): tensors, containers,
    numbers and strings, plus numpy arrays and dtypes (random-generator states of checkpoints
    written by hanet 0.1).

    Raises:
        HanetError: missing, unreadable, or holding anything else (which could run code).
    """
    import numpy as np
    import torch

    p = Path(path)
    if not p.is_file():
        raise HanetError(f"{p}: {what} not found" + (" (it is a folder)" if p.is_dir() else ""))
    # the globals numpy arrays unpickle through; they build arrays, they cannot run code
    allowed = [np.dtype, np.ndarray, getattr(np, "_core", np.core).multiarray._reconstruct, type(np.dtype(np.uint32))]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad or unsafe file
        first = str(exc).strip().splitlines()
        why = next((line.strip() for line in first if "Unsupported global" in line), first[0] if first else "")
        raise HanetError(f"{p}: unreadable {what}, or one holding objects that loading would have to run code "
                         f"for ({why[:300]})") from None


__all__ = ["WriteError", "safe_torch_load", "ensure_dir", "check_output_file", "write_failure", "os_error_reason", "fsync_dir", "fsync_file", "atomic_write",
           "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "atomic_save_npy",
           "commit_dir", "append_line"]
