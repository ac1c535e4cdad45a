"""How well the hits' time spans find the true action: temporal IoU on the built-in world.

The world's annotations hold the frame span of every action, so the span rule of
:mod:`hanet.model.moments` can be judged. Clips whose main object does two actions in sequence
(``two_actions``: "... bounces and then spins") give two kinds of test items:

* **one action**: a caption of such a clip that names exactly one of its two actions ("the
  circle bounces"); the hit's span against that action's true span;
* **sequence**: a caption naming both in order ("first it bounces and then it spins"); each
  verb phrase's own span against its action's span.

A word names an action when it is a form (base, third person, gerund) of one of the action's
verbs. What a caption names is read from its own words, not from its parse: a caption naming
both actions whose parse found a verb phrase for only one of them ("a rhombus grows and then
disappears" with "grows" read as a noun) is neither kind, and is counted (``unparsed``), not
judged as naming one action. Captions with a verb phrase naming both actions or none are left
out.

Baselines, on the same items, are rules that see no pixel, each at its best: the **whole
clip**; the **best fixed span**, the one window (as shares of the clip) that, put on every
item, gives the highest mean IoU, chosen on these very items (an oracle); and for sequence
items the **order-aware rule**, the best fixed span of each position (the first action's span
early, the second's late), which knows the order the caption tells. A world whose actions all
happen at the same times would let these rules score as well as any model; the default world
varies when its actions start and how long they last (``SynthConfig.rest_max``), so they do not.

Each method is judged by the mean IoU of its span and by the moment retrieval benchmark's
R1@0.5, R1@0.7 and mAP (:mod:`hanet.moment_metrics`; the model's ranked windows, its span
first). Every figure is also given split by the action named, first or second.

The videos are encoded as the index encodes them (padded to the model's frames, per-frame
concepts rounded to float16) and the spans come from the function search uses
(:func:`hanet.model.moments.moments`), so they are those ``hanet search`` returns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from hanet.model.moments import moments, temporal_iou

KINDS = ("one action", "sequence")


@dataclass
class MomentItem:
    """One judged span (seconds).

    Attributes:
        ranked: the model's windows ``(start, end, score)``, its span first
            (:func:`hanet.model.moments.ranked_windows`): what the benchmark metrics judge.
    """

    video: str
    caption: str
    kind: str
    phrase: str
    position: int
    pred: tuple[float, float]
    truth: tuple[float, float]
    duration: float
    action: int = 0  # which of the clip's two actions is named: 0 the first, 1 the second
    ranked: list[tuple[float, float, float]] = field(default_factory=list)

    @property
    def iou(self) -> float:
        return temporal_iou(self.pred, self.truth)


#: Windows per judged span in the benchmark-format predictions.
RANKED_WINDOWS = 10


def _forms(verbs: frozenset[str]) -> set[str]:
    from hanet.data.synth.vocab import gerund, third_person

    out = set()
    for v in verbs:
        for f in (v, third_person(v), gerund(v)):
            out.add(f.split()[0])
    return out


def judge(words: list[str], phrases: list[list[str]], forms: list[set[str]]) -> tuple[Optional[str], list[int]]:
    """What a caption of a two-action clip is judged on, and the action each verb phrase names.

    What the caption names is read from its own words, not from its parse: a parse can miss a
    verb ("a rhombus grows and then disappears", "grows" read as a noun), and the caption then
    names both actions though its only verb phrase names the second.

    Args:
        words: the caption's words.
        phrases: the words of each of its verb phrases, in order.
        forms: the forms of each action's verbs (first action, second action).

    Returns:
        ``("one action", [k, ...])`` when the caption names action k alone and every verb
        phrase names it; ``("sequence", [0, 1])`` or ``[1, 0]`` when it has two verb phrases
        naming one action each, both actions; ``("unparsed", [])`` when it names both but its
        verb phrases do not; else ``(None, [])`` (a phrase naming both actions or neither).
    """
    said = {k for k, f in enumerate(forms) if f & set(words)}
    named = []
    for p in phrases:
        hit = [k for k, f in enumerate(forms) if f & set(p)]
        named.append(hit[0] if len(hit) == 1 else None)
    known = {k for k in named if k is not None}
    if None in named:
        return None, []
    if len(said) == 1 and known == said:
        return "one action", named
    if len(said) == 2 and len(named) == 2 and known == {0, 1}:
        return "sequence", named
    if len(said) == 2 and known != {0, 1}:
        return "unparsed", []
    return None, []


def _main_actions(ann: dict[str, Any]) -> Optional[list[Any]]:
    from hanet.data.synth.world import action_spans

    if not ann.get("two_actions"):
        return None
    acts = sorted((a for a in action_spans(ann, main_only=True) if a.subject == 0 and a.object is None),
                  key=lambda a: a.start_frame)
    if len(acts) != 2 or acts[0].end_frame > acts[1].start_frame:
        return None
    return acts


@torch.no_grad()
def collect(model: Any, data: Any, world_dir: str | Path, batch_size: int = 64) -> dict[str, Any]:
    """The judged spans of a split of the world.

    Args:
        model: a trained :class:`~hanet.model.HANet` (eval mode is set here).
        data: the split (:class:`~hanet.data.dataset.RetrievalData`).
        world_dir: the ``hanet synth`` folder (its ``annotations.json``).
        batch_size: videos encoded at once.

    Returns:
        ``{"items": [MomentItem], "videos": two-action clips, "no_times": clips skipped for want
        of frame times, "unparsed": captions naming both actions whose parse has a verb phrase
        for one only}``.
    """
    from hanet.data.synth.world import load_annotations
    from hanet.index.encode import encode_stored_videos
    from hanet.index.query import QueryEncoder
    from hanet.text.normalize import normalize_caption
    from hanet.text.rolegraph import graph_for_normalized

    model.eval()
    anns = load_annotations(world_dir)
    targets = [(n, acts) for n in data.names if (acts := _main_actions(anns.get(n, {}))) is not None]
    enc = QueryEncoder(model, data.word2int, max_chars=10 ** 6, cache_size=0)
    items: list[MomentItem] = []
    no_times = unparsed = 0
    acts_of = dict(targets)
    # encoded as the index encodes them (fixed padding), frame times and durations as it records them
    for part, fields, metas in encode_stored_videos(model, data.features, [n for n, _ in targets], batch_size):
        lens = [m["length"] for m in metas]
        times = [m["frame_times"] for m in metas]
        durs = [m["duration"] or anns[n].get("duration_s") for n, m in zip(part, metas)]
        frame_probs = fields["verb_frame_probs"].astype(np.float16).astype(np.float32)  # as stored
        for j, name in enumerate(part):
            acts = acts_of[name]
            if times[j] is None:
                no_times += 1
                continue
            caps = [c for c in dict.fromkeys(data.captions[name]) if normalize_caption(c)]
            norms = [normalize_caption(c) for c in caps]
            graphs = [graph_for_normalized(data.graphs[c], c) for c in caps]
            q = enc.encode(norms, graphs=graphs, allow_unknown=True)
            forms = [_forms(a.verbs) for a in acts]
            truth = [(float(a.start_s), float(a.end_s)) for a in acts]
            for c, info in enumerate(q.infos):
                verbs = [p for p in info.phrases if p.kind == "verb"]
                kind, named = judge(norms[c].split(), [p.words for p in verbs], forms)
                if kind == "unparsed":
                    unparsed += 1
                if kind not in KINDS:
                    continue
                m = moments(frame_probs[j:j + 1], np.array([lens[j]]), q.text.verb_phrase_probs[c].numpy(),
                            [p.slot for p in verbs], [times[j]], [durs[j]], kernel=model.config.video.verb_kernel,
                            sequence=info.verb_sequence(), alternatives=RANKED_WINDOWS)
                dur = float(durs[j] or truth[1][1])
                assert m.ranked is not None

                def ranked(slot: int) -> list[tuple[float, float, float]]:
                    return [(sp.start, sp.end, sp.excess) for sp in m.ranked[0][("verb", slot)]]

                if kind == "one action":  # one verb phrase: its span is the hit's
                    span = m.phrases[0][("verb", verbs[0].slot)]
                    items.append(MomentItem(name, caps[c], kind, " ".join(verbs[0].words), 0,
                                            (span.start, span.end), truth[named[0]], dur, named[0],
                                            ranked(verbs[0].slot)))
                    continue
                for pos, (p, k) in enumerate(zip(verbs, named)):
                    span = m.phrases[0][("verb", p.slot)]
                    items.append(MomentItem(name, caps[c], kind, " ".join(p.words), pos,
                                            (span.start, span.end), truth[k], dur, k, ranked(p.slot)))
    return {"items": items, "videos": len(targets), "no_times": no_times, "unparsed": unparsed}


#: Positions of the best fixed span, as shares of the clip: a grid of this many steps.
FIXED_GRID = 48


def _ious(windows: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(W, N) IoU of W windows (shares of each clip) with N true spans (shares)."""
    inter = np.clip(np.minimum(windows[:, None, 1], truth[None, :, 1]) - np.maximum(windows[:, None, 0], truth[None, :, 0]),
                    0, None)
    union = np.maximum(windows[:, None, 1], truth[None, :, 1]) - np.minimum(windows[:, None, 0], truth[None, :, 0])
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def best_fixed_span(items: list[MomentItem]) -> tuple[tuple[float, float], np.ndarray]:
    """The one span (as shares of the clip) that, put on every item, finds them best: chosen on
    these very items to maximise the mean IoU, it is the best any rule that sees no pixel can do.

    Returns:
        ``((start, end) shares, (N,) IoU of each item)``.
    """
    grid = np.linspace(0, 1, FIXED_GRID + 1)
    a, b = np.triu_indices(len(grid), 1)
    windows = np.stack([grid[a], grid[b]], 1)
    truth = np.array([(t0 / it.duration, t1 / it.duration) for it in items for t0, t1 in [it.truth]])
    ious = _ious(windows, truth)
    best = int(np.argmax(ious.mean(1)))
    return (float(windows[best, 0]), float(windows[best, 1])), ious[best]


def _scores(preds: list[list[tuple[float, float, float]]], items: list[MomentItem]) -> dict[str, float]:
    """Mean IoU of the first window, and the moment benchmark's R1@0.5, R1@0.7 and mAP
    (:mod:`hanet.moment_metrics`, percentages) of the ranked windows."""
    from hanet.moment_metrics import MomentPrediction, MomentQuery, evaluate_moments

    truth = [MomentQuery(i, it.video, it.duration, [it.truth]) for i, it in enumerate(items)]
    ev = evaluate_moments([MomentPrediction(i, it.video, p) for i, (it, p) in enumerate(zip(items, preds))], truth)
    full = ev.metrics["full"]
    ious = np.array([temporal_iou(p[0][:2], it.truth) for p, it in zip(preds, items)])
    return {"miou": float(ious.mean()), "iou50": float((ious >= 0.5).mean()), "r1_50": full["MR-R1"]["0.5"],
            "r1_70": full["MR-R1"]["0.7"], "map": full["MR-mAP"]["average"]}


def method_windows(its: list[MomentItem], kind: str) -> dict[str, list[list[tuple[float, float, float]]]]:
    """Each method's ranked windows for each item: the model, and rules that see no pixel."""
    out = {"model": [it.ranked or [(*it.pred, 1.0)] for it in its],
           "whole clip": [[(0.0, it.duration, 1.0)] for it in its]}
    (f0, f1), _ = best_fixed_span(its)
    out["best fixed span"] = [[(f0 * it.duration, f1 * it.duration, 1.0)] for it in its]
    if kind == "sequence":  # knows the word order: the first action's span early, the second's late
        rule: list[list[tuple[float, float, float]]] = [[] for _ in its]
        for pos in (0, 1):
            idx = [i for i, it in enumerate(its) if it.position == pos]
            if idx:
                (g0, g1), _ = best_fixed_span([its[i] for i in idx])
                for i in idx:
                    rule[i] = [(g0 * its[i].duration, g1 * its[i].duration, 1.0)]
        out["order-aware rule"] = rule
    return out


def summarize(collected: dict[str, Any]) -> dict[str, Any]:
    """Each method's mean temporal IoU, share with IoU >= 0.5, and the moment benchmark's
    R1@0.5, R1@0.7 and mAP: the model's spans against rules that see no pixel (the whole clip,
    the best fixed span, and for sequences the best fixed span of each position), all chosen on
    these very items."""
    items: list[MomentItem] = collected["items"]
    out: dict[str, Any] = {"videos": collected["videos"], "no_times": collected["no_times"],
                           "unparsed": collected.get("unparsed", 0), "kinds": {}}
    for kind in KINDS:
        its = [it for it in items if it.kind == kind]
        if not its:
            continue
        windows = method_windows(its, kind)
        # The same figures split by the action named, first or second.
        by_action = {}
        for act, label in ((0, "first"), (1, "second")):
            idx = [i for i, it in enumerate(its) if it.action == act]
            if idx:
                by_action[label] = {"items": len(idx), "methods": {
                    name: _scores([w[i] for i in idx], [its[i] for i in idx]) for name, w in windows.items()}}
        out["kinds"][kind] = {
            "items": len(its), "captions": len({(it.video, it.caption) for it in its}),
            "mean_pred_s": float(np.mean([it.pred[1] - it.pred[0] for it in its])),
            "mean_true_s": float(np.mean([it.truth[1] - it.truth[0] for it in its])),
            "methods": {name: _scores(w, its) for name, w in windows.items()},
            "by_action": by_action,
        }
    return out


def write_benchmark_files(collected: dict[str, Any], predictions: str | Path,
                          ground_truth: Optional[str | Path] = None) -> int:
    """The judged spans in the moment benchmark's formats: one query per judged span (a caption
    naming one action, or one verb phrase of a sequence), the model's ranked windows as
    predictions and the true span as ground truth (:mod:`hanet.moment_metrics`).

    Returns:
        Queries written.
    """
    from hanet.moment_metrics import MomentPrediction, MomentQuery, write_ground_truth, write_predictions

    items: list[MomentItem] = collected["items"]
    text = {i: it.caption if it.kind == "one action" else f"{it.caption} [{it.phrase}]" for i, it in enumerate(items)}
    write_predictions(predictions, [MomentPrediction(i, it.video, it.ranked or [(*it.pred, 1.0)])
                                    for i, it in enumerate(items)], text)
    if ground_truth is not None:
        write_ground_truth(ground_truth, [MomentQuery(i, it.video, it.duration, [it.truth], text[i])
                                          for i, it in enumerate(items)])
    return len(items)


def moment_report(model: Any, data: Any, world_dir: str | Path) -> dict[str, Any]:
    """:func:`collect` then :func:`summarize`."""
    return summarize(collect(model, data, world_dir))


def format_moments(report: dict[str, Any]) -> str:
    """Plain-text lines of :func:`summarize`'s result."""
    lines = [f"time spans (hanet.model.moments) on {report['videos']} two-action clips"
             + (f" ({report['no_times']} without frame times skipped)" if report["no_times"] else "") + ":"]
    if report.get("unparsed"):
        lines.append(f"  ({report['unparsed']} captions naming both actions left out: their parse found a verb "
                     "phrase for one only)")
    for kind, k in report["kinds"].items():
        lines.append(f"  {kind}: {k['items']} spans of {k['captions']} captions (predicted {k['mean_pred_s']:.2f} s "
                     f"long on average, true {k['mean_true_s']:.2f} s)")
        for name, m in k["methods"].items():
            lines.append(f"    {name:<18} mean tIoU {m['miou']:.3f}   R1@0.5 {m['r1_50']:5.1f}   R1@0.7 "
                         f"{m['r1_70']:5.1f}   mAP {m['map']:5.1f}")
        for label, part in k.get("by_action", {}).items():
            lines.append(f"    naming the {label} action ({part['items']} spans): mean tIoU "
                         + ", ".join(f"{name} {m['miou']:.3f}" for name, m in part["methods"].items()))
    return "\n".join(lines)


def items_as_dicts(collected: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(asdict(it), iou=it.iou) for it in collected["items"]]


__all__ = ["KINDS", "MomentItem", "judge", "collect", "summarize", "moment_report", "format_moments", "items_as_dicts",
           "best_fixed_span", "method_windows", "write_benchmark_files"]
