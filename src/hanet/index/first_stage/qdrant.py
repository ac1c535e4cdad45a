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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from hanet.errors import HanetError
from hanet.index.first_stage import Candidates, best_of_pools, first_stage_vectors, pool_size, proxy_vectors

from hanet.index.tuning import ENGINE_POOL_FACTOR, UPSERT_BATCH

BACKENDS = ("embedded", "qdrant")
VECTOR = "proxy"
STAGE_FIELDS = ("global_embeds", "verb_probs", "noun_probs")


class EngineError(HanetError):
    """The vector engine is unreachable, refuses a request, or holds another index's collection."""


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


def _fail(url: str, what: str, exc: BaseException) -> EngineError:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return EngineError(f"qdrant at {url}: {what} failed ({msg}); check that the engine is running and --url / "
                       f"the index's engine URL is right (`hanet index info` shows it); nothing was changed")


def _guarded(url: str, what: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, with any error of the client or the engine (they raise their own and their
    transport's) turned into an :class:`EngineError` naming the URL and what was being done."""
    try:
        return fn()
    except EngineError:
        raise
    except Exception as exc:
        raise _fail(url, what, exc) from None


# ---------------------------------------------------------------------- adapters
class _Client:
    """A Qdrant server (or qdrant-client's local mode) through ``qdrant-client``."""

    def __init__(self, url: str, index_dir: Path) -> None:
        try:
            from qdrant_client import QdrantClient
        except ImportError:
            raise EngineError("the qdrant backend needs qdrant-client: pip install 'hanet[engine]'") from None
        self.url = url
        self.layout: dict[str, int] = {}
        try:
            if url.startswith(("http://", "https://")):
                from urllib.parse import parse_qs, urlsplit, urlunsplit

                parts = urlsplit(url)
                query = parse_qs(parts.query)
                # ?shards=N&replicas=R: how a new collection is spread over a cluster
                for key, name in (("shards", "shard_number"), ("replicas", "replication_factor")):
                    if key in query:
                        value = query[key][0]
                        if not value.isdigit() or int(value) < 1:
                            raise EngineError(f"{url}: {key}={value!r} is not a positive whole number")
                        self.layout[name] = int(value)
                with warnings.catch_warnings():
                    # an unreachable server is reported by the first request, with the URL
                    warnings.filterwarnings("ignore", message="Failed to obtain server version")
                    self.client = QdrantClient(url=urlunsplit(parts._replace(query="")), timeout=30)
            elif url == ":memory:":
                self.client = QdrantClient(location=":memory:")
            else:
                path = Path(url[len("local:"):])
                self.client = QdrantClient(path=str(path if path.is_absolute() else index_dir / path))
        except EngineError:
            raise
        except Exception as exc:  # the client raises its own and the transport's errors
            raise _fail(url, "connecting", exc) from None

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # local mode warns that it ignores search params
            return _guarded(self.url, what, fn)

    def exists(self, name: str) -> bool:
        return bool(self._call(f"looking up collection {name}", lambda: self.client.collection_exists(name)))

    def create(self, name: str, dim: int) -> None:
        from qdrant_client import models as M

        remote = self.url.startswith(("http://", "https://"))
        params = M.VectorParams(size=int(dim), distance=M.Distance.DOT, on_disk=True if remote else None)
        # Server side: full vectors on disk, int8 copies in RAM for the HNSW walk, rescored from disk.
        quant = (M.ScalarQuantization(scalar=M.ScalarQuantizationConfig(type=M.ScalarType.INT8, always_ram=True))
                 if remote else None)
        self._call(f"creating collection {name}", lambda: self.client.create_collection(
            name, vectors_config={VECTOR: params}, quantization_config=quant, **self.layout))
        self._call(f"indexing the payload of {name}", lambda: self.client.create_payload_index(
            name, "row", M.PayloadSchemaType.INTEGER))

    def dim(self, name: str) -> Optional[int]:
        info = self._call(f"reading collection {name}", lambda: self.client.get_collection(name))
        vecs = info.config.params.vectors
        return int(vecs[VECTOR].size) if isinstance(vecs, dict) and VECTOR in vecs else None

    def first_payload(self, name: str) -> Optional[dict[str, Any]]:
        pts, _ = self._call(f"reading collection {name}", lambda: self.client.scroll(name, limit=1, with_payload=True))
        return dict(pts[0].payload or {}) if pts else None

    def count(self, name: str) -> int:
        return int(self._call(f"counting {name}", lambda: self.client.count(name, exact=True)).count)

    def upsert(self, name: str, ids: np.ndarray, vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        from qdrant_client import models as M

        batch = M.Batch(ids=[int(i) for i in ids], vectors={VECTOR: vectors.tolist()}, payloads=payloads)
        self._call(f"writing {len(ids)} points to {name}", lambda: self.client.upsert(name, points=batch, wait=True))

    def delete(self, name: str, ids: np.ndarray) -> None:
        from qdrant_client import models as M

        sel = M.PointIdsList(points=[int(i) for i in ids])
        self._call(f"deleting {len(ids)} points of {name}", lambda: self.client.delete(name, points_selector=sel, wait=True))

    def delete_from(self, name: str, row: int) -> None:
        from qdrant_client import models as M

        sel = M.FilterSelector(filter=M.Filter(must=[M.FieldCondition(key="row", range=M.Range(gte=int(row)))]))
        self._call(f"deleting uncommitted points of {name}",
                   lambda: self.client.delete(name, points_selector=sel, wait=True))

    def query(self, name: str, vectors: np.ndarray, limit: int, exact: bool) -> list[np.ndarray]:
        from qdrant_client import models as M

        params = M.SearchParams(hnsw_ef=max(int(limit), 64), exact=bool(exact))
        reqs = [M.QueryRequest(query=v.tolist(), using=VECTOR, limit=int(limit), params=params) for v in vectors]
        res = self._call(f"searching {name}", lambda: self.client.query_batch_points(name, requests=reqs))
        return [np.array([p.id for p in r.points], np.int64) for r in res]

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass


class _Edge:
    """The Qdrant engine in-process (``qdrant-edge-py``): one shard folder per collection."""

    def __init__(self, url: str, index_dir: Path) -> None:
        try:
            import qdrant_edge
        except ImportError:
            raise EngineError("edge: URLs need qdrant-edge-py: pip install 'hanet[engine]'") from None
        self.q = qdrant_edge
        self.url = url
        rel = Path(url[len("edge:"):] or "engine")
        self.root = rel if rel.is_absolute() else index_dir / rel
        self.shards: dict[str, Any] = {}

    def _path(self, name: str) -> Path:
        return self.root / name

    def _shard(self, name: str) -> Any:
        s = self.shards.get(name)
        if s is None:
            p = self._path(name)
            try:
                s = self.q.EdgeShard.load(str(p))
            except Exception as exc:
                msg = str(exc)
                if "WouldBlock" in msg:
                    raise EngineError(f"{p}: the in-process Qdrant shard is open in another process (an edge: engine "
                                      f"serves one process; run a Qdrant server for several)") from None
                raise _fail(self.url, f"opening shard {p}", exc) from None
            self.shards[name] = s
        return s

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        return _guarded(self.url, what, fn)

    def exists(self, name: str) -> bool:
        return name in self.shards or (self._path(name) / "wal").exists()

    def create(self, name: str, dim: int) -> None:
        q = self.q
        p = self._path(name)
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EngineError(f"{p}: cannot create the engine's folder ({exc.strerror})") from None
        cfg = q.EdgeConfig(vectors={VECTOR: q.EdgeVectorParams(size=int(dim), distance=q.Distance.Dot)})
        self.shards[name] = self._call(f"creating shard {p}", lambda: q.EdgeShard.create(str(p), cfg))

    def dim(self, name: str) -> Optional[int]:
        return None  # the shard checks sizes on upsert; the uid check names the mismatch first

    def first_payload(self, name: str) -> Optional[dict[str, Any]]:
        s = self._shard(name)
        pts, _ = self._call(f"reading {name}", lambda: s.scroll(self.q.ScrollRequest(limit=1, with_payload=True)))
        return dict(pts[0].payload or {}) if pts else None

    def count(self, name: str) -> int:
        s = self._shard(name)
        return int(self._call(f"counting {name}", lambda: s.count(self.q.CountRequest(exact=True))))

    def upsert(self, name: str, ids: np.ndarray, vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        q, s = self.q, self._shard(name)
        pts = [q.Point(id=int(i), vector={VECTOR: v.tolist()}, payload=p) for i, v, p in zip(ids, vectors, payloads)]
        self._call(f"writing {len(ids)} points to {name}", lambda: s.update(q.UpdateOperation.upsert_points(pts)))

    def delete(self, name: str, ids: np.ndarray) -> None:
        q, s = self.q, self._shard(name)
        self._call(f"deleting points of {name}", lambda: s.update(q.UpdateOperation.delete_points([int(i) for i in ids])))

    def delete_from(self, name: str, row: int) -> None:
        q, s = self.q, self._shard(name)
        flt = q.Filter(must=[q.FieldCondition(key="row", range=q.RangeFloat(gte=float(row)))])
        self._call(f"deleting uncommitted points of {name}",
                   lambda: s.update(q.UpdateOperation.delete_points_by_filter(flt)))

    def optimize(self) -> None:
        """Build the HNSW graphs of what was written (the engine indexes in the background otherwise)."""
        for name, s in self.shards.items():
            self._call(f"indexing {name}", s.optimize)

    def query(self, name: str, vectors: np.ndarray, limit: int, exact: bool) -> list[np.ndarray]:
        q, s = self.q, self._shard(name)
        params = q.SearchParams(hnsw_ef=max(int(limit), 64), exact=bool(exact))
        out = []
        for v in vectors:
            req = q.QueryRequest(query=q.Query.Nearest(v.tolist(), using=VECTOR), limit=int(limit), params=params,
                                 with_payload=False, with_vector=False)
            res = self._call(f"searching {name}", lambda req=req: s.query(req))
            out.append(np.array([p.id for p in res], np.int64))
        return out

    def close(self) -> None:
        for s in self.shards.values():
            try:
                s.close()
            except Exception:
                pass
        self.shards.clear()


def connect(url: str, index_dir: Path) -> Any:
    """An adapter for an engine URL (see the module docstring)."""
    if url.startswith("edge:"):
        return _Edge(url, Path(index_dir))
    if url.startswith(("http://", "https://", "local:")) or url == ":memory:":
        return _Client(url, Path(index_dir))
    raise EngineError(f"engine URL {url!r}: use http://host:6333 (a Qdrant server), edge:PATH (the engine "
                      f"in-process) or local:PATH (qdrant-client's local mode)")


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


__all__ = ["BACKENDS", "EngineError", "EngineSpec", "EngineStage", "connect", "sync"]
