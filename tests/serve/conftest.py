"""Fixtures of the serve tests: an index of real clips, the app, and a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

# The corpus helpers of the index tests, loaded by path (the test folders are not one package).
_spec = importlib.util.spec_from_file_location("hanet_test_corpus", Path(__file__).parents[1] / "index" / "corpus.py")
corpus_mod = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = corpus_mod  # dataclasses look their module up
_spec.loader.exec_module(corpus_mod)


@pytest.fixture(scope="session")
def served_index(tmp_path_factory) -> Path:
    from hanet.index import build_index

    root = tmp_path_factory.mktemp("serve")
    run = corpus_mod.make_run(root / "run", seed=0)
    corpus = corpus_mod.make_corpus(root / "corpus")
    out = root / "idx"
    build_index(run, corpus.features, out, videos_dir=corpus.videos, captions=corpus.captions)
    return out


@pytest.fixture(scope="session")
def search_index(served_index) -> Any:
    from hanet.index import SearchIndex

    return SearchIndex.open(served_index)


@pytest.fixture(scope="session")
def app(search_index) -> Any:
    from hanet.serve.app import create_app

    return create_app(search_index)


@pytest.fixture(scope="session")
def client(app) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving an app on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live(app) -> Iterator[LiveServer]:
    with LiveServer(app) as srv:
        yield srv
