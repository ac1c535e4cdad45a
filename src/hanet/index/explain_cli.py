"""``hanet explain``: why a video matches a query (scores, phrase-frame alignment, concepts).

Example::

    hanet explain idx "a red ball bounces" video12
    hanet explain idx "a red ball bounces" video12 --json
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", help="the index directory")
    parser.add_argument("query", help="the text query")
    parser.add_argument("video", help="an indexed video id")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--engine-url", metavar="URL", help="an engine-backed index's Qdrant at this URL instead "
                        "of the one the index records")


def run(args: argparse.Namespace) -> int:
    from hanet.index.search import SearchIndex

    index = SearchIndex.open(args.index, engine_url=args.engine_url)
    exp = index.explain(args.query, args.video)
    print(json.dumps(exp.to_dict(), indent=2) if args.json else exp.format())
    return 0
