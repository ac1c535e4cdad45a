"""Speed of HANet at MSR-VTT shapes: one training step, and scoring throughput.

Shapes: 2048-d frame features, 20 frames, 30-word captions, 10,510 words, 1024-d joint space,
batch 64; scoring a block of 300 videos x 6,000 captions (encodings precomputed, the seven
scores and the fused matrix computed as evaluation does).

    python benchmarks/bench_model.py                       # ours, CPU
    python benchmarks/bench_model.py --device cuda         # ours, GPU
    python benchmarks/bench_model.py --official PATH       # also the official code, same process

``--official`` takes a checkout of github.com/Roc-Ng/HANet (not shipped with hanet); the same
random inputs go through both implementations, alternating, so that both see the same machine.
Each measured part runs in a fresh subprocess so its peak memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

B, T, D, L, WORDS, DIM = 64, 20, 2048, 30, 10510, 1024
NV, NN = 4, 6


def official_model_json() -> dict:
    """The official MSR-VTT model.json values (data/msrvtt/model.json of Roc-Ng/HANet)."""
    enc = {"freeze": False, "lr_mult": 1.0, "opt_alg": "Adam", "weight_decay": 0}
    return {"subcfgs": {
        "video_encoder": {**enc, "dim_fts": [D], "dim_embed": DIM, "dropout": 0.2, "num_levels": 3, "share_enc": False},
        "text_encoder": {**enc, "num_words": WORDS, "dim_word": 300, "fix_word_embed": False, "rnn_type": "gru",
                         "bidirectional": True, "rnn_hidden_size": DIM, "num_layers": 1, "dropout": 0.2,
                         "num_roles": 16, "gcn_num_layers": 1, "gcn_attention": True, "gcn_dropout": 0.5}},
        "trn_batch_size": B, "tst_batch_size": 300, "num_epoch": 50, "val_per_epoch": True, "save_per_epoch": True,
        "val_iter": -1, "save_iter": -1, "monitor_iter": -1, "summary_iter": 1000, "base_lr": 1e-4,
        "decay_schema": None, "decay_boundarys": [], "decay_rate": 1, "max_frames_in_video": T,
        "max_words_in_sent": L, "margin": 0.2, "max_violation": True, "hard_topk": 1, "loss_direction": "bi",
        "num_verbs": NV, "num_nouns": NN, "attn_fusion": "embed", "simattn_sigma": 4, "loss_weights": None}


def random_batch(n: int, seed: int) -> dict:
    """A collated batch in the official reader's format (numpy), realistic lengths and graphs."""
    rng = np.random.default_rng(seed)
    lens = np.full(n, T)
    lens[: n // 5] = rng.integers(8, T, n // 5)  # a few short videos
    fts = rng.standard_normal((n, T, D)).astype(np.float32) * (np.arange(T)[None, :, None] < lens[:, None, None])
    slen = rng.integers(6, L + 1, n)
    slen[0] = L
    ids = rng.integers(3, WORDS, (n, L))
    vm = np.zeros((n, NV, L), bool)
    nm = np.zeros((n, NN, L), bool)
    roles = np.zeros((n, NV + NN), np.int64)
    edges = np.zeros((n, 1 + NV + NN, 1 + NV + NN), np.float32)
    for i in range(n):
        nv, nn_ = int(rng.integers(1, NV + 1)), int(rng.integers(1, NN + 1))
        for k in range(nv):
            vm[i, k, rng.integers(0, slen[i])] = True
            roles[i, k] = 0
            edges[i, 1 + k, 0] = 1
        for k in range(nn_):
            s = int(rng.integers(0, slen[i] - 1))
            nm[i, k, s:s + 2] = True
            roles[i, NV + k] = int(rng.integers(1, 16))
            v = 1 + int(rng.integers(0, nv))
            edges[i, v, 1 + NV + k] = edges[i, 1 + NV + k, v] = 1
        rows = edges[i].sum(1, keepdims=True)
        edges[i] = np.where(rows > 0, edges[i] / np.maximum(rows, 1), 0)
    vl = (rng.random((n, 512)) < 0.01).astype(np.float32)
    nl = (rng.random((n, 1024)) < 0.01).astype(np.float32)
    return {"attn_fts": fts, "attn_lens": lens, "sent_ids": ids, "sent_lens": slen, "verb_masks": vm,
            "noun_masks": nm, "node_roles": roles, "rel_edges": edges, "verb_concept_label": vl,
            "noun_concept_label": nl, "verb_concept_mask": np.ones_like(vl), "noun_concept_mask": np.ones_like(nl)}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------- children
def child_train(impl: str, device: str, steps: int, official: str | None) -> dict:
    batch = random_batch(B, 0)
    torch.manual_seed(0)
    if impl == "ours":
        from hanet.config import HANetConfig
        from hanet.data.batch import TrainBatch
        from hanet.model import HANet

        cfg = HANetConfig.from_official(official_model_json())
        model = HANet(cfg.model, seed=0).to(device).train()
        from hanet.train import make_optimizer

        opt = make_optimizer(model, 1e-4)  # what `hanet train` uses (fused Adam)
        tb = TrainBatch.from_official(batch)

        def step():
            b = tb.to(device)
            opt.zero_grad(set_to_none=True)
            model(b).loss.backward()
            opt.step()
    else:
        sys.path.insert(0, official)
        import t2vretrieval.models.mlmatch as M

        cfg = M.RoleGraphMatchModelConfig()
        cfg_path = Path("/tmp/hanet_bench_model.json")
        cfg_path.write_text(json.dumps(official_model_json()))
        cfg.load(str(cfg_path))
        import io
        import contextlib

        with contextlib.redirect_stdout(io.StringIO()):
            model = M.RoleGraphMatchModel(cfg, _logger=None)
        model.train_start()

        def step():
            model.train_one_batch(batch, None)
    times = []
    for i in range(steps + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t)
    return {"impl": impl, "what": "train_step", "median_ms": 1000 * float(np.median(times)),
            "min_ms": 1000 * float(np.min(times)), "steps": steps, "peak_rss_mib": peak_rss_mib()}


def child_score(impl: str, device: str, nv: int, nc: int, official: str | None, budget: int) -> dict:
    torch.manual_seed(0)
    vids = random_batch(nv, 1)
    caps = random_batch(300, 2)  # 300 distinct captions, tiled to nc (their encoding is not timed)
    if impl == "ours":
        from hanet.config import HANetConfig
        from hanet.data.batch import TrainBatch
        from hanet.evaluate import encode_videos, score_matrices
        from hanet.model import HANet

        cfg = HANetConfig.from_official(official_model_json())
        model = HANet(cfg.model, seed=0).to(device).eval()
        with torch.no_grad():
            vb = TrainBatch.from_official({**vids, "verb_concept_label": vids["verb_concept_label"]}).video
            videos = encode_videos(model, [vb], device)
            text = model.encode_text(TrainBatch.from_official(caps).text.to(device))
        batches = [text] * (nc // 300)  # encoded once, outside the timing (as for the official code)
        rss0 = peak_rss_mib()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        score_matrices(model, videos, batches, nc, device, names=["fused"], pair_budget=budget, progress=False)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        secs = time.perf_counter() - t
    else:
        sys.path.insert(0, official)
        import contextlib
        import io

        import t2vretrieval.models.mlmatch as M

        cfg = M.RoleGraphMatchModelConfig()
        cfg_path = Path("/tmp/hanet_bench_model.json")
        cfg_path.write_text(json.dumps(official_model_json()))
        cfg.load(str(cfg_path))
        with contextlib.redirect_stdout(io.StringIO()):
            model = M.RoleGraphMatchModel(cfg, _logger=None)
        model.eval_start()
        vid_out = model.forward_video_embed(vids)
        cap_out = model.forward_text_embed(caps)
        rss0 = peak_rss_mib()
        t = time.perf_counter()
        for _ in range(nc // 300):  # the official evaluation scores 300-caption batches
            outs = dict(cap_out)
            outs.update(vid_out)
            scores = model.generate_scores(**outs)
            _ = [s.data.cpu().numpy() for s in scores]
        secs = time.perf_counter() - t
    return {"impl": impl, "what": "score", "videos": nv, "captions": nc, "seconds": secs,
            "pairs_per_s": nv * nc / secs, "peak_rss_mib": peak_rss_mib(), "rss_before_scoring_mib": rss0}


def run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--what", default="train,score")
    p.add_argument("--device", default="cpu")
    p.add_argument("--official", help="path to a checkout of Roc-Ng/HANet to compare against")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--videos", type=int, default=300)
    p.add_argument("--captions", type=int, default=6000)
    p.add_argument("--pair-budget", type=int, default=400_000)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.child:
        kind, impl = a.child[:2]
        res = (child_train(impl, a.device, a.steps, a.official) if kind == "train"
               else child_score(impl, a.device, a.videos, a.captions, a.official, a.pair_budget))
        print(json.dumps(res))
        return
    impls = ["ours"] + (["official"] if a.official else [])
    common = ["--device", a.device, "--steps", str(a.steps), "--videos", str(a.videos), "--captions",
              str(a.captions), "--pair-budget", str(a.pair_budget), "--threads", str(a.threads)]
    if a.official:
        common += ["--official", a.official]
    print(f"device {a.device}, torch {torch.__version__}, threads {a.threads or torch.get_num_threads()}")
    results = {}
    for what in a.what.split(","):
        for impl in impls:
            r = run_child([what, impl, *common])
            results[(what, impl)] = r
            if what == "train":
                print(f"train step   {impl:<9} median {r['median_ms']:8.1f} ms  (min {r['min_ms']:.1f}, "
                      f"{r['steps']} steps, batch {B})  peak RSS {r['peak_rss_mib']:.0f} MiB")
            else:
                print(f"scoring      {impl:<9} {r['videos']}x{r['captions']} in {r['seconds']:7.2f} s = "
                      f"{r['pairs_per_s'] / 1e3:8.1f} k pairs/s  peak RSS {r['peak_rss_mib']:.0f} MiB "
                      f"(+{r['peak_rss_mib'] - r['rss_before_scoring_mib']:.0f} MiB while scoring)")
    if a.official:
        for what, key, better in (("train", "median_ms", "lower"), ("score", "seconds", "lower")):
            if (what, "ours") in results and (what, "official") in results:
                ratio = results[(what, "official")][key] / results[(what, "ours")][key]
                print(f"speed-up {what}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
