"""``hanet index``: build, add to, delete from and describe a search index.

Examples::

    hanet index build --run runs/synth --features feats.hdf5 --out idx --videos videos/ \\
        --captions data/ref_captions.json
    hanet index add idx --features new_feats.hdf5 --videos new_videos/
    hanet index delete idx video12 video40
    hanet index info idx
    hanet index verify idx                             # every byte of every file against the manifest
    hanet index repair idx                             # drop damaged segments, rebuild from the intact ones
    hanet index build ... --out idx --backend qdrant --url http://qdrant:6333   # first stage in Qdrant
    hanet index sync idx --url http://qdrant:6333      # upload an index to Qdrant, or repair its collection
"""

from __future__ import annotations

from hanet import options

import argparse
import json
import sys


def _common_add(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, nargs="+", metavar="FEATURES.hdf5",
                   help="feature file(s) from `hanet extract` (several are concatenated per frame)")
    p.add_argument("--videos", metavar="DIR", help="folder of the video files, for thumbnails and previews "
                   "(default: the paths recorded in the feature file, where they exist)")
    p.add_argument("--captions", metavar="JSON", help="{video: [caption, ...]} to index for video-to-text search")
    p.add_argument("--rolegraphs", metavar="JSON", help="role graphs of those captions (default: "
                   "sent2rolegraph.augment.json beside the caption file; others are parsed with spaCy)")
    p.add_argument("--names", metavar="FILE", help="only these videos (.npy of names, or one name per line)")
    p.add_argument("--batch-size", type=options.COUNT, default=64, help="videos per encoder call (default 64)")
    p.add_argument("--segment-size", type=options.COUNT, default=20000,
                   help="videos per committed segment: a crash loses at most one (default 20000)")
    p.add_argument("--no-thumbnails", action="store_true", help="do not decode videos for thumbnail strips")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="index_command", metavar="ACTION")
    b = sub.add_parser("build", help="encode the videos of feature files into a new index")
    b.add_argument("--run", help="run directory of the trained model (its best checkpoint, else last)")
    b.add_argument("--checkpoint", help="a checkpoint file instead of the run's default")
    b.add_argument("--official-checkpoint", metavar="FILE.th", help="an authors' checkpoint (epoch.N.th) instead "
                   "of a run; with --config (their model.json) and --vocab")
    b.add_argument("--config", metavar="model.json", help="with --official-checkpoint: the authors' model.json")
    b.add_argument("--out", required=True, help="the new index directory")
    _common_add(b)
    b.add_argument("--vocab", help="word2int.json (default: the run's dataset's)")
    b.add_argument("--concepts", metavar="DIR", help="folder with verb_concepts.json / noun_concepts.json "
                   "(default: beside the vocabulary)")
    b.add_argument("--frame-dtype", default="float16", choices=("float16", "int8"),
                   help="per-frame tensors as float16 (default) or int8 with a scale per frame (about half the "
                        "bytes; see docs/search.md for what it costs in agreement)")
    b.add_argument("--first-stage", default="auto", choices=("auto", "exact", "ivf"),
                   help="candidate search: auto (an inverted-file index from 50,000 videos on, the exact scan "
                        "below), exact (always scan every video), ivf (approximate at any size)")
    b.add_argument("--backend", default="embedded", choices=("embedded", "qdrant"),
                   help="where the first stage lives: embedded (FAISS files in the index, default) or qdrant "
                        "(a Qdrant collection; the index folder keeps the model and the frame store)")
    b.add_argument("--url", help="with --backend qdrant: http://host:6333 (a Qdrant server or cluster), edge:PATH "
                   "(the Qdrant engine in-process, PATH relative to the index) or local:PATH (qdrant-client's "
                   "local mode)")
    b.add_argument("--collection", help="with --backend qdrant: name prefix of the two collections "
                   "(default hanet_<index uid>)")
    b.add_argument("--example", action="append", default=[], metavar="QUERY",
                   help="an example query the web page offers (repeatable; default: indexed captions)")

    a = sub.add_parser("add", help="add the videos of feature files (already indexed ones are skipped)")
    a.add_argument("index", help="the index directory")
    _common_add(a)
    a.add_argument("--run", help="check that this run's model is the index's (refused otherwise)")
    a.add_argument("--checkpoint", help="check this checkpoint instead")
    a.add_argument("--replace", action="store_true", help="re-encode videos already indexed")

    d = sub.add_parser("delete", help="delete videos (no rebuild)")
    d.add_argument("index", help="the index directory")
    d.add_argument("ids", nargs="*", metavar="ID", help="video ids")
    d.add_argument("--ids-file", help="a file with one id per line")
    d.add_argument("--missing-ok", action="store_true", help="ignore ids that are not in the index")

    y = sub.add_parser("sync", help="upload an index's first stage to a Qdrant engine, or bring its collection "
                       "up to date (after a crash, a lost or a new cluster)")
    y.add_argument("index", help="the index directory")
    y.add_argument("--url", help="the engine (default: the index's own; required for an embedded index)")
    y.add_argument("--collection", help="name prefix of the collections (default: the index's own)")
    y.add_argument("--full", action="store_true", help="upload every live row even where the counts agree")
    y.add_argument("--quiet", action="store_true", help="no progress messages")

    i = sub.add_parser("info", help="describe an index")
    i.add_argument("index", help="the index directory")
    i.add_argument("--json", action="store_true", help="print JSON")

    v = sub.add_parser("verify", help="check every file of an index against the checksums its manifest recorded")
    v.add_argument("index", help="the index directory")
    v.add_argument("--ids-out", metavar="FILE", help="write the ids of the videos in damaged segments here, one per "
                   "line")
    v.add_argument("--json", action="store_true", help="print JSON")

    r = sub.add_parser("repair", help="drop the segments with a damaged file and rebuild the first stage from the "
                       "intact ones (the dropped videos are listed, to be added again)")
    r.add_argument("index", help="the index directory")
    r.add_argument("--ids-out", metavar="FILE", help="write the ids of the dropped videos here, one per line")
    r.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    cmd = getattr(args, "index_command", None)
    if cmd is None:
        print("hanet index: choose an action: build, add, delete, sync, info, verify or repair (see hanet index --help)",
              file=sys.stderr)
        return 2
    return {"sync": _sync, "verify": _verify, "repair": _repair, "info": _info, "delete": _delete,
            "build": _build_or_add, "add": _build_or_add}[cmd](args)


def _sync(args: argparse.Namespace) -> int:
    from hanet.index.build import sync_engine

    r = sync_engine(args.index, url=args.url, collection=args.collection, full=args.full, progress=not args.quiet)
    print(f"{args.index}: first stage in qdrant at {r['url']}, collections {r['collection']}_videos "
          f"({r['videos']} points) and {r['collection']}_captions ({r['captions']} points); "
          f"{r['uploaded']} row(s) uploaded")
    return 0


def _info(args: argparse.Namespace) -> int:
    from hanet.index.audit import index_info
    from hanet.index.tuning import CANDIDATE_READ_BYTES, DEFAULT_CANDIDATES

    info = index_info(args.index)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        m = info["model"]
        fs = info["first_stage"]
        print(f"{info['index']}: {info['videos']} videos ({info['videos_deleted']} deleted), "
              f"{info['captions']} captions, generation {info['generation']}\n"
              f"  model {m['fingerprint']} ({m['variant']}, d={m['dim_embed']}, T={m['max_frames_in_video']}) "
              f"from {m['source']}\n"
              f"  {info['disk_bytes'] / 2 ** 20:.1f} MiB on disk in {info['segments']} segment(s)\n"
              f"  first stage: {fs['kind']}"
              + (f" (inverted file, {fs['lists']} lists, 8-bit), policy {fs['policy']}" if fs["kind"] == "ivf"
                 else f" (collections {info['engine']['collection']}_videos/_captions at {info['engine']['url']})"
                 if fs["kind"] == "qdrant" else f" (every video scanned), policy {fs['policy']}")
              + "\n"
              f"  stored per video: {sum(info['bytes_per_video'].values()) / 1024:.1f} KiB, frames as "
              f"{info['frame_dtype']} ("
              + ", ".join(f"{k} {v}" for k, v in sorted(info["bytes_per_video"].items(), key=lambda kv: -kv[1])[:6])
              + ", ...)\n"
              f"  default candidates: {info['default_candidates']} (as many as "
              f"{CANDIDATE_READ_BYTES >> 20} MiB of records hold, at most {DEFAULT_CANDIDATES})\n"
              f"  phrase products on this machine: {info['phrase_products']}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from hanet.errors import HanetError
    from hanet.index.build import delete_videos

    ids = list(args.ids)
    if args.ids_file:
        try:
            with open(args.ids_file) as f:
                ids += [line.strip() for line in f if line.strip()]
        except OSError as exc:
            raise HanetError(f"{args.ids_file}: {exc.strerror}") from None
    if not ids:
        raise HanetError("give the ids of the videos to delete")
    n = delete_videos(args.index, ids, missing_ok=args.missing_ok)
    print(f"{args.index}: deleted {n} video(s)")
    return 0


def _build_or_add(args: argparse.Namespace) -> int:
    from hanet.errors import HanetError
    from hanet.index.build import add_videos, build_index

    if args.batch_size < 1 or args.segment_size < 1:
        raise HanetError("--batch-size and --segment-size must be >= 1")
    common = dict(videos_dir=args.videos, captions=args.captions, rolegraphs=args.rolegraphs, names=args.names,
                  batch_size=args.batch_size, segment_size=args.segment_size, thumbnails=not args.no_thumbnails,
                  progress=not args.quiet)
    if args.index_command == "build":
        official = None
        if args.official_checkpoint:
            if args.run or args.checkpoint:
                raise HanetError("give --run/--checkpoint or --official-checkpoint, not both")
            if not args.config or not args.vocab:
                raise HanetError("--official-checkpoint needs --config (the authors' model.json) and --vocab "
                                 "(the word2int.json the model was trained with)")
            official = (args.official_checkpoint, args.config)
        elif args.config:
            raise HanetError("--config goes with --official-checkpoint (a run records its own config)")
        elif not args.run and not args.checkpoint:
            raise HanetError("give --run RUN_DIR (or --checkpoint FILE, or --official-checkpoint FILE)")
        rep = build_index(args.run, args.features, args.out, checkpoint=args.checkpoint, official=official,
                          vocab=args.vocab, concepts=args.concepts, first_stage=args.first_stage,
                          frame_dtype=args.frame_dtype, backend=args.backend, engine_url=args.url,
                          collection=args.collection, examples=args.example, **common)
    else:
        rep = add_videos(args.index, args.features, run_dir=args.run, checkpoint=args.checkpoint,
                         replace=args.replace, **common)
    if args.json:
        d = rep.to_dict()
        d["added"], d["skipped"], d["replaced"] = len(rep.added), len(rep.skipped), len(rep.replaced)
        print(json.dumps(d, indent=2))
    else:
        print(rep.summary())
    return 0


def _write_ids(path: str | None, ids: list[str]) -> None:
    """``--ids-out``: the ids, one per line (nothing written when there are none)."""
    from hanet.io import atomic_write_text

    if path and ids:
        atomic_write_text(path, "".join(f"{i}\n" for i in ids))


def _verify(args: argparse.Namespace) -> int:
    from hanet.index.audit import verify_index

    r = verify_index(args.index)
    _write_ids(args.ids_out, [i for seg in r["damaged_segments"] if seg["part"] == "videos" for i in seg["ids"] or []])
    if args.json:
        print(json.dumps(r, indent=2))
    elif not r["recorded"]:
        print(f"{args.index}: this index records no checksums (built by an older hanet); rebuild it to verify it")
    elif not r["problems"]:
        print(f"{args.index}: {r['files']} files, every byte as recorded")
    else:
        print(f"{args.index}: {len(r['problems'])} of {r['files']} files are not as recorded:", file=sys.stderr)
        for p in r["problems"]:
            print(f"  {p}", file=sys.stderr)
        for seg in r["damaged_segments"]:
            held = f"{len(seg['ids'])} {seg['part']}" if seg["ids"] is not None else f"rows {seg['rows'][0]}-{seg['rows'][1] - 1}"
            print(f"  segment {seg['segment']} holds {held}", file=sys.stderr)
        print("a damaged index is not searched: `hanet index repair` drops the damaged segments and keeps the "
              "rest searchable; or build it again from its features (`hanet index build`)", file=sys.stderr)
    return 2 if r["problems"] else 0


def _repair(args: argparse.Namespace) -> int:
    from hanet.index.build import repair_index

    r = repair_index(args.index)
    videos = r["dropped"].get("videos", [])
    _write_ids(args.ids_out, videos)
    if args.json:
        print(json.dumps(r, indent=2))
    elif not r["repaired"]:
        print(f"{args.index}: every file as recorded; nothing to repair")
    else:
        caps = len(r["dropped"].get("captions", []))
        print(f"{args.index}: repaired: {len(videos)} video(s) and {caps} caption(s) dropped with their damaged "
              f"segments; the rest is searchable" + (f"; add the videos again with `hanet index add "
              f"{args.index} --features ... --names {args.ids_out}`" if args.ids_out and videos else ""))
    return 0
