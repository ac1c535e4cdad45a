"""Encoders: batched MIL and clip selection against per-video loops; bad input errors."""

from __future__ import annotations

import math

import pytest
import torch

from hanet.config import get_preset
from hanet.errors import HanetError, ShapeError
from hanet.model import HANet
from hanet.model.video import mil_topk_mean


def test_mil_topk_mean_matches_per_sequence_loop():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(6, 20, 7, generator=g)
    lengths = torch.tensor([20, 1, 8, 9, 17, 3])
    ours = mil_topk_mean(probs, lengths, 8)
    for b in range(6):
        k = math.ceil(int(lengths[b]) / 8)
        ref = probs[b, :lengths[b]].topk(k, dim=0).values.mean(0)
        torch.testing.assert_close(ours[b], ref, atol=1e-7, rtol=0)


def _small_model(seed=0):
    cfg = get_preset("msrvtt").model
    cfg.video.dim_fts = (24,)
    cfg.video.dim_embed = cfg.text.rnn_hidden_size = 32
    cfg.text.num_words = 50
    cfg.text.dim_word = 8
    cfg.video.dropout = cfg.text.dropout = cfg.text.gcn_dropout = 0.0
    return HANet(cfg, seed=seed).eval()


def _loop_clips(frame_probs, top, gated, length, window, k_noun, verb: bool):
    """Per-video reference of the official clip rules."""
    L = int(length)
    sel = frame_probs[:L][:, top]  # (L, S)
    if verb:
        peaks = sel.argmax(0)
        half = window // 2
        if int(peaks.min()) >= half and int(peaks.max()) + half < L:
            return torch.stack([gated[p - half:p + half + 1].mean(0) for p in peaks.tolist()])
        return gated[peaks]
    if L > k_noun - 1:
        idx = sel.topk(k_noun, dim=0).indices  # (k, S)
        return gated[idx].mean(0)
    return gated[sel.argmax(0)]


@pytest.mark.parametrize("lengths", [[20, 20, 20], [20, 3, 1], [12, 5, 2], [4, 4, 4]])
def test_clip_selection_matches_per_video_rules(lengths):
    model = _small_model()
    g = torch.Generator().manual_seed(sum(lengths))
    T = max(lengths)
    lens = torch.tensor(lengths)
    feats = torch.randn(3, T, 24, generator=g) * (torch.arange(T)[None, :, None] < lens[:, None, None])
    with torch.no_grad():
        out = model.encode_video(feats, lens)
        enc = model.video_encoder
        verb_gated = enc.verb_se(out.verb_frames)
        noun_gated = enc.noun_se(out.noun_frames)
    for b in range(3):
        rv = _loop_clips(out.verb_frame_probs[b], out.top_verbs[b], verb_gated[b], lens[b], 5, 3, True)
        rn = _loop_clips(out.noun_frame_probs[b], out.top_nouns[b], noun_gated[b], lens[b], 5, 3, False)
        torch.testing.assert_close(out.verb_clips[b], rv, atol=1e-6, rtol=0)
        torch.testing.assert_close(out.noun_clips[b], rn, atol=1e-6, rtol=0)
        assert int(out.verb_peaks[b].max()) < lengths[b]  # peaks never land on padding


def test_bad_inputs_raise_clear_errors():
    model = _small_model()
    with pytest.raises(ShapeError, match="dim 20 but the model expects 24"):
        model.encode_video(torch.zeros(2, 5, 20), torch.tensor([5, 5]))
    with pytest.raises(ShapeError, match="zero frames"):
        model.encode_video(torch.zeros(2, 5, 24), torch.tensor([5, 0]))
    feats = torch.zeros(2, 5, 24)
    feats[1, 2, 3] = float("nan")
    with pytest.raises(ShapeError, match=r"NaN .*batch rows \[1\]"):
        model.encode_video(feats, torch.tensor([5, 5]))
    from hanet.data.batch import TextBatch

    def text(lengths, ids=None):
        L = 6
        ids = torch.ones(len(lengths), L, dtype=torch.long) if ids is None else ids
        return TextBatch(ids, torch.tensor(lengths), torch.zeros(len(lengths), 4, L, dtype=torch.bool),
                         torch.zeros(len(lengths), 6, L, dtype=torch.bool), torch.zeros(len(lengths), 10, dtype=torch.long),
                         torch.zeros(len(lengths), 11, 11), [])
    with pytest.raises(ShapeError, match="at least one word"):
        model.encode_text(text([3, 0]))
    with pytest.raises(ShapeError, match="vocabulary size"):
        model.encode_text(text([3, 3], torch.full((2, 6), 99, dtype=torch.long)))


def test_config_validation():
    cfg = get_preset("msrvtt").model
    cfg.text.rnn_hidden_size = 512
    with pytest.raises(HanetError, match="must equal"):
        HANet(cfg)
    with pytest.raises(HanetError, match="unknown model variant"):
        HANet(get_preset("vatex").model, variant="nope")


def test_global_variant_fast_path_equals_full_encoder():
    from hanet.data.batch import TextBatch, TrainBatch, VideoBatch

    model = _small_model()
    g = torch.Generator().manual_seed(9)
    feats = torch.randn(4, 6, 24, generator=g)
    lens = torch.tensor([6, 3, 5, 1])
    with torch.no_grad():
        full = model.encode_video(feats, lens).global_embeds
        fast = model.video_encoder.encode_global(feats, lens)
    torch.testing.assert_close(fast, full, atol=0, rtol=0)
    glob = HANet(model.config, variant="global", seed=0).eval()
    glob.load_state_dict(model.state_dict())
    L = 5
    text = TextBatch(torch.randint(3, 50, (4, L), generator=g), torch.tensor([5, 2, 4, 3]),
                     torch.zeros(4, 4, L, dtype=torch.bool), torch.zeros(4, 6, L, dtype=torch.bool),
                     torch.zeros(4, 10, dtype=torch.long), torch.zeros(4, 11, 11), [])
    with torch.no_grad():
        out = glob(TrainBatch(VideoBatch(feats, lens, []), text))
        scores = glob.score(glob.encode_video(feats, lens), glob.encode_text(text))
    torch.testing.assert_close(out.scores, scores.sent, atol=1e-6, rtol=0)
    assert float(scores.verb.abs().max()) == 0  # the global variant fills only the sentence score


def test_unpadded_captions_skip_packing_with_the_same_states():
    """In eval mode a batch without padding (a single query) runs the BiGRU unpacked: the same
    word states as the packed run that batches with padding take."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    model = _small_model().eval()
    enc = model.text_encoder
    g = torch.Generator().manual_seed(3)
    for B, L in ((1, 7), (3, 5)):
        ids = torch.randint(0, enc.config.text.num_words, (B, L), generator=g)
        lengths = torch.full((B,), L)
        with torch.no_grad():
            fast = enc.encode_words(ids, lengths)
            packed = pack_padded_sequence(enc.word_embed(ids), lengths, batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(enc.rnn(packed)[0], batch_first=True, total_length=L)
        fwd, bwd = out.chunk(2, dim=2)
        torch.testing.assert_close(fast, (fwd + bwd) / 2, rtol=1e-6, atol=1e-6)
    # padded batches keep the packed path: states are exactly zero after each length
    ids = torch.randint(0, enc.config.text.num_words, (2, 6), generator=g)
    with torch.no_grad():
        states = enc.encode_words(ids, torch.tensor([6, 3]))
    assert torch.count_nonzero(states[1, 3:]) == 0 and torch.count_nonzero(states[1, :3]) > 0


def test_word_states_computed_ahead_give_the_same_encoding():
    """encode_words calls its callback once, before the recurrence, on both GRU paths; states
    computed ahead and passed to the encoder give exactly its own outputs; wrong shapes are refused."""
    model = _small_model().eval()
    enc = model.text_encoder
    cfg = enc.config
    g = torch.Generator().manual_seed(5)
    B, L = 1, 6
    ids = torch.randint(0, cfg.text.num_words, (B, L), generator=g)
    lengths = torch.full((B,), L)
    verb = torch.zeros(B, cfg.num_verbs, L, dtype=torch.bool)
    verb[0, 0, 1] = True
    noun = torch.zeros(B, cfg.num_nouns, L, dtype=torch.bool)
    noun[0, 0, 3:5] = True
    roles = torch.zeros(B, cfg.num_verbs + cfg.num_nouns, dtype=torch.int64)
    roles[0, 0], roles[0, cfg.num_verbs] = 1, 2
    n = 1 + cfg.num_verbs + cfg.num_nouns
    edges = torch.zeros(B, n, n)
    edges[0, 1, 0] = edges[0, 1 + cfg.num_verbs, 1] = edges[0, 1, 1 + cfg.num_verbs] = 1.0
    calls = []
    with torch.no_grad():
        states = enc.encode_words(ids, lengths, before_recurrence=lambda: calls.append("unpacked"))
        enc.encode_words(torch.cat([ids, ids]), torch.tensor([L, 3]), before_recurrence=lambda: calls.append("packed"))
        ahead = enc(ids, lengths, verb, noun, roles, edges, words=states)
        own = enc(ids, lengths, verb, noun, roles, edges)
    assert calls == ["unpacked", "packed"]
    for name in ("global_embeds", "verb_embeds", "noun_embeds", "verb_probs", "noun_probs"):
        assert torch.equal(getattr(ahead, name), getattr(own, name)), name
    with pytest.raises(ShapeError, match="words"):
        enc(ids, lengths, verb, noun, roles, edges, words=states[:, :3])
