"""Each file of an index is bound to its manifest: a file from another index, a truncated or a
garbled one is named when the index is opened (never answered from), `hanet index verify` checks
every byte, and a model's vocabulary is the one it was trained with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hanet.cli import main
from hanet.index.storage import IndexFormatError

from .corpus import QUERY, make_corpus


@pytest.fixture(scope="module")
def twin(tmp_path_factory, run_dir) -> Path:
    """Another index of the same model and size, over other clips."""
    from hanet.index import build_index

    root = tmp_path_factory.mktemp("twin")
    other = make_corpus(root / "corpus", seed=7, with_files=0, prefix="other")
    build_index(run_dir, other.features, root / "idx", captions=other.captions, thumbnails=False, batch_size=5)
    return root / "idx"


def _copy(built: Path, tmp_path: Path) -> Path:
    out = tmp_path / "idx"
    shutil.copytree(built, out)
    return out


def _segment(idx: Path, part: str = "v") -> Path:
    return sorted(idx.glob(f"segments/{part}-*"))[0]


def test_an_intact_index_opens_and_verifies(built, capsys):
    from hanet.index import SearchIndex

    m = json.loads((built / "manifest.json").read_text())
    assert m["index_id"] and len(m["model"]["vocab"]) == 16
    assert {"model.pt", "vocab.json"} <= set(m["files"]) and all(r["sha256"] for r in m["files"].values())
    assert SearchIndex.open(built).num_videos > 0
    assert main(["index", "verify", str(built)]) == 0
    assert "every byte as recorded" in capsys.readouterr().out


@pytest.mark.parametrize("file", ["records.npy", "ids.json", "meta.jsonl"])
def test_a_segment_file_of_another_index_is_named_at_open(built, twin, tmp_path, file, capsys):
    from hanet.index import SearchIndex

    idx = _copy(built, tmp_path)
    target = _segment(idx) / file
    shutil.copy(_segment(twin) / file, target)
    with pytest.raises(IndexFormatError, match=f"{target}.*(content|bytes)"):
        SearchIndex.open(idx)
    assert main(["index", "verify", str(idx), "--ids-out", str(tmp_path / "ids.txt")]) == 2
    err = capsys.readouterr().err
    assert str(target) in err and "holds" in err and "Traceback" not in err
    if file != "ids.json":  # the ids of the damaged segment, read from its intact ids.json
        ids = (tmp_path / "ids.txt").read_text().split()
        assert ids == json.loads((_segment(built) / "ids.json").read_text())
    # the command line says it as an error, exit 2
    assert main(["search", str(idx), QUERY]) == 2
    assert "do not belong to this index" in capsys.readouterr().err


def test_first_stage_files_of_another_index_are_refused(built, twin, tmp_path):
    from hanet.index import SearchIndex

    idx = _copy(built, tmp_path)
    mine = sorted(idx.glob("faiss/videos-*"))
    theirs = sorted(twin.glob("faiss/videos-*"))
    assert mine and [p.name.split("-", 2)[2] for p in mine] == [p.name.split("-", 2)[2] for p in theirs]
    for a, b in zip(mine, theirs):
        shutil.copy(b, a)
    with pytest.raises(IndexFormatError, match="faiss"):
        SearchIndex.open(idx)


@pytest.mark.parametrize("damage", ["truncate", "garble", "shuffle-vocab"])
def test_truncated_garbled_or_shuffled_files_are_refused(built, tmp_path, damage):
    from hanet.index import SearchIndex

    idx = _copy(built, tmp_path)
    if damage == "truncate":
        p = _segment(idx) / "records.npy"
        with open(p, "r+b") as f:
            f.truncate(p.stat().st_size - 1000)
    elif damage == "garble":
        p = _segment(idx) / "meta.jsonl"
        text = p.read_text()
        p.write_text(text[: len(text) // 2] + "}" + text[len(text) // 2 + 1:])
    else:
        p = idx / "vocab.json"
        vocab = json.loads(p.read_text())
        words, ids = list(vocab), list(vocab.values())
        ids = ids[1:] + ids[:1]
        p.write_text(json.dumps(dict(zip(words, ids))))
    with pytest.raises(IndexFormatError, match=p.name):
        SearchIndex.open(idx)


def test_a_change_after_a_commit_is_recorded_by_the_next_commit(built, corpus, tmp_path):
    from hanet.index import SearchIndex
    from hanet.index.audit import verify_index
    from hanet.index.build import delete_videos

    idx = _copy(built, tmp_path)
    delete_videos(idx, [corpus.names[0]])
    assert verify_index(idx)["problems"] == []
    assert corpus.names[0] not in {h.video_id for h in SearchIndex.open(idx).search(QUERY, k=50)}


def test_a_vocabulary_other_than_the_models_is_refused(run_dir, corpus, tmp_path):
    from hanet.data.formats import DatasetSpec, load_vocab, vocab_fingerprint
    from hanet.errors import DataError
    from hanet.index import build_index
    from hanet.run import RunDir

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    info = RunDir(run).read_info()
    words = load_vocab(DatasetSpec.load(info.dataset).word2int)
    info.vocab = vocab_fingerprint(words)
    RunDir(run).write_info(info)
    shuffled = dict(zip(list(words), np.roll(np.array(list(words.values())), 1).tolist()))
    (tmp_path / "other.json").write_text(json.dumps(shuffled))
    with pytest.raises(DataError, match="not the vocabulary the model"):
        build_index(run, corpus.features, tmp_path / "idx", vocab=tmp_path / "other.json", thumbnails=False)
    assert not (tmp_path / "idx" / "manifest.json").exists()
    # its own vocabulary, given or found through the run's dataset, is taken
    build_index(run, corpus.features, tmp_path / "idx2", thumbnails=False)
    m = json.loads((tmp_path / "idx2" / "manifest.json").read_text())
    assert m["model"]["vocab"] == info.vocab


def test_repair_drops_the_damaged_segment_and_keeps_the_rest_searchable(run_dir, corpus, twin, tmp_path, capsys):
    """Two segments; one gets a file of another index; a video of the other was deleted. Repair:
    the damaged segment's videos are dropped and listed, the deletion stays, the rest answers as
    before, and every file verifies."""
    from hanet.index import SearchIndex, build_index
    from hanet.index.audit import verify_index
    from hanet.index.build import delete_videos

    idx = tmp_path / "idx"
    build_index(run_dir, corpus.features, idx, thumbnails=False, segment_size=8, batch_size=5)
    segs = sorted(idx.glob("segments/v-*"))
    assert len(segs) >= 2
    first = json.loads((segs[0] / "ids.json").read_text())
    rest = [n for n in corpus.names if n not in first]
    delete_videos(idx, [rest[0]])
    before = {h.video_id: h.score for h in SearchIndex.open(idx).search(QUERY, k=50, mode="exhaustive")}
    shutil.copy(_segment(twin) / "records.npy", segs[0] / "records.npy")
    with pytest.raises(IndexFormatError):
        SearchIndex.open(idx)
    assert main(["index", "repair", str(idx), "--ids-out", str(tmp_path / "dropped.txt")]) == 0
    assert "repaired" in capsys.readouterr().out
    assert (tmp_path / "dropped.txt").read_text().split() == first
    assert verify_index(idx)["problems"] == []
    index = SearchIndex.open(idx)
    after = {h.video_id: h.score for h in index.search(QUERY, k=50, mode="exhaustive")}
    assert set(after) == set(rest[1:]) and rest[0] not in after
    assert all(after[v] == pytest.approx(before[v], abs=1e-6) for v in after)
    two_stage = [h.video_id for h in index.search(QUERY, k=5)]
    assert two_stage == sorted(after, key=lambda v: -after[v])[:5]
    # nothing left to repair
    assert main(["index", "repair", str(idx)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_a_damaged_model_or_deletion_list_cannot_be_repaired(built, tmp_path, corpus, capsys):
    from hanet.index.build import delete_videos

    idx = _copy(built, tmp_path)
    (idx / "vocab.json").write_text("{}")
    assert main(["index", "repair", str(idx)]) == 2
    err = capsys.readouterr().err
    assert "vocab.json" in err and "rebuild the index" in err and "Traceback" not in err
    idx2 = tmp_path / "idx2"
    shutil.copytree(built, idx2)
    delete_videos(idx2, [corpus.names[0]])
    tomb = next(idx2.glob("tombstones/*.npy"))
    np.save(tomb, np.array([1, 2, 3], np.int64))
    assert main(["index", "repair", str(idx2)]) == 2
    assert tomb.name in capsys.readouterr().err


def test_a_file_the_manifest_does_not_record_is_never_read(built, tmp_path):
    """An index built without concept names ignores a concepts.json dropped into it (garbled
    here): it is not the index's, and search answers as before."""
    from hanet.index import SearchIndex

    idx = _copy(built, tmp_path)
    assert not json.loads((idx / "manifest.json").read_text())["concepts"]
    with SearchIndex.open(built) as a:
        want = [(h.video_id, h.score) for h in a.search(QUERY, k=3)]
    (idx / "concepts.json").write_bytes(b"\x00garbled\xff" * 20)
    with SearchIndex.open(idx) as b:
        assert [(h.video_id, h.score) for h in b.search(QUERY, k=3)] == want
