"""Shared fixtures: the shipped reference (golden vectors of the official code) and small configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hanet.parity import DEFAULT_REFERENCE as REFERENCE  # shipped inside the package (hanet parity's default)

#: A second reference set: the official model built after torch.manual_seed(3), with true
#: initial and after-step states (copied from the project's shared reference folder).
REFERENCE_SEED3 = Path(__file__).parent / "data" / "reference" / "hanet-small-seed3"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return REFERENCE


@pytest.fixture(scope="session")
def reference_seed3_dir() -> Path:
    return REFERENCE_SEED3


@pytest.fixture(scope="session")
def reference_npz():
    return np.load(REFERENCE / "reference_outputs.npz")


@pytest.fixture()
def ref_config():
    """The official small config of the reference, as our HANetConfig (fresh per test)."""
    from hanet.config import HANetConfig

    return HANetConfig.from_official(json.loads((REFERENCE / "model_config.json").read_text()), name="reference")


@pytest.fixture()
def dataset(tmp_path, reference_dir) -> Path:
    """A writable copy of the reference dataset (tests spoil it one way at a time)."""
    import shutil

    d = tmp_path / "ds"
    shutil.copytree(reference_dir / "data", d)
    for f in d.iterdir():
        f.chmod(0o644)
    return d


@pytest.fixture()
def tiny_model(ref_config):
    """A seeded HANet of the reference's small config (official initialisation, seed 0)."""
    from hanet.model import HANet

    return HANet(ref_config.model, seed=0)


@pytest.fixture(scope="session")
def make_train_batch():
    """``make_train_batch(cfg, batch, frames, words=12, seed=0)``: a random TrainBatch for a config."""
    return _random_train_batch


def _random_train_batch(cfg, batch: int, frames: int, words: int = 12, seed: int = 0):
    """A well-formed random TrainBatch for a model config (phrases, graph, concept targets)."""
    from hanet.data.batch import ConceptTargets, TextBatch, TrainBatch, VideoBatch

    g = torch.Generator().manual_seed(seed)
    m = cfg.model
    lengths = torch.randint(max(1, frames // 2), frames + 1, (batch,), generator=g)
    feats = torch.randn(batch, frames, m.video.dim_input, generator=g) * (torch.arange(frames)[None, :, None]
                                                                           < lengths[:, None, None])
    wl = torch.randint(3, words + 1, (batch,), generator=g)
    ids = torch.randint(3, m.text.num_words, (batch, words), generator=g)
    vm = torch.zeros(batch, m.num_verbs, words, dtype=torch.bool)
    nm = torch.zeros(batch, m.num_nouns, words, dtype=torch.bool)
    vm[:, 0, 1] = True
    nm[:, 0, 0] = True
    nm[:, 1, 2] = True
    roles = torch.zeros(batch, m.num_verbs + m.num_nouns, dtype=torch.int64)
    roles[:, m.num_verbs] = 2
    roles[:, m.num_verbs + 1] = 1
    n = 1 + m.num_verbs + m.num_nouns
    edges = torch.zeros(batch, n, n)
    edges[:, 1, 0] = 1.0
    edges[:, 1 + m.num_verbs, 1] = edges[:, 2 + m.num_verbs, 1] = 1.0
    edges[:, 1, 1 + m.num_verbs] = edges[:, 1, 2 + m.num_verbs] = 0.5
    vl = (torch.rand(batch, m.num_verb_concepts, generator=g) < 0.05).float()
    nl = (torch.rand(batch, m.num_noun_concepts, generator=g) < 0.05).float()
    return TrainBatch(VideoBatch(feats, lengths, [f"v{i}" for i in range(batch)]),
                      TextBatch(ids, wl, vm, nm, roles, edges, [f"c{i}" for i in range(batch)]),
                      ConceptTargets(vl, nl, torch.ones_like(vl), torch.ones_like(nl)))


@pytest.fixture(scope="session")
def nlp():
    """One spaCy pipeline per test session."""
    from hanet.text.nlp import load_nlp

    return load_nlp()


@pytest.fixture(autouse=True)
def _torch_threads():
    # Tests run on 2 cores; keep torch from oversubscribing them.
    torch.set_num_threads(2)
    yield
