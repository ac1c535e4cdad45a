"""Option types for the command line: every number an option takes is checked where it is read.

argparse calls these on the text the user typed; a value out of range is refused before any work
starts, with the option named as typed (``hanet train: error: argument --log-every: must be an
integer >= 1, not 0``) and exit status 2. The config's own fields (``--set``) are checked by the
config dataclasses (:meth:`hanet.config.HANetConfig.validate`).
"""

from __future__ import annotations

import argparse
import math
from typing import Callable, Optional

#: The largest seed: torch, numpy and Python all take it.
MAX_SEED = 2**32 - 1


def integer(lo: Optional[int] = None, hi: Optional[int] = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[lo, hi]``."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            bounds = (f"in [{lo}, {hi}]" if lo is not None and hi is not None else
                      f">= {lo}" if lo is not None else f"<= {hi}")
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, not {v}")
        return v
    parse.__name__ = "integer"
    return parse


def number(lo: Optional[float] = None, hi: Optional[float] = None, *, lo_open: bool = False,
           hi_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in ``[lo, hi]`` (or an open end)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
        too_low = lo is not None and (v <= lo if lo_open else v < lo)
        too_high = hi is not None and (v >= hi if hi_open else v > hi)
        if not math.isfinite(v) or too_low or too_high:
            left = "" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
            right = "" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
            bounds = (f"in {left}, {right}" if lo is not None and hi is not None else
                      f"{'>' if lo_open else '>='} {lo:g}" if lo is not None else f"{'<' if hi_open else '<='} {hi:g}")
            raise argparse.ArgumentTypeError(f"must be a finite number {bounds}, not {text}")
        return v
    parse.__name__ = "number"
    return parse


#: common kinds
COUNT = integer(1)
NONNEGATIVE = integer(0)
SEED = integer(0, MAX_SEED)
POSITIVE = number(0, lo_open=True)
SHARE = number(0, 1, hi_open=True)
PORT = integer(1, 65535)

__all__ = ["integer", "number", "COUNT", "NONNEGATIVE", "SEED", "POSITIVE", "SHARE", "PORT", "MAX_SEED"]
