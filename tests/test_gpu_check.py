"""The GPU check script's dry run: every step of benchmarks/gpu_check.py on the CPU at tiny sizes,
so that the script that runs once on a GPU machine cannot rot in between."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_on_the_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny",
                        "--out", str(out), "--work", str(tmp_path / "work")], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(out.read_text())
    steps = report["steps"]
    assert set(steps) == {"agreement", "train_step", "evaluation", "train_throughput", "extract", "ddp"}
    assert all(s["ok"] is not False for s in steps.values()), steps
    assert "3 passed" in steps["agreement"]["summary"]  # the cuda-marked tests ran (on the CPU)
    assert steps["train_step"]["ours_b8_fp32_ms"]["median"] > 0 and steps["evaluation"]["finite"]
    assert steps["train_throughput"]["pairs_per_s"] > 0 and steps["ddp"]["backend"] == "gloo"
    assert "wrote" in r.stdout and "0 step(s) failed" in r.stdout
