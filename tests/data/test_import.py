"""``hanet import``: each public format, written from a synthetic world, to a dataset folder; bad
records reported by file and record; the chain from the import to a searchable index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hanet.cli import main
from hanet.data.importers import ImportOptions, import_dataset
from hanet.data.importers.table import Columns
from hanet.errors import DataError
from hanet.moment_metrics import read_ground_truth

from .importfixtures import FORMATS, copy_videos, msrvtt_1ka_lists, span, world_facts


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from hanet.data.synth import SynthConfig, generate

    d = tmp_path_factory.mktemp("world")
    generate(d, SynthConfig.preset("quick"), seed=0, progress=False)
    return d


def _options(kw: dict) -> tuple[ImportOptions, dict]:
    kw = dict(kw)
    cols = kw.pop("columns", None)
    return ImportOptions(columns=Columns(**cols) if cols else Columns()), kw


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_format_imports_every_record(fmt: str, world: Path, tmp_path: Path) -> None:
    write, kw, windows = FORMATS[fmt]
    src = tmp_path / "src"
    src.mkdir()
    files, names = write(world, src)
    videos = copy_videos(world, tmp_path / "videos", names)
    opts, kw = _options(kw)
    rep = import_dataset(fmt, files, tmp_path / "out", videos=videos, options=opts, **kw)
    out = tmp_path / "out"
    assert rep.problems == [] and rep.missing_videos == []
    caps, split, ann = world_facts(world)
    imported = json.loads((out / "ref_captions.json").read_text())
    back = {v: k for k, v in names.items()}
    assert set(back[v] for v in imported) == set(split)
    for v, cs in imported.items():  # the captions are the world's, in order (Charades-STA's end with a stop)
        assert [c.rstrip(".") for c in cs] == caps[back[v]][:len(cs)]
    for s in rep.splits:
        for v in np.load(out / f"{s}_names.npy").tolist():
            assert split[back[v]] == s or (fmt == "charades-sta" and s == "trn" and split[back[v]] == "val")
    assert (out / "moments.jsonl").exists() == windows
    if windows:
        gt = read_ground_truth(out / "moments.jsonl")
        assert gt and all(q.vid in imported for q in gt)
        for q in gt:
            a, b = span(ann[back[q.vid]])
            expected = (0.0, float(ann[back[q.vid]]["duration_s"])) if fmt == "didemo" else (a, b)
            assert q.windows[0] == pytest.approx(expected, abs=0.051)
    assert "features.hdf5" in (out / "dataset.yaml").read_text()


def test_msrvtt_1k_a_has_one_caption_per_test_video(world: Path, tmp_path: Path) -> None:
    files, _ = FORMATS["msrvtt"][0](world, tmp_path)
    trn_list, tst_list = msrvtt_1ka_lists(world, tmp_path)
    rep = import_dataset("msrvtt", files, tmp_path / "out",
                         options=ImportOptions(split="1k-a", train_list=trn_list, test_list=tst_list))
    caps, split, _ = world_facts(world)
    imported = json.loads((tmp_path / "out" / "ref_captions.json").read_text())
    tst = np.load(tmp_path / "out" / "tst_names.npy").tolist()
    assert all(imported[v] == [caps[v][3]] for v in tst)  # the list's sentence, alone
    assert rep.splits["trn"]["videos"] == sum(s in ("trn", "val") for s in split.values())
    assert "val" not in rep.splits
    rep = import_dataset("msrvtt", files, tmp_path / "out2", options=ImportOptions(
        split="1k-a", train_list=trn_list, test_list=tst_list, val_from_train=4))
    assert rep.splits["val"]["videos"] == 4


BAD_ACTIVITYNET = {
    "start > end": ({"duration": 2.0, "timestamps": [[1.5, 0.5]], "sentences": ["a red circle bounces"]},
                    "ends before it starts"),
    "past the end": ({"duration": 2.0, "timestamps": [[0.5, 9.0]], "sentences": ["a red circle bounces"]},
                     "past the video's duration"),
    "negative": ({"duration": 2.0, "timestamps": [[-1.0, 1.0]], "sentences": ["a red circle bounces"]},
                 "starts before 0"),
    "empty caption": ({"duration": 2.0, "timestamps": [[0.0, 1.0]], "sentences": ["?!"]}, "empty once normalised"),
    "missing key": ({"duration": 2.0, "sentences": ["a red circle bounces"]}, "'timestamps'"),
    "string time": ({"duration": 2.0, "timestamps": [["0", "x"]], "sentences": ["a red circle bounces"]},
                    "must be a number"),
}


@pytest.mark.parametrize("kind", list(BAD_ACTIVITYNET))
def test_bad_records_are_left_out_and_named(kind: str, world: Path, tmp_path: Path) -> None:
    files, names = FORMATS["activitynet"][0](world, tmp_path)
    data = json.loads(files[0].read_text())
    data["v_BAD"] = BAD_ACTIVITYNET[kind][0]
    files[0].write_text(json.dumps(data))
    rep = import_dataset("activitynet", files, tmp_path / "out")
    assert len(rep.problems) == 1
    assert str(files[0]) in rep.problems[0] and "v_BAD" in rep.problems[0] and BAD_ACTIVITYNET[kind][1] in rep.problems[0]
    assert "v_BAD" not in json.loads((tmp_path / "out" / "ref_captions.json").read_text())
    assert json.loads((tmp_path / "out" / "import_report.json").read_text())["problems"] == rep.problems
    # --strict: an error naming it, and nothing written
    with pytest.raises(DataError, match="v_BAD"):
        import_dataset("activitynet", files, tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict").exists()


def test_duplicate_query_ids_and_a_video_in_two_splits(world: Path, tmp_path: Path) -> None:
    files, names = FORMATS["qvhighlights"][0](world, tmp_path)
    train = files[0].read_text().splitlines()
    first = json.loads(train[0])
    val = files[1].read_text().splitlines()
    dup = dict(json.loads(val[0]), qid=first["qid"])  # a query id already used
    moved = dict(json.loads(val[1]), qid=99999, vid=first["vid"])  # a training video in val
    files[1].write_text("\n".join([json.dumps(dup), json.dumps(moved)] + val[2:]) + "\n")
    rep = import_dataset("qvhighlights", files, tmp_path / "out")
    assert len(rep.problems) == 2
    assert any("already at" in p and f"{files[1]}:1" in p for p in rep.problems)
    assert any("two splits" in p and f"{files[1]}:2" in p for p in rep.problems)
    assert first["vid"] in np.load(tmp_path / "out" / "trn_names.npy").tolist()


@pytest.mark.parametrize("content, problem", [
    (b"[1, 2, 3]", "expected {video"),
    (b"\xff\xfe not utf8", "not UTF-8"),
    (b"{", "not valid JSON"),
])
def test_a_file_of_the_wrong_shape_is_an_error_naming_it(content: bytes, problem: str, tmp_path: Path) -> None:
    f = tmp_path / "train.json"
    f.write_bytes(content)
    with pytest.raises(DataError, match=problem) as e:
        import_dataset("activitynet", [f], tmp_path / "out")
    assert str(f) in str(e.value)


def test_missing_videos_are_named_and_a_non_empty_folder_is_refused(world: Path, tmp_path: Path) -> None:
    files, names = FORMATS["vatex"][0](world, tmp_path)
    some = dict(list(names.items())[:5])
    videos = copy_videos(world, tmp_path / "videos", some)
    rep = import_dataset("vatex", files, tmp_path / "out", videos=videos)
    assert len(rep.missing_videos) == len(names) - 5
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="holds other files"):
        import_dataset("vatex", files, tmp_path / "other")
    # a second import into its own folder replaces it
    assert import_dataset("vatex", files[:1], tmp_path / "out").splits.keys() == {"trn"}
    assert not (tmp_path / "out" / "tst_names.npy").exists() or "tst" not in json.loads(
        (tmp_path / "out" / "import_report.json").read_text())["splits"]


def test_the_command_line_reports_and_exits_2_on_bad_input(world: Path, tmp_path: Path, capsys) -> None:
    files, _ = FORMATS["csv"][0](world, tmp_path)
    args = ["import", "csv", str(files[0]), "--out", str(tmp_path / "out"), "--video-column", "clip",
            "--caption-column", "text", "--start-column", "t0", "--end-column", "t1", "--split-column", "part"]
    assert main(args) == 0
    assert "imported csv" in capsys.readouterr().out
    assert main(["import", "csv", str(files[0]), "--out", str(tmp_path / "o2"), "--video-column", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err


def _chain(fmt: str, world: Path, tmp_path: Path) -> None:
    """import -> extract -> prepare -> train -> evaluate (spans where the dataset has windows)
    -> index -> search, through the command line."""
    write, kw, windows = FORMATS[fmt]
    src = tmp_path / "src"
    src.mkdir()
    files, names = write(world, src)
    videos = copy_videos(world, tmp_path / "videos", names)
    out = tmp_path / "data"
    args = ["import", fmt, *map(str, files), "--out", str(out), "--videos", str(videos)]
    if kw.get("clip_windows"):
        args.append("--clip-windows")
    for k, v in kw.get("columns", {}).items():
        args += [f"--{k}-column", v]
    assert main(args) == 0
    assert main(["extract", str(videos), "--out", str(out / "features.hdf5"), "--num-frames", "6", "--image-size",
                 "64", "--no-progress"]) == 0
    assert main(["prepare", "--captions", str(out / "ref_captions.json"), "--train-names",
                 str(out / "trn_names.npy"), "--out", str(out / "ann"), "--num-verb-concepts", "16",
                 "--num-noun-concepts", "16", "--no-progress"]) == 0
    run = tmp_path / "run"
    assert main(["train", "--data", str(out / "dataset.yaml"), "--preset", "synth", "--out", str(run),
                 "--max-steps", "6", "--epochs", "1", "--set", "model.num_verb_concepts=16", "--set",
                 "model.num_noun_concepts=16", "--no-progress"]) == 0
    pred = tmp_path / "spans.jsonl"
    split = "val" if fmt == "qvhighlights" else "tst"  # QVHighlights' test release has no windows
    ev = ["evaluate", "--run", str(run), "--split", split] + (["--moment-predictions", str(pred)] if windows else [])
    assert main(ev) == 0
    if windows:
        metrics = json.loads((run / "eval" / f"{split}.json").read_text())["moments"]["metrics"]["brief"]
        assert 0 <= metrics["MR-full-R1@0.5"] <= 100 and pred.exists()
    index = tmp_path / "index"
    assert main(["index", "build", "--run", str(run), "--features", str(out / "features.hdf5"), "--out", str(index),
                 "--videos", str(videos), "--quiet"]) == 0
    caps = json.loads((out / "ref_captions.json").read_text())
    assert main(["search", str(index), next(iter(caps.values()))[0], "-k", "3", "--json"]) == 0


def test_from_a_download_to_a_searchable_index(world: Path, tmp_path: Path) -> None:
    _chain("activitynet", world, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "activitynet"])
def test_from_a_download_to_a_searchable_index_every_format(fmt: str, world: Path, tmp_path: Path) -> None:
    _chain(fmt, world, tmp_path)
