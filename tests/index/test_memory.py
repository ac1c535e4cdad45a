"""The allocator keeps what a search frees for the next one (hanet.index.memory)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

# A query's pattern: a few blocks of 12-17 MiB alive together (its candidates' records, their
# float32 copies), each written in full, then all freed; sizes change from query to query. The
# minor page faults of 20 such queries after a first one, with the allocator as hanet leaves it
# after opening an index, or untouched.
PROBE = r"""
import resource
import numpy as np
from hanet.index.memory import keep_freed_memory
applied = keep_freed_memory()
rng = np.random.default_rng(0)
hold = [np.ones(int(s), np.uint8) for s in rng.integers(12, 18, 3) << 20]
del hold
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    hold = [np.ones(int(s), np.uint8) for s in rng.integers(12, 18, 3) << 20]
    del hold
print(int(applied), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(env_value: str) -> tuple[bool, int]:
    env = dict(os.environ, HANET_MALLOC=env_value)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "1", int(faults)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_freed_memory_is_reused_not_faulted_in_again():
    applied, kept = _faults("")
    untouched, system = _faults("system")
    assert applied and not untouched
    # kept: the blocks reuse the memory the last query freed (measured: 512 faults against 28,683)
    assert kept * 10 < system, (kept, system)


def test_opting_out_leaves_the_allocator_alone():
    applied, _ = _faults("system")
    assert not applied


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_opening_an_index_keeps_freed_memory(index):
    from hanet.index import memory

    assert os.environ.get("HANET_MALLOC", "") != "system" and memory._state.get("applied") is True


def _mapped_records_rss_kib(folder) -> int:
    """Resident KiB of this process's mappings of the records of the index in folder (/proc/self/smaps)."""
    total, in_records = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:  # a mapping's first line
                in_records = head[-1].startswith(str(folder)) and head[-1].endswith("records.npy")
            elif in_records and head and head[0] == "Rss:":
                total += int(head[1])
    return total


@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc/self/smaps")
def test_mapped_records_leave_the_resident_set_past_the_bound(tmp_path, run_dir, corpus, index, monkeypatch):
    """With the kernel, the second stage reads frames from the records memory-mapped: the pages a
    search touches are counted and unmapped past MAP_DROP_BYTES, so resident memory stays bounded
    however large the collection; the answers are those of positional reads."""
    import hanet.index.scorer as scorer
    import hanet.index.store as store
    from hanet.index import SearchIndex, build_index, native

    if native.library() is None:
        pytest.skip(f"no kernel: {native.status()}")
    out = tmp_path / "idx"
    build_index(run_dir, corpus.features, out, thumbnails=False)
    monkeypatch.setattr(scorer, "LAZY_BYTES", 0)  # this corpus's frames as MSR-VTT's would be read
    q = SearchIndex.open(out, parser=index.queries.parser)
    query = "a w3 is chasing a w5 in the w11"
    monkeypatch.setattr(store, "MAP_DROP_BYTES", 1 << 40)  # never dropped
    mapped = q.search(query, k=5, candidates=20)
    assert _mapped_records_rss_kib(out) > 0
    monkeypatch.setattr(store, "MAP_DROP_BYTES", 1)  # dropped after every search
    again = q.search(query, k=5, candidates=20)
    assert _mapped_records_rss_kib(out) == 0
    monkeypatch.setattr(scorer, "MAPPED_READS", False)
    read = q.search(query, k=5, candidates=20)
    assert [h.video_id for h in mapped] == [h.video_id for h in again] == [h.video_id for h in read]
    np.testing.assert_allclose([h.score for h in mapped], [h.score for h in read], rtol=1e-5, atol=1e-6)
    q.close()


@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc/self/smaps and statm")
def test_the_bound_holds_for_pages_a_fault_maps_beyond_the_records_counted(tmp_path, run_dir, corpus, monkeypatch):
    """How much one fault maps is the kernel's choice (large page-cache folios map up to 2 MiB
    around a record: 1.2 MiB per 170 KiB record was seen on ext4, Linux 6.18), so the bound is
    also checked against what the file-backed resident set has grown by: a search that counts one
    record but has the whole segment mapped still has it dropped."""
    import hanet.index.store as store
    from hanet.index import SearchIndex, build_index
    from hanet.index.memory import MAP_FOLIO_BYTES

    out = tmp_path / "idx"
    build_index(run_dir, corpus.features, out, thumbnails=False)
    q = SearchIndex.open(out, parser=None)
    coll = q.videos
    segment = coll.segments[0]
    one_record = segment.dtype.itemsize + MAP_FOLIO_BYTES  # what release_mapped counts for a record
    monkeypatch.setattr(store, "MAP_DROP_BYTES", one_record + 1)
    for _, recs, local in coll.mapped_groups(np.array([0])):
        pages = recs.view(np.uint8)
        assert pages.size > 3 * one_record, "the test needs a segment larger than the bound"
        int(pages[::4096].sum()) + int(pages[-1])  # every page, as a fault mapping whole folios would
    assert _mapped_records_rss_kib(out) * 1024 > 2 * one_record
    coll.release_mapped(1)  # counted alone, one record is below the bound
    assert _mapped_records_rss_kib(out) == 0
    q.close()
