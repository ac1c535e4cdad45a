"""Real files for the index and serve tests: a run directory, mp4 clips and their feature file.

* :func:`make_run` writes a run directory (``run.json`` + a checkpoint in the training format)
  of the reference model config, initialised with a seed: the index only needs *a* model, and
  two seeds give two different models (for the model-mismatch tests).
* :func:`make_corpus` writes H.264 clips with PyAV whose frame ``j`` is the gray level
  ``frame_level(j)`` (so a thumbnail tile can be checked), and an HDF5 feature file through
  ``hanet.data.features.FeatureWriter`` (the writer ``hanet extract`` uses) with random 64-d
  features, per-video timestamps and source paths; some videos have features but no file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hanet.parity import DEFAULT_REFERENCE as REFERENCE
RATE = 10
# frames per video: longer than max_frames (20: subsampled), equal, shorter, very short
LENGTHS = (30, 20, 12, 5, 2, 8, 26, 15, 9, 3, 20, 11, 7, 18, 4, 22)
WITH_FILES = 6


def frame_level(j: int) -> int:
    return 16 + 9 * (j % 26)


def reference_config():
    from hanet.config import HANetConfig

    return HANetConfig.from_official(json.loads((REFERENCE / "model_config.json").read_text()), name="reference")


def make_run(path: Path, seed: int = 0, variant: str = "hanet") -> Path:
    """A run directory holding a seeded (untrained) model of the reference config."""
    import torch

    from hanet.model import HANet
    from hanet.io import atomic_torch_save
    from hanet.run import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, RunDir, RunInfo

    cfg = reference_config()
    model = HANet(cfg.model, variant=variant, seed=seed).eval()
    # Untrained BatchNorm statistics are (0, 1); spread them so concept probabilities vary.
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.02 + 0.01)
    rd = RunDir(path)
    rd.write_info(RunInfo(cfg, variant, str(REFERENCE / "data"), time.time()))
    atomic_torch_save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "tag": "best",
                       "config": cfg.to_dict(), "variant": variant, "model": model.state_dict()}, rd.best)
    return path


def write_clip(path: Path, n: int, size: tuple[int, int] = (64, 48)) -> Path:
    import av

    w, h = size
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=RATE)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.options = {"crf": "10"}
    for j in range(n):
        frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), frame_level(j), np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@dataclass
class Corpus:
    features: Path
    videos: Path
    captions: Path
    names: list[str]
    lengths: dict[str, int]


def make_corpus(root: Path, lengths: tuple[int, ...] = LENGTHS, with_files: int = WITH_FILES,
                prefix: str = "clip", seed: int = 0) -> Corpus:
    from hanet.data.features import FeatureWriter

    root.mkdir(parents=True, exist_ok=True)
    videos = root / "videos"
    videos.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"{prefix}{i:02d}" for i in range(len(lengths))]
    store = FeatureWriter(str(root / "feats.hdf5"), {"hanet_features": 1, "backbone": "test", "feature_dim": 64,
                                                     "image_size": 64, "sampling": "num_frames=None",
                                                     "dtype": "float32", "weights": "test"})
    for i, (name, n) in enumerate(zip(names, lengths)):
        src = videos / f"{name}.mp4"
        if i < with_files:
            write_clip(src, n)
        feats = rng.normal(size=(n, 64)).astype(np.float32)
        store.add(name, feats, {"timestamps": np.arange(n, dtype=np.float64) / RATE, "source": str(src),
                                "duration": n / RATE, "width": 64, "height": 48})
    store.close()
    words = [f"w{i}" for i in range(100)]
    caps = {n: [" ".join(rng.choice(words, size=int(rng.integers(4, 9)))) for _ in range(2)] for n in names}
    (root / "captions.json").write_text(json.dumps(caps))
    return Corpus(root / "feats.hdf5", videos, root / "captions.json", names, dict(zip(names, lengths)))


#: A query of corpus words (the corpus captions are random words of the reference vocabulary).
QUERY = "w3 w17 w42 w8 w55"


def padded(corpus, names, T):
    from hanet.data.formats import FeatureStore, pad_or_subsample

    store = FeatureStore([corpus.features])
    items = [pad_or_subsample(store.get(n), T) for n in names]
    store.close()
    return torch.from_numpy(np.stack([x for x, _ in items])), torch.tensor([n for _, n in items])


def arrays(index, names):
    from hanet.index.storage import VIDEO_FLOAT_FIELDS

    rows = np.array([index.row(n) for n in names])
    return {f: index.videos.gather(f, rows) for f in VIDEO_FLOAT_FIELDS + ("lengths", "top_verbs", "noun_peaks")}
