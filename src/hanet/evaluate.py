"""Retrieval evaluation: every caption encoded once, scores in bounded blocks, vectorised ranks.

The metrics are the authors' (:mod:`hanet.metrics`).

Videos are encoded in chunks of ``batch_size`` in name order, each padded to its own longest
video, exactly as the official evaluation batches them: with the official model, a short
video's embedding depends on that padding (see docs/quirks.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np
import torch

from hanet.data.batch import TextBatch
from hanet.model import HANet
from hanet.model.scoring import variant_scores
from hanet.metrics import METRIC_KEYS, metrics_from_ranks, query_ranks
from hanet.model.text import TextEncoderOutput
from hanet.model.video import VideoEncoderOutput


@torch.no_grad()
def encode_videos(model: HANet, batches: Iterable, device: torch.device | str,
                  keep_frame_probs: bool = False) -> VideoEncoderOutput:
    """Encode video batches and concatenate them (per-frame fields padded to a common length).

    Args:
        model: the model (eval mode is the caller's business).
        batches: an iterable of :class:`~hanet.data.batch.VideoBatch`.
        device: where to encode and keep the outputs.
        keep_frame_probs: keep the per-frame concept probabilities (explanations only).
    """
    parts = []
    for vb in batches:
        out = model.encode_video(vb.features.to(device), vb.lengths.to(device))
        parts.append(out if keep_frame_probs else out.without_frame_probs())
    return VideoEncoderOutput.cat(parts)


@torch.no_grad()
def score_matrices(model: HANet, videos: VideoEncoderOutput, caption_batches: Iterable[TextBatch | TextEncoderOutput],
                   num_captions: int, device: torch.device | str, names: Sequence[str] = ("fused",),
                   pair_budget: int = 400_000, out_dtype=np.float32, progress: bool = True,
                   outputs: Optional[dict[str, np.ndarray]] = None) -> dict[str, np.ndarray]:
    """Score all videos against captions that are encoded once, batch by batch.

    Memory on the device is bounded by the video encodings plus one block of
    ``pair_budget`` (video, caption) pairs, whatever the number of captions.

    Args:
        model: the model.
        videos: all videos' encoder outputs (on ``device``).
        caption_batches: :class:`TextBatch` es covering the captions in column order (or their
            already computed :class:`TextEncoderOutput`).
        num_captions: total number of captions (columns).
        device: where to encode and score.
        names: which matrices to return: any of :data:`SCORE_NAMES` and ``fused``.
        pair_budget: (video, caption) pairs scored at once.
        out_dtype: dtype of the returned matrices.
        progress: show a progress bar.
        outputs: preallocated (n_videos, num_captions) arrays to fill (e.g. memory maps).

    Returns:
        name -> (n_videos, num_captions) array.
    """
    from tqdm import tqdm

    Nv = len(videos)
    res = outputs if outputs is not None else {n: np.empty((Nv, num_captions), out_dtype) for n in names}
    col = 0
    bar = tqdm(total=num_captions, desc="scoring", unit="cap", disable=not progress, leave=False)
    for tb in caption_batches:
        text = tb if isinstance(tb, TextEncoderOutput) else model.encode_text(tb.to(device))
        nc = len(text)
        vb = max(1, min(Nv, pair_budget // max(nc, 1)))
        for s in range(0, Nv, vb):
            sc = model.score(videos.select(slice(s, s + vb)), text)
            for n in names:
                m = model.fused_score(sc) if n == "fused" else getattr(sc, n)
                res[n][s:s + vb, col:col + nc] = m.float().cpu().numpy()
        col += nc
        bar.update(nc)
    bar.close()
    if col != num_captions:
        raise RuntimeError(f"caption batches covered {col} captions, expected {num_captions}")
    return res


@dataclass
class EvalResult:
    """Metrics of the fused score and of each score alone.

    Attributes:
        metrics: ``fused`` and each score name -> metric dict (:data:`METRIC_KEYS`).
        video_names: row order.
        captions: column order.
        scores: the requested matrices (name -> (n_videos, n_captions)); ``fused`` always.
        seconds: wall time of encoding + scoring + ranking.
        t2v_ranks: (n_captions,) 0-based text-to-video rank of each caption under the fused score.
        v2t_ranks: (n_videos,) 0-based video-to-text rank of each video under the fused score.
    """

    metrics: dict[str, dict[str, float]]
    video_names: list[str]
    captions: list[str]
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    t2v_ranks: Optional[np.ndarray] = None
    v2t_ranks: Optional[np.ndarray] = None


@torch.no_grad()
def evaluate_split(model: HANet, data, device: torch.device | str = "cpu", batch_size: int = 300,
                   per_score: bool = True, pair_budget: int = 400_000, progress: bool = True) -> EvalResult:
    """Evaluate a model on a :class:`~hanet.data.dataset.RetrievalData` split.

    Args:
        model: the model; it is put in eval mode.
        data: the split.
        device: where to run.
        batch_size: videos / captions per encoding batch (official ``tst_batch_size``).
        per_score: also compute the table of each score alone (holds every matrix in memory).
        pair_budget: pairs scored at once.
        progress: show progress.
    """
    t0 = time.time()
    model.eval()
    videos = encode_videos(model, data.video_batches(batch_size), device)
    names = ["fused"] + (list(variant_scores(model.variant)) if per_score else [])
    scores = score_matrices(model, videos, data.caption_batches(batch_size), len(data.unique_captions), device,
                            names=names, pair_budget=pair_budget, progress=progress)
    gv, gc = data.gt_pairs
    ranks = {n: query_ranks(m, gv, gc) for n, m in scores.items()}
    metrics = {n: metrics_from_ranks(*r) for n, r in ranks.items()}
    return EvalResult(metrics, list(data.names), list(data.unique_captions), scores, time.time() - t0,
                      *ranks["fused"])


def format_table(metrics: dict[str, dict[str, float]]) -> str:
    """A plain-text table, one row per score."""
    head = f"{'score':<13}" + "".join(f"{k:>8}" for k in METRIC_KEYS)
    rows = [head, "-" * len(head)]
    for name, m in metrics.items():
        rows.append(f"{name:<13}" + "".join(f"{m[k]:>8.2f}" for k in METRIC_KEYS))
    return "\n".join(rows)


__all__ = ["encode_videos", "score_matrices", "evaluate_split", "EvalResult", "format_table"]


