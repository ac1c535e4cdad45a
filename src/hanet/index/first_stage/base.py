"""What every first stage answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Candidates:
    """What a first stage hands the second, for Q queries.

    Attributes:
        rows: per query, int64 rows ascending (up to the candidates asked for).
        best_left: (Q,) the best first-stage partial score among the live rows left out (-inf
            when none is), or None for a stage that did not look at every row.
    """

    rows: list[np.ndarray]
    best_left: Optional[np.ndarray]


__all__ = ["Candidates"]
