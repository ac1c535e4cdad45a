"""CLIP and SigLIP vision towers from a local folder (``--backbone hf:PATH``): tiny random towers
that transformers itself builds and saves; hanet's features must equal transformers' own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers (hanet[hf]) is not installed")
pytest.importorskip("PIL", reason="the towers' image processors need pillow")

from hanet.cli import main  # noqa: E402
from hanet.errors import DataError  # noqa: E402
from hanet.video.backbones import get_backbone  # noqa: E402

SIZE = 32


def _clip(folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    cfg = transformers.CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, image_size=SIZE, patch_size=8, projection_dim=24)
    transformers.CLIPVisionModelWithProjection(cfg).save_pretrained(folder)
    transformers.CLIPImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}
                                    ).save_pretrained(folder)
    return folder


def _siglip(folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    cfg = transformers.SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=4, image_size=SIZE, patch_size=8)
    transformers.SiglipVisionModel(cfg).save_pretrained(folder)
    transformers.SiglipImageProcessor(size={"height": SIZE, "width": SIZE}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return _clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory) -> Path:
    return _siglip(tmp_path_factory.mktemp("siglip"))


def _frames(n: int = 5, h: int = 48, w: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@torch.no_grad()
def test_clip_features_equal_transformers_own(clip_dir: Path) -> None:
    frames = _frames()
    model = transformers.CLIPVisionModelWithProjection.from_pretrained(clip_dir).eval()
    px = transformers.AutoImageProcessor.from_pretrained(clip_dir, backend="pil")(images=list(frames), return_tensors="pt")
    ref = model(**px)
    net = get_backbone(f"hf:{clip_dir}")
    assert net.feature_dim == 24 and net.image_size == SIZE
    assert (net.extract(frames) - ref.image_embeds).abs().max() <= 1e-5
    pooled = get_backbone(f"hf:{clip_dir}", hf_output="pooled")
    assert pooled.feature_dim == 32
    assert (pooled.extract(frames) - model.vision_model(**px).pooler_output).abs().max() <= 1e-5


@torch.no_grad()
def test_siglip_features_equal_transformers_own(siglip_dir: Path) -> None:
    frames = _frames()
    model = transformers.SiglipVisionModel.from_pretrained(siglip_dir).eval()
    px = transformers.AutoImageProcessor.from_pretrained(siglip_dir, backend="pil")(images=list(frames), return_tensors="pt")
    net = get_backbone(f"hf:{siglip_dir}")
    assert net.feature_dim == 32
    assert (net.extract(frames) - model(**px).pooler_output).abs().max() <= 1e-5
    with pytest.raises(DataError, match="no projection"):
        get_backbone(f"hf:{siglip_dir}", hf_output="projected")


@torch.no_grad()
def test_extracted_file_holds_the_towers_features_of_the_decoded_frames(clip_dir: Path, tmp_path: Path) -> None:
    import h5py

    from hanet.data.synth import SynthConfig, generate
    from hanet.video.decode import decode_video

    world = tmp_path / "world"
    generate(world, SynthConfig.preset("quick", num_videos=8, novel_fraction=0.0, novel_pairs=0), progress=False)
    videos = sorted((world / "videos").glob("*.mp4"))[:3]
    out = tmp_path / "f.h5"
    assert main(["extract", *map(str, videos), "--out", str(out), "--backbone", f"hf:{clip_dir}", "--num-frames", "4",
                 "--motion", "--no-progress"]) == 0
    model = transformers.CLIPVisionModelWithProjection.from_pretrained(clip_dir).eval()
    proc = transformers.AutoImageProcessor.from_pretrained(clip_dir, backend="pil")
    with h5py.File(out) as f:
        assert int(f.attrs["feature_dim"]) == 48 and f.attrs["backbone"] == f"hf:{clip_dir.name}"
        for v in videos:
            d = decode_video(v, num_frames=4, size=SIZE, motion_gain=2.0)
            ref = [model(**proc(images=list(x), return_tensors="pt")).image_embeds for x in (d.frames, d.motion)]
            got = torch.from_numpy(f[v.stem][...].astype(np.float32))
            # stored as float16: equal to the float16 rounding of transformers' features
            assert (got - torch.cat(ref, 1).half().float()).abs().max() == 0


def _bad(folder: Path, what: str) -> Path:
    folder.mkdir()
    if what == "no config":
        (folder / "model.safetensors").write_bytes(b"")
    elif what == "no weights":
        _clip(folder)
        (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    elif what == "text model":
        cfg = transformers.CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                          num_attention_heads=4, vocab_size=99)
        transformers.CLIPTextModel(cfg).save_pretrained(folder)
    elif what == "other architecture":
        cfg = transformers.ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                                     image_size=SIZE, patch_size=8)
        transformers.ViTModel(cfg).save_pretrained(folder)
    elif what == "shapes":
        _clip(folder)
        cfg = json.loads((folder / "config.json").read_text())
        cfg["hidden_size"] = 48
        (folder / "config.json").write_text(json.dumps(cfg))
    return folder


@pytest.mark.parametrize("what, message", [
    ("no config", "no config.json"), ("no weights", "pickled weights are not read"),
    ("text model", "is a text model"), ("other architecture", "not a supported vision tower"),
    ("shapes", "do not"),
])
def test_bad_folders_are_named_exit_2_and_nothing_is_written(what: str, message: str, tmp_path: Path, capsys) -> None:
    folder = _bad(tmp_path / "tower", what)
    with pytest.raises(DataError, match=message) as e:
        get_backbone(f"hf:{folder}")
    assert str(folder) in str(e.value)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    out = tmp_path / "f.h5"
    assert main(["extract", str(video), "--out", str(out), "--backbone", f"hf:{folder}", "--no-progress"]) == 2
    assert message.split()[0] in capsys.readouterr().err and not out.exists()


def test_missing_folder_and_file_instead_of_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such model folder"):
        get_backbone(f"hf:{tmp_path / 'nope'}")
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        get_backbone(f"hf:{tmp_path / 'f'}")


def test_hanet_runs_without_transformers() -> None:
    code = ("import sys, builtins\n"
            "real = builtins.__import__\n"
            "def block(name, *a, **k):\n"
            "    if name.split('.')[0] == 'transformers': raise ImportError('blocked')\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = block\n"
            "from hanet.video.backbones import get_backbone\n"
            "net = get_backbone('efficientnet-lite0', image_size=32)\n"
            "import numpy as np\n"
            "print(net.extract(np.zeros((1, 32, 32, 3), np.uint8)).shape)\n"
            "from hanet.errors import DataError\n"
            "try:\n"
            "    get_backbone('hf:/nowhere')\n"
            "except DataError as e:\n"
            "    print('refused:', e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "torch.Size([1, 1280])" in res.stdout and "refused:" in res.stdout, res.stderr


@pytest.mark.slow
def test_a_clip_tower_through_train_index_and_search(clip_dir: Path, tmp_path: Path) -> None:
    from hanet.data.synth import SynthConfig, generate

    world = tmp_path / "world"
    generate(world, SynthConfig.preset("quick"), progress=False)
    feats = tmp_path / "features.hdf5"
    assert main(["extract", str(world / "videos"), "--out", str(feats), "--backbone", f"hf:{clip_dir}",
                 "--num-frames", "6", "--no-progress"]) == 0
    ann = tmp_path / "ann"
    assert main(["prepare", "--captions", str(world / "ref_captions.json"), "--train-names",
                 str(world / "trn_names.npy"), "--out", str(ann), "--num-verb-concepts", "16", "--num-noun-concepts",
                 "16", "--no-progress"]) == 0
    desc = {"splits": {s: {"names": str(world / f"{s}_names.npy"), "features": str(feats)} for s in ("trn", "val", "tst")},
            "captions": str(ann / "ref_captions.json"), "rolegraphs": str(ann / "sent2rolegraph.augment.json"),
            "word2int": str(ann / "word2int.json"),
            "concepts": {"verb": str(ann / "verb_gt.json"), "noun": str(ann / "noun_gt.json"),
                         "verb_all": str(ann / "verb_gt_all.json"), "noun_all": str(ann / "noun_gt_all.json")}}
    (tmp_path / "data.json").write_text(json.dumps(desc))
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "data.json"), "--preset", "clip", "--out", str(run), "--max-steps",
                 "4", "--epochs", "1", "--set", "model.num_verb_concepts=16", "--set", "model.num_noun_concepts=16",
                 "--set", "model.num_selected_verbs=4", "--set", "model.num_selected_nouns=4", "--no-progress"]) == 0
    cfg = json.loads((run / "run.json").read_text())["config"]
    assert cfg["model"]["video"]["dim_fts"] == [24]  # the file's width, read from it
    assert main(["index", "build", "--run", str(run), "--features", str(feats), "--out", str(tmp_path / "index"),
                 "--quiet", "--no-thumbnails"]) == 0
    caps = json.loads((world / "ref_captions.json").read_text())
    assert main(["search", str(tmp_path / "index"), next(iter(caps.values()))[0], "-k", "3"]) == 0
