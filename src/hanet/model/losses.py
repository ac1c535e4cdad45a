"""HANet's training losses: bidirectional hinge with hardest negatives, and concept BCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_hinge(scores: torch.Tensor, margin: float, max_violation: bool = True,
                      direction: str = "bi", topk: int = 1) -> torch.Tensor:
    """VSE-style hinge loss on a square score matrix whose diagonal holds the positives.

    Args:
        scores: (B, B) scores, ``scores[i, j]`` for video i and caption j; (i, i) are positive.
        margin: hinge margin.
        max_violation: average the ``topk`` hardest negatives (True) or all negatives.
        direction: ``bi`` (both), ``i2t`` (negative captions) or ``t2i`` (negative videos).
        topk: number of hardest negatives averaged.

    Returns:
        Scalar loss, averaged over the batch.
    """
    B = scores.shape[0]
    pos = scores.diagonal()
    eye = torch.eye(B, dtype=torch.bool, device=scores.device)
    k = min(B, topk)
    total = scores.new_zeros(())
    for dim, anchor in ((1, pos.unsqueeze(1)), (0, pos.unsqueeze(0))):
        if (dim == 1 and direction == "t2i") or (dim == 0 and direction == "i2t"):
            continue
        cost = (margin + scores - anchor).clamp_min(0).masked_fill(eye, 0)
        if max_violation:
            cost = cost.topk(k, dim=dim).values / (k * B)
        else:
            cost = cost / (B * (B - 1))
        total = total + cost.sum()
    return total


def masked_concept_bce(probs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over the concepts that count, averaged per sample then over the batch.

    Args:
        probs: (B, C) predicted probabilities.
        labels: (B, C) 0/1 targets (the caption's concepts).
        mask: (B, C) 1 where the concept counts. The official mask is 1 everywhere except
            concepts that another caption of the same video has and this caption lacks (they
            are neither positives nor safe negatives).

    Returns:
        Scalar.
    """
    # F.binary_cross_entropy clamps log at -100 like nn.BCELoss in the official code.
    bce = F.binary_cross_entropy(probs, labels.to(probs.dtype), reduction="none")
    per_sample = (mask * bce).sum(1) / mask.sum(1)
    return per_sample.mean()


__all__ = ["contrastive_hinge", "masked_concept_bce"]
