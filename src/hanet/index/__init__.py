"""Search a video collection with a trained HANet: an on-disk index, two-stage search, explanations.

Python API::

    from hanet.index import build_index, SearchIndex

    build_index("runs/synth", "feats.hdf5", "idx", videos_dir="videos/", captions="ref_captions.json")
    index = SearchIndex.open("idx")
    hits = index.search("a red ball bounces", k=10)            # [Hit(rank, video_id, score, scores)]
    exact = index.search("a red ball bounces", k=10, mode="exhaustive")
    why = index.explain("a red ball bounces", hits[0].video_id)  # Explanation; .to_dict(), .format()
    texts = index.search_captions(hits[0].video_id, k=5)         # video-to-text (captions indexed)

    add_videos("idx", "more_feats.hdf5")                         # incremental
    delete_videos("idx", ["video7"])                             # tombstones, no rebuild

See docs/search.md. Layout by role:

* ``storage/``: the files (layout, manifest and integrity, segments, a part's rows with the one
  reader of records, values stored beside the encodings);
* ``first_stage/``: which rows to rerank (FAISS in the index's files, or a Qdrant collection);
* ``rerank``: candidates' records to the model's scoring inputs (the products with the query's
  phrases, taken as read, by the compiled kernel of ``native/`` where it runs);
* ``search`` (one ranking routine for both directions), ``explain``, ``query`` (the text side);
* writing: ``build`` (public functions), ``writer``, ``inputs``, ``encode``, ``repair``,
  ``audit`` (what an index holds, ``verify``), ``thumbs``; ``tuning`` (every tuning constant);
* commands: ``cli`` (``hanet index``), ``search_cli``, ``explain_cli``.

Names are imported lazily so that ``hanet --help`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_index": "hanet.index.build",
    "add_videos": "hanet.index.build",
    "delete_videos": "hanet.index.build",
    "index_info": "hanet.index.audit",
    "create_index": "hanet.index.build",
    "BuildReport": "hanet.index.build",
    "IndexWriter": "hanet.index.writer",
    "SearchIndex": "hanet.index.search",
    "Hit": "hanet.index.search",
    "CaptionHit": "hanet.index.search",
    "SearchResult": "hanet.index.search",
    "CaptionResult": "hanet.index.search",
    "MODES": "hanet.index.search",
    "DEFAULT_CANDIDATES": "hanet.index.tuning",
    "Explanation": "hanet.index.explain",
    "QueryError": "hanet.index.query",
    "IndexFormatError": "hanet.index.storage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hanet.index' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
