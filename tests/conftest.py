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
