"""Building and changing an index: stored encodings, add, delete, crash safety, refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from hanet.errors import HanetError, UnknownVideoError
from hanet.index import IndexFormatError, SearchIndex, add_videos, build_index, delete_videos
from hanet.index.rerank import video_outputs
from hanet.index.storage import VIDEO_FLOAT_FIELDS, read_manifest

from .corpus import QUERY, RATE, arrays, frame_level, make_corpus, padded  # noqa: F401


def test_stored_encodings_are_the_model_outputs_at_fixed_padding(index, corpus):
    model = index.model
    T = model.config.max_frames_in_video
    feats, lens = padded(corpus, corpus.names, T)
    with torch.no_grad():
        ref = model.encode_video(feats, lens)
    stored = video_outputs(index.videos, np.array([index.row(n) for n in corpus.names]), with_peaks=True)
    for f in VIDEO_FLOAT_FIELDS:
        a, b = getattr(stored, f).numpy(), getattr(ref, f).numpy()
        assert a.shape == b.shape, f
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3, err_msg=f)  # float16 storage
    assert torch.equal(stored.lengths, lens)
    assert torch.equal(stored.top_verbs, ref.top_verbs) and torch.equal(stored.noun_peaks, ref.noun_peaks)
    # Why the padding is fixed: padded to its own length, a short video encodes differently
    # (SE pooling and the k=5 conv see the padding), so its embeddings would depend on its batch.
    i = corpus.names.index("clip03")  # 5 frames
    with torch.no_grad():
        own = model.encode_video(feats[i:i + 1, :5], lens[i:i + 1])
        alone = model.encode_video(feats[i:i + 1], lens[i:i + 1])
    assert not torch.allclose(own.verb_clips, ref.verb_clips[i:i + 1], atol=1e-4)
    assert not torch.allclose(own.verb_probs, ref.verb_probs[i:i + 1], atol=1e-4)
    assert torch.allclose(alone.verb_clips, ref.verb_clips[i:i + 1], atol=1e-5)
    assert torch.allclose(alone.verb_probs, ref.verb_probs[i:i + 1], atol=1e-5)


def test_incremental_add_equals_one_build(tmp_path, run_dir, corpus, index):
    half = corpus.names[:7]
    names_file = tmp_path / "first.txt"
    names_file.write_text("\n".join(half))
    out = tmp_path / "inc"
    build_index(run_dir, corpus.features, out, names=str(names_file), thumbnails=False, batch_size=3)
    rep = add_videos(out, corpus.features, run_dir=run_dir, thumbnails=False, batch_size=16)
    assert rep.skipped == half and sorted(rep.added) == sorted(corpus.names[7:])
    inc = SearchIndex.open(out, parser=index.queries.parser)
    assert inc.num_videos == index.num_videos and len(read_manifest(out)["videos"]["segments"]) == 2
    a, b = arrays(inc, corpus.names), arrays(index, corpus.names)
    for f in a:
        np.testing.assert_allclose(a[f].astype(np.float32), b[f].astype(np.float32), atol=2e-3, err_msg=f)
    x = inc.search(QUERY, k=8, mode="exhaustive")
    y = index.search(QUERY, k=8, mode="exhaustive")
    assert [h.video_id for h in x] == [h.video_id for h in y]
    np.testing.assert_allclose([h.score for h in x], [h.score for h in y], atol=1e-3)


def test_delete_uses_tombstones_and_readd_works(tmp_path, built, corpus, parser):
    idx_dir = tmp_path / "idx"
    shutil.copytree(built, idx_dir)
    before = {p: p.stat().st_mtime_ns for p in (idx_dir / "segments").rglob("*") if p.is_file()}
    faiss_before = read_manifest(idx_dir)["videos"]["faiss"]
    top = SearchIndex.open(idx_dir, parser=parser).search(QUERY, k=3, mode="exhaustive")
    gone = [top[0].video_id, "clip05"]
    assert delete_videos(idx_dir, gone) == 2
    with pytest.raises(HanetError, match="no such video"):
        delete_videos(idx_dir, ["nope"])
    assert delete_videos(idx_dir, ["nope", gone[0]], missing_ok=True) == 0
    # rebuild-free: segments and the FAISS file are untouched; only tombstones and the manifest change
    assert {p: p.stat().st_mtime_ns for p in (idx_dir / "segments").rglob("*") if p.is_file()} == before
    m = read_manifest(idx_dir)
    assert m["videos"]["faiss"] == faiss_before and m["videos"]["deleted"] == 2
    idx = SearchIndex.open(idx_dir, parser=parser)
    assert idx.num_videos == len(corpus.names) - 2
    for mode in ("two-stage", "exhaustive"):
        ids = [h.video_id for h in idx.search(QUERY, k=len(corpus.names), mode=mode, candidates=5)]
        assert not set(gone) & set(ids)
    with pytest.raises(UnknownVideoError):
        idx.row(gone[0])
    # their captions went with them
    caps = idx.search_captions("clip00" if "clip00" not in gone else "clip01", k=100)
    assert not {h.video_id for h in caps.hits} & set(gone) and caps.total == 2 * (len(corpus.names) - 2)
    rep = add_videos(idx_dir, corpus.features, thumbnails=False)
    assert sorted(rep.added) == sorted(gone)
    again = SearchIndex.open(idx_dir, parser=parser)
    assert again.num_videos == len(corpus.names)
    assert [h.video_id for h in again.search(QUERY, k=3, mode="exhaustive")] == [h.video_id for h in top]
    rep = add_videos(idx_dir, corpus.features, thumbnails=False, replace=True, names=["clip01"],
                     captions=corpus.captions)
    # clip01 keeps its captions through the replace: only the re-added videos' captions are new
    assert rep.replaced == ["clip01"] and rep.captions_added == 2 * len(gone)
    final = SearchIndex.open(idx_dir, parser=parser)
    assert final.num_videos == len(corpus.names) and final.num_captions == 2 * len(corpus.names)
    assert final.videos.size == len(corpus.names) + len(gone) + 1  # dead rows keep their numbers
    # a replace without --captions keeps the replaced video's captions (it used to drop them)
    rep = add_videos(idx_dir, corpus.features, thumbnails=False, replace=True, names=["clip02"])
    assert rep.replaced == ["clip02"] and rep.captions_added == 0
    kept = SearchIndex.open(idx_dir, parser=parser)
    assert kept.num_captions == 2 * len(corpus.names)
    assert sum(h.video_id == "clip02" for h in kept.search_captions("clip02", k=100).hits) == 2


_CRASH_ADD = """
import os, sys
from hanet.index.build import IndexWriter
from hanet.index.storage import field_shapes
w = IndexWriter(sys.argv[1])
src = w.collection("videos")
def batches():
    first = next(src.chunks(4))
    yield {f: src.gather(f, first) for f in field_shapes(w.config.model, "videos")}, [{"id": f"new{i}"} for i in range(4)]
    os._exit(3)  # a hard crash in the middle of a segment: no cleanup runs
w.add_encoded([f"new{i}" for i in range(8)], batches())
"""


def test_a_crashed_writer_leaves_the_last_commit(tmp_path, built, corpus, parser):
    idx_dir = tmp_path / "idx"
    shutil.copytree(built, idx_dir)
    gen = read_manifest(idx_dir)["generation"]
    r = subprocess.run([sys.executable, "-c", _CRASH_ADD, str(idx_dir)], capture_output=True, text=True)
    assert r.returncode == 3, r.stderr
    assert any(p.name.startswith(".tmp-") for p in (idx_dir / "segments").iterdir())  # the half-written segment
    idx = SearchIndex.open(idx_dir, parser=parser)
    assert idx.generation == gen and idx.num_videos == len(corpus.names)
    assert "new0" not in idx.videos.row_of
    # The next writer removes the leftovers and works.
    delete_videos(idx_dir, ["clip02"])
    assert not any(p.name.startswith(".tmp-") for p in (idx_dir / "segments").iterdir())
    assert SearchIndex.open(idx_dir, parser=parser).num_videos == len(corpus.names) - 1


def test_killed_cli_add_never_breaks_the_index(tmp_path, run_dir, corpus):
    """SIGKILL `hanet index add` (one commit per video) at several moments: the index always opens whole."""
    out = tmp_path / "idx"
    build_index(run_dir, corpus.features, out, names=corpus.names[:2], thumbnails=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "hanet", "index", "add", str(out), "--features", str(corpus.features),
           "--segment-size", "1", "--no-thumbnails", "--quiet"]
    seen = set()
    for delay in (3.0, 4.5):
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        m = read_manifest(out)
        idx = SearchIndex.open(out)
        assert idx.num_videos == m["videos"]["count"] == idx.stages["videos"].ntotal
        seen.add(idx.num_videos)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    final = SearchIndex.open(out)
    assert final.num_videos == len(corpus.names) and len(set(final.videos.ids)) == len(corpus.names)
    assert seen  # the index was opened after every kill


def test_an_index_of_another_model_or_format_is_refused(tmp_path, built, run_dir, other_run, corpus):
    with pytest.raises(IndexFormatError, match="another model"):
        SearchIndex.open(built, run=other_run)
    assert SearchIndex.open(built, run=run_dir).num_videos == len(corpus.names)
    copy = tmp_path / "idx"
    shutil.copytree(built, copy)
    with pytest.raises(IndexFormatError, match="another model"):
        add_videos(copy, corpus.features, run_dir=other_run)
    m = json.loads((copy / "manifest.json").read_text())
    m["version"] = 99
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexFormatError, match="rebuild the index"):
        SearchIndex.open(copy)
    with pytest.raises(IndexFormatError, match="not a hanet index"):
        SearchIndex.open(tmp_path)
    with pytest.raises(HanetError, match="already holds an index"):
        build_index(run_dir, corpus.features, built)


def test_features_of_another_dimension_are_refused(tmp_path, built, corpus):
    from hanet.data.features import FeatureWriter

    bad = tmp_path / "bad.h5"
    store = FeatureWriter(str(bad), {"hanet_features": 1, "feature_dim": 32})
    store.add("x", np.zeros((4, 32), np.float32), {})
    store.close()
    copy = tmp_path / "idx"
    shutil.copytree(built, copy)
    with pytest.raises(HanetError, match="32-d features"):
        add_videos(copy, bad)
    extra = make_corpus(tmp_path / "extra", lengths=(6, 3), with_files=0, prefix="extra")
    rep = add_videos(copy, extra.features)
    assert sorted(rep.added) == ["extra00", "extra01"] and rep.thumbnails == 0


def test_index_built_from_an_authors_checkpoint(tmp_path, run_dir, corpus, index, capsys):
    """The same weights as the authors' epoch.N.th + model.json give the same index and answers."""
    from hanet.cli import main
    from hanet.index import SearchIndex
    from hanet.parity import DEFAULT_REFERENCE

    assert main(["export-official", str(run_dir), str(tmp_path / "epoch.3.th")]) == 0
    base = ["index", "build", "--features", str(corpus.features), "--out", str(tmp_path / "idx"), "--no-thumbnails",
            "--official-checkpoint", str(tmp_path / "epoch.3.th"), "--config", str(tmp_path / "epoch.3.model.json")]
    assert main(base) == 2
    assert "--official-checkpoint needs --config (the authors' model.json) and --vocab" in capsys.readouterr().err
    assert main(base + ["--vocab", str(DEFAULT_REFERENCE / "data" / "word2int.json")]) == 0
    theirs = SearchIndex.open(tmp_path / "idx", parser=index.queries.parser)
    a = index.search(QUERY, k=5, mode="exhaustive")
    b = theirs.search(QUERY, k=5, mode="exhaustive")
    assert [h.video_id for h in a] == [h.video_id for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-6)


def test_index_commands_on_a_path_that_is_a_file(tmp_path, corpus, capsys):
    from hanet.cli import main

    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["index", "add", str(f), "--features", str(corpus.features)]) == 2
    assert "no such index directory" in capsys.readouterr().err
    assert main(["index", "delete", str(f), "clip00"]) == 2
    assert "no such index directory" in capsys.readouterr().err
    assert not (tmp_path / "afile").is_dir()


def test_int8_frames_halve_the_records_and_keep_the_answers(tmp_path, run_dir, corpus, index):
    """frame_dtype=int8: per-frame tensors as int8 with a scale per frame; the scores move by
    quantisation noise only (the norms and Gram matrices are those of the stored values)."""
    from hanet.index.audit import index_info

    idx = tmp_path / "idx8"
    build_index(run_dir, corpus.features, idx, thumbnails=False, frame_dtype="int8")
    small, full = index_info(idx), index_info(index.path)
    assert small["frame_dtype"] == "int8" and full["frame_dtype"] == "float16"
    frames = ("verb_frames", "noun_frames", "verb_clips", "noun_clips")
    assert all(small["bytes_per_video"][f] * 2 == full["bytes_per_video"][f] for f in frames)
    assert sum(small["bytes_per_video"].values()) < sum(full["bytes_per_video"].values())
    q8 = SearchIndex.open(idx, parser=index.queries.parser)
    a = index.search(QUERY, k=len(corpus.names), mode="exhaustive")
    b = q8.search(QUERY, k=len(corpus.names), mode="exhaustive")
    sa, sb = {h.video_id: h.score for h in a}, {h.video_id: h.score for h in b}
    assert max(abs(sa[v] - sb[v]) for v in sa) < 5e-3
    assert [h.video_id for h in a[:3]] == [h.video_id for h in b[:3]]
    exp = q8.explain(QUERY, a[0].video_id)  # explanations read the dequantized frames
    assert exp.score == pytest.approx(sb[a[0].video_id], abs=1e-6)


def test_approximate_first_stage_finds_the_exhaustive_answers(tmp_path, run_dir, corpus, index):
    """first_stage=ivf at any size: candidates from the inverted file, then the same rerank; on a
    collection this small every list is probed and the answers are the exhaustive ones."""
    from hanet.index.audit import index_info

    idx = tmp_path / "ivf"
    build_index(run_dir, corpus.features, idx, thumbnails=False, first_stage="ivf")
    info = index_info(idx)
    assert info["first_stage"]["kind"] == "ivf" and info["first_stage"]["lists"] >= 1
    ivf = SearchIndex.open(idx, parser=index.queries.parser)
    want = [h.video_id for h in index.search(QUERY, k=5, mode="exhaustive")]
    assert [h.video_id for h in ivf.search(QUERY, k=5)] == want
    # with few candidates it picks the ones the exact scan picks (every row is in its pool here)
    exact8 = [h.video_id for h in index.search(QUERY, k=5, candidates=8)]
    res = ivf.search_result(QUERY, k=5, candidates=8)
    assert [h.video_id for h in res.hits] == exact8 and not res.exact  # no certificate without a full scan
    add_videos(idx, corpus.features, thumbnails=False, replace=True, names=[want[0]])  # adds go into the lists
    again = SearchIndex.open(idx, parser=index.queries.parser)
    assert [h.video_id for h in again.search(QUERY, k=5)] == want
    assert index_info(idx)["first_stage"]["kind"] == "ivf"


def test_probed_lists_hold_several_times_the_pool():
    """Short lists are probed in greater number: the pool must come from rows the query looked at."""
    from hanet.index.first_stage import probe_lists
    from hanet.index.tuning import DEFAULT_NPROBE

    assert probe_lists(2530, 1_000_000, 1000) == DEFAULT_NPROBE  # 1M rows, a pool of 1,000: 32 lists hold 12,600 rows
    assert probe_lists(2530, 1_000_000, 2000) == 41               # a pool of 2,000: ceil(8 * 2000 / 395)
    assert probe_lists(113, 800, 2000) == 113                     # the demo's 800 videos: every list
    assert probe_lists(1265, 100_000, 2000) == 203                # ceil(8 * 2000 / (100000 / 1265))
    assert probe_lists(1265, 100_000, 80, nprobe=300) == 300      # a larger request is kept
    assert probe_lists(16, 10, 4) == 16


@pytest.mark.parametrize("kernel", ["native", "torch"])
@pytest.mark.parametrize("frame_dtype", ["float16", "int8"])
def test_products_taken_as_read_score_as_the_stored_values(tmp_path, run_dir, corpus, index, frame_dtype, kernel,
                                                           monkeypatch, request):
    """The second stage multiplies the stored frames by the queries' phrases as it reads them (the
    compiled kernel, or torch): the products are those of the stored values, and the model's rule
    on them gives the seven scores of its own scoring of the stored encodings, for rows from two
    segments in any order and read groups of any size."""
    import hanet.index.rerank as rerank
    from hanet.index import native
    from hanet.index.rerank import SCORE_FIELDS, read_fields, read_products
    from hanet.index.storage import FRAME_FIELDS
    from hanet.index.storage.values import stored_values

    if kernel == "torch":
        monkeypatch.setenv("HANET_NATIVE", "0")
    native.reset()
    request.addfinalizer(native.reset)  # later tests load the kernel afresh, with the environment restored
    assert (native.library() is not None) == (kernel == "native"), native.status()

    names_file = tmp_path / "first.txt"
    names_file.write_text("\n".join(corpus.names[:6]))
    out = tmp_path / "two"
    build_index(run_dir, corpus.features, out, names=str(names_file), thumbnails=False, frame_dtype=frame_dtype)
    add_videos(out, corpus.features, run_dir=run_dir, thumbnails=False)
    q = SearchIndex.open(out, parser=index.queries.parser)
    assert len(q.videos.segments) == 2
    enc = q.queries.encode([QUERY, "two w5 are chasing a w6 and a w9 in the w11"])
    queries = q.model.phrase_queries(enc.text)
    rng = np.random.default_rng(0)
    for rows in (np.arange(q.videos.size), rng.permutation(q.videos.size)[:9], np.array([8, 2, 2, 11])):
        raw = q.videos.gather_many(FRAME_FIELDS + tuple(f + "_scale" for f in FRAME_FIELDS if frame_dtype == "int8"),
                                   rows)
        with torch.no_grad():
            reference = q.model.score(video_outputs(q.videos, rows), enc.text)
        for group in (1, 1 << 22):  # groups of one record and of all
            monkeypatch.setattr(rerank, "PRODUCT_READ_BYTES", group)
            video = read_products(q.videos, rows, queries)
            for name, p in queries.items():
                field = SCORE_FIELDS[name][0]
                want = torch.from_numpy(stored_values(raw, field)) @ p.phrases.t()
                torch.testing.assert_close(video.products[name].dots, want, rtol=1e-5, atol=1e-5, msg=field)
            with torch.no_grad():
                got = q.model.score_products(video, enc.text, queries)
            for (name, x), (_, y) in zip(got.items(), reference.items()):
                np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    assert set(read_fields(q.videos, ("global_embeds",), rows)) == {"global_embeds", "lengths"}


def test_record_reads_in_pieces_give_the_same_records(index, monkeypatch):
    """Reads in groups of any size cover every row once and give the same fields and the same
    products."""
    import hanet.index.storage.collection as collection
    from hanet.index.rerank import read_products
    from hanet.index.storage import FRAME_FIELDS

    coll = index.videos
    rows = np.random.default_rng(3).permutation(coll.size)
    names = FRAME_FIELDS + ("global_embeds", "lengths")
    whole = coll.gather_many(names, rows)
    queries = index.model.phrase_queries(index.queries.encode([QUERY]).text)
    stored = read_products(coll, rows, queries)
    monkeypatch.setattr(collection, "READ_BYTES", 2 * coll.segments[0].dtype.itemsize + 1)
    pieces = [idx.copy() for idx, _ in coll.read_groups(rows)]
    assert len(pieces) >= coll.size // 2 and all(len(idx) <= 2 for idx in pieces)
    assert sorted(np.concatenate(pieces).tolist()) == list(range(coll.size))
    got = coll.gather_many(names, rows)
    for n in names:
        np.testing.assert_array_equal(got[n], whole[n], err_msg=n)
    again = read_products(coll, rows, queries)
    for name in queries:
        for part in ("dots", "norms", "grams"):
            torch.testing.assert_close(getattr(again.products[name], part), getattr(stored.products[name], part),
                                       rtol=0, atol=0, msg=f"{name} {part}")
    torch.testing.assert_close(again.global_embeds, stored.global_embeds, rtol=0, atol=0)


def test_one_field_of_a_few_rows_reads_only_that_field(tmp_path, run_dir, corpus, index, monkeypatch):
    """A few rows' per-frame concepts (a search's hits) come from reads of that field alone, in any
    row order, across segments: the same values as whole records; a truncated file is a clear error."""
    import hanet.index.storage.collection as collection

    out = tmp_path / "two"
    names_file = tmp_path / "first.txt"
    names_file.write_text("\n".join(corpus.names[:6]))
    build_index(run_dir, corpus.features, out, names=str(names_file), thumbnails=False)
    add_videos(out, corpus.features, run_dir=run_dir, thumbnails=False)
    coll = SearchIndex.open(out, parser=index.queries.parser).videos
    assert len(coll.segments) == 2
    rows = np.array([coll.size - 1, 0, 7, 3, 7, coll.size - 2])  # both segments, unordered, repeated
    field = coll.gather("verb_frame_probs", rows)
    whole = coll.gather_many(("verb_frame_probs",), rows)["verb_frame_probs"]
    assert field.dtype == whole.dtype and field.shape == (len(rows),) + coll.segments[0].dtype["verb_frame_probs"].shape
    np.testing.assert_array_equal(field, whole)
    monkeypatch.setattr(collection, "FIELD_READ_ROWS", 0)  # many rows: whole records, the same answer
    np.testing.assert_array_equal(coll.gather("verb_frame_probs", rows), whole)
    monkeypatch.undo()
    last = coll.segments[-1]
    path = last.path / "records.npy"
    last.close()
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - last.dtype.itemsize // 2)
    with pytest.raises(IndexFormatError, match=r"records.npy: truncated \(row"):
        coll.gather("verb_frame_probs", np.array([coll.size - 1]))


@pytest.mark.parametrize("kernel", ["native", "torch"])
def test_a_segment_truncated_under_a_reader_is_a_clear_error(tmp_path, run_dir, corpus, index, monkeypatch,
                                                             request, kernel):
    """A records file cut short after the index was opened is an error naming it and the row, with
    the kernel or without (records are read, never mapped: no bus error)."""
    from hanet.index import native

    if kernel == "torch":
        monkeypatch.setenv("HANET_NATIVE", "0")
    native.reset()
    request.addfinalizer(native.reset)
    out = tmp_path / "idx"
    build_index(run_dir, corpus.features, out, thumbnails=False)
    path = next((out / "segments").glob("v-*/records.npy"))
    q = SearchIndex.open(out, parser=index.queries.parser)  # opening checks sizes: truncated after it
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)
    with pytest.raises(IndexFormatError, match=r"records.npy: truncated \(row \d+\)"):
        q.search(QUERY, k=3, mode="exhaustive")  # every record read
