"""The two training losses against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hanet.model.losses import contrastive_hinge, masked_concept_bce


def _naive_hinge(s: np.ndarray, margin: float, max_violation: bool, direction: str, topk: int = 1) -> float:
    n = len(s)
    pos = np.diag(s)
    i2t = np.maximum(margin + s - pos[:, None], 0)  # row i: caption negatives of video i
    t2i = np.maximum(margin + s - pos[None, :], 0)  # column j: video negatives of caption j
    np.fill_diagonal(i2t, 0)
    np.fill_diagonal(t2i, 0)
    if max_violation:
        a = np.sort(i2t, 1)[:, ::-1][:, :topk].mean(1).sum() / n
        b = np.sort(t2i, 0)[::-1][:topk].mean(0).sum() / n
    else:
        a, b = i2t.sum() / (n * (n - 1)), t2i.sum() / (n * (n - 1))  # the official average over negatives
    return {"bi": a + b, "i2t": a, "t2i": b}[direction]


@pytest.mark.parametrize("max_violation", [True, False])
@pytest.mark.parametrize("direction", ["bi", "i2t", "t2i"])
def test_hinge_matches_its_definition(max_violation, direction):
    s = torch.rand(7, 7, generator=torch.Generator().manual_seed(0))
    got = float(contrastive_hinge(s, 0.2, max_violation, direction))
    assert got == pytest.approx(_naive_hinge(s.numpy(), 0.2, max_violation, direction), abs=1e-6)


def test_hinge_gradient_flows_to_the_hardest_negative_only():
    s = torch.tensor([[0.9, 0.8, 0.1], [0.3, 0.5, 0.6], [0.0, 0.1, 0.9]], requires_grad=True)
    contrastive_hinge(s, 0.2, True, "i2t").backward()
    # row 0: negative 0.8 is hardest (violates), row 1: 0.6, row 2: none violates
    assert (s.grad[0, 1] > 0) and (s.grad[1, 2] > 0) and s.grad[0, 2] == 0 and s.grad[2].abs().sum() == 0


def test_masked_bce_is_the_per_caption_mean_over_the_mask_then_the_batch_mean():
    """The official form: sum(mask * bce) / sum(mask) per caption, then the mean over captions."""
    g = torch.Generator().manual_seed(1)
    p = torch.rand(4, 10, generator=g).clamp(0.01, 0.99)
    y = (torch.rand(4, 10, generator=g) < 0.3).float()
    m = (torch.rand(4, 10, generator=g) < 0.7).float()
    m[:, 0] = 1.0  # every caption has a concept that counts (the official mask always has)
    bce = -(y * p.log() + (1 - y) * (1 - p).log())
    want = ((bce * m).sum(1) / m.sum(1)).mean()
    assert float(masked_concept_bce(p, y, m)) == pytest.approx(float(want), rel=1e-6)
    # concepts outside the mask do not count
    p2 = p.clone()
    p2[m == 0] = 0.5
    assert float(masked_concept_bce(p2, y, m)) == pytest.approx(float(want), rel=1e-6)
