"""benchmarks/bench_search.py scale at a tiny size, embedded and on the in-process Qdrant engine,
so that the script behind the published figures cannot rot between large runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULT = re.compile(r"^RESULT backend=(\w+) videos=(\d+) dims=synth frames=(\w+) p50_ms=[\d.]+ p99_ms=[\d.]+ "
                    r"agreement_at_10=([\d.]+) rss_mib=\d+ build_s=\d+ bytes_per_video=(\d+)", re.M)


def _scale(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_search.py"), "scale", "--videos", "600",
                           "--dims", "synth", "--queries", "5", "--agreement-queries", "8", *args],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)


@pytest.mark.slow
def test_scale_prints_its_result_line_embedded_int8_and_engine(tmp_path):
    f16 = tmp_path / "f16"
    r = _scale(tmp_path, "--out", str(f16), "--first-stage", "ivf")
    assert r.returncode == 0, r.stderr
    backend, n, frames, agreement, per_video = RESULT.search(r.stdout).groups()
    assert (backend, n, frames) == ("embedded", "600", "float16") and int(per_video) == 21468
    assert float(agreement) >= 0.9 and "first stage ivf" in r.stderr
    assert (f16 / "exhaustive-top10-q8.npy").is_file()
    # int8 frames, measured against the float16 collection's exhaustive answers
    r = _scale(tmp_path, "--out", str(tmp_path / "i8"), "--first-stage", "ivf", "--frame-dtype", "int8",
               "--reference", str(f16))
    assert r.returncode == 0, r.stderr
    _, _, frames, agreement, per_video = RESULT.search(r.stdout).groups()
    assert frames == "int8" and int(per_video) == 12832 and float(agreement) >= 0.8
    assert "against=reference" in r.stdout
    # the first stage in the Qdrant engine, in-process
    r = _scale(tmp_path, "--out", str(tmp_path / "q"), "--backend", "qdrant")
    assert r.returncode == 0, r.stderr
    backend, _, _, agreement, _ = RESULT.search(r.stdout).groups()
    assert backend == "qdrant" and float(agreement) >= 0.9
    # a reference folder without cached answers is refused, naming it
    (tmp_path / "empty").mkdir()
    r = _scale(tmp_path, "--out", str(tmp_path / "i8"), "--frame-dtype", "int8", "--reference", str(tmp_path / "empty"))
    assert r.returncode == 2 and "no cached exhaustive answers" in r.stderr
