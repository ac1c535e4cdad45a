"""Parity with the official code's golden vectors (tests/data/reference/hanet-small)."""

from __future__ import annotations

import numpy as np
import torch

from hanet.cli import main
from hanet.data.batch import TrainBatch
from hanet.model import HANet
from hanet.model.official import from_official_state, official_name, to_official_state
from hanet.parity import _states, run_parity


def _train_batch(z) -> TrainBatch:
    return TrainBatch.from_official({k[len("train_batch/"):]: z[k] for k in z.files if k.startswith("train_batch/")})


def test_parity_all_groups_pass(reference_dir):
    lines: list[str] = []
    checks = run_parity(reference_dir, report=lines.append)
    groups = {c.group for c in checks}
    # Every group the issue names is checked, not skipped.
    for g in ("reader: train_batch from data/", "train: loss", "train: gradients", "train: state after one Adam step",
              "eval: video encoder", "eval: text encoder", "eval: seven score matrices", "test: score matrices",
              "test: metrics (must be equal)"):
        assert g in groups, (g, lines)
    failed = [c.line() for c in checks if not c.ok]
    assert not failed, "\n".join(lines)
    assert all(c.max_diff <= 1e-5 for c in checks)


def test_parity_cli_exit_status(reference_dir, capsys):
    assert main(["parity", "--reference", str(reference_dir)]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out
    # An impossible tolerance makes the command fail (non-zero), so CI would notice a regression.
    assert main(["parity", "--reference", str(reference_dir), "--tolerance", "1e-12"]) == 1


def test_seeded_init_matches_official(reference_dir, ref_config):
    sup = np.load(reference_dir / "supplement.npz")
    model = HANet(ref_config.model, seed=0)
    ref = from_official_state(_states(sup, "init_state"), model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k
    # A different seed gives different weights.
    other = HANet(ref_config.model, seed=1)
    assert not torch.equal(other.video_encoder.level_proj[0].weight, model.video_encoder.level_proj[0].weight)


def test_official_state_round_trip(reference_npz, ref_config):
    model = HANet(ref_config.model, seed=3)
    off = to_official_state(model)
    # BatchNorm appears under both official names, kernel-1 convs get their trailing axis back.
    assert "classifier_verb.1.running_mean" in off["video_encoder"]
    assert off["text_encoder"]["classifier_noun.0.weight"].dim() == 3
    again = HANet(ref_config.model, seed=4)
    again.load_state_dict(from_official_state(off, again))
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    # Every one of our tensors has an official name present in the reference state.
    names = {k.split("/", 1)[1] for k in reference_npz.files if k.startswith("eval_state/")}
    for k in model.state_dict():
        side, off_name = official_name(k)
        assert f"{side}/{off_name}" in names


def test_batch_composition_does_not_change_text_outputs(reference_npz, ref_config):
    """Text encodings are independent of the batch they are computed in (eval mode)."""
    model = HANet(ref_config.model, seed=0)
    model.load_state_dict(from_official_state(_states(reference_npz, "eval_state"), model))
    model.eval()
    b = _train_batch(reference_npz)
    with torch.no_grad():
        full = model.encode_text(b.text)
        from hanet.data.batch import TextBatch

        sub = TextBatch(b.text.word_ids[2:5], b.text.lengths[2:5], b.text.verb_masks[2:5], b.text.noun_masks[2:5],
                        b.text.node_roles[2:5], b.text.edges[2:5], [])
        part = model.encode_text(sub)
    torch.testing.assert_close(part.global_embeds, full.global_embeds[2:5], atol=1e-6, rtol=0)
    torch.testing.assert_close(part.verb_probs, full.verb_probs[2:5], atol=1e-6, rtol=0)
