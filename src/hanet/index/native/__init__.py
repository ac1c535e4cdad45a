"""The second stage's one compiled kernel: stored frame vectors times a query's phrases.

A search multiplies each candidate's frame and clip vectors, as the records hold them (float16,
or int8 with a scale per vector), by its query's few phrases (:func:`hanet.index.rerank.read_fields`).
Through torch that is, per group of records read and per field, a float16 -> float32 copy, a
small matrix product and a scatter; with 1-10 phrases the calls' overheads and the float32 copy
cost more than the arithmetic (measured: about 20 of a query's 30 ms reading and multiplying 200
candidates at MSR-VTT's sizes). ``dots.c`` does it in one pass per field, converting in registers.

The kernel is optional. It is compiled when hanet is installed (``setup.py``: the system's C
compiler builds ``_dots*.so`` beside this file) and loaded with ctypes; nothing is compiled or
written when hanet runs. Where it was not built (no compiler at install time, not x86-64), on a
CPU without AVX2, FMA and F16C, or with ``HANET_NATIVE=0``, the same products come from torch,
and :func:`status` says why. Both give the values of :func:`hanet.index.storage.values.stored_values`
multiplied in float32; only the order of the additions differs (last bits).
"""

from __future__ import annotations

import ctypes
import os
import importlib.machinery
import platform
import threading
from pathlib import Path
from typing import Optional

import numpy as np
import torch

SOURCE = Path(__file__).with_name("dots.c")
#: what ``hanet_dots_abi()`` of a library built from :data:`SOURCE` returns
ABI = 3
#: vectors per record and field the kernel takes (``HANET_MAX_F`` in the source)
MAX_VECTORS = 4096

_lock = threading.Lock()
_state: dict[str, object] = {}  # "lib": the loaded library or None; "why": the reason it is None


class _Field(ctypes.Structure):
    _fields_ = [("offset", ctypes.c_int64), ("scale_offset", ctypes.c_int64), ("is_int8", ctypes.c_int64),
                ("F", ctypes.c_int64), ("d", ctypes.c_int64), ("k", ctypes.c_int64), ("n", ctypes.c_int64),
                ("P", ctypes.c_void_p), ("out", ctypes.c_void_p)]


def _enabled() -> Optional[str]:
    """None when the kernel may be used, else why not."""
    if os.environ.get("HANET_NATIVE", "1").strip().lower() in ("0", "off", "no", "false", "torch"):
        return "turned off (HANET_NATIVE=0)"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"no kernel for {platform.machine()} (x86-64 only)"
    return None


def built_library() -> Optional[Path]:
    """The kernel the install built beside this file, or None."""
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        p = here / f"_dots{suffix}"
        if p.is_file():
            return p
    return None


def _open(lib_path: Path) -> Optional[ctypes.CDLL]:
    """The library at lib_path if it loads and is what :data:`SOURCE` builds, else None."""
    try:
        lib = ctypes.CDLL(str(lib_path))
        return lib if lib.hanet_dots_abi() == ABI else None
    except (OSError, AttributeError):  # not a library, or one without the kernel's symbols
        return None


def _load() -> tuple[Optional[ctypes.CDLL], str]:
    why = _enabled()
    if why:
        return None, why
    lib_path = built_library()
    if lib_path is None:
        return None, "the kernel was not built when hanet was installed (no C compiler then); reinstall with one"
    lib = _open(lib_path)
    if lib is None:
        return None, f"{lib_path}: not the kernel of this hanet (reinstall hanet)"
    if not lib.hanet_dots_supported():
        return None, "this CPU lacks AVX2, FMA or F16C"
    lib.hanet_group_dots.restype = ctypes.c_int
    lib.hanet_group_dots.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                                     ctypes.POINTER(_Field), ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]
    _state["path"] = lib_path
    return lib, "native"


def library() -> Optional[ctypes.CDLL]:
    """The kernel built at install, loaded on first use; None when torch does the products."""
    if "lib" not in _state:
        with _lock:
            if "lib" not in _state:
                lib, why = _load()
                _state["why"] = why
                _state["lib"] = lib
    return _state["lib"]  # type: ignore[return-value]


def status() -> str:
    """How the phrase products are computed here, in words (for ``hanet index info`` and benchmarks)."""
    lib = library()
    if lib is not None:
        return f"native kernel ({_state['path']})"
    return f"torch ({_state['why']})"


def reset() -> None:
    """Forget the loaded kernel, so the next use reads ``HANET_NATIVE`` again."""
    with _lock:
        _state.clear()


class DotsPlan:
    """The products of some fields of a group of records after another, by the kernel.

    Built once per read (the fields, their phrases and outputs), then :meth:`run` once per
    group of records: one call into the kernel per group, whatever the number of fields.

    Args:
        lib: the kernel (:func:`library`).
        dtype: the records' structured dtype.
        fields: field name -> ((k, d) float32 contiguous phrases, (n, F, k) float32 contiguous
            output); float16 fields, or int8 ones with a float16 ``<name>_scale`` field.
    """

    def __init__(self, lib: ctypes.CDLL, dtype: np.dtype, fields: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.lib, self.dtype = lib, dtype
        self._keep = fields  # the tensors the pointers point into live as long as the plan
        specs = []
        for name, (phrases, out) in fields.items():
            base, offset = dtype.fields[name][:2]
            F, d = base.shape
            int8 = base.base == np.int8
            scale_offset = dtype.fields[name + "_scale"][1] if int8 else 0
            specs.append(_Field(offset, scale_offset, int(int8), F, d, phrases.shape[0], out.shape[0],
                                phrases.data_ptr(), out.data_ptr()))
        self._fields = (_Field * len(specs))(*specs)
        self._n = len(specs)

    @classmethod
    def make(cls, dtype: np.dtype, fields: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> Optional["DotsPlan"]:
        """A plan, or None when the kernel does not run here or does not take these fields."""
        lib = library()
        if lib is None or not fields:
            return None
        for name, (phrases, out) in fields.items():
            if name not in (dtype.fields or {}):
                return None
            base = dtype.fields[name][0]
            if len(base.shape) != 2 or base.base not in (np.float16, np.int8) or base.shape[0] > MAX_VECTORS:
                return None
            if base.base == np.int8 and dtype.fields.get(name + "_scale", (np.dtype(np.int8),))[0] \
                    != np.dtype((np.float16, base.shape[:1])):
                return None
            F, d = base.shape
            k = phrases.shape[0]
            if phrases.dtype != torch.float32 or not phrases.is_contiguous() or tuple(phrases.shape) != (k, d) \
                    or out.dtype != torch.float32 or not out.is_contiguous() or tuple(out.shape[1:]) != (F, k):
                return None
        return cls(lib, dtype, fields)

    def run(self, recs: np.ndarray, pos: np.ndarray, rows: Optional[np.ndarray] = None) -> None:
        """``out[pos[i], f, j] = <record i's field, vector f, phrases[j]>`` for every field of the plan.

        Args:
            recs: records of the plan's dtype: (m,) read, or with ``rows`` all the records of
                a segment (a read-only memory map: only the rows asked for are touched).
            pos: (m,) int64 their rows in the outputs.
            rows: (m,) int64 the records of ``recs`` to use, or None for all of them in order.
        """
        m = len(pos) if rows is None else len(rows)
        if recs.dtype != self.dtype or recs.ndim != 1 or len(pos) != m or (rows is None and len(recs) != m):
            raise ValueError(f"records {recs.dtype} ({recs.shape}) and {len(pos)} positions do not fit this plan")
        if not m:
            return
        pos = np.ascontiguousarray(pos, dtype=np.int64)
        if rows is not None:
            rows = np.ascontiguousarray(rows, dtype=np.int64)
        stride = recs.strides[0] if len(recs) > 1 else recs.dtype.itemsize
        rc = self.lib.hanet_group_dots(recs.ctypes.data, m, stride, pos.ctypes.data, self._fields, self._n,
                                       None if rows is None else rows.ctypes.data, len(recs))
        if rc == -1:
            raise IndexError(f"positions {int(pos.min())}..{int(pos.max())} outside the outputs' rows")
        if rc == -3:
            raise IndexError(f"rows {int(rows.min())}..{int(rows.max())} outside the {len(recs)} records")
        if rc != 0:
            raise ValueError(f"the kernel refused these fields (code {rc})")


__all__ = ["SOURCE", "ABI", "MAX_VECTORS", "library", "built_library", "status", "reset", "DotsPlan"]
