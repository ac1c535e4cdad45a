"""Building and updating an index: encode each video once (:mod:`hanet.index.encode`), store,
commit atomically. What an index holds and whether it is intact: :mod:`hanet.index.audit`.
"""

from __future__ import annotations

import copy
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Optional, Sequence


from hanet.errors import DataError, HanetError
from hanet.index.first_stage import PARTS as STAGE_PARTS
from hanet.index.first_stage import FIRST_STAGES
from hanet.index.storage import (CONCEPTS_FILE, INDEX_FORMAT, INDEX_VERSION, MODEL_FILE, VOCAB_FILE,
                                 IndexLock, collect_garbage, field_shapes,
                               model_fingerprint, read_manifest, record_files, write_manifest)
from hanet.index.tuning import DEFAULT_BATCH, DEFAULT_SEGMENT
from hanet.io import atomic_write_text
from hanet.index.inputs import (BuildReport, load_run_model, run_vocab, read_concept_names, read_names, load_captions)
from hanet.index.writer import IndexWriter
from hanet.index.repair import repair_index


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
            :data:`~hanet.index.first_stage.ANN_MIN_ROWS` videos on), ``exact`` (always the exact
            scan) or ``ivf`` (approximate at any size).
        frame_dtype: ``float16`` or ``int8`` (per-frame tensors at about half the bytes, a scale per
            frame; see :data:`hanet.index.storage.FRAME_FIELDS`).
        backend: ``embedded`` (FAISS files in the index) or ``qdrant`` (the first stage in a Qdrant
            collection, :mod:`hanet.index.first_stage.qdrant`).
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

    from hanet.index.first_stage.qdrant import BACKENDS, EngineSpec

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
    from hanet.index.first_stage.qdrant import EngineStage, connect

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
    from hanet.index.first_stage.qdrant import EngineSpec

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
    model, cfg, ckpt = load_run_model(run_dir, checkpoint, official)
    word2int, vocab_path = run_vocab(run_dir, vocab)
    names_list = read_names(names)
    concept_names = read_concept_names(Path(concepts) if concepts else vocab_path.parent, cfg.model)
    caps, graphs = load_captions(captions, rolegraphs)
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
    caps, graphs = load_captions(captions, rolegraphs)
    with IndexWriter(index_dir, progress=progress) as w:
        if run_dir is not None or checkpoint is not None:
            model, _, ckpt = load_run_model(run_dir, checkpoint)
            w.check_model(model, str(ckpt))
        rep = w.add_from_features(features, names=read_names(names),
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


__all__ = ["BuildReport", "IndexWriter", "build_index", "add_videos", "delete_videos", "create_index", "sync_engine",
           "repair_index", "DEFAULT_BATCH", "DEFAULT_SEGMENT"]
