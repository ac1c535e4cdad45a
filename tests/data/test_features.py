"""The crash-safe feature writer and the shard merge, on real HDF5 files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hanet.errors import DataError
from hanet.data.features import FeatureWriter, merge_files, read_meta

META = {"hanet_features": 1, "backbone": "b", "feature_dim": 4, "image_size": 64, "sampling": "fps=1",
        "dtype": "float32", "weights": "w"}


def test_journal_then_commit_and_large_attributes(tmp_path):
    out = tmp_path / "f.h5"
    w = FeatureWriter(str(out), META)
    with h5py.File(out, "r") as f:  # created at once, valid and empty
        assert len(f.keys()) == 0 and f.attrs["backbone"] == "b"
    stamps = np.arange(20000, dtype=np.float64) / 10  # 160 KB: beyond HDF5's compact attribute limit
    w.add("v1", np.ones((20000, 4)), {"timestamps": stamps})
    with h5py.File(out, "r") as f:
        assert "v1" not in f  # journalled, not yet committed
    assert w.keys == {"v1"}
    w.close()
    with h5py.File(out, "r") as f:
        assert f["v1"].shape == (20000, 4) and f["v1"].dtype == np.float32
        np.testing.assert_array_equal(f["v1"].attrs["timestamps"], stamps)
    assert not (tmp_path / "f.h5.journal").exists() and not (tmp_path / "f.h5.lock").exists()


def test_a_left_journal_is_committed_by_the_next_writer(tmp_path):
    out = tmp_path / "f.h5"
    w = FeatureWriter(str(out), META)
    w.add("a", np.zeros((2, 4)), {})
    w._release()  # the process "dies": no commit, only the lock goes with it
    (tmp_path / "f.h5.123.tmp").write_bytes(b"half a commit")
    w2 = FeatureWriter(str(out), META)
    assert w2.keys == {"a"}
    with h5py.File(out, "r") as f:
        assert "a" in f
    assert not (tmp_path / "f.h5.123.tmp").exists()
    w2.close()


def test_one_writer_per_file_and_guards(tmp_path):
    out = tmp_path / "f.h5"
    w = FeatureWriter(str(out), META)
    with pytest.raises(DataError, match="another extraction is writing"):
        FeatureWriter(str(out), META)
    w.close()
    with pytest.raises(DataError, match="other settings.*backbone"):
        FeatureWriter(str(out), {**META, "backbone": "other"})
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DataError, match="not a hanet feature file"):
        FeatureWriter(str(foreign), META)
    text = tmp_path / "text.h5"
    text.write_text("nope")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        read_meta(str(text))


def _shard(path, items, meta=META):
    w = FeatureWriter(str(path), meta)
    for k, v in items.items():
        w.add(k, v, {"timestamps": np.arange(len(v), dtype=np.float64)})
    w.close()
    return str(path)


def test_merge(tmp_path):
    a = _shard(tmp_path / "a.h5", {"x": np.ones((2, 4)), "y": np.zeros((3, 4))})
    b = _shard(tmp_path / "b.h5", {"z": np.full((1, 4), 2.0), "y": np.zeros((3, 4))})  # same y
    keys = merge_files([a, b], str(tmp_path / "m.h5"))
    assert keys == ["x", "y", "z"]
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert f["z"][0, 0] == 2.0 and f.attrs["merged_from"] == 2
        np.testing.assert_array_equal(f["x"].attrs["timestamps"], [0, 1])
    c = _shard(tmp_path / "c.h5", {"y": np.ones((3, 4))})
    with pytest.raises(DataError, match="'y' has different features"):
        merge_files([a, c], str(tmp_path / "m2.h5"))
    assert not (tmp_path / "m2.h5").exists()
    d = _shard(tmp_path / "d.h5", {"w": np.ones((1, 4))}, {**META, "sampling": "fps=2"})
    with pytest.raises(DataError, match="settings differ"):
        merge_files([a, d], str(tmp_path / "m3.h5"))
    with pytest.raises(DataError, match="also the merge output"):
        merge_files([a, b], a)
