"""What a search answers: hits (with their scores and time spans), rankings, caption hits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from hanet.model.moments import Span


@dataclass
class PhraseMoment:
    """Where one phrase of the query matches in a hit (see :mod:`hanet.model.moments`).

    Attributes:
        kind: ``verb`` or ``noun``.
        role: its semantic role (``V``, ``ARG0``...).
        text: its words.
        span: where the curve of its three most probable verb concepts stands highest (the one rule).
    """

    kind: str
    role: str
    text: str
    span: Span


@dataclass
class Hit:
    """One retrieved video.

    Attributes:
        rank: 1-based.
        video_id: the video.
        score: the fused HANet score (what ranks).
        scores: the seven scores.
        moment: the span that best matches the query (:mod:`hanet.model.moments`); the whole
            clip with a ``note`` when the query names no action or the curve is flat; None for an
            index that stores no per-frame concepts.
        phrases: each verb phrase's own span.
    """

    rank: int
    video_id: str
    score: float
    scores: dict[str, float]
    moment: Optional[Span] = None
    phrases: list[PhraseMoment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; each phrase's span fields sit beside its text."""
        d = asdict(self)
        d["phrases"] = [{"kind": p.kind, "role": p.role, "text": p.text, **p.span.to_dict()} for p in self.phrases]
        return d


@dataclass
class CaptionHit:
    """One retrieved caption (video-to-text).

    Attributes:
        rank: 1-based.
        caption: the caption (canonical form).
        video_id: the video it was written for.
        score: fused score.
        scores: the seven scores.
    """

    rank: int
    caption: str
    video_id: str
    score: float
    scores: dict[str, float]


@dataclass
class SearchResult:
    """A text-to-video search and what it did.

    Attributes:
        query: as typed.
        normalized: what was encoded.
        mode: ``two-stage`` or ``exhaustive``.
        k: hits asked for.
        candidates: videos scored with the full model.
        total: live videos in the index.
        hits: best first.
        exact: True when these are provably the exhaustive top k (exhaustive mode, every video
            scored, or no video left out by the first stage can reach the k-th score).
        warnings: about the query (unknown words, no verb phrase, cut words).
        timings_ms: ``encode``, ``first_stage``, ``rescore``, ``total``.
    """

    query: str
    normalized: str
    mode: str
    k: int
    candidates: int
    total: int
    hits: list[Hit]
    exact: bool = False
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hits"] = [h.to_dict() for h in self.hits]
        return d


@dataclass
class Ranking:
    """Ranked rows of Q queries.

    Attributes:
        rows: (Q, k) int64.
        scores: (Q, k) float32 fused scores.
        scored: videos scored with all seven scores, per query.
        exact: (Q,) bool, see :attr:`SearchResult.exact`.
        parts: (Q, 7, k) float32 the seven scores of the hits (in :data:`SCORE_NAMES` order),
            kept from the pass that ranked them (two-stage), or None.
    """

    rows: np.ndarray
    scores: np.ndarray
    scored: int
    exact: np.ndarray
    parts: Optional[np.ndarray] = None


@dataclass
class CaptionResult:
    """A video-to-text search."""

    video_id: str
    mode: str
    k: int
    candidates: int
    total: int
    hits: list[CaptionHit]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["PhraseMoment", "Hit", "CaptionHit", "SearchResult", "Ranking", "CaptionResult"]
