"""What an index holds and whether its files are intact: ``hanet index info`` and ``verify``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from hanet.index import native
from hanet.index.storage import Collection, field_shapes, read_manifest


def _bytes_per_field(videos: Collection, mc: dict[str, Any], frame_dtype: str) -> dict[str, int]:
    """Bytes of each stored field per video: as the records hold them (an index written by an
    older hanet may lack fields), else as this version would write them."""
    if videos.segments:
        dt = videos.segments[0].dtype
        return {name: int(dt[name].itemsize) for name in dt.names}
    return {name: int(np.prod(shape, dtype=np.int64)) * np.dtype(t).itemsize
            for name, (shape, t) in field_shapes(_model_config(mc), "videos", frame_dtype).items()}


def _model_config(d: dict[str, Any]) -> Any:
    from hanet.config import HANetConfig

    return HANetConfig.from_dict({"model": d}).model


def verify_index(index_dir: str | os.PathLike) -> dict[str, Any]:
    """Check every byte of every file an index's manifest binds to itself (SHA-256 recorded at commit).

    Returns:
        ``{"index", "files", "recorded", "problems": ["path: why", ...], "damaged_files": [path, ...],
        "damaged_segments": [{"part", "segment", "rows", "ids"}]}``: the ids a damaged segment holds (when its ``ids.json`` is intact), for
        ``hanet index delete`` and ``add`` to encode again. ``recorded`` is False for an index
        that records no checksums (built by an older hanet).

    Raises:
        IndexFormatError: not an index.
    """
    from hanet.index.storage import SEGMENT_FILES, file_problems, recorded_files

    d = Path(index_dir)
    m = read_manifest(d)
    bad = file_problems(d, m, full=True)
    damaged = []
    for part in ("videos", "captions"):
        start = 0
        for seg in m[part]["segments"]:
            files = [str(d / f"segments/{seg['name']}/{f}") for f in SEGMENT_FILES]
            if any(f in bad for f in files):
                try:
                    ids = json.loads((d / "segments" / seg["name"] / "ids.json").read_text())
                    ids = ids if isinstance(ids, list) and len(ids) == seg["count"] else None
                except (OSError, ValueError):
                    ids = None
                damaged.append({"part": part, "segment": seg["name"], "rows": [start, start + seg["count"]],
                                "ids": ids})
            start += seg["count"]
    return {"index": str(d), "files": len(recorded_files(m)), "recorded": bool(m.get("files")),
            "problems": [f"{p}: {why}" for p, why in bad.items()], "damaged_files": list(bad),
            "damaged_segments": damaged}


def index_info(index_dir: str | os.PathLike) -> dict[str, Any]:
    """A summary of an index: sizes, model, first stage (and engine), bytes per video, disk use."""
    d = Path(index_dir)
    m = read_manifest(d)
    videos, caps = Collection(d, "videos", m), Collection(d, "captions", m)
    mc = m["model"]["config"]
    disk = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
    stage_files = m["videos"].get("faiss") or {}
    ann_file = stage_files.get("ann")
    lists = None
    if ann_file:
        import faiss

        lists = int(faiss.read_index(str(d / ann_file), faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_MMAP_IFC).nlist)
    from hanet.index.search import default_candidates

    per_field = _bytes_per_field(videos, mc, m.get("frame_dtype", "float16"))
    return {
        "index": str(d), "generation": m["generation"], "hanet_version": m.get("hanet_version"),
        "videos": videos.num_alive, "videos_deleted": videos.size - videos.num_alive,
        "captions": caps.num_alive, "segments": len(videos.segments) + len(caps.segments),
        "model": {"fingerprint": m["model"]["fingerprint"][:16], "variant": m["model"]["variant"],
                  "source": m["model"].get("source"), "dim_embed": mc["video"]["dim_embed"],
                  "max_frames_in_video": mc["max_frames_in_video"], "num_verb_concepts": mc["num_verb_concepts"],
                  "num_noun_concepts": mc["num_noun_concepts"]},
        "concept_names": bool(m.get("concepts")),
        "first_stage": {"policy": m.get("first_stage", "auto"),
                        "kind": "qdrant" if m.get("engine") else "ivf" if ann_file else "exact", "lists": lists},
        "engine": ({k: v for k, v in m["engine"].items() if k != "uid"} if m.get("engine") else None),
        "bytes_per_video": per_field,
        "default_candidates": default_candidates(sum(per_field.values())),
        "frame_dtype": m.get("frame_dtype", "float16"),
        "disk_bytes": disk, "updated": m.get("updated"),
        "phrase_products": native.status(),  # this machine's, not the index's
    }


__all__ = ["index_info", "verify_index"]
