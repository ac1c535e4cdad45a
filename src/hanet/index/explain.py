"""Why a video matches a query: the seven scores, phrase-to-frame and phrase-to-clip alignment, concepts.

For one (query, video) pair:

* **contributions**: each of the seven scores, its weight in the fusion and their product
  (the products sum to the fused score that ranks the video);
* **phrases**: for every verb and noun phrase of the query, the attention over the video's frames
  at the individual level (pre-GCN phrase vs frame embeddings; the ``ind_*`` scores average the
  phrases' similarities) and over its concept clips at the local level (post-GCN phrase vs clip
  embeddings; the ``verb``/``noun`` scores), with the frames each clip was built from and the
  concept that selected it;
* **concepts**: the video's most probable verb and noun concepts, and the concepts that the
  query and the video share most (the terms of the soft Jaccard scores);
* **words**: the query's words, known or not, with their weight in the sentence embedding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from hanet.index.rerank import video_outputs
from hanet.model.moments import Span
from hanet.model.scoring import SCORE_NAMES, fusion_weights
from hanet.model.video import verb_clip_windows


@dataclass
class ScoreContribution:
    """One of the seven scores.

    Attributes:
        name: ``sent``, ``verb``, ``noun``, ``concept_verb``, ``concept_noun``, ``ind_verb``, ``ind_noun``.
        level: ``global``, ``local``, ``concept`` or ``individual``.
        score: its value for this pair.
        weight: its weight in the fused score.
        contribution: weight * score.
    """

    name: str
    level: str
    score: float
    weight: float
    contribution: float


@dataclass
class FrameWeight:
    """Attention on one frame (index into the video's model frames; time in seconds if known)."""

    frame: int
    time: Optional[float]
    weight: float


@dataclass
class ClipMatch:
    """Attention on one local clip.

    Attributes:
        clip: clip number (the clips are built for the video's top concepts, best first).
        concept: the concept that selected the clip.
        concept_id: its id.
        frames: the model frames averaged into the clip.
        weight: the phrase's attention on it.
    """

    clip: int
    concept: str
    concept_id: int
    frames: list[int]
    weight: float


@dataclass
class PhraseExplanation:
    """How one phrase of the query aligns with the video.

    Attributes:
        kind: ``verb`` or ``noun``.
        slot: slot number.
        role: semantic role.
        words: the phrase's words.
        individual_similarity: cosine of the phrase with its attention-weighted frames.
        frames: attention on every real frame (sums to 1).
        top_frames: the most attended frames, best first.
        local_similarity: cosine of the (graph-contextualised) phrase with its attended clips.
        clips: attention on every clip, best first.
        span: where a verb phrase's action happens (:mod:`hanet.model.moments`), else None.
    """

    kind: str
    slot: int
    role: str
    words: list[str]
    individual_similarity: float
    frames: list[FrameWeight]
    top_frames: list[int]
    local_similarity: float
    clips: list[ClipMatch]
    span: Optional[Span] = None


@dataclass
class ConceptScore:
    """A concept's probability on each side (``overlap`` = min of the two: its Jaccard numerator term)."""

    concept: str
    id: int
    video: float
    query: float
    overlap: float


@dataclass
class Explanation:
    """Everything :func:`explain` reports (JSON-serialisable through :meth:`to_dict`)."""

    query: str
    normalized: str
    video_id: str
    score: float
    contributions: list[ScoreContribution]
    phrases: list[PhraseExplanation]
    video_concepts: dict[str, list[ConceptScore]]
    shared_concepts: dict[str, list[ConceptScore]]
    words: list[dict[str, Any]]
    num_frames: int
    frame_times: Optional[list[float]]
    thumbnail: bool
    warnings: list[str] = field(default_factory=list)
    #: the span that best matches the query (the hit's moment in search), or None
    moment: Optional[Span] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        """A plain-text rendering (what ``hanet explain`` prints)."""
        lines = [f"query: {self.query!r}" + (f" (read as {self.normalized!r})" if self.normalized != self.query else ""),
                 f"video: {self.video_id}   fused score {self.score:.4f}   ({self.num_frames} frames)"]
        if self.moment is not None:
            lines.append(f"moment: {self.moment.format()}" + (f" ({self.moment.note})" if self.moment.note else ""))
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append("")
        lines.append("scores             value   weight  contribution")
        for c in self.contributions:
            bar = "#" * max(0, int(round(40 * c.contribution / max(abs(self.score), 1e-9)))) if self.score > 0 else ""
            lines.append(f"  {c.name:<13} {c.score:>8.4f} {c.weight:>7.2f} {c.contribution:>12.4f}  {bar}")
        lines.append(f"  {'fused':<13} {'':>8} {'':>7} {self.score:>12.4f}")

        def when(frame: int) -> str:
            if self.frame_times and frame < len(self.frame_times):
                return f"{frame}@{self.frame_times[frame]:.2f}s"
            return str(frame)

        lines.append("")
        lines.append("phrases:")
        if not self.phrases:
            lines.append("  (none: the role graph found no verb or noun phrase)")
        for p in self.phrases:
            lines.append(f"  {p.kind} [{p.role}] {' '.join(p.words)!r}"
                         + (f"  at {p.span.format()}" if p.span is not None else ""))
            tops = ", ".join(f"{when(f)} ({p.frames[f].weight:.2f})" for f in p.top_frames)
            lines.append(f"    frames  sim {p.individual_similarity:+.3f}  most attended: {tops}")
            best = p.clips[0] if p.clips else None
            if best is not None:
                frames = ",".join(when(f) for f in best.frames)
                lines.append(f"    clips   sim {p.local_similarity:+.3f}  best: clip {best.clip} "
                             f"({best.concept}, frames {frames}) weight {best.weight:.2f}")
        for kind in ("verb", "noun"):
            lines.append("")
            vc = ", ".join(f"{c.concept} {c.video:.2f}" for c in self.video_concepts.get(kind, []))
            lines.append(f"video's top {kind} concepts: {vc}")
            sc = ", ".join(f"{c.concept} (video {c.video:.2f}, query {c.query:.2f})"
                           for c in self.shared_concepts.get(kind, []))
            lines.append(f"shared {kind} concepts: {sc}")
        lines.append("")
        lines.append("words: " + " ".join(f"{w['word']}{'' if w['known'] else '(?)'}:{w['attention']:.2f}"
                                          for w in self.words))
        return "\n".join(lines)


_LEVELS = {"sent": "global", "verb": "local", "noun": "local", "concept_verb": "concept",
           "concept_noun": "concept", "ind_verb": "individual", "ind_noun": "individual"}


@torch.no_grad()
def explain(index: Any, text: str, video_id: str, top_concepts: int = 8, top_frames: int = 3) -> Explanation:
    """Explain a (query, video) pair.

    Args:
        index: an open :class:`~hanet.index.search.SearchIndex`.
        text: the query.
        video_id: an indexed video.
        top_concepts: concepts listed per kind.
        top_frames: most-attended frames listed per phrase.

    Returns:
        :class:`Explanation`.

    Raises:
        QueryError: a query that cannot be searched.
        UnknownVideoError: no such video.
    """
    cfg = index.config
    enc = index.encode(text)
    info = enc.infos[0]
    t = enc.text
    row = index.row(video_id)
    v = video_outputs(index.videos, np.array([row]), with_peaks=True)
    meta = index.videos.meta(row)
    sc, attention = index.model.score_and_attend(v, t)  # the scoring pass itself, with what it attended to
    spans = index.moments(np.array([row]), t, info)  # the rule search uses
    fused = float(index.model.fused_score(sc)[0, 0])
    w = fusion_weights(index.variant)
    contributions = [ScoreContribution(n, _LEVELS[n], float(getattr(sc, n)[0, 0]), w[n],
                                       w[n] * float(getattr(sc, n)[0, 0])) for n in SCORE_NAMES]

    L = int(v.lengths[0])
    times = meta.get("frame_times")
    windows, fits = verb_clip_windows(v.verb_peaks, v.lengths, cfg.verb_window, v.num_frames)

    def verb_clip_frames(j: int) -> list[int]:
        return windows[0, j].tolist() if bool(fits[0]) else [int(v.verb_peaks[0, j])]

    def noun_clip_frames(j: int) -> list[int]:
        return sorted(set(v.noun_peaks[0, :, j].tolist()))

    phrases: list[PhraseExplanation] = []
    by_kind = {p.kind: [] for p in info.phrases}
    for p in info.phrases:
        by_kind[p.kind].append(p)
    for kind, top, clip_frames in (("verb", v.top_verbs, verb_clip_frames), ("noun", v.top_nouns, noun_clip_frames)):
        if f"ind_{kind}" not in attention:  # the global variant attends to nothing
            continue
        per_frame = attention[f"ind_{kind}"].of(0, 0)  # slot -> (attention over frames, similarity)
        per_clip = attention[kind].of(0, 0)  # slot -> (attention over clips, similarity)
        slots = {p.slot: p for p in by_kind.get(kind, [])}
        for slot in sorted(per_frame):
            ph = slots.get(slot)
            fweights, fsim = per_frame[slot]
            cweights, csim = per_clip[slot]
            weights = fweights[:L].tolist()
            order = np.argsort(-np.asarray(weights), kind="stable")[:top_frames].tolist()
            corder = np.argsort(-cweights.numpy(), kind="stable").tolist()
            clip_list = [ClipMatch(j, index.concept_name(kind, int(top[0, j])), int(top[0, j]), clip_frames(j),
                                   float(cweights[j])) for j in corder]
            phrases.append(PhraseExplanation(
                kind, slot, ph.role if ph else "?", ph.words if ph else [], fsim,
                [FrameWeight(f, None if not times else float(times[f]), float(weights[f])) for f in range(L)],
                order, csim, clip_list, spans.phrases[0].get((kind, slot))))

    video_concepts: dict[str, list[ConceptScore]] = {}
    shared: dict[str, list[ConceptScore]] = {}
    for kind, vp, qp in (("verb", v.verb_probs[0], t.verb_probs[0]), ("noun", v.noun_probs[0], t.noun_probs[0])):
        vp_np, qp_np = vp.numpy(), qp.numpy()
        overlap = np.minimum(vp_np, qp_np)

        def item(c: int) -> ConceptScore:
            return ConceptScore(index.concept_name(kind, c), c, float(vp_np[c]), float(qp_np[c]), float(overlap[c]))

        def listed(order: np.ndarray) -> list[ConceptScore]:
            keep = (c for c in order.tolist() if index.is_shown(kind, c))  # no tagger slips
            return [item(c) for _, c in zip(range(top_concepts), keep)]

        video_concepts[kind] = listed(np.argsort(-vp_np, kind="stable"))
        shared[kind] = listed(np.argsort(-overlap, kind="stable"))

    attn = t.word_attn[0].tolist()
    words = [{"word": wd, "known": wd in index.word2int, "attention": float(attn[i]) if i < len(attn) else 0.0}
             for i, wd in enumerate(info.words)]
    return Explanation(text, info.normalized, video_id, fused, contributions, phrases, video_concepts, shared, words,
                       L, [float(x) for x in times] if times else None,
                       index.videos.thumbnail(row) is not None, info.warnings(), spans.hit[0])


__all__ = ["Explanation", "ScoreContribution", "PhraseExplanation", "FrameWeight", "ClipMatch", "ConceptScore",
           "explain", "fusion_weights"]
