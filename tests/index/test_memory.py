"""Memory the second stage holds for mapped records stays bounded by count (hanet.index.memory),
with nothing changed or read process-wide."""

from __future__ import annotations

import platform

import numpy as np
import pytest

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


@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc/self/smaps")
def test_the_bound_holds_for_pages_a_fault_maps_beyond_the_records_counted(tmp_path, run_dir, corpus, monkeypatch):
    """How much one fault maps is the kernel's choice (large page-cache folios map up to 2 MiB
    around a record: 1.2 MiB per 170 KiB record was seen on ext4, Linux 6.18), so each record
    counts with a 2 MiB folio on each side: a search that has a whole segment of that size mapped
    and counts one record reaches the bound and has it dropped."""
    import hanet.index.store as store
    from hanet.index import SearchIndex, build_index
    from hanet.index.memory import MAP_FOLIO_BYTES

    out = tmp_path / "idx"
    build_index(run_dir, corpus.features, out, thumbnails=False)
    q = SearchIndex.open(out, parser=None)
    coll = q.videos
    segment = coll.segments[0]
    one_record = segment.dtype.itemsize + MAP_FOLIO_BYTES  # what release_mapped counts for a record
    monkeypatch.setattr(store, "MAP_DROP_BYTES", one_record)
    for _, recs, local in coll.mapped_groups(np.array([0])):
        pages = recs.view(np.uint8)
        assert pages.size <= MAP_FOLIO_BYTES, "one record's count covers the whole segment"
        int(pages[::4096].sum()) + int(pages[-1])  # every page, as a fault mapping whole folios would
    assert _mapped_records_rss_kib(out) > 0
    coll.release_mapped(1)  # one record counted: the bound is reached
    assert _mapped_records_rss_kib(out) == 0
    q.close()

