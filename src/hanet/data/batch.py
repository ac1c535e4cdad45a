"""Batches of videos and captions as the model consumes them."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Optional

import numpy as np
import torch


@dataclass
class VideoBatch:
    """B videos.

    Attributes:
        features: (B, T, D) float32 frame features, zero after each length; T is the batch's
            longest video (the official collate trims to it).
        lengths: (B,) int64 real frames per video.
        names: the B video names.
    """

    features: torch.Tensor
    lengths: torch.Tensor
    names: list[str]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "VideoBatch":
        return replace(self, features=self.features.to(device, non_blocking=non_blocking),
                       lengths=self.lengths.to(device, non_blocking=non_blocking))


@dataclass
class TextBatch:
    """B captions with their role graphs.

    Attributes:
        word_ids: (B, L) int64 word ids padded with ``<eos>``; L is the batch's longest caption.
        lengths: (B,) int64 words per caption.
        verb_masks: (B, Pv, L) bool words of each verb slot.
        noun_masks: (B, Pn, L) bool words of each noun (argument) slot.
        node_roles: (B, Pv + Pn) int64 role ids of the slots.
        edges: (B, 1 + Pv + Pn, 1 + Pv + Pn) float32 row-normalised role-graph adjacency.
        captions: the B caption strings.
    """

    word_ids: torch.Tensor
    lengths: torch.Tensor
    verb_masks: torch.Tensor
    noun_masks: torch.Tensor
    node_roles: torch.Tensor
    edges: torch.Tensor
    captions: list[str]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "TextBatch":
        kw = {f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
              for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **kw)


@dataclass
class ConceptTargets:
    """Concept supervision of B training captions.

    Attributes:
        verb_labels: (B, Cv) 1 for the caption's verb concepts.
        noun_labels: (B, Cn) 1 for the caption's noun concepts.
        verb_mask: (B, Cv) 1 where the BCE counts (see ``hanet.model.losses.masked_concept_bce``).
        noun_mask: (B, Cn).
    """

    verb_labels: torch.Tensor
    noun_labels: torch.Tensor
    verb_mask: torch.Tensor
    noun_mask: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "ConceptTargets":
        return ConceptTargets(*(getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self)))


@dataclass
class TrainBatch:
    """B (video, caption) pairs; pair i is positive, all others negative."""

    video: VideoBatch
    text: TextBatch
    concepts: Optional[ConceptTargets] = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "TrainBatch":
        return TrainBatch(self.video.to(device, non_blocking), self.text.to(device, non_blocking),
                          None if self.concepts is None else self.concepts.to(device, non_blocking))

    def pin_memory(self) -> "TrainBatch":
        def pin(x):
            return x.pin_memory() if isinstance(x, torch.Tensor) else x
        v = replace(self.video, features=pin(self.video.features), lengths=pin(self.video.lengths))
        t = replace(self.text, **{f.name: pin(getattr(self.text, f.name)) for f in fields(self.text)
                                  if isinstance(getattr(self.text, f.name), torch.Tensor)})
        c = None if self.concepts is None else ConceptTargets(
            *(pin(getattr(self.concepts, f.name)) for f in fields(self.concepts)))
        return TrainBatch(v, t, c)

    @classmethod
    def from_official(cls, batch: dict) -> "TrainBatch":
        """From the official reader's collated dict (numpy arrays; keys as in the reference npz)."""
        def t(key, dtype):
            return torch.as_tensor(np.asarray(batch[key]), dtype=dtype)

        video = VideoBatch(t("attn_fts", torch.float32), t("attn_lens", torch.int64),
                           [str(n) for n in batch.get("names", [])])
        text = TextBatch(t("sent_ids", torch.int64), t("sent_lens", torch.int64), t("verb_masks", torch.bool),
                         t("noun_masks", torch.bool), t("node_roles", torch.int64), t("rel_edges", torch.float32),
                         [str(c) for c in batch.get("captions", [])])
        concepts = None
        if "verb_concept_label" in batch:
            concepts = ConceptTargets(t("verb_concept_label", torch.float32), t("noun_concept_label", torch.float32),
                                      t("verb_concept_mask", torch.float32), t("noun_concept_mask", torch.float32))
        return cls(video, text, concepts)
