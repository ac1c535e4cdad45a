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
from typing import Iterator, Optional, Sequence

import torch

from hanet.model.text import TextEncoderOutput
from hanet.model.video import VideoEncoderOutput, video_padding_mask

SCORE_NAMES: tuple[str, ...] = ("sent", "verb", "noun", "concept_verb", "concept_noun", "ind_verb", "ind_noun")
"""The seven scores, in the official order (``test/scores`` of the reference stacks them so)."""

EMBEDDING_SCORES: tuple[str, ...] = ("sent", "verb", "noun", "ind_verb", "ind_noun")
CONCEPT_SCORES: tuple[str, ...] = ("concept_verb", "concept_noun")


def fusion_weights(variant: str = "hanet") -> dict[str, float]:
    """Weight of each of the seven scores in the ranking score (:func:`fuse`), for explanations
    and for bounds on the first stage of search: :func:`fuse` equals the weighted sum of the
    seven scores (tested), though it is computed the official way for parity of rounding.

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

    def transposed(self) -> "ScoreOutput":
        """The same scores as (Nc, Nv) matrices (captions first: video-to-text ranking)."""
        return ScoreOutput(*(getattr(self, f.name).t() for f in fields(self)))

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


@dataclass
class PhraseAttention:
    """Phrase-to-frame attention of every (video, valid phrase) pair: the heart of the local and
    individual scores, and what explanations and time spans read (n = valid phrases of the block).

    Attributes:
        score: (Nv, Nc) mean over each caption's valid phrases of their similarity; 0 for a
            caption without valid phrases.
        weights: (Nv, F, n) attention of each phrase over the frames (or clips), summing to 1
            over F (padded frames get 0).
        sims: (Nv, n) cosine of each phrase with its attention-weighted frames.
        caption: (n,) the caption of each valid phrase.
        slot: (n,) its slot within that caption.
    """

    score: torch.Tensor
    weights: torch.Tensor
    sims: torch.Tensor
    caption: torch.Tensor
    slot: torch.Tensor

    def of(self, video: int, caption: int) -> dict[int, tuple[torch.Tensor, float]]:
        """slot -> ((F,) attention, similarity) of one pair's phrases."""
        cols = (self.caption == caption).nonzero().flatten().tolist()
        return {int(self.slot[j]): (self.weights[video, :, j], float(self.sims[video, j])) for j in cols}


def valid_phrases(phrases: torch.Tensor, phrase_valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The phrases that count, flattened: what the frames of every video are multiplied by.

    Args:
        phrases: (Nc, P, d) phrase embeddings.
        phrase_valid: (Nc, P) bool.

    Returns:
        ((n, d) the valid phrases, (n,) int64 their flat slots c * P + p).
    """
    Nc, P, d = phrases.shape
    index = phrase_valid.reshape(-1).nonzero().squeeze(1)
    return phrases.reshape(Nc * P, d).index_select(0, index), index


@dataclass
class PhraseQueries:
    """The valid phrases of Nc captions for one phrase score: what every video's frames (or
    clips) are multiplied by (n = valid phrases of the block, in caption then slot order).

    Attributes:
        phrases: (n, d) the valid phrase embeddings.
        slots: (n,) int64 their flat slots c * P + p.
        valid: (Nc, P) bool, the phrases that count.
    """

    phrases: torch.Tensor
    slots: torch.Tensor
    valid: torch.Tensor

    @classmethod
    def of(cls, phrases: torch.Tensor, phrase_valid: torch.Tensor) -> "PhraseQueries":
        """From (Nc, P, d) phrase embeddings and their (Nc, P) validity."""
        flat, slots = valid_phrases(phrases, phrase_valid)
        return cls(flat, slots, phrase_valid)


@dataclass
class FrameProducts:
    """What a phrase score needs of Nv videos' frames (or clips) against n phrases: the
    attention rule reads the frames only through these.

    Attributes:
        dots: (Nv, F, n) frame . phrase.
        norms: (Nv, F) sqrt(|frame|^2 + 1e-18).
        grams: (Nv, F, F) frames @ frames^T.
    """

    dots: torch.Tensor
    norms: torch.Tensor
    grams: torch.Tensor

    @classmethod
    def of(cls, frames: torch.Tensor, phrases: torch.Tensor) -> "FrameProducts":
        """From (Nv, F, d) frames and (n, d) phrases (differentiable: training goes through here)."""
        return cls(torch.matmul(frames, phrases.t()), (frames.pow(2).sum(-1) + 1e-18).sqrt(),
                   torch.bmm(frames, frames.transpose(1, 2)))


def attend(products: FrameProducts, queries: PhraseQueries, sigma: float,
           frame_valid: Optional[torch.Tensor] = None) -> PhraseAttention:
    """Attention of every valid phrase over the frames of every video, and the phrase score.

    The official rule: frame-phrase cosine, negatives set to 0, L2-normalised over frames,
    softmax with temperature ``sigma``, the attention-weighted sum of the *unnormalised* frame
    embeddings, cosine with the phrase; averaged over the caption's valid phrases. Only valid
    phrases are scored (captions fill few of their slots), and the norm of each attended
    vector comes from the videos' (F, F) Gram matrices, so the cost follows the number of real
    phrases and no (Nv, n, d) tensor is built.

    Args:
        products: the videos' frames against ``queries.phrases``.
        queries: the captions' valid phrases.
        sigma: softmax temperature over frames.
        frame_valid: (Nv, F) bool real frames, or None when every frame is real (local clips).

    Returns:
        :class:`PhraseAttention`.
    """
    dots, frame_norm, gram = products.dots, products.norms, products.grams
    flat_p, index, phrase_valid = queries.phrases, queries.slots, queries.valid
    Nv = dots.shape[0]
    Nc, P = phrase_valid.shape
    owner = torch.div(index, P, rounding_mode="floor")  # caption of each valid phrase
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
    sq_norm = (weights * torch.bmm(gram, weights)).sum(1)  # (Nv, n): |attended|^2
    # |x| clamped at 1e-10 as the official l2norm does (clamping the square keeps sqrt's
    # gradient finite at 0).
    attended_norm = sq_norm.clamp_min(1e-20).sqrt()
    p_l2 = flat_p.norm(dim=-1).clamp_min(1e-10)
    sims = numer / (attended_norm * p_l2)  # (Nv, n)
    total = sims.new_zeros(Nv, Nc).index_add(1, owner, sims)
    count = phrase_valid.sum(1).clamp_min(1).to(sims.dtype)
    return PhraseAttention(total / count, weights, sims, owner, index - owner * P)


def phrase_attention(frames: torch.Tensor, phrases: torch.Tensor, phrase_valid: torch.Tensor, sigma: float,
                     frame_valid: Optional[torch.Tensor] = None) -> PhraseAttention:
    """:func:`attend` on frames given whole.

    Args:
        frames: (Nv, F, d) frame or clip embeddings.
        phrases: (Nc, P, d) phrase embeddings.
        phrase_valid: (Nc, P) bool, the phrases that count (others are ignored).
        sigma: softmax temperature over frames.
        frame_valid: (Nv, F) bool real frames, or None when every frame is real (local clips).
    """
    queries = PhraseQueries.of(phrases, phrase_valid)
    return attend(FrameProducts.of(frames, queries.phrases), queries, sigma, frame_valid)


#: The four phrase-attention scores: (video frames or clips, caption phrases, phrase lengths, per frame?)
PHRASE_SCORES: dict[str, tuple[str, str, str, bool]] = {
    "verb": ("verb_clips", "verb_embeds", "verb_lens", False),
    "noun": ("noun_clips", "noun_embeds", "noun_lens", False),
    "ind_verb": ("verb_frames", "verb_phrases", "verb_lens", True),
    "ind_noun": ("noun_frames", "noun_phrases", "noun_lens", True),
}
def variant_scores(variant: str) -> tuple[str, ...]:
    """The scores a model variant has: all seven, or ``sent`` alone for ``global``."""
    return ("sent",) if variant == "global" else SCORE_NAMES


def fuse(scores: ScoreOutput, variant: str = "hanet") -> torch.Tensor:
    """(Nv, Nc) the ranking score: the official fusion (:attr:`ScoreOutput.fused`), or ``sent``
    for the global variant. Evaluation, search and explanations all rank by this."""
    return scores.sent if variant == "global" else scores.fused


def phrase_queries(text: TextEncoderOutput, only: Optional[Sequence[str]] = None) -> dict[str, PhraseQueries]:
    """Phrase score name -> the captions' valid phrases it multiplies the frames (or clips) of
    :data:`PHRASE_SCORES` by; ``only``: those of these scores (None: all four)."""
    return {name: PhraseQueries.of(getattr(text, tfield), slot_mask(getattr(text, lens)))
            for name, (_, tfield, lens, _) in PHRASE_SCORES.items() if only is None or name in only}


@dataclass
class VideoProducts:
    """Nv videos as the seven scores read them: the frames (or clips) of each phrase score only
    through their :class:`FrameProducts` with a block of captions' phrases. The model builds
    them from its encoder outputs (:func:`score_and_attend`); an index builds them from stored
    records without materialising the frames (:mod:`hanet.index.rerank`).

    Attributes:
        global_embeds: (Nv, d).
        verb_probs: (Nv, Cv), or (Nv, 0) when no concept score is asked.
        noun_probs: (Nv, Cn), likewise.
        lengths: (Nv,) int64 real frames.
        products: phrase score name -> :class:`FrameProducts` against :func:`phrase_queries`
            of the same captions; the scores asked for must be present.
    """

    global_embeds: torch.Tensor
    verb_probs: torch.Tensor
    noun_probs: torch.Tensor
    lengths: torch.Tensor
    products: dict[str, FrameProducts]


def score_products(video: VideoProducts, text: TextEncoderOutput, queries: dict[str, PhraseQueries], sigma: float,
                   only: Optional[Sequence[str]] = None) -> tuple[ScoreOutput, dict[str, PhraseAttention]]:
    """The seven scores of every (video, caption) pair of a block, and the phrase attentions
    behind the four phrase scores: the one scoring rule of training, evaluation, search and
    explanations.

    Args:
        video: Nv videos, their products taken with ``queries``.
        text: encoder outputs of Nc captions.
        queries: :func:`phrase_queries` of ``text``.
        sigma: attention temperature (config ``simattn_sigma``).
        only: names of the scores to compute (others are returned as zeros); None for all.

    Returns:
        (:class:`ScoreOutput` of (Nv, Nc) matrices, score name -> :class:`PhraseAttention` for the
        phrase scores computed).
    """
    want = set(SCORE_NAMES if only is None else only)
    Nv, Nc = video.global_embeds.shape[0], text.global_embeds.shape[0]
    zeros = video.global_embeds.new_zeros(Nv, Nc)
    out: dict[str, torch.Tensor] = {n: zeros for n in SCORE_NAMES}
    attention: dict[str, PhraseAttention] = {}
    if "sent" in want:
        out["sent"] = cosine_sim(video.global_embeds, text.global_embeds)
    if "concept_verb" in want:
        out["concept_verb"] = jaccard_sim(video.verb_probs, text.verb_probs)
    if "concept_noun" in want:
        out["concept_noun"] = jaccard_sim(video.noun_probs, text.noun_probs)
    for name, (_, _, _, per_frame) in PHRASE_SCORES.items():
        if name not in want:
            continue
        products = video.products[name]
        frame_valid = video_padding_mask(video.lengths, products.dots.shape[1]) if per_frame else None
        pa = attend(products, queries[name], sigma, frame_valid)
        out[name] = pa.score
        attention[name] = pa
    return ScoreOutput(**out), attention


def score_and_attend(video: VideoEncoderOutput, text: TextEncoderOutput, sigma: float,
                     only: Optional[Sequence[str]] = None) -> tuple[ScoreOutput, dict[str, PhraseAttention]]:
    """:func:`score_products` on encoder outputs: the products are taken here.

    Args:
        video: encoder outputs of Nv videos.
        text: encoder outputs of Nc captions.
        sigma: attention temperature (config ``simattn_sigma``).
        only: names of the scores to compute (others are returned as zeros); None for all.
    """
    want = SCORE_NAMES if only is None else tuple(only)
    queries = phrase_queries(text, want)
    products = {name: FrameProducts.of(getattr(video, PHRASE_SCORES[name][0]), q.phrases)
                for name, q in queries.items()}
    prepared = VideoProducts(video.global_embeds, video.verb_probs, video.noun_probs, video.lengths, products)
    return score_products(prepared, text, queries, sigma, want)


def compute_scores(video: VideoEncoderOutput, text: TextEncoderOutput, sigma: float,
                   only: Optional[Sequence[str]] = None) -> ScoreOutput:
    """The seven scores of every (video, caption) pair of a block (see :func:`score_and_attend`).

    Returns:
        :class:`ScoreOutput` of (Nv, Nc) matrices.
    """
    return score_and_attend(video, text, sigma, only)[0]


__all__ = ["SCORE_NAMES", "EMBEDDING_SCORES", "CONCEPT_SCORES", "PHRASE_SCORES", "fusion_weights", "variant_scores",
           "fuse", "ScoreOutput", "PhraseAttention", "PhraseQueries", "FrameProducts", "VideoProducts", "cosine_sim",
           "jaccard_sim", "slot_mask", "valid_phrases", "attend", "phrase_attention", "phrase_queries",
           "score_products", "score_and_attend", "compute_scores"]
