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
    # HANet against global-only, query by query; its recall is the table's
    for split in ("tst", "tst_novel"):
        for direction, key in (("t2v", "ir1"), ("v2t", "cr1")):
            c = res["paired"][split][direction]["R@1"]
            assert c["a"] == pytest.approx(res["metrics"][split]["hanet"][key])
            assert c["b"] == pytest.approx(res["metrics"][split]["global"][key])
            assert c["a_only"] >= 0 and c["b_only"] >= 0 and 0 < c["p"] <= 1
    assert "Query by query on tst" in (work / "results.md").read_text()
    # R@1 by kind of caption: the parts add up to the table's R@1
    for variant in ("hanet", "global"):
        b = res["breakdown"][variant]
        assert b["r1"] == pytest.approx(res["metrics"]["tst"][variant]["ir1"])
        parts = b["kinds"].values()
        assert sum(k["queries"] for k in parts) == b["queries"]
        assert sum(k["r1"] * k["queries"] for k in parts if k["queries"]) / b["queries"] == pytest.approx(b["r1"])
        assert sum(b["errors"].values()) == pytest.approx(100 - b["r1"])
    assert "by kind of caption" in (work / "results.md").read_text()
    assert "say nothing about which model is better" in (work / "results.md").read_text()  # --quick says so
    assert res["concept_map"]["verb_mAP"] > 0 and res["verb_peaks"]["verbs"] > 0
    # time spans against the world's true action spans, with both baselines
    mom = res["moments"]
    assert mom["videos"] > 0 and set(mom["kinds"]) <= {"one action", "sequence"} and mom["kinds"]
    for k in mom["kinds"].values():
        assert k["items"] >= k["captions"] > 0
        assert set(k["methods"]) >= {"model", "whole clip", "best fixed span"}
        for m in k["methods"].values():
            assert 0 <= m["miou"] <= 1 and 0 <= m["iou50"] <= 1
        # split by the action named: the parts add up to the whole
        parts = k["by_action"].values()
        assert sum(p["items"] for p in parts) == k["items"]
        assert sum(p["methods"]["model"]["miou"] * p["items"] for p in parts) / k["items"] == \
            pytest.approx(k["methods"]["model"]["miou"])
    assert "Where in the clip (time spans" in (work / "results.md").read_text()
    # the example queries first (test captions whose clip HANet ranks first), then two test captions
    # spread over the split, each with where the clip it describes ranks
    ex = [q for q in res["queries"] if q["example"]]
    assert res["queries"][:len(ex)] == ex and len(res["queries"]) == len(ex) + 2 and len(ex) <= 3
    assert all(len(q["top"]) == 3 for q in res["queries"])
    caps = json.loads((work / "world" / "ref_captions.json").read_text())
    for q in res["queries"]:
        assert 1 <= q["target_rank"] <= q["candidates"] == 16  # the quick world's test clips
        assert q["query"] in caps[q["target"]]
        assert [r["is_target"] for r in q["top"]] == [i + 1 == q["target_rank"] for i in range(3)]
    assert all(q["target_rank"] == 1 for q in ex)
    for f in ("plots/training_curves.png", "plots/concept_timeline.png", "index/manifest.json",
              "runs/hanet/checkpoints/best.pt", "runs/global/checkpoints/best.pt", "results.md"):
        assert (work / f).stat().st_size > 0, f
    # the features carry the motion and flow streams, and the models read all of it
    with h5py.File(work / "features.hdf5", "r") as f:
        assert f.attrs["streams"] == "rgb+motion+flow" and int(f.attrs["feature_dim"]) == 3840
        assert f[next(iter(f.keys()))].shape[1] == 3840
    for variant in ("hanet", "global"):
        run = json.loads((work / "runs" / variant / "run.json").read_text())
        assert run["config"]["model"]["video"]["dim_fts"] == [3840]
    # the results table is printed
    out = capsys.readouterr()
    assert "| tst | hanet |" in out.out
    # the same breakdown from `hanet evaluate --world`
    assert main(["evaluate", "--run", str(work / "runs" / "hanet"), "--split", "tst", "--world", str(work / "world"),
                 "--no-per-score", "--device", "cpu", "--out", str(tmp_path / "eval.json")]) == 0
    out_text = capsys.readouterr().out
    printed = {line.split()[0]: line.split() for line in out_text.splitlines() if line.startswith("  ")}
    for kind, v in res["breakdown"]["hanet"]["kinds"].items():
        assert int(printed[kind][1]) == v["queries"] and float(printed[kind][4]) == pytest.approx(v["r1"], abs=0.01)
    # and the demo's time-span figures
    saved = json.loads((tmp_path / "eval.json").read_text())["moments"]
    assert saved["kinds"].keys() == mom["kinds"].keys()
    for kind, k in mom["kinds"].items():
        assert saved["kinds"][kind]["methods"]["model"]["miou"] == pytest.approx(k["methods"]["model"]["miou"], abs=1e-6)
        assert f"mean tIoU {k['methods']['model']['miou']:.3f}" in out_text

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
