"""``hanet import``: a public dataset's own annotation files -> a hanet dataset folder.

    hanet import msrvtt train_val_videodatainfo.json test_videodatainfo.json --out data/msrvtt --videos videos/
    hanet import msrvtt MSRVTT_data.json --split 1k-a --train-list MSRVTT_train.9k.csv \\
        --test-list MSRVTT_JSFUSION_test.csv --out data/msrvtt-1ka
    hanet import qvhighlights highlight_train_release.jsonl highlight_val_release.jsonl --out data/qvh
    hanet import csv my_captions.csv --video-column clip --caption-column text --out data/mine
"""

from __future__ import annotations

from hanet import options

import argparse
import json
import sys
from pathlib import Path

from hanet.errors import HanetError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from hanet.data.importers import FORMATS

    p.add_argument("format", choices=list(FORMATS), help="the dataset's format: " + "; ".join(
        f"{k}: {v}" for k, v in FORMATS.items()))
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="its annotation files")
    p.add_argument("--out", required=True, help="the dataset folder to write (new, empty, or an earlier import's)")
    p.add_argument("--videos", metavar="DIR", help="the folder of its video files: those missing are named in the "
                   "report, and lengths the annotations lack are read from the files")
    p.add_argument("--strict", action="store_true", help="any bad record is an error (exit 2, nothing written); "
                   "by default bad records are left out and listed")
    p.add_argument("--clip-windows", action="store_true", help="cut windows that run past the video's end to it "
                   "(default: leave such entries out, listed)")
    p.add_argument("--split", default="full", choices=["full", "1k-a"], help="msrvtt: the release's splits (full, "
                   "default) or the 1k-A split (with --train-list and --test-list)")
    p.add_argument("--train-list", metavar="FILE", help="msrvtt 1k-a: MSRVTT_train.9k.csv (video_id column) or a "
                   "file of video ids, one per line")
    p.add_argument("--test-list", metavar="FILE", help="msrvtt 1k-a: MSRVTT_JSFUSION_test.csv (video_id and "
                   "sentence columns) or a file of video ids")
    p.add_argument("--val-from-train", type=options.NONNEGATIVE, default=0, metavar="N", help="msrvtt 1k-a: hold out the last N "
                   "training videos as a validation split (1k-A has none; default 0)")
    p.add_argument("--split-of", action="append", default=[], metavar="FILE=SPLIT", help="the split of a source "
                   "whose name does not say it (trn, val or tst; repeatable)")
    p.add_argument("--video-column", default="video", help="csv/jsonl: the column naming the video (default video)")
    p.add_argument("--caption-column", default="caption", help="csv/jsonl: the caption column (default caption)")
    p.add_argument("--start-column", help="csv/jsonl: a window's start in seconds (with --end-column)")
    p.add_argument("--end-column", help="csv/jsonl: a window's end in seconds")
    p.add_argument("--duration-column", help="csv/jsonl: the video's length in seconds")
    p.add_argument("--split-column", help="csv/jsonl: the split (trn/train, val/validation, tst/test); without it "
                   "each video's split is drawn from a hash of its name")
    p.add_argument("--val-share", type=options.SHARE, default=0.1, help="csv/jsonl without a split column: share of videos "
                   "in val (default 0.1)")
    p.add_argument("--test-share", type=options.SHARE, default=0.2, help="csv/jsonl without a split column: share of videos "
                   "in tst (default 0.2)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from hanet.data.importers import ImportOptions, import_dataset
    from hanet.data.importers.table import Columns

    split_of = {}
    for item in args.split_of:
        name, sep, split = item.partition("=")
        if not sep or split not in ("trn", "val", "tst"):
            raise HanetError(f"--split-of takes FILE=SPLIT with SPLIT trn, val or tst, not {item!r}")
        split_of[Path(name).name] = split
    for opt in ("val_share", "test_share"):
        v = getattr(args, opt)
        if not 0 <= v < 1:
            raise HanetError(f"--{opt.replace('_', '-')} must be in [0, 1), not {v}")
    if args.val_share + args.test_share >= 1:
        raise HanetError("--val-share plus --test-share must leave videos for training")
    if args.val_from_train < 0:
        raise HanetError(f"--val-from-train must be >= 0, not {args.val_from_train}")
    cols = Columns(args.video_column, args.caption_column, args.start_column, args.end_column, args.duration_column,
                   args.split_column, args.val_share, args.test_share)
    opts = ImportOptions(args.split, Path(args.train_list) if args.train_list else None,
                         Path(args.test_list) if args.test_list else None, args.val_from_train, split_of, cols)
    report = import_dataset(args.format, args.sources, args.out, videos=args.videos, strict=args.strict,
                            clip_windows=args.clip_windows, options=opts)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print(report.summary())
        print(f"next: hanet extract VIDEOS --out {Path(args.out) / 'features.hdf5'}; hanet prepare --captions "
              f"{Path(args.out) / 'ref_captions.json'} --train-names {Path(args.out) / 'trn_names.npy'} "
              f"--out {Path(args.out) / 'ann'}", file=sys.stderr)
    return 0


__all__ = ["add_arguments", "run"]
