"""The server's doors: who it answers (Host), which files it serves (inside its roots only), and
what its errors say (no server path; a fault of its own is a 500 with an incident id)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from hanet.serve.app import HostCheck, public_message, resolve_inside


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:8000", True), ("localhost", True), ("LOCALHOST:8000", True), ("[::1]:8000", True),
    ("192.168.1.20", True), ("app.localhost", True),
    ("evil.example", False), ("evil.example:8000", False), ("127.0.0.1.nip.io", False), ("localhost.evil.example", False),
])
def test_host_names_answered_by_default(host, ok):
    assert HostCheck(None).host_ok(host) is ok


def test_a_rebound_name_gets_421_and_an_allowed_one_an_answer(client, search_index):
    from fastapi.testclient import TestClient

    from hanet.serve.app import create_app

    r = client.get("/health", headers={"Host": "attacker.example"})
    assert r.status_code == 421 and r.json()["error"]["type"] == "misdirected_request"
    assert "--allow-host" in r.json()["error"]["message"]
    assert client.get("/search", params={"q": "w3 w17"}, headers={"Host": "attacker.example"}).status_code == 421
    assert client.get("/health", headers={"Host": "localhost:8000"}).status_code == 200
    named = TestClient(create_app(search_index, preload_parser=False, allowed_hosts=["search.lab"]),
                       base_url="http://search.lab")
    assert named.get("/health").status_code == 200
    assert named.get("/health", headers={"Host": "other.lab"}).status_code == 421


def test_the_cli_answers_its_own_name_and_this_machines_on_a_wildcard():
    import socket

    from hanet.serve.cli import host_names

    assert host_names("127.0.0.1", []) == []
    assert host_names("search.lab", ["b.lab"]) == ["b.lab", "search.lab"]
    assert socket.gethostname() in host_names("0.0.0.0", [])


def _copy_index(served_index: Path, tmp_path: Path) -> Path:
    idx = tmp_path / "idx"
    shutil.copytree(served_index, idx, symlinks=True)
    return idx


def _rewrite_sources(idx: Path, folder: Path) -> dict[str, Path]:
    """Point every recorded video file at ``folder/<id>.mp4``; the new paths by id."""
    out = {}
    for meta in idx.glob("segments/v-*/meta.jsonl"):
        rows = [json.loads(line) for line in meta.read_text().splitlines()]
        for r in rows:
            r["source"] = str(folder / f"{r['id']}.mp4")
            out[r["id"]] = folder / f"{r['id']}.mp4"
        meta.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # as if built with these sources: the manifest records the new metadata files
    from hanet.index.storage import file_record

    m = json.loads((idx / "manifest.json").read_text())
    for rel in m["files"]:
        if rel.endswith("meta.jsonl"):
            m["files"][rel] = file_record(idx / rel)
    (idx / "manifest.json").write_text(json.dumps(m))
    return out


def test_symlinks_that_leave_their_root_are_not_served(served_index, tmp_path):
    from fastapi.testclient import TestClient

    from hanet.serve.app import create_app

    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:not for the web\n")
    idx = _copy_index(served_index, tmp_path)
    thumbs = sorted(idx.glob("segments/v-*/thumbs/*.jpg"))
    assert len(thumbs) >= 2
    # a thumbnail strip replaced by a link out of the index; another by a link inside it
    thumbs[0].unlink()
    thumbs[0].symlink_to(secret)
    inside = idx / "strip.jpg"
    shutil.copy(thumbs[1], inside)
    thumbs[1].unlink()
    thumbs[1].symlink_to(inside)
    # the video files: one real, one a link out of its folder, one a link to a real file beside it
    videos = tmp_path / "videos"
    videos.mkdir()
    sources = _rewrite_sources(idx, videos)
    orig = [json.loads(line)["source"] for meta in sorted(served_index.glob("segments/v-*/meta.jsonl"))
            for line in meta.read_text().splitlines()]
    clip = next(Path(s) for s in orig if s and Path(s).is_file())
    ids = sorted(sources)
    shutil.copy(clip, sources[ids[0]])
    outside = tmp_path / "elsewhere.mp4"
    outside.write_text("root:x:0:0:not a video\n")
    sources[ids[1]].symlink_to(outside)
    sources[ids[2]].symlink_to(sources[ids[0]].name)  # relative, inside the folder

    from hanet.index import SearchIndex

    index = SearchIndex.open(idx)
    c = TestClient(create_app(index, preload_parser=False), base_url="http://127.0.0.1", raise_server_exceptions=False)
    row_of = {r: vid for vid, r in index.videos.row_of.items()}
    out_id, in_id = row_of[int(thumbs[0].stem)], row_of[int(thumbs[1].stem)]
    assert c.get(f"/videos/{out_id}/thumbnail.jpg").status_code == 404
    assert c.get(f"/videos/{out_id}").json()["thumbnail_url"] is None
    r = c.get(f"/videos/{in_id}/thumbnail.jpg")
    assert r.status_code == 200 and r.content == inside.read_bytes()
    assert c.get(f"/videos/{ids[0]}/preview").status_code == 200
    assert c.get(f"/videos/{ids[1]}/preview").status_code == 404
    assert c.get(f"/videos/{ids[1]}").json()["preview_url"] is None
    r = c.get(f"/videos/{ids[2]}/preview")
    assert r.status_code == 200 and r.content == sources[ids[0]].read_bytes()


def test_resolve_inside(tmp_path):
    (tmp_path / "root").mkdir()
    f = tmp_path / "root" / "a.jpg"
    f.write_bytes(b"x")
    (tmp_path / "root" / "dir.jpg").mkdir()
    os.mkfifo(tmp_path / "root" / "fifo.jpg")
    assert resolve_inside(f, tmp_path / "root") == f.resolve()
    assert resolve_inside(tmp_path / "root" / "dir.jpg", tmp_path / "root") is None
    assert resolve_inside(tmp_path / "root" / "fifo.jpg", tmp_path / "root") is None
    assert resolve_inside(tmp_path / "root" / "missing.jpg", tmp_path / "root") is None
    assert resolve_inside(tmp_path / "root" / ".." / "root" / "a.jpg", tmp_path / "root") == f.resolve()
    assert resolve_inside(None, tmp_path) is None


def test_messages_name_no_server_path():
    assert public_message("cannot read /data/users/ann/idx/segments/v-1/records.npy: truncated") == \
        "cannot read records.npy: truncated"
    assert public_message("'/srv/x/meta.jsonl', line 3: bad JSON") == "'meta.jsonl', line 3: bad JSON"
    assert public_message("k/v and 1/2 stay") == "k/v and 1/2 stay"


def test_a_damaged_index_file_is_the_servers_fault_and_names_no_path(served_index, tmp_path, caplog):
    from fastapi.testclient import TestClient

    from hanet.index import SearchIndex
    from hanet.serve.app import create_app

    idx = _copy_index(served_index, tmp_path)
    index = SearchIndex.open(idx)
    c = TestClient(create_app(index, preload_parser=False), base_url="http://127.0.0.1", raise_server_exceptions=False)
    vid = sorted(index.videos.row_of)[0]
    for meta in idx.glob("segments/v-*/meta.jsonl"):  # garbled under the running server, before its first read
        meta.write_text("{not json\n")
    with caplog.at_level(logging.ERROR, logger="hanet.serve"):
        r = c.get(f"/videos/{vid}")
    assert r.status_code == 500 and str(tmp_path) not in r.text and "meta.jsonl" not in r.text
    incident = r.json()["error"]["message"].split("incident ")[1].split()[0]
    assert incident in caplog.text and "line 1 is not JSON" in caplog.text
    # and a search that reaches the same file is the same fault, not the client's
    r = c.get("/search", params={"q": "w3 w17 w42"})
    assert r.status_code == 500 and str(tmp_path) not in r.text
