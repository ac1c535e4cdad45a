"""The compiled phrase-product kernel (hanet.index.native): its values, its refusals, that it is
built at install and nothing is compiled at run time, and how search does without it."""

from __future__ import annotations

import ctypes.util
import platform
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hanet.index import native
from hanet.index.rerank import _dots_into
from hanet.index.storage.values import stored_values

HAS_KERNEL_HERE = platform.machine().lower() in ("x86_64", "amd64") and bool(shutil.which("cc") or shutil.which("gcc")) \
    and all(f in open("/proc/cpuinfo").read().split() for f in ("avx2", "fma", "f16c"))


@pytest.fixture
def fresh(monkeypatch, tmp_path, request):
    """The loaded kernel forgotten before and after; a home folder of this test's own."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / ".cache"))
    monkeypatch.delenv("HANET_NATIVE", raising=False)
    native.reset()
    request.addfinalizer(native.reset)
    return tmp_path / "home"


def records(m: int, F: int, d: int, rng) -> np.ndarray:
    """m records holding a float16 field and an int8 field with its scales, between other bytes
    (so that neither field starts at the record's start or at an aligned offset)."""
    dt = np.dtype([("head", np.uint8, (3,)), ("h", np.float16, (F, d)), ("mid", np.int32, (2,)),
                   ("q", np.int8, (F, d)), ("q_scale", np.float16, (F,)), ("tail", np.uint8, (5,))])
    recs = np.zeros(m, dt)
    recs["h"] = rng.standard_normal((m, F, d)) * 3
    x = rng.standard_normal((m, F, d)).astype(np.float32)
    scale = (np.abs(x).max(-1) / 127).astype(np.float16)
    recs["q"] = np.clip(np.rint(x / scale.astype(np.float32)[..., None]), -127, 127)
    recs["q_scale"] = scale
    return recs


def test_the_kernel_builds_here():
    """This project's machines have a C compiler and AVX2/FMA/F16C: the search must not quietly
    run on the slower torch path there."""
    if not HAS_KERNEL_HERE:
        pytest.skip(f"no kernel on this machine: {native.status()}")
    assert native.library() is not None, native.status()
    assert native.status().startswith("native kernel")


@pytest.mark.parametrize("F,d", [(20, 1024), (7, 37), (1, 8), (3, 5)])
def test_kernel_products_are_the_stored_values_times_the_phrases(fresh, F, d):
    """float16 and int8 fields of records read at any positions, 0-9 phrases (more than the
    kernel's block of four), dims that are no multiple of its width: the float64 products of
    stored_values to float32 rounding, and the same as torch's path."""
    if not HAS_KERNEL_HERE:
        pytest.skip(f"no kernel on this machine: {native.status()}")
    rng = np.random.default_rng(F * 1000 + d)
    m, n = 6, 9
    recs = records(m, F, d, rng)
    pos = rng.permutation(n)[:m].astype(np.int64)
    for k in (1, 2, 3, 4, 5, 9, 0):
        phrases = torch.from_numpy(rng.standard_normal((k, d)).astype(np.float32))
        outs = {f: torch.full((n, F, k), -7.0) for f in ("h", "q")}
        plan = native.DotsPlan.make(recs.dtype, {f: (phrases, outs[f]) for f in outs})
        assert plan is not None
        plan.run(recs, pos)
        for f in ("h", "q"):
            values = stored_values({"v": recs[f], "v_scale": recs["q_scale"]}, "v").astype(np.float64)
            want = values @ phrases.numpy().astype(np.float64).T  # (m, F, k)
            got = outs[f].numpy()
            tol = 1e-5 * (np.abs(values) @ np.abs(phrases.numpy().astype(np.float64)).T) + 1e-6
            assert np.all(np.abs(got[pos] - want) <= tol), (f, k)
            untouched = np.setdiff1d(np.arange(n), pos)
            assert np.all(got[untouched] == -7.0), (f, k)  # rows not in the group are left alone
            by_torch = torch.full((n, F, k), -7.0)
            _dots_into(by_torch, pos, torch.from_numpy(np.ascontiguousarray(recs[f])),  # torch needs aligned views
                       torch.from_numpy(np.ascontiguousarray(recs["q_scale"])) if f == "q" else None, phrases, {})
            np.testing.assert_allclose(got, by_torch.numpy(), rtol=1e-5, atol=1e-5 * np.abs(want).max(initial=0) + 1e-6)


def test_a_plan_refuses_what_would_read_or_write_out_of_bounds(fresh):
    if not HAS_KERNEL_HERE:
        pytest.skip(f"no kernel on this machine: {native.status()}")
    rng = np.random.default_rng(0)
    recs = records(3, 4, 16, rng)
    phrases = torch.ones(2, 16)
    out = torch.zeros(3, 4, 2)
    plan = native.DotsPlan.make(recs.dtype, {"h": (phrases, out)})
    with pytest.raises(IndexError, match="outside"):
        plan.run(recs, np.array([0, 1, 3]))  # row 3 of 3
    with pytest.raises(IndexError, match="outside"):
        plan.run(recs, np.array([0, -1, 2]))
    assert torch.count_nonzero(out) == 0  # nothing written before the check
    with pytest.raises(ValueError, match="do not fit"):
        plan.run(records(3, 5, 16, rng), np.arange(3))  # records of another layout
    with pytest.raises(ValueError, match="do not fit"):
        plan.run(recs, np.arange(2))
    with pytest.raises(IndexError, match="outside the 3 records"):
        plan.run(recs, np.arange(2), rows=np.array([0, 3]))  # a segment's rows, past its end
    assert torch.count_nonzero(out) == 0
    # layouts the kernel does not take: the caller is told to compute them itself
    assert native.DotsPlan.make(recs.dtype, {"mid": (torch.ones(1, 2), torch.zeros(3, 2, 1))}) is None
    assert native.DotsPlan.make(recs.dtype, {"h": (torch.ones(2, 15), out)}) is None      # wrong d
    assert native.DotsPlan.make(recs.dtype, {"h": (phrases.double(), out)}) is None        # not float32
    assert native.DotsPlan.make(recs.dtype, {"h": (phrases, torch.zeros(3, 2, 4).transpose(1, 2))}) is None
    assert native.DotsPlan.make(recs.dtype, {"missing": (phrases, out)}) is None


def test_rows_of_a_whole_segment_are_multiplied_in_place(fresh):
    """Given all of a segment's records (the search maps them) and some rows, the kernel reads those
    rows where they are: the products of the same records copied out first."""
    if not HAS_KERNEL_HERE:
        pytest.skip(f"no kernel on this machine: {native.status()}")
    rng = np.random.default_rng(3)
    segment = records(40, 5, 24, rng)
    rows = np.array([33, 2, 2, 17, 39, 0])
    phrases = torch.from_numpy(rng.standard_normal((3, 24)).astype(np.float32))
    in_place, copied = torch.zeros(6, 5, 3), torch.zeros(6, 5, 3)
    native.DotsPlan.make(segment.dtype, {"q": (phrases, in_place)}).run(segment, np.arange(6), rows=rows)
    native.DotsPlan.make(segment.dtype, {"q": (phrases, copied)}).run(segment[rows], np.arange(6))
    assert torch.equal(in_place, copied)


def test_the_kernel_is_the_one_built_at_install_and_nothing_is_compiled_at_run_time(fresh, monkeypatch, tmp_path):
    """The library comes from the package folder; a compiler that is not there changes nothing,
    and loading writes nothing under the user's home or the temporary folder."""
    if not HAS_KERNEL_HERE:
        pytest.skip(f"no kernel on this machine: {native.status()}")
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    assert native.library() is not None, native.status()
    built = native.built_library()
    assert built is not None and built.parent == Path(native.__file__).parent and str(built) in native.status()
    assert not fresh.exists() and not (tmp_path / "tmp").exists()


def test_without_the_kernel_search_products_come_from_torch(fresh, monkeypatch):
    """HANET_NATIVE=0 (or a machine where the install could not build it): no kernel, a reason
    that says so, and no plan, so the products (gather_float's path) come from torch."""
    monkeypatch.setenv("HANET_NATIVE", "0")
    assert native.library() is None and "HANET_NATIVE=0" in native.status()
    rng = np.random.default_rng(1)
    recs = records(2, 3, 16, rng)
    assert native.DotsPlan.make(recs.dtype, {"h": (torch.ones(1, 16), torch.zeros(2, 3, 1))}) is None


def test_a_library_that_is_not_the_kernel_is_never_called(tmp_path):
    """A file under the kernel's name that is not what this source builds (a truncated copy,
    garbage, another library) is refused before any call into it."""
    damaged = tmp_path / "_dots.so"
    damaged.write_bytes(b"\x7fELF not really")
    assert native._open(damaged) is None
    libc = ctypes.util.find_library("c")
    if libc:
        assert native._open(libc) is None  # loads, but has no hanet_dots_abi
