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

from pathlib import Path
from typing import Any, Optional

from hanet.index.first_stage.base import Candidates
from hanet.index.first_stage.embedded import (ANN_PART, FIRST_STAGES, PARTS, FirstStage, best_of_pools,
                                              first_stage_vectors, partial_of_rows, partial_weights, pool_size,
                                              probe_lists, proxy_vectors, remaining_bound, unit_rows)




def open_stages(path: Path, manifest: dict[str, Any], collections: dict[str, Any],
                engine_url: Optional[str] = None) -> dict[str, Any]:
    """A reader's first stage of each part (``videos``, ``captions``): the index's FAISS files,
    memory-mapped, or its engine collection (at ``engine_url`` if given) rescored from them; None
    for a part without one (scored exhaustively).

    Raises:
        IndexFormatError: a FAISS file that does not hold the part's rows.
        EngineError: the engine is unreachable or its collection is not this index's.
    """
    from hanet.index.first_stage.qdrant import EngineSpec, EngineStage, connect
    from hanet.index.storage import IndexFormatError

    variant = manifest["model"]["variant"]
    spec = EngineSpec.from_manifest(manifest)
    if spec is not None and engine_url:
        spec = EngineSpec(url=engine_url, collection=spec.collection, uid=spec.uid)
    engine = connect(spec.url, path, private=True) if spec is not None else None  # a reader writes nothing
    stages: dict[str, Any] = {}
    for part, coll in collections.items():
        files = manifest[part].get("faiss")
        st = None
        if files:
            st = FirstStage.load({k: path / v for k, v in files.items()}, variant)
            if st.ntotal != coll.size:
                raise IndexFormatError(f"{path / files['global']}: holds {st.ntotal} vectors for {coll.size} {part}")
        if engine is not None and coll.size:
            st = EngineStage(engine, spec, part, coll, variant, flat=st)
            mc = manifest["model"]["config"]
            st.check(mc["video"]["dim_embed"] + mc["num_verb_concepts"] + mc["num_noun_concepts"])
        stages[part] = st
    return stages


__all__ = ["open_stages", "Candidates", "ANN_PART", "FIRST_STAGES", "PARTS", "FirstStage", "best_of_pools", "first_stage_vectors",
           "partial_of_rows", "partial_weights", "pool_size", "probe_lists", "proxy_vectors", "remaining_bound",
           "unit_rows"]
