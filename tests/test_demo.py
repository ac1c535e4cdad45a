"""End to end: ``hanet demo --quick`` on a fresh work directory, then cached re-runs."""

from __future__ import annotations

import json

import h5py
import pytest

from hanet.cli import main


@pytest.mark.slow
def test_quick_demo_end_to_end_and_cache(tmp_path, capsys):
    work = tmp_path / "demo"
    assert main(["demo", "--quick", "--workdir", str(work), "--no-progress"]) == 0
    res = json.loads((work / "results.json").read_text())
    for split in ("tst", "tst_novel"):
        for variant in ("hanet", "global"):
            m = res["metrics"][split][variant]
            assert 0 <= m["ir1"] <= 100 and m["rsum"] > 0
    assert set(res["metrics"]["tst_per_score"]) >= {"fused", "sent", "ind_verb", "concept_noun"}
    assert res["concept_map"]["verb_mAP"] > 0 and res["verb_peaks"]["verbs"] > 0
    assert len(res["queries"]) == 3 and all(len(q["top"]) == 3 for q in res["queries"])
    for f in ("plots/training_curves.png", "plots/concept_timeline.png", "index/manifest.json",
              "runs/hanet/checkpoints/best.pt", "runs/global/checkpoints/best.pt", "results.md"):
        assert (work / f).stat().st_size > 0, f
    # the features carry the motion stream, and the models read all of it
    with h5py.File(work / "features.hdf5", "r") as f:
        assert f.attrs["streams"] == "rgb+motion" and int(f.attrs["feature_dim"]) == 2560
        assert f[next(iter(f.keys()))].shape[1] == 2560
    for variant in ("hanet", "global"):
        run = json.loads((work / "runs" / variant / "run.json").read_text())
        assert run["config"]["model"]["video"]["dim_fts"] == [2560]
    # the results table is printed
    out = capsys.readouterr()
    assert "| tst | hanet |" in out.out

    # A second run trusts nothing it cannot verify, and skips everything it can.
    assert main(["demo", "--quick", "--workdir", str(work), "--no-progress"]) == 0
    err = capsys.readouterr().err
    for stage in ("synth", "extract", "prepare", "train-hanet", "train-global"):
        assert f"[{stage}] up to date, skipped" in err

    # A half-finished or foreign stage is redone: drop the global run's checkpoint and fake an
    # older state record for prepare.
    (work / "runs" / "global" / "checkpoints" / "best.pt").unlink()
    state = json.loads((work / "demo_state.json").read_text())
    state["stages"]["prepare"]["fingerprint"] = "from-an-older-version"
    (work / "demo_state.json").write_text(json.dumps(state))
    assert main(["demo", "--quick", "--workdir", str(work), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "[extract] up to date, skipped" in err
    assert "[prepare] running" in err and "[train-global] running" in err
