"""Training throughput at MSR-VTT shape with data loading included (HDF5 on disk, workers on).

    python benchmarks/bench_train_throughput.py --steps 20                 # CPU
    python benchmarks/bench_train_throughput.py --steps 200 --device cuda  # GPU

Runs ``hanet train`` itself (random MSR-VTT-shaped dataset from benchmarks/synthetic_dataset.py,
features read from HDF5 by DataLoader workers, no preloading) and reports pairs/s from the
training log, next to what the data pipeline alone delivers: if the loader is much faster
than training, the accelerator never waits for data.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_dataset import make_dataset  # noqa: E402


def loader_pairs_per_s(data_dir: str, workers: int, batch: int, batches: int) -> float:
    from torch.utils.data import DataLoader

    from hanet.config import get_preset
    from hanet.data.dataset import PairDataset, RetrievalData, collate_pairs
    from hanet.data.formats import DatasetSpec

    cfg = get_preset("msrvtt").model
    data = RetrievalData(DatasetSpec.load(data_dir), "trn", cfg, with_concepts=True)
    loader = DataLoader(PairDataset(data), batch_size=batch, shuffle=True, collate_fn=collate_pairs,
                        num_workers=workers, prefetch_factor=4 if workers else None)
    it = iter(loader)
    next(it)  # worker start-up
    t = time.perf_counter()
    n = 0
    for _ in range(batches):
        b = next(it)
        n += len(b.video.names)
    return n / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=500)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--data", help="reuse a dataset folder")
    a = p.parse_args()
    data_dir = a.data or tempfile.mkdtemp(prefix="hanet-bench-train-")
    if not (Path(data_dir) / "trn_names.npy").is_file():
        make_dataset(data_dir, a.videos, 20, splits=("trn",))
    from hanet.cli import main as hanet

    run = Path(tempfile.mkdtemp(prefix="hanet-bench-run-")) / "run"
    rc = hanet(["train", "--data", data_dir, "--out", str(run), "--preset", "msrvtt", "--max-steps", str(a.steps),
                "--num-workers", str(a.workers), "--device", a.device, "--preload", "never", "--log-every", "1",
                "--batch-size", str(a.batch_size), "--precision", a.precision, "--val-split", "none", "--no-progress"])
    if rc:
        raise SystemExit(rc)
    recs = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    times = [r["time"] for r in recs if r["kind"] == "train"]
    skip = min(3, len(times) - 2)  # warm-up steps
    train_rate = a.batch_size * (len(times) - 1 - skip) / (times[-1] - times[skip])
    load_rate = loader_pairs_per_s(data_dir, a.workers, a.batch_size, max(10, a.steps))
    print(f"device {a.device}, batch {a.batch_size}, workers {a.workers}, precision {a.precision}")
    print(f"training (data loading included): {train_rate:8.1f} pairs/s over {len(times) - 1 - skip} steps")
    print(f"data pipeline alone:              {load_rate:8.1f} pairs/s "
          f"({load_rate / train_rate:.1f}x the training rate)")


if __name__ == "__main__":
    main()
