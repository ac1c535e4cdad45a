"""The engines a collection can live in, behind one small interface (``exists``, ``create``,
``drop``, ``count``, ``upsert``, ``delete``, ``query``, ...): a Qdrant server or cluster, or
qdrant-client's local mode (``_Client``), and the Qdrant engine in-process (``_Edge``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import warnings
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

from hanet.errors import HanetError


#: the one named vector of a collection's points: the row's proxy
VECTOR = "proxy"


class EngineError(HanetError):
    """The vector engine is unreachable, refuses a request, or holds another index's collection."""


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

    def drop(self, name: str) -> None:
        """Delete a collection (missing: nothing to do)."""
        self._call(f"dropping collection {name}", lambda: self.client.delete_collection(name))

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
    """The Qdrant engine in-process (``qdrant-edge-py``): one shard folder per collection.

    The engine rewrites some of a shard's files whenever it loads one, so a reader
    (``private=True``: search, explanations, the server) loads a private copy of each shard,
    made in a temporary folder under a shared lock on the index (no writer mid-change) and
    removed when the reader closes: the index's files are never written by a reader, a
    read-only mount can be searched, and several readers can serve one ``edge:`` engine.
    """

    def __init__(self, url: str, index_dir: Path, private: bool = False) -> None:
        try:
            import qdrant_edge
        except ImportError:
            raise EngineError("edge: URLs need qdrant-edge-py: pip install 'hanet[engine]'") from None
        self.q = qdrant_edge
        self.url = url
        rel = Path(url[len("edge:"):])
        self.index_dir = Path(index_dir)
        self.root = rel if rel.is_absolute() else self.index_dir / rel
        self.shards: dict[str, Any] = {}
        self.private = private
        self._copies: Optional[Path] = None
        self._cleanup: Optional[weakref.finalize] = None

    def _path(self, name: str) -> Path:
        return self.root / name

    def _load_path(self, name: str) -> Path:
        """Where a shard is loaded from: itself, or a reader's private copy of it."""
        p = self._path(name)
        if not self.private:
            return p
        if self._copies is None:
            self._copies = Path(tempfile.mkdtemp(prefix="hanet-edge-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(self._copies), True)
        dst = self._copies / name
        if not dst.exists():
            with _shared_lock(self.index_dir):
                try:
                    shutil.copytree(p, dst)
                except OSError as exc:
                    shutil.rmtree(dst, ignore_errors=True)
                    raise EngineError(f"{p}: cannot copy the engine's shard for reading "
                                      f"({getattr(exc, 'strerror', None) or exc}; the copy goes to "
                                      f"{self._copies.parent}, set TMPDIR for another folder)") from None
        return dst

    def _shard(self, name: str) -> Any:
        s = self.shards.get(name)
        if s is None:
            p = self._load_path(name)
            try:
                s = self.q.EdgeShard.load(str(p))
            except Exception as exc:
                msg = str(exc)
                if "WouldBlock" in msg:
                    raise EngineError(f"{p}: the in-process Qdrant shard is open in another process (an edge: engine "
                                      f"has one writer at a time)") from None
                raise _fail(self.url, f"opening shard {self._path(name)}", exc) from None
            self.shards[name] = s
        return s

    def drop(self, name: str) -> None:
        """Remove a collection's shard, whatever state its files are in."""
        s = self.shards.pop(name, None)
        if s is not None:
            try:
                s.close()
            except Exception:
                pass
        p = self._path(name)
        try:
            if p.is_dir():
                shutil.rmtree(p)
        except OSError as exc:
            raise EngineError(f"{p}: cannot remove the engine's shard ({exc.strerror})") from None

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
        if self._cleanup is not None:
            self._cleanup()  # the private copies


@contextmanager
def _shared_lock(index_dir: Path) -> Iterator[None]:
    """Hold a shared lock on the index's writer lock file (no writer mid-change meanwhile);
    nothing is created or written (an index on a read-only mount has no writer to wait for)."""
    try:
        fd = os.open(index_dir / ".lock", os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            raise EngineError(f"{index_dir}: a `hanet index` command is writing this index; search it when it is "
                              f"done") from None
        yield
    finally:
        os.close(fd)


def connect(url: str, index_dir: Path, private: bool = False) -> Any:
    """An adapter for an engine URL (see the module docstring); ``private``: a reader's, which
    writes nothing (an ``edge:`` engine is then read from private copies of its shards)."""
    if url.startswith("edge:"):
        if not url[len("edge:"):].strip():
            raise EngineError(f"engine URL {url!r}: edge: needs the folder of the engine's shards, e.g. edge:engine "
                              f"(relative to the index folder) or edge:/data/engine")
        return _Edge(url, Path(index_dir), private=private)
    if url.startswith(("http://", "https://", "local:")) or url == ":memory:":
        return _Client(url, Path(index_dir))
    raise EngineError(f"engine URL {url!r}: use http://host:6333 (a Qdrant server), edge:PATH (the engine "
                      f"in-process) or local:PATH (qdrant-client's local mode)")


__all__ = ["EngineError", "connect", "VECTOR"]
