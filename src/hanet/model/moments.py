"""Where in a video a query matches: time spans from the action level's per-frame concepts.

HANet's action level classifies every frame into verb concepts (512 for MSR-VTT), and the
video's verb concepts are those frames' top-k MIL pool: each concept's per-frame probability
(``verb_frame_probs``) is the model's own answer to "when does this action happen". The text
side classifies every word into the same concepts; a verb phrase's concepts are its words'
(max over the words, ``verb_phrase_probs``). A phrase's span is read where the two meet:

**The rule.** Take the phrase's :data:`TOP_CONCEPTS` most probable verb concepts and, at each
of the video's ``L`` frames, the video's probabilities of those concepts averaged with the
phrase's probabilities as weights: ``r_t``. The span is the contiguous run of frames ``[a, b]``
where ``r`` stands highest above its own clip average:
``argmax_{a <= b} sum_{t=a..b} (r_t - mean(r))`` (a maximum-sum window; no threshold to tune).
A concept that is flat over the clip gives no stretch (``excess`` 0): the span is then the whole
clip, said so. The hit's span applies the rule to the mean of the query's verb phrases' curves;
a query without a verb phrase names no action and gets the whole clip, said so.

Why not the individual level's phrase-frame attention (what ``ind_verb`` averages)? It marks
the few frames that look most like the phrase (a peak at the instant a shape vanishes), not how
long the action lasts: on the built-in world's validation split its spans had a mean temporal
IoU of 0.44 with the true action for captions naming one action of a two-action clip, below the
whole clip's 0.50; the concept curves above reach 0.67 (``hanet evaluate --world``, docs/search.md).
Three concepts rather than the single most probable one: a phrase's words often split their
mass between a concept and its near neighbours (on the validation split of three training seeds,
mean IoU 0.643 / 0.650 for one action / each action of a sequence, against 0.625 / 0.629 with the
top concept alone and 0.625 / 0.573 with all concepts weighted, where unrelated concepts blur the curve).
Spans cost no model call: the curves are stored per video and the phrase concepts come with the
query's encoding.

**The clip's edges.** The verb classifier is a temporal convolution (``verb_kernel`` = 5 frames,
zero-padded, as in the official code): at the first and last ``kernel // 2`` frames part of its
window lies outside the clip, so an action that runs to the clip's end scores lower there and
the window stopped short of it (predicted spans sat about a frame inside the true ones at both
ends). Those frames therefore take the value of the nearest frame whose window lies wholly in the
clip (:func:`edge_filled`) before the window is chosen. On the validation split of three training
seeds: mean IoU 0.682 / 0.682 for one action / each action of a sequence, against 0.643 / 0.650
with the raw edge frames, with spans of the same mean length (0.47 of the clip).

**Seconds.** A feature frame stands for the time from the midpoint with its predecessor to the
midpoint with its successor (the first from 0, the last to the clip's duration when known):
for uniform sampling (``hanet extract --num-frames``, the frame at the centre of each of N equal
parts) these are exactly the parts. Features without frame times (the released MSR-VTT files)
give spans in frames only, with a note.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional, Sequence

import numpy as np

#: excess below this is "flat" (float noise)
UNIFORM_EPS = 1e-6


@dataclass
class Span:
    """A stretch of a video.

    Attributes:
        first_frame: first feature frame (0-based).
        last_frame: last feature frame (inclusive).
        start: start in seconds, or None without frame times.
        end: end in seconds, or None.
        excess: how far the concept stands above its clip average over the span (sum over
            its frames; 0: a flat curve).
        note: why the span is the whole clip or has no times, else None.
    """

    first_frame: int
    last_frame: int
    start: Optional[float]
    end: Optional[float]
    excess: float
    note: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        if self.start is not None and self.end is not None:
            return f"{self.start:.1f}\u2013{self.end:.1f} s"
        return f"frames {self.first_frame}\u2013{self.last_frame}"


def best_windows(excess: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The maximum-sum window of each row, all rows at once.

    Args:
        excess: (..., F) per-frame values (what lies past a row's length is ignored).
        lengths: (...) valid frames per row (>= 1).

    Returns:
        (first, last, total), each (...): the window ``[first, last]`` maximising
        ``sum(excess_t)`` over it, and that sum (ties: the earliest, then the shortest).
    """
    L = np.maximum(np.asarray(lengths, np.int64), 1)
    F = np.shape(excess)[-1]
    t = np.arange(F)
    valid = t < L[..., None]
    x = np.where(valid, np.asarray(excess, np.float64), 0.0)
    c = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x, -1)], -1)  # (..., F + 1)
    sums = c[..., None, 1:] - c[..., :-1, None]  # [a, b] -> sum of frames a..b, (..., F, F)
    ok = (t[:, None] <= t[None, :]) & valid[..., None, :]  # a <= b < L
    sums = np.where(ok, sums, -np.inf)
    flat = sums.reshape(sums.shape[:-2] + (F * F,))
    best = flat.argmax(-1)  # first maximum in (a, b) order: earliest start, then shortest
    return best // F, best % F, np.take_along_axis(flat, best[..., None], -1)[..., 0]


def frame_bounds(times: Optional[Sequence[float]], length: int, duration: Optional[float] = None
                 ) -> Optional[np.ndarray]:
    """(length + 1,) the time boundaries of a video's feature frames, or None without times.

    Args:
        times: each feature frame's time in seconds (at least ``length`` of them), or None.
        length: valid frames.
        duration: the clip's duration, if known (the last frame ends there).
    """
    if not times or len(times) < length or length < 1:
        return None
    t = np.asarray(times[:length], np.float64)
    if length == 1:
        return np.array([0.0, float(duration)]) if duration else None
    first = max(0.0, t[0] - (t[1] - t[0]) / 2)
    last = t[-1] + (t[-1] - t[-2]) / 2
    if duration and float(duration) > t[-1]:
        last = float(duration)
    return np.concatenate([[first], (t[1:] + t[:-1]) / 2, [last]])


def make_span(first: int, last: int, excess: float, length: int, bounds: Optional[np.ndarray],
              note: Optional[str] = None) -> Span:
    """A :class:`Span` from a window, with seconds where the frames have times (``note``: the
    whole clip, for that reason)."""
    first, last = int(first), int(last)
    if note is not None:
        first, last, excess = 0, max(length - 1, 0), 0.0
    elif length <= 1:
        note = "one frame: the whole clip"
        first, last = 0, max(length - 1, 0)
    elif excess <= UNIFORM_EPS:
        note = "the concept is flat over the clip: the whole clip"
        first, last = 0, length - 1
    start = end = None
    if bounds is not None:
        start, end = round(float(bounds[first]), 3), round(float(bounds[last + 1]), 3)
    elif note is None:
        note = "the features carry no frame times: frames only"
    return Span(first, last, start, end, round(float(max(excess, 0.0)), 6), note)


@dataclass
class Moments:
    """Spans of a block of videos for one query.

    Attributes:
        hit: the span of each video (None when there is nothing to read it from).
        phrases: per video, ``(kind, slot) -> Span`` of each of the query's verb phrases.
        ranked: per video, ``(kind, slot) -> [Span, ...]``: each phrase's span, then other
            windows of its curve by decreasing excess (:func:`ranked_windows`), when asked for.
        hit_ranked: per video, the hit's span, then other windows of the query's curve (the
            mean of its phrases'), when asked for.
        curves: (Nv, F) the query's curve over each video's frames (the mean of its phrases',
            centred on the clip's average; 0 past a video's length), when asked for.
    """

    hit: list[Optional[Span]]
    phrases: list[dict[tuple[str, int], Span]]
    ranked: Optional[list[dict[tuple[str, int], list[Span]]]] = None
    hit_ranked: Optional[list[list[Span]]] = None
    curves: Optional[np.ndarray] = None


#: Windows that overlap a better one by more than this IoU are not listed again (ranked lists).
RANK_NMS_IOU = 0.7


def ranked_windows(excess: np.ndarray, length: int, first: tuple[int, int], count: int,
                   nms_iou: float = RANK_NMS_IOU) -> list[tuple[int, int, float]]:
    """A window, then the other windows of a curve by decreasing summed excess.

    The benchmarks judge a ranked list of windows per query (mAP); a span rule gives one. The
    list starts with the rule's window and goes on with every other window ``[a, b]`` of the
    curve in order of ``sum(excess[a..b])``, leaving out those that overlap one already listed
    by more than ``nms_iou`` (temporal IoU in frames).

    Args:
        excess: (F,) per-frame values (centred: above or below the clip's average).
        length: valid frames.
        first: the rule's window ``(a, b)``, listed first.
        count: windows wanted.

    Returns:
        ``[(a, b, sum), ...]``, at most ``count``.
    """
    L = max(int(length), 1)
    c = np.concatenate([[0.0], np.cumsum(np.asarray(excess[:L], np.float64))])
    a, b = np.triu_indices(L)
    sums = c[b + 1] - c[a]
    order = np.lexsort((b - a, a, -sums))  # best sum, then earliest, then shortest
    picked = [(int(first[0]), int(first[1]), float(c[first[1] + 1] - c[first[0]]))]
    for i in order.tolist():
        if len(picked) >= count:
            break
        wa, wb = int(a[i]), int(b[i])
        if any(temporal_iou((wa, wb + 1), (pa, pb + 1)) > nms_iou for pa, pb, _ in picked):
            continue
        picked.append((wa, wb, float(sums[i])))
    return picked[:count]


#: Concepts of a phrase whose per-frame curves make its span (see the module's docstring).
TOP_CONCEPTS = 3


def phrase_curves(frame_probs: np.ndarray, phrase_probs: np.ndarray) -> np.ndarray:
    """Each phrase's concepts over each video's frames.

    Args:
        frame_probs: (Nv, F, Cv) the videos' per-frame verb concept probabilities.
        phrase_probs: (n, Cv) the phrases' verb concept probabilities.

    Returns:
        (Nv, n, F): per frame, the video's probabilities of the phrase's :data:`TOP_CONCEPTS`
        most probable concepts, averaged with the phrase's probabilities as weights.
    """
    p = np.asarray(phrase_probs, np.float32)
    k = min(TOP_CONCEPTS, p.shape[-1])
    top = np.argsort(-p, axis=-1, kind="stable")[:, :k]  # (n, k)
    w = np.take_along_axis(p, top, -1)
    w = np.where(w.sum(-1, keepdims=True) > 0, w, 1.0)  # a phrase with no mass: equal weights
    w = w / w.sum(-1, keepdims=True)
    fp = np.asarray(frame_probs, np.float32)  # (Nv, F, Cv)
    return np.einsum("vfnk,nk->vnf", fp[:, :, top], w)


def edge_filled(curves: np.ndarray, lengths: np.ndarray, kernel: int) -> np.ndarray:
    """Curves whose first and last ``kernel // 2`` frames take the value of the nearest frame
    whose classifier window lies wholly inside the clip (see the module's docstring).

    Args:
        curves: (Nv, n, F) per-frame values.
        lengths: (Nv,) valid frames per video; videos of at most ``2 * (kernel // 2)`` frames
            are left as they are (no frame has a whole window).
        kernel: the verb classifier's temporal kernel (``config.video.verb_kernel``).

    Returns:
        (Nv, n, F) a new array.
    """
    h = int(kernel) // 2
    F = curves.shape[-1]
    t = np.arange(F)[None, :]
    L = np.asarray(lengths, np.int64)[:, None]
    idx = np.where((L > 2 * h) & (t < L), np.clip(t, h, np.maximum(L - 1 - h, h)), t)  # (Nv, F)
    return np.take_along_axis(curves, np.broadcast_to(idx[:, None, :], curves.shape), -1)


def sequence_windows(excess: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of phrases that happen one after another, chosen together.

    Each of the ``n`` phrases gets a window, the windows in the phrases' order and not
    overlapping, and their summed excess is the largest possible (dynamic programming over the
    frames; each window is a maximum-sum window within the stretch the order leaves it).

    Args:
        excess: (Nv, n, F) per-frame values of each phrase, in the order they happen.
        lengths: (Nv,) valid frames (each video needs at least ``n``).

    Returns:
        (first, last, total), each (Nv, n): every phrase's window and its own sum.
    """
    Nv, n, F = excess.shape
    L = np.asarray(lengths, np.int64)
    t = np.arange(F)
    x = np.where(t[None, None, :] < L[:, None, None], np.asarray(excess, np.float64), 0.0)
    c = np.concatenate([np.zeros((Nv, n, 1)), np.cumsum(x, -1)], -1)  # (Nv, n, F + 1)
    sums = c[:, :, None, 1:] - c[:, :, :-1, None]  # (Nv, n, a, b): frames a..b
    ok = (t[:, None] <= t[None, :])[None, None] & (t[None, None, None, :] < L[:, None, None, None])
    sums = np.where(ok, sums, -np.inf)
    # best[i][v, e]: the best total of phrases 0..i with phrase i's window ending before frame e
    prev = np.zeros((Nv, F + 1))  # no phrase yet: 0 whatever the end
    choice = []
    for i in range(n):
        # a window [a, b] of phrase i after phrases 0..i-1, which end before a
        total = prev[:, :F, None] + sums[:, i]  # (Nv, a, b)
        if i > 0:
            total[:, 0, :] = -np.inf  # the earlier phrases need a frame before a
        flat = total.reshape(Nv, F * F)
        ends = np.full((Nv, F + 1), -np.inf)
        arg = np.zeros((Nv, F + 1), np.int64)
        for e in range(1, F + 1):  # windows with b < e
            allowed = (t[None, :] < e).repeat(F, 0).reshape(F * F)
            m = np.where(allowed[None, :], flat, -np.inf)
            arg[:, e] = m.argmax(-1)
            ends[:, e] = np.take_along_axis(m, arg[:, e:e + 1], -1)[:, 0]
        choice.append(arg)
        prev = ends
    first = np.zeros((Nv, n), np.int64)
    last = np.zeros((Nv, n), np.int64)
    e = np.minimum(L, F)
    for i in range(n - 1, -1, -1):  # walk back from the last phrase
        best = choice[i][np.arange(Nv), e]
        first[:, i], last[:, i] = best // F, best % F
        e = first[:, i]
    own = np.take_along_axis(sums.reshape(Nv, n, F * F), (first * F + last)[..., None], -1)[..., 0]
    return first, last, own


def moments(frame_probs: Optional[np.ndarray], lengths: np.ndarray, phrase_probs: Optional[np.ndarray],
            slots: Sequence[int], times: Sequence[Optional[Sequence[float]]],
            durations: Sequence[Optional[float]], kernel: int = 1,
            sequence: Optional[Sequence[int]] = None, alternatives: int = 0) -> Moments:
    """Spans of videos for one query.

    Args:
        frame_probs: (Nv, F, Cv) the videos' per-frame verb concept probabilities, or None
            (an index that does not store them: no spans).
        lengths: (Nv,) valid frames per video.
        phrase_probs: (Pv, Cv) the query's verb phrase slots' concept probabilities
            (``TextEncoderOutput.verb_phrase_probs[q]``), or None.
        slots: the filled verb slots (the phrases to read).
        times: per video, its feature frames' times (or None).
        durations: per video, its duration in seconds (or None).
        kernel: the model's verb classifier kernel (``config.video.verb_kernel``; 1: no edge
            correction).
        sequence: slots (among ``slots``) in the order the query says they happen ("X and then
            Y": X's slot, then Y's; :func:`hanet.text.temporal.phrase_sequence`). Their spans
            are then chosen together, in that order and without overlap
            (:func:`sequence_windows`), and the hit's span runs from the first one's start to
            the last one's end. None or fewer than two: each phrase on its own.
        alternatives: with ``n > 0``, also each phrase's ``n`` best windows, its span first
            (:attr:`Moments.ranked`; what the moment benchmarks judge).

    Returns:
        :class:`Moments` of the Nv videos.
    """
    lengths = np.asarray(lengths, np.int64)
    Nv = len(lengths)
    if frame_probs is None or phrase_probs is None:
        return Moments([None] * Nv, [{} for _ in range(Nv)])
    bounds = [frame_bounds(times[i], int(lengths[i]), durations[i]) for i in range(Nv)]
    slots = list(slots)
    if not slots:
        hit = [make_span(0, 0, 0.0, int(lengths[i]), bounds[i], "the query names no action: the whole clip")
               for i in range(Nv)]
        if alternatives <= 0:
            return Moments(hit, [{} for _ in range(Nv)])
        return Moments(hit, [{} for _ in range(Nv)], [{} for _ in range(Nv)], [[h] for h in hit], None)
    curves = edge_filled(phrase_curves(frame_probs, np.asarray(phrase_probs)[slots]), lengths, kernel)  # (Nv, n, F)
    F = curves.shape[-1]
    valid = np.arange(F)[None, None, :] < lengths[:, None, None]
    mean = np.where(valid, curves, 0).sum(-1, keepdims=True) / np.maximum(lengths, 1)[:, None, None]
    centred = np.where(valid, curves - mean, 0.0)  # above (> 0) or below its clip average
    a, b, ex = best_windows(centred, np.broadcast_to(lengths[:, None], curves.shape[:2]))
    ha, hb, hex_ = best_windows(centred.mean(1), lengths)
    order = [slots.index(s) for s in (sequence or ()) if s in slots]
    if len(order) >= 2:
        long_enough = lengths >= len(order)  # every phrase needs a frame of its own
        sa, sb, sex = sequence_windows(centred[:, order], np.where(long_enough, lengths, len(order)))
        for k, j in enumerate(order):
            a[:, j] = np.where(long_enough, sa[:, k], a[:, j])
            b[:, j] = np.where(long_enough, sb[:, k], b[:, j])
            ex[:, j] = np.where(long_enough, sex[:, k], ex[:, j])
        both = long_enough & (ex[:, order] > UNIFORM_EPS).all(1)  # every phrase stands out where it is put
        ha, hb = np.where(both, a[:, order[0]], ha), np.where(both, b[:, order[-1]], hb)
        hex_ = np.where(both, ex[:, order].sum(1), hex_)
    phrase_spans = [{("verb", int(s)): make_span(a[i, j], b[i, j], ex[i, j], int(lengths[i]), bounds[i])
                     for j, s in enumerate(slots)} for i in range(Nv)]
    hit = [make_span(ha[i], hb[i], hex_[i], int(lengths[i]), bounds[i]) for i in range(Nv)]
    if alternatives <= 0:
        return Moments(hit, phrase_spans)
    ranked = [{("verb", int(s)): [phrase_spans[i][("verb", int(s))]] + [
        make_span(wa, wb, w, int(lengths[i]), bounds[i])
        for wa, wb, w in ranked_windows(centred[i, j], int(lengths[i]), (a[i, j], b[i, j]), alternatives)[1:]]
        for j, s in enumerate(slots)} for i in range(Nv)]
    query_curve = centred.mean(1)
    hit_ranked = [[hit[i]] + [make_span(wa, wb, w, int(lengths[i]), bounds[i]) for wa, wb, w in
                              ranked_windows(query_curve[i], int(lengths[i]), (ha[i], hb[i]), alternatives)[1:]]
                  for i in range(Nv)]
    return Moments(hit, phrase_spans, ranked, hit_ranked, query_curve)


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two time intervals."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


__all__ = ["Span", "Moments", "best_windows", "sequence_windows", "ranked_windows", "RANK_NMS_IOU", "frame_bounds", "make_span", "phrase_curves",
           "edge_filled", "moments",
           "temporal_iou",
           "TOP_CONCEPTS", "UNIFORM_EPS"]
