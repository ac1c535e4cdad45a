"""Moment retrieval and highlight detection metrics, as the QVHighlights benchmark defines them.

The benchmark (Lei et al., "QVHighlights", NeurIPS 2021; its ``standalone_eval`` is what
Moment-DETR, QD-DETR and CG-DETR report) judges, for each query, a ranked list of predicted
windows ``[start, end, score]`` in seconds and, optionally, a saliency score per 2-second clip:

* **MR-R1@t**: the share of queries whose first predicted window (the list's first, whatever its
  score) has IoU >= t with the ground-truth window it overlaps most.
* **MR-mAP@t**: per query, detection average precision of its first 10 predicted windows
  (taken in score order, each matching at most one unmatched ground-truth window at IoU >= t;
  precision interpolated as in PASCAL VOC 2011), averaged over queries; ``MR-mAP`` averages
  t = 0.5, 0.55, ..., 0.95.
* Both over all queries (``full``) and over queries with ground-truth windows of a length in
  (0, 10] s (``short``), (10, 30] s (``middle``) and (30, 150] s (``long``), keeping only the
  windows in that range.
* **HL-mAP** and **HL-Hit1** at three saliency levels (a clip counts as relevant when an
  annotator gave it at least 2 ``Fair``, 3 ``Good`` or 4 ``VeryGood``): AP of the clip ranking
  per annotator, and whether the top-scored clip is relevant to any annotator.

Every figure is a percentage rounded to two decimals, under the benchmark's JSON keys, so a
file written here compares line for line with the benchmark's own output. The code is written
from those definitions; ``tests/test_moment_metrics.py`` checks it on hand-made cases and, where
the benchmark's sample predictions are on disk, against the figures its repository records.

Ground truth (one JSON object per line, the QVHighlights release format; ``hanet import``
writes it as ``moments.jsonl``)::

    {"qid": 7803, "query": "...", "vid": "RoripwjYFp8_360.0_510.0", "duration": 150,
     "relevant_windows": [[26, 36]], "relevant_clip_ids": [13, 14, 15, 16, 17],
     "saliency_scores": [[4, 4, 2], [3, 4, 2], [2, 2, 3], [2, 2, 2], [0, 1, 3]]}

Predictions::

    {"qid": 7803, "vid": "...", "pred_relevant_windows": [[24.0, 38.0, 0.93], ...],
     "pred_saliency_scores": [-0.2, 0.4, ...]}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from hanet.errors import DataError

#: IoU thresholds of the benchmark: 0.5, 0.55, ..., 0.95.
IOU_THRESHOLDS: tuple[float, ...] = tuple(float(f"{t:.2f}") for t in np.linspace(0.5, 0.95, 10))
#: Ground-truth window lengths (seconds) of each range: (low, high], and "full" for all.
LENGTH_RANGES: dict[str, tuple[float, float]] = {"short": (0, 10), "middle": (10, 30), "long": (30, 150),
                                                 "full": (0, 150)}
#: Predicted windows per query that count for mAP.
MAX_PRED_WINDOWS = 10
#: Seconds per saliency clip.
CLIP_SECONDS = 2
#: Saliency levels: name -> the least score (0..4) that makes a clip relevant.
SALIENCY_LEVELS: dict[str, int] = {"Fair": 2, "Good": 3, "VeryGood": 4}
#: Lines read from one file at most (a ground-truth or prediction file is a few MB).
MAX_LINES = 10_000_000


def _pct(x: float) -> float:
    """A fraction as the benchmark writes it: percent, two decimals."""
    return float(f"{100 * x:.2f}")


# ---------------------------------------------------------------------- reading
@dataclass
class MomentQuery:
    """One ground-truth query.

    Attributes:
        qid: query id (int or str, as in the file).
        vid: video id.
        duration: the video's length in seconds, or None when unknown.
        windows: ``[(start, end), ...]`` seconds.
        query: its text.
        clip_ids: saliency clips judged (indices of 2-second clips), or None.
        saliency: ``(len(clip_ids), annotators)`` scores 0..4, or None.
    """

    qid: Any
    vid: str
    duration: Optional[float]
    windows: list[tuple[float, float]]
    query: str = ""
    clip_ids: Optional[list[int]] = None
    saliency: Optional[list[list[float]]] = None


@dataclass
class MomentPrediction:
    """One query's predictions: windows ``(start, end, score)`` in rank order, clip saliency."""

    qid: Any
    vid: str
    windows: list[tuple[float, float, float]]
    saliency: Optional[list[float]] = None


def _lines(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, object) of a JSON-lines file, with errors that name the file and line."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    for no, line in enumerate(text.splitlines(), 1):
        if no > MAX_LINES:
            raise DataError(f"{path}: more than {MAX_LINES:,} lines")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise DataError(f"{path}:{no}: not a JSON object ({exc})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{no}: a line must be a JSON object, not {type(obj).__name__}")
        yield no, obj


def _number(v: Any, where: str, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise DataError(f"{where}: {what} must be a finite number, got {v!r}")
    return float(v)


def _qid(obj: dict[str, Any], where: str) -> Any:
    q = obj.get("qid")
    if isinstance(q, bool) or not isinstance(q, (int, str)) or q == "":
        raise DataError(f"{where}: 'qid' must be an integer or a non-empty string, got {q!r}")
    return q


def _window(w: Any, where: str, size: int) -> tuple[float, ...]:
    if not isinstance(w, (list, tuple)) or len(w) != size:
        raise DataError(f"{where}: a window must be a list of {size} numbers, got {w!r}")
    vals = tuple(_number(x, where, "a window value") for x in w)
    if vals[0] < 0:
        raise DataError(f"{where}: window {list(w)} starts before 0")
    if vals[1] < vals[0]:
        raise DataError(f"{where}: window {list(w)} ends before it starts")
    return vals


def read_ground_truth(path: str | Path) -> list[MomentQuery]:
    """Read a ground-truth file (see the module docstring).

    Raises:
        DataError: naming the file and line: not JSON lines, a missing or malformed field, a
            window that ends before it starts, starts before 0 or ends past the duration, a
            query id seen twice.
    """
    p = Path(path)
    out: list[MomentQuery] = []
    seen: dict[Any, int] = {}
    for no, obj in _lines(p):
        where = f"{p}:{no}"
        qid = _qid(obj, where)
        if qid in seen:
            raise DataError(f"{where}: query id {qid!r} already on line {seen[qid]}")
        seen[qid] = no
        vid = obj.get("vid")
        if not isinstance(vid, str) or not vid:
            raise DataError(f"{where}: 'vid' must be a non-empty string, got {vid!r}")
        dur = obj.get("duration")
        duration = None if dur is None else _number(dur, where, "'duration'")
        if duration is not None and duration <= 0:
            raise DataError(f"{where}: 'duration' must be positive, got {dur!r}")
        wins = obj.get("relevant_windows")
        if not isinstance(wins, list) or not wins:
            raise DataError(f"{where}: 'relevant_windows' must be a non-empty list of [start, end]")
        windows = [_window(w, where, 2) for w in wins]
        if duration is not None:
            for w in windows:
                if w[1] > duration + 1e-6:
                    raise DataError(f"{where}: window {list(w)} ends past the video's duration {duration:g}")
        clip_ids = obj.get("relevant_clip_ids")
        sal = obj.get("saliency_scores")
        if clip_ids is not None or sal is not None:
            if not (isinstance(clip_ids, list) and isinstance(sal, list) and len(clip_ids) == len(sal)):
                raise DataError(f"{where}: 'relevant_clip_ids' and 'saliency_scores' must be lists of equal length")
            for c in clip_ids:
                if isinstance(c, bool) or not isinstance(c, int) or c < 0:
                    raise DataError(f"{where}: a clip id must be an integer >= 0, got {c!r}")
            width = None
            for row in sal:
                if not isinstance(row, list) or not row:
                    raise DataError(f"{where}: each saliency entry must be a list of scores, got {row!r}")
                vals = [_number(x, where, "a saliency score") for x in row]
                width = width or len(vals)
                if len(vals) != width:
                    raise DataError(f"{where}: saliency entries of different lengths")
        query = obj.get("query", "")
        out.append(MomentQuery(qid, vid, duration, [(w[0], w[1]) for w in windows],
                               query if isinstance(query, str) else "", clip_ids, sal))
    if not out:
        raise DataError(f"{p}: no queries")
    return out


def read_predictions(path: str | Path) -> list[MomentPrediction]:
    """Read a prediction file (see the module docstring).

    Raises:
        DataError: naming the file and line: not JSON lines, a missing or malformed field, a
            query id seen twice.
    """
    p = Path(path)
    out: list[MomentPrediction] = []
    seen: dict[Any, int] = {}
    for no, obj in _lines(p):
        where = f"{p}:{no}"
        qid = _qid(obj, where)
        if qid in seen:
            raise DataError(f"{where}: query id {qid!r} already on line {seen[qid]}")
        seen[qid] = no
        vid = obj.get("vid", "")
        wins = obj.get("pred_relevant_windows")
        sal = obj.get("pred_saliency_scores")
        if wins is None and sal is None:
            raise DataError(f"{where}: neither 'pred_relevant_windows' nor 'pred_saliency_scores'")
        windows: list[tuple[float, float, float]] = []
        if wins is not None:
            if not isinstance(wins, list) or not wins:
                raise DataError(f"{where}: 'pred_relevant_windows' must be a non-empty list of [start, end, score]")
            windows = [_window(w, where, 3) for w in wins]  # type: ignore[misc]
        saliency = None
        if sal is not None:
            if not isinstance(sal, list) or not sal:
                raise DataError(f"{where}: 'pred_saliency_scores' must be a non-empty list of numbers")
            saliency = [_number(x, where, "a saliency score") for x in sal]
        out.append(MomentPrediction(qid, str(vid), windows, saliency))
    if not out:
        raise DataError(f"{p}: no predictions")
    return out


# ---------------------------------------------------------------------- moment retrieval
def iou_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) temporal IoU of every window of ``a`` (N, 2) with every window of ``b`` (M, 2)."""
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _voc_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the precision envelope (PASCAL VOC 2011 interpolation)."""
    p = np.concatenate([[0.0], precision, [0.0]])
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    step = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[step] - r[step - 1]) * p[step]))


def detection_ap(truth: Sequence[tuple[float, float]], preds: Sequence[tuple[float, float, float]],
                 thresholds: Sequence[float] = IOU_THRESHOLDS) -> np.ndarray:
    """Average precision of one query's predicted windows at each IoU threshold.

    Predictions are taken by decreasing score (ties in list order); each matches the unmatched
    ground-truth window it overlaps most, if that IoU reaches the threshold.

    Returns:
        (len(thresholds),) APs in [0, 1].
    """
    nt = len(thresholds)
    if not preds:
        return np.zeros(nt)
    order = sorted(range(len(preds)), key=lambda i: -preds[i][2])  # stable: ties keep list order
    pw = np.array([preds[i][:2] for i in order], np.float64)
    gw = np.array(truth, np.float64).reshape(-1, 2)
    ious = iou_cross(pw, gw)  # (P, G)
    tp = np.zeros((nt, len(pw)))
    fp = np.zeros((nt, len(pw)))
    taken = np.zeros((nt, len(gw)), bool)
    for j in range(len(pw)):
        by_overlap = ious[j].argsort()[::-1]  # most overlapping first
        for k, thr in enumerate(thresholds):
            for g in by_overlap:
                if ious[j, g] < thr:
                    break
                if taken[k, g]:
                    continue
                tp[k, j], taken[k, g] = 1, True
                break
            fp[k, j] = 1 - tp[k, j]
    tps, fps = np.cumsum(tp, 1), np.cumsum(fp, 1)
    recall = tps / max(len(gw), 1)
    precision = tps / (tps + fps)
    return np.array([_voc_ap(precision[k], recall[k]) for k in range(nt)])


def _in_range(queries: list[MomentQuery], lo: float, hi: float) -> list[MomentQuery]:
    """Queries with ground-truth windows of length in (lo, hi], keeping only those windows."""
    if (lo, hi) == LENGTH_RANGES["full"]:
        return queries
    out = []
    for q in queries:
        kept = [w for w in q.windows if lo < w[1] - w[0] <= hi]
        if kept:
            out.append(MomentQuery(q.qid, q.vid, q.duration, kept, q.query, q.clip_ids, q.saliency))
    return out


def moment_retrieval(preds: dict[Any, MomentPrediction], truth: list[MomentQuery]) -> dict[str, Any]:
    """``{range: {"MR-mAP": {threshold: value, "average": value}, "MR-R1": {threshold: value}}}``."""
    out: dict[str, Any] = {}
    for name, (lo, hi) in LENGTH_RANGES.items():
        qs = _in_range(truth, lo, hi)
        if not qs:
            out[name] = {"MR-mAP": {**{str(t): 0.0 for t in IOU_THRESHOLDS}, "average": 0.0},
                         "MR-R1": {str(t): 0.0 for t in IOU_THRESHOLDS}}
            continue
        aps = np.array([detection_ap(q.windows, preds[q.qid].windows[:MAX_PRED_WINDOWS]) for q in qs])
        per_t = aps.mean(0)
        mean_ap = {**{str(t): _pct(v) for t, v in zip(IOU_THRESHOLDS, per_t)}, "average": _pct(float(per_t.mean()))}
        top = np.array([preds[q.qid].windows[0][:2] for q in qs], np.float64)
        ious = np.empty(len(qs))
        for i, q in enumerate(qs):
            gw = np.array(q.windows, np.float64)
            ious[i] = iou_cross(top[i:i + 1], gw)[0].max()  # the window it overlaps most
        r1 = {str(t): _pct(float(np.mean(ious >= t))) for t in IOU_THRESHOLDS}
        out[name] = {"MR-mAP": mean_ap, "MR-R1": r1}
    return out


# ---------------------------------------------------------------------- highlights
def _clip_scores(q: MomentQuery) -> np.ndarray:
    """(clips, annotators) saliency of every 2-second clip of the video (0 where not judged)."""
    n = int((q.duration or 0) / CLIP_SECONDS)
    sal = np.asarray(q.saliency, np.float64)
    full = np.zeros((n, sal.shape[1]))
    ids = np.asarray(q.clip_ids, np.int64)
    if len(ids) and ids.max() >= n:
        raise DataError(f"query {q.qid!r}: clip id {int(ids.max())} lies past its video's "
                        f"{n} clips of {CLIP_SECONDS} s")
    full[ids] = sal
    return full


def ranking_ap(relevant: np.ndarray, scores: np.ndarray) -> float:
    """AP of a ranking as the benchmark computes it: interpolated precision at each recall level
    reached, averaged (1 when every item is relevant, 0 when none is)."""
    if relevant.min() == relevant.max():
        return float(relevant[0] == 1)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], relevant[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last item of each distinct score
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    precision = tps / (tps + fps)
    recall = (tps / tps[-1]).astype(np.float32)
    # from the lowest score up, with precision 1 at recall 0 appended: the benchmark's layout
    precision, recall = np.r_[precision[::-1], 1.0], np.r_[recall[::-1], np.float32(0)]
    precision = np.maximum.accumulate(precision)
    return float(np.mean(precision[np.flatnonzero(np.diff(recall))]))


def highlights(preds: dict[Any, MomentPrediction], truth: list[MomentQuery]) -> dict[str, Any]:
    """``{"HL-min-Fair": {"HL-mAP": v, "HL-Hit1": v}, ...}`` over queries with saliency."""
    full = {q.qid: _clip_scores(q) for q in truth}
    out: dict[str, Any] = {}
    for name, least in SALIENCY_LEVELS.items():
        hits, aps = [], []
        for q in truth:
            relevant = (full[q.qid] >= least).astype(np.float64)
            pred = np.asarray(preds[q.qid].saliency, np.float64)
            top = int(np.argmax(pred))
            hits.append(relevant[top].max() if top < len(relevant) else 0.0)
            n = len(relevant)
            pred = pred[:n] if len(pred) >= n else np.r_[pred, np.zeros(n - len(pred))]
            aps.extend(ranking_ap(relevant[:, a], pred) if n else 0.0 for a in range(relevant.shape[1]))
        out[f"HL-min-{name}"] = {"HL-mAP": _pct(float(np.mean(aps))), "HL-Hit1": _pct(float(np.mean(hits)))}
    return out


# ---------------------------------------------------------------------- the whole evaluation
@dataclass
class MomentEvaluation:
    """The metrics and what was matched.

    Attributes:
        metrics: the benchmark's JSON (``brief`` first, then each block by key).
        queries: queries judged.
        missing: ground-truth query ids with no prediction (judged only with ``shared``).
        extra: predicted query ids not in the ground truth (ignored).
    """

    metrics: dict[str, Any]
    queries: int
    missing: list[Any] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)


def evaluate_moments(predictions: list[MomentPrediction], truth: list[MomentQuery],
                     shared: bool = False) -> MomentEvaluation:
    """The benchmark's metrics.

    Args:
        predictions: one per query.
        truth: the ground truth.
        shared: judge only the queries both files hold (the benchmark's ``match_number=False``);
            by default the two files must hold the same query ids, as the benchmark requires.

    Raises:
        DataError: the query ids differ (without ``shared``), no query in common, highlight
            predictions for ground truth without saliency, or the other way round.
    """
    pred_ids = {p.qid for p in predictions}
    true_ids = {q.qid for q in truth}
    missing = [q.qid for q in truth if q.qid not in pred_ids]
    extra = [p.qid for p in predictions if p.qid not in true_ids]
    if (missing or extra) and not shared:
        raise DataError(f"the predictions and the ground truth hold different query ids ({len(missing)} without a "
                        f"prediction, e.g. {missing[:3]}; {len(extra)} not in the ground truth, e.g. {extra[:3]}); "
                        f"judge the {len(pred_ids & true_ids)} they share with --shared-only")
    preds = {p.qid: p for p in predictions if p.qid in true_ids}
    truth = [q for q in truth if q.qid in preds]
    if not truth:
        raise DataError("the predictions and the ground truth share no query id")
    brief: dict[str, float] = {}
    blocks: dict[str, Any] = {}
    first = preds[truth[0].qid]
    if first.windows:
        lacking = [q for q in truth if not preds[q.qid].windows]
        if lacking:
            raise DataError(f"query {lacking[0].qid!r} has no predicted windows (every query needs them when the first has)")
        mr = moment_retrieval(preds, truth)
        blocks.update(mr)
        brief.update({"MR-full-R1@0.5": mr["full"]["MR-R1"]["0.5"], "MR-full-R1@0.7": mr["full"]["MR-R1"]["0.7"],
                      "MR-full-mAP": mr["full"]["MR-mAP"]["average"], "MR-full-mAP@0.5": mr["full"]["MR-mAP"]["0.5"],
                      "MR-full-mAP@0.75": mr["full"]["MR-mAP"]["0.75"],
                      "MR-long-mAP": mr["long"]["MR-mAP"]["average"],
                      "MR-middle-mAP": mr["middle"]["MR-mAP"]["average"],
                      "MR-short-mAP": mr["short"]["MR-mAP"]["average"]})
        brief = dict(sorted(brief.items()))
    if first.saliency is not None:
        bad = next((q for q in truth if preds[q.qid].saliency is None or q.saliency is None or q.duration is None),
                   None)
        if bad is not None:
            raise DataError(f"query {bad.qid!r}: highlight scores need predicted saliency and ground-truth "
                            f"'duration', 'relevant_clip_ids' and 'saliency_scores' for every query")
        hl = highlights(preds, truth)
        blocks.update(hl)
        for name, v in hl.items():
            brief.update({f"{name}-mAP": v["HL-mAP"], f"{name}-Hit1": v["HL-Hit1"]})
    metrics = {"brief": brief, **dict(sorted(blocks.items()))}
    return MomentEvaluation(metrics, len(truth), missing if shared else [], extra if shared else [])


def write_ground_truth(path: str | Path, queries: Iterable[MomentQuery]) -> None:
    """Write ground truth in the release format (atomically)."""
    from hanet.io import atomic_write_bytes

    lines = []
    for q in queries:
        obj: dict[str, Any] = {"qid": q.qid, "query": q.query, "vid": q.vid, "duration": q.duration,
                               "relevant_windows": [[round(a, 3), round(b, 3)] for a, b in q.windows]}
        if q.clip_ids is not None:
            obj.update(relevant_clip_ids=q.clip_ids, saliency_scores=q.saliency)
        lines.append(json.dumps(obj))
    atomic_write_bytes(Path(path), ("\n".join(lines) + "\n").encode())


def write_predictions(path: str | Path, predictions: Iterable[MomentPrediction], queries: Optional[dict] = None) -> None:
    """Write predictions in the benchmark's format (atomically); ``queries``: qid -> text."""
    from hanet.io import atomic_write_bytes

    lines = []
    for p in predictions:
        obj: dict[str, Any] = {"qid": p.qid}
        if queries and p.qid in queries:
            obj["query"] = queries[p.qid]
        obj["vid"] = p.vid
        obj["pred_relevant_windows"] = [[round(a, 3), round(b, 3), round(s, 4)] for a, b, s in p.windows]
        if p.saliency is not None:
            obj["pred_saliency_scores"] = [round(s, 4) for s in p.saliency]
        lines.append(json.dumps(obj))
    atomic_write_bytes(Path(path), ("\n".join(lines) + "\n").encode())


__all__ = ["IOU_THRESHOLDS", "LENGTH_RANGES", "MomentQuery", "MomentPrediction", "MomentEvaluation",
           "read_ground_truth", "read_predictions", "evaluate_moments", "detection_ap", "ranking_ap", "iou_cross",
           "moment_retrieval", "highlights", "write_ground_truth", "write_predictions"]
