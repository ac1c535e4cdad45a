"""How long ``hanet synth`` takes to make the default world (and where the time goes).

Prints, per number of worker processes, the wall time of :func:`hanet.data.synth.generate` on a
fresh directory (plan = sampling scenes and captions; draw+encode = rasterising and writing mp4),
then a per-clip split of drawing vs encoding measured in this process on the first clips, and
the oracle difficulty of the test splits.

Usage::

    .venv/bin/python benchmarks/bench_synth.py                   # default preset, 1 and 2 workers
    .venv/bin/python benchmarks/bench_synth.py --preset quick --workers 1
    .venv/bin/python benchmarks/bench_synth.py --videos 2000 --workers 4
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--videos", type=int, help="override the preset's number of clips")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-clips", type=int, default=100,
                        help="clips timed for the draw/encode split")
    args = parser.parse_args(argv)

    import numpy as np

    from hanet.data.synth import SynthConfig, generate, oracle_recall
    from hanet.data.synth.render import noise_bank, render_clip
    from hanet.data.synth.world import plan_world, video_seed
    from hanet.data.synth.writer import write_mp4

    cfg = SynthConfig.preset(args.preset)
    if args.videos:
        cfg = cfg.replace(num_videos=args.videos)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# bench_synth: preset {args.preset}, {cfg.num_videos} clips of {cfg.num_frames} "
          f"frames {cfg.width}x{cfg.height} @ {cfg.fps:g} fps; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, load {load:.2f}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        last = None
        for workers in args.workers:
            out = Path(tmp) / f"w{workers}"
            t0 = time.perf_counter()
            report = generate(out, cfg, seed=args.seed, progress=False, workers=workers)
            wall = time.perf_counter() - t0
            print(f"workers={workers}: {wall:6.1f} s total (plan {report.plan_seconds:.1f} s, "
                  f"draw+encode {report.render_seconds:.1f} s = "
                  f"{1e3 * report.render_seconds / cfg.num_videos:.1f} ms/clip), "
                  f"{report.bytes / 1e6:.1f} MB")
            last = out

        plan = plan_world(cfg, args.seed)
        n = min(args.split_clips, len(plan.videos))
        bank = noise_bank(args.seed, cfg.height, cfg.width)
        t0 = time.perf_counter()
        clips = [render_clip(v.annotation, cfg.noise_std, cfg.antialias,
                             np.random.default_rng(video_seed(args.seed, i, 3)), bank)
                 for i, v in enumerate(plan.videos[:n])]
        t_draw = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        for i, frames in enumerate(clips):
            write_mp4(Path(tmp) / f"split{i}.mp4", frames, cfg.fps, cfg.crf)
        t_enc = (time.perf_counter() - t0) / n
        print(f"per clip (first {n}, one process): draw {1e3 * t_draw:.1f} ms, "
              f"encode {1e3 * t_enc:.1f} ms")

        assert last is not None
        for split in ("tst", "tst_novel"):
            r = oracle_recall(last, split)
            if r["clips"]:
                print(f"oracle R@1 on {split} ({r['clips']} clips): appearance words "
                      f"{r['appearance']:.3f}, all words {r['words']:.3f}, chance "
                      f"{1 / r['clips']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
