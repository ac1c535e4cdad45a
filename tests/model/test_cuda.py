"""CPU-vs-device agreement on the parity reference (``pytest -m cuda``; skipped without a GPU).

``benchmarks/gpu_check.py`` runs these on the GPU machine. ``HANET_CUDA_TEST_DEVICE`` names the
device (default ``cuda``); the script's CPU dry run sets it to ``cpu`` so the tests themselves are
exercised without a GPU. TF32 is off for the comparison (cuDNN allows it for convolutions by
default, which moves fp32 results by ~1e-3).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from hanet.data.batch import TrainBatch
from hanet.model import SCORE_NAMES, HANet
from hanet.model.official import from_official_state
from hanet.parity import _states

DEVICE = os.environ.get("HANET_CUDA_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="no CUDA device")]
ATOL = 2e-5


@pytest.fixture()
def no_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _model(ref_config, reference_npz, state: str) -> HANet:
    model = HANet(ref_config.model, seed=0)
    if state != "init":
        model.load_state_dict(from_official_state(_states(reference_npz, state), model))
    return model


def _batch(reference_npz) -> TrainBatch:
    z = reference_npz
    return TrainBatch.from_official({k[len("train_batch/"):]: z[k] for k in z.files if k.startswith("train_batch/")})


def _close(a, b, what: str) -> None:
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    assert a.shape == b.shape, what
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=ATOL, rtol=1e-4, err_msg=what)


def test_encoders_and_scores_agree(ref_config, reference_npz, no_tf32):
    batch = _batch(reference_npz)
    outs = {}
    for dev in ("cpu", DEVICE):
        m = _model(ref_config, reference_npz, "eval_state").to(dev).eval()
        b = batch.to(dev)
        with torch.no_grad():
            v = m.encode_video(b.video.features, b.video.lengths)
            t = m.encode_text(b.text)
            s = m.score(v, t)
            outs[dev] = (v, t, s, m.fused_score(s))
    (v0, t0, s0, f0), (v1, t1, s1, f1) = outs["cpu"], outs[DEVICE]
    for name in ("global_embeds", "verb_clips", "noun_clips", "verb_frames", "noun_frames", "verb_probs", "noun_probs"):
        _close(getattr(v1, name), getattr(v0, name), f"video {name}")
    assert torch.equal(v1.top_verbs.cpu(), v0.top_verbs) and torch.equal(v1.top_nouns.cpu(), v0.top_nouns)
    for name in ("global_embeds", "verb_embeds", "noun_embeds", "verb_probs", "noun_probs"):
        _close(getattr(t1, name), getattr(t0, name), f"text {name}")
    for name in SCORE_NAMES:
        _close(getattr(s1, name), getattr(s0, name), f"score {name}")
    _close(f1, f0, "fused")
    assert f1.device.type == torch.device(DEVICE).type  # scores stay on the device


def test_loss_and_gradients_agree(ref_config, reference_npz, no_tf32):
    batch = _batch(reference_npz)
    grads, losses = {}, {}
    for dev in ("cpu", DEVICE):
        m = _model(ref_config, reference_npz, "init").to(dev).train()
        out = m(batch.to(dev))
        out.loss.backward()
        losses[dev] = out.loss.detach().cpu()
        grads[dev] = {n: p.grad.detach().cpu() for n, p in m.named_parameters() if p.grad is not None}
    _close(losses[DEVICE], losses["cpu"], "loss")
    np.testing.assert_allclose(float(losses["cpu"]), float(reference_npz["train/loss"]), atol=1e-5)
    assert grads[DEVICE].keys() == grads["cpu"].keys()
    for n in grads["cpu"]:
        _close(grads[DEVICE][n], grads["cpu"][n], f"grad {n}")


def test_bf16_autocast_training_step_runs(ref_config, reference_npz):
    """bf16 autocast: finite loss and gradients, loss within a few percent of fp32."""
    if torch.device(DEVICE).type == "cpu" and not hasattr(torch, "bfloat16"):
        pytest.skip("no bf16")
    batch = _batch(reference_npz).to(DEVICE)
    m = _model(ref_config, reference_npz, "init").to(DEVICE).train()
    with torch.autocast(torch.device(DEVICE).type, dtype=torch.bfloat16):
        out = m(batch)
    out.loss.backward()
    assert torch.isfinite(out.loss) and abs(float(out.loss) - float(reference_npz["train/loss"])) < 0.05 * abs(
        float(reference_npz["train/loss"])) + 0.02
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
