"""HANet's seven video-text scores and their fusion, for blocks of (videos x captions).

* global: cosine of the video and sentence embeddings;
* local (verb, noun): phrases after the GCN attend over the concept-selected clips;
* individual (verb, noun): phrases before the GCN attend over all (real) frames;
* concept (verb, noun): Jaccard similarity of the two sides' concept probabilities.

The phrase-to-frame attention follows the official code: frame-phrase cosine, negatives set to
0, L2-normalised over frames, softmax with temperature sigma, attention-weighted sum of the
*unnormalised* frame embeddings, cosine with the phrase, mean over the caption's real phrases.
The weighted sum is never built: its dot product with the phrase is the weighted sum of the
frame-phrase dot products, and its norm is sqrt(w^T G w) with G the video's (frames x frames)
Gram matrix. So no (videos, captions, frames, dim) or (videos, captions, phrases, dim) tensor
exists, and a block costs one (videos*frames x valid phrases) matrix product: empty phrase
slots, the majority, are never scored.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterator, Optional

import torch

from hanet.model.text import TextEncoderOutput
from hanet.model.video import VideoEncoderOutput, video_padding_mask

SCORE_NAMES: tuple[str, ...] = ("sent", "verb", "noun", "concept_verb", "concept_noun", "ind_verb", "ind_noun")
"""The seven scores, in the official order (``test/scores`` of the reference stacks them so)."""

EMBEDDING_SCORES: tuple[str, ...] = ("sent", "verb", "noun", "ind_verb", "ind_noun")
CONCEPT_SCORES: tuple[str, ...] = ("concept_verb", "concept_noun")


def fusion_weights(variant: str = "hanet") -> dict[str, float]:
    """Weight of each of the seven scores in the ranking score.

    :attr:`ScoreOutput.fused` is (mean of the five embedding scores + mean of the two concept
    scores) / 2: 0.1 for each embedding score, 0.25 for each concept score. The ``global``
    variant ranks by ``sent`` alone.
    """
    if variant == "global":
        return {n: float(n == "sent") for n in SCORE_NAMES}
    return {n: 0.5 / len(CONCEPT_SCORES) if n in CONCEPT_SCORES else 0.5 / len(EMBEDDING_SCORES)
            for n in SCORE_NAMES}


@dataclass
class ScoreOutput:
    """The seven (videos x captions) score matrices of a block; each is (Nv, Nc)."""

    sent: torch.Tensor
    verb: torch.Tensor
    noun: torch.Tensor
    concept_verb: torch.Tensor
    concept_noun: torch.Tensor
    ind_verb: torch.Tensor
    ind_noun: torch.Tensor

    @property
    def embedding(self) -> torch.Tensor:
        """(Nv, Nc) mean of the five embedding scores (what the hinge loss trains)."""
        return (self.sent + self.verb + self.noun + self.ind_verb + self.ind_noun) / 5

    @property
    def concept(self) -> torch.Tensor:
        """(Nv, Nc) mean of the two concept (Jaccard) scores."""
        return (self.concept_verb + self.concept_noun) / 2

    @property
    def fused(self) -> torch.Tensor:
        """(Nv, Nc) the official test-time fusion: (embedding mean + concept mean) / 2."""
        return (self.embedding + self.concept) / 2

    def stack(self) -> torch.Tensor:
        """(7, Nv, Nc) in :data:`SCORE_NAMES` order."""
        return torch.stack([getattr(self, f.name) for f in fields(self)])

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        for f in fields(self):
            yield f.name, getattr(self, f.name)


def cosine_sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-pairs cosine similarity with the official epsilon (sqrt(|x|^2 + 1e-18)).

    Args:
        a: (N, d).
        b: (M, d).

    Returns:
        (N, M).
    """
    a_norm = (a.pow(2).sum(1) + 1e-18).sqrt()
    b_norm = (b.pow(2).sum(1) + 1e-18).sqrt()
    return (a @ b.t()) / (a_norm.unsqueeze(1) * b_norm.unsqueeze(0))


def jaccard_sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-pairs soft Jaccard similarity sum(min) / sum(max) of concept probabilities.

    With gradients (training) it is computed as written, so its gradient equals the official
    one; without, through sum(min) = (|a| + |b| - L1) / 2 and sum(max) = (|a| + |b| + L1) / 2
    with an L1 distance kernel that never builds the (N, M, C) tensor (differences ~1e-6).

    Args:
        a: (N, C) probabilities (non-negative).
        b: (M, C) probabilities.

    Returns:
        (N, M).
    """
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        x, y = a.unsqueeze(1), b.unsqueeze(0)
        return torch.minimum(x, y).sum(-1) / torch.maximum(x, y).sum(-1)
    l1 = torch.cdist(a.float(), b.float(), p=1)
    total = a.float().sum(1, keepdim=True) + b.float().sum(1).unsqueeze(0)
    return ((total - l1) / (total + l1)).to(a.dtype)


def slot_mask(slot_lens: torch.Tensor) -> torch.Tensor:
    """Phrase slots that count: the first n slots, n = number of non-empty slots.

    Official rule (a prefix mask from the count, not the per-slot emptiness); the two agree
    whenever the reader fills slots in order, which it does.

    Args:
        slot_lens: (Nc, P) words per phrase slot.

    Returns:
        (Nc, P) bool.
    """
    count = (slot_lens > 0).sum(1)
    return torch.arange(slot_lens.shape[1], device=slot_lens.device).unsqueeze(0) < count.unsqueeze(1)


def phrase_scores(frames: torch.Tensor, phrases: torch.Tensor, phrase_valid: torch.Tensor,
                  sigma: float, frame_valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Phrase-to-frame attention score of every (video, caption) pair.

    Only valid phrases are scored (captions fill few of their slots), and their similarities
    are averaged per caption with an index-add, so the cost follows the number of real phrases.

    Args:
        frames: (Nv, F, d) frame or clip embeddings.
        phrases: (Nc, P, d) phrase embeddings.
        phrase_valid: (Nc, P) bool, the phrases that count (others are ignored).
        sigma: softmax temperature over frames.
        frame_valid: (Nv, F) bool real frames, or None when every frame is real (local clips).

    Returns:
        (Nv, Nc) mean over each caption's valid phrases of cos(sum_f a_f v_f, p); 0 for a
        caption without valid phrases.
    """
    Nv, F, d = frames.shape
    Nc, P, _ = phrases.shape
    flat_valid = phrase_valid.reshape(-1)
    index = flat_valid.nonzero().squeeze(1)  # (n,) valid phrase slots
    flat_p = phrases.reshape(Nc * P, d).index_select(0, index)  # (n, d)
    owner = torch.div(index, P, rounding_mode="floor")  # caption of each valid phrase
    dots = torch.matmul(frames, flat_p.t())  # (Nv, F, n) raw frame-phrase dot products
    frame_norm = (frames.pow(2).sum(-1) + 1e-18).sqrt()  # (Nv, F)
    phrase_norm = (flat_p.pow(2).sum(-1) + 1e-18).sqrt()  # (n,)
    cos = dots / (frame_norm.unsqueeze(2) * phrase_norm)
    pad = None
    if frame_valid is not None:
        pad = ~frame_valid.unsqueeze(2)  # (Nv, F, 1)
        cos = cos.masked_fill(pad, 0.0)
    attn = cos.clamp_min(0.0)
    attn = attn / attn.norm(dim=1, keepdim=True).clamp_min(1e-10)
    if pad is not None:
        attn = attn.masked_fill(pad, -1e18)
    weights = torch.softmax(sigma * attn, dim=1)  # (Nv, F, n)

    numer = (weights * dots).sum(1)  # (Nv, n): <attended, p>
    gram = torch.bmm(frames, frames.transpose(1, 2))  # (Nv, F, F)
    sq_norm = (weights * torch.bmm(gram, weights)).sum(1)  # (Nv, n): |attended|^2
    # |x| clamped at 1e-10 as the official l2norm does (clamping the square keeps sqrt's
    # gradient finite at 0).
    attended_norm = sq_norm.clamp_min(1e-20).sqrt()
    p_l2 = flat_p.norm(dim=-1).clamp_min(1e-10)
    sims = numer / (attended_norm * p_l2)  # (Nv, n)
    total = sims.new_zeros(Nv, Nc).index_add(1, owner, sims)
    count = phrase_valid.sum(1).clamp_min(1).to(sims.dtype)
    return total / count


def phrase_alignment(frames: torch.Tensor, phrases: torch.Tensor, sigma: float,
                     frame_valid: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-phrase attention over frames and per-phrase similarity, for explanations.

    Same computation as :func:`phrase_scores` but keeps what it averages away; it builds
    (Nv, Nc, P, F) weights, so use it on the few pairs being explained.

    Args:
        frames: (Nv, F, d) frame or clip embeddings.
        phrases: (Nc, P, d) phrase embeddings.
        sigma: softmax temperature.
        frame_valid: (Nv, F) bool real frames, or None.

    Returns:
        (weights (Nv, Nc, P, F) summing to 1 over F, sims (Nv, Nc, P) cosine of each phrase with
        its attended frames).
    """
    Nv, F, d = frames.shape
    Nc, P, _ = phrases.shape
    dots = torch.einsum("vfd,cpd->vcpf", frames, phrases)
    frame_norm = (frames.pow(2).sum(-1) + 1e-18).sqrt()  # (Nv, F)
    phrase_norm = (phrases.pow(2).sum(-1) + 1e-18).sqrt()  # (Nc, P)
    cos = dots / (frame_norm[:, None, None, :] * phrase_norm[None, :, :, None])
    pad = None if frame_valid is None else ~frame_valid[:, None, None, :]
    if pad is not None:
        cos = cos.masked_fill(pad, 0.0)
    attn = cos.clamp_min(0.0)
    attn = attn / attn.norm(dim=-1, keepdim=True).clamp_min(1e-10)
    if pad is not None:
        attn = attn.masked_fill(pad, -1e18)
    weights = torch.softmax(sigma * attn, dim=-1)
    attended = torch.einsum("vcpf,vfd->vcpd", weights, frames)
    sims = torch.nn.functional.normalize(attended, dim=-1, eps=1e-10).mul(
        torch.nn.functional.normalize(phrases, dim=-1, eps=1e-10).unsqueeze(0)).sum(-1)
    return weights, sims


def compute_scores(video: VideoEncoderOutput, text: TextEncoderOutput, sigma: float,
                   only: Optional[tuple[str, ...]] = None) -> ScoreOutput:
    """The seven scores of every (video, caption) pair of a block.

    Args:
        video: encoder outputs of Nv videos.
        text: encoder outputs of Nc captions.
        sigma: attention temperature (config ``simattn_sigma``).
        only: names of the scores to compute (others are returned as zeros); None for all.

    Returns:
        :class:`ScoreOutput` of (Nv, Nc) matrices.
    """
    want = set(SCORE_NAMES if only is None else only)
    Nv, Nc = video.global_embeds.shape[0], text.global_embeds.shape[0]
    zeros = video.global_embeds.new_zeros(Nv, Nc)
    out: dict[str, torch.Tensor] = {}
    verb_valid = slot_mask(text.verb_lens)
    noun_valid = slot_mask(text.noun_lens)
    frame_valid = video_padding_mask(video.lengths, video.num_frames)
    out["sent"] = cosine_sim(video.global_embeds, text.global_embeds) if "sent" in want else zeros
    out["verb"] = (phrase_scores(video.verb_clips, text.verb_embeds, verb_valid, sigma)
                   if "verb" in want else zeros)
    out["noun"] = (phrase_scores(video.noun_clips, text.noun_embeds, noun_valid, sigma)
                   if "noun" in want else zeros)
    out["concept_verb"] = jaccard_sim(video.verb_probs, text.verb_probs) if "concept_verb" in want else zeros
    out["concept_noun"] = jaccard_sim(video.noun_probs, text.noun_probs) if "concept_noun" in want else zeros
    out["ind_verb"] = (phrase_scores(video.verb_frames, text.verb_phrases, verb_valid, sigma, frame_valid)
                       if "ind_verb" in want else zeros)
    out["ind_noun"] = (phrase_scores(video.noun_frames, text.noun_phrases, noun_valid, sigma, frame_valid)
                       if "ind_noun" in want else zeros)
    return ScoreOutput(**out)


__all__ = ["SCORE_NAMES", "EMBEDDING_SCORES", "CONCEPT_SCORES", "fusion_weights", "ScoreOutput", "cosine_sim", "jaccard_sim",
           "slot_mask", "phrase_scores", "phrase_alignment", "compute_scores"]
