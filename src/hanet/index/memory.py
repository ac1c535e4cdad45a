"""Keep the memory a search frees for the next search, instead of handing it back to the kernel.

A query at MSR-VTT's sizes allocates tens of MiB (its candidates' records, their float32 copies)
and frees them when it returns. glibc's malloc serves a request above its *mmap threshold* with
fresh pages from the kernel and gives the heap's free top back once it passes the *trim
threshold*; both thresholds start at 128 KiB and the mmap one only grows with the largest block
freed so far. So a query slightly larger than the one before gets fresh pages, and every fresh
page is a fault the kernel must zero-fill. Measured on the project's machine, 100 queries at
100k videos and MSR-VTT's dimensions (200 candidates, pre-encoded): 2,330 minor faults per query
and 48 ms, against 0.7 faults and 36.5 ms with the settings below (same process, same queries).

:func:`keep_freed_memory` raises the mmap threshold to glibc's maximum on 64-bit systems (32 MiB,
so every block a query allocates comes from the heap; :data:`READ_BYTES` keeps record reads below
it) and the trim threshold to :data:`TRIM_BYTES`: a searching process keeps up to that much freed
heap for the next query, so its resident memory stays near its largest query's working set
rather than falling back between queries. It is process-wide (the allocator is), applied once,
when an index is opened for search; set ``HANET_MALLOC=system`` to leave the allocator alone.
Other C libraries (musl, macOS) are left as they are.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import threading
from typing import Optional

#: glibc's ``M_TRIM_THRESHOLD`` and ``M_MMAP_THRESHOLD`` (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

#: the largest mmap threshold glibc accepts on 64-bit systems (HEAP_MAX_SIZE / 2)
MMAP_BYTES = 32 << 20

#: freed heap kept for reuse
TRIM_BYTES = 512 << 20

#: record reads are split so that no one array passes this (below :data:`MMAP_BYTES`)
READ_BYTES = 16 << 20

#: pages of memory-mapped records (:meth:`hanet.index.store.Collection.mapped_groups`) a
#: process may touch before it unmaps them again: its resident set grows by at most about
#: this much for them, whatever the collection's size (the pages stay in the page cache)
MAP_DROP_BYTES = 256 << 20

#: what :meth:`~hanet.index.store.Collection.release_mapped` counts a touched record as mapping
#: beyond its own bytes: the page-cache folio around the fault, up to 64 KiB each side (the
#: measured check of :func:`file_resident_bytes` covers kernels that map more)
MAP_FOLIO_BYTES = 128 << 10


def file_resident_bytes() -> Optional[int]:
    """This process's resident file-backed pages (``/proc/self/statm``'s third field, in bytes),
    or None where there is no such file.

    Why measured and not only counted: how much a fault maps is the kernel's choice. With large
    page-cache folios (ext4 on Linux 6.18, seen here) touching one 170 KiB MSR-VTT record mapped
    about 1.2 MiB, so a bound counted from the records touched let the resident set grow four
    times past :data:`MAP_DROP_BYTES` before the pages were dropped.
    """
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[2]) * mmap.PAGESIZE
    except (OSError, IndexError, ValueError):
        return None


_lock = threading.Lock()
_state: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Apply the settings above once per process.

    Returns:
        Whether they are in effect (False: not glibc, refused, or ``HANET_MALLOC=system``).
    """
    with _lock:
        if "applied" not in _state:
            _state["applied"] = _apply()
        return _state["applied"]


def _apply() -> bool:
    if os.environ.get("HANET_MALLOC", "").strip().lower() == "system":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES))
