"""The seven HANet scores of stored videos, with the per-video parts precomputed at index time.

:func:`hanet.model.scoring.compute_scores` recomputes, for every (video, query) block, each
video's frame and clip norms and its (frames x frames) Gram matrices. They depend on the video
alone, so the index computes them once, when a video is added, from the very float16 values it
stores, and :func:`score_stored` runs the same formulas with them. Phrase slots that no query of
the block fills are dropped before scoring (they are masked out of the mean anyway). The result
equals ``compute_scores`` on the stored encodings up to float32 rounding (tests check 1e-5); it
saves about half of the work per candidate, which is what first-stage candidates cost.

Public API:
    PRECOMPUTED_FIELDS: field -> (source field, kind)
    precompute(fields) -> dict[str, np.ndarray]      norms and Gram matrices of stored encodings
    @dataclass StoredVideos (from_collection(coll, rows))
    trim_slots(text) -> TextEncoderOutput
    score_stored(videos, text, sigma, variant) -> ScoreOutput
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from hanet.model.scoring import ScoreOutput, cosine_sim, jaccard_sim, slot_mask

PRECOMPUTED_FIELDS: dict[str, tuple[str, str]] = {
    "verb_frame_norms": ("verb_frames", "norm"), "noun_frame_norms": ("noun_frames", "norm"),
    "verb_clip_norms": ("verb_clips", "norm"), "noun_clip_norms": ("noun_clips", "norm"),
    "verb_frame_grams": ("verb_frames", "gram"), "noun_frame_grams": ("noun_frames", "gram"),
    "verb_clip_grams": ("verb_clips", "gram"), "noun_clip_grams": ("noun_clips", "gram"),
}
_FLOATS = ("global_embeds", "verb_clips", "noun_clips", "verb_frames", "noun_frames", "verb_probs", "noun_probs")


def precompute(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Norms and Gram matrices of frames and clips, from their float16-rounded values.

    Args:
        fields: ``verb_frames``/``noun_frames`` (n, T, d) and ``verb_clips``/``noun_clips``
            (n, S, d), any float dtype (they are rounded to float16 first, as stored).

    Returns:
        ``*_norms`` (n, F) float32 sqrt(|x|^2 + 1e-18) and ``*_grams`` (n, F, F) float32.
    """
    out = {}
    for name, (src, kind) in PRECOMPUTED_FIELDS.items():
        x = torch.from_numpy(np.asarray(fields[src], dtype=np.float16)).to(torch.float32)
        if kind == "norm":
            out[name] = (x.pow(2).sum(-1) + 1e-18).sqrt().numpy()
        else:
            out[name] = torch.bmm(x, x.transpose(1, 2)).numpy()
    return out


@dataclass
class StoredVideos:
    """Stored encodings of a block of videos, float32 tensors (F = frames or clips)."""

    global_embeds: torch.Tensor
    verb_clips: torch.Tensor
    noun_clips: torch.Tensor
    verb_frames: torch.Tensor
    noun_frames: torch.Tensor
    verb_probs: torch.Tensor
    noun_probs: torch.Tensor
    lengths: torch.Tensor
    verb_frame_norms: torch.Tensor
    noun_frame_norms: torch.Tensor
    verb_clip_norms: torch.Tensor
    noun_clip_norms: torch.Tensor
    verb_frame_grams: torch.Tensor
    noun_frame_grams: torch.Tensor
    verb_clip_grams: torch.Tensor
    noun_clip_grams: torch.Tensor

    @classmethod
    def from_collection(cls, coll: Any, rows: np.ndarray, only_global: bool = False) -> "StoredVideos":
        """Read rows of a :class:`~hanet.index.store.Collection` (float16 -> float32).

        Args:
            coll: the videos.
            rows: (n,) rows.
            only_global: read the global embeddings only (the ``global`` variant needs nothing else).
        """
        names = ("global_embeds",) if only_global else _FLOATS + tuple(PRECOMPUTED_FIELDS) + ("lengths",)
        arrays = coll.gather_many(names, rows)
        # torch's float16 -> float32 conversion is vectorised (numpy's is several times slower)
        vals = {name: torch.from_numpy(np.ascontiguousarray(a)).to(torch.float32) for name, a in arrays.items()
                if name != "lengths"}
        if only_global:
            empty = vals["global_embeds"].new_zeros(len(rows), 0)
            return cls(vals["global_embeds"], *([empty] * 15))
        vals["lengths"] = torch.from_numpy(arrays["lengths"].astype(np.int64))
        return cls(**vals)


def trim_slots(text: Any) -> Any:
    """Drop the phrase slots that no caption of the block fills (scoring masks them out anyway).

    Args:
        text: :class:`~hanet.model.text.TextEncoderOutput`.

    Returns:
        The same outputs with at least one and at most as many slots as the fullest caption has.
    """
    from dataclasses import replace

    nv = max(1, int((text.verb_lens > 0).sum(1).max())) if len(text) else 1
    nn = max(1, int((text.noun_lens > 0).sum(1).max())) if len(text) else 1
    return replace(text, verb_embeds=text.verb_embeds[:, :nv], verb_phrases=text.verb_phrases[:, :nv],
                   verb_lens=text.verb_lens[:, :nv], noun_embeds=text.noun_embeds[:, :nn],
                   noun_phrases=text.noun_phrases[:, :nn], noun_lens=text.noun_lens[:, :nn])


def _phrase_scores(frames: torch.Tensor, frame_norm: torch.Tensor, gram: torch.Tensor, phrases: torch.Tensor,
                   phrase_valid: torch.Tensor, sigma: float,
                   frame_valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`hanet.model.scoring.phrase_scores` with the video's norms and Gram matrix given.

    Args:
        frames: (Nv, F, d).
        frame_norm: (Nv, F) sqrt(|frame|^2 + 1e-18).
        gram: (Nv, F, F) frames @ frames^T.
        phrases: (Nc, P, d).
        phrase_valid: (Nc, P) bool.
        sigma: softmax temperature.
        frame_valid: (Nv, F) bool, or None.

    Returns:
        (Nv, Nc).
    """
    Nv, F, d = frames.shape
    Nc, P, _ = phrases.shape
    flat_p = phrases.reshape(Nc * P, d)
    dots = torch.matmul(frames, flat_p.t())  # (Nv, F, Nc*P)
    phrase_norm = (flat_p.pow(2).sum(-1) + 1e-18).sqrt()
    cos = dots / (frame_norm.unsqueeze(2) * phrase_norm)
    pad = None
    if frame_valid is not None:
        pad = ~frame_valid.unsqueeze(2)
        cos = cos.masked_fill(pad, 0.0)
    attn = cos.clamp_min(0.0)
    attn = attn / attn.norm(dim=1, keepdim=True).clamp_min(1e-10)
    if pad is not None:
        attn = attn.masked_fill(pad, -1e18)
    weights = torch.softmax(sigma * attn, dim=1)
    numer = (weights * dots).sum(1)
    sq_norm = (weights * torch.bmm(gram, weights)).sum(1)
    attended_norm = sq_norm.clamp_min(1e-20).sqrt()
    p_l2 = flat_p.norm(dim=-1).clamp_min(1e-10)
    sims = (numer / (attended_norm * p_l2)).view(Nv, Nc, P)
    valid = phrase_valid.to(sims.dtype)
    return (sims * valid).sum(2) / valid.sum(1).clamp_min(1.0)


@torch.no_grad()
def score_stored(videos: StoredVideos, text: Any, sigma: float, variant: str = "hanet") -> ScoreOutput:
    """The seven scores of stored videos against encoded queries (``compute_scores``'s definitions).

    Args:
        videos: Nv stored videos.
        text: :class:`~hanet.model.text.TextEncoderOutput` of Nc queries.
        sigma: attention temperature (config ``simattn_sigma``).
        variant: ``global`` computes ``sent`` only (the others are zeros), as ``HANet.score`` does.

    Returns:
        :class:`~hanet.model.scoring.ScoreOutput` of (Nv, Nc) matrices.
    """
    sent = cosine_sim(videos.global_embeds, text.global_embeds)
    if variant == "global":
        z = torch.zeros_like(sent)
        return ScoreOutput(sent, z, z, z, z, z, z)
    text = trim_slots(text)
    verb_valid, noun_valid = slot_mask(text.verb_lens), slot_mask(text.noun_lens)
    T = videos.verb_frames.shape[1]
    frame_valid = torch.arange(T).unsqueeze(0) < videos.lengths.unsqueeze(1)
    return ScoreOutput(
        sent=sent,
        verb=_phrase_scores(videos.verb_clips, videos.verb_clip_norms, videos.verb_clip_grams, text.verb_embeds,
                            verb_valid, sigma),
        noun=_phrase_scores(videos.noun_clips, videos.noun_clip_norms, videos.noun_clip_grams, text.noun_embeds,
                            noun_valid, sigma),
        concept_verb=jaccard_sim(videos.verb_probs, text.verb_probs),
        concept_noun=jaccard_sim(videos.noun_probs, text.noun_probs),
        ind_verb=_phrase_scores(videos.verb_frames, videos.verb_frame_norms, videos.verb_frame_grams,
                                text.verb_phrases, verb_valid, sigma, frame_valid),
        ind_noun=_phrase_scores(videos.noun_frames, videos.noun_frame_norms, videos.noun_frame_grams,
                                text.noun_phrases, noun_valid, sigma, frame_valid),
    )


def fused(scores: ScoreOutput, variant: str) -> torch.Tensor:
    """The ranking score: the official fusion, or ``sent`` for the global variant."""
    return scores.sent if variant == "global" else scores.fused


__all__ = ["PRECOMPUTED_FIELDS", "precompute", "StoredVideos", "trim_slots", "score_stored", "fused"]
