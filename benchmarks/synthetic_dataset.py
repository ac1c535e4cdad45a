"""A random dataset in the released MSR-VTT format, at any size, for benchmarks.

    python benchmarks/synthetic_dataset.py OUT_DIR --videos 2990 --captions-per-video 20

Features are random (float32), captions random words of a 10,510-word vocabulary, role graphs
random but well formed (1-3 verbs with 1-2 arguments each), concept files random. Only shapes
and formats are realistic; the point is timing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np


def make_dataset(out: str | Path, videos: int = 300, captions_per_video: int = 20, dim: int = 2048,
                 frames: tuple[int, int] = (20, 40), words: int = 10510, splits: tuple[str, ...] = ("tst",),
                 seed: int = 0) -> Path:
    """Write the dataset; every split gets ``videos`` videos. Returns the folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab = ["<bos>", "<eos>", "<unk>"] + [f"w{i}" for i in range(words - 3)]
    (out / "word2int.json").write_text(json.dumps({w: i for i, w in enumerate(vocab)}))
    np.save(out / "int2word.npy", np.array(vocab))
    captions: dict[str, list[str]] = {}
    graphs: dict[str, list] = {}
    verb_gt, noun_gt, verb_all, noun_all = {}, {}, {}, {}
    for split in splits:
        names = [f"{split}{i}" for i in range(videos)]
        np.save(out / f"{split}_names.npy", np.array(names))
        with h5py.File(out / f"{split}_ft.hdf5", "w") as h:
            for n in names:
                t = int(rng.integers(frames[0], frames[1] + 1))
                h.create_dataset(n, data=rng.standard_normal((t, dim)).astype(np.float32))
        for n in names:
            caps = []
            for _ in range(captions_per_video):
                length = int(rng.integers(6, 16))
                ws = [vocab[i] for i in rng.integers(3, words, length)]
                cap = " ".join(ws)
                caps.append(cap)
                graphs[cap] = _random_graph(ws, rng)
            captions[n] = caps
            verb_gt[n] = [sorted(set(rng.integers(0, 512, 2).tolist())) for _ in caps]
            noun_gt[n] = [sorted(set(rng.integers(0, 1024, 3).tolist())) for _ in caps]
            verb_all[n] = {str(i): 1.0 for lst in verb_gt[n] for i in lst}
            noun_all[n] = {str(i): 1.0 for lst in noun_gt[n] for i in lst}
    (out / "ref_captions.json").write_text(json.dumps(captions))
    (out / "sent2rolegraph.augment.json").write_text(json.dumps(graphs))
    for name, obj in (("verb_gt", verb_gt), ("noun_gt", noun_gt), ("verb_gt_all", verb_all), ("noun_gt_all", noun_all)):
        (out / f"{name}.json").write_text(json.dumps(obj))
    return out


def _random_graph(ws: list[str], rng: np.random.Generator) -> list:
    n = len(ws)
    nodes = {"ROOT": {"role": "ROOT", "spans": list(range(n)), "words": ws}}
    edges = []
    k = 1
    for _ in range(int(rng.integers(1, 4))):
        v = int(rng.integers(0, n))
        nodes[str(k)] = {"role": "V", "spans": [v], "words": [ws[v]]}
        vk = str(k)
        k += 1
        for role in rng.choice(["ARG0", "ARG1", "ARG2", "ARGM-LOC"], int(rng.integers(1, 3)), replace=False):
            s = int(rng.integers(0, n - 1))
            nodes[str(k)] = {"role": str(role), "spans": [s, s + 1], "words": ws[s:s + 2]}
            edges.append([vk, str(k), str(role)])
            k += 1
    return [nodes, edges]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--videos", type=int, default=300)
    p.add_argument("--captions-per-video", type=int, default=20)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--splits", default="tst")
    a = p.parse_args()
    print(make_dataset(a.out, a.videos, a.captions_per_video, a.dim, splits=tuple(a.splits.split(","))))
