"""The ``hanet`` command line: one entry point, subcommands that chain.

Each subcommand lives in its own module, which exposes ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their subcommand runs, so ``hanet --help``
stays fast and a missing optional dependency only breaks the subcommand that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from hanet.errors import HanetError

# name -> (module, one-line help). Order is the order of the pipeline.
COMMANDS: dict[str, tuple[str, str]] = {
    "import": ("hanet.import_cli", "public datasets in their own formats -> a dataset folder (captions, splits, "
                                   "time windows)"),
    "synth": ("hanet.data.synth.cli", "render the built-in synthetic video world (mp4 + captions)"),
    "extract": ("hanet.video.cli", "decode videos and extract per-frame features into HDF5"),
    "prepare": ("hanet.text.cli", "captions -> vocabulary, concepts and role graphs"),
    "check-data": ("hanet.data.check", "validate a dataset in the released MSR-VTT/VATEX format"),
    "train": ("hanet.train_cli", "train HANet on a dataset"),
    "evaluate": ("hanet.evaluate_cli", "evaluate a trained run (R@K, MedR, MnR, rsum)"),
    "index": ("hanet.index.cli", "build or update a search index of videos"),
    "search": ("hanet.index.search_cli", "search an index with a text query"),
    "explain": ("hanet.index.explain_cli", "explain why a video matches a query"),
    "serve": ("hanet.serve.cli", "serve an index over HTTP with a web page"),
    "export": ("hanet.export_cli", "write an index's (or a feature file's) encodings as Parquet tables"),
    "demo": ("hanet.demo", "run the whole pipeline on the built-in synthetic world"),
    "export-official": ("hanet.official_cli", "write a trained run as the authors' checkpoint + model.json"),
    "parity": ("hanet.parity_cli", "check numbers against the official code's reference outputs"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser; only ``selected``'s module is imported.

    Args:
        selected: the subcommand whose arguments are added, or None for the listing only.
    """
    from hanet import __version__

    parser = argparse.ArgumentParser(
        prog="hanet",
        description="HANet video-text retrieval: synth -> extract -> prepare -> train -> "
        "evaluate -> index -> search / explain / serve.",
    )
    parser.add_argument("--version", action="version", version=f"hanet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    if selected not in COMMANDS:
        selected = None
    parser = build_parser(selected)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except HanetError as exc:  # bad input: a clear message, no traceback
        print(f"hanet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `hanet ... | head`: the reader left; so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # a file system refusal the command did not foresee: still no traceback
        from hanet.io import os_error_reason

        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f) or "a file"
        print(f"hanet {args.command}: error: {where}: {os_error_reason(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
