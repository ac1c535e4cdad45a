"""Feature files that lie: each video entry is judged from its HDF5 metadata before anything is
read, named with its problem, and an index build leaves it out and says so."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hanet.data.features import MAX_FRAMES, FeatureStore
from hanet.errors import DataError

DIM = 64


def _hostile_file(path: Path, other: Path) -> dict[str, str]:
    """A feature file with two good videos and one of each kind of bad entry; name -> expected problem."""
    rng = np.random.default_rng(0)
    with h5py.File(other, "w") as f:
        f.create_dataset("far", data=rng.normal(size=(4, DIM)).astype(np.float32))
    with h5py.File(path, "w") as f:
        f.create_dataset("good", data=rng.normal(size=(6, DIM)).astype(np.float32))
        f["good"].attrs["timestamps"] = np.arange(6) / 5.0
        f["good"].attrs["duration"] = 1.2
        f.create_dataset("bad_times", data=rng.normal(size=(5, DIM)).astype(np.float32))
        f["bad_times"].attrs["timestamps"] = np.array([0.0, np.nan, 0.4, 0.6, 0.8])
        f["bad_times"].attrs["duration"] = "long"
        f.create_dataset("times_2d", data=rng.normal(size=(4, DIM)).astype(np.float32))
        f["times_2d"].attrs["timestamps"] = np.zeros((2, 2))
        f.create_group("group")
        f.create_dataset("strings", data=np.array([b"a", b"b"]))
        f.create_dataset("compound", data=np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]))
        f.create_dataset("complex", data=np.zeros((3, DIM), dtype=np.complex64))
        f.create_dataset("flat", data=np.zeros(DIM, dtype=np.float32))
        f.create_dataset("narrow", data=np.zeros((3, 8), dtype=np.float32))
        f.create_dataset("empty", shape=(0, DIM), dtype=np.float32)
        f.create_dataset("huge", shape=(2_000_000, DIM), dtype=np.float32, chunks=(1, DIM))  # a few KB on disk
        f.create_dataset("nan", data=np.full((3, DIM), np.nan, dtype=np.float32))
        f["dangling"] = h5py.SoftLink("/nowhere")
        f["loop"] = h5py.SoftLink("/loop")
        f["external"] = h5py.ExternalLink(str(other), "/far")
    return {"group": "is a group, not a dataset", "strings": "features are real numbers",
            "compound": "features are real numbers", "complex": "features are real numbers",
            "flat": "expected (frames, dim)", "narrow": f"expected (frames, {DIM})", "empty": "has no frames",
            "huge": f"declares 2,000,000 frames (at most {MAX_FRAMES:,}", "dangling": "leads nowhere",
            "loop": "link", "external": "not followed"}


def test_each_bad_entry_is_named_with_its_problem(tmp_path):
    path = tmp_path / "feats.hdf5"
    expected = _hostile_file(path, tmp_path / "other.hdf5")
    store = FeatureStore([path])
    assert store.dims() == [DIM]
    for name, why in expected.items():
        problem = store.video_problem(name)
        assert problem is not None and why in problem and f"video {name!r}" in problem and str(path) in problem, name
        with pytest.raises(DataError, match=name):
            store.get(name)
    for name in ("good", "bad_times", "times_2d", "nan"):
        assert store.video_problem(name) is None  # values are judged when read
    with pytest.raises(DataError, match="NaN"):
        store.get("nan")
    assert store.get("good").shape == (6, DIM)
    assert len(store.shape_problems(list(expected) + ["good"], limit=3)) == 4  # three, then a count
    # attributes that are not what they claim are left out, each reason said
    assert store.attr_problems("good") == [] and store.attrs("good")["duration"] == 1.2
    attrs, probs = store.attrs("bad_times"), store.attr_problems("bad_times")
    assert "timestamps" not in attrs and "duration" not in attrs
    assert any("NaN" in p for p in probs) and any("'long'" in p for p in probs)
    assert "timestamps" not in store.attrs("times_2d") and "shape (2, 2)" in store.attr_problems("times_2d")[0]


def test_a_file_whose_first_entry_is_bad_still_has_a_width(tmp_path):
    path = tmp_path / "f.hdf5"
    with h5py.File(path, "w") as f:
        f.create_group("a_group")
        f.create_dataset("b_video", data=np.zeros((3, DIM), dtype=np.float32))
    assert FeatureStore([path]).dims() == [DIM]
    with h5py.File(tmp_path / "none.hdf5", "w") as f:
        f.create_group("only_a_group")
    with pytest.raises(DataError, match="only_a_group.*is a group"):
        FeatureStore([tmp_path / "none.hdf5"]).dims()


def _corpus_module():
    spec = importlib.util.spec_from_file_location("hanet_test_corpus", Path(__file__).parents[1] / "index" / "corpus.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_index_build_leaves_out_unusable_videos_and_reports_them(tmp_path):
    from hanet.index import SearchIndex, build_index

    path = tmp_path / "feats.hdf5"
    expected = _hostile_file(path, tmp_path / "other.hdf5")
    corpus = _corpus_module()
    run = corpus.make_run(tmp_path / "run")
    rep = build_index(run, path, tmp_path / "idx", thumbnails=False, progress=False)
    unusable = "\n".join(rep.unusable)
    for name in [*expected, "nan"]:
        assert f"video {name!r}" in unusable or f"of {name!r}" in unusable, name
    assert sorted(rep.added) == ["bad_times", "good", "times_2d"]
    assert any(x.startswith("bad_times: ") for x in rep.attributes_left_out)
    assert "left out (features unusable)" in rep.summary()
    index = SearchIndex.open(tmp_path / "idx")
    assert sorted(index.videos.row_of) == ["bad_times", "good", "times_2d"]
    assert index.video("bad_times")["duration"] is None and index.video("good")["duration"] == 1.2
    assert index.video("bad_times")["frame_times"] is None or all(
        np.isfinite(t) for t in index.video("bad_times")["frame_times"])
    hits = index.search(corpus.QUERY, k=3)
    assert {h.video_id for h in hits} <= {"bad_times", "good", "times_2d"}


def test_an_odd_first_video_is_the_one_named_not_the_rest(tmp_path):
    """A file's width is the one most of its videos share: a narrow first video is named, the
    others are fine."""
    path = tmp_path / "feats.hdf5"
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        f.create_dataset("a_narrow", data=rng.normal(size=(4, 7)).astype(np.float32))
        for i in range(5):
            f.create_dataset(f"v{i}", data=rng.normal(size=(3 + i, DIM)).astype(np.float32))
    store = FeatureStore([path])
    assert store.dims() == [DIM]
    assert f"expected (frames, {DIM})" in store.video_problem("a_narrow")
    assert all(store.video_problem(f"v{i}") is None for i in range(5))
