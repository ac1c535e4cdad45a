"""``hanet export``: an index's (or a feature file's) encodings as Parquet (see :mod:`hanet.export`).

Examples::

    hanet export idx --out idx-export                        # videos.parquet, captions.parquet
    hanet export idx --out idx-export --queries queries.txt  # and the queries, encoded
    hanet export feats.hdf5 --run runs/synth --out feats-export
"""

from __future__ import annotations

from hanet import options

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="an index folder, or an HDF5 feature file (with --run)")
    parser.add_argument("--out", required=True, help="folder for videos.parquet, captions.parquet, queries.parquet")
    parser.add_argument("--run", help="with a feature file: the run whose model encodes it")
    parser.add_argument("--checkpoint", help="with a feature file: a checkpoint instead of the run's default")
    parser.add_argument("--queries", metavar="FILE", help="text queries to encode too, one per line")
    parser.add_argument("--vocab", help="with a feature file and --queries: word2int.json (default: the run's)")
    parser.add_argument("--batch-size", type=options.COUNT, default=256, help="videos per batch (default 256)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def run(args: argparse.Namespace) -> int:
    from hanet.errors import HanetError
    from hanet.export import export

    if args.batch_size < 1:
        raise HanetError("--batch-size must be >= 1")
    rep = export(args.source, args.out, run=args.run, checkpoint=args.checkpoint, queries=args.queries,
                 vocab=args.vocab, batch_size=args.batch_size, progress=not args.quiet)
    print(rep.summary())
    for s in rep.skipped[:20]:
        print(f"skipped: {s}")
    return 0
