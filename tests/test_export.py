"""``hanet export``: Parquet tables of an index's and a feature file's encodings, read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hanet.cli import main
from hanet.export import export
from hanet.index.rerank import frame_concepts, text_outputs, video_outputs

from .index.corpus import RATE, make_corpus, make_run, padded

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from hanet.index import build_index

    root = tmp_path_factory.mktemp("export")
    corpus = make_corpus(root / "corpus", with_files=0)
    run = make_run(root / "run")
    build_index(run, corpus.features, root / "idx", captions=corpus.captions, thumbnails=False)
    return root, corpus, run


def test_exported_vectors_are_the_index_s(built, tmp_path):
    from hanet.index import SearchIndex

    root, corpus, _ = built
    (tmp_path / "q.txt").write_text("A man w12 is riding w40 on a w7\n\nzebra crossing\n")
    rep = export(root / "idx", tmp_path / "out", queries=tmp_path / "q.txt")
    assert rep.files == {"videos.parquet": 16, "captions.parquet": 32, "queries.parquet": 1}
    assert rep.skipped and "query line 3" in rep.skipped[0]  # unknown words: reported, not fatal
    index = SearchIndex.open(root / "idx")
    t = pq.read_table(tmp_path / "out" / "videos.parquet")
    meta = {k.decode(): v.decode() for k, v in t.schema.metadata.items()}
    assert meta["hanet.model_fingerprint"] == index.fingerprint
    rows = np.array(t.column("row").to_pylist())
    stored = video_outputs(index.videos, rows, with_peaks=True)
    d = index.config.video.dim_embed
    glob = t.column("global_embedding").combine_chunks().flatten().to_numpy().reshape(-1, d)
    np.testing.assert_array_equal(glob, stored.global_embeds.numpy())
    for i, r in enumerate(t.to_pylist()):
        n = r["length"]
        assert r["video_id"] == index.videos.ids[rows[i]] and n == min(corpus.lengths[r["video_id"]], 20)
        np.testing.assert_array_equal(np.array(r["verb_frames"], np.float32), stored.verb_frames[i, :n].numpy())
        np.testing.assert_array_equal(np.array(r["noun_clips"], np.float32), stored.noun_clips[i].numpy())
        np.testing.assert_array_equal(np.array(r["verb_frame_concepts"], np.float32),
                                      frame_concepts(index.videos, rows[i:i + 1])[0, :n])
        assert r["verb_clip_concepts"] == stored.top_verbs[i].tolist()
        assert len(r["frame_times"]) == n and r["duration"] == pytest.approx(corpus.lengths[r["video_id"]] / RATE)
    caps = pq.read_table(tmp_path / "out" / "captions.parquet")
    crow = np.arange(index.captions.size)
    np.testing.assert_array_equal(np.stack(caps.column("verb_concepts").to_numpy(zero_copy_only=False)),
                                  text_outputs(index.captions, crow).verb_probs.numpy())
    q = pq.read_table(tmp_path / "out" / "queries.parquet").to_pylist()[0]
    enc = index.encode("A man w12 is riding w40 on a w7")
    np.testing.assert_allclose(q["global_embedding"], enc.text.global_embeds[0].numpy(), rtol=0, atol=0)
    assert {"kind": "verb", "role": "V", "text": "riding"} in q["phrases"]
    info = json.loads((tmp_path / "out" / "export.json").read_text())
    assert info["kind"] == "index" and info["files"]["videos.parquet"] == 16
    # the README's pandas example
    pd = pytest.importorskip("pandas")
    videos = pd.read_parquet(tmp_path / "out" / "videos.parquet")
    X = np.stack(videos["global_embedding"].to_numpy())
    assert X.shape == (16, d) and np.stack(videos.loc[0, "verb_frames"]).shape == (videos.loc[0, "length"], d)


def test_a_feature_file_is_encoded_by_the_run(built, tmp_path, capsys):
    from hanet.data.features import FeatureWriter
    from hanet.run import RunDir, model_from_checkpoint

    root, corpus, run = built
    assert main(["export", str(corpus.features), "--run", str(run), "--out", str(tmp_path / "f"), "--quiet"]) == 0
    assert "videos.parquet (16 rows)" in capsys.readouterr().out
    t = pq.read_table(tmp_path / "f" / "videos.parquet").to_pylist()
    model, _, _ = model_from_checkpoint(RunDir(run).default_checkpoint(), device="cpu")
    feats, lens = padded(corpus, [t[3]["video_id"]], model.config.max_frames_in_video)
    with torch.no_grad():
        out = model.encode_video(feats, lens)
    np.testing.assert_allclose(t[3]["global_embedding"], out.global_embeds[0].numpy(), rtol=1e-6, atol=1e-6)
    assert t[3]["row"] is None
    # a video whose features cannot be read is reported and left out; the others are written
    w = FeatureWriter(str(tmp_path / "bad.hdf5"), {"hanet_features": 1, "feature_dim": 64})
    w.add("good", np.ones((4, 64), np.float32), {})
    w.close()
    import h5py

    with h5py.File(tmp_path / "bad.hdf5", "a") as h:
        h.create_dataset("zbroken", data=np.ones((3, 7), np.float32))
    rep = export(tmp_path / "bad.hdf5", tmp_path / "b", run=run)
    assert rep.files["videos.parquet"] == 1 and "'zbroken'" in rep.skipped[0]


@pytest.mark.parametrize("argv, msg", [
    (["export", "/nonexistent/idx", "--out", "{tmp}/o"], "no such index folder or feature file"),
    (["export", "{corpus}", "--out", "{tmp}/o"], "needs the model that encodes it"),
    (["export", "{idx}", "--out", "{tmp}/file"], "is a file; --out names a folder"),
    (["export", "{idx}", "--out", "{tmp}/o", "--queries", "{tmp}/none.txt"], "no such queries file"),
    (["export", "{idx}", "--out", "{tmp}/o", "--run", "{run}"], "an index carries its model"),
])
def test_bad_input_is_a_clear_error(built, tmp_path, capsys, argv, msg):
    root, corpus, run = built
    (tmp_path / "file").write_text("x")
    argv = [a.format(tmp=tmp_path, corpus=corpus.features, idx=root / "idx", run=run) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
