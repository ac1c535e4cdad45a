"""What the second stage holds in memory: one reused record buffer per thread, nothing mapped,
nothing changed process-wide."""

from __future__ import annotations

import platform

import numpy as np
import pytest


def _records_mappings(folder) -> int:
    """Mappings of this process onto the index's records files (/proc/self/maps)."""
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if str(folder) in line and "records.npy" in line)


@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc/self/maps")
def test_search_reads_records_into_one_bounded_buffer_and_maps_nothing(tmp_path, run_dir, corpus, index, monkeypatch):
    """Every group of records a search reads is a view of one buffer the thread reuses, never
    more than READ_BYTES: the anonymous memory reading takes is that buffer, whatever the rows or
    the index's size; the records files are never memory-mapped (the page cache is the kernel's)."""
    import hanet.index.storage.collection as collection
    from hanet.index import SearchIndex, build_index
    from hanet.index.tuning import READ_BYTES

    out = tmp_path / "idx"
    build_index(run_dir, corpus.features, out, thumbnails=False)
    q = SearchIndex.open(out, parser=index.queries.parser)
    coll = q.videos
    hits = q.search("a w3 is chasing a w5 in the w11", k=5, candidates=20)
    assert hits and _records_mappings(out) == 0
    buf = coll._buffers.records
    assert buf.nbytes <= READ_BYTES
    rows = np.random.default_rng(0).permutation(coll.size)
    for _, recs in coll.read_groups(rows):
        assert np.shares_memory(recs, buf)
    monkeypatch.setattr(collection, "READ_BYTES", 3 * coll.segments[0].dtype.itemsize)
    groups = [(idx.copy(), recs.copy()) for idx, recs in coll.read_groups(rows)]
    assert max(len(i) for i, _ in groups) == 3 and coll._buffers.records.nbytes <= READ_BYTES
    whole = coll.segments[0].read(np.arange(coll.size))
    for idx, recs in groups:
        np.testing.assert_array_equal(recs, whole[rows[idx]])
    for idx, recs in coll.read_groups(rows):  # a read inside a read leaves the outer group intact
        first = recs.copy()
        inner = coll.gather_many(("global_embeds",), rows[::-1])["global_embeds"]
        np.testing.assert_array_equal(recs, first)
        np.testing.assert_array_equal(inner, whole["global_embeds"][rows[::-1]])
    again = q.search("a w3 is chasing a w5 in the w11", k=5, candidates=20)
    assert [h.video_id for h in again] == [h.video_id for h in hits]
    assert [h.score for h in again] == [h.score for h in hits]
    assert _records_mappings(out) == 0
    q.close()
