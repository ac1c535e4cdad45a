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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from hanet.errors import HanetError
from hanet.io import atomic_write
from hanet.model.scoring import EMBEDDING_SCORES, fusion_weights

PARTS: tuple[str, ...] = ("global", "verbs", "nouns")


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


class FirstStage:
    """Three FAISS flat indexes (global IP, verb L1, noun L1) whose ids are the collection's rows.

    Args:
        indexes: part -> FAISS ``IndexFlat``.
        variant: the model variant (decides the weights).
    """

    def __init__(self, indexes: dict[str, Any], variant: str = "hanet") -> None:
        self.indexes = indexes
        self.variant = variant
        self._sums: dict[str, np.ndarray] = {}

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
        for part in PARTS:
            p = Path(paths[part])
            try:
                out[part] = (faiss.read_index(str(p)) if writable
                             else faiss.read_index(str(p), faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_MMAP_IFC))
            except RuntimeError as exc:
                raise HanetError(f"{p}: missing or unreadable FAISS index ({str(exc).splitlines()[0]})") from None
        sizes = {int(i.ntotal) for i in out.values()}
        if len(sizes) != 1:
            raise HanetError(f"{Path(paths['global']).parent}: first-stage indexes of different sizes {sorted(sizes)}")
        return cls(out, variant)

    def add(self, vectors: dict[str, np.ndarray]) -> None:
        """Append rows (their ids continue the row numbering)."""
        for part in PARTS:
            self.indexes[part].add(np.ascontiguousarray(vectors[part], dtype=np.float32))
        self._sums.clear()

    def save(self, paths: dict[str, Path]) -> None:
        """Write each index whole or not at all (temporary file, fsync, rename)."""
        faiss = _faiss()
        for part in PARTS:
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


__all__ = ["PARTS", "partial_weights", "remaining_bound", "unit_rows", "first_stage_vectors", "FirstStage"]
