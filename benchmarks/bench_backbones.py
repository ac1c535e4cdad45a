"""Frames per second and peak memory of the frame backbones on this machine's CPU.

Random towers of the real sizes, built by transformers from its config classes (CLIP ViT-B/32:
``CLIPVisionConfig()``'s defaults, 224 px, patch 32, 12 layers of 768; SigLIP base:
``SiglipVisionConfig()``'s, 224 px, patch 16), saved to a temporary folder and loaded through
``--backbone hf:PATH`` as a user's downloaded folder would be; EfficientNet-Lite0 (ImageNet
weights) beside them at 224 and 128 px. Each backbone runs in its own process, so its peak
resident memory is its own. Random weights cost the same as trained ones.

Usage::

    .venv/bin/python benchmarks/bench_backbones.py                   # writes benchmarks/results/backbones.json
    .venv/bin/python benchmarks/bench_backbones.py --frames 64 --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "backbones.json"


def _one(name: str, frames: int, batch: int, threads: int) -> dict:
    import numpy as np
    import torch

    from hanet.video.backbones import get_backbone

    torch.set_num_threads(threads)
    size = None
    if name.startswith("efficientnet-lite0@"):
        name, size = "efficientnet-lite0", int(name.split("@")[1])
    net = get_backbone(name, image_size=size)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (batch, net.image_size, net.image_size, 3), dtype=np.uint8)
    net.extract(data)  # warm-up
    t = time.perf_counter()
    done = 0
    while done < frames:
        net.extract(data)
        done += batch
    sec = time.perf_counter() - t
    return {"frames_per_second": round(done / sec, 2), "image_size": net.image_size,
            "feature_dim": net.feature_dim, "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _towers(folder: Path) -> dict[str, Path]:
    import torch
    import transformers

    torch.manual_seed(0)
    out = {}
    clip = folder / "clip-vit-b-32"
    transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig()).save_pretrained(clip)
    transformers.CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
                                    ).save_pretrained(clip)
    out["CLIP ViT-B/32 (random)"] = clip
    sig = folder / "siglip-base"
    transformers.SiglipVisionModel(transformers.SiglipVisionConfig()).save_pretrained(sig)
    transformers.SiglipImageProcessor(size={"height": 224, "width": 224}).save_pretrained(sig)
    out["SigLIP base (random)"] = sig
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=96, help="frames per backbone (default 96)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)")
    ap.add_argument("--out", default=str(RESULTS), help="results JSON")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.frames, args.batch_size, args.threads)))
        return
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        named = {"EfficientNet-Lite0, 224 px": "efficientnet-lite0@224",
                 "EfficientNet-Lite0, 128 px": "efficientnet-lite0@128"}
        named.update({k: f"hf:{v}" for k, v in _towers(Path(tmp)).items()})
        for label, name in named.items():
            res = subprocess.run([sys.executable, __file__, "--one", name, "--frames", str(args.frames),
                                  "--batch-size", str(args.batch_size), "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True)
            rows[label] = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"{label:<30} {rows[label]['frames_per_second']:8.1f} frames/s   "
                  f"peak {rows[label]['peak_rss_mib']} MiB   {rows[label]['feature_dim']}-d", flush=True)
    out = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "threads": args.threads, "python": platform.python_version()},
           "command": "python benchmarks/bench_backbones.py " + " ".join(sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d"), "frames": args.frames, "batch_size": args.batch_size, "backbones": rows}
    try:
        import torch
        import transformers

        out["machine"].update(torch=torch.__version__, transformers=transformers.__version__)
    except ImportError:
        pass
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
