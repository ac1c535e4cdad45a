"""The one writer of an index: adds encoded videos, videos from feature files and captions,
deletes, and commits each change atomically (:mod:`hanet.index.storage`).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from hanet.errors import DataError, HanetError
from hanet.index.first_stage import FirstStage
from hanet.index.tuning import ANN_MIN_ROWS
from hanet.index.storage import (INDEX_VERSION, MODEL_FILE, VOCAB_FILE,
                               Collection, IndexFormatError, IndexLock, SegmentWriter, collect_garbage, field_shapes,
                               model_fingerprint, read_manifest, record_files, write_manifest)
from hanet.index.encode import encode_stored_videos, text_fields
from hanet.index.tuning import DEFAULT_BATCH, DEFAULT_SEGMENT
from hanet.io import atomic_save_npy
from hanet.index.inputs import (BuildReport, Unusable, StageVectors,
                                open_features)


class IndexWriter:
    """Holds the writer lock of an index and commits changes to it.

    Args:
        index_dir: an existing index (see :func:`create_index` for a new one).
        progress: print progress to stderr.

    Raises:
        IndexFormatError: not an index, or its model file does not match its manifest.
        HanetError: another writer holds the lock.
    """

    def __init__(self, index_dir: str | os.PathLike, progress: bool = False) -> None:
        from hanet.run import model_from_checkpoint

        self.dir = Path(index_dir)
        read_manifest(self.dir)  # an index at all? (before the lock, which would make the folder)
        self.lock = IndexLock(self.dir)
        try:
            self.manifest = read_manifest(self.dir)
            collect_garbage(self.dir, self.manifest)
            self.model, self.config, _ = model_from_checkpoint(self.dir / MODEL_FILE, device="cpu")
            fp = model_fingerprint(self.model)
            if fp != self.manifest["model"]["fingerprint"]:
                raise IndexFormatError(f"{self.dir / MODEL_FILE}: does not match the model the index was built with "
                                       f"(fingerprint {fp[:12]} vs {self.manifest['model']['fingerprint'][:12]})")
            self.word2int = json.loads((self.dir / VOCAB_FILE).read_text())
        except BaseException:
            self.lock.release()
            raise
        self.progress = progress
        self._stages: dict[str, FirstStage] = {}
        self._text_encoder: Any = None
        from hanet.index.first_stage.qdrant import EngineSpec

        #: where the first stage lives when it is not in FAISS files (``backend="qdrant"``)
        self.engine_spec = EngineSpec.from_manifest(self.manifest)
        self._engine: Any = None
        self._synced: set[str] = set()
        #: rows this writer (re-)uploaded to the engine while reconciling
        self.uploaded = 0

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        self.lock.release()

    def __enter__(self) -> "IndexWriter":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None and self._engine is not None and hasattr(self._engine, "optimize"):
            # the in-process engine builds its HNSW graphs when asked (a server does it by itself)
            self._say("engine: indexing the new points")
            self._engine.optimize()
        self.close()

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["model"]["fingerprint"])

    @property
    def variant(self) -> str:
        return str(self.manifest["model"]["variant"])

    def collection(self, part: str) -> Collection:
        return Collection(self.dir, part, self.manifest)

    def check_model(self, model: Any, source: str) -> None:
        """Refuse a model other than the index's (its encodings would not be comparable)."""
        fp = model_fingerprint(model)
        if fp != self.fingerprint:
            raise IndexFormatError(
                f"{self.dir}: the index was built with another model (fingerprint {self.fingerprint[:12]}, from "
                f"{self.manifest['model'].get('source')}) than {source} (fingerprint {fp[:12]}); encodings of two "
                f"models cannot be compared: build a new index with `hanet index build`")

    def _say(self, msg: str) -> None:
        if self.progress:
            print(msg, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ commits
    def engine_stage(self, part: str, full_sync: bool = False) -> Any:
        """The engine collection of a part, created if missing and reconciled with the committed
        rows on first use (see :func:`hanet.index.first_stage.qdrant.sync`)."""
        from hanet.index.first_stage.qdrant import EngineStage, connect, sync

        if self._engine is None:
            self._engine = connect(self.engine_spec.url, self.dir)
        st = EngineStage(self._engine, self.engine_spec, part, self.collection(part), self.variant,
                         flat=self._stage(part))
        if part not in self._synced or full_sync:
            mc = self.config.model
            if full_sync:
                st.reset()  # whatever state the engine's files are in, the segment store rebuilds them
            st.check(mc.video.dim_embed + mc.num_verb_concepts + mc.num_noun_concepts, create=True)
            rep = sync(st, self.fingerprint, INDEX_VERSION, full=full_sync, say=self._say)
            self.uploaded += rep["uploaded"]
            if rep["uploaded"]:
                self._say(f"engine: {st.name} now holds {rep['points']} points")
            self._synced.add(part)
        return st

    def _stage(self, part: str) -> FirstStage:
        st = self._stages.get(part)
        if st is None:
            files = self.manifest[part].get("faiss")
            if files:
                st = FirstStage.load({k: self.dir / v for k, v in files.items()}, self.variant, writable=True)
            else:
                mc = self.config.model
                st = FirstStage.create({"global": mc.video.dim_embed, "verbs": mc.num_verb_concepts,
                                        "nouns": mc.num_noun_concepts}, self.variant)
            self._stages[part] = st
        return st

    def _commit(self, part: str, segment: Optional[dict[str, Any]] = None,
                vectors: Optional[dict[str, np.ndarray]] = None,
                dead: Optional[dict[str, np.ndarray]] = None, labels: Sequence[str] = ()) -> None:
        """Write the first-stage and tombstone files a change needs, then the manifest (the commit).

        Args:
            part: the part a new segment belongs to.
            segment: the new segment's manifest entry (already in place), or None.
            vectors: its first-stage vectors (:func:`~hanet.index.first_stage.first_stage_vectors`).
            dead: part -> rows to add to that part's tombstones (one commit for all parts).
            labels: the new segment's row ids (recorded beside the engine's points).
        """
        m = copy.deepcopy(self.manifest)
        gen = int(m["generation"]) + 1
        if segment is not None:
            info = m[part]
            if self.engine_spec is not None:
                # before the commit: a crash leaves points past the committed rows, which searches
                # ignore and the next writer deletes
                self.engine_stage(part).upload(self.collection(part).size, vectors, list(labels), self.fingerprint,
                                               INDEX_VERSION)
            st = self._stage(part)
            st.add(vectors)  # the exact vectors: what the engine's pools are rescored with
            if self.engine_spec is None:
                self._maybe_build_ann(st)
            rel = {k: f"faiss/{part}-{gen:06d}-{k}.faiss" for k in st.indexes}
            st.save({k: self.dir / v for k, v in rel.items()})
            info["segments"].append(segment)
            info["faiss"] = rel
        for p, rows in (dead or {}).items():
            if not len(rows):
                continue
            info = m[p]
            old = (np.load(self.dir / info["tombstones"], allow_pickle=False) if info.get("tombstones")
                   else np.zeros(0, np.int64))
            tomb = np.union1d(old, np.asarray(rows, np.int64))
            rel = f"tombstones/{p}-{gen:06d}.npy"
            atomic_save_npy(self.dir / rel, tomb)
            info["tombstones"] = rel
            info["deleted"] = int(len(tomb))
        for p in ("videos", "captions"):
            m[p]["count"] = int(sum(s["count"] for s in m[p]["segments"]))
        m["generation"] = gen
        m["updated"] = time.time()
        m["files"] = record_files(self.dir, m)  # each file bound to this commit
        write_manifest(self.dir, m)  # the commit
        self.manifest = m
        collect_garbage(self.dir, m)
        if self.engine_spec is not None:
            # after the commit: a crash leaves points of dead rows, which searches drop
            for p, rows in (dead or {}).items():
                if len(rows) and self.collection(p).size:
                    self.engine_stage(p).delete(np.asarray(rows, np.int64))

    def _maybe_build_ann(self, st: FirstStage) -> None:
        """Build (or rebuild, once the collection has grown eightfold) the approximate first stage
        the index's policy asks for (``first_stage``: auto / exact / ivf)."""
        policy = self.manifest.get("first_stage", "auto")
        if policy == "exact":
            return
        n = st.ntotal
        if st.kind == "exact":
            if policy == "ivf" or n >= ANN_MIN_ROWS:
                self._say(f"index: building the approximate first stage over {n} rows")
                st.build_ann()
        elif st.ann_lists < 4 * np.sqrt(n) / 2.8:  # lists far too long: retrain for the new size
            self._say(f"index: rebuilding the approximate first stage for {n} rows")
            st.build_ann()

    def _segment_name(self, part: str) -> str:
        prefix = "v" if part == "videos" else "c"
        return f"{prefix}-{int(self.manifest['generation']) + 1:06d}-{len(self.manifest[part]['segments']):03d}"

    # ------------------------------------------------------------------ videos
    def add_encoded(self, ids: Sequence[str], batches: Iterable[tuple[dict[str, np.ndarray], list[dict[str, Any]]]],
                    thumbs: Optional[Callable[[Path, int, dict[str, Any]], bool]] = None,
                    replace: bool = False) -> int:
        """Write one segment of already-encoded videos and commit it.

        Args:
            ids: the segment's video ids, in row order (not yet alive in the index).
            batches: (fields, metas) pairs covering ``ids`` in order; ``fields`` as
                :func:`video_fields` returns them.
            thumbs: called as ``thumbs(path, row, meta)`` per video to write a strip at ``path``;
                returns whether it did.
            replace: ids already in the index are replaced: their old rows are deleted in the
                same commit that adds the new ones. Their captions stay (a caption's encoding
                does not depend on the video's; new captions can be added beside them).

        Returns:
            Thumbnail strips written.
        """
        alive = self.collection("videos").row_of
        clash = [i for i in ids if i in alive]
        if clash and not replace:
            raise HanetError(f"{self.dir}: already holds video(s) {', '.join(clash[:5])}")
        # a replaced video keeps its captions: only its own row dies
        dead = {"videos": self._dead_rows(clash)["videos"]} if clash else None
        if len(set(ids)) != len(ids):
            raise DataError("duplicate video ids in one add")
        frame_dtype = self.manifest.get("frame_dtype", "float16")
        shapes = field_shapes(self.config.model, "videos", frame_dtype)
        seg = SegmentWriter(self.dir, "videos", self._segment_name("videos"), len(ids), shapes)
        made = 0
        try:
            row = 0
            vectors = StageVectors()
            for fields, metas in batches:
                n = len(metas)
                if thumbs is not None:
                    for j, meta in enumerate(metas):
                        ok = thumbs(seg.thumbs_dir / f"{row + j}.jpg", row + j, meta)
                        meta["thumbnail"] = bool(ok)
                        made += int(ok)
                if frame_dtype == "int8" and fields["verb_frames"].dtype != np.int8:
                    from hanet.index.storage.values import precompute, quantize_frames

                    fields = quantize_frames(fields)
                    fields.update(precompute(fields))  # the norms and Gram matrices of what is stored
                seg.write(row, fields, ids[row:row + n], metas)
                vectors.add(fields)
                row += n
            if row != len(ids):
                raise RuntimeError(f"batches covered {row} videos, expected {len(ids)}")
            entry = seg.finish()
        except BaseException:
            seg.abort()
            raise
        self._commit("videos", entry, vectors.stacked(), dead=dead, labels=ids)
        return made

    def add_from_features(self, features: Sequence[str | os.PathLike] | str | os.PathLike, *,
                          names: Optional[Sequence[str]] = None, videos_dir: Optional[Path] = None,
                          replace: bool = False, batch_size: int = DEFAULT_BATCH,
                          segment_size: int = DEFAULT_SEGMENT, thumbnails: bool = True,
                          report: Optional[BuildReport] = None) -> BuildReport:
        """Encode the videos of feature files and add them, committing every ``segment_size``.

        Args:
            features: HDF5 feature file(s) (several are concatenated per frame, as in training).
            names: videos to add (default: every video of the first file).
            videos_dir: folder of the video files (thumbnails and previews).
            replace: re-encode videos already indexed (their old rows are deleted); otherwise
                they are skipped.
            batch_size: videos per encoder call.
            segment_size: videos per segment (a crash loses at most one segment's work).
            thumbnails: make thumbnail strips where the video file is found.
            report: a report to extend.
        """
        from hanet.data.formats import feature_key

        t0 = time.time()
        rep = report or BuildReport(str(self.dir))
        store, sampling = open_features(features)
        try:
            dims = store.dims()
            want_dim = self.config.model.video.dim_input
            if sum(dims) != want_dim:
                raise DataError(f"{', '.join(map(str, store.files))}: {sum(dims)}-d features, but the index's model "
                                f"expects {want_dim}-d (config video.dim_fts)")
            all_names = [feature_key(n) for n in (names if names is not None else store.names())]
            missing = store.missing(all_names)
            if missing:
                raise DataError(f"{missing[0][1]}: no features for {len(missing)} video(s), e.g. {missing[0][0]}")
            if len(set(all_names)) != len(all_names):
                raise DataError("the names list repeats a video")
            alive = self.collection("videos").row_of
            present = [n for n in all_names if n in alive]
            if replace:
                rep.replaced += present  # their old rows die in the commit that adds the new ones
            else:
                rep.skipped += present
            todo = [n for n in all_names if replace or n not in alive]
            bad = {n: why for n in todo if (why := store.video_problem(n)) is not None}
            rep.unusable += list(bad.values())
            todo = [n for n in todo if n not in bad]
            rep.attributes_left_out += [f"{n}: {why}" for n in todo for why in store.attr_problems(n)]

            def batches(chunk: list[str]):
                found: list[str] = []

                def bad_values(name: str, why: str) -> None:  # seen only when read (NaN, a damaged chunk)
                    rep.unusable.append(why)
                    found.append(name)

                for _, fields, metas in encode_stored_videos(self.model, store, chunk, batch_size, videos_dir,
                                                             on_bad=bad_values):
                    if found:  # the segment's rows are its ids in order: start it again without them
                        raise Unusable(found)
                    yield fields, metas
                if found:
                    raise Unusable(found)

            def thumb(path: Path, row: int, meta: dict[str, Any]) -> bool:
                if not thumbnails or not meta.get("source"):
                    return False
                from hanet.index.thumbs import make_strip

                try:
                    make_strip(Path(meta["source"]), path, meta.get("frame_times"), int(meta["length"]),
                               sampling=sampling, subsample=meta.get("frame_index"))
                    return True
                except (DataError, OSError, ValueError) as exc:
                    rep.thumbnail_failures.append(f"{meta['id']}: {exc}")
                    return False

            for s in range(0, len(todo), segment_size):
                chunk = todo[s:s + segment_size]
                while chunk:
                    try:
                        rep.thumbnails += self.add_encoded(chunk, batches(chunk), thumb, replace=replace)
                        break
                    except Unusable as exc:
                        chunk = [n for n in chunk if n not in set(exc.names)]
                rep.added += chunk
                self._say(f"index: {min(s + segment_size, len(todo))}/{len(todo)} videos encoded and committed")
        finally:
            store.close()
        rep.generation = int(self.manifest["generation"])
        rep.seconds += time.time() - t0
        return rep

    # ------------------------------------------------------------------ captions
    def add_captions(self, captions: dict[str, list[str]], graphs: Optional[dict[str, Any]] = None,
                     batch_size: int = 256) -> int:
        """Index captions for video-to-text search (captions of videos not in the index are skipped).

        Args:
            captions: ``{video_id: [caption, ...]}``.
            graphs: ``{caption: [nodes, edges]}`` keyed as in the released format (by the caption
                as given, spans over its whitespace tokens; a canonical-form key works too);
                captions without one are parsed by spaCy.
            batch_size: captions per encoder call.

        Returns:
            Captions added.
        """
        from hanet.index.query import QueryEncoder
        from hanet.text.normalize import normalize_caption
        from hanet.text.rolegraph import graph_for_normalized

        alive = self.collection("videos").row_of
        have = {(m.get("video"), m.get("text")) for m in self._caption_metas()}
        items: list[tuple[str, str]] = []
        by_text: dict[str, Any] = {}  # canonical text -> its graph over the canonical words
        for vid, caps in captions.items():
            key = vid.replace("/", "_")
            if key not in alive:
                continue
            for c in caps:
                norm = normalize_caption(c)
                if norm and (key, norm) not in have:
                    have.add((key, norm))
                    items.append((key, norm))
                if graphs is not None and norm and norm not in by_text:
                    if norm in graphs:
                        by_text[norm] = graphs[norm]
                    elif c in graphs:
                        by_text[norm] = graph_for_normalized(graphs[c], c)
        graphs = by_text if graphs is not None else None
        if not items:
            return 0
        if self._text_encoder is None:
            self._text_encoder = QueryEncoder(self.model, self.word2int, max_chars=10 ** 7, cache_size=0)
        enc = self._text_encoder
        shapes = field_shapes(self.config.model, "captions")
        seg = SegmentWriter(self.dir, "captions", self._segment_name("captions"), len(items), shapes)
        base = self.collection("captions").size
        try:
            vectors = StageVectors()
            for s in range(0, len(items), batch_size):
                part = items[s:s + batch_size]
                texts = [t for _, t in part]
                g = None
                if graphs is not None and all(t in graphs for t in texts):
                    g = [graphs[t] for t in texts]
                elif graphs is not None:
                    parsed = iter(enc._graphs([t for t in texts if t not in graphs]))
                    g = [graphs[t] if t in graphs else next(parsed) for t in texts]
                out = enc.encode(texts, graphs=g, allow_unknown=True)
                fields = text_fields(out.text)
                seg.write(s, fields, [f"c{base + s + j}" for j in range(len(part))],
                          [{"video": v, "text": t} for v, t in part])
                vectors.add(fields)
                self._say(f"captions: {s + len(part)}/{len(items)} encoded")
            entry = seg.finish()
        except BaseException:
            seg.abort()
            raise
        self._commit("captions", entry, vectors.stacked(), labels=[f"c{base + j}" for j in range(len(items))])
        return len(items)

    def _caption_metas(self) -> list[dict[str, Any]]:
        """Metadata of the live captions."""
        coll = self.collection("captions")
        metas = [m for s in coll.segments for m in s.meta()]
        return [m for m, ok in zip(metas, coll.alive.tolist()) if ok]

    # ------------------------------------------------------------------ delete
    def delete(self, ids: Sequence[str], missing_ok: bool = False) -> int:
        """Delete videos (and their captions) by tombstones: no rebuild, one commit.

        Args:
            ids: video ids.
            missing_ok: ignore ids that are not in the index instead of refusing.

        Returns:
            Videos deleted.
        """
        videos = self.collection("videos")
        unknown = [i for i in ids if i not in videos.row_of]
        if unknown and not missing_ok:
            raise HanetError(f"{self.dir}: no such video(s): {', '.join(map(str, unknown[:10]))}")
        dead = self._dead_rows([i for i in ids if i in videos.row_of])
        if not len(dead["videos"]):
            return 0
        self._commit("videos", dead=dead)
        return int(len(dead["videos"]))

    def _dead_rows(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The live rows of videos and of their captions (for tombstones)."""
        videos = self.collection("videos")
        rows = np.array(sorted({videos.row_of[i] for i in ids if i in videos.row_of}), np.int64)
        gone = {videos.ids[r] for r in rows.tolist()}
        caps = self.collection("captions")
        crow: list[int] = []
        for k, seg in enumerate(caps.segments):
            base = int(caps.offsets[k])
            crow += [base + j for j, m in enumerate(seg.meta()) if m.get("video") in gone]
        crows = np.array(crow, np.int64)
        crows = crows[caps.alive[crows]] if len(crows) else crows
        return {"videos": rows, "captions": crows}


__all__ = ["IndexWriter"]
