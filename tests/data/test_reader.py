"""The released-format reader on real files: the reference dataset and variations of it."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from hanet.data.dataset import CaptionEncoder, PairDataset, RetrievalData, collate_pairs
from hanet.data.formats import DatasetSpec, FeatureStore, pad_or_subsample
from hanet.errors import DataError


def test_directory_official_path_json_and_yaml_agree(dataset, ref_config):
    # Official path.json with paths relative to the working directory of the official code.
    official = {
        "attn_ft_files": {"trn": ["ds/trn_ft.hdf5"], "tst": ["ds/tst_ft.hdf5"]},
        "name_file": {"trn": "ds/trn_names.npy", "tst": "ds/tst_names.npy"},
        "word2int_file": "ds/word2int.json", "int2word_file": "ds/int2word.npy",
        "ref_caption_file": {s: "ds/ref_captions.json" for s in ("trn", "tst")},
        "ref_graph_file": {s: "ds/sent2rolegraph.augment.json" for s in ("trn", "tst")},
        "verb_concept_file": "ds/verb_gt.json", "noun_concept_file": "ds/noun_gt.json",
        "verb_concept_all_file": "ds/verb_gt_all.json", "noun_concept_all_file": "ds/noun_gt_all.json",
    }
    (dataset.parent / "path.json").write_text(json.dumps(official))
    (dataset.parent / "dataset.yaml").write_text(
        "root: ds\nsplits:\n  trn: {names: trn_names.npy, features: trn_ft.hdf5}\n"
        "  tst: {names: tst_names.npy, features: [tst_ft.hdf5]}\n"
        "concepts: {verb: verb_gt.json, noun: noun_gt.json, verb_all: verb_gt_all.json, noun_all: noun_gt_all.json}\n")
    specs = [DatasetSpec.load(dataset), DatasetSpec.load(dataset.parent / "path.json"),
             DatasetSpec.load(dataset.parent / "dataset.yaml")]
    batches = []
    for spec in specs:
        assert set(spec.splits) == {"trn", "tst"}
        data = RetrievalData(spec, "trn", ref_config.model, with_concepts=True)
        pairs = PairDataset(data)
        batches.append(collate_pairs([pairs[i] for i in (0, 5, 100)]))
    for b in batches[1:]:
        assert torch.equal(b.video.features, batches[0].video.features)
        assert torch.equal(b.text.edges, batches[0].text.edges)
        assert torch.equal(b.concepts.noun_mask, batches[0].concepts.noun_mask)


def test_several_feature_files_concatenate_and_vatex_names(tmp_path, ref_config):
    names = ["vid/a", "vid/b"]
    f1, f2 = tmp_path / "a.hdf5", tmp_path / "b.hdf5"
    with h5py.File(f1, "w") as h1, h5py.File(f2, "w") as h2:
        for i, n in enumerate(names):
            h1[n.replace("/", "_")] = np.full((5 + i, 3), i, np.float16)
            h2[n.replace("/", "_")] = np.full((5 + i, 2), 10 + i, np.float32)
    store = FeatureStore([f1, f2])
    assert store.dims() == [3, 2]
    x = store.get("vid/b")
    assert x.shape == (6, 5) and x.dtype == np.float32 and x[0, 4] == 11
    store.close()
    with h5py.File(f2, "a") as h2:
        del h2["vid_a"]
        h2["vid_a"] = np.zeros((4, 2), np.float32)
        h2["nan"] = np.full((3, 2), np.nan, np.float32)
    with h5py.File(f1, "a") as h1:
        h1["nan"] = np.zeros((3, 3), np.float32)
    with pytest.raises(DataError, match="different frame counts"):
        store.get("vid/a")
    with pytest.raises(DataError, match="NaN"):
        store.get("nan")
    with pytest.raises(DataError, match="no features for video 'zzz'"):
        store.get("zzz")


def test_problems_are_listed_all_at_once(dataset, ref_config):
    names = [str(n) for n in np.load(dataset / "trn_names.npy")]
    with h5py.File(dataset / "trn_ft.hdf5", "a") as h:
        del h[names[1]]
        del h[names[2]]
    graphs = json.loads((dataset / "sent2rolegraph.augment.json").read_text())
    caps = json.loads((dataset / "ref_captions.json").read_text())
    del graphs[caps[names[3]][0]]
    (dataset / "sent2rolegraph.augment.json").write_text(json.dumps(graphs))
    vgt = json.loads((dataset / "verb_gt.json").read_text())
    vgt[names[4]][0] = [3, 700]
    (dataset / "verb_gt.json").write_text(json.dumps(vgt))
    with pytest.raises(DataError) as err:
        RetrievalData(DatasetSpec.load(dataset), "trn", ref_config.model, with_concepts=True)
    msg = str(err.value)
    assert "trn_ft.hdf5: no features for 2 video(s)" in msg and names[1] in msg and names[2] in msg
    assert "no role graph for 1 caption(s)" in msg
    assert "concept ids outside [0, 512)" in msg and f"{names[4]}:700" in msg


def test_missing_files_and_bad_json(tmp_path, dataset, ref_config):
    with pytest.raises(DataError, match="no such dataset"):
        DatasetSpec.load(tmp_path / "nope")
    (dataset / "ref_captions.json").write_text("{not json")
    with pytest.raises(DataError, match="ref_captions.json: captions file is not valid JSON"):
        RetrievalData(DatasetSpec.load(dataset), "tst", ref_config.model)
    (dataset / "ref_captions.json").write_text(json.dumps(["a list"]))
    with pytest.raises(DataError, match=r"expected \{video_name: \[caption, ...\]\}, got a JSON array"):
        RetrievalData(DatasetSpec.load(dataset), "tst", ref_config.model)
    np.save(dataset / "tst_names.npy", np.array([], dtype=str))
    with pytest.raises(DataError, match="split is empty"):
        RetrievalData(DatasetSpec.load(dataset), "tst", ref_config.model)


def test_empty_captions_are_skipped(dataset, ref_config, caplog):
    names = [str(n) for n in np.load(dataset / "tst_names.npy")]
    caps = json.loads((dataset / "ref_captions.json").read_text())
    caps[names[0]].append("")
    (dataset / "ref_captions.json").write_text(json.dumps(caps))
    graphs = json.loads((dataset / "sent2rolegraph.augment.json").read_text())
    graphs[""] = [{"ROOT": {"role": "ROOT", "spans": [], "words": []}}, []]
    (dataset / "sent2rolegraph.augment.json").write_text(json.dumps(graphs))
    data = RetrievalData(DatasetSpec.load(dataset), "tst", ref_config.model)
    assert data.empty_captions == [(names[0], "")]
    assert "" not in data.unique_captions and "skipping 1 empty caption" in caplog.text


def test_pad_or_subsample_official_rounding():
    x = np.arange(30, dtype=np.float32)[:, None]
    y, n = pad_or_subsample(x, 20)
    # numpy rounds halves to even: linspace(0, 29, 20) has 14.5 -> 14.
    assert n == 20 and y[:, 0].tolist() == np.round(np.linspace(0, 29, 20)).tolist()
    z, m = pad_or_subsample(x[:7], 20)
    assert m == 7 and z.shape == (20, 1) and z[7:].sum() == 0


def test_caption_encoder_graph_rules():
    enc = CaptionEncoder({"a": 3, "man": 4, "runs": 5, "and": 6, "jumps": 7}, max_words=4, num_verbs=1, num_nouns=2)
    nodes = {"ROOT": {"role": "ROOT", "spans": [0, 1, 2, 3, 4]},
             "1": {"role": "V", "spans": [2]}, "2": {"role": "ARG0", "spans": [0, 1]},
             "3": {"role": "V", "spans": [4]},  # second verb: no slot left
             "4": {"role": "ARGM-XYZ", "spans": [5]},  # starts beyond max_words: dropped
             "5": {"role": "C-ARG1", "spans": [3]}}
    out = enc.encode("a man runs and jumps", [nodes, [["1", "2", "ARG0"], ["3", "5", "ARG1"]]])
    assert out.length == 4 and out.word_ids.tolist() == [3, 4, 5, 6]
    assert out.verb_mask[0].tolist() == [False, False, True, False]
    assert out.noun_mask[0].tolist() == [True, True, False, False] and out.noun_mask[1].tolist() == [False] * 3 + [True]
    assert out.roles.tolist() == [0, 2, 1]  # V, ARG0, C-ARG1 -> ARG1
    # root -> verb, verb <-> its argument; rows normalised
    assert out.edges[1].tolist() == [0.5, 0, 0.5, 0]
    assert out.edges[2].tolist() == [0, 1, 0, 0] and out.edges[3].sum() == 0 and out.edges[0].sum() == 0


def test_check_data_command(dataset, capsys):
    from hanet.cli import main

    assert main(["check-data", str(dataset)]) == 0
    assert "trn: 24 videos, 168 captions" in capsys.readouterr().out
    names = [str(n) for n in np.load(dataset / "tst_names.npy")]
    with h5py.File(dataset / "tst_ft.hdf5", "a") as h:
        data = h[names[3]][...]
        del h[names[3]]
        h[names[3]] = np.full_like(data, np.nan)
    assert main(["check-data", str(dataset)]) == 1
    err = capsys.readouterr().err
    assert "split tst: 1 unusable video(s)" in err and names[3] in err and "NaN" in err
