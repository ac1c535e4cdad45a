"""The index: stored encodings, exact and two-stage search, add/delete, crash safety, explanations, CLI."""

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

from hanet.cli import main as hanet_main
from hanet.errors import HanetError, UnknownVideoError
from hanet.index import IndexFormatError, QueryError, SearchIndex, add_videos, build_index, delete_videos
from hanet.index.scorer import video_outputs
from hanet.index.store import VIDEO_FLOAT_FIELDS, read_manifest

from .corpus import RATE, frame_level, make_corpus

QUERY = "w3 w17 w42 w8 w55"


def _padded(corpus, names, T):
    from hanet.data.formats import FeatureStore, pad_or_subsample

    store = FeatureStore([corpus.features])
    items = [pad_or_subsample(store.get(n), T) for n in names]
    store.close()
    return torch.from_numpy(np.stack([x for x, _ in items])), torch.tensor([n for _, n in items])


def _arrays(index, names):
    rows = np.array([index.row(n) for n in names])
    return {f: index.videos.gather(f, rows) for f in VIDEO_FLOAT_FIELDS + ("lengths", "top_verbs", "noun_peaks")}


# ---------------------------------------------------------------------- encodings
def test_stored_encodings_are_the_model_outputs_at_fixed_padding(index, corpus):
    model = index.model
    T = model.config.max_frames_in_video
    feats, lens = _padded(corpus, corpus.names, T)
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


def test_exhaustive_search_ranks_by_the_full_fused_score(index, corpus):
    res = index.search_result(QUERY, k=len(corpus.names), mode="exhaustive")
    assert res.total == len(corpus.names) and res.candidates == len(corpus.names)
    enc = index.encode(QUERY)
    rows = np.arange(index.videos.size)
    with torch.no_grad():
        fused = index.model.fused_score(index.model.score(video_outputs(index.videos, rows), enc.text))[:, 0].numpy()
    order = np.argsort(-fused, kind="stable")
    assert [h.video_id for h in res.hits] == [index.videos.ids[r] for r in order]
    np.testing.assert_allclose([h.score for h in res.hits], fused[order], rtol=1e-5, atol=1e-6)
    # The seven parts fuse into the score (official fusion).
    for h in res.hits:
        s = h.scores
        fused_h = (s["sent"] + s["verb"] + s["noun"] + s["ind_verb"] + s["ind_noun"]) / 10 + \
            (s["concept_verb"] + s["concept_noun"]) / 4
        assert abs(fused_h - h.score) < 1e-5
    # Against the model run on the raw features in float32 (no index involved): float16 rounding only.
    feats, lens = _padded(corpus, corpus.names, index.config.max_frames_in_video)
    with torch.no_grad():
        raw = index.model.fused_score(index.model.score(index.model.encode_video(feats, lens), enc.text))[:, 0]
    by_id = dict(zip(corpus.names, raw.tolist()))
    np.testing.assert_allclose([h.score for h in res.hits], [by_id[h.video_id] for h in res.hits], atol=3e-3)


def test_index_scorer_equals_model_scoring_on_stored_encodings(index, tmp_path, corpus, parser):
    """The scorer with precomputed norms and Gram matrices gives model.score's seven scores."""
    queries = [QUERY, "a man w12 is riding w40 on a w7", "w90", "two w5 are chasing a w6 and a w9 in the w11"]
    enc = index.queries.encode(queries)
    assert len({int((enc.text.verb_lens[i] > 0).sum()) for i in range(len(queries))}) > 1  # slots vary
    rows = np.arange(index.videos.size)
    ours = index.score_rows(rows, enc.text)
    with torch.no_grad():
        ref = index.model.score(video_outputs(index.videos, rows), enc.text)
    for (name, a), (_, b) in zip(ours.items(), ref.items()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    # the global variant scores (and first-stage proxies) use the sentence embedding alone
    from .corpus import make_run

    run = make_run(tmp_path / "g", seed=0, variant="global")
    build_index(run, corpus.features, tmp_path / "gidx", thumbnails=False)
    g = SearchIndex.open(tmp_path / "gidx", parser=parser)
    hits = g.search(QUERY, k=5, mode="exhaustive")
    assert set(hits[0].scores) == {"sent"} and all(abs(h.score - h.scores["sent"]) < 1e-6 for h in hits)
    res = g.search_result(QUERY, k=5, candidates=6)
    assert [h.video_id for h in res.hits] == [h.video_id for h in hits]
    assert res.exact  # the first stage computes the global variant's whole score


@pytest.mark.parametrize("query", [QUERY, "a man w12 is riding w40 on a w7", "w90 w91"])
def test_two_stage_is_exhaustive_restricted_to_first_stage_candidates(index, corpus, query):
    from hanet.index.faiss_stage import first_stage_vectors

    n = len(corpus.names)
    full = index.search_result(query, k=n, mode="exhaustive")
    assert full.exact
    order = [h.video_id for h in full.hits]
    assert [h.video_id for h in index.search(query, k=5, candidates=n)] == order[:5]
    # The first stage computes sent and the two concept scores exactly: the fused score minus
    # the phrase-level part.
    enc = index.encode(query)
    fs = index.stages["videos"].partial_scores(first_stage_vectors(
        enc.text.global_embeds.numpy(), enc.text.verb_probs.numpy(), enc.text.noun_probs.numpy(),
        round_to_stored=False))[0]
    partial = [h.score - 0.1 * (h.scores["verb"] + h.scores["noun"] + h.scores["ind_verb"] + h.scores["ind_noun"])
               for h in full.hits]
    np.testing.assert_allclose([fs[index.row(v)] for v in order], partial, atol=1e-5)
    for c in (3, 6, 10):
        res = index.search_result(query, k=3, candidates=c)
        assert res.candidates == c
        ids = {index.videos.ids[r] for r in np.argsort(-fs, kind="stable")[:c].tolist()}
        assert [h.video_id for h in res.hits] == [v for v in order if v in ids][:3]
        if res.exact:  # the certificate is sound
            assert [h.video_id for h in res.hits] == order[:3]


# ---------------------------------------------------------------------- add, delete, crashes
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
    a, b = _arrays(inc, corpus.names), _arrays(index, corpus.names)
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
from hanet.index.store import field_shapes
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


# ---------------------------------------------------------------------- queries, models, formats
def test_bad_queries_are_clear_errors(index):
    with pytest.raises(QueryError, match="empty query"):
        index.search("   ")
    with pytest.raises(QueryError, match="no words"):
        index.search("?!... ---")
    with pytest.raises(QueryError, match="none of the words"):
        index.search("zebra xylophone")
    with pytest.raises(QueryError, match="too long"):
        index.search("w1 " * 400)
    with pytest.raises(HanetError, match="mode"):
        index.search("w1", mode="fast")
    res = index.search_result("A zebra w12 is riding w40 on a w7!", k=3)
    assert res.normalized == "a zebra w12 is riding w40 on a w7"
    assert any("zebra" in w for w in res.warnings) and len(res.hits) == 3
    # the real spaCy parse found the verb phrase and its arguments
    phrases = index.encode("a zebra w12 is riding w40 on a w7").infos[0].phrases
    assert any(p.kind == "verb" and p.words == ["riding"] for p in phrases)
    assert any(p.kind == "noun" for p in phrases)


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


# ---------------------------------------------------------------------- captions, thumbnails, explanations
def test_video_to_text(index, corpus):
    caps = json.loads(corpus.captions.read_text())
    res = index.search_captions("clip04", k=5)
    assert res.total == 2 * len(corpus.names) and len(res.hits) == 5
    assert [h.caption for h in res.hits] == [h.caption for h in index.search_captions("clip04", k=5,
                                                                                       mode="exhaustive").hits]
    assert all(h.caption in caps[h.video_id] for h in res.hits)
    assert res.hits[0].score >= res.hits[-1].score
    with pytest.raises(UnknownVideoError):
        index.search_captions("nope")


def test_thumbnail_strips_are_the_model_frames(index, corpus):
    from PIL import Image

    T = index.config.max_frames_in_video
    for name in corpus.names:
        meta = index.video(name)
        assert meta["length"] == min(corpus.lengths[name], T)
        path = index.thumbnail(name)
        if corpus.names.index(name) >= 6:  # features without a video file
            assert path is None and not meta["source_available"]
            continue
        assert path is not None and meta["source_available"]
        img = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        assert img.shape == (96, 96 * meta["length"])
        # tile i shows the source frame at the model frame's time
        for i, t in enumerate(meta["frame_times"]):
            j = int(round(t * RATE))
            assert abs(img[:, 96 * i:96 * (i + 1)].mean() - frame_level(j)) < 6, (name, i, j)


def test_explanation_is_consistent_with_the_scores(index):
    hit = index.search("a man w12 is riding w40 on a w7", k=1)[0]
    exp = index.explain("a man w12 is riding w40 on a w7", hit.video_id)
    json.dumps(exp.to_dict())  # serialisable
    assert abs(exp.score - hit.score) < 1e-4
    assert abs(sum(c.contribution for c in exp.contributions) - exp.score) < 1e-5
    assert {c.name: c.score for c in exp.contributions} == pytest.approx(hit.scores, abs=1e-4)
    L = index.video(hit.video_id)["length"]
    for kind in ("verb", "noun"):
        ps = [p for p in exp.phrases if p.kind == kind]
        assert ps, kind
        # the individual- and local-level scores are the mean of the phrases' similarities
        assert np.mean([p.individual_similarity for p in ps]) == pytest.approx(hit.scores[f"ind_{kind}"], abs=1e-4)
        assert np.mean([p.local_similarity for p in ps]) == pytest.approx(hit.scores[kind], abs=1e-4)
        for p in ps:
            assert len(p.frames) == L and sum(f.weight for f in p.frames) == pytest.approx(1.0, abs=1e-5)
            assert p.top_frames[0] == int(np.argmax([f.weight for f in p.frames]))
            assert all(0 <= f < L for c in p.clips for f in c.frames)
    assert len(exp.video_concepts["verb"]) == 8 and exp.frame_times is not None
    text = exp.format()
    assert "concept_noun" in text and "riding" in text


# ---------------------------------------------------------------------- command line
def test_cli(tmp_path, run_dir, corpus, capsys):
    out = tmp_path / "idx"
    assert hanet_main(["index", "build", "--run", str(run_dir), "--features", str(corpus.features), "--out", str(out),
                       "--videos", str(corpus.videos), "--quiet", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["added"] == len(corpus.names) and rep["thumbnails"] == 6
    assert hanet_main(["index", "info", str(out)]) == 0
    assert f"{len(corpus.names)} videos" in capsys.readouterr().out
    assert hanet_main(["search", str(out), QUERY, "-k", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["hits"]) == 4 and res["mode"] == "two-stage"
    assert hanet_main(["search", str(out), QUERY, "-k", "4", "--mode", "exhaustive"]) == 0
    table = capsys.readouterr().out
    assert res["hits"][0]["video_id"] in table and "concept_verb" in table
    assert hanet_main(["explain", str(out), QUERY, res["hits"][0]["video_id"]]) == 0
    assert "contribution" in capsys.readouterr().out
    assert hanet_main(["index", "delete", str(out), res["hits"][0]["video_id"]]) == 0
    capsys.readouterr()
    # bad input: clear one-line errors, exit status 2
    for argv, msg in ((["search", str(out), "zebra"], "vocabulary"), (["search", str(out), ""], "empty query"),
                      (["search", str(out), "--video", "clip00"], "no captions are indexed"),
                      (["explain", str(out), QUERY, "nope"], "no video 'nope'"),
                      (["search", str(tmp_path / "none"), "w1"], "no such index"),
                      (["index", "add", str(out), "--features", str(tmp_path / "x.h5")], "not found")):
        assert hanet_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (argv, err)


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


def test_parsing_the_commands_imports_no_heavy_module():
    code = ("import sys; from hanet.cli import build_parser\n"
            "for c in ('index', 'search', 'explain', 'serve'): build_parser(c)\n"
            "heavy = [m for m in ('torch', 'faiss', 'fastapi', 'numpy') if m in sys.modules]\n"
            "assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


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
