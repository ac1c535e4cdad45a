"""Bad input on the commands that read datasets, configs and checkpoints: a clear message naming
the file and the problem, exit status 2, nothing done when nothing can be (the reference dataset
and copies of it spoiled one way at a time)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hanet.cli import main

from .spoil import spoil_graph


@pytest.fixture()
def ds(dataset) -> Path:
    return dataset


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _main(argv) -> int:
    """The exit status, whether a command returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def _train(ds, out, *extra) -> int:
    return _main(["train", "--data", str(ds), "--out", str(out), "--preset", "msrvtt", "--no-progress",
                  "--num-workers", "0", *extra])


# ---------------------------------------------------------------------- train's settings
@pytest.mark.parametrize("args,words", [
    (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1, not 0"),
    (["--lr", "nan"], "argument --lr: must be a finite number > 0, not nan"),
    (["--epochs", "-1"], "argument --epochs: must be an integer >= 1, not -1"),
    (["--set", "train.batch_size=0"], "train.batch_size = 0: must be an integer >= 1"),
    (["--val-split", "nosuch"], "--val-split 'nosuch': the dataset"),
])
def test_train_refuses_settings_that_cannot_run(tmp_path, ds, capsys, args, words):
    assert _train(ds, tmp_path / "run", *args) == 2
    assert words in _err(capsys)
    assert not (tmp_path / "run" / "run.json").exists()


def test_train_config_files(tmp_path, ds, reference_dir, capsys):
    cfg = tmp_path / "list.json"
    cfg.write_text("[1, 2]")
    assert _train(ds, tmp_path / "a", "--config", str(cfg)) == 2
    assert "list.json: a config must be a JSON object (mapping), not a list" in _err(capsys)
    cfg.write_text(json.dumps({"model": {}, "trian": {}}))  # a typo at the top level is not dropped
    assert _train(ds, tmp_path / "b", "--config", str(cfg)) == 2
    assert "unknown config field(s) in the config: trian" in _err(capsys)
    # the authors' own model.json is read as theirs (not silently ignored)
    assert _train(ds, tmp_path / "c", "--config", str(reference_dir / "model_config.json"), "--epochs", "1") == 0
    run = json.loads((tmp_path / "c" / "run.json").read_text())["config"]
    official = json.loads((reference_dir / "model_config.json").read_text())
    assert run["model"]["video"]["dim_embed"] == official["subcfgs"]["video_encoder"]["dim_embed"] == 32
    assert run["train"]["batch_size"] == official["trn_batch_size"] and run["model"]["max_violation"] is True


def test_official_config_defaults_to_hardest_negatives():
    from hanet.config import HANetConfig

    assert HANetConfig.from_official({"subcfgs": {"text_encoder": {"num_words": 100}}}).model.max_violation is True  # as the authors' config class


def test_train_output_path_is_checked_before_any_work(tmp_path, ds, capsys):
    (tmp_path / "afile").write_text("x")
    assert _train(ds, tmp_path / "afile") == 2
    err = _err(capsys)
    assert "afile: is a file, not a folder (needed as the run folder)" in err and "preloaded" not in err


# ---------------------------------------------------------------------- datasets
def test_every_missing_file_is_reported_at_once(tmp_path, ds, capsys):
    for name in ("tst_ft.hdf5", "sent2rolegraph.augment.json", "verb_gt_all.json"):
        (ds / name).unlink()
    desc = tmp_path / "dataset.json"
    desc.write_text(json.dumps({"splits": {s: {"names": f"ds/{s}_names.npy", "features": f"ds/{s}_ft.hdf5"}
                                           for s in ("trn", "tst")},
                                "captions": "ds/ref_captions.json", "rolegraphs": "ds/sent2rolegraph.augment.json",
                                "word2int": "ds/word2int.json",
                                "concepts": {k: f"ds/{k.replace('_all', '')}_gt{'_all' if 'all' in k else ''}.json"
                                             for k in ("verb", "noun", "verb_all", "noun_all")}}))
    assert main(["check-data", str(desc)]) == 1
    err = _err(capsys)
    assert "3 file(s) missing" in err and all(n in err for n in ("tst_ft.hdf5", "sent2rolegraph", "verb_gt_all"))
    assert _train(desc, tmp_path / "run", "--val-split", "tst") == 2
    err = _err(capsys)
    assert "3 file(s) missing" in err and all(n in err for n in ("tst_ft.hdf5", "sent2rolegraph", "verb_gt_all"))


def test_a_video_of_another_feature_width(tmp_path, ds, capsys):
    names = [str(n) for n in np.load(ds / "trn_names.npy")]
    with h5py.File(ds / "trn_ft.hdf5", "a") as f:
        del f[names[5]]
        f[names[5]] = np.zeros((7, 48), np.float32)
    assert main(["check-data", str(ds)]) == 1
    assert f"video {names[5]!r}: has features of shape (7, 48); expected (frames, 64)" in _err(capsys)
    assert _train(ds, tmp_path / "run") == 2
    assert f"video {names[5]!r}: has features of shape (7, 48)" in _err(capsys)


def test_features_too_large_to_be_features(tmp_path, ds, capsys):
    names = [str(n) for n in np.load(ds / "tst_names.npy")]
    with h5py.File(ds / "tst_ft.hdf5", "a") as f:
        f[names[2]][0, 0] = 1e30  # would overflow to inf in the dot products: NaN scores
    assert main(["check-data", str(ds)]) == 1
    assert "reach 1e+30" in _err(capsys)


def test_pickled_names_are_refused_everywhere(tmp_path, ds, capsys):
    """Unpickling a downloaded file can run any code: every reader refuses, in prepare's words."""
    np.save(ds / "trn_names.npy", np.array([str(n) for n in np.load(ds / "trn_names.npy")], dtype=object),
            allow_pickle=True)
    words = "cannot read names without unpickling"
    assert main(["check-data", str(ds)]) == 1
    assert words in _err(capsys)
    assert _train(ds, tmp_path / "run") == 2
    assert words in _err(capsys)
    assert main(["prepare", "--captions", str(ds / "ref_captions.json"), "--train-names",
                 str(ds / "trn_names.npy"), "--out", str(tmp_path / "ann"), "--no-progress"]) == 2
    assert words in _err(capsys)
    from hanet.errors import DataError
    from hanet.index.inputs import read_names

    with pytest.raises(DataError, match=words):
        read_names(ds / "trn_names.npy")  # index build/add --names


# ---------------------------------------------------------------------- metrics, checkpoints, interop
def test_rsum_is_summed_in_the_authors_order():
    from hanet.metrics import metrics_from_ranks

    # 70 captions, 10 videos: R@1/5/10 of 0, 0, 2 captions and 1, 2, 3 videos; the two orders of
    # summation differ in the last bit here
    t2v = np.array([7, 7] + [20] * 68)
    v2t = np.array([0] + [3] + [7] + [20] * 7)
    m = metrics_from_ranks(t2v, v2t)
    theirs = m["cr1"] + m["cr5"] + m["cr10"] + m["ir1"] + m["ir5"] + m["ir10"]
    ours_before = m["ir1"] + m["ir5"] + m["ir10"] + m["cr1"] + m["cr5"] + m["cr10"]
    assert theirs != ours_before and m["rsum"] == theirs


def _official_checkpoint(reference_npz, path: Path) -> Path:
    state: dict = {"video_encoder": {}, "text_encoder": {}}
    for k in reference_npz.files:
        if k.startswith("eval_state/"):
            _, side, name = k.split("/", 2)
            state[side][name] = torch.from_numpy(reference_npz[k])
    torch.save(state, path)  # what the authors' save_checkpoint writes
    return path


def test_evaluate_an_authors_checkpoint(tmp_path, reference_dir, reference_npz, capsys):
    """Their checkpoint and model.json give the metrics their own evaluation printed (the npz's
    test/metrics), exactly."""
    ckpt = _official_checkpoint(reference_npz, tmp_path / "epoch.7.th")
    out = tmp_path / "m.json"
    assert main(["evaluate", "--official-checkpoint", str(ckpt), "--config", str(reference_dir / "model_config.json"),
                 "--data", str(reference_dir / "data"), "--split", "tst", "--out", str(out)]) == 0
    got = json.loads(out.read_text())["metrics"]["fused"]
    ref = {k[len("test/metrics/"):]: float(reference_npz[k]) for k in reference_npz.files if k.startswith("test/metrics/")}
    assert got == ref
    assert "epoch 7" in capsys.readouterr().err
    assert main(["evaluate", "--official-checkpoint", str(ckpt), "--data", str(reference_dir / "data")]) == 2
    assert "--official-checkpoint needs --config" in _err(capsys)


def test_export_to_the_authors_format(tmp_path, reference_dir, reference_npz, capsys):
    """A run exported for the authors' code: every tensor their model uses, under their names, with
    our values; their evaluation of it (scripts/record_authors_golden.py ran it once) is therefore
    the npz's test/metrics, as evaluating the same weights here gives."""
    from hanet.config import HANetConfig
    from hanet.io import atomic_torch_save
    from hanet.model import HANet
    from hanet.model.official import from_official_state
    from hanet.parity import _states
    from hanet.run import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, RunDir, RunInfo

    cfg = HANetConfig.from_official(json.loads((reference_dir / "model_config.json").read_text()))
    model = HANet(cfg.model)
    model.load_state_dict(from_official_state(_states(reference_npz, "eval_state"), model))
    run = RunDir(tmp_path / "run")
    run.write_info(RunInfo(cfg, "hanet", str(reference_dir / "data"), 0.0))
    atomic_torch_save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": cfg.to_dict(),
                       "variant": "hanet", "model": model.state_dict(), "epoch": 3}, run.best)
    assert main(["export-official", str(run.path), str(tmp_path / "out.th")]) == 0
    exported = torch.load(tmp_path / "out.th", weights_only=True)
    theirs = _states(reference_npz, "eval_state")
    unused = ("conv1.", "conv2.", "fc.")  # official modules the forward pass never calls
    for side, tensors in theirs.items():
        for name, value in tensors.items():
            if name.startswith(unused):
                continue
            np.testing.assert_array_equal(exported[side][name].numpy(), value, err_msg=f"{side}/{name}")
    their_config = json.loads((tmp_path / "out.model.json").read_text())
    assert HANetConfig.from_official(their_config).model == cfg.model
    # ... and it reads back into hanet with the same metrics as their evaluation
    out = tmp_path / "again.json"
    assert main(["evaluate", "--official-checkpoint", str(tmp_path / "out.th"), "--config",
                 str(tmp_path / "out.model.json"), "--data", str(reference_dir / "data"), "--out", str(out)]) == 0
    ref = {k[len("test/metrics/"):]: float(reference_npz[k]) for k in reference_npz.files if k.startswith("test/metrics/")}
    assert json.loads(out.read_text())["metrics"]["fused"] == ref
    # what the authors' code cannot build is refused before anything is written
    from hanet.config import get_preset
    from hanet.errors import HanetError
    from hanet.model.official import export_official

    synth = get_preset("synth")
    synth.model.text.num_words = 50
    with pytest.raises(HanetError, match="the authors' code cannot build this model: it fixes num_verb_concepts=64"):
        export_official(HANet(synth.model), synth, str(tmp_path / "no.th"))
    with pytest.raises(HanetError, match="'global' model has no counterpart"):
        export_official(HANet(cfg.model, variant="global"), cfg, str(tmp_path / "no.th"))
    assert not (tmp_path / "no.th").exists()


def test_evaluate_outputs_are_checked_before_evaluating(tmp_path, reference_dir, reference_npz, capsys):
    ckpt = _official_checkpoint(reference_npz, tmp_path / "e.th")
    (tmp_path / "afile").write_text("x")
    base = ["evaluate", "--official-checkpoint", str(ckpt), "--config", str(reference_dir / "model_config.json"),
            "--data", str(reference_dir / "data")]
    assert main(base + ["--out", str(tmp_path / "afile" / "m.json")]) == 2
    err = _err(capsys)
    assert "afile: is a file, not a folder" in err and "evaluating" not in err
    assert main(base + ["--save-scores", str(tmp_path / "afile" / "s.npy")]) == 2
    assert "afile: is a file, not a folder" in _err(capsys)


def test_checkpoints_never_run_code(tmp_path, reference_dir, capsys):
    """A checkpoint is read with torch's weights-only unpickler: a file that would run code is refused."""
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    torch.save({"video_encoder": {}, "text_encoder": {}, "x": Evil()}, tmp_path / "evil.th")
    assert main(["evaluate", "--official-checkpoint", str(tmp_path / "evil.th"), "--config",
                 str(reference_dir / "model_config.json"), "--data", str(reference_dir / "data")]) == 2
    assert "loading would have to run code" in _err(capsys)
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------- prepare, synth
def test_prepare_bad_captions_and_names(tmp_path, capsys):
    caps = tmp_path / "caps.json"
    caps.write_text('{"v0": ["a man \\udcff runs"], "v1": ["a dog"]}')  # a lone surrogate: JSON allows it
    names = tmp_path / "trn.npy"
    np.save(names, np.array(["v0", "v1"]))
    args = ["prepare", "--captions", str(caps), "--train-names", str(names), "--out", str(tmp_path / "o"),
            "--no-progress"]
    assert main(args + ["--no-normalize"]) == 2
    assert "video 'v0', caption 0: not valid Unicode (surrogates not allowed" in _err(capsys)
    caps.write_text('{"v0": ["a man runs"]}')
    np.save(names, np.array([], dtype=str))
    assert main(args) == 2
    assert "trn.npy: the split is empty (no video names)" in _err(capsys)


def test_prepare_bounds_words_and_writes_with_the_umask(tmp_path, nlp):
    from hanet.text.prepare import MAX_WORD_CHARS, PrepareConfig, prepare_dataset

    caps = tmp_path / "caps.json"
    caps.write_text(json.dumps({"v0": ["a man runs " + "x" * 100_000, "a dog sits"], "v1": ["a cat"]}))
    names = tmp_path / "trn.npy"
    np.save(names, np.array(["v0", "v1"]))
    old = os.umask(0o027)
    try:
        rep = prepare_dataset(caps, names, tmp_path / "out", PrepareConfig(progress=False), nlp=nlp)
    finally:
        os.umask(old)
    i2w = np.load(tmp_path / "out" / "int2word.npy")
    assert rep.long_words == 1 and i2w.dtype.itemsize <= 4 * MAX_WORD_CHARS
    assert (tmp_path / "out" / "int2word.npy").stat().st_size < 10_000  # not 100,000 chars per word
    for f in (tmp_path / "out").iterdir():
        assert f.stat().st_mode & 0o777 == 0o640, f  # 0666 & ~umask, as other tools' files


def test_synth_refuses_a_world_it_could_never_finish(tmp_path, capsys):
    assert _main(["synth", "--out", str(tmp_path / "w"), "--videos", "1000000000"]) == 2
    assert "argument --videos: must be an integer in [4, 1000000]" in _err(capsys)
    assert _main(["synth", "--out", str(tmp_path / "w"), "--set", "num_videos=1000000000"]) == 2
    assert "must be at most 1,000,000" in _err(capsys)
    assert not (tmp_path / "w").exists()


# ---------------------------------------------------------------------- full disks
def test_demo_on_a_full_disk_says_so(tmp_path):
    """It crashed (exit 139) where HDF5 met a full disk; now it stops with an error and keeps
    what it finished."""
    import subprocess
    import sys

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        r = subprocess.run([sys.executable, "-m", "hanet", "demo", "--quick", "--workdir", str(disk / "d"),
                            "--no-progress"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 2, r.stderr[-2000:]
        assert "no space left on device" in r.stderr and "Traceback" not in r.stderr
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# ---------------------------------------------------------------------- options, checked before any work
@pytest.mark.parametrize("argv, words", [
    (["train", "--data", "x", "--out", "y", "--log-every", "0"], "argument --log-every: must be an integer >= 1, not 0"),
    (["train", "--data", "x", "--out", "y", "--seed", str(2**70)], "argument --seed: must be an integer in [0, 4294967295]"),
    (["train", "--data", "x", "--out", "y", "--dim-word", "0"], "argument --dim-word: must be an integer in [1, 4096]"),
    (["train", "--data", "x", "--out", "y", "--max-steps", "0"], "argument --max-steps: must be an integer >= 1"),
    (["train", "--data", "x", "--out", "y", "--lr", "-1"], "argument --lr: must be a finite number > 0"),
    (["evaluate", "--run", "x", "--batch-size", "0"], "argument --batch-size: must be an integer >= 1"),
    (["evaluate", "--run", "x", "--pair-budget", "-5"], "argument --pair-budget: must be an integer >= 1"),
    (["prepare", "--captions", "x", "--train-names", "y", "--out", "z", "--num-noun-concepts", "1000000000"],
     "argument --num-noun-concepts: must be an integer in [1, 65536]"),
    (["extract", "x", "--out", "y", "--threads", "0"], "argument --threads: must be an integer in [1, 1024]"),
    (["synth", "--out", "x", "--preset", "nope"], "argument --preset: invalid choice"),
    (["synth", "--out", "x", "--size", "100000"], "argument --size: must be an integer in [32, 1024]"),
    (["serve", "x", "--port", "70000"], "argument --port: must be an integer in [1, 65535]"),
    (["search", "x", "q", "-k", "0"], "argument -k: must be an integer >= 1"),
])
def test_options_out_of_range_are_refused_by_name(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert words in _err(capsys)


@pytest.mark.parametrize("setting, words", [
    ("model.video.dropout=2", "model.video.dropout = 2.0: must be a finite number in [0, 0.99]"),
    ("model=5", "--set model: is a section"),
    ("model.video=5", "is a section"),
    ("model.text.dim_word=0", "model.text.dim_word = 0"),
    ("model.max_violation=maybe", "cannot read 'maybe'"),
])
def test_set_values_are_checked_by_the_config(tmp_path, ds, capsys, setting, words):
    assert _train(ds, tmp_path / "run", "--set", setting) == 2
    assert words in _err(capsys)
    assert not (tmp_path / "run" / "run.json").exists()


def test_fp16_on_a_cpu_is_refused(tmp_path, ds, capsys):
    assert _train(ds, tmp_path / "run", "--precision", "fp16", "--device", "cpu") == 2
    assert "--precision fp16 needs a GPU" in _err(capsys)


def test_a_pipe_given_as_a_file_is_refused_not_waited_on(tmp_path, ds, capsys):
    fifo = tmp_path / "names.fifo"
    os.mkfifo(fifo)
    assert _main(["prepare", "--captions", str(ds / "ref_captions.json"), "--train-names", str(fifo),
                  "--out", str(tmp_path / "ann")]) == 2
    assert "not a regular file" in _err(capsys)


# ---------------------------------------------------------------------- annotation schemas
@pytest.mark.parametrize("how,words", [
    ("edge to no node", "names no node 'nowhere'"), ("span past the words", "outside the caption's"),
    ("negative span", "spans [-1] outside"), ("spans as strings", "are not word positions"),
    ("no root", "no ROOT node"), ("no role", "has no role"), ("edge without its role", "is not [from, to, role]"),
])
def test_malformed_role_graphs_are_named_by_check_data_and_refused_by_train(tmp_path, ds, capsys, how, words):
    cap = spoil_graph(ds, how)
    assert main(["check-data", str(ds), "--quick"]) == 1
    err = _err(capsys)
    assert words in err and cap in err and "sent2rolegraph.augment.json" in err
    assert _train(ds, tmp_path / "run") == 2
    assert words in _err(capsys)
    assert not (tmp_path / "run" / "run.json").exists()


def _vocab_file(ds: Path) -> Path:
    from hanet.data.formats import DatasetSpec

    return DatasetSpec.load(str(ds)).word2int


@pytest.mark.parametrize("spoil,words", [
    (lambda w: {}, "the vocabulary is empty"),
    (lambda w: {**w, "extra": -4}, "without a non-negative integer id"),
    (lambda w: {**w, "gap": len(set(w.values())) + 10}, "ids go up to"),
    (lambda w: {**w, "far": 10 ** 11}, "ids go up to 100,000,000,000"),
])
def test_a_vocabulary_whose_ids_leave_gaps_is_refused_before_a_model_is_sized(tmp_path, ds, capsys, spoil,
                                                                                    words):
    vocab = _vocab_file(ds)
    vocab.write_text(json.dumps(spoil(json.loads(vocab.read_text()))))
    # (aliases sharing a word's id are a vocabulary: hanet prepare writes a caption's raw tokens so)
    assert main(["check-data", str(ds), "--quick"]) == 1
    assert words in _err(capsys)
    assert _train(ds, tmp_path / "run") == 2
    assert words in _err(capsys)


def test_concept_weights_that_are_not_in_0_1_are_named(tmp_path, ds, capsys):
    names = [str(n) for n in np.load(ds / "trn_names.npy")]
    p = ds / "verb_gt_all.json"
    d = json.loads(p.read_text())
    k = next(iter(d[names[1]]), "0")
    d[names[1]] = {**d[names[1]], k: float("nan")}
    d[names[2]] = {"3": -0.5}
    p.write_text(json.dumps(d))
    assert main(["check-data", str(ds), "--quick"]) == 1
    err = _err(capsys)
    assert f"{names[1]}: concept {k} weight nan" in err and f"{names[2]}: concept 3 weight -0.5" in err
    assert _train(ds, tmp_path / "run") == 2
    assert "not in [0, 1]" in _err(capsys)


def test_a_video_in_two_splits_is_named(tmp_path, ds, capsys):
    trn = [str(n) for n in np.load(ds / "trn_names.npy")]
    tst = [str(n) for n in np.load(ds / "tst_names.npy")]
    np.save(ds / "tst_names.npy", np.array(tst + [trn[0]]))
    with h5py.File(ds / "trn_ft.hdf5", "r") as a, h5py.File(ds / "tst_ft.hdf5", "a") as b:
        b[trn[0]] = a[trn[0]][...]
    assert main(["check-data", str(ds), "--quick"]) == 1
    assert f"{trn[0]!r} in trn and tst" in _err(capsys)
    for extra in (["--val-split", "tst"], []):  # validating on tst, or evaluating on it later
        assert _train(ds, tmp_path / "run", *extra) == 2
        assert f"1 video(s) in more than one split: {trn[0]!r} in trn and tst" in _err(capsys)


def test_json_nested_too_deep_is_a_clear_error(tmp_path, ds, capsys):
    (ds / "ref_captions.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["check-data", str(ds), "--quick"]) == 1
    assert "nests its values too deep" in _err(capsys)
