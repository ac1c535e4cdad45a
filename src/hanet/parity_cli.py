"""``hanet parity``: the command line of :mod:`hanet.parity` (torch is imported only to run it)."""

from __future__ import annotations

from hanet import options

import argparse
import math
from pathlib import Path

from hanet.errors import HanetError

#: the reference set shipped with hanet
DEFAULT_REFERENCE = Path(__file__).resolve().parent / "reference" / "hanet-small"
#: the largest absolute difference allowed
TOLERANCE = 1e-5


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference", default=str(DEFAULT_REFERENCE),
                   help="reference directory (default: the set shipped with hanet, reference/hanet-small)")
    p.add_argument("--tolerance", type=options.POSITIVE, default=TOLERANCE, help="max abs difference allowed (default 1e-5)")
    p.add_argument("--seed", type=options.SEED, default=None, help="the seed the official model was built with, for a "
                   "reference that holds no true initial state and records none")


def run(args: argparse.Namespace) -> int:
    ref = Path(args.reference)
    if not ref.is_dir():
        hint = "" if args.reference != str(DEFAULT_REFERENCE) else \
            " (the package's reference set is missing: reinstall hanet, or pass --reference DIR)"
        raise HanetError(f"{ref}: no such reference directory{hint}")
    if not (args.tolerance > 0 and math.isfinite(args.tolerance)):
        raise HanetError(f"--tolerance must be a positive number, got {args.tolerance}")
    print(f"parity against {ref} (tolerance {args.tolerance:g}; metrics must be equal)")
    from hanet.parity import run_parity

    checks = run_parity(ref, args.tolerance, seed=args.seed)
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
