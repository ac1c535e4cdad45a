"""``hanet evaluate``: the command line of :mod:`hanet.evaluate` (a run, or an authors' checkpoint, on a split).

    hanet evaluate --run RUN --split tst
    hanet evaluate --run RUN --split tst --compare OTHER_RUN     # query by query, McNemar test
    hanet evaluate --official-checkpoint epoch.N.th --config model.json --data DATA --split tst
"""

from __future__ import annotations

from hanet import options

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # torch is imported only to run a command, not to print --help
    import torch

    from hanet.evaluate import EvalResult


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
    p.add_argument("--batch-size", type=options.COUNT, help="videos/captions per encoding batch (default: the config's)")
    p.add_argument("--pair-budget", type=options.COUNT, default=400_000, help="(video, caption) pairs scored at once")
    p.add_argument("--no-per-score", action="store_true", help="only the fused score's table (less memory)")
    p.add_argument("--save-scores", metavar="FILE.npy", help="write the fused matrix as float16 .npy "
                   "(rows: videos in name order; a FILE.json beside it lists rows and columns)")
    p.add_argument("--out", help="metrics JSON (default: RUN/eval/<split>.json; none for an official checkpoint)")
    p.add_argument("--compare", metavar="OTHER_RUN", help="also evaluate another run on the same split and compare "
                   "the two query by query (recall of each, queries only one finds, exact McNemar p-value)")
    p.add_argument("--world", metavar="DIR", help="for a split of a `hanet synth` world: also print text-to-video "
                   "R@1 by kind of caption, the kinds of wrong first answers (look-alike or another group), and "
                   "how well time spans find the true action (temporal IoU, R1@0.5/0.7 and mAP against rules that "
                   "see no pixel)")
    p.add_argument("--moment-predictions", metavar="OUT.jsonl", help="write the time spans judged in the moment "
                   "benchmark's prediction format (ranked windows per query): those of a dataset with time windows "
                   "(its moments.jsonl), or with --world the world's (and its ground truth as OUT.gt.jsonl)")
    p.add_argument("--moments", metavar="PREDICTIONS.jsonl", help="judge moment predictions in the QVHighlights "
                   "format (qid, vid, pred_relevant_windows, pred_saliency_scores) against --ground-truth, with the "
                   "benchmark's metrics and JSON keys (no run needed)")
    p.add_argument("--ground-truth", metavar="GT.jsonl", help="with --moments: the benchmark's ground truth (qid, "
                   "vid, duration, relevant_windows, relevant_clip_ids, saliency_scores)")
    p.add_argument("--shared-only", action="store_true", help="with --moments: judge the queries both files hold "
                   "(by default their query ids must be the same, as the benchmark requires)")


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
    from hanet.evaluate import evaluate_split
    from hanet.metrics import paired_recall
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


def run(args: argparse.Namespace) -> int:
    if args.moments or args.ground_truth:
        return _judge_moments(args)
    from hanet.devices import resolve_device
    from hanet.evaluate import evaluate_split, format_table
    from hanet.io import atomic_write_json, check_output_file

    if args.moment_predictions:
        check_output_file(args.moment_predictions, "moment predictions file")
    device = resolve_device(args.device)
    ckpt_path, out, info = _paths(args)
    # outputs are checked before the (long) evaluation, not after it
    if out is not None:
        check_output_file(out, "metrics file")
    if args.save_scores:
        check_output_file(args.save_scores, "score file")
        check_output_file(Path(args.save_scores).with_suffix(".json"), "score index file")
    model, cfg, ckpt, dataset = _model(args, ckpt_path, info, device)
    data = _split_for(dataset, args.split, cfg)
    bs = args.batch_size or cfg.train.eval_batch_size
    epoch = "" if ckpt.get("epoch") is None else f", epoch {ckpt.get('epoch')}"
    print(f"evaluating {ckpt_path} ({model.variant}{epoch}) on {args.split}: "
          f"{len(data.names)} videos x {len(data.unique_captions)} captions, device {device}", file=sys.stderr)
    res = evaluate_split(model, data, device=device, batch_size=bs, per_score=not args.no_per_score,
                         pair_budget=args.pair_budget)
    print(format_table(res.metrics))
    print(f"({res.seconds:.1f} s)")
    spans = _spans(args, model, data, res, dataset)
    if out is not None:
        atomic_write_json(out, {"checkpoint": str(ckpt_path), "split": args.split, "variant": model.variant,
                                "num_videos": len(res.video_names), "num_captions": len(res.captions),
                                "seconds": res.seconds, "metrics": res.metrics,
                                **({"moments": spans} if spans is not None else {})})
        print(f"metrics written to {out}", file=sys.stderr)
    if args.compare:
        print(_compare(args, res, data, dataset, device))
    if args.save_scores:
        _save_scores(args.save_scores, res)
    return 0


def _paths(args: argparse.Namespace) -> tuple[Path, Optional[Path], Any]:
    """The checkpoint to evaluate, where its metrics go, and the run's record (None for the
    authors' checkpoints); the option combinations that cannot work are refused first."""
    from hanet.errors import HanetError
    from hanet.run import RunDir

    if args.official_checkpoint:
        if args.run or args.checkpoint:
            raise HanetError("give --run/--checkpoint or --official-checkpoint, not both")
        if not args.config or not args.data:
            raise HanetError("--official-checkpoint needs --config (the authors' model.json) and --data")
        if args.compare:
            raise HanetError("--compare needs a run (--run)")
        return Path(args.official_checkpoint), Path(args.out) if args.out else None, None
    if not args.run:
        raise HanetError("give --run RUN_DIR (or --official-checkpoint FILE.th --config model.json)")
    if args.config:
        raise HanetError("--config goes with --official-checkpoint (a run records its own config)")
    rd = RunDir(args.run)
    info = rd.read_info()
    ckpt_path = Path(args.checkpoint) if args.checkpoint else rd.default_checkpoint()
    return ckpt_path, Path(args.out) if args.out else rd.path / "eval" / f"{args.split}.json", info


def _model(args: argparse.Namespace, ckpt_path: Path, info: Any, device: Any) -> tuple[Any, Any, dict, str]:
    """The model, its config, its checkpoint record and the dataset to evaluate it on."""
    from hanet.errors import HanetError
    from hanet.run import RunDir, model_from_checkpoint, model_from_official

    if args.official_checkpoint:
        model, cfg, ckpt = model_from_official(ckpt_path, args.config, device=device)
        return model, cfg, ckpt, args.data
    model, cfg, ckpt = model_from_checkpoint(ckpt_path, device=device)
    dataset = args.data or info.dataset
    if not dataset:
        raise HanetError(f"{RunDir(args.run).info_path}: records no dataset; pass --data")
    return model, cfg, ckpt, dataset


def _spans(args: argparse.Namespace, model: Any, data: Any, res: Any, dataset: str) -> Optional[dict[str, Any]]:
    """The time spans' figures: on a synthetic world (``--world``) or on a dataset whose
    description names a moments file; None when there is neither."""
    from hanet.data.formats import DatasetSpec
    from hanet.errors import HanetError

    spans = None
    if args.world:
        from hanet.data.synth import t2v_breakdown
        from hanet.world_moments import collect, format_moments, summarize, write_benchmark_files

        print(format_breakdown(t2v_breakdown(args.world, res.video_names, res.captions,
                                             res.scores["fused"].argmax(0), *data.gt_pairs)))
        collected = collect(model.cpu(), data, args.world)
        spans = summarize(collected)
        print(format_moments(spans))
        if args.moment_predictions:
            gt = _gt_path(args.moment_predictions)
            n = write_benchmark_files(collected, args.moment_predictions, gt)
            print(f"{n} span queries written to {args.moment_predictions} (ground truth: {gt})", file=sys.stderr)
        return spans
    moments_file = DatasetSpec.load(dataset).moments
    if args.moment_predictions and not moments_file:
        raise HanetError("--moment-predictions needs a dataset with time windows (its description names a "
                         "moments.jsonl, as `hanet import` writes) or --world")
    if moments_file is not None:
        from hanet.moment_predict import evaluate_spans

        spans = evaluate_spans(model.cpu(), data, moments_file, args.moment_predictions)
        if spans is None:
            print(f"time spans: no query of {moments_file} is about a video of {args.split}", file=sys.stderr)
        else:
            b = spans["metrics"]["brief"]
            print(f"time spans of {spans['queries']} queries ({moments_file}): mean tIoU {spans['mean_iou']:.3f}, "
                  + ", ".join(f"{k} {v:.2f}" for k, v in b.items() if k.startswith("MR-full") or k.startswith("HL")))
    return spans


def _save_scores(path: str, res: Any) -> None:
    import numpy as np

    from hanet.io import atomic_save_npy, atomic_write_json

    sp = Path(path)
    atomic_save_npy(sp, res.scores["fused"].astype(np.float16))
    atomic_write_json(sp.with_suffix(".json"), {"rows_videos": res.video_names, "columns_captions": res.captions})
    print(f"fused scores written to {sp}", file=sys.stderr)



def _gt_path(predictions: str) -> Path:
    p = Path(predictions)
    return p.with_name(p.name[:-len(".jsonl")] + ".gt.jsonl" if p.name.endswith(".jsonl") else p.name + ".gt.jsonl")


def _judge_moments(args: argparse.Namespace) -> int:
    """``--moments P --ground-truth GT``: the moment benchmark's evaluation of a prediction file."""
    import json

    from hanet.errors import HanetError
    from hanet.io import atomic_write_json, check_output_file
    from hanet.moment_metrics import evaluate_moments, read_ground_truth, read_predictions

    if not (args.moments and args.ground_truth):
        raise HanetError("--moments PREDICTIONS.jsonl and --ground-truth GT.jsonl go together")
    if args.run or args.official_checkpoint:
        raise HanetError("--moments judges a prediction file: give no --run or --official-checkpoint")
    if args.out:
        check_output_file(args.out, "metrics file")
    ev = evaluate_moments(read_predictions(args.moments), read_ground_truth(args.ground_truth),
                          shared=args.shared_only)
    if ev.missing or ev.extra:
        print(f"judged the {ev.queries} queries both files hold: {len(ev.missing)} ground-truth queries have no "
              f"prediction, {len(ev.extra)} predictions are not in the ground truth", file=sys.stderr)
    width = max(len(k) for k in ev.metrics["brief"]) if ev.metrics["brief"] else 0
    for k, v in ev.metrics["brief"].items():
        print(f"{k:<{width}}  {v:6.2f}")
    if args.out:
        atomic_write_json(args.out, ev.metrics)
        print(f"metrics written to {args.out}", file=sys.stderr)
    else:
        print(json.dumps(ev.metrics, indent=4))
    return 0


__all__ = ["add_arguments", "run", "format_breakdown"]
