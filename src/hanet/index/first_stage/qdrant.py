"""The first stage in a vector database: a hanet index whose candidates come from Qdrant.

An index built with ``backend="qdrant"`` keeps everything but its first stage where every
index keeps it: the model, the vocabulary, the manifest and the segment store (every row's
arrays, the source of truth) in the index directory, which for several query servers is a
folder on shared storage that they open read-only. The approximate first stage (the embedded
inverted file) is replaced by two Qdrant collections, ``<name>_videos`` and ``<name>_captions``,
with one point per live row:

* id: the row number (rows never move, so ids are stable and upserts idempotent);
* vector ``proxy`` (dot product): the row's proxy vector
  (:func:`~hanet.index.first_stage.proxy_vectors`, the same one the embedded approximate stage
  indexes), whose inner product with a query's proxy follows HANet's first-stage partial score;
* payload: ``row``, ``id`` (the video's or caption's id), ``model``, ``format`` and ``index``, the index's uid, so
  that a collection filled by another index (another model, another version) is recognised.

A query asks the engine (HNSW, or a brute-force scan with ``exact=True``) for a pool of
:data:`ENGINE_POOL_FACTOR` times the candidates by proxy score, then the exact
partial score of the pool, from the index's flat first-stage vectors (the FAISS flat files every
index keeps, memory-mapped from the shared folder), picks the candidates, and the seven
scores rerank them, exactly as with the embedded approximate stage
(:func:`~hanet.index.first_stage.best_of_pools` is shared). The query servers hold no state of
their own: the engine and the shared folder are the collection, so ``hanet serve`` scales by
adding replicas.

Where a change lands first decides what a crash leaves: a new segment's points are upserted
before the manifest commit (a killed build leaves points past the committed rows, which
searches ignore and the next writer deletes), deletions after it (a killed delete leaves
points of dead rows, which searches drop by the tombstones and the next writer deletes). The
writer reconciles on open and re-uploads whatever the engine lacks from the segment store:
nothing indexed is lost with the engine, and ``hanet index sync`` rebuilds a collection from
scratch (a new cluster, a dropped collection).

URLs:

* ``http://host:6333`` / ``https://...``: a Qdrant server or cluster (``qdrant-client``);
  ``?shards=N&replicas=R`` spreads a new collection over a cluster;
* ``edge:PATH``: the Qdrant engine in-process (``qdrant-edge-py``): shards in ``PATH``,
  relative to the index directory (``edge:engine`` by default). One process at a time;
* ``local:PATH`` / ``:memory:``: ``qdrant-client``'s local mode, a pure-Python stand-in for
  small collections and tests of the client path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from hanet.index.first_stage import Candidates, best_of_pools, first_stage_vectors, pool_size, proxy_vectors

from hanet.index.first_stage.engines import VECTOR, EngineError, connect
from hanet.index.tuning import ENGINE_POOL_FACTOR, UPSERT_BATCH

BACKENDS = ("embedded", "qdrant")
STAGE_FIELDS = ("global_embeds", "verb_probs", "noun_probs")


@dataclass
class EngineSpec:
    """Where an index's first stage lives (the manifest's ``engine`` entry).

    Attributes:
        url: the engine (see the module docstring).
        collection: prefix of the two collection names.
        uid: the index's id, written into every point.
    """

    url: str
    collection: str
    uid: str

    @classmethod
    def new(cls, url: str, collection: Optional[str] = None) -> "EngineSpec":
        uid = uuid.uuid4().hex
        return cls(url=url, collection=collection or f"hanet_{uid[:12]}", uid=uid)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Optional["EngineSpec"]:
        e = manifest.get("engine")
        return None if not e else cls(url=str(e["url"]), collection=str(e["collection"]), uid=str(e["uid"]))

    def to_dict(self) -> dict[str, Any]:
        return {"backend": "qdrant", "url": self.url, "collection": self.collection, "uid": self.uid}

    def name(self, part: str) -> str:
        return f"{self.collection}_{part}"


# ---------------------------------------------------------------------- the first stage
class EngineStage:
    """The first stage of one part (videos or captions) in an engine collection.

    Args:
        engine: an adapter from :func:`connect`.
        spec: the index's engine entry.
        part: ``videos`` or ``captions``.
        coll: the part's :class:`~hanet.index.storage.Collection` (rows, tombstones, stored vectors).
        variant: the model variant (the partial score's weights).
        flat: the index's exact first-stage vectors (a :class:`~hanet.index.first_stage.FirstStage`
            of flat FAISS files, memory-mapped): a pool is rescored from these (1.8 KiB a row at the
            synthetic model's sizes) rather than from the records (20 KiB a row); None reads the records.
    """

    kind = "qdrant"

    def __init__(self, engine: Any, spec: EngineSpec, part: str, coll: Any, variant: str,
                 flat: Any = None) -> None:
        self.engine = engine
        self.flat = flat
        self.spec = spec
        self.part = part
        self.name = spec.name(part)
        self.coll = coll
        self.variant = variant
        #: brute-force scan in the engine instead of its HNSW graph
        self.exact = False

    @property
    def ntotal(self) -> int:
        return self.coll.size

    def check(self, dim: int, create: bool = False) -> None:
        """Make sure the collection is this index's (creating it if asked and missing).

        Raises:
            EngineError: missing (and not ``create``), another index's, or of another size.
        """
        e, name = self.engine, self.name
        if not e.exists(name):
            if not create:
                raise EngineError(f"qdrant at {self.spec.url}: no collection {name}; upload the index with "
                                  f"`hanet index sync INDEX_DIR` (its segments hold everything the engine needs)")
            e.create(name, dim)
            return
        have = e.dim(name)
        if have is not None and have != dim:
            raise EngineError(f"qdrant at {self.spec.url}: collection {name} holds {have}-d vectors, this index's "
                              f"model makes {dim}-d ones; give another --collection or drop that one")
        p = e.first_payload(name)
        if p is not None and p.get("index") != self.spec.uid:
            raise EngineError(f"qdrant at {self.spec.url}: collection {name} holds the points of another index "
                              f"(uid {p.get('index')}, model {p.get('model')}, hanet index format "
                              f"{p.get('format')}); give another --collection or drop that one")

    def reset(self) -> None:
        """Drop the collection so that a full sync builds it afresh from the segment store: it is
        this index's, or unreadable (files deleted or garbled); another index's is refused."""
        e, name = self.engine, self.name
        try:
            p = e.first_payload(name) if e.exists(name) else None
        except EngineError:
            p = None  # unreadable: nothing in it to keep
        if p is not None and p.get("index") != self.spec.uid:
            raise EngineError(f"qdrant at {self.spec.url}: collection {name} holds the points of another index "
                              f"(uid {p.get('index')}); give another --collection or drop that one")
        e.drop(name)

    def _payloads(self, rows: np.ndarray, labels: Sequence[str], fingerprint: str, fmt: int) -> list[dict[str, Any]]:
        return [{"row": int(r), "id": str(v), "index": self.spec.uid, "model": fingerprint[:12], "format": fmt}
                for r, v in zip(rows.tolist(), labels)]

    def upload(self, first_row: int, vectors: dict[str, np.ndarray], labels: Sequence[str], fingerprint: str,
               fmt: int) -> None:
        """Upsert rows ``first_row, first_row + 1, ...`` (idempotent).

        Args:
            first_row: the first row's number.
            vectors: :func:`~hanet.index.first_stage.first_stage_vectors` of the rows.
            labels: each row's video id.
            fingerprint: the model's fingerprint (recorded in the payload).
            fmt: the index format version (recorded in the payload).
        """
        proxy = proxy_vectors(vectors, self.variant)
        rows = np.arange(first_row, first_row + len(proxy), dtype=np.int64)
        for s in range(0, len(rows), UPSERT_BATCH):
            r = rows[s:s + UPSERT_BATCH]
            self.engine.upsert(self.name, r, proxy[s:s + UPSERT_BATCH],
                               self._payloads(r, labels[s:s + UPSERT_BATCH], fingerprint, fmt))

    def delete(self, rows: np.ndarray) -> None:
        for s in range(0, len(rows), UPSERT_BATCH):
            self.engine.delete(self.name, np.asarray(rows[s:s + UPSERT_BATCH], np.int64))

    def stored_vectors(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """First-stage vectors of rows (the values the engine was given)."""
        rows = np.asarray(rows, np.int64)
        if self.flat is not None and self.flat.ntotal == self.coll.size:
            return self.flat.stored(rows)
        f = self.coll.gather_many(STAGE_FIELDS, np.asarray(rows, np.int64))
        return first_stage_vectors(f["global_embeds"], f["verb_probs"], f["noun_probs"])

    def find(self, queries: dict[str, np.ndarray], c: int, alive: Optional[np.ndarray] = None,
             nprobe: Optional[int] = None) -> Candidates:
        """The engine's pool, rescored exactly (:class:`~hanet.index.first_stage.Candidates`,
        no bound: the engine does not look at every row)."""
        return Candidates(self.approximate_candidates(queries, c, alive, nprobe), None)

    def approximate_candidates(self, queries: dict[str, np.ndarray], c: int, alive: Optional[np.ndarray] = None,
                               nprobe: Optional[int] = None) -> list[np.ndarray]:
        """The ``c`` rows with the highest exact partial score among the engine's pool, per query.

        Args:
            queries: :func:`~hanet.index.first_stage.first_stage_vectors` of Q queries.
            c: rows per query.
            alive: (ntotal,) bool, or None when nothing is deleted.
            nprobe: unused (the engine's search effort follows the pool size).

        Returns:
            Per query, up to ``c`` int64 rows ascending.
        """
        pool = pool_size(c, self.coll.size, alive, factor=ENGINE_POOL_FACTOR)
        found = self.engine.query(self.name, proxy_vectors(queries, self.variant), max(pool, 1), self.exact)
        pools = []
        for r in found:
            r = r[r < self.coll.size]  # points of a build still being committed, or after this snapshot
            if alive is not None:
                r = r[alive[r]]
            pools.append(r)
        return best_of_pools(queries, pools, self.stored_vectors, c, self.variant)


def sync(stage: EngineStage, fingerprint: str, fmt: int, full: bool = False, say: Callable[[str], None] = print,
         chunk: int = 20_000) -> dict[str, int]:
    """Bring a collection in line with the index: delete points past the committed rows and
    points of deleted rows; upload live rows the engine lacks (all of them when ``full``).

    Returns:
        ``{"uploaded": n, "points": count after}``.
    """
    coll, e = stage.coll, stage.engine
    e.delete_from(stage.name, coll.size)
    dead = np.flatnonzero(~coll.alive)
    if len(dead):
        stage.delete(dead)
    uploaded = 0
    if full or e.count(stage.name) != coll.num_alive:
        for rows in coll.chunks(chunk):
            if not len(rows):
                continue
            # contiguous runs of live rows keep upload() simple (one first row per run)
            breaks = np.flatnonzero(np.diff(rows) != 1) + 1
            for run in np.split(rows, breaks):
                stage.upload(int(run[0]), stage.stored_vectors(run), [coll.ids[r] for r in run.tolist()],
                             fingerprint, fmt)
                uploaded += len(run)
            say(f"engine: {uploaded}/{coll.num_alive} {stage.part} uploaded to {stage.name}")
    return {"uploaded": uploaded, "points": e.count(stage.name)}


__all__ = ["BACKENDS", "VECTOR", "EngineError", "EngineSpec", "EngineStage", "connect", "sync"]
