"""The seven scores against straightforward (materialising) implementations of their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hanet.model.losses import contrastive_hinge
from hanet.model.scoring import (SCORE_NAMES, FrameProducts, PhraseQueries, ScoreOutput, attend, cosine_sim, fuse,
                                 fusion_weights, jaccard_sim, phrase_attention, slot_mask)


def phrase_scores(frames, phrases, phrase_valid, sigma, frame_valid=None):
    return phrase_attention(frames, phrases, phrase_valid, sigma, frame_valid).score


def naive_phrase_scores(frames, phrases, phrase_valid, sigma, frame_valid=None):
    """Build the attended frame vector of every (video, caption, phrase) explicitly (float64)."""
    frames, phrases = frames.double(), phrases.double()
    Nv, F, d = frames.shape
    Nc, P, _ = phrases.shape
    out = torch.zeros(Nv, Nc, dtype=torch.float64)
    for v in range(Nv):
        for c in range(Nc):
            sims = []
            for p in range(P):
                ph = phrases[c, p]
                cos = frames[v] @ ph / (frames[v].norm(dim=1) * ph.norm())
                real = torch.ones(F, dtype=torch.bool) if frame_valid is None else frame_valid[v]
                a = torch.where(real, cos.clamp_min(0), torch.zeros(()))
                a = a / a.norm().clamp_min(1e-10)
                a = torch.where(real, a, torch.full((), -1e18, dtype=torch.float64))
                w = torch.softmax(sigma * a, 0)
                att = (w[:, None] * frames[v]).sum(0)
                sims.append(float(att @ ph / (att.norm() * ph.norm())))
            valid = phrase_valid[c]
            out[v, c] = sum(s for s, ok in zip(sims, valid) if ok) / max(int(valid.sum()), 1)
    return out


@pytest.mark.parametrize("masked", [False, True])
def test_phrase_scores_match_definition(masked):
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(5, 7, 16, generator=g)
    phrases = torch.randn(4, 3, 16, generator=g)
    phrase_valid = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]], dtype=torch.bool)
    frame_valid = None
    if masked:
        lengths = torch.tensor([7, 3, 1, 5, 6])
        frame_valid = torch.arange(7)[None] < lengths[:, None]
        frames = frames * frame_valid[..., None]  # padded frames are arbitrary; zero here
        frames[1, 5] = 123.0  # and a padded frame with a large value must not matter
    ours = phrase_scores(frames, phrases, phrase_valid, 4.0, frame_valid)
    ref = naive_phrase_scores(frames, phrases, phrase_valid, 4.0, frame_valid)
    torch.testing.assert_close(ours.double(), ref, atol=2e-6, rtol=0)
    assert torch.all(ours[:, 2] == 0)  # a caption without phrases scores 0


def test_phrase_scores_blocks_and_padding_are_invisible():
    g = torch.Generator().manual_seed(1)
    frames = torch.randn(9, 6, 8, generator=g)
    lengths = torch.tensor([6, 2, 5, 1, 6, 3, 4, 6, 2])
    valid = torch.arange(6)[None] < lengths[:, None]
    phrases = torch.randn(11, 4, 8, generator=g)
    pv = slot_mask(torch.randint(0, 3, (11, 4), generator=g))
    full = phrase_scores(frames, phrases, pv, 4.0, valid)
    blocks = torch.cat([torch.cat([phrase_scores(frames[a:a + 4], phrases[b:b + 5], pv[b:b + 5], 4.0, valid[a:a + 4])
                                   for b in range(0, 11, 5)], 1) for a in range(0, 9, 4)], 0)
    torch.testing.assert_close(blocks, full, atol=1e-6, rtol=0)
    # Padding with extra zero frames (as concatenating video chunks does) changes nothing.
    padded = torch.cat([frames, torch.zeros(9, 3, 8)], 1)
    pvalid = torch.arange(9)[None] < lengths[:, None]
    torch.testing.assert_close(phrase_scores(padded, phrases, pv, 4.0, pvalid), full, atol=1e-6, rtol=0)


def test_phrase_scores_gradient_matches_definition():
    g = torch.Generator().manual_seed(2)
    frames = torch.randn(3, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    phrases = torch.randn(3, 2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    valid = torch.ones(3, 2, dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda f, p: phrase_scores(f, p, valid, 4.0), (frames, phrases))


def test_slot_mask_is_a_prefix_of_the_count():
    lens = torch.tensor([[2, 1, 0, 0], [0, 3, 0, 0], [0, 0, 0, 0]])
    assert slot_mask(lens).tolist() == [[True, True, False, False], [True, False, False, False],
                                        [False, False, False, False]]


def test_cosine_and_jaccard():
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(6, 40, generator=g), torch.rand(5, 40, generator=g)
    cos = cosine_sim(a, b)
    torch.testing.assert_close(cos, torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=-1), atol=1e-6,
                               rtol=0)
    ref = torch.tensor([[float(torch.minimum(x, y).sum() / torch.maximum(x, y).sum()) for y in b] for x in a])
    with torch.no_grad():  # the fast L1 form
        fast = jaccard_sim(a, b)
    torch.testing.assert_close(fast, ref, atol=2e-6, rtol=0)
    a.requires_grad_(True)
    exact = jaccard_sim(a, b)  # the min/max form used with gradients
    torch.testing.assert_close(exact.detach(), ref, atol=1e-6, rtol=0)


def test_hinge_hardest_negative():
    s = torch.tensor([[0.9, 0.8, 0.1], [0.3, 0.5, 0.6], [0.2, 0.2, 0.4]])
    # Row i: hardest caption negative; column j: hardest video negative; each / batch.
    rows = [max(0.2 + 0.8 - 0.9, 0), max(0.2 + 0.6 - 0.5, 0), max(0.2 + 0.2 - 0.4, 0)]
    cols = [max(0.2 + 0.3 - 0.9, 0), max(0.2 + 0.8 - 0.5, 0), max(0.2 + 0.6 - 0.4, 0)]
    expect = (sum(rows) + sum(cols)) / 3
    assert contrastive_hinge(s, 0.2) == pytest.approx(expect, abs=1e-6)
    assert contrastive_hinge(s, 0.2, direction="i2t") == pytest.approx(sum(rows) / 3, abs=1e-6)
    # Sum over all negatives when not max_violation.
    allneg = np.clip(0.2 + s.numpy() - np.diag(s.numpy())[:, None], 0, None)
    np.fill_diagonal(allneg, 0)
    allneg2 = np.clip(0.2 + s.numpy() - np.diag(s.numpy())[None, :], 0, None)
    np.fill_diagonal(allneg2, 0)
    assert contrastive_hinge(s, 0.2, max_violation=False) == pytest.approx((allneg.sum() + allneg2.sum()) / 6, abs=1e-6)


def test_phrase_attention_keeps_what_the_score_averages():
    """The weights and similarities explanations (and time spans) read are the score's own."""
    g = torch.Generator().manual_seed(4)
    frames = torch.randn(3, 6, 8, generator=g)
    valid = torch.arange(6)[None] < torch.tensor([6, 4, 2])[:, None]
    phrases = torch.randn(2, 3, 8, generator=g)
    pv = torch.tensor([[True, True, False], [True, False, False]])
    pa = phrase_attention(frames, phrases, pv, 4.0, valid)
    assert pa.weights.shape == (3, 6, 3) and pa.caption.tolist() == [0, 0, 1] and pa.slot.tolist() == [0, 1, 0]
    torch.testing.assert_close(pa.weights.sum(1), torch.ones(3, 3))
    assert float(pa.weights[2, 2:].abs().max()) == 0.0  # padded frames get no attention
    ref = naive_phrase_scores(frames, phrases, pv, 4.0, valid)
    torch.testing.assert_close(pa.score.double(), ref, atol=2e-6, rtol=0)
    mine = pa.of(1, 0)
    assert set(mine) == {0, 1}
    single = naive_phrase_scores(frames[1:2], phrases[:1, :1], torch.ones(1, 1, dtype=torch.bool), 4.0, valid[1:2])
    assert mine[0][1] == pytest.approx(float(single[0, 0]), abs=2e-6)
    # the rule reads the frames only through their products (what an index hands it, computed its own way)
    queries = PhraseQueries.of(phrases, pv)
    assert queries.phrases.shape == (3, 8) and queries.slots.tolist() == [0, 1, 3]
    f64 = frames.double()
    products = FrameProducts((f64 @ queries.phrases.double().t()).float(), (f64.pow(2).sum(-1) + 1e-18).sqrt().float(),
                             (f64 @ f64.transpose(1, 2)).float())
    torch.testing.assert_close(attend(products, queries, 4.0, valid).score, pa.score, atol=1e-6, rtol=0)


def test_fusion_is_the_weighted_sum_of_the_seven():
    g = torch.Generator().manual_seed(5)
    s = ScoreOutput(*torch.rand(7, 4, 5, generator=g))
    for variant in ("hanet", "global"):
        w = fusion_weights(variant)
        torch.testing.assert_close(fuse(s, variant), sum(w[n] * getattr(s, n) for n in SCORE_NAMES), atol=1e-6, rtol=0)
