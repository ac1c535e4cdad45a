"""The compiled phrase-product kernel (hanet.index.native): its values, its refusals, and how it
is built, found again, and done without."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from hanet.index import native
from hanet.index.scorer import _dots_into, stored_values

HAS_KERNEL_HERE = platform.machine().lower() in ("x86_64", "amd64") and bool(shutil.which("cc") or shutil.which("gcc")) \
    and all(f in open("/proc/cpuinfo").read().split() for f in ("avx2", "fma", "f16c"))


@pytest.fixture
def fresh(monkeypatch, tmp_path, request):
    """An empty kernel cache of this test's own, and the loaded kernel forgotten before and after."""
    monkeypatch.setenv("HANET_NATIVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HANET_NATIVE", raising=False)
    native.reset()
    request.addfinalizer(native.reset)
    return tmp_path / "cache"


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


def test_the_kernel_is_compiled_once_then_found_in_its_cache(fresh):
    if not HAS_KERNEL_HERE:
        pytest.skip(f"no kernel on this machine: {native.status()}")
    assert native.library() is not None
    built = list(fresh.glob("dots-*.so"))
    assert len(built) == 1 and str(built[0]) in native.status()
    stamp = built[0].stat().st_mtime_ns
    native.reset()
    assert native.library() is not None
    assert list(fresh.glob("dots-*.so")) == built and built[0].stat().st_mtime_ns == stamp
    assert not list(fresh.glob("*.tmp"))


def test_without_a_compiler_search_products_come_from_torch(fresh, monkeypatch, tmp_path):
    """No compiler, a cache path that is a file, or HANET_NATIVE=0: no kernel, a reason that
    says so, and the products (gather_float's as-read path) still computed, by torch."""
    from hanet.index.scorer import gather_float  # noqa: F401  (the path that falls back)

    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    assert native.library() is None
    assert "could not run the C compiler" in native.status() and "no-such-compiler" in native.status()
    rng = np.random.default_rng(1)
    recs = records(2, 3, 16, rng)
    assert native.DotsPlan.make(recs.dtype, {"h": (torch.ones(1, 16), torch.zeros(2, 3, 1))}) is None

    native.reset()
    monkeypatch.delenv("CC")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HANET_NATIVE_CACHE", str(blocker))
    assert native.library() is None
    assert str(blocker) in native.status()

    native.reset()
    monkeypatch.setenv("HANET_NATIVE", "0")
    assert native.library() is None and "HANET_NATIVE=0" in native.status()


def test_a_damaged_library_in_the_cache_is_rebuilt_not_called(fresh):
    """A file in the cache under the kernel's name that is not what this source builds (a
    truncated copy, garbage) is never called into: it is compiled again in its place. (In a
    fresh process: one that has loaded the kernel keeps using the copy it loaded.)"""
    if not HAS_KERNEL_HERE:
        pytest.skip(f"no kernel on this machine: {native.status()}")
    fresh.mkdir(parents=True)
    damaged = fresh / native.library_name()
    damaged.write_bytes(b"\x7fELF not really")
    env = {**os.environ, "HANET_NATIVE_CACHE": str(fresh)}
    out = subprocess.run([sys.executable, "-c", "from hanet.index import native; print(native.status())"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("native kernel") and str(damaged) in out.stdout
    assert damaged.read_bytes()[:4] == b"\x7fELF" and damaged.stat().st_size > 1000
