"""The first stage of two-stage search: which rows the seven scores rerank.

Every first stage answers :meth:`find` with a :class:`Candidates`: per query, the rows to
rerank and, where the stage scanned every row, a bound on the rows it left out (what lets search
say its answer is provably exact).

* ``embedded`` (:class:`FirstStage`): FAISS flat indexes scanned exactly, and past
  :data:`~hanet.index.tuning.ANN_MIN_ROWS` rows an inverted file over proxy vectors;
* ``qdrant`` (:class:`hanet.index.first_stage.qdrant.EngineStage`): the proxies in a Qdrant
  collection (a server, a cluster, or the engine in-process), imported on use.
"""

from __future__ import annotations

from hanet.index.first_stage.base import Candidates
from hanet.index.first_stage.embedded import (ANN_PART, FIRST_STAGES, PARTS, FirstStage, best_of_pools,
                                              first_stage_vectors, partial_of_rows, partial_weights, pool_size,
                                              probe_lists, proxy_vectors, remaining_bound, unit_rows)


__all__ = ["Candidates", "ANN_PART", "FIRST_STAGES", "PARTS", "FirstStage", "best_of_pools", "first_stage_vectors",
           "partial_of_rows", "partial_weights", "pool_size", "probe_lists", "proxy_vectors", "remaining_bound",
           "unit_rows"]
