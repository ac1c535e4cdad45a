"""Shared fixtures: the shipped reference (golden vectors of the official code) and small configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

REFERENCE = Path(__file__).parent / "data" / "reference" / "hanet-small"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return REFERENCE


@pytest.fixture(scope="session")
def reference_npz():
    return np.load(REFERENCE / "reference_outputs.npz")


@pytest.fixture()
def ref_config():
    """The official small config of the reference, as our HANetConfig (fresh per test)."""
    from hanet.config import HANetConfig

    return HANetConfig.from_official(json.loads((REFERENCE / "model_config.json").read_text()), name="reference")


@pytest.fixture(autouse=True)
def _torch_threads():
    # Tests run on 2 cores; keep torch from oversubscribing them.
    torch.set_num_threads(2)
    yield
