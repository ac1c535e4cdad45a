"""``hanet synth``: render the built-in synthetic video world.

Examples::

    hanet synth --out work/synth                      # the default world (1,600 clips)
    hanet synth --out work/quick --quick              # 64 small clips, for tests
    hanet synth --out work/synth --videos 400 --seed 3 --size 112 --fps 10
    hanet synth --out work/synth --set group_size=1 --set p_two_actions=0.6
    hanet synth --list-knobs                          # every --set field and its default
    hanet synth --out work/synth --stats              # + how hard the splits are (oracle R@1)
"""

from __future__ import annotations

from hanet import options

import argparse
import sys

from hanet.errors import HanetError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``hanet synth``'s arguments.

    Args:
        parser: the subcommand's parser.
    """
    parser.add_argument("--out", help="directory of the world (created; reused when it "
                        "already holds the same world)")
    parser.add_argument("--videos", type=options.integer(4, 1_000_000), help="number of clips (default: the preset's)")
    parser.add_argument("--seed", type=options.SEED, default=0, help="random seed (default 0)")
    parser.add_argument("--preset", default="default", choices=["default", "quick"], help="knob preset: default or quick")
    parser.add_argument("--quick", action="store_true", help="same as --preset quick")
    parser.add_argument("--size", type=options.integer(32, 1024), help="frame width and height in pixels (even, 32 to 1024)")
    parser.add_argument("--fps", type=options.number(1, 60), help="frames per second")
    parser.add_argument("--duration", type=options.number(0, 600, lo_open=True), help="clip length in seconds")
    parser.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE",
                        help="set any SynthConfig field (repeatable); see --list-knobs")
    parser.add_argument("--workers", type=options.integer(1, 256), help="drawing processes (default: one per core; "
                        "the output does not depend on it)")
    parser.add_argument("--force", action="store_true", help="regenerate even if --out holds "
                        "this world")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--stats", action="store_true", help="print oracle R@1 per split "
                        "(how far colour/shape words, or all words, tell the clips apart)")
    parser.add_argument("--list-knobs", action="store_true", help="print every knob of the "
                        "chosen preset and exit")


def build_config(args: argparse.Namespace):  # -> SynthConfig (import kept lazy)
    """The config the arguments ask for.

    Args:
        args: parsed ``hanet synth`` arguments.

    Returns:
        The validated :class:`~hanet.data.synth.config.SynthConfig`.

    Raises:
        HanetError: an unknown preset or knob, or an invalid value.
    """
    from hanet.data.synth.config import SynthConfig

    cfg = SynthConfig.preset("quick" if args.quick else args.preset)
    assignments: dict[str, str] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HanetError(f"--set {item!r}: expected KNOB=VALUE")
        assignments[key.strip()] = value.strip()
    cfg = cfg.with_strings(assignments)
    overrides = {}
    if args.videos is not None:
        overrides["num_videos"] = args.videos
    if args.size is not None:
        overrides["width"] = overrides["height"] = args.size
    if args.fps is not None:
        overrides["fps"] = args.fps
    if args.duration is not None:
        overrides["duration_s"] = args.duration
    return cfg.replace(**overrides)


def run(args: argparse.Namespace) -> int:
    """Run ``hanet synth``.

    Args:
        args: parsed arguments.

    Returns:
        The exit status (0).

    Raises:
        HanetError: bad arguments.
    """
    cfg = build_config(args)
    if args.list_knobs:
        for key, value in cfg.to_dict().items():
            print(f"{key} = {value}")
        return 0
    if not args.out:
        raise HanetError("--out DIR is required")
    if args.workers is not None and args.workers < 1:
        raise HanetError(f"--workers {args.workers}: must be >= 1")
    from hanet.data.synth.pipeline import generate

    report = generate(args.out, cfg, seed=args.seed, progress=not args.no_progress,
                      workers=args.workers, force=args.force)
    print(report.summary(), file=sys.stdout)
    if report.held_out:
        pairs = ", ".join(f"{v} {a}" for _, v, a in report.held_out)
        print(f"synth: tst_novel shows held-out pairs: {pairs}")
    if args.stats:
        from hanet.data.synth.analysis import oracle_recall
        from hanet.data.synth.config import SPLITS

        print("synth: oracle text-to-video R@1 (appearance words only / all words; chance)")
        for split in SPLITS:
            r = oracle_recall(args.out, split)
            if r["clips"]:
                print(f"  {split:<9} {r['appearance']:.3f} / {r['words']:.3f}  "
                      f"(chance {1 / r['clips']:.3f}, {r['clips']} clips)")
    return 0
