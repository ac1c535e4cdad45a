"""Building and updating an index: encode each video once (:mod:`hanet.index.encode`), store,
commit atomically. What an index holds and whether it is intact: :mod:`hanet.index.audit`.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from hanet.errors import DataError, HanetError
from hanet.index.faiss_stage import PARTS as STAGE_PARTS
from hanet.index.faiss_stage import ANN_MIN_ROWS, FIRST_STAGES, FirstStage, first_stage_vectors
from hanet.index.store import (CONCEPTS_FILE, INDEX_FORMAT, INDEX_VERSION, MODEL_FILE, VOCAB_FILE,
                               Collection, IndexFormatError, IndexLock, SegmentWriter, collect_garbage, field_shapes,
                               model_fingerprint, read_manifest, record_files, write_manifest)
from hanet.index.encode import DEFAULT_BATCH, encode_stored_videos, text_fields
from hanet.io import atomic_save_npy, atomic_write_text

DEFAULT_SEGMENT = 20000


@dataclass
class BuildReport:
    """What a build or add did.

    Attributes:
        index_dir: the index.
        added: ids of the videos encoded and added.
        skipped: ids already in the index (not re-encoded).
        replaced: ids re-encoded whose old rows were deleted (``replace=True``).
        captions_added: captions indexed for video-to-text search.
        thumbnails: strips written.
        thumbnail_failures: ``"id: reason"`` for videos whose strip could not be made.
        unusable: ``"file: video: reason"`` for videos left out because their features cannot be
            read (not a dataset, wrong shape or type, NaN...).
        attributes_left_out: ``"id: reason"`` for per-video attributes (frame times, duration)
            not recorded because they are malformed; the video is indexed without them.
        generation: the manifest generation after the last commit.
        seconds: wall time.
    """

    index_dir: str
    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    captions_added: int = 0
    thumbnails: int = 0
    thumbnail_failures: list[str] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)
    attributes_left_out: list[str] = field(default_factory=list)
    generation: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        s = (f"{self.index_dir}: added {len(self.added)} video(s)"
             + (f", replaced {len(self.replaced)}" if self.replaced else "")
             + (f", skipped {len(self.skipped)} already indexed" if self.skipped else "")
             + (f", {self.captions_added} caption(s)" if self.captions_added else "")
             + f", {self.thumbnails} thumbnail strip(s) in {self.seconds:.1f} s (generation {self.generation})")
        if self.thumbnail_failures:
            s += f"\n  no thumbnail for {len(self.thumbnail_failures)} video(s), e.g. {self.thumbnail_failures[0]}"
        for what, items in (("left out (features unusable)", self.unusable),
                            ("indexed without malformed attributes", self.attributes_left_out)):
            if items:
                s += f"\n  {len(items)} video(s) {what}:" + "".join(f"\n    {x}" for x in items[:10])
                s += f"\n    ... {len(items) - 10} more in the report" if len(items) > 10 else ""
        return s


class _Unusable(Exception):
    """Videos of a segment being written whose features turned out unreadable when read."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = list(names)


# ---------------------------------------------------------------------- model and vocabulary
def _load_run_model(run_dir: Optional[str | os.PathLike], checkpoint: Optional[str | os.PathLike],
                    official: Optional[tuple[str | os.PathLike, str | os.PathLike]] = None):
    from hanet.run import RunDir, model_from_checkpoint, model_from_official

    if official is not None:  # an authors' checkpoint with their model.json
        model, cfg, _ = model_from_official(*official, device="cpu")
        return model, cfg, Path(official[0])
    if checkpoint is None:
        if run_dir is None:
            raise HanetError("give --run RUN_DIR (or --checkpoint FILE)")
        checkpoint = RunDir(run_dir).default_checkpoint()
    model, cfg, _ = model_from_checkpoint(checkpoint, device="cpu")
    return model, cfg, Path(checkpoint)


def _run_vocab(run_dir: Optional[str | os.PathLike], vocab: Optional[str | os.PathLike]) -> tuple[dict[str, int], Path]:
    """The model's vocabulary: ``vocab``, or the run's dataset's; refused when the run recorded
    another (a model reads other word ids wrong, silently)."""
    from hanet.data.formats import DatasetSpec, load_vocab, vocab_fingerprint
    from hanet.run import RunDir

    info = RunDir(run_dir).read_info() if run_dir is not None and RunDir(run_dir).info_path.is_file() else None
    if vocab is not None:
        path = Path(vocab)
    elif info is None:
        raise HanetError("give --vocab word2int.json (no run directory to find the dataset's vocabulary)")
    elif not info.dataset:
        raise HanetError(f"{run_dir}: run.json records no dataset; give --vocab word2int.json")
    else:
        path = DatasetSpec.load(info.dataset).word2int
    words = load_vocab(path)
    if info is not None and info.vocab is not None and vocab_fingerprint(words) != info.vocab:
        raise DataError(f"{path}: not the vocabulary the model of {run_dir} was trained with (fingerprint "
                        f"{vocab_fingerprint(words)}, the run's {info.vocab}); every query would be read wrong")
    return words, path


def _concept_names(folder: Optional[Path], cfg: Any) -> Optional[dict[str, list[str]]]:
    """Concept names from ``verb_concepts.json`` / ``noun_concepts.json`` (written by ``hanet prepare``)."""
    if folder is None:
        return None
    from hanet.text.concepts import ConceptVocab

    out = {}
    for kind, size in (("verb", cfg.num_verb_concepts), ("noun", cfg.num_noun_concepts)):
        p = Path(folder) / f"{kind}_concepts.json"
        if not p.is_file():
            return None
        try:
            vocab = ConceptVocab.from_json(json.loads(p.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{p}: unreadable concept vocabulary ({exc})") from None
        names = list(vocab.concepts)[:size]
        out[kind] = names + [f"{kind}#{i}" for i in range(len(names), size)]
        if vocab.shares is not None:  # how often the word is of this kind (tagger slips are rare)
            out[f"{kind}_share"] = vocab.shares[:size] + [1.0] * (size - len(names))
    return out


# ---------------------------------------------------------------------- first-stage vectors
class _StageVectors:
    """First-stage vectors of a segment's rows, gathered batch by batch as the rows are written."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in STAGE_PARTS}

    def add(self, fields: dict[str, np.ndarray]) -> None:
        for k, v in first_stage_vectors(fields["global_embeds"], fields["verb_probs"], fields["noun_probs"]).items():
            self.parts[k].append(v)

    def stacked(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts.items()}


def _open_features(features: Sequence[str | os.PathLike] | str | os.PathLike):
    """The feature file(s) to index, with the sampling their videos were extracted at (if recorded)."""
    from hanet.data.features import FeatureStore

    files = [Path(features)] if isinstance(features, (str, os.PathLike)) else [Path(f) for f in features]
    store = FeatureStore(files)
    sampling = store.meta().get("sampling")
    return store, None if sampling is None else str(sampling)


def _read_names(names: Optional[Sequence[str] | str | os.PathLike]) -> Optional[list[str]]:
    if names is None or isinstance(names, (list, tuple)):
        return None if names is None else [str(n) for n in names]
    p = Path(names)
    if p.suffix == ".npy":
        from hanet.data.formats import load_names

        return load_names(p)
    try:
        return [line.strip() for line in p.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise DataError(f"{p}: cannot read the names file ({exc})") from None


def _load_captions(captions: Optional[str | os.PathLike | dict], rolegraphs: Optional[str | os.PathLike]):
    if captions is None:
        return None, None
    from hanet.data.formats import load_captions, load_json

    caps = captions if isinstance(captions, dict) else load_captions(Path(captions))
    graphs = None
    gpath = Path(rolegraphs) if rolegraphs else (Path(captions).parent / "sent2rolegraph.augment.json"
                                                  if not isinstance(captions, dict) else None)
    if gpath is not None and gpath.is_file():
        graphs = load_json(gpath, "role graph")
        if not isinstance(graphs, dict):
            raise DataError(f"{gpath}: role graphs must be {{caption: [nodes, edges]}}")
    elif rolegraphs:
        raise DataError(f"{rolegraphs}: role graph file not found")
    return caps, graphs


# ---------------------------------------------------------------------- the writer
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
        from hanet.index.engine import EngineSpec

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
        rows on first use (see :func:`hanet.index.engine.sync`)."""
        from hanet.index.engine import EngineStage, connect, sync

        if self._engine is None:
            self._engine = connect(self.engine_spec.url, self.dir)
        st = EngineStage(self._engine, self.engine_spec, part, self.collection(part), self.variant,
                         flat=self._stage(part))
        if part not in self._synced or full_sync:
            mc = self.config.model
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
            vectors: its first-stage vectors (:func:`~hanet.index.faiss_stage.first_stage_vectors`).
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

    def repair(self, damaged: dict[str, set[str]]) -> dict[str, list[str]]:
        """Drop damaged segments and rebuild what derives from the intact ones, in one commit.

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
        from hanet.index.store import Segment

        if self.engine_spec is not None:
            raise HanetError(f"{self.dir}: repair works on an index whose first stage is in its own files; for "
                             f"an engine-backed index rebuild it, then `hanet index sync --full`")
        m = copy.deepcopy(self.manifest)
        gen = int(m["generation"]) + 1
        dropped: dict[str, list[str]] = {}
        for part in ("videos", "captions"):
            info = m[part]
            old_dead = (np.load(self.dir / info["tombstones"], allow_pickle=False)
                        if info.get("tombstones") else np.zeros(0, np.int64))
            kept, dead, start, new_start = [], [], 0, 0
            st = FirstStage.create({"global": self.config.model.video.dim_embed,
                                    "verbs": self.config.model.num_verb_concepts,
                                    "nouns": self.config.model.num_noun_concepts}, self.variant)
            for seg in info["segments"]:
                n = int(seg["count"])
                if seg["name"] in damaged.get(part, set()):
                    try:
                        dropped.setdefault(part, []).extend(json.loads(
                            (self.dir / "segments" / seg["name"] / "ids.json").read_text()))
                    except (OSError, ValueError):
                        dropped.setdefault(part, []).append(f"{seg['name']}: {n} rows")
                else:
                    recs = Segment(self.dir / "segments" / seg["name"], part, n)
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
                atomic_save_npy(self.dir / rel, tomb.astype(np.int64))
                info["tombstones"] = rel
            info["faiss"] = None
            if st.ntotal:
                self._maybe_build_ann(st)
                rel_f = {k: f"faiss/{part}-{gen:06d}-{k}.faiss" for k in st.indexes}
                st.save({k: self.dir / v for k, v in rel_f.items()})
                info["faiss"] = rel_f
            self._stages[part] = st
        m["generation"] = gen
        m["updated"] = time.time()
        m["files"] = record_files(self.dir, m)  # the intact files keep their records; new ones are added
        write_manifest(self.dir, m)  # the commit
        self.manifest = m
        collect_garbage(self.dir, m)
        return dropped

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
            vectors = _StageVectors()
            for fields, metas in batches:
                n = len(metas)
                if thumbs is not None:
                    for j, meta in enumerate(metas):
                        ok = thumbs(seg.thumbs_dir / f"{row + j}.jpg", row + j, meta)
                        meta["thumbnail"] = bool(ok)
                        made += int(ok)
                if frame_dtype == "int8" and fields["verb_frames"].dtype != np.int8:
                    from hanet.index.scorer import precompute, quantize_frames

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
        store, sampling = _open_features(features)
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
                        raise _Unusable(found)
                    yield fields, metas
                if found:
                    raise _Unusable(found)

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
                    except _Unusable as exc:
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
            vectors = _StageVectors()
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


# ---------------------------------------------------------------------- public functions
def create_index(out_dir: str | os.PathLike, model: Any, config: Any, word2int: dict[str, int], *,
                 source: str = "", concepts: Optional[dict[str, list[str]]] = None,
                 first_stage: str = "auto", frame_dtype: str = "float16", backend: str = "embedded",
                 engine_url: Optional[str] = None, collection: Optional[str] = None,
                 examples: Sequence[str] = ()) -> None:
    """Create an empty index for a model (or accept an existing empty one of the same model).

    Args:
        out_dir: the index directory.
        model: the :class:`~hanet.model.HANet`.
        config: its :class:`~hanet.config.HANetConfig`.
        word2int: its vocabulary.
        source: where the model came from (recorded).
        concepts: concept names by id (``{"verb": [...], "noun": [...]}``), or None.
        first_stage: ``auto`` (the approximate first stage from
            :data:`~hanet.index.faiss_stage.ANN_MIN_ROWS` videos on), ``exact`` (always the exact
            scan) or ``ivf`` (approximate at any size).
        frame_dtype: ``float16`` or ``int8`` (per-frame tensors at about half the bytes, a scale per
            frame; see :data:`hanet.index.store.FRAME_FIELDS`).
        backend: ``embedded`` (FAISS files in the index) or ``qdrant`` (the first stage in a Qdrant
            collection, :mod:`hanet.index.engine`).
        engine_url: with ``qdrant``: ``http://host:6333``, ``edge:PATH`` or ``local:PATH``.
        collection: with ``qdrant``: the collections' name prefix (default ``hanet_<uid>``).
        examples: example queries the web page offers (:meth:`SearchIndex.examples`).

    Raises:
        HanetError: the directory holds a non-empty index or other files.
        EngineError: the engine is unreachable or the collection belongs to another index.
    """
    from hanet import __version__
    from hanet.io import atomic_torch_save
    from hanet.run import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

    from hanet.index.engine import BACKENDS, EngineSpec

    if first_stage not in FIRST_STAGES:
        raise HanetError(f"first stage {first_stage!r}: choose one of {', '.join(FIRST_STAGES)}")
    if backend not in BACKENDS:
        raise HanetError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if (backend == "qdrant") != bool(engine_url):
        raise HanetError("--backend qdrant needs --url (http://host:6333, edge:PATH or local:PATH), "
                         "and --url goes with --backend qdrant")
    field_shapes(config.model, "videos", frame_dtype)  # refuses an unknown frame dtype
    d = Path(out_dir)
    if d.exists() and not d.is_dir():
        raise HanetError(f"{d}: is a file; --out names the folder of the new index")
    from hanet.data.formats import vocab_fingerprint

    fp = model_fingerprint(model)
    if (d / "manifest.json").exists():
        m = read_manifest(d)
        n = sum(s["count"] for s in m["videos"]["segments"])
        if n or m["model"]["fingerprint"] != fp:
            raise HanetError(f"{d}: already holds an index ({n} videos); add to it with `hanet index add`, "
                             f"or choose a new --out")
        return
    if d.exists() and any(p.name != ".lock" for p in d.iterdir()):
        raise HanetError(f"{d}: exists and is not empty; choose a new --out for the index")
    max_id = max(word2int.values(), default=-1)
    if max_id >= config.model.text.num_words:
        raise DataError(f"vocabulary ids go up to {max_id} but the model has num_words={config.model.text.num_words}")
    with IndexLock(d):
        spec = None
        if backend == "qdrant":
            spec = EngineSpec.new(str(engine_url), collection)
            _check_engine(spec, d, config.model, create=True)  # before anything is written
        atomic_torch_save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "tag": "index",
                           "config": config.to_dict(), "variant": model.variant, "model": model.state_dict()},
                          d / MODEL_FILE)
        atomic_write_text(d / VOCAB_FILE, json.dumps(word2int))
        if concepts is not None:
            atomic_write_text(d / CONCEPTS_FILE, json.dumps(concepts))
        now = time.time()
        empty = {"segments": [], "tombstones": None, "faiss": None, "count": 0, "deleted": 0}
        m = {
            "format": INDEX_FORMAT, "version": INDEX_VERSION, "generation": 0, "created": now, "updated": now,
            "hanet_version": __version__, "index_id": uuid.uuid4().hex,
            "model": {"fingerprint": fp, "variant": model.variant, "source": source,
                      "config": config.to_dict()["model"], "vocab": vocab_fingerprint(word2int)},
            "concepts": concepts is not None, "first_stage": first_stage, "frame_dtype": frame_dtype,
            "examples": [str(q) for q in examples], "videos": dict(empty), "captions": dict(empty),
            **({"engine": spec.to_dict()} if spec is not None else {}),
        }
        m["files"] = record_files(d, m)
        write_manifest(d, m)


def _check_engine(spec: Any, index_dir: Path, mc: Any, create: bool) -> None:
    """Both collections of an engine-backed index reachable and the index's own."""
    from hanet.index.engine import EngineStage, connect

    engine = connect(spec.url, index_dir)
    try:
        for part in ("videos", "captions"):
            EngineStage(engine, spec, part, None, "hanet").check(
                mc.video.dim_embed + mc.num_verb_concepts + mc.num_noun_concepts, create=create)
    finally:
        engine.close()


def sync_engine(index_dir: str | os.PathLike, url: Optional[str] = None, collection: Optional[str] = None,
                full: bool = False, progress: bool = False) -> dict[str, Any]:
    """Upload an index's first stage to a Qdrant collection, or bring it up to date.

    Turns an embedded index into an engine-backed one (``url`` given), moves one to another
    engine or collection, or repairs the collection after a crash or a loss (the segment store
    holds everything the engine needs).

    Args:
        index_dir: the index.
        url: the engine (default: the index's own).
        collection: collections' name prefix (default: the index's own, or ``hanet_<uid>``).
        full: upload every live row even where the counts already agree.
        progress: print progress.

    Returns:
        ``{"url", "collection", "videos": points, "captions": points, "uploaded": rows}``.
    """
    from hanet.index.engine import EngineSpec

    with IndexWriter(index_dir, progress=progress) as w:
        old = w.engine_spec
        if url is None and old is None:
            raise HanetError(f"{w.dir}: is an embedded index; give --url to upload it to a Qdrant engine")
        spec = old or EngineSpec.new(str(url), collection)
        if url is not None or collection is not None:
            spec = EngineSpec(url=str(url or spec.url), collection=collection or spec.collection, uid=spec.uid)
        w.engine_spec = spec
        out: dict[str, Any] = {"url": spec.url, "collection": spec.collection, "uploaded": 0}
        for part in ("videos", "captions"):
            st = w.engine_stage(part, full_sync=full or spec != old)
            out[part] = st.engine.count(st.name)
        out["uploaded"] = w.uploaded
        if spec != old:
            m = copy.deepcopy(w.manifest)
            m["engine"] = spec.to_dict()
            for part in ("videos", "captions"):
                if m[part].get("faiss"):  # the engine replaces the inverted file; the exact vectors stay
                    m[part]["faiss"] = {k: v for k, v in m[part]["faiss"].items() if k in STAGE_PARTS}
                    flat = w._stages.get(part)
                    if flat is not None:
                        flat.indexes.pop("ann", None)
            m["generation"] = int(m["generation"]) + 1
            m["updated"] = time.time()
            write_manifest(w.dir, m)
            w.manifest = m
            collect_garbage(w.dir, m)
    return out


def build_index(run_dir: Optional[str | os.PathLike], features: Sequence[str | os.PathLike] | str | os.PathLike,
                out_dir: str | os.PathLike, *, checkpoint: Optional[str | os.PathLike] = None,
                official: Optional[tuple[str | os.PathLike, str | os.PathLike]] = None,
                videos_dir: Optional[str | os.PathLike] = None, captions: Optional[str | os.PathLike | dict] = None,
                rolegraphs: Optional[str | os.PathLike] = None, names: Optional[Sequence[str] | str] = None,
                batch_size: int = DEFAULT_BATCH,
                segment_size: int = DEFAULT_SEGMENT, thumbnails: bool = True,
                vocab: Optional[str | os.PathLike] = None, concepts: Optional[str | os.PathLike] = None,
                first_stage: str = "auto", frame_dtype: str = "float16", backend: str = "embedded",
                engine_url: Optional[str] = None, collection: Optional[str] = None,
                examples: Sequence[str] = (), progress: bool = False) -> BuildReport:
    """Build an index of the videos of feature files with a trained run.

    Args:
        run_dir: the run (its best checkpoint, else last); None with ``checkpoint``.
        features: HDF5 feature file(s) from ``hanet extract`` (or the released format).
        out_dir: the new index directory.
        checkpoint: a checkpoint file instead of the run's default.
        official: ``(checkpoint, model.json)`` of the authors' code instead of a run (then
            ``vocab`` is needed).
        videos_dir: folder of the video files, for thumbnails and previews (default: the paths
            the feature file records, where they exist).
        captions: ``{video: [caption, ...]}`` (a file or a dict) to index for video-to-text search.
        rolegraphs: role graphs of those captions (default: ``sent2rolegraph.augment.json``
            beside the caption file; captions without a graph are parsed with spaCy).
        names: videos to index (a list, a ``.npy`` or a text file; default: all).
        batch_size: videos per encoder call.
        segment_size: videos per committed segment.
        thumbnails: make thumbnail strips.
        vocab: ``word2int.json`` (default: the run's dataset's).
        concepts: folder with ``verb_concepts.json`` / ``noun_concepts.json`` (default: beside
            the vocabulary, if there).
        first_stage: ``auto``, ``exact`` or ``ivf`` (see :func:`create_index`).
        frame_dtype: ``float16`` or ``int8`` (see :func:`create_index`).
        backend, engine_url, collection: where the first stage lives (see :func:`create_index`).
        examples: example queries for the web page (see :func:`create_index`).
        progress: print progress.

    Returns:
        :class:`BuildReport`.
    """
    t0 = time.time()
    model, cfg, ckpt = _load_run_model(run_dir, checkpoint, official)
    word2int, vocab_path = _run_vocab(run_dir, vocab)
    names_list = _read_names(names)
    concept_names = _concept_names(Path(concepts) if concepts else vocab_path.parent, cfg.model)
    caps, graphs = _load_captions(captions, rolegraphs)
    create_index(out_dir, model, cfg, word2int, source=str(ckpt.resolve()), concepts=concept_names,
                 first_stage=first_stage, frame_dtype=frame_dtype, backend=backend, engine_url=engine_url,
                 collection=collection, examples=examples)
    with IndexWriter(out_dir, progress=progress) as w:
        rep = w.add_from_features(features, names=names_list, videos_dir=Path(videos_dir) if videos_dir else None,
                                  batch_size=batch_size, segment_size=segment_size, thumbnails=thumbnails)
        if caps is not None:
            rep.captions_added = w.add_captions(caps, graphs)
        rep.generation = int(w.manifest["generation"])
    rep.seconds = time.time() - t0
    return rep


def add_videos(index_dir: str | os.PathLike, features: Sequence[str | os.PathLike] | str | os.PathLike, *,
               run_dir: Optional[str | os.PathLike] = None, checkpoint: Optional[str | os.PathLike] = None,
               videos_dir: Optional[str | os.PathLike] = None, captions: Optional[str | os.PathLike | dict] = None,
               rolegraphs: Optional[str | os.PathLike] = None, names: Optional[Sequence[str] | str] = None,
               replace: bool = False, batch_size: int = DEFAULT_BATCH, segment_size: int = DEFAULT_SEGMENT,
               thumbnails: bool = True, progress: bool = False) -> BuildReport:
    """Add the videos of feature files to an index (those already in it are skipped unless ``replace``).

    Args:
        index_dir: the index.
        features: HDF5 feature file(s).
        run_dir, checkpoint: if given, the model must be the index's own (checked by fingerprint);
            the index's stored model is used either way.
        videos_dir, captions, rolegraphs, names, batch_size, segment_size, thumbnails, progress:
            as in :func:`build_index`.
        replace: re-encode videos already indexed.

    Returns:
        :class:`BuildReport`.
    """
    t0 = time.time()
    caps, graphs = _load_captions(captions, rolegraphs)
    with IndexWriter(index_dir, progress=progress) as w:
        if run_dir is not None or checkpoint is not None:
            model, _, ckpt = _load_run_model(run_dir, checkpoint)
            w.check_model(model, str(ckpt))
        rep = w.add_from_features(features, names=_read_names(names),
                                  videos_dir=Path(videos_dir) if videos_dir else None, replace=replace,
                                  batch_size=batch_size, segment_size=segment_size, thumbnails=thumbnails)
        if caps is not None:
            rep.captions_added = w.add_captions(caps, graphs)
        rep.generation = int(w.manifest["generation"])
    rep.seconds = time.time() - t0
    return rep


def delete_videos(index_dir: str | os.PathLike, ids: Sequence[str], missing_ok: bool = False) -> int:
    """Delete videos from an index without rebuilding it (tombstones, one commit).

    Returns:
        Videos deleted.
    """
    with IndexWriter(index_dir) as w:
        return w.delete(list(ids), missing_ok=missing_ok)



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
        dropped = w.repair(damaged)
    return {"index": str(d), "problems": r["problems"], "dropped": dropped, "repaired": True}

__all__ = ["BuildReport", "IndexWriter", "build_index", "add_videos", "delete_videos", "create_index", "sync_engine",
           "repair_index",
           "DEFAULT_BATCH", "DEFAULT_SEGMENT"]
