"""``hanet search``: text-to-video (or, with ``--video``, video-to-text) search of an index.

Examples::

    hanet search idx "a red ball bounces" -k 10
    hanet search idx "a red ball bounces" --mode exhaustive --json
    hanet search idx --video video12 -k 5           # captions for a video (captions indexed)
"""

from __future__ import annotations

from hanet import options

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", help="the index directory (from `hanet index build`)")
    parser.add_argument("query", nargs="?", help="the text query")
    parser.add_argument("-k", type=options.COUNT, default=10, help="results (default 10)")
    parser.add_argument("--mode", default="two-stage", choices=["two-stage", "exhaustive"],
                        help="two-stage (first-stage candidates, then the full score; default) or exhaustive (exact)")
    parser.add_argument("--candidates", type=options.COUNT, help="first-stage candidates (default: as many as 36 MiB of "
                        "records hold, at most 500: 500 at the synth sizes, 200 at MSR-VTT's; `hanet index info` says)")
    parser.add_argument("--video", metavar="ID", help="video-to-text: rank the indexed captions for this video")
    parser.add_argument("--run", help="refuse to search unless the index was built with this run's model")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--phrases", action="store_true", help="also print each query phrase's span in each hit")
    parser.add_argument("--engine-url", metavar="URL", help="an engine-backed index's Qdrant at this URL instead "
                        "of the one the index records")


def run(args: argparse.Namespace) -> int:
    from hanet.errors import HanetError
    from hanet.index.search import SearchIndex

    if (args.query is None) == (args.video is None):
        raise HanetError("give a text query, or --video ID for video-to-text search (not both)")
    if args.k < 1:
        raise HanetError("-k must be >= 1")
    index = SearchIndex.open(args.index, run=args.run, engine_url=args.engine_url)
    if args.video is not None:
        res = index.search_captions(args.video, args.k, args.mode, args.candidates)
        if args.json:
            print(json.dumps(res.to_dict(), indent=2))
            return 0
        print(f"captions for {res.video_id} ({res.total} captions, {res.candidates} scored, {res.mode}):")
        for h in res.hits:
            print(f"{h.rank:>3}. {h.score:.4f}  {h.caption}   [{h.video_id}]")
        return 0
    res = index.search_result(args.query, args.k, args.mode, args.candidates)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
        return 0
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{res.normalized!r}: top {len(res.hits)} of {res.total} videos ({res.mode}, {res.candidates} scored, "
          f"{res.timings_ms['total']:.0f} ms)")
    names = list(res.hits[0].scores) if res.hits else []
    print(f"{'rank':>4}  {'video':<24} {'fused':>7}  {'moment':<14}" + " ".join(f"{n:>12}" for n in names))
    for h in res.hits:
        when = h.moment.format() if h.moment is not None else "-"
        print(f"{h.rank:>4}  {h.video_id:<24} {h.score:>7.4f}  {when:<14}"
              + " ".join(f"{h.scores[n]:>12.4f}" for n in names))
        if args.phrases:
            for p in h.phrases:
                print(f"{'':>6}{p.kind:<5} {p.text!r:<30} {p.span.format()}"
                      + (f"  ({p.span.note})" if p.span.note else ""))
    if index.moments_note:
        print(f"note: {index.moments_note}", file=sys.stderr)
    notes = sorted({h.moment.note for h in res.hits if h.moment is not None and h.moment.note})
    for n in notes:
        print(f"note: moment: {n}")
    return 0
