"""Retrieval evaluation: every caption encoded once, scores in bounded blocks, vectorised ranks.

Definitions are the official ones: each caption of a video is one of its ground truths (a
caption text shared by several videos has all of them), a query's rank is the position of its
best-ranked ground truth, R@K counts ranks below K, MedR and MnR are 1-based, and
rsum = R@1 + R@5 + R@10 of both directions. ``ir*`` is text-to-video (one query per caption),
``cr*`` video-to-text (one query per video). A query's rank is its position in a stable sort of
the scores (ties broken by index); the official code sorts with numpy's unstable quicksort, so
the two can only differ on exactly tied scores (e.g. the phrase scores of a caption without
verb phrases are 0 for every video).

Videos are encoded in chunks of ``batch_size`` in name order, each padded to its own longest
video, exactly as the official evaluation batches them: with the official model, a short
video's embedding depends on that padding (see docs/quirks.md).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch

from hanet.data.batch import TextBatch
from hanet.model import SCORE_NAMES, HANet
from hanet.model.text import TextEncoderOutput
from hanet.model.video import VideoEncoderOutput

METRIC_KEYS = ("ir1", "ir5", "ir10", "imedr", "imeanr", "cr1", "cr5", "cr10", "cmedr", "cmeanr", "rsum")


def _ranks(scores: np.ndarray, q_idx: np.ndarray, m_idx: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Rank of each query's best ground truth, ties broken by memory index (a stable sort).

    Args:
        scores: (n_query, n_memory).
        q_idx, m_idx: ground-truth pairs (query i, memory j).
        chunk: queries per step (bounds the temporary).

    Returns:
        (n_query,) int64: memories scoring strictly above the best ground truth, plus those
        tying with it at a lower index; n_memory for a query without ground truth.
    """
    n_q, n_m = scores.shape
    vals = scores[q_idx, m_idx]
    best = np.full(n_q, -np.inf, dtype=scores.dtype)
    np.maximum.at(best, q_idx, vals)
    # Among ground truths at the best score, the lowest index ranks first.
    at_best = vals == best[q_idx]
    first = np.full(n_q, n_m, dtype=np.int64)
    np.minimum.at(first, q_idx[at_best], m_idx[at_best])
    ranks = np.full(n_q, n_m, dtype=np.int64)
    cols = np.arange(n_m)
    for s in range(0, n_q, chunk):
        blk = scores[s:s + chunk]
        b = best[s:s + chunk, None]
        ranks[s:s + chunk] = (blk > b).sum(1) + ((blk == b) & (cols[None, :] < first[s:s + chunk, None])).sum(1)
    ranks[~np.isfinite(best)] = n_m
    return ranks


def query_ranks(scores: np.ndarray, gt_videos: np.ndarray, gt_captions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based rank of every query's best ground truth, both directions.

    Args:
        scores: (n_videos, n_captions) similarity.
        gt_videos, gt_captions: (G,) ground-truth pairs.

    Returns:
        ``(t2v, v2t)``: (n_captions,) and (n_videos,) int64 ranks (0: found first).
    """
    t2v = _ranks(np.ascontiguousarray(scores.T), gt_captions, gt_videos)
    v2t = _ranks(scores, gt_videos, gt_captions)
    return t2v, v2t


def retrieval_metrics(scores: np.ndarray, gt_videos: np.ndarray, gt_captions: np.ndarray) -> dict[str, float]:
    """Official R@1/5/10, MedR, MnR of both directions and rsum.

    Args:
        scores: (n_videos, n_captions) similarity.
        gt_videos, gt_captions: (G,) ground-truth pairs.

    Returns:
        Ordered dict with keys :data:`METRIC_KEYS`.
    """
    return metrics_from_ranks(*query_ranks(scores, gt_videos, gt_captions))


def metrics_from_ranks(t2v: np.ndarray, v2t: np.ndarray) -> dict[str, float]:
    """:data:`METRIC_KEYS` from the 0-based ranks of :func:`query_ranks`."""
    out: dict[str, float] = {}
    for prefix, r in (("i", t2v), ("c", v2t)):
        n = len(r)
        for k in (1, 5, 10):
            out[f"{prefix}r{k}"] = 100.0 * float((r < k).sum()) / n
        out[f"{prefix}medr"] = float(np.median(r)) + 1
        out[f"{prefix}meanr"] = float(r.mean()) + 1
    # the authors' order of summation (floating-point addition is not associative: 1 ulp apart otherwise)
    out["rsum"] = out["cr1"] + out["cr5"] + out["cr10"] + out["ir1"] + out["ir5"] + out["ir10"]
    return {k: out[k] for k in METRIC_KEYS}


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign-test p-value of ``wins`` against ``losses`` (McNemar's exact test
    on the discordant pairs): the chance of a split at least this uneven if either side were
    equally likely to win each one."""
    n, k = wins + losses, min(wins, losses)
    if n == 0 or 2 * k == n:
        return 1.0
    # log C(n, i) for i = 0..k by a running sum, so that 10^5 discordant queries stay exact to
    # float precision without big integers.
    j = np.arange(1, k + 1, dtype=np.float64)
    log_c = np.concatenate([[0.0], np.cumsum(np.log((n - j + 1) / j))])
    top = log_c.max()
    log_tail = top + math.log(np.exp(log_c - top).sum()) - n * math.log(2.0)
    return float(min(1.0, 2.0 * math.exp(log_tail)))


def paired_recall(ranks_a: np.ndarray, ranks_b: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, dict[str, float]]:
    """Compare two models query by query on the same queries.

    A mean recall difference can come from a handful of queries; this counts the queries that
    one model finds within the top K and the other does not, and tests whether that split could
    be chance (exact McNemar test). Training-seed variation is not in it: compare seeds too.

    Args:
        ranks_a, ranks_b: (n_queries,) 0-based ranks of the same queries (:func:`query_ranks`).
        ks: cut-offs.

    Returns:
        ``{"R@K": {"a": recall %, "b": recall %, "a_only": n, "b_only": n, "p": p-value}}``.
    """
    if ranks_a.shape != ranks_b.shape:
        raise ValueError(f"rank arrays of different shapes {ranks_a.shape} and {ranks_b.shape}: not the same queries")
    out = {}
    for k in ks:
        ha, hb = ranks_a < k, ranks_b < k
        a_only, b_only = int((ha & ~hb).sum()), int((~ha & hb).sum())
        out[f"R@{k}"] = {"a": 100.0 * float(ha.mean()), "b": 100.0 * float(hb.mean()), "a_only": a_only,
                         "b_only": b_only, "p": sign_test_p(a_only, b_only)}
    return out


@torch.no_grad()
def encode_videos(model: HANet, batches: Iterable, device: torch.device | str,
                  keep_frame_probs: bool = False) -> VideoEncoderOutput:
    """Encode video batches and concatenate them (per-frame fields padded to a common length).

    Args:
        model: the model (eval mode is the caller's business).
        batches: an iterable of :class:`~hanet.data.batch.VideoBatch`.
        device: where to encode and keep the outputs.
        keep_frame_probs: keep the per-frame concept probabilities (explanations only).
    """
    parts = []
    for vb in batches:
        out = model.encode_video(vb.features.to(device), vb.lengths.to(device))
        parts.append(out if keep_frame_probs else out.without_frame_probs())
    return VideoEncoderOutput.cat(parts)


def score_names_for(model: HANet) -> tuple[str, ...]:
    return ("sent",) if model.variant == "global" else SCORE_NAMES


@torch.no_grad()
def score_matrices(model: HANet, videos: VideoEncoderOutput, caption_batches: Iterable[TextBatch | TextEncoderOutput],
                   num_captions: int, device: torch.device | str, names: Sequence[str] = ("fused",),
                   pair_budget: int = 400_000, out_dtype=np.float32, progress: bool = True,
                   outputs: Optional[dict[str, np.ndarray]] = None) -> dict[str, np.ndarray]:
    """Score all videos against captions that are encoded once, batch by batch.

    Memory on the device is bounded by the video encodings plus one block of
    ``pair_budget`` (video, caption) pairs, whatever the number of captions.

    Args:
        model: the model.
        videos: all videos' encoder outputs (on ``device``).
        caption_batches: :class:`TextBatch` es covering the captions in column order (or their
            already computed :class:`TextEncoderOutput`).
        num_captions: total number of captions (columns).
        device: where to encode and score.
        names: which matrices to return: any of :data:`SCORE_NAMES` and ``fused``.
        pair_budget: (video, caption) pairs scored at once.
        out_dtype: dtype of the returned matrices.
        progress: show a progress bar.
        outputs: preallocated (n_videos, num_captions) arrays to fill (e.g. memory maps).

    Returns:
        name -> (n_videos, num_captions) array.
    """
    from tqdm import tqdm

    Nv = len(videos)
    res = outputs if outputs is not None else {n: np.empty((Nv, num_captions), out_dtype) for n in names}
    col = 0
    bar = tqdm(total=num_captions, desc="scoring", unit="cap", disable=not progress, leave=False)
    for tb in caption_batches:
        text = tb if isinstance(tb, TextEncoderOutput) else model.encode_text(tb.to(device))
        nc = len(text)
        vb = max(1, min(Nv, pair_budget // max(nc, 1)))
        for s in range(0, Nv, vb):
            sc = model.score(videos.select(slice(s, s + vb)), text)
            for n in names:
                m = model.fused_score(sc) if n == "fused" else getattr(sc, n)
                res[n][s:s + vb, col:col + nc] = m.float().cpu().numpy()
        col += nc
        bar.update(nc)
    bar.close()
    if col != num_captions:
        raise RuntimeError(f"caption batches covered {col} captions, expected {num_captions}")
    return res


@dataclass
class EvalResult:
    """Metrics of the fused score and of each score alone.

    Attributes:
        metrics: ``fused`` and each score name -> metric dict (:data:`METRIC_KEYS`).
        video_names: row order.
        captions: column order.
        scores: the requested matrices (name -> (n_videos, n_captions)); ``fused`` always.
        seconds: wall time of encoding + scoring + ranking.
        t2v_ranks: (n_captions,) 0-based text-to-video rank of each caption under the fused score.
        v2t_ranks: (n_videos,) 0-based video-to-text rank of each video under the fused score.
    """

    metrics: dict[str, dict[str, float]]
    video_names: list[str]
    captions: list[str]
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    t2v_ranks: Optional[np.ndarray] = None
    v2t_ranks: Optional[np.ndarray] = None


@torch.no_grad()
def evaluate_split(model: HANet, data, device: torch.device | str = "cpu", batch_size: int = 300,
                   per_score: bool = True, pair_budget: int = 400_000, progress: bool = True) -> EvalResult:
    """Evaluate a model on a :class:`~hanet.data.dataset.RetrievalData` split.

    Args:
        model: the model; it is put in eval mode.
        data: the split.
        device: where to run.
        batch_size: videos / captions per encoding batch (official ``tst_batch_size``).
        per_score: also compute the table of each score alone (holds every matrix in memory).
        pair_budget: pairs scored at once.
        progress: show progress.
    """
    t0 = time.time()
    model.eval()
    videos = encode_videos(model, data.video_batches(batch_size), device)
    names = ["fused"] + (list(score_names_for(model)) if per_score else [])
    scores = score_matrices(model, videos, data.caption_batches(batch_size), len(data.unique_captions), device,
                            names=names, pair_budget=pair_budget, progress=progress)
    gv, gc = data.gt_pairs
    ranks = {n: query_ranks(m, gv, gc) for n, m in scores.items()}
    metrics = {n: metrics_from_ranks(*r) for n, r in ranks.items()}
    return EvalResult(metrics, list(data.names), list(data.unique_captions), scores, time.time() - t0,
                      *ranks["fused"])


def format_table(metrics: dict[str, dict[str, float]]) -> str:
    """A plain-text table, one row per score."""
    head = f"{'score':<13}" + "".join(f"{k:>8}" for k in METRIC_KEYS)
    rows = [head, "-" * len(head)]
    for name, m in metrics.items():
        rows.append(f"{name:<13}" + "".join(f"{m[k]:>8.2f}" for k in METRIC_KEYS))
    return "\n".join(rows)


# ---------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", help="run directory written by `hanet train`")
    p.add_argument("--checkpoint", help="checkpoint file (default: RUN/checkpoints/best.pt, else last.pt)")
    p.add_argument("--official-checkpoint", metavar="FILE.th", help="an authors' checkpoint (epoch.N.th) instead "
                   "of a run; with --config (their model.json) and --data")
    p.add_argument("--config", metavar="model.json", help="with --official-checkpoint: the authors' model.json")
    p.add_argument("--split", default="tst", help="split to evaluate (default tst)")
    p.add_argument("--data", help="dataset (default: the one the run was trained on)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto (default)")
    p.add_argument("--batch-size", type=int, help="videos/captions per encoding batch (default: the config's)")
    p.add_argument("--pair-budget", type=int, default=400_000, help="(video, caption) pairs scored at once")
    p.add_argument("--no-per-score", action="store_true", help="only the fused score's table (less memory)")
    p.add_argument("--save-scores", metavar="FILE.npy", help="write the fused matrix as float16 .npy "
                   "(rows: videos in name order; a FILE.json beside it lists rows and columns)")
    p.add_argument("--out", help="metrics JSON (default: RUN/eval/<split>.json; none for an official checkpoint)")
    p.add_argument("--compare", metavar="OTHER_RUN", help="also evaluate another run on the same split and compare "
                   "the two query by query (recall of each, queries only one finds, exact McNemar p-value)")
    p.add_argument("--world", metavar="DIR", help="for a split of a `hanet synth` world: also print text-to-video "
                   "R@1 by kind of caption and the kinds of wrong first answers (look-alike or another group)")


def _split_for(dataset: str, split: str, cfg):
    """The split as a checkpoint with config ``cfg`` reads it; refuses features of another width."""
    from hanet.data.dataset import RetrievalData
    from hanet.data.formats import DatasetSpec
    from hanet.errors import HanetError

    data = RetrievalData(DatasetSpec.load(dataset), split, cfg.model)
    dims = data.video_feature_dim()
    if dims != cfg.model.video.dim_input:
        raise HanetError(f"{dataset}: split {split} has {dims}-d features but the checkpoint expects "
                         f"{cfg.model.video.dim_input}")
    return data


def _compare(args: argparse.Namespace, res: EvalResult, data, dataset: str, device: torch.device) -> str:
    """Evaluate ``args.compare`` on the same queries as ``res`` and format the paired table."""
    from hanet.errors import HanetError
    from hanet.run import RunDir, model_from_checkpoint

    other = RunDir(args.compare)
    model, cfg, _ = model_from_checkpoint(other.default_checkpoint(), device=device)
    other_data = _split_for(dataset, args.split, cfg)
    if list(other_data.names) != list(data.names) or list(other_data.unique_captions) != list(data.unique_captions):
        raise HanetError(f"{other.path}: split {args.split} gives other videos or captions than {args.run}; "
                         f"a paired comparison needs the same queries")
    res_b = evaluate_split(model, other_data, device=device, batch_size=args.batch_size or cfg.train.eval_batch_size,
                           per_score=False, pair_budget=args.pair_budget, progress=False)
    a, b = Path(args.run).name, other.path.name
    lines = [f"paired comparison on {args.split}: A = {args.run} ({res.metrics['fused']['rsum']:.2f} rsum), "
             f"B = {other.path} ({res_b.metrics['fused']['rsum']:.2f} rsum)",
             f"{'':<13}{'A %':>8}{'B %':>8}{'A only':>8}{'B only':>8}{'p':>10}"]
    for direction, ra, rb in (("t2v", res.t2v_ranks, res_b.t2v_ranks), ("v2t", res.v2t_ranks, res_b.v2t_ranks)):
        for k, c in paired_recall(ra, rb).items():
            lines.append(f"{direction + ' ' + k:<13}{c['a']:>8.2f}{c['b']:>8.2f}{c['a_only']:>8d}{c['b_only']:>8d}"
                         f"{c['p']:>10.2g}")
    lines.append(f"(A only: queries {a} finds within the top K and {b} does not; p: exact McNemar test, "
                 f"how likely so uneven a split is by chance on these queries)")
    return "\n".join(lines)


def format_breakdown(b: dict) -> str:
    """Plain-text lines of :func:`hanet.data.synth.t2v_breakdown`'s result."""
    lines = [f"text-to-video R@1 by kind of caption ({b['queries']} queries, {b['r1']:.2f} in all):"]
    lines += [f"  {kind:<12}{v['queries']:>7d} queries  R@1 {v['r1']:6.2f}" for kind, v in b["kinds"].items()]
    lines.append("wrong first answers, % of all queries: "
                 + ", ".join(f"{kind} {pct:.2f}" for kind, pct in b["errors"].items()))
    return "\n".join(lines)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from hanet.errors import HanetError

        raise HanetError("--device cuda asked for, but no CUDA device is available")
    return dev


def run(args: argparse.Namespace) -> int:
    from hanet.errors import HanetError
    from hanet.io import atomic_write_json
    from hanet.run import RunDir, model_from_checkpoint

    from hanet.io import check_output_file
    from hanet.run import model_from_official

    device = resolve_device(args.device)
    if args.official_checkpoint:
        if args.run or args.checkpoint:
            raise HanetError("give --run/--checkpoint or --official-checkpoint, not both")
        if not args.config or not args.data:
            raise HanetError("--official-checkpoint needs --config (the authors' model.json) and --data")
        if args.compare:
            raise HanetError("--compare needs a run (--run)")
        out = Path(args.out) if args.out else None
        ckpt_path = Path(args.official_checkpoint)
    else:
        if not args.run:
            raise HanetError("give --run RUN_DIR (or --official-checkpoint FILE.th --config model.json)")
        if args.config:
            raise HanetError("--config goes with --official-checkpoint (a run records its own config)")
        rd = RunDir(args.run)
        info = rd.read_info()
        ckpt_path = Path(args.checkpoint) if args.checkpoint else rd.default_checkpoint()
        out = Path(args.out) if args.out else rd.path / "eval" / f"{args.split}.json"
    # outputs are checked before the (long) evaluation, not after it
    if out is not None:
        check_output_file(out, "metrics file")
    if args.save_scores:
        check_output_file(args.save_scores, "score file")
        check_output_file(Path(args.save_scores).with_suffix(".json"), "score index file")
    if args.official_checkpoint:
        model, cfg, ckpt = model_from_official(ckpt_path, args.config, device=device)
        dataset = args.data
    else:
        model, cfg, ckpt = model_from_checkpoint(ckpt_path, device=device)
        dataset = args.data or info.dataset
        if not dataset:
            raise HanetError(f"{rd.info_path}: records no dataset; pass --data")
    data = _split_for(dataset, args.split, cfg)
    bs = args.batch_size or cfg.train.eval_batch_size
    epoch = "" if ckpt.get("epoch") is None else f", epoch {ckpt.get('epoch')}"
    print(f"evaluating {ckpt_path} ({model.variant}{epoch}) on {args.split}: "
          f"{len(data.names)} videos x {len(data.unique_captions)} captions, device {device}", file=sys.stderr)
    res = evaluate_split(model, data, device=device, batch_size=bs, per_score=not args.no_per_score,
                         pair_budget=args.pair_budget)
    print(format_table(res.metrics))
    print(f"({res.seconds:.1f} s)")
    if out is not None:
        atomic_write_json(out, {"checkpoint": str(ckpt_path), "split": args.split, "variant": model.variant,
                                "num_videos": len(res.video_names), "num_captions": len(res.captions),
                                "seconds": res.seconds, "metrics": res.metrics})
        print(f"metrics written to {out}", file=sys.stderr)
    if args.world:
        from hanet.data.synth import t2v_breakdown

        print(format_breakdown(t2v_breakdown(args.world, res.video_names, res.captions,
                                             res.scores["fused"].argmax(0), *data.gt_pairs)))
    if args.compare:
        print(_compare(args, res, data, dataset, device))
    if args.save_scores:
        from hanet.io import atomic_save_npy

        sp = Path(args.save_scores)
        atomic_save_npy(sp, res.scores["fused"].astype(np.float16))
        atomic_write_json(sp.with_suffix(".json"), {"rows_videos": res.video_names, "columns_captions": res.captions})
        print(f"fused scores written to {sp}", file=sys.stderr)
    return 0


__all__ = ["retrieval_metrics", "query_ranks", "metrics_from_ranks", "paired_recall", "sign_test_p", "encode_videos",
           "score_matrices", "evaluate_split", "EvalResult", "format_table", "METRIC_KEYS"]


