"""The HTTP API: endpoints, JSON errors, limits, read-only index, concurrency on a real uvicorn server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from .conftest import LiveServer, free_port

QUERY = "a man w12 is riding w40 on a w7"


def test_health_and_openapi(client, search_index):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["videos"] == search_index.num_videos and h["captions"] > 0
    assert h["model"] == search_index.fingerprint[:16] and h["limits"]["max_k"] == 100
    assert h["default_candidates"] == search_index.default_candidates()
    schema = client.get("/openapi.json").json()
    assert {"/health", "/search", "/explain", "/captions", "/videos/{video_id}", "/videos/{video_id}/thumbnail.jpg",
            "/videos/{video_id}/preview"} <= set(schema["paths"])
    params = {p["name"] for p in schema["paths"]["/search"]["get"]["parameters"]}
    assert params == {"q", "k", "mode", "candidates"}
    assert "SearchOut" in schema["components"]["schemas"] and "ErrorResponse" in schema["components"]["schemas"]


def test_search_thumbnails_previews_captions(client, search_index):
    r = client.get("/search", params={"q": QUERY, "k": 16})
    assert r.status_code == 200
    res = r.json()
    assert len(res["hits"]) == 16 and res["normalized"] == QUERY.lower()
    assert [h["video_id"] for h in res["hits"]] == [h.video_id for h in search_index.search(QUERY, k=16)]
    with_thumb = [h for h in res["hits"] if h["thumbnail_url"]]
    assert len(with_thumb) == 6  # the clips that have a video file
    img = client.get(with_thumb[0]["thumbnail_url"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg" and img.content[:2] == b"\xff\xd8"
    meta = client.get(with_thumb[0]["video_url"]).json()
    assert meta["id"] == with_thumb[0]["video_id"] and len(meta["frame_times"]) == meta["length"]
    video = client.get(meta["preview_url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content == search_index.source(meta["id"]).read_bytes()
    no_file = next(h for h in res["hits"] if not h["thumbnail_url"])
    meta = client.get(no_file["video_url"]).json()
    assert meta["preview_url"] is None and meta["thumbnail_url"] is None
    assert client.get(f"/videos/{no_file['video_id']}/preview").json()["error"]["type"] == "no_preview"
    caps = client.get("/captions", params={"video": res["hits"][0]["video_id"], "k": 3}).json()
    assert len(caps["hits"]) == 3 and caps["hits"][0]["score"] >= caps["hits"][2]["score"]
    exact = client.get("/search", params={"q": QUERY, "k": 5, "mode": "exhaustive"}).json()
    assert [h["video_id"] for h in exact["hits"]] == [h["video_id"] for h in res["hits"][:5]]
    # every hit says when: the moment in seconds and each verb phrase's own span
    q = "A man w12 is riding w40 on a w7"
    hits = client.get("/search", params={"q": q, "k": 3}).json()["hits"]
    want = search_index.search(q, k=3)
    for h, w in zip(hits, want):
        assert h["moment"]["start"] == w.moment.start and h["moment"]["end"] == w.moment.end
        assert 0 <= h["moment"]["start"] < h["moment"]["end"]
        assert [(p["kind"], p["text"]) for p in h["phrases"]] == [("verb", "riding")]
        assert {"start", "end", "first_frame", "last_frame", "note"} <= set(h["phrases"][0])


def test_explain_endpoint(client):
    vid = client.get("/search", params={"q": QUERY, "k": 1}).json()["hits"][0]["video_id"]
    r = client.get("/explain", params={"q": QUERY, "video": vid})
    assert r.status_code == 200
    exp = r.json()
    assert exp["video_id"] == vid and len(exp["contributions"]) == 7
    assert abs(sum(c["contribution"] for c in exp["contributions"]) - exp["score"]) < 1e-5
    assert {p["kind"] for p in exp["phrases"]} == {"verb", "noun"}
    assert exp["thumbnail_url"] is None or exp["thumbnail_url"].endswith("/thumbnail.jpg")


@pytest.mark.parametrize("url,status,kind", [
    ("/search?q=", 400, "bad_query"),
    ("/search?q=%20%20%20", 400, "bad_query"),
    ("/search?q=" + "w1%20" * 200, 400, "bad_query"),
    ("/search?q=zebra%20xylophone", 400, "bad_query"),
    ("/search?q=%3F%21%3F", 400, "bad_query"),
    ("/search", 422, "invalid_parameter"),
    ("/search?q=w1&k=0", 422, "invalid_parameter"),
    ("/search?q=w1&k=1000", 422, "invalid_parameter"),
    ("/search?q=w1&k=ten", 422, "invalid_parameter"),
    ("/search?q=w1&candidates=0", 422, "invalid_parameter"),
    ("/search?q=w1&mode=fast", 422, "invalid_parameter"),
    ("/explain?q=w1&video=nope", 404, "unknown_video"),
    ("/explain?q=w1", 422, "invalid_parameter"),
    ("/videos/nope", 404, "unknown_video"),
    ("/videos/clip00%00", 400, "bad_video_id"),
    ("/videos/..%2F..%2Fetc%2Fpasswd", 404, "not_found"),
    ("/videos/..%2Fmanifest.json/thumbnail.jpg", 404, "not_found"),
    ("/videos/%2e%2e/thumbnail.jpg", 404, "unknown_video"),
    ("/static/..%2F..%2Fapp.py", 404, "not_found"),
    ("/static/../../index/store.py", 404, "not_found"),
    ("/captions?video=nope", 404, "unknown_video"),
    ("/nothing-here", 404, "not_found"),
])
def test_bad_requests_get_json_errors(client, url, status, kind):
    r = client.get(url)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["status"] == status and body["error"]["type"] == kind and body["error"]["message"]
    assert client.get("/health").json()["status"] == "ok"  # and the server keeps serving


def test_wrong_method_and_unknown_only_message(client):
    r = client.post("/search", params={"q": "w1"})
    assert r.status_code == 405 and r.json()["error"]["status"] == 405
    msg = client.get("/search", params={"q": "zebra"}).json()["error"]["message"]
    assert "vocabulary" in msg


def test_the_server_writes_nothing_to_the_index(served_index, client):
    def snapshot() -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(served_index)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in served_index.rglob("*")}

    before = snapshot()
    for q in (QUERY, "w3 w17", "zebra"):
        client.get("/search", params={"q": q, "k": 5})
    client.get("/explain", params={"q": QUERY, "video": "clip00"})
    client.get("/videos/clip00/thumbnail.jpg")
    assert snapshot() == before


def test_an_index_of_another_format_version_fails_at_startup(tmp_path, served_index):
    from hanet.index import IndexFormatError
    from hanet.serve.app import create_app

    copy = tmp_path / "idx"
    shutil.copytree(served_index, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["version"] = 99
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexFormatError, match="rebuild"):
        create_app(copy, preload_parser=False)


def _hammer(url: str, n_clients: int, per_client: int, params: dict) -> list[httpx.Response]:
    out: list[httpx.Response] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n_clients)

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            barrier.wait()
            for _ in range(per_client):  # bounded: each client stops by itself
                r = c.get("/search", params=params)
                with lock:
                    out.append(r)

    threads = [threading.Thread(target=client_loop) for _ in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_32_concurrent_clients_get_answers(live):
    responses = _hammer(live.url, 32, 3, {"q": QUERY, "k": 10})
    assert len(responses) == 96 and all(r.status_code == 200 for r in responses)
    assert len({tuple(h["video_id"] for h in r.json()["hits"]) for r in responses}) == 1


def test_admission_limit_answers_503_then_recovers(search_index):
    from hanet.serve.app import ServeLimits, create_app

    app = create_app(search_index, ServeLimits(max_concurrency=1, max_pending=2))
    with LiveServer(app) as srv:
        responses = _hammer(srv.url, 24, 2, {"q": QUERY, "k": 16, "mode": "exhaustive"})
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503} and 200 in codes and 503 in codes
        busy = next(r for r in responses if r.status_code == 503)
        assert busy.json()["error"]["type"] == "busy" and busy.headers["retry-after"] == "1"
        with httpx.Client(base_url=srv.url) as c:
            assert all(c.get("/search", params={"q": QUERY}).status_code == 200 for _ in range(3))
            assert c.get("/health").json()["in_flight"] == 0


def test_serve_cli_on_loopback(served_index):
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "hanet", "serve", str(served_index), "--port", str(port)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert p.poll() is None, p.stderr.read()
                assert time.time() < deadline, "hanet serve did not come up"
                time.sleep(0.3)
        assert r.json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/search", params={"q": QUERY}).status_code == 200
        # bound to 127.0.0.1 only: another address of this machine does not answer
        others = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
        others = {a for a in others if not a.startswith("127.")}
        for addr in others:
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://{addr}:{port}/health", timeout=2)
    finally:
        p.terminate()
        p.wait(timeout=20)
    bad = subprocess.run([sys.executable, "-m", "hanet", "serve", str(Path(served_index) / "nope")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no such index" in bad.stderr and "Traceback" not in bad.stderr


def test_head_is_answered_like_get(client):
    get, head = client.get("/health"), client.head("/health")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(get.content))


def test_a_bug_is_a_500_not_an_unknown_video(app, client, monkeypatch):
    """Only UnknownVideoError means 404; a KeyError raised by a bug is an internal error."""
    index = app.state.index
    assert client.get("/videos/nope").status_code == 404

    def broken(video_id):
        return {}["missing key"]

    monkeypatch.setattr(index, "video", broken)
    r = client.get("/videos/clip00")
    assert r.status_code == 500
