"""The first stage of two-stage search: HANet's one-vector-per-side scores, exactly, with FAISS.

HANet's fused score is ``0.1 * (sent + verb + noun + ind_verb + ind_noun) +
0.25 * (concept_verb + concept_noun)``. Three of the seven scores need one vector per video and
one per query:

* ``sent``: cosine of the global embeddings -> a FAISS ``IndexFlatIP`` of unit global embeddings;
* ``concept_verb`` / ``concept_noun``: soft Jaccard ``sum(min) / sum(max)`` of concept
  probabilities. With ``L1 = sum|q - v|`` and ``S = sum(q) + sum(v)``, ``sum(min) = (S - L1) / 2``
  and ``sum(max) = (S + L1) / 2``, so ``J = (S - L1) / (S + L1)`` (the formula
  :func:`hanet.model.scoring.jaccard_sim` uses) -> FAISS ``IndexFlat`` with ``METRIC_L1`` over
  the verb and over the noun probabilities, plus each row's sum.

The first stage computes these three scores for *every* live row with FAISS's SIMD distance
kernels (``faiss.pairwise_distances`` over the flat indexes' vectors) and keeps the ``c`` rows
with the highest ``0.1 * sent + 0.25 * (concept_verb + concept_noun)``: 60% of the fused score,
exactly (the vectors are the float16 values the index stores, so these are the second stage's
numbers). The phrase-level scores (the other 40%) need frames and clips: the second stage scores
the candidates with all seven. Since each phrase-level score is a mean of cosines in [-1, 1],
a video left out can beat a candidate by at most 0.4 in the parts the first stage does not see;
:meth:`FirstStage.candidates` returns the best left-out partial score so that search can say
when its answer is provably exact. For the ``global`` variant the fused score is ``sent`` and
the first stage alone is exact.

That scan is linear in the collection. Past :data:`ANN_MIN_ROWS` rows (or when asked), an index
also keeps an **approximate first stage** (``"ivf"``): a FAISS inverted-file index
(``IndexIVFScalarQuantizer``, 8-bit) over one *proxy* vector per row,
``[sqrt(w_s) * g, sqrt(w_c) * v / |v|, sqrt(w_c) * n / |n|]`` (``g`` the unit global embedding,
``v``, ``n`` the concept probabilities), whose inner product ``w_s cos(g) + w_c (cos(v) + cos(n))``
follows the partial score, with cosines of the probabilities standing in for their soft
Jaccard. A query probes :data:`DEFAULT_NPROBE` of its lists for :data:`POOL_FACTOR` times the
candidates by proxy, then the exact partial score of that pool (the flat vectors, memory-mapped)
picks the candidates: the second stage is unchanged. Its cost grows with the lists probed, not the
collection; it cannot certify exactness (rows it never looked at are not bounded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from hanet.errors import HanetError
from hanet.io import atomic_write
from hanet.model.scoring import EMBEDDING_SCORES, fusion_weights

from hanet.index.first_stage.base import Candidates
from hanet.index.tuning import ANN_MIN_ROWS, DEFAULT_NPROBE, POOL_FACTOR, PROBE_ROWS_FACTOR

PARTS: tuple[str, ...] = ("global", "verbs", "nouns")
ANN_PART = "ann"
FIRST_STAGES = ("auto", "exact", "ivf")


def pool_size(c: int, ntotal: int, alive: Optional[np.ndarray] = None, factor: int = POOL_FACTOR) -> int:
    """Rows an approximate first stage asks for to keep ``c`` candidates: ``factor`` times
    ``c``, plus the dead rows (they are dropped from the pool afterwards), at most every row."""
    pool = max(int(c) * int(factor), int(c))
    if alive is not None and not alive.all():
        pool += int((~alive).sum())
    return min(pool, int(ntotal))


def probe_lists(nlist: int, rows: int, pool: int, nprobe: Optional[int] = None) -> int:
    """Lists a query probes: ``nprobe`` (default :data:`DEFAULT_NPROBE`), raised so that they
    hold about :data:`PROBE_ROWS_FACTOR` times the pool, at most every list."""
    base = DEFAULT_NPROBE if nprobe is None else int(nprobe)
    mean_len = max(rows, 1) / max(nlist, 1)
    need = int(np.ceil(PROBE_ROWS_FACTOR * pool / mean_len))
    return max(1, min(nlist, max(base, need)))


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise HanetError("faiss is not installed: pip install 'hanet[index]' (faiss-cpu)") from exc
    return faiss


def partial_weights(variant: str) -> tuple[float, float]:
    """Fusion weight of ``sent`` and of each concept score.

    Args:
        variant: ``hanet`` or ``global``.

    Returns:
        (weight of ``sent``, weight of each of ``concept_verb`` and ``concept_noun``).
    """
    w = fusion_weights(variant)
    return w["sent"], w["concept_verb"]


def remaining_bound(variant: str) -> float:
    """Largest possible total of the fused score's parts the first stage leaves out.

    ``0.1 * (verb + noun + ind_verb + ind_noun)``, each a mean of cosines in [-1, 1].
    """
    w = fusion_weights(variant)
    return sum(w[n] for n in EMBEDDING_SCORES if n != "sent")


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled by ``1 / sqrt(|x|^2 + 1e-18)`` (the epsilon of :func:`~hanet.model.scoring.cosine_sim`)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.sqrt((x.astype(np.float64) ** 2).sum(-1, keepdims=True) + 1e-18).astype(np.float32)


def first_stage_vectors(global_embeds: np.ndarray, verb_probs: np.ndarray, noun_probs: np.ndarray,
                        round_to_stored: bool = True) -> dict[str, np.ndarray]:
    """The first stage's vectors of videos, captions or queries.

    Args:
        global_embeds: (n, d) global embeddings.
        verb_probs: (n, Cv) verb concept probabilities.
        noun_probs: (n, Cn) noun concept probabilities.
        round_to_stored: round to float16 first (what the index stores; True for indexed rows).

    Returns:
        ``{"global": (n, d) unit rows, "verbs": (n, Cv), "nouns": (n, Cn)}``, float32, contiguous.
    """
    def prep(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return (x.astype(np.float16) if round_to_stored else x).astype(np.float32)

    return {"global": np.ascontiguousarray(unit_rows(prep(global_embeds))),
            "verbs": np.ascontiguousarray(prep(verb_probs)), "nouns": np.ascontiguousarray(prep(noun_probs))}


def proxy_vectors(vectors: dict[str, np.ndarray], variant: str) -> np.ndarray:
    """(n, d + Cv + Cn) float32 proxy rows of :func:`first_stage_vectors` (see the module docstring)."""
    ws, wc = partial_weights(variant)
    parts = [np.sqrt(ws, dtype=np.float32) * vectors["global"]]
    for part in ("verbs", "nouns"):
        parts.append(np.sqrt(wc, dtype=np.float32) * unit_rows(vectors[part]))
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


def partial_of_rows(query: dict[str, np.ndarray], rows: dict[str, np.ndarray], variant: str) -> np.ndarray:
    """The exact partial score of rows for one query.

    Args:
        query: part -> (dim,) one query's :func:`first_stage_vectors`.
        rows: part -> (n, dim) the rows' stored vectors.
        variant: the model variant.

    Returns:
        (n,) float32 ``w_s * sent + w_c * (concept_verb + concept_noun)``.
    """
    ws, wc = partial_weights(variant)
    out = ws * (rows["global"] @ query["global"])
    if wc:
        faiss = _faiss()
        for part in ("verbs", "nouns"):
            x, q = np.ascontiguousarray(rows[part], np.float32), np.ascontiguousarray(query[part], np.float32)
            # FAISS's L1 kernel, as the exact scan (partial_scores) uses: no (n, dim) temporary
            l1 = faiss.pairwise_distances(q[None], x, faiss.METRIC_L1)[0]
            s = q.sum() + x.sum(-1)
            out = out + wc * (s - l1) / (s + l1)
    return np.asarray(out, np.float32)


def best_of_pools(queries: dict[str, np.ndarray], pools: list[np.ndarray],
                  read: Callable[[np.ndarray], dict[str, np.ndarray]], c: int, variant: str) -> list[np.ndarray]:
    """Per query, the ``c`` rows of its pool with the highest exact partial score (the step every
    approximate first stage ends with, whoever found the pool).

    Args:
        queries: :func:`first_stage_vectors` of Q queries.
        pools: Q arrays of candidate rows.
        read: rows -> part -> (n, dim) their stored vectors.
        c: rows per query.
        variant: the model variant.

    Returns:
        Q int64 arrays of up to ``c`` rows, ascending.
    """
    out = []
    for q, rows in enumerate(pools):
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            out.append(rows)
            continue
        part = partial_of_rows({k: v[q] for k, v in queries.items()}, read(rows), variant)
        keep = np.argsort(-part, kind="stable")[:c]
        out.append(np.sort(rows[keep]))
    return out


class FirstStage:
    """Three FAISS flat indexes (global IP, verb L1, noun L1) whose ids are the collection's rows,
    and, once built, the approximate inverted-file index over their proxies (``ann``).

    Args:
        indexes: part -> FAISS index (``global``, ``verbs``, ``nouns`` flat; optionally ``ann``).
        variant: the model variant (decides the weights).
    """

    def __init__(self, indexes: dict[str, Any], variant: str = "hanet") -> None:
        self.indexes = indexes
        self.variant = variant
        self._sums: dict[str, np.ndarray] = {}

    @property
    def kind(self) -> str:
        """``ivf`` when the approximate first stage is built, else ``exact``."""
        return "ivf" if ANN_PART in self.indexes else "exact"

    @property
    def ann_lists(self) -> int:
        return int(self.indexes[ANN_PART].nlist) if ANN_PART in self.indexes else 0

    def build_ann(self, nlist: Optional[int] = None, train_rows: int = 200_000, seed: int = 0) -> None:
        """(Re)build the approximate first stage from every stored row.

        Args:
            nlist: inverted lists (default about 4 * sqrt(rows), at least 16).
            train_rows: rows sampled to train the coarse quantizer and the 8-bit scalar quantizer.
            seed: sampling seed.
        """
        faiss = _faiss()
        n = self.ntotal
        if n == 0:
            return
        vecs = {p: self.vectors(p) for p in PARTS}
        nlist = int(nlist or max(16, min(65536, round(4 * np.sqrt(n)))))
        nlist = min(nlist, n)
        d = sum(v.shape[1] for v in vecs.values())
        quantizer = faiss.IndexFlatIP(d)
        ann = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                            faiss.METRIC_INNER_PRODUCT)
        ann.own_fields = True
        quantizer.this.disown()
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, min(n, max(train_rows, 40 * nlist)), replace=False))
        ann.train(proxy_vectors({p: v[sample] for p, v in vecs.items()}, self.variant))
        for s in range(0, n, 100_000):
            ann.add(proxy_vectors({p: v[s:s + 100_000] for p, v in vecs.items()}, self.variant))
        ann.nprobe = min(DEFAULT_NPROBE, nlist)
        self.indexes[ANN_PART] = ann

    @property
    def ntotal(self) -> int:
        return int(self.indexes["global"].ntotal)

    # ------------------------------------------------------------------ life cycle
    @classmethod
    def create(cls, dims: dict[str, int], variant: str = "hanet") -> "FirstStage":
        """Empty indexes.

        Args:
            dims: part -> vector size.
            variant: the model variant.
        """
        faiss = _faiss()
        return cls({"global": faiss.IndexFlatIP(int(dims["global"])),
                    "verbs": faiss.IndexFlat(int(dims["verbs"]), faiss.METRIC_L1),
                    "nouns": faiss.IndexFlat(int(dims["nouns"]), faiss.METRIC_L1)}, variant)

    @classmethod
    def load(cls, paths: dict[str, Path], variant: str = "hanet", writable: bool = False) -> "FirstStage":
        """Open saved indexes; read-only ones are memory-mapped (``IO_FLAG_MMAP_IFC``).

        Raises:
            HanetError: a file is missing or not a FAISS index.
        """
        faiss = _faiss()
        out = {}
        for part in PARTS + ((ANN_PART,) if ANN_PART in paths else ()):
            p = Path(paths[part])
            try:
                out[part] = (faiss.read_index(str(p)) if writable
                             else faiss.read_index(str(p), faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_MMAP_IFC))
            except RuntimeError as exc:
                raise HanetError(f"{p}: missing or unreadable FAISS index ({str(exc).splitlines()[0]})") from None
        if ANN_PART in out:
            out[ANN_PART].nprobe = min(DEFAULT_NPROBE, int(out[ANN_PART].nlist))
        sizes = {int(i.ntotal) for i in out.values()}
        if len(sizes) != 1:
            raise HanetError(f"{Path(paths['global']).parent}: first-stage indexes of different sizes {sorted(sizes)}")
        return cls(out, variant)

    def add(self, vectors: dict[str, np.ndarray]) -> None:
        """Append rows (their ids continue the row numbering; the approximate stage's lists too)."""
        for part in PARTS:
            self.indexes[part].add(np.ascontiguousarray(vectors[part], dtype=np.float32))
        if ANN_PART in self.indexes:
            self.indexes[ANN_PART].add(proxy_vectors(vectors, self.variant))
        self._sums.clear()

    def save(self, paths: dict[str, Path]) -> None:
        """Write each index whole or not at all (temporary file, fsync, rename)."""
        faiss = _faiss()
        for part in self.indexes:
            atomic_write(Path(paths[part]), lambda tmp, part=part: faiss.write_index(self.indexes[part], tmp))

    # ------------------------------------------------------------------ scoring
    def vectors(self, part: str) -> np.ndarray:
        """(ntotal, dim) the stored vectors of a part (a view of the FAISS storage, no copy)."""
        faiss = _faiss()
        index = self.indexes[part]
        n, d = int(index.ntotal), int(index.d)
        if n == 0:
            return np.zeros((0, d), np.float32)
        return faiss.rev_swig_ptr(index.get_xb(), n * d).reshape(n, d)

    def _sum(self, part: str) -> np.ndarray:
        s = self._sums.get(part)
        if s is None:
            s = self._sums[part] = self.vectors(part).sum(1, dtype=np.float64).astype(np.float32)
        return s

    def partial_scores(self, queries: dict[str, np.ndarray]) -> np.ndarray:
        """``w_s * sent + w_c * (concept_verb + concept_noun)`` of every row for each query.

        Args:
            queries: :func:`first_stage_vectors` of Q queries (``round_to_stored=False``).

        Returns:
            (Q, ntotal) float32.
        """
        faiss = _faiss()
        ws, wc = partial_weights(self.variant)
        qg = np.ascontiguousarray(queries["global"], dtype=np.float32)
        xg = self.vectors("global")
        if len(qg) < 8:
            # One query against all rows: FAISS's SIMD kernel reads the rows once; the BLAS
            # path of pairwise_distances is several times slower for so few queries.
            out = np.empty((len(qg), len(xg)), np.float32)
            for i in range(len(qg)):
                faiss.fvec_inner_products_ny(faiss.swig_ptr(out[i]), faiss.swig_ptr(qg[i]), faiss.swig_ptr(xg),
                                             xg.shape[1], len(xg))
            out *= ws
        else:
            out = ws * faiss.pairwise_distances(qg, xg, faiss.METRIC_INNER_PRODUCT)
        if wc:
            for part in ("verbs", "nouns"):
                q = np.ascontiguousarray(queries[part], dtype=np.float32)
                l1 = faiss.pairwise_distances(q, self.vectors(part), faiss.METRIC_L1)
                s = q.sum(1, dtype=np.float64).astype(np.float32)[:, None] + self._sum(part)[None, :]
                out += wc * (s - l1) / (s + l1)
        return out

    def stored(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """part -> (n, dim) the stored vectors of rows (only these rows are read)."""
        return {part: self.vectors(part)[rows] for part in PARTS}

    def find(self, queries: dict[str, np.ndarray], c: int, alive: Optional[np.ndarray] = None,
             nprobe: Optional[int] = None) -> Candidates:
        """The first stage's answer (:class:`~hanet.index.first_stage.Candidates`): the exact scan
        with its bound while the stage is ``exact``, the inverted file's pool once it is built.

        Args:
            queries: :func:`first_stage_vectors` of Q queries.
            c: rows per query.
            alive: (ntotal,) bool, or None when nothing is deleted.
            nprobe: lists probed at least (the inverted file; see :func:`probe_lists`).
        """
        if self.kind != "exact":
            return Candidates(self.approximate_candidates(queries, c, alive, nprobe), None)
        rows, best_left = self.candidates(queries, c, alive)
        return Candidates(list(rows), best_left)

    def approximate_candidates(self, queries: dict[str, np.ndarray], c: int, alive: Optional[np.ndarray] = None,
                               nprobe: Optional[int] = None) -> list[np.ndarray]:
        """The ``c`` rows with the highest exact partial score among the proxy pool, per query.

        Args:
            queries: :func:`first_stage_vectors` of Q queries.
            c: rows per query.
            alive: (ntotal,) bool, or None when nothing is deleted.
            nprobe: lists probed at least (default :data:`DEFAULT_NPROBE`; see :func:`probe_lists`).

        Returns:
            Per query, up to ``c`` int64 rows ascending (fewer when the pool holds fewer live rows).
        """
        faiss = _faiss()
        ann = self.indexes[ANN_PART]
        pool = pool_size(c, self.ntotal, alive)
        probe = probe_lists(int(ann.nlist), self.ntotal, pool, nprobe)
        # per-call parameters: one index object serves concurrent searches
        _, rows = ann.search(proxy_vectors(queries, self.variant), pool,
                             params=faiss.SearchParametersIVF(nprobe=probe))
        pools = []
        for r in rows:
            r = r[r >= 0]
            pools.append(r[alive[r]] if alive is not None else r)
        return best_of_pools(queries, pools, self.stored, c, self.variant)

    def candidates(self, queries: dict[str, np.ndarray], c: int,
                   alive: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``c`` live rows with the highest partial score, per query.

        Args:
            queries: :func:`first_stage_vectors` of Q queries.
            c: rows per query.
            alive: (ntotal,) bool, or None when nothing is deleted.

        Returns:
            (rows (Q, c') int64 ascending, c' = min(c, live rows); best partial score among the
            live rows left out (Q,), -inf when none is left out).
        """
        part = self.partial_scores(queries)
        if alive is not None and not alive.all():
            part[:, ~alive] = -np.inf
            n_live = int(alive.sum())
        else:
            n_live = part.shape[1]
        c = min(int(c), n_live)
        if c <= 0:
            return np.zeros((len(part), 0), np.int64), np.full(len(part), -np.inf, np.float32)
        if c < part.shape[1]:
            top = np.argpartition(-part, c - 1, axis=1)[:, :c]
        else:
            top = np.broadcast_to(np.arange(part.shape[1]), part.shape).copy()
        if c < n_live:
            rest = part.copy()
            np.put_along_axis(rest, top, -np.inf, axis=1)
            best_left = rest.max(1)
        else:
            best_left = np.full(len(part), -np.inf, np.float32)
        return np.sort(top, axis=1).astype(np.int64), best_left


__all__ = ["PARTS", "ANN_PART", "ANN_MIN_ROWS", "DEFAULT_NPROBE", "POOL_FACTOR", "PROBE_ROWS_FACTOR", "pool_size", "probe_lists",
           "FIRST_STAGES", "partial_weights", "remaining_bound", "unit_rows", "first_stage_vectors", "proxy_vectors",
           "partial_of_rows", "best_of_pools", "FirstStage"]
