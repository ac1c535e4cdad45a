"""HANet's time spans for a dataset's moment queries, in the moment benchmark's format.

A dataset with time windows (``hanet import``'s ``moments.jsonl``) lists, per query, its video
and where in the video the query happens. For each query whose video is in the split, the video
is encoded as the index encodes it, the query as search encodes it, and the span rule of
:mod:`hanet.model.moments` gives its windows: the span search shows first, then the other
windows of the query's curve by decreasing score. Where the ground truth rates 2-second clips
(QVHighlights), each clip's saliency is the query's curve averaged over the frames in it.
:mod:`hanet.moment_metrics` then judges them as the benchmark does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from hanet.moment_metrics import CLIP_SECONDS, MomentPrediction, MomentQuery

#: Windows per query (the benchmark's mAP reads the first 10).
WINDOWS = 10


def clip_saliency(curve: np.ndarray, times: Optional[Sequence[float]], length: int, duration: Optional[float]
                  ) -> Optional[list[float]]:
    """The query's curve averaged over each 2-second clip of the video (None without frame times).

    Clips no frame falls in take the value of the nearest frame.
    """
    if times is None or not duration or length < 1:
        return None
    t = np.asarray(times[:length], np.float64)
    n = max(int(duration / CLIP_SECONDS), 1)
    clip = np.minimum((t // CLIP_SECONDS).astype(np.int64), n - 1)
    out = np.empty(n)
    centres = (np.arange(n) + 0.5) * CLIP_SECONDS
    for k in range(n):
        inside = clip == k
        out[k] = curve[:length][inside].mean() if inside.any() else curve[int(np.argmin(np.abs(t - centres[k])))]
    return [float(x) for x in out]


@torch.no_grad()
def predict_moments(model: Any, data: Any, queries: Sequence[MomentQuery], batch_size: int = 64,
                    windows: int = WINDOWS, parser: Any = None) -> tuple[list[MomentPrediction], list[MomentQuery]]:
    """Ranked windows (and clip saliency where the ground truth has it) for the queries whose
    videos are in ``data``.

    Args:
        model: a trained :class:`~hanet.model.HANet`.
        data: the split (:class:`~hanet.data.dataset.RetrievalData`).
        queries: the ground truth (:func:`hanet.moment_metrics.read_ground_truth`).
        batch_size: videos encoded at once.
        windows: windows per query.
        parser: a loaded role-graph parser to share (None: load spaCy when a query needs it).

    Returns:
        ``(predictions, the queries they answer)``, in the ground truth's order.
    """
    from hanet.index.encode import encode_stored_videos
    from hanet.index.query import QueryEncoder
    from hanet.model.moments import moments
    from hanet.text.normalize import normalize_caption
    from hanet.text.rolegraph import graph_for_normalized

    model.eval()
    present = set(data.names)
    asked = [q for q in queries if q.vid in present and normalize_caption(q.query)]
    by_video: dict[str, list[MomentQuery]] = {}
    for q in asked:
        by_video.setdefault(q.vid, []).append(q)
    enc = QueryEncoder(model, data.word2int, parser=parser, max_chars=10 ** 6, cache_size=0)
    preds: dict[Any, MomentPrediction] = {}
    for part, fields, metas in encode_stored_videos(model, data.features, list(by_video), batch_size):
        probs = fields["verb_frame_probs"].astype(np.float16).astype(np.float32)  # as an index stores them
        for j, name in enumerate(part):
            qs = by_video[name]
            norms = [normalize_caption(q.query) for q in qs]
            known = [data.graphs.get(q.query) for q in qs]  # a dataset caption's graph, when prepare made one
            graphs = ([graph_for_normalized(g, q.query) for g, q in zip(known, qs)]
                      if all(g is not None for g in known) else None)
            e = enc.encode(norms, graphs=graphs, allow_unknown=True)
            meta = metas[j]
            length, times = int(meta["length"]), meta.get("frame_times")
            duration = meta.get("duration") or qs[0].duration
            for c, q in enumerate(qs):
                info = e.infos[c]
                slots = [p.slot for p in info.phrases if p.kind == "verb"]
                m = moments(probs[j:j + 1], np.array([length]), e.text.verb_phrase_probs[c].numpy(), slots, [times],
                            [duration], kernel=model.config.video.verb_kernel, sequence=info.verb_sequence(),
                            alternatives=windows)
                spans = [s for s in (m.hit_ranked or [[m.hit[0]]])[0] if s is not None and s.start is not None]
                wins = [(s.start, s.end, float(s.excess)) for s in spans] or [(0.0, float(duration or 0.0), 0.0)]
                sal = None
                if q.saliency is not None:
                    curve = m.curves[0] if m.curves is not None else np.zeros(max(length, 1))
                    sal = clip_saliency(curve, times, length, q.duration or duration)
                preds[q.qid] = MomentPrediction(q.qid, q.vid, wins, sal)
    judged = [q for q in asked if q.qid in preds]
    return [preds[q.qid] for q in judged], judged


def evaluate_spans(model: Any, data: Any, moments_file: str | Path, predictions_out: Optional[str | Path] = None
                   ) -> Optional[dict[str, Any]]:
    """Predict and judge the spans of a split's moment queries.

    Returns:
        ``{"queries", "metrics" (the benchmark's JSON), "mean_iou"}``, or None when no query's
        video is in the split.
    """
    from hanet.model.moments import temporal_iou
    from hanet.moment_metrics import evaluate_moments, read_ground_truth, write_predictions

    truth = read_ground_truth(moments_file)
    preds, judged = predict_moments(model, data, truth)
    if not preds:
        return None
    if predictions_out is not None:
        write_predictions(predictions_out, preds, {q.qid: q.query for q in judged})
    highlights = all(q.saliency is not None for q in judged) and all(p.saliency is not None for p in preds)
    if not highlights:
        preds = [MomentPrediction(p.qid, p.vid, p.windows) for p in preds]
    ev = evaluate_moments(preds, judged)
    ious = [max(temporal_iou(p.windows[0][:2], w) for w in q.windows) for p, q in zip(preds, judged)]
    return {"queries": len(judged), "metrics": ev.metrics, "mean_iou": float(np.mean(ious))}


__all__ = ["predict_moments", "evaluate_spans", "clip_saliency", "WINDOWS"]
