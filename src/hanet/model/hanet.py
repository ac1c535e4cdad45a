"""HANet: the two encoders, the seven scores, their fusion and the training loss.

Usage:
    >>> from hanet.config import get_preset
    >>> model = HANet(get_preset("msrvtt").model, seed=0)
    >>> video = model.encode_video(features, lengths)               # (B, T, 2048), (B,)
    >>> text = model.encode_text(batch.text)                         # a TextBatch
    >>> fused = model.score(video, text).fused                       # (B_videos, B_captions)

Encoding and scoring are separate so that an index can encode each video once and score
any number of queries later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from hanet.config import ModelConfig
from hanet.data.batch import ConceptTargets, TextBatch, TrainBatch
from hanet.errors import HanetError
from hanet.model.losses import contrastive_hinge, masked_concept_bce
from hanet.model.scoring import (PhraseQueries, ScoreOutput, VideoProducts, compute_scores, cosine_sim, fuse,
                                phrase_queries, score_and_attend, score_products, variant_scores)
from hanet.model.text import TextEncoder, TextEncoderOutput
from hanet.model.video import VideoEncoder, VideoEncoderOutput

VARIANTS = ("hanet", "global")
"""``hanet``: the full model. ``global``: the same encoders trained and scored with the
video-sentence score alone (the ablation baseline the demo compares against)."""


@dataclass
class LossOutput:
    """The training loss of a batch of B positive pairs and its parts (scalars).

    Attributes:
        loss: the optimised total.
        fusion_loss: hinge on the mean of the five embedding scores.
        concept_loss: concept_score_weight * hinge on the mean of the two concept scores.
        bce_loss: concept_bce_weight * (video verb + video noun + text verb + text noun BCE).
        scores: (B, B) the fused training score (detached), for monitoring.
    """

    loss: torch.Tensor
    fusion_loss: torch.Tensor
    concept_loss: torch.Tensor
    bce_loss: torch.Tensor
    scores: torch.Tensor


class HANet(nn.Module):
    """Hierarchical Alignment Network.

    Args:
        config: model configuration.
        variant: ``hanet`` or ``global`` (see :data:`VARIANTS`).
        seed: if given, parameters are initialised exactly as the official code initialises
            them after ``torch.manual_seed(seed)`` (see :func:`hanet.model.official.init_like_official_`).
    """

    def __init__(self, config: ModelConfig, variant: str = "hanet", seed: Optional[int] = None) -> None:
        super().__init__()
        config.validate()
        if variant not in VARIANTS:
            raise HanetError(f"unknown model variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        self.config = config
        self.variant = variant
        self.video_encoder = VideoEncoder(config)
        self.text_encoder = TextEncoder(config)
        from hanet.model.official import init_like_official_

        init_like_official_(self, seed=seed)

    # ---------------------------------------------------------------- encoders
    def encode_video(self, features: torch.Tensor, lengths: torch.Tensor) -> VideoEncoderOutput:
        """Encode videos.

        Args:
            features: (B, T, D) frame features, zero-padded after each length.
            lengths: (B,) int64 real frames per video.

        Returns:
            :class:`~hanet.model.video.VideoEncoderOutput`.
        """
        return self.video_encoder(features, lengths)

    def encode_text(self, text: TextBatch, words: Optional[torch.Tensor] = None) -> TextEncoderOutput:
        """Encode captions with their role graphs (see :class:`~hanet.data.batch.TextBatch`).

        Args:
            text: the captions.
            words: (B, L, h) their BiGRU word states when already computed
                (:meth:`~hanet.model.text.TextEncoder.encode_words`); None computes them.
        """
        return self.text_encoder(text.word_ids, text.lengths, text.verb_masks.bool(), text.noun_masks.bool(),
                                 text.node_roles.long(), text.edges.float(), words=words)

    # ---------------------------------------------------------------- scoring
    def score(self, video: VideoEncoderOutput, text: TextEncoderOutput) -> ScoreOutput:
        """The seven (videos x captions) scores; the ``global`` variant fills only ``sent``.

        Args:
            video: Nv videos' encodings.
            text: Nc captions' encodings.
        """
        return compute_scores(video, text, self.config.simattn_sigma, only=variant_scores(self.variant))

    def score_products(self, video: VideoProducts, text: TextEncoderOutput,
                       queries: dict[str, PhraseQueries]) -> ScoreOutput:
        """:meth:`score` of videos given by their products with ``queries`` (an index's stored
        videos, :func:`hanet.model.scoring.score_products`)."""
        return score_products(video, text, queries, self.config.simattn_sigma, only=variant_scores(self.variant))[0]

    def phrase_queries(self, text: TextEncoderOutput) -> dict[str, PhraseQueries]:
        """The captions' valid phrases of the phrase scores this variant has (what
        :meth:`score_products` needs the videos' products with)."""
        return phrase_queries(text, variant_scores(self.variant))

    def score_and_attend(self, video: VideoEncoderOutput, text: TextEncoderOutput):
        """:meth:`score` plus the phrase attentions behind it (explanations and time spans)."""
        return score_and_attend(video, text, self.config.simattn_sigma, only=variant_scores(self.variant))

    def fused_score(self, scores: ScoreOutput) -> torch.Tensor:
        """(Nv, Nc) the ranking score (:func:`hanet.model.scoring.fuse`)."""
        return fuse(scores, self.variant)

    # ---------------------------------------------------------------- training
    def loss(self, video: VideoEncoderOutput, text: TextEncoderOutput,
             concepts: Optional[ConceptTargets]) -> LossOutput:
        """Training loss of B positive pairs (video i with caption i).

        Total = hinge(mean of the five embedding scores)
              + concept_score_weight * hinge(mean of the two concept scores)
              + concept_bce_weight * (the four masked concept BCE means).
        The official code also computes per-score hinge losses that it never adds; we skip them.
        """
        cfg = self.config
        scores = self.score(video, text)
        if self.variant == "global":
            return self._global_loss(scores.sent)
        fusion = self._hinge(scores.embedding)
        concept = cfg.concept_score_weight * self._hinge(scores.concept)
        bce = scores.sent.new_zeros((), dtype=torch.float32)
        if concepts is not None and cfg.concept_bce_weight > 0:
            # BCE is not autocast-safe: compute it in float32.
            with torch.autocast(device_type=scores.sent.device.type, enabled=False):
                terms = [masked_concept_bce(p.float(), lbl, m) for p, lbl, m in (
                    (video.verb_probs, concepts.verb_labels, concepts.verb_mask),
                    (video.noun_probs, concepts.noun_labels, concepts.noun_mask),
                    (text.verb_probs, concepts.verb_labels, concepts.verb_mask),
                    (text.noun_probs, concepts.noun_labels, concepts.noun_mask))]
            bce = cfg.concept_bce_weight * (terms[0] + terms[1] + terms[2] + terms[3])
        total = fusion + bce + concept
        return LossOutput(total, fusion, concept, bce, scores.fused.detach())

    def forward(self, batch: TrainBatch) -> LossOutput:
        """Loss of a training batch (what DistributedDataParallel wraps)."""
        text = self.encode_text(batch.text)
        if self.variant == "global":
            # Only the event level feeds this variant's score: skip the other video levels.
            g = self.video_encoder.encode_global(batch.video.features, batch.video.lengths)
            return self._global_loss(cosine_sim(g, text.global_embeds))
        video = self.encode_video(batch.video.features, batch.video.lengths)
        return self.loss(video, text, batch.concepts)

    def _hinge(self, scores: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        return contrastive_hinge(scores.float(), cfg.margin, cfg.max_violation, cfg.loss_direction, cfg.hard_topk)

    def _global_loss(self, sent: torch.Tensor) -> LossOutput:
        """The global variant's loss: the hinge on the (B, B) sentence scores alone."""
        fusion = self._hinge(sent)
        zero = fusion.new_zeros(())
        return LossOutput(fusion, fusion, zero, zero, sent.detach())


__all__ = ["HANet", "LossOutput", "VARIANTS"]
