"""End-to-end evaluation time: encode every video and caption once, score, rank.

    python benchmarks/bench_eval.py --videos 300 --captions-per-video 20          # CPU, 300 x 6,000
    python benchmarks/bench_eval.py --videos 2990 --device cuda                    # full MSR-VTT shape
    python benchmarks/bench_eval.py --videos 300 --official PATH                   # vs the official code

Random weights (MSR-VTT config: 2048-d features, 1024-d space, 20 frames) and a random dataset
in the released format on disk (benchmarks/synthetic_dataset.py). The official evaluation runs
its own reader and ``evaluate`` on the same files when ``--official`` names a checkout of
Roc-Ng/HANet. Peak memory is the process's max RSS, plus the CUDA allocator's peak on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_model import official_model_json  # noqa: E402
from synthetic_dataset import make_dataset  # noqa: E402


def ours(data_dir: str, device: str, batch: int, budget: int, per_score: bool) -> dict:
    from hanet.config import HANetConfig
    from hanet.data.dataset import RetrievalData
    from hanet.data.formats import DatasetSpec
    from hanet.evaluate import evaluate_split
    from hanet.model import HANet

    cfg = HANetConfig.from_official(official_model_json())
    model = HANet(cfg.model, seed=0).to(device)
    data = RetrievalData(DatasetSpec.load(data_dir), "tst", cfg.model)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    res = evaluate_split(model, data, device=device, batch_size=batch, per_score=per_score, pair_budget=budget,
                         progress=False)
    secs = time.perf_counter() - t
    out = {"impl": "ours", "seconds": secs, "rsum": res.metrics["fused"]["rsum"], "metrics": res.metrics["fused"],
           "videos": len(data.names), "captions": len(data.unique_captions)}
    if device.startswith("cuda"):
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def official(data_dir: str, path: str) -> dict:
    sys.path.insert(0, path)
    import t2vretrieval.models.mlmatch as M
    import t2vretrieval.readers.rolegraphs as R
    from torch.utils.data import DataLoader

    cfg = M.RoleGraphMatchModelConfig()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(official_model_json(), f)
    cfg.load(f.name)
    d = data_dir + "/"
    torch.manual_seed(0)  # the same weights as ours (HANet(seed=0) replays the official init)
    with contextlib.redirect_stdout(io.StringIO()):
        model = M.RoleGraphMatchModel(cfg, _logger=None)
        ds = R.RoleGraphDataset(d + "tst_names.npy", [d + "tst_ft.hdf5"], d + "word2int.json", 30, 4, 6,
                                d + "ref_captions.json", d + "sent2rolegraph.augment.json", max_attn_len=20)
    reader = DataLoader(ds, batch_size=cfg.tst_batch_size, shuffle=False, collate_fn=R.collate_graph_fn)
    model.eval_start()
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        metrics = model.evaluate(reader)
    secs = time.perf_counter() - t
    return {"impl": "official", "seconds": secs, "rsum": metrics["rsum"], "metrics": dict(metrics), "videos": len(ds.names),
            "captions": len(ds.captions)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=300)
    p.add_argument("--captions-per-video", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=300, help="encoding batch (official tst_batch_size)")
    p.add_argument("--pair-budget", type=int, default=400_000)
    p.add_argument("--fused-only", action="store_true", help="skip the per-score tables (less memory)")
    p.add_argument("--official", help="checkout of Roc-Ng/HANet to compare against (CPU)")
    p.add_argument("--data", help="reuse a dataset folder made by synthetic_dataset.py")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        kind, data_dir = a.child
        r = (ours(data_dir, a.device, a.batch_size, a.pair_budget, not a.fused_only) if kind == "ours"
             else official(data_dir, a.official))
        r["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(r))
        return
    data_dir = a.data or tempfile.mkdtemp(prefix="hanet-bench-eval-")
    if not (Path(data_dir) / "tst_names.npy").is_file():
        t = time.time()
        make_dataset(data_dir, a.videos, a.captions_per_video)
        print(f"dataset: {data_dir} ({time.time() - t:.0f} s to generate)")
    print(f"device {a.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    base = [sys.executable, __file__, "--device", a.device, "--batch-size", str(a.batch_size),
            "--pair-budget", str(a.pair_budget)] + (["--fused-only"] if a.fused_only else [])
    results = {}
    for kind in ["ours"] + (["official"] if a.official else []):
        cmd = base + (["--official", a.official] if a.official else []) + ["--child", kind, data_dir]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results[kind] = r
        extra = f", CUDA peak {r['cuda_peak_mib']:.0f} MiB" if "cuda_peak_mib" in r else ""
        print(f"{kind:<9} {r['videos']} videos x {r['captions']} captions: {r['seconds']:.2f} s "
              f"(rsum {r['rsum']:.2f}), peak RSS {r['peak_rss_mib']:.0f} MiB{extra}")
    if "official" in results:
        mo, mu = results["official"]["metrics"], results["ours"]["metrics"]
        diff = {k: (mo[k], mu[k]) for k in mo if mo[k] != mu.get(k)}
        print(f"speed-up: {results['official']['seconds'] / results['ours']['seconds']:.1f}x; metrics "
              + ("identical" if not diff else f"differ (official, ours): {diff}") + " (same seed-0 weights, same files)")


if __name__ == "__main__":
    main()
