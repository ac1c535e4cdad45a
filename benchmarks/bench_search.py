"""Search speed at scale, and how often two-stage search returns the exact top-10.

Two measurements:

``synthetic`` — latency, memory and throughput on an index of N synthetic videos::

    python benchmarks/bench_search.py synthetic --videos 100000 --dims synth
    python benchmarks/bench_search.py synthetic --videos 100000 --dims msrvtt   # 1024-d, ~15 GB on disk

  A model of the preset's dimensions (random weights; English vocabulary of the query
  generator) and N videos of random encodings (written through the index writer: float16
  records, FAISS first stage) make an index. Then, in a fresh process (so its memory
  is the search's alone): distinct English queries one after another, each the whole path
  (normalise, spaCy role graph, text encoder, FAISS, full HANet scoring of the candidates, the
  seven scores of the top k); p50/p99 latency, the median of each stage, resident memory (VmRSS,
  peak VmHWM). Then ``hanet serve`` on 127.0.0.1 with its default limits and C client threads that
  each send R searches (bounded loops that stop by themselves): requests per second, latency
  under load, errors.

``agreement`` — on an index built from a trained run, for every caption of a caption file as a
query: whether the two-stage top-k equals the exhaustive top-k (same videos, same order), at the
default candidate count and at smaller ones, plus R@1/5/10 of both modes when the caption file
says which video each caption belongs to::

    python benchmarks/bench_search.py agreement --index IDX --queries ref_captions.json \\
        [--rolegraphs sent2rolegraph.augment.json] [--names tst_names.npy] [--sweep 10,25,50,100]

Timings are wall-clock on whatever else the machine is running: report the best of several runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np

SUBJECTS = ["a man", "a woman", "a boy", "a girl", "two kids", "a dog", "a cat", "a chef", "a player", "a singer",
            "an old man", "a young woman", "a red ball", "a blue car", "a small bird", "a horse", "a team",
            "a group of people", "a baby", "a robot", "a monkey", "a police officer", "a teacher", "a band"]
VERBS = ["is playing", "is riding", "is cooking", "is talking about", "is throwing", "is holding", "is driving",
         "is cutting", "is singing", "is dancing with", "is painting", "is fixing", "is eating", "is watching",
         "is chasing", "is carrying", "is opening", "is pushing", "bounces", "jumps over", "runs past", "climbs",
         "kicks", "catches"]
OBJECTS = ["a guitar", "a bike", "some vegetables", "a car", "a ball", "a cake", "the fence", "a horse",
           "a song", "a picture", "a phone", "a box", "the door", "a toy", "a piano", "a pizza", "a kite",
           "the stairs", "a tree", "a boat"]
PLACES = ["", "", "in the kitchen", "on a stage", "in the park", "on the street", "at the beach", "in a room",
          "on a field", "in the snow", "at night", "in the rain", "on a table", "in a studio"]
DIMS = {"synth": "synth", "msrvtt": "msrvtt"}


def queries(n: int, seed: int = 0) -> list[str]:
    """n distinct English queries."""
    rng = np.random.default_rng(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        q = " ".join(x for x in (SUBJECTS[rng.integers(len(SUBJECTS))], VERBS[rng.integers(len(VERBS))],
                                 OBJECTS[rng.integers(len(OBJECTS))], PLACES[rng.integers(len(PLACES))]) if x)
        out[q] = None
    return list(out)


def vocabulary() -> dict[str, int]:
    words = sorted({w for group in (SUBJECTS, VERBS, OBJECTS, PLACES) for phrase in group for w in phrase.split()})
    return {"<bos>": 0, "<eos>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}


def rss_mib(pid: Optional[int] = None) -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon (heap, buffers) and RssFile (mapped files: libraries, FAISS lists) of a process, MiB."""
    out = {}
    with open(f"/proc/{pid or 'self'}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs), p))


# ---------------------------------------------------------------------- building a synthetic index
def random_model(dims: str, seed: int = 0):
    """(config, vocabulary, model) of a randomly initialised HANet of a preset's dimensions."""
    import torch

    from hanet.config import get_preset
    from hanet.model import HANet

    cfg = get_preset(DIMS[dims])
    vocab = vocabulary()
    cfg.model.text.num_words = len(vocab)
    torch.manual_seed(seed)
    return cfg, vocab, HANet(cfg.model, seed=seed).eval()


def build_synthetic(out: Path, n: int, dims: str, seed: int = 0, chunk: int = 2000) -> Path:
    """An index of n random videos for a random model of the preset's dimensions."""

    from hanet.index.build import IndexWriter, create_index
    from hanet.index.storage.values import precompute
    from hanet.index.storage import field_shapes

    cfg, vocab, model = random_model(dims, seed)
    idx = out / "index"
    if idx.exists():
        shutil.rmtree(idx)
    create_index(idx, model, cfg, vocab, source=f"random {dims} model (seed {seed})")
    mc = cfg.model
    shapes = field_shapes(mc, "videos")
    rng = np.random.default_rng(seed)
    T = mc.max_frames_in_video
    names = [f"v{i:07d}" for i in range(n)]
    t0 = time.time()

    def batches(ids: list[str]):
        for s in range(0, len(ids), chunk):
            m = len(ids[s:s + chunk])
            f: dict[str, np.ndarray] = {}
            for name, (shape, dt) in shapes.items():
                if dt != "float16":
                    continue
                if name.endswith("probs"):
                    f[name] = (1 / (1 + np.exp(-rng.standard_normal((m,) + shape, dtype=np.float32) * 2 + 1)))
                else:
                    f[name] = rng.standard_normal((m,) + shape, dtype=np.float32).astype(np.float16)
            f["lengths"] = rng.integers(T // 2, T + 1, m).astype(np.int32)
            f["top_verbs"] = rng.integers(0, mc.num_verb_concepts, (m,) + shapes["top_verbs"][0]).astype(np.int32)
            f["top_nouns"] = rng.integers(0, mc.num_noun_concepts, (m,) + shapes["top_nouns"][0]).astype(np.int32)
            f["verb_peaks"] = rng.integers(0, T // 2, (m,) + shapes["verb_peaks"][0]).astype(np.int32)
            f["noun_peaks"] = rng.integers(0, T // 2, (m,) + shapes["noun_peaks"][0]).astype(np.int32)
            f.update(precompute(f))
            yield f, [{"id": i, "length": int(x)} for i, x in zip(ids[s:s + m], f["lengths"])]

    with IndexWriter(idx) as w:
        for s in range(0, n, 20000):
            part = names[s:s + 20000]
            w.add_encoded(part, batches(part))
            print(f"  built {s + len(part)}/{n} videos ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    return idx


# ---------------------------------------------------------------------- a collection with structure
def _topics(mc, n_topics: int, rng) -> dict:
    """Latent topics: a global direction, frame and clip patterns, and a few concepts each."""
    d, T = mc.video.dim_embed, mc.max_frames_in_video

    def concepts(C: int) -> np.ndarray:
        logits = np.full((n_topics, C), -4.0, np.float32)
        for t in range(n_topics):
            logits[t, rng.choice(C, 6, replace=False)] = rng.uniform(0.5, 3.0, 6)
        return logits

    return {"global": rng.standard_normal((n_topics, d), dtype=np.float32),
            "frames": rng.standard_normal((n_topics, 4, d), dtype=np.float32),
            "verbs": concepts(mc.num_verb_concepts), "nouns": concepts(mc.num_noun_concepts), "T": T}


def structured_fields(mc, topics: dict, topic: np.ndarray, rng) -> dict[str, np.ndarray]:
    """Stored video fields near their topics (what real collections look like: clusters of related
    videos), float16 as stored, with the precomputed norms and Gram matrices."""
    from hanet.index.storage.values import precompute

    m, d, T = len(topic), mc.video.dim_embed, mc.max_frames_in_video
    Sv, Sn = mc.num_selected_verbs, mc.num_selected_nouns
    K = mc.noun_topk if T >= mc.noun_topk else 1
    base = topics["frames"][topic]  # (m, 4, d): each video mixes its topic's four patterns over time
    mix = rng.dirichlet(np.ones(4), (m, T)).astype(np.float32)
    frames = np.einsum("mtk,mkd->mtd", mix, base)
    f = {"global_embeds": topics["global"][topic] + 0.8 * rng.standard_normal((m, d), dtype=np.float32)}
    for kind, S in (("verb", Sv), ("noun", Sn)):
        fr = frames + 0.6 * rng.standard_normal((m, T, d), dtype=np.float32)
        f[f"{kind}_frames"] = fr
        f[f"{kind}_clips"] = fr[:, rng.integers(0, T, S)] + 0.3 * rng.standard_normal((m, S, d), dtype=np.float32)
        logits = topics[kind + "s"][topic] + 0.8 * rng.standard_normal(topics[kind + "s"][topic].shape, dtype=np.float32)
        f[f"{kind}_probs"] = 1 / (1 + np.exp(-logits))
    # per-frame verb concepts (time spans): the video's concepts, stronger in some frames
    f["verb_frame_probs"] = f["verb_probs"][:, None, :] * rng.uniform(0.5, 1.0, (m, T, 1)).astype(np.float32)
    f = {k: v.astype(np.float16) for k, v in f.items()}
    f["lengths"] = rng.integers(max(1, T // 2), T + 1, m).astype(np.int32)
    f["top_verbs"] = np.argsort(-f["verb_probs"], 1)[:, :Sv].astype(np.int32)
    f["top_nouns"] = np.argsort(-f["noun_probs"], 1)[:, :Sn].astype(np.int32)
    f["verb_peaks"] = rng.integers(0, T // 2, (m, Sv)).astype(np.int32)
    f["noun_peaks"] = rng.integers(0, T // 2, (m, K, Sn)).astype(np.int32)
    f.update(precompute(f))
    return f


def structured_queries(mc, topics: dict, q: int, rng):
    """Encoded queries of the same topics (a TextEncoderOutput): global, phrases, concepts."""
    import torch

    from hanet.model.text import TextEncoderOutput

    d = mc.video.dim_embed
    topic = rng.integers(0, len(topics["global"]), q)
    pat = topics["frames"][topic]

    def phrases(P: int, filled: int) -> np.ndarray:
        x = pat[:, rng.integers(0, 4, P)] + 0.6 * rng.standard_normal((q, P, d), dtype=np.float32)
        x[:, filled:] = 0
        return x

    lens_v = np.zeros((q, mc.num_verbs), np.int64)
    lens_v[:, :2] = 1
    lens_n = np.zeros((q, mc.num_nouns), np.int64)
    lens_n[:, :3] = 2
    t = {"global_embeds": topics["global"][topic] + 0.8 * rng.standard_normal((q, d), dtype=np.float32),
         "verb_embeds": phrases(mc.num_verbs, 2), "verb_phrases": phrases(mc.num_verbs, 2),
         "noun_embeds": phrases(mc.num_nouns, 3), "noun_phrases": phrases(mc.num_nouns, 3)}
    for kind in ("verb", "noun"):
        logits = topics[kind + "s"][topic] + 0.8 * rng.standard_normal(topics[kind + "s"][topic].shape, dtype=np.float32)
        t[f"{kind}_probs"] = 1 / (1 + np.exp(-logits))
    out = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in t.items()}
    return TextEncoderOutput(word_attn=torch.zeros(q, 1), verb_lens=torch.from_numpy(lens_v),
                             noun_lens=torch.from_numpy(lens_n), lengths=torch.full((q,), 8), **out)


def build_structured(out: Path, n: int, dims: str, first_stage: str = "auto", seed: int = 0,
                     chunk: int = 2000, frame_dtype: str = "float16", backend: str = "embedded",
                     engine_url: Optional[str] = None) -> tuple[Path, float]:
    """An index of n videos in ``n / 200`` topics for a random model of the preset's dimensions."""

    from hanet.index.build import IndexWriter, create_index

    cfg, vocab, model = random_model(dims, seed)
    idx = out / "index"
    if idx.exists():
        shutil.rmtree(idx)
    create_index(idx, model, cfg, vocab, source=f"random {dims} model (seed {seed}), structured collection",
                 first_stage=first_stage, frame_dtype=frame_dtype, backend=backend, engine_url=engine_url,
                 collection="bench" if backend == "qdrant" else None)
    mc = cfg.model
    rng = np.random.default_rng(seed)
    topics = _topics(mc, max(16, n // 200), rng)
    names = [f"v{i:07d}" for i in range(n)]
    t0 = time.time()

    def batches(ids: list[str]):
        for s in range(0, len(ids), chunk):
            part = ids[s:s + chunk]
            f = structured_fields(mc, topics, rng.integers(0, len(topics["global"]), len(part)), rng)
            yield f, [{"id": i, "length": int(x)} for i, x in zip(part, f["lengths"])]

    with IndexWriter(idx) as w:
        for s in range(0, n, 50000):
            part = names[s:s + 50000]
            w.add_encoded(part, batches(part))
            print(f"  built {s + len(part)}/{n} videos ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        t1 = time.time()
    if backend == "qdrant":  # closing the writer waited for the engine's HNSW graphs
        print(f"  engine indexed in {time.time() - t1:.0f} s", file=sys.stderr, flush=True)
    np.savez(out / "topics.npz", **{k: v for k, v in topics.items() if k != "T"})
    return idx, time.time() - t0


def exhaustive_rows(index, text, k: int = 10, chunk: int = 64, cache: Optional[Path] = None) -> np.ndarray:
    """(Q, k) the exhaustive top-k rows of encoded queries (read from / written to ``cache``)."""
    import torch

    if cache is not None and cache.is_file():
        return np.load(cache)
    out = []
    with torch.no_grad():
        for s in range(0, len(text), chunk):
            out.append(index.rank_encoded(text.select(slice(s, s + chunk)), k=k, mode="exhaustive").rows)
    rows = np.concatenate(out)
    if cache is not None:
        np.save(cache, rows)
    return rows


def agreement_at_k(index, text, exact: np.ndarray, k: int = 10, chunk: int = 64,
                   candidates: Optional[int] = None) -> dict:
    """Two-stage against exhaustive rows: the share of the exhaustive top-k found."""
    import torch

    overlap, same = [], []
    with torch.no_grad():
        for s in range(0, len(text), chunk):
            two = index.rank_encoded(text.select(slice(s, s + chunk)), k=k, mode="two-stage",
                                     candidates=candidates).rows
            for a, b in zip(exact[s:s + chunk], two):
                overlap.append(len(set(a.tolist()) & set(b.tolist())) / k)
                same.append(bool((a == b).all()))
    return {"agreement_at_10": float(np.mean(overlap)), "identical_top10": float(np.mean(same)),
            "queries": len(overlap)}


def cmd_scale(args: argparse.Namespace) -> int:
    from hanet.index import SearchIndex, native
    from hanet.index.audit import index_info
    from hanet.index.storage import read_manifest

    out = Path(args.out or f"/tmp/hanet-bench-scale-{args.dims}-{args.videos}"
               + ("" if args.backend == "embedded" else f"-{args.backend}") + ("" if args.frame_dtype == "float16" else f"-{args.frame_dtype}"))
    out.mkdir(parents=True, exist_ok=True)
    idx = out / "index"
    build_s = None
    have = idx.is_dir() and (idx / "manifest.json").is_file() and read_manifest(idx)["videos"]["count"] == args.videos
    if not have or args.rebuild:
        idx, build_s = build_structured(out, args.videos, args.dims, args.first_stage, frame_dtype=args.frame_dtype,
                                        backend=args.backend, engine_url=args.url if args.backend == "qdrant" else None)
        (out / "build.json").write_text(json.dumps({"build_s": build_s}))
    else:
        build_s = json.loads((out / "build.json").read_text())["build_s"] if (out / "build.json").is_file() else float("nan")
    info = index_info(idx)
    per_video = sum(info["bytes_per_video"].values())
    print(f"index: {info['videos']} videos, dims {args.dims}, first stage {info['first_stage']['kind']} "
          f"({info['first_stage']['lists']} lists); {info['disk_bytes'] / 2 ** 30:.2f} GiB on disk, "
          f"{per_video / 1024:.1f} KiB of records per video", file=sys.stderr)
    code = (f"import json,sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_search as b; "
            f"print(json.dumps(b.latency(b.Path({str(idx)!r}), {args.queries}, 10, {args.candidates!r}, {args.threads}, "
            f"{bool(args.rehearse)})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if r.returncode:
        print(r.stderr, file=sys.stderr)
        return 1
    lat = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"latency: {lat['queries']} text queries, one at a time, {args.threads} torch thread(s): p50 {lat['p50_ms']:.1f} ms, "
          f"p99 {lat['p99_ms']:.1f} ms; stages p50 {lat['stage_p50_ms']}; RSS {lat['rss_mib']:.0f} MiB "
          f"(peak {lat['peak_rss_mib']:.0f})", file=sys.stderr)
    index = SearchIndex.open(idx, threads=args.agreement_threads)
    topics = dict(np.load(out / "topics.npz"))
    text = structured_queries(index.config, topics, args.agreement_queries, np.random.default_rng(7))
    cache = out / f"exhaustive-top10-q{args.agreement_queries}.npy"
    if args.reference:
        # e.g. int8 frames against the float16 collection's exhaustive answers: what compression and
        # the approximate first stage cost together (the collection's own exhaustive answers only when
        # cached: an exhaustive pass over 1M videos takes the better part of an hour here)
        ref_path = Path(args.reference) / f"exhaustive-top10-q{args.agreement_queries}.npy"
        if not ref_path.is_file():
            print(f"{ref_path}: no cached exhaustive answers; run scale on {args.reference} first", file=sys.stderr)
            return 2
        exact = np.load(ref_path)
        against = f"{args.reference}'s exhaustive search (float16 frames)"
    else:
        exact = exhaustive_rows(index, text, cache=cache)
        against = "exhaustive search"
    agr = agreement_at_k(index, text, exact, candidates=args.candidates)
    print(f"agreement with {against} over {agr['queries']} queries: {agr['agreement_at_10']:.4f} of the "
          f"exact top-10 found, identical top-10 for {agr['identical_top10']:.4f} of queries", file=sys.stderr)
    if args.reference and cache.is_file():
        own = np.load(cache)
        print(f"exhaustive here vs there: "
              f"{np.mean([len(set(a) & set(b)) / 10 for a, b in zip(own.tolist(), exact.tolist())]):.4f}",
              file=sys.stderr)
    index.close()
    if args.results:
        key = f"{args.dims}-{args.videos}-{args.backend}-{info['frame_dtype']}"
        write_result(Path(args.results), key, {
            "command": "python benchmarks/bench_search.py " + " ".join(sys.argv[1:]),
            "videos": args.videos, "dims": args.dims, "backend": args.backend, "frame_dtype": info["frame_dtype"],
            "first_stage": info["first_stage"]["kind"], "disk_gib": round(info["disk_bytes"] / 2 ** 30, 2),
            "build_s": None if build_s != build_s else round(build_s), "candidates": lat["candidates"],
            "p50_ms": round(lat["p50_ms"], 1), "p99_ms": round(lat["p99_ms"], 1),
            "stage_p50_ms": {k: round(v, 1) for k, v in lat["stage_p50_ms"].items()},
            "agreement_at_10": round(agr["agreement_at_10"], 4), "identical_top10": round(agr["identical_top10"], 4),
            "rss_mib": round(lat["rss_mib"]), "rss_anon_mib": round(lat["rss_anon_mib"]),
            "rss_file_mib": round(lat["rss_file_mib"]), "rehearsed": bool(args.rehearse),
            "kernel": "native" if native.library() is not None else "torch"})
    print(f"RESULT backend={args.backend} videos={args.videos} dims={args.dims} frames={info['frame_dtype']} p50_ms={lat['p50_ms']:.1f} "
          f"p99_ms={lat['p99_ms']:.1f} agreement_at_10={agr['agreement_at_10']:.4f} rss_mib={lat['rss_mib']:.0f} "
          f"build_s={build_s:.0f} bytes_per_video={per_video}" + (" against=reference" if args.reference else "")
          + (f" threads={args.threads}" if args.threads != 1 else "") + (" rehearsed=1" if args.rehearse else "")
          + f" kernel={'native' if native.library() is not None else 'torch'}")
    return 0


RESULTS = Path(__file__).resolve().parent / "results" / "search.json"


def machine() -> dict:
    """What the figures were measured on."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1), "kernel": platform.release(),
            "python": platform.python_version(), "torch": torch.__version__}


def write_result(path: Path, key: str, figures: dict) -> None:
    """Merge one measurement into a results file (``{"results": {key: {...}}}``), with the machine and date."""
    data = json.loads(path.read_text()) if path.is_file() else {"results": {}}
    data.setdefault("results", {})[key] = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), **figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"figures written to {path} ({key})", file=sys.stderr)


# ---------------------------------------------------------------------- latency (fresh process)
def latency(index_dir: Path, n_queries: int, k: int, candidates: Optional[int], threads: Optional[int],
            rehearse: bool = False) -> dict:
    import torch

    from hanet.index import SearchIndex

    t0 = time.perf_counter()
    index = SearchIndex.open(index_dir, threads=threads)
    _ = index.queries.parser
    opened = time.perf_counter() - t0
    qs = queries(n_queries + 10, seed=1)
    for q in qs[:10]:  # warm-up: spaCy, torch, the FAISS index pages
        index.search_result(q, k, candidates=candidates)
    if rehearse:
        # every timed query once, untimed: its candidates' records have been read since the page
        # cache was filled (on this VM a page-cache page read for the first time in a while costs
        # several times a recently read one; see docs/search.md "At scale")
        for q in qs[10:]:
            index.search_result(q, k, candidates=candidates)
        index.queries.clear_cache()  # the timed run encodes every query again
    rss_open = rss_mib()
    total, stages = [], {"encode": [], "rank": [], "scores": []}
    for q in qs[10:]:
        t = time.perf_counter()
        res = index.search_result(q, k, candidates=candidates)
        total.append((time.perf_counter() - t) * 1e3)
        for s in stages:
            stages[s].append(res.timings_ms[s])
    mem = rss_mib()
    return {"videos": index.num_videos, "queries": n_queries, "k": k, "candidates": res.candidates,
            "torch_threads": torch.get_num_threads(), "open_s": round(opened, 2),
            "p50_ms": pct(total, 50), "p90_ms": pct(total, 90), "p99_ms": pct(total, 99), "mean_ms": float(np.mean(total)),
            "stage_p50_ms": {s: pct(v, 50) for s, v in stages.items()},
            "rss_mib_after_warmup": rss_open["VmRSS"], "rss_mib": mem["VmRSS"], "peak_rss_mib": mem["VmHWM"],
            "rss_anon_mib": mem["RssAnon"], "rss_file_mib": mem["RssFile"]}


# ---------------------------------------------------------------------- throughput (hanet serve)
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def throughput(index_dir: Path, clients: int, per_client: int, k: int, replicas: int = 1) -> dict:
    """``replicas`` stateless ``hanet serve`` processes over the same index folder (each with one
    search at a time and one thread when there are several); client ``i`` talks to replica ``i % R``."""
    import httpx

    env = {**os.environ}
    extra = [] if replicas == 1 else ["--max-concurrency", "1", "--threads", "1"]
    ports = [free_port() for _ in range(replicas)]
    procs = [subprocess.Popen([sys.executable, "-m", "hanet", "serve", str(index_dir), "--port", str(port)] + extra,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.time() + 300
        for url, proc in zip(urls, procs):
            while True:
                try:
                    httpx.get(url + "/health", timeout=2)
                    break
                except httpx.TransportError:
                    if proc.poll() is not None:
                        raise RuntimeError(f"hanet serve exited: {proc.stderr.read()}")
                    if time.time() > deadline:
                        raise RuntimeError("hanet serve did not come up")
                    time.sleep(0.5)
        qs = queries(clients * per_client + 20, seed=2)
        for url in urls:
            with httpx.Client(base_url=url, timeout=120) as c:  # warm-up
                for q in qs[:20]:
                    c.get("/search", params={"q": q, "k": k})
        lat: list[float] = []
        codes: dict[int, int] = {}
        failures: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(clients + 1)

        def client(i: int) -> None:
            mine = qs[20 + i * per_client: 20 + (i + 1) * per_client]
            with httpx.Client(base_url=urls[i % replicas], timeout=120) as c:
                barrier.wait()
                for q in mine:  # bounded: the loop ends after per_client requests
                    t = time.perf_counter()
                    try:
                        r = c.get("/search", params={"q": q, "k": k})
                        code = r.status_code
                    except httpx.HTTPError as exc:
                        code = -1
                        with lock:
                            failures.append(repr(exc))
                    with lock:
                        lat.append((time.perf_counter() - t) * 1e3)
                        codes[code] = codes.get(code, 0) + 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        mems = [rss_mib(proc.pid) for proc in procs]
        n = clients * per_client
        return {"clients": clients, "replicas": replicas, "requests": n, "seconds": wall, "requests_per_s": n / wall,
                "latency_p50_ms": pct(lat, 50), "latency_p99_ms": pct(lat, 99), "status_codes": codes,
                "errors": n - codes.get(200, 0), "failures": failures[:3],
                "server_rss_mib": sum(m["VmRSS"] for m in mems), "server_peak_rss_mib": sum(m["VmHWM"] for m in mems),
                "server_rss_anon_mib": sum(m["RssAnon"] for m in mems), "server_rss_file_mib": sum(m["RssFile"] for m in mems)}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def cmd_synthetic(args: argparse.Namespace) -> int:
    out = Path(args.out or f"/tmp/hanet-bench-search-{args.dims}-{args.videos}")
    out.mkdir(parents=True, exist_ok=True)
    idx = out / "index"
    from hanet.index.storage import read_manifest

    have = idx.is_dir() and (idx / "manifest.json").is_file() and read_manifest(idx)["videos"]["count"] == args.videos
    if not have or args.rebuild:
        t = time.time()
        build_synthetic(out, args.videos, args.dims)
        print(f"built a {args.videos}-video {args.dims} index in {time.time() - t:.0f} s", file=sys.stderr)
    from hanet.index.audit import index_info

    info = index_info(idx)
    mc = info["model"]
    print(f"index: {info['videos']} videos, dims {args.dims}: d={mc['dim_embed']}, T={mc['max_frames_in_video']}, "
          f"concepts {mc['num_verb_concepts']}+{mc['num_noun_concepts']}; {info['disk_bytes'] / 2 ** 30:.2f} GiB "
          f"on disk")
    # latency in a fresh process: its memory is the search's alone
    code = (f"import json,sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_search as b; "
            f"print(json.dumps(b.latency(b.Path({str(idx)!r}), {args.queries}, {args.k}, "
            f"{args.candidates!r}, {args.threads!r})))")
    for rep in range(args.repeat):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return 1
        lat = json.loads(r.stdout.strip().splitlines()[-1])
        st = lat["stage_p50_ms"]
        print(f"latency run {rep + 1}: {lat['queries']} queries, k={lat['k']}, {lat['candidates']} candidates, "
              f"{lat['torch_threads']} torch threads: p50 {lat['p50_ms']:.1f} ms, p90 {lat['p90_ms']:.1f} ms, "
              f"p99 {lat['p99_ms']:.1f} ms (stage p50: encode {st['encode']:.1f}, FAISS+rescore {st['rank']:.1f}, "
              f"scores {st['scores']:.1f}); RSS {lat['rss_mib']:.0f} MiB (peak {lat['peak_rss_mib']:.0f} MiB); "
              f"opened in {lat['open_s']} s")
    if args.clients:
        tp = throughput(idx, args.clients, args.requests_per_client, args.k, args.replicas)
        print(f"throughput: {tp['replicas']} replica(s), {tp['clients']} clients x {args.requests_per_client} "
              f"searches = {tp['requests']} in "
              f"{tp['seconds']:.1f} s: {tp['requests_per_s']:.1f} req/s, latency under load p50 "
              f"{tp['latency_p50_ms']:.0f} ms p99 {tp['latency_p99_ms']:.0f} ms, status {tp['status_codes']}, "
              f"errors {tp['errors']}; server RSS {tp['server_rss_mib']:.0f} MiB (peak {tp['server_peak_rss_mib']:.0f}; "
              f"anonymous {tp['server_rss_anon_mib']:.0f}, file-backed {tp['server_rss_file_mib']:.0f})")
        if tp["failures"]:
            print(f"  e.g. {tp['failures']}")
    if args.clean:
        shutil.rmtree(out)
    return 0


# ---------------------------------------------------------------------- agreement
def load_queries(path: Path, names: Optional[Path]) -> tuple[list[str], list[Optional[str]]]:
    """Captions as queries, with the video each belongs to (None for a plain list)."""
    data = json.loads(path.read_text()) if path.suffix == ".json" else path.read_text().splitlines()
    keep = None
    if names is not None:
        from hanet.data.formats import load_names

        keep = set(load_names(names)) if names.suffix == ".npy" else set(names.read_text().split())
    texts, gts = [], []
    if isinstance(data, dict):
        for vid, caps in data.items():
            if keep is not None and vid not in keep:
                continue
            for c in caps:
                texts.append(c)
                gts.append(vid.replace("/", "_"))
    else:
        texts = [t for t in data if isinstance(t, str) and t.strip()]
        gts = [None] * len(texts)
    return texts, gts


def cmd_agreement(args: argparse.Namespace) -> int:
    import torch

    from hanet.index import SearchIndex
    from hanet.index.query import QueryError
    from hanet.text.normalize import normalize_caption

    index = SearchIndex.open(args.index)
    texts, gts = load_queries(Path(args.queries), Path(args.names) if args.names else None)
    graphs = json.loads(Path(args.rolegraphs).read_text()) if args.rolegraphs else None
    if args.limit:
        texts, gts = texts[:args.limit], gts[:args.limit]
    # one encoding per distinct caption; captions with no known word cannot be queries
    enc_texts, enc_gts, skipped = [], [], 0
    for t, g in zip(texts, gts):
        norm = normalize_caption(t)
        if not norm or all(w not in index.word2int for w in norm.split()[:index.config.max_words_in_sent]):
            skipped += 1
            continue
        enc_texts.append(norm)
        enc_gts.append(g)
    k = args.k
    c_default = args.candidates or index.default_candidates()
    sweep = sorted({int(x) for x in args.sweep.split(",") if x} | {c_default}) if args.sweep else [c_default]
    t0 = time.time()
    exact_rows, tw_rows, certified = [], {c: [] for c in sweep}, {c: [] for c in sweep}
    bs = 256
    for s in range(0, len(enc_texts), bs):
        part = enc_texts[s:s + bs]
        g = [graphs.get(t) for t in part] if graphs is not None else None
        if g is not None and any(x is None for x in g):
            missing = [t for t, x in zip(part, g) if x is None]
            parsed = iter(index.queries._graphs(missing))
            g = [x if x is not None else next(parsed) for x in g]
        try:
            enc = index.queries.encode(part, graphs=g, allow_unknown=True)
        except QueryError as exc:
            print(f"skipping a batch: {exc}", file=sys.stderr)
            continue
        with torch.no_grad():
            exact_rows.append(index.rank_encoded(enc.text, k=max(k, 10), mode="exhaustive").rows)
            for c in sweep:
                r2 = index.rank_encoded(enc.text, k=k, mode="two-stage", candidates=c)
                tw_rows[c].append(r2.rows)
                certified[c].append(r2.exact)
    exact = np.concatenate(exact_rows)
    n = len(exact)
    print(f"index {args.index}: {index.num_videos} videos; {n} caption queries ({skipped} without a known word "
          f"skipped); k={k}; {time.time() - t0:.0f} s")
    kk = min(k, index.num_videos)
    row_of_gt = [index.videos.row_of.get(g) if g else None for g in enc_gts]
    has_gt = [i for i, r in enumerate(row_of_gt) if r is not None]

    def recall(rows: np.ndarray, at: int) -> float:
        hit = [row_of_gt[i] in rows[i, :at].tolist() for i in has_gt]
        return 100.0 * float(np.mean(hit)) if hit else float("nan")

    for c in sweep:
        two = np.concatenate(tw_rows[c])
        same_order = float(np.mean([(two[i, :kk] == exact[i, :kk]).all() for i in range(n)]))
        same_set = float(np.mean([set(two[i, :kk].tolist()) == set(exact[i, :kk].tolist()) for i in range(n)]))
        tag = " (default)" if c == c_default else ""
        proved = float(np.mean(np.concatenate(certified[c])))
        line = (f"candidates {c:>5}{tag}: identical top-{kk} {same_order:.4f} of queries, same top-{kk} set "
                f"{same_set:.4f}, proven exact by the first-stage bound {proved:.4f}")
        if has_gt:
            line += f"; t2v R@1/5/10 two-stage {recall(two, 1):.1f}/{recall(two, 5):.1f}/{recall(two, 10):.1f}"
        print(line)
    if has_gt:
        print(f"exhaustive: t2v R@1/5/10 {recall(exact, 1):.1f}/{recall(exact, 5):.1f}/{recall(exact, 10):.1f} "
              f"over {len(has_gt)} queries with their video in the index")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synthetic", help="latency, memory and throughput on N synthetic videos")
    s.add_argument("--videos", type=int, default=100_000)
    s.add_argument("--dims", choices=sorted(DIMS), default="synth", help="preset whose model dimensions to use")
    s.add_argument("--out", help="work folder (default /tmp/hanet-bench-search-DIMS-N; reused if it holds the index)")
    s.add_argument("--rebuild", action="store_true")
    s.add_argument("--queries", type=int, default=300, help="timed queries (after 10 warm-up ones)")
    s.add_argument("--k", type=int, default=10)
    s.add_argument("--candidates", type=int, help="first-stage candidates (default: the index default)")
    s.add_argument("--threads", type=int, default=1, help="torch threads for the latency run (default 1, what "
                   "hanet serve uses with its default 2 concurrent searches on 2 cores)")
    s.add_argument("--repeat", type=int, default=1, help="latency runs (report the best)")
    s.add_argument("--clients", type=int, default=32, help="concurrent clients for the throughput run (0: skip)")
    s.add_argument("--requests-per-client", type=int, default=10)
    s.add_argument("--replicas", type=int, default=1, help="hanet serve processes over the same index folder")
    s.add_argument("--clean", action="store_true", help="delete the work folder at the end")
    c = sub.add_parser("scale", help="N videos of a structured synthetic collection: latency, memory, agreement")
    c.add_argument("--videos", type=int, default=100_000)
    c.add_argument("--dims", choices=sorted(DIMS), default="synth")
    c.add_argument("--backend", default="embedded", choices=["embedded", "qdrant"])
    c.add_argument("--url", default="edge:engine", help="with --backend qdrant: the engine (default edge:engine, "
                   "the Qdrant engine in-process, in the index folder)")
    c.add_argument("--first-stage", default="auto", choices=["auto", "exact", "ivf"])
    c.add_argument("--frame-dtype", default="float16", choices=["float16", "int8"])
    c.add_argument("--out", help="work folder (default /tmp/hanet-bench-scale-DIMS-N; reused if it holds the index)")
    c.add_argument("--rebuild", action="store_true")
    c.add_argument("--queries", type=int, default=300, help="timed text queries (after 10 warm-up ones)")
    c.add_argument("--agreement-queries", type=int, default=200)
    c.add_argument("--agreement-threads", type=int, default=None, help="torch threads for the exhaustive reference")
    c.add_argument("--candidates", type=int, help="second-stage candidates (default: the index's default, "
                   "`hanet index info`: 500 at the synth sizes, 200 at MSR-VTT's)")
    c.add_argument("--threads", type=int, default=1, help="torch threads of the timed searches (default 1, what "
                   "`hanet serve` gives each of its 2 concurrent searches on 2 cores)")
    c.add_argument("--rehearse", action="store_true", help="run the timed queries once, untimed, before timing "
                   "them (their candidates' records read once since the page cache was filled)")
    c.add_argument("--results", default=str(RESULTS), help="results JSON the figures are merged into ('' for none)")
    c.add_argument("--reference", metavar="OUT", help="measure agreement against the exhaustive answers cached in "
                   "another scale folder of the same N and dims (e.g. the float16 one, for --frame-dtype int8)")
    a = sub.add_parser("agreement", help="two-stage vs exhaustive top-k on an index built from a trained run")
    a.add_argument("--index", required=True)
    a.add_argument("--queries", required=True, help="captions JSON {video: [caption, ...]}, a JSON list, or a text "
                   "file with one query per line")
    a.add_argument("--rolegraphs", help="role graphs of the captions (default: parse with spaCy)")
    a.add_argument("--names", help="only the captions of these videos (.npy or text)")
    a.add_argument("--k", type=int, default=10)
    a.add_argument("--candidates", type=int, help="the default candidate count to report (default: the index's)")
    a.add_argument("--sweep", default="", help="also these candidate counts, e.g. 10,25,50,100")
    a.add_argument("--limit", type=int, help="at most this many queries")
    args = p.parse_args(argv)
    return {"synthetic": cmd_synthetic, "scale": cmd_scale, "agreement": cmd_agreement}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
