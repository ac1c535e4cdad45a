"""A contract test per preset, shrunk to test size (timm / Hugging Face style): forward, backward,
scores, save and load — every preset's structure, not only the reference's."""

from __future__ import annotations

import pytest
import torch

from hanet.config import get_preset
from hanet.model import SCORE_NAMES, HANet


def _shrunk(name: str):
    cfg = get_preset(name)
    m = cfg.model
    m.video.dim_fts = (48,)
    m.video.dim_embed = m.text.rnn_hidden_size = 32
    m.text.num_words, m.text.dim_word = 60, 16
    if name != "synth":  # msrvtt/vatex keep their official concept counts and selections
        assert (m.num_verb_concepts, m.num_noun_concepts, m.num_selected_verbs, m.num_selected_nouns) == (512, 1024, 10, 20)
    m.max_frames_in_video = min(m.max_frames_in_video, 24)
    return cfg


@pytest.mark.parametrize("name", ["msrvtt", "vatex", "synth"])
@pytest.mark.parametrize("variant", ["hanet", "global"])
def test_preset_contract(name, variant, make_train_batch, tmp_path):
    cfg = _shrunk(name)
    model = HANet(cfg.model, variant=variant, seed=0)
    batch = make_train_batch(cfg, batch=6, frames=cfg.model.max_frames_in_video)
    out = model(batch)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        v = model.encode_video(batch.video.features, batch.video.lengths)
        t = model.encode_text(batch.text)
        s = model.score(v, t)
        fused = model.fused_score(s)
    assert fused.shape == (6, 6) and torch.isfinite(fused).all()
    assert v.global_embeds.shape == (6, 32) and v.verb_clips.shape == (6, cfg.model.num_selected_verbs, 32)
    assert v.verb_probs.shape == (6, cfg.model.num_verb_concepts) and t.noun_embeds.shape[1] == cfg.model.num_nouns
    if variant == "global":
        assert all(float(getattr(s, n).abs().sum()) == 0 for n in SCORE_NAMES if n != "sent")
    else:
        assert all(float(getattr(s, n).abs().sum()) > 0 for n in SCORE_NAMES)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    again = HANet(cfg.model, variant=variant, seed=1).eval()
    again.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(again.fused_score(again.score(again.encode_video(batch.video.features,
                                                                                      batch.video.lengths),
                                                                   again.encode_text(batch.text))), fused)
