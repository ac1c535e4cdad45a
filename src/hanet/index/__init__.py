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

See docs/search.md. Modules: ``store`` (files and commits), ``faiss_stage`` (first stage),
``query`` (text side), ``build`` (writing), ``search``, ``explain``, ``thumbs``, and the CLI
modules ``cli`` (``hanet index``), ``search_cli``, ``explain_cli``.

Names are imported lazily so that ``hanet --help`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_index": "hanet.index.build",
    "add_videos": "hanet.index.build",
    "delete_videos": "hanet.index.build",
    "index_info": "hanet.index.build",
    "create_index": "hanet.index.build",
    "BuildReport": "hanet.index.build",
    "IndexWriter": "hanet.index.build",
    "SearchIndex": "hanet.index.search",
    "Hit": "hanet.index.search",
    "CaptionHit": "hanet.index.search",
    "SearchResult": "hanet.index.search",
    "CaptionResult": "hanet.index.search",
    "MODES": "hanet.index.search",
    "DEFAULT_CANDIDATES": "hanet.index.search",
    "Explanation": "hanet.index.explain",
    "QueryError": "hanet.index.query",
    "IndexFormatError": "hanet.index.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hanet.index' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
