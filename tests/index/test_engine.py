"""The first stage in Qdrant: the engine itself in-process (qdrant-edge) and qdrant-client's path.

Both engine paths must give the answers of the embedded index: on a collection this small the
engine's pool holds every video, so two-stage search through the engine equals the embedded
exact two-stage search, hit for hit and score for score.
"""

from __future__ import annotations

import shutil
import socket

import numpy as np
import pytest

from hanet.cli import main
from hanet.errors import HanetError
from hanet.index import SearchIndex, add_videos, build_index, delete_videos
from hanet.index.audit import index_info
from hanet.index.build import IndexWriter, sync_engine
from hanet.index.first_stage.qdrant import EngineError
from hanet.index.storage import read_manifest

from .corpus import QUERY

pytest.importorskip("qdrant_edge")
pytest.importorskip("qdrant_client")


def _hits(index, **kw):
    return [(h.video_id, round(h.score, 5)) for h in index.search(QUERY, k=6, **kw)]


@pytest.fixture(scope="module")
def edge_index(tmp_path_factory, run_dir, corpus):
    out = tmp_path_factory.mktemp("engine") / "edge"
    build_index(run_dir, corpus.features, out, captions=corpus.captions, thumbnails=False, backend="qdrant",
                engine_url="edge:engine", collection="clips")
    return out


def test_edge_engine_gives_the_embedded_answers(edge_index, index, corpus):
    info = index_info(edge_index)
    assert info["first_stage"]["kind"] == "qdrant" and info["engine"]["collection"] == "clips"
    # the engine replaces the inverted file; the flat files keep the exact vectors pools are rescored with
    assert sorted(read_manifest(edge_index)["videos"]["faiss"]) == ["global", "nouns", "verbs"]
    with SearchIndex.open(edge_index, parser=index.queries.parser) as eng:
        assert eng.stages["videos"].kind == "qdrant"
        assert eng.stages["videos"].engine.count("clips_videos") == len(corpus.names)
        assert _hits(eng) == _hits(index)
        assert _hits(eng, candidates=8) == _hits(index, candidates=8)
        assert _hits(eng, mode="exhaustive") == _hits(index, mode="exhaustive")
        res = eng.search_result(QUERY, k=5, candidates=8)
        assert not res.exact  # an engine's pool carries no certificate
        vid = corpus.names[0]
        a = [(h.caption, round(h.score, 5)) for h in eng.search_captions(vid, k=4, candidates=3).hits]
        b = [(h.caption, round(h.score, 5)) for h in index.search_captions(vid, k=4, candidates=3).hits]
        assert a == b and len(a) == 4
        top = eng.search(QUERY, k=1)[0].video_id
        assert eng.explain(QUERY, top).score == pytest.approx(index.explain(QUERY, top).score, abs=1e-6)


def test_engine_delete_add_and_resume_after_a_crash(tmp_path, edge_index, index, corpus):
    idx = tmp_path / "edge"
    shutil.copytree(edge_index, idx)
    top = index.search(QUERY, k=1)[0].video_id
    assert delete_videos(idx, [top]) == 1
    with SearchIndex.open(idx, parser=index.queries.parser) as eng:
        assert top not in [h.video_id for h in eng.search(QUERY, k=20)]
        assert eng.stages["videos"].engine.count("clips_videos") == len(corpus.names) - 1
    # What a build killed between its upsert and its commit leaves: points past the committed rows.
    with IndexWriter(idx) as w:
        st = w.engine_stage("videos")
        vec = st.stored_vectors(np.arange(3))
        st.upload(st.coll.size, vec, ["ghost0", "ghost1", "ghost2"], w.fingerprint, 1)
        assert st.engine.count("clips_videos") == len(corpus.names) + 2
    with SearchIndex.open(idx, parser=index.queries.parser) as eng:  # searches ignore them
        assert {h.video_id for h in eng.search(QUERY, k=30)} <= set(corpus.names)
    rep = add_videos(idx, corpus.features, names=[top], thumbnails=False)  # the next writer cleans up
    assert rep.added == [top]
    with SearchIndex.open(idx, parser=index.queries.parser) as eng:
        assert eng.stages["videos"].engine.count("clips_videos") == len(corpus.names)
        assert _hits(eng) == _hits(index)


def test_a_lost_collection_is_rebuilt_from_the_segments(tmp_path, edge_index, index, capsys):
    idx = tmp_path / "edge"
    shutil.copytree(edge_index, idx)
    shutil.rmtree(idx / "engine")
    with pytest.raises(EngineError, match="no collection clips_videos.*hanet index sync"):
        SearchIndex.open(idx, parser=index.queries.parser)
    assert main(["index", "sync", str(idx), "--quiet"]) == 0
    assert "clips_videos (16 points)" in capsys.readouterr().out
    with SearchIndex.open(idx, parser=index.queries.parser) as eng:
        assert _hits(eng) == _hits(index)


def test_client_path_and_an_embedded_index_moved_into_the_engine(tmp_path, built, index, corpus, capsys):
    """qdrant-client (local mode: the client's code, a stand-in engine) from `hanet index sync`."""
    idx = tmp_path / "moved"
    shutil.copytree(built, idx)
    url = f"local:{tmp_path / 'qdrant'}"
    r = sync_engine(idx, url=url, collection="moved")
    assert r["videos"] == len(corpus.names) and r["uploaded"] >= len(corpus.names)
    assert not list((idx / "faiss").glob("*-ann.faiss"))  # no inverted file beside the engine
    with SearchIndex.open(idx, parser=index.queries.parser) as eng:
        assert eng.stages["videos"].kind == "qdrant"
        assert _hits(eng) == _hits(index) and _hits(eng, candidates=8) == _hits(index, candidates=8)
    # another index cannot take over the collection
    with pytest.raises(EngineError, match="collection moved_videos holds the points of another index"):
        build_index(None, corpus.features, tmp_path / "other", checkpoint=idx / "model.pt", vocab=idx / "vocab.json",
                    thumbnails=False, backend="qdrant", engine_url=url, collection="moved")
    assert not (tmp_path / "other" / "manifest.json").exists()  # refused before anything was written
    assert main(["index", "info", str(idx)]) == 0
    assert "first stage: qdrant (collections moved_videos/_captions at local:" in capsys.readouterr().out


def test_an_unreachable_engine_is_named_and_nothing_is_written(tmp_path, run_dir, corpus, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    out = tmp_path / "idx"
    code = main(["index", "build", "--run", str(run_dir), "--features", str(corpus.features), "--out", str(out),
                 "--backend", "qdrant", "--url", f"http://127.0.0.1:{port}", "--no-thumbnails", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and f"qdrant at http://127.0.0.1:{port}" in err and "Traceback" not in err
    assert "check that the engine is running" in err
    assert not (out / "manifest.json").exists()
    assert main(["index", "build", "--run", str(run_dir), "--features", str(corpus.features), "--out", str(out),
                 "--url", "http://x:6333"]) == 2
    assert "--url goes with --backend qdrant" in capsys.readouterr().err
    with pytest.raises(HanetError, match="engine URL 'ftp://x'"):
        build_index(run_dir, corpus.features, tmp_path / "i2", backend="qdrant", engine_url="ftp://x")


def _files(folder):
    """relative path -> (size, mtime, bytes) of every file under folder."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_readers_of_an_edge_engine_write_nothing_and_share_it(tmp_path, edge_index, index):
    """The engine rewrites shard files whenever it loads one: readers load private copies, so a
    search leaves every file of the index as it was (a read-only mount can be searched), several
    processes can read one engine, and a reader waits for no writer but refuses one mid-change."""
    import subprocess
    import sys

    idx = tmp_path / "edge"
    shutil.copytree(edge_index, idx)
    before = _files(idx)
    with SearchIndex.open(idx, parser=index.queries.parser) as eng:
        assert _hits(eng) == _hits(index)
        code = ("from hanet.index import SearchIndex\n"
                f"with SearchIndex.open({str(idx)!r}) as ix: print(ix.num_videos)\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.strip() == "16", r.stderr
        copies = [s for s in eng.stages.values() if s is not None][0].engine._copies
        assert copies.is_dir() and idx not in copies.parents
    assert not copies.exists()  # the private copies go with the reader
    assert _files(idx) == before
    with IndexWriter(idx):
        with pytest.raises(EngineError, match="is writing this index"):
            SearchIndex.open(idx, parser=index.queries.parser)


@pytest.mark.parametrize("damage", ["deleted", "garbled"])
def test_full_sync_rebuilds_an_edge_engine_from_the_segments(tmp_path, edge_index, index, capsys, damage):
    """`hanet index sync --full` rebuilds the engine's collections from the segment store whatever
    state their files are in."""
    idx = tmp_path / "edge"
    shutil.copytree(edge_index, idx)
    shard = idx / "engine" / "clips_videos"
    files = [p for p in shard.rglob("*") if p.is_file()]
    for p in files[::2] if damage == "deleted" else files:
        if damage == "deleted":
            p.unlink()
        else:
            p.write_bytes(b"\x00garbled" * 7)
    with pytest.raises(EngineError):
        with SearchIndex.open(idx, parser=index.queries.parser) as eng:
            eng.search(QUERY, k=3)
    assert main(["index", "sync", str(idx), "--full", "--quiet"]) == 0
    assert "clips_videos (16 points)" in capsys.readouterr().out
    with SearchIndex.open(idx, parser=index.queries.parser) as eng:
        assert _hits(eng) == _hits(index)


def test_an_edge_url_without_its_folder_is_refused(tmp_path, run_dir, corpus, capsys):
    out = tmp_path / "idx"
    code = main(["index", "build", "--run", str(run_dir), "--features", str(corpus.features), "--out", str(out),
                 "--backend", "qdrant", "--url", "edge:", "--no-thumbnails", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "edge: needs the folder of the engine's shards" in err and "Traceback" not in err
    assert not (out / "manifest.json").exists()


def test_serve_answers_from_the_engine(edge_index, index):
    from fastapi.testclient import TestClient

    from hanet.serve.app import create_app

    with SearchIndex.open(edge_index, parser=index.queries.parser) as eng:
        client = TestClient(create_app(eng, preload_parser=False), base_url="http://127.0.0.1")
        r = client.get("/search", params={"q": QUERY, "k": 6})
        assert r.status_code == 200, r.text
        got = [(h["video_id"], round(h["score"], 5)) for h in r.json()["hits"]]
        assert got == _hits(index)
