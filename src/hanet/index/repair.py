"""Repairing a damaged index from its intact files (``hanet index repair``)."""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from hanet.errors import HanetError
from hanet.index.first_stage import FirstStage, first_stage_vectors
from hanet.index.storage import (CONCEPTS_FILE, MODEL_FILE, VOCAB_FILE,
                               IndexFormatError, collect_garbage, read_manifest, record_files, write_manifest)
from hanet.io import atomic_save_npy
from hanet.index.writer import IndexWriter


def repair_segments(w: IndexWriter, damaged: dict[str, set[str]]) -> dict[str, list[str]]:
    """Drop an open writer's damaged segments and rebuild what derives from the intact ones, in one commit.

    The first stage of each part is rebuilt from its intact segments' records (the vectors
    are computed from what the records hold, as when they were added); deleted rows keep
    their deletion, renumbered. Only what cannot be read back is lost: the rows of the
    damaged segments.

    Args:
        damaged: part -> names of its segments with a damaged file.

    Returns:
        part -> the ids of the rows dropped (those of a segment whose ``ids.json`` is damaged
        too are not known: ``"<segment>: N rows"``).
    """
    from hanet.index.storage import Segment

    if w.engine_spec is not None:
        raise HanetError(f"{w.dir}: repair works on an index whose first stage is in its own files; for "
                         f"an engine-backed index rebuild it, then `hanet index sync --full`")
    m = copy.deepcopy(w.manifest)
    gen = int(m["generation"]) + 1
    dropped: dict[str, list[str]] = {}
    for part in ("videos", "captions"):
        info = m[part]
        old_dead = (np.load(w.dir / info["tombstones"], allow_pickle=False)
                    if info.get("tombstones") else np.zeros(0, np.int64))
        kept, dead, start, new_start = [], [], 0, 0
        st = FirstStage.create({"global": w.config.model.video.dim_embed,
                                "verbs": w.config.model.num_verb_concepts,
                                "nouns": w.config.model.num_noun_concepts}, w.variant)
        for seg in info["segments"]:
            n = int(seg["count"])
            if seg["name"] in damaged.get(part, set()):
                try:
                    dropped.setdefault(part, []).extend(json.loads(
                        (w.dir / "segments" / seg["name"] / "ids.json").read_text()))
                except (OSError, ValueError):
                    dropped.setdefault(part, []).append(f"{seg['name']}: {n} rows")
            else:
                recs = Segment(w.dir / "segments" / seg["name"], part, n)
                for a in range(0, n, 4096):
                    rows = np.arange(a, min(n, a + 4096))
                    f = recs.read(rows)
                    st.add(first_stage_vectors(f["global_embeds"], f["verb_probs"], f["noun_probs"]))
                recs.close()
                moved = old_dead[(old_dead >= start) & (old_dead < start + n)] - start + new_start
                dead.append(moved)
                kept.append(seg)
                new_start += n
            start += n
        info["segments"] = kept
        info["count"] = new_start
        tomb = np.concatenate(dead) if dead else np.zeros(0, np.int64)
        info["tombstones"], info["deleted"] = None, int(len(tomb))
        if len(tomb):
            rel = f"tombstones/{part}-{gen:06d}.npy"
            atomic_save_npy(w.dir / rel, tomb.astype(np.int64))
            info["tombstones"] = rel
        info["faiss"] = None
        if st.ntotal:
            w._maybe_build_ann(st)
            rel_f = {k: f"faiss/{part}-{gen:06d}-{k}.faiss" for k in st.indexes}
            st.save({k: w.dir / v for k, v in rel_f.items()})
            info["faiss"] = rel_f
        w._stages[part] = st
    m["generation"] = gen
    m["updated"] = time.time()
    m["files"] = record_files(w.dir, m)  # the intact files keep their records; new ones are added
    write_manifest(w.dir, m)  # the commit
    w.manifest = m
    collect_garbage(w.dir, m)
    return dropped


def repair_index(index_dir: str | os.PathLike, progress: bool = False) -> dict[str, Any]:
    """Make a damaged index searchable again from its intact files (``hanet index repair``).

    Every file is checked against its recorded checksum (:func:`hanet.index.audit.verify_index`);
    segments with a damaged file are dropped, the first stage is rebuilt from the intact
    segments' records, deletions are kept. An index whose model, vocabulary, concept names or
    deletion list is damaged cannot be repaired: those cannot be recomputed from the rest.

    Returns:
        ``{"index", "problems", "dropped": {part: [ids]}, "repaired": bool}``.

    Raises:
        IndexFormatError: not repairable (the message names the file).
    """
    from hanet.index.audit import verify_index

    d = Path(index_dir)
    r = verify_index(d)
    if not r["recorded"]:
        raise IndexFormatError(f"{d}: this index records no checksums (built by an older hanet): rebuild it")
    if not r["problems"]:
        return {"index": str(d), "problems": [], "dropped": {}, "repaired": False}
    m = read_manifest(d)
    bad = set(r["damaged_files"])
    core = [d / f for f in (MODEL_FILE, VOCAB_FILE, CONCEPTS_FILE)] + \
        [d / m[part]["tombstones"] for part in ("videos", "captions") if m[part].get("tombstones")]
    lost = [str(f) for f in core if str(f) in bad]
    if lost:
        raise IndexFormatError(f"{d}: {', '.join(lost)} damaged: the model, its vocabulary, the concept names and "
                               f"the deletions cannot be recomputed from the rest; rebuild the index "
                               f"(`hanet index build`)")
    damaged = {part: {seg["segment"] for seg in r["damaged_segments"] if seg["part"] == part}
               for part in ("videos", "captions")}
    with IndexWriter(d, progress=progress) as w:
        dropped = repair_segments(w, damaged)
    return {"index": str(d), "problems": r["problems"], "dropped": dropped, "repaired": True}


__all__ = ["repair_segments", "repair_index"]
