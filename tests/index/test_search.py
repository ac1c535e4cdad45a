"""Searching an index: exact and two-stage text-to-video, video-to-text, bad queries."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hanet.errors import HanetError, UnknownVideoError
from hanet.index import QueryError, SearchIndex, build_index
from hanet.index.rerank import video_outputs

from .corpus import QUERY, RATE, arrays, frame_level, make_corpus, padded  # noqa: F401


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
    feats, lens = padded(corpus, corpus.names, index.config.max_frames_in_video)
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
    from hanet.index.first_stage import first_stage_vectors

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


def test_one_query_parsed_alongside_its_word_states_encodes_as_parsed_first(index, parser):
    """A single query's parse runs on the parser's thread while its BiGRU runs: the same
    encoding, bit for bit, as parsing first."""
    from hanet.index.query import QueryEncoder

    for q in (QUERY, "a man w12 is riding w40 on a w7", "w90"):
        q_enc = QueryEncoder(index.model, index.word2int, parser=parser, cache_size=0)
        one = q_enc.encode([q]).text
        first = q_enc.encode([q], graphs=parser.parse([q_enc.check(q)])).text
        for name in ("global_embeds", "verb_embeds", "noun_embeds", "verb_probs", "noun_probs", "word_attn"):
            assert torch.equal(getattr(one, name), getattr(first, name)), (q, name)


def test_a_forked_child_encodes_with_a_parse_thread_of_its_own(index, parser):
    """A child forked after a query was encoded does not wait on its parent's parser thread."""
    import os
    import time

    from hanet.index.query import QueryEncoder

    q_enc = QueryEncoder(index.model, index.word2int, parser=parser)
    want = q_enc.encode([QUERY]).text.global_embeds
    pid = os.fork()
    if pid == 0:  # the child: exit 0 if it encodes the same, 1 otherwise, 2 on any error
        code = 2
        try:
            torch.set_num_threads(1)  # torch's own thread pool does not survive a fork either
            got = q_enc.encode([QUERY]).text.global_embeds
            code = 0 if torch.allclose(got, want, rtol=1e-5, atol=1e-6) else 1
        finally:
            os._exit(code)
    deadline = time.time() + 60
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child never finished encoding")
    assert os.waitstatus_to_exitcode(status) == 0


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


RIDING = "A man w12 is riding w40 on a w7"  # a verb phrase ("riding") and noun phrases


def test_every_hit_says_when_it_matches(tmp_path, index, corpus, run_dir, parser):
    """The span of each hit comes from its stored per-frame concepts and the query's phrase
    concepts (hanet.model.moments): the same in both modes, inside the clip, in its seconds."""
    from hanet.data.features import FeatureWriter
    from hanet.data.formats import kept_frame_times
    from hanet.model.moments import moments

    two = index.search_result(RIDING, k=16)
    full = index.search_result(RIDING, k=16, mode="exhaustive")
    by_id = {h.video_id: h for h in full.hits}
    enc = index.encode(RIDING)
    verb_slots = [p.slot for p in enc.infos[0].phrases if p.kind == "verb"]
    assert verb_slots  # "is riding"
    T = index.config.max_frames_in_video
    for h in two.hits:
        m = h.moment
        n = corpus.lengths[h.video_id]
        assert m is not None and m == by_id[h.video_id].moment
        assert 0 <= m.first_frame <= m.last_frame < min(n, T)
        assert 0.0 <= m.start < m.end <= n / RATE + 1e-9
        assert [p.kind for p in h.phrases] == ["verb"] * len(verb_slots) and h.phrases[0].text == "riding"
        # the rule applied to the model's own outputs for this video gives the same frames
        feats, lens = padded(corpus, [h.video_id], T)
        with torch.no_grad():
            out = index.model.encode_video(feats, lens)
        times = kept_frame_times(list(np.arange(n) / RATE), n, T)
        ref = moments(out.verb_frame_probs.numpy().astype(np.float16).astype(np.float32), lens.numpy(),
                      enc.text.verb_phrase_probs[0].numpy(), verb_slots, [times], [n / RATE],
                      kernel=index.config.video.verb_kernel).hit[0]
        assert (ref.first_frame, ref.last_frame) == (m.first_frame, m.last_frame)
    d = two.to_dict()["hits"][0]
    assert set(d["moment"]) >= {"start", "end"} and d["phrases"][0]["text"] == "riding" and "start" in d["phrases"][0]
    # features without frame times (the released MSR-VTT files carry none): frames, no seconds, said so
    w = FeatureWriter(str(tmp_path / "notimes.hdf5"), {"hanet_features": 1, "feature_dim": 64})
    rng = np.random.default_rng(1)
    for i, n in enumerate((9, 1)):
        w.add(f"v{i}", rng.normal(size=(n, 64)).astype(np.float32), {})
    w.close()
    build_index(run_dir, tmp_path / "notimes.hdf5", tmp_path / "nt", thumbnails=False)
    nt = SearchIndex.open(tmp_path / "nt", parser=parser)
    hits = {h.video_id: h for h in nt.search(RIDING, k=2)}
    assert hits["v0"].moment.start is None and hits["v0"].moment.note == "the features carry no frame times: frames only"
    assert hits["v1"].moment.note == "one frame: the whole clip" and hits["v1"].moment.last_frame == 0
    assert nt.search(QUERY, k=1)[0].moment.note == "the query names no action: the whole clip"


def test_default_candidates_follow_the_record_size(index):
    """By default a query's candidates read at most 36 MiB of records (500 at most)."""
    from hanet.index.audit import index_info
    from hanet.index.search import default_candidates
    from hanet.index.tuning import DEFAULT_CANDIDATES

    assert default_candidates(174_844) == 200  # an MSR-VTT-size float16 record
    assert default_candidates(103_304) == 350  # int8 frames
    assert default_candidates(21_468) == DEFAULT_CANDIDATES == 500  # the synth sizes
    assert default_candidates(10 ** 9) == 50  # never fewer than one step
    assert index.default_candidates() == default_candidates(index.videos.segments[0].dtype.itemsize)
    assert index_info(index.path)["default_candidates"] == index.default_candidates()
    assert index.search_result(QUERY, k=3).candidates == min(index.default_candidates(), index.num_videos)
