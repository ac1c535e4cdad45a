"""Training on the reference dataset: exact resume, DDP on 2 CPU processes, checkpoints, evaluate CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hanet.cli import main
from hanet.errors import HanetError
from hanet.run import RunDir, load_checkpoint, model_from_checkpoint


@pytest.fixture()
def small_config(tmp_path, ref_config) -> Path:
    cfg = ref_config
    cfg.model.video.dropout = cfg.model.text.dropout = cfg.model.text.gcn_dropout = 0.3  # RNG in play
    p = tmp_path / "cfg.json"
    p.write_text(cfg.to_json())
    return p


def _train(data, out, cfg, *extra) -> int:
    return main(["train", "--data", str(data), "--out", str(out), "--config", str(cfg), "--val-split", "tst",
                 "--no-progress", "--num-workers", "0", "--log-every", "1", *extra])


def _losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in RunDir(run).read_log() if r["kind"] == "train"]


def test_resume_reproduces_uninterrupted_losses(tmp_path, reference_dir, small_config, capsys):
    data = reference_dir / "data"
    assert _train(data, tmp_path / "a", small_config, "--epochs", "2", "--max-steps", "30") == 0
    assert _train(data, tmp_path / "b", small_config, "--epochs", "2", "--max-steps", "12") == 0
    ck = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert ck["step"] == 12 and ck["train_state"]["epoch_step"] == 12 and ck["threads"] == torch.get_num_threads()
    # a run killed after its checkpoint has logged steps it will redo: they are not kept twice
    log = tmp_path / "b" / "metrics.jsonl"
    with open(log, "a") as f:
        f.write("".join(json.dumps({"kind": "train", "epoch": 0, "step": s, "loss": 9.0}) + "\n" for s in (13, 14)))
        f.write('{"kind": "train", "step": 15, "lo')  # and a line the kill cut
    assert _train(data, tmp_path / "b", small_config, "--epochs", "2", "--max-steps", "30", "--resume") == 0
    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert len(a) == 30 and a == b  # bit-identical losses, dropout included
    # The finished run has curves, a best checkpoint and validation records.
    assert (tmp_path / "a" / "curves.png").stat().st_size > 1000
    assert any(r["kind"] == "val" for r in RunDir(tmp_path / "a").read_log())
    # Re-running into an existing run without --resume is refused.
    capsys.readouterr()
    assert _train(data, tmp_path / "a", small_config, "--epochs", "1") == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err


def test_resume_refuses_settings_other_than_the_runs(tmp_path, reference_dir, small_config, capsys):
    data, run = reference_dir / "data", tmp_path / "r"
    assert _train(data, run, small_config, "--epochs", "2", "--max-steps", "3", "--lr", "2e-4") == 0
    capsys.readouterr()
    # each differing setting is named with the run's own value
    assert _train(data, run, small_config, "--max-steps", "6", "--lr", "1e-3", "--batch-size", "4", "--resume") == 2
    err = capsys.readouterr().err
    assert "train.lr = 0.001 (the run's: 0.0002)" in err and "train.batch_size = 4" in err and "Traceback" not in err
    assert _train(data, run, small_config, "--variant", "global", "--resume") == 2
    assert "--variant global (the run's: hanet)" in capsys.readouterr().err
    assert _train(data, run, small_config, "--set", "model.video.dropout=0.1", "--resume") == 2
    assert "model.video" in capsys.readouterr().err
    assert RunDir(run).read_info().config.train.lr == 2e-4
    # what may change does; without --config or --lr the run's own settings are taken, not the preset's
    assert main(["train", "--data", str(data), "--out", str(run), "--no-progress", "--val-split", "tst",
                 "--num-workers", "0", "--log-every", "1", "--max-steps", "5", "--resume"]) == 0
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 5
    assert {r["lr"] for r in RunDir(run).read_log() if r["kind"] == "train"} == {2e-4}


def test_step_decay_by_epoch_like_the_official_multisteplr(tmp_path, reference_dir, small_config, ref_config):
    # The official configs carry the schedule as decay_boundarys / decay_rate.
    from hanet.config import HANetConfig

    official = json.loads((reference_dir / "model_config.json").read_text())
    official.update({"decay_boundarys": [1, 2], "decay_rate": 0.5, "base_lr": 1e-3})
    tc = HANetConfig.from_official(official).train
    assert tc.decay_boundaries == (1, 2) and tc.decay_rate == 0.5
    assert [tc.lr_at(e) for e in range(4)] == [1e-3, 5e-4, 2.5e-4, 2.5e-4]
    assert ref_config.train.lr_at(30) == ref_config.train.lr  # official default: no decay
    # Trained: every logged step of epoch e ran at lr_at(e), and the config round-trips.
    run = tmp_path / "decay"
    assert _train(reference_dir / "data", run, small_config, "--epochs", "3", "--lr", "1e-3",
                  "--set", "train.decay_boundaries=1,2", "--set", "train.decay_rate=0.5") == 0
    by_epoch = {}
    for r in RunDir(run).read_log():
        if r["kind"] == "train":
            by_epoch.setdefault(r["epoch"], set()).add(r["lr"])
    assert by_epoch == {0: {1e-3}, 1: {5e-4}, 2: {2.5e-4}}
    info = RunDir(run).read_info()
    assert info.config.train.decay_boundaries == (1, 2) and info.config.train.decay_rate == 0.5


def test_evaluate_cli_and_config_mismatch(tmp_path, reference_dir, small_config, capsys):
    data = reference_dir / "data"
    run = tmp_path / "run"
    assert _train(data, run, small_config, "--epochs", "1", "--lr", "1e-3") == 0
    scores = tmp_path / "fused.npy"
    assert main(["evaluate", "--run", str(run), "--split", "tst", "--save-scores", str(scores), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "fused" in out and "ind_noun" in out
    res = json.loads((run / "eval" / "tst.json").read_text())
    assert set(res["metrics"]) == {"fused", "sent", "verb", "noun", "concept_verb", "concept_noun", "ind_verb",
                                   "ind_noun"}
    mat = np.load(scores)
    assert mat.dtype == np.float16 and mat.shape == (10, 70)
    # Query by query against another run on the same split: a global-only run, then itself.
    other = tmp_path / "global"
    assert _train(data, other, small_config, "--epochs", "1", "--lr", "1e-3", "--variant", "global") == 0
    capsys.readouterr()
    for b, same in ((other, False), (run, True)):
        assert main(["evaluate", "--run", str(run), "--split", "tst", "--compare", str(b), "--device", "cpu",
                     "--no-per-score", "--out", str(tmp_path / "cmp.json")]) == 0
        out = capsys.readouterr().out
        assert "paired comparison on tst" in out
        rows = {line[:13].strip(): line[13:].split() for line in out.splitlines() if line[:4] in ("t2v ", "v2t ")}
        assert set(rows) == {f"{d} R@{k}" for d in ("t2v", "v2t") for k in (1, 5, 10)}
        assert float(rows["t2v R@1"][0]) == pytest.approx(res["metrics"]["fused"]["ir1"], abs=0.01)
        if same:
            assert all(r[1:] == [r[0], "0", "0", "1"] for r in rows.values())
        else:
            assert not (other / "eval").exists()  # B is evaluated, nothing is written into its run
            assert any(r[2:4] != ["0", "0"] for r in rows.values())
    # A checkpoint trained with another model config is refused with the differing field named.
    from hanet.config import HANetConfig

    other = HANetConfig.from_dict(json.loads(small_config.read_text()))
    other.model.simattn_sigma = 8.0
    with pytest.raises(HanetError, match="simattn_sigma"):
        model_from_checkpoint(run / "checkpoints" / "best.pt", config=other)


def test_ddp_two_cpu_processes(tmp_path, reference_dir, small_config):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29617",
           "-m", "hanet", "train", "--data", str(reference_dir / "data"), "--out", str(run), "--config",
           str(small_config), "--val-split", "tst", "--no-progress", "--num-workers", "0", "--log-every", "1",
           "--epochs", "4", "--lr", "1e-3", "--batch-size", "8", "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ck = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ck["world_size"] == 2 and len(ck["rng"]) == 2
    # Only rank 0 writes: one checkpoint set, one log line per step.
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    losses = [l for _, l in _losses(run)]
    steps = [s for s, _ in _losses(run)]
    assert steps == sorted(set(steps))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])  # it learns


def test_word_embeddings_from_glove_text(tmp_path, reference_dir, small_config):
    from hanet.train import load_word_embeddings

    w2i = json.loads((reference_dir / "data" / "word2int.json").read_text())
    rng = np.random.default_rng(0)
    vecs = {w: rng.standard_normal(16).round(4) for w in list(w2i)[3:60]}
    glove = tmp_path / "glove.16d.txt"
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vecs.items()) + "zzz-not-in-vocab 1 2\n")
    table, found = load_word_embeddings(str(glove), w2i, max(w2i.values()) + 1)
    assert int(found.sum()) == len(vecs) and table.shape[1] == 16
    run = tmp_path / "run"
    assert _train(reference_dir / "data", run, small_config, "--epochs", "1", "--word-embeddings", str(glove)) == 0
    emb = load_checkpoint(run / "checkpoints" / "last.pt")["model"]["text_encoder.word_embed.weight"]
    w = list(vecs)[0]
    # initialised from the file, then moved by at most lr per step
    assert torch.allclose(emb[w2i[w]], torch.tensor(vecs[w], dtype=torch.float32), atol=0.01)
    bad = tmp_path / "bad.txt"
    bad.write_text("w5 1 2 3\nw6 1 x 3\n")
    with pytest.raises(HanetError, match="not a GloVe line"):
        load_word_embeddings(str(bad), w2i, 100)
