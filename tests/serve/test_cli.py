"""``hanet serve`` as users start it: a real process on a real port."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

from .conftest import free_port


def _start(index, port):
    return subprocess.Popen([sys.executable, "-m", "hanet", "serve", str(index), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_up(port: int, proc, seconds: float = 60.0) -> None:
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server did not come up")


def test_head_requests_and_a_busy_port(served_index):
    port = free_port()
    proc = _start(served_index, port)
    try:
        _wait_up(port, proc)
        for path in ("/", "/health", "/search?q=w3+w17+w42+w8&k=3"):
            get = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30)
            body = get.read()
            head = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="HEAD"),
                                          timeout=30)
            assert head.status == 200 and head.read() == b"", path  # not 405; headers only
            assert head.headers["content-type"] == get.headers["content-type"]
            if "search" not in path:  # a search's answer carries its own timings: its length varies
                assert int(head.headers["content-length"]) == len(body)
        # a second server on the same port fails at once, without claiming to serve
        second = subprocess.run([sys.executable, "-m", "hanet", "serve", str(served_index), "--port", str(port)],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}: address already in use" in second.stderr
        assert "videos from" not in second.stderr and "Traceback" not in second.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)
