"""Retrieval metrics as the authors' evaluation defines them, vectorised, and paired comparisons.

Each caption of a video is one of its ground truths (a caption text shared by several videos has
all of them), a query's rank is the position of its best-ranked ground truth, R@K counts ranks
below K, MedR and MnR are 1-based, and rsum = R@1 + R@5 + R@10 of both directions, summed in the
authors' order. ``ir*`` is text-to-video (one query per caption), ``cr*`` video-to-text (one query
per video). A query's rank is its position in a stable sort of the scores (ties broken by index);
the official code sorts with numpy's unstable quicksort, so the two can only differ on exactly
tied scores (e.g. the phrase scores of a caption without verb phrases are 0 for every video).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

METRIC_KEYS = ("ir1", "ir5", "ir10", "imedr", "imeanr", "cr1", "cr5", "cr10", "cmedr", "cmeanr", "rsum")


def _ranks(scores: np.ndarray, q_idx: np.ndarray, m_idx: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Rank of each query's best ground truth, ties broken by memory index (a stable sort).

    Args:
        scores: (n_query, n_memory).
        q_idx, m_idx: ground-truth pairs (query i, memory j).
        chunk: queries per step (bounds the temporary).

    Returns:
        (n_query,) int64: memories scoring strictly above the best ground truth, plus those
        tying with it at a lower index; n_memory for a query without ground truth.
    """
    n_q, n_m = scores.shape
    vals = scores[q_idx, m_idx]
    best = np.full(n_q, -np.inf, dtype=scores.dtype)
    np.maximum.at(best, q_idx, vals)
    # Among ground truths at the best score, the lowest index ranks first.
    at_best = vals == best[q_idx]
    first = np.full(n_q, n_m, dtype=np.int64)
    np.minimum.at(first, q_idx[at_best], m_idx[at_best])
    ranks = np.full(n_q, n_m, dtype=np.int64)
    cols = np.arange(n_m)
    for s in range(0, n_q, chunk):
        blk = scores[s:s + chunk]
        b = best[s:s + chunk, None]
        ranks[s:s + chunk] = (blk > b).sum(1) + ((blk == b) & (cols[None, :] < first[s:s + chunk, None])).sum(1)
    ranks[~np.isfinite(best)] = n_m
    return ranks


def query_ranks(scores: np.ndarray, gt_videos: np.ndarray, gt_captions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based rank of every query's best ground truth, both directions.

    Args:
        scores: (n_videos, n_captions) similarity.
        gt_videos, gt_captions: (G,) ground-truth pairs.

    Returns:
        ``(t2v, v2t)``: (n_captions,) and (n_videos,) int64 ranks (0: found first).
    """
    t2v = _ranks(np.ascontiguousarray(scores.T), gt_captions, gt_videos)
    v2t = _ranks(scores, gt_videos, gt_captions)
    return t2v, v2t


def retrieval_metrics(scores: np.ndarray, gt_videos: np.ndarray, gt_captions: np.ndarray) -> dict[str, float]:
    """Official R@1/5/10, MedR, MnR of both directions and rsum.

    Args:
        scores: (n_videos, n_captions) similarity.
        gt_videos, gt_captions: (G,) ground-truth pairs.

    Returns:
        Ordered dict with keys :data:`METRIC_KEYS`.
    """
    return metrics_from_ranks(*query_ranks(scores, gt_videos, gt_captions))


def metrics_from_ranks(t2v: np.ndarray, v2t: np.ndarray) -> dict[str, float]:
    """:data:`METRIC_KEYS` from the 0-based ranks of :func:`query_ranks`."""
    out: dict[str, float] = {}
    for prefix, r in (("i", t2v), ("c", v2t)):
        n = len(r)
        for k in (1, 5, 10):
            out[f"{prefix}r{k}"] = 100.0 * float((r < k).sum()) / n
        out[f"{prefix}medr"] = float(np.median(r)) + 1
        out[f"{prefix}meanr"] = float(r.mean()) + 1
    # the authors' order of summation (floating-point addition is not associative: 1 ulp apart otherwise)
    out["rsum"] = out["cr1"] + out["cr5"] + out["cr10"] + out["ir1"] + out["ir5"] + out["ir10"]
    return {k: out[k] for k in METRIC_KEYS}


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign-test p-value of ``wins`` against ``losses`` (McNemar's exact test
    on the discordant pairs): the chance of a split at least this uneven if either side were
    equally likely to win each one."""
    n, k = wins + losses, min(wins, losses)
    if n == 0 or 2 * k == n:
        return 1.0
    # log C(n, i) for i = 0..k by a running sum, so that 10^5 discordant queries stay exact to
    # float precision without big integers.
    j = np.arange(1, k + 1, dtype=np.float64)
    log_c = np.concatenate([[0.0], np.cumsum(np.log((n - j + 1) / j))])
    top = log_c.max()
    log_tail = top + math.log(np.exp(log_c - top).sum()) - n * math.log(2.0)
    return float(min(1.0, 2.0 * math.exp(log_tail)))


def paired_recall(ranks_a: np.ndarray, ranks_b: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, dict[str, float]]:
    """Compare two models query by query on the same queries.

    A mean recall difference can come from a handful of queries; this counts the queries that
    one model finds within the top K and the other does not, and tests whether that split could
    be chance (exact McNemar test). Training-seed variation is not in it: compare seeds too.

    Args:
        ranks_a, ranks_b: (n_queries,) 0-based ranks of the same queries (:func:`query_ranks`).
        ks: cut-offs.

    Returns:
        ``{"R@K": {"a": recall %, "b": recall %, "a_only": n, "b_only": n, "p": p-value}}``.
    """
    if ranks_a.shape != ranks_b.shape:
        raise ValueError(f"rank arrays of different shapes {ranks_a.shape} and {ranks_b.shape}: not the same queries")
    out = {}
    for k in ks:
        ha, hb = ranks_a < k, ranks_b < k
        a_only, b_only = int((ha & ~hb).sum()), int((~ha & hb).sum())
        out[f"R@{k}"] = {"a": 100.0 * float(ha.mean()), "b": 100.0 * float(hb.mean()), "a_only": a_only,
                         "b_only": b_only, "p": sign_test_p(a_only, b_only)}
    return out



__all__ = ["METRIC_KEYS", "query_ranks", "retrieval_metrics", "metrics_from_ranks", "sign_test_p", "paired_recall"]
