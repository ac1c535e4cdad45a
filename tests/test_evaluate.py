"""Retrieval metrics and blocked evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hanet.data.dataset import RetrievalData
from hanet.data.formats import DatasetSpec
from hanet.evaluate import encode_videos, score_matrices
from hanet.metrics import metrics_from_ranks, paired_recall, query_ranks, retrieval_metrics, sign_test_p
from hanet.model import HANet


def sorted_rank_metrics(scores, q2m):
    """Ranks by sorting each row (the textbook definition) for queries with lists of ground truths."""
    ranks = []
    for i, gts in enumerate(q2m):
        order = np.argsort(-scores[i], kind="stable")
        pos = {m: r for r, m in enumerate(order)}
        ranks.append(min(pos[g] for g in gts))
    r = np.array(ranks)
    return [100 * (r < 1).mean(), 100 * (r < 5).mean(), 100 * (r < 10).mean(), np.median(r) + 1, r.mean() + 1]


def test_metrics_match_sorting_definition():
    rng = np.random.default_rng(0)
    nv, nc = 40, 150
    scores = rng.standard_normal((nv, nc)).astype(np.float32)
    # Each caption belongs to one video, except a few shared by two (as identical caption texts are).
    owner = rng.integers(0, nv, nc)
    gv, gc = list(owner), list(range(nc))
    for c in range(0, 20, 4):
        other = (owner[c] + 1) % nv
        gv.append(other)
        gc.append(c)
    for v in range(nv):  # every video has a caption
        if v not in owner:
            gv.append(v)
            gc.append(int(rng.integers(0, nc)))
    gv, gc = np.array(gv), np.array(gc)
    m = retrieval_metrics(scores, gv, gc)
    v2t = [sorted(set(gc[gv == v].tolist())) for v in range(nv)]
    t2v = [sorted(set(gv[gc == c].tolist())) for c in range(nc)]
    ir = sorted_rank_metrics(scores.T, t2v)
    cr = sorted_rank_metrics(scores, v2t)
    assert [m[k] for k in ("ir1", "ir5", "ir10", "imedr", "imeanr")] == pytest.approx(ir)
    assert [m[k] for k in ("cr1", "cr5", "cr10", "cmedr", "cmeanr")] == pytest.approx(cr)
    assert m["rsum"] == pytest.approx(sum(ir[:3]) + sum(cr[:3]))


def test_paired_recall_counts_discordant_queries_and_tests_them_exactly():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((30, 90)).astype(np.float32)
    gv, gc = np.arange(90) % 30, np.arange(90)
    t2v, v2t = query_ranks(scores, gv, gc)
    assert t2v.shape == (90,) and v2t.shape == (30,)
    assert metrics_from_ranks(t2v, v2t) == retrieval_metrics(scores, gv, gc)
    # A model compared with itself: no discordant query.
    same = paired_recall(t2v, t2v)
    assert set(same) == {"R@1", "R@5", "R@10"}
    assert same["R@1"]["a_only"] == same["R@1"]["b_only"] == 0 and same["R@1"]["p"] == 1.0
    # Hand-made ranks: A finds queries 0-5 first, B finds 5-7 first.
    a = np.array([0, 0, 0, 0, 0, 0, 3, 9, 20, 20])
    b = np.array([4, 4, 4, 4, 4, 0, 0, 0, 20, 2])
    c = paired_recall(a, b, ks=(1, 5))
    assert c["R@1"] == {"a": 60.0, "b": 30.0, "a_only": 5, "b_only": 2, "p": pytest.approx(sign_test_p(5, 2))}
    assert (c["R@5"]["a_only"], c["R@5"]["b_only"]) == (0, 2)
    with pytest.raises(ValueError, match="not the same queries"):
        paired_recall(a, b[:5])


def test_sign_test_is_the_exact_binomial():
    assert sign_test_p(0, 0) == 1.0 and sign_test_p(4, 4) == 1.0
    assert sign_test_p(10, 0) == pytest.approx(2 / 2 ** 10) and sign_test_p(0, 10) == sign_test_p(10, 0)
    # two-sided: 2 * P(X <= 2) for X ~ Bin(7, 1/2) = 2 * (1 + 7 + 21) / 128
    assert sign_test_p(5, 2) == pytest.approx(58 / 128)
    assert sign_test_p(600, 400) < 1e-9 < sign_test_p(520, 480)
    # large counts (a full-size test set) stay exact without big integers (scipy's binomtest value)
    assert sign_test_p(10000, 9500) == pytest.approx(3.521161118492126e-4, rel=1e-8)


def test_ties_are_broken_by_index_like_a_stable_sort():
    scores = np.array([[0.5, 0.5, 0.5, 0.1], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    # query 0: gt memory 2 ties with 0 and 1 -> rank 2; query 1: everything ties, gt 1 -> rank 1
    m = retrieval_metrics(scores, np.array([0, 1]), np.array([2, 1]))
    assert m["cr1"] == 0.0 and m["cr5"] == 100.0 and m["cmeanr"] == pytest.approx(1 + (2 + 1) / 2)
    ref = sorted_rank_metrics(scores, [[2], [1]])
    assert [m[k] for k in ("cr1", "cr5", "cr10", "cmedr", "cmeanr")] == pytest.approx(ref)


def test_block_size_does_not_change_scores(reference_dir, ref_config):
    torch.manual_seed(0)
    data = RetrievalData(DatasetSpec.load(reference_dir / "data"), "tst", ref_config.model)
    model = HANet(ref_config.model, seed=5).eval()
    videos = encode_videos(model, data.video_batches(7), "cpu")
    big = score_matrices(model, videos, data.caption_batches(64), len(data.unique_captions), "cpu",
                         names=["fused", "ind_noun"], progress=False)
    small = score_matrices(model, videos, data.caption_batches(3), len(data.unique_captions), "cpu",
                           names=["fused", "ind_noun"], pair_budget=7, progress=False)
    for k in big:
        np.testing.assert_allclose(small[k], big[k], atol=1e-6, rtol=0)
    assert big["fused"].shape == (10, 70)
