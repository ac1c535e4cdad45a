"""Shared fixtures: one spaCy pipeline and one prepared dataset per test run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def parser(nlp: Any) -> Any:
    from hanet.text.rolegraph import RoleGraphParser

    return RoleGraphParser(nlp)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory, nlp: Any) -> tuple[Path, Any]:
    """The small dataset run through prepare_dataset: (output dir, report)."""
    from .textdata import CAPTIONS, TRAIN, write_dataset

    from hanet.text.prepare import PrepareConfig, prepare_dataset

    root = tmp_path_factory.mktemp("prepared")
    cap_file, names_file = write_dataset(root / "in", CAPTIONS, TRAIN)
    report = prepare_dataset(cap_file, names_file, root / "out",
                             PrepareConfig(progress=False), nlp=nlp)
    return root / "out", report
