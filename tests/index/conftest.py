"""Fixtures of the index tests: a run, a corpus of real clips and features, a built index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .corpus import Corpus, make_corpus, make_run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("run") / "run", seed=0)


@pytest.fixture(scope="session")
def other_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("run2") / "run", seed=1)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def parser() -> Any:
    from hanet.text.rolegraph import RoleGraphParser

    return RoleGraphParser()


@pytest.fixture(scope="session")
def built(tmp_path_factory, run_dir, corpus) -> Path:
    """An index of the whole corpus with thumbnails and captions (never modified by tests)."""
    from hanet.index import build_index

    out = tmp_path_factory.mktemp("idx") / "idx"
    build_index(run_dir, corpus.features, out, videos_dir=corpus.videos, captions=corpus.captions, batch_size=5)
    return out


@pytest.fixture(scope="session")
def index(built, parser) -> Any:
    from hanet.index import SearchIndex

    return SearchIndex.open(built, parser=parser)
