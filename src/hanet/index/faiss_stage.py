"""The first stage of two-stage search: FAISS over a short "proxy" vector per video.

HANet's fused score is ``0.1 * (sent + verb + noun + ind_verb + ind_noun) +
0.25 * (concept_verb + concept_noun)``. The proxy keeps the parts that are one vector per video
and per query: the global embedding and the two concept-probability vectors, each L2-normalised
and scaled by the square root of its fusion weight, so that the inner product of a query's and
a video's proxies is

    0.1 * cos(global_q, global_v) + 0.25 * cos(verbs_q, verbs_v) + 0.25 * cos(nouns_q, nouns_v)

which is the ``sent`` score exactly and the concept scores with cosine in place of the soft
Jaccard. The phrase-level scores (40% of the fusion) need the frames and clips, so they are left
to the second stage, which scores the candidates with the full model. For the ``global``
variant the proxy is the normalised global embedding alone, so the first stage is exact.

Public API:
    proxy_weights(variant) -> (sent weight, concept weight)
    make_proxy(global_embeds, verb_probs, noun_probs, variant) -> (n, P) float32
    proxy_dim(model_config) -> int
    FirstStage: create(spec, dim), load(path), add(vectors), save(path), search(queries, k, alive)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from hanet.errors import HanetError

DEFAULT_SPEC = "Flat"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise HanetError("faiss is not installed: pip install 'hanet[index]' (faiss-cpu)") from exc
    return faiss


def proxy_weights(variant: str) -> tuple[float, float]:
    """Fusion weight of the sentence score and of each concept score.

    Args:
        variant: ``hanet`` or ``global``.

    Returns:
        (weight of ``sent``, weight of each of ``concept_verb`` and ``concept_noun``).
    """
    return (1.0, 0.0) if variant == "global" else (0.1, 0.25)


def proxy_dim(config: Any) -> int:
    """Size of the proxy vector of a model config (global + verb concepts + noun concepts)."""
    return int(config.video.dim_embed + config.num_verb_concepts + config.num_noun_concepts)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.sqrt((x * x).sum(-1, keepdims=True) + 1e-18)


def make_proxy(global_embeds: np.ndarray, verb_probs: np.ndarray, noun_probs: np.ndarray,
               variant: str) -> np.ndarray:
    """First-stage vectors (the same function for videos and for queries).

    Args:
        global_embeds: (n, d) global (video or sentence) embeddings.
        verb_probs: (n, Cv) verb concept probabilities.
        noun_probs: (n, Cn) noun concept probabilities.
        variant: the model variant (decides the weights).

    Returns:
        (n, d + Cv + Cn) float32, C-contiguous.
    """
    ws, wc = proxy_weights(variant)
    parts = [np.sqrt(ws) * _unit(global_embeds), np.sqrt(wc) * _unit(verb_probs), np.sqrt(wc) * _unit(noun_probs)]
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


class FirstStage:
    """A FAISS inner-product index whose ids are the collection's row numbers.

    Args:
        index: the FAISS index.
        spec: the factory string it was made from (``Flat``, ``SQfp16``, ``IVF1024,Flat``...).
        nprobe: IVF cells visited per query (IVF indexes only).
    """

    def __init__(self, index: Any, spec: str, nprobe: int = 64) -> None:
        self.index = index
        self.spec = spec
        self.nprobe = int(nprobe)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def create(cls, spec: str, dim: int, train: Optional[np.ndarray] = None, nprobe: int = 64) -> "FirstStage":
        """A new empty index.

        Args:
            spec: ``Flat`` (exact), or any FAISS factory string for inner product.
            dim: vector size.
            train: vectors to train on, for index types that need training (IVF, PQ, SQ8).
            nprobe: IVF cells visited per query.

        Raises:
            HanetError: a bad spec, or training vectors missing or too few.
        """
        faiss = _faiss()
        try:
            index = faiss.IndexFlatIP(dim) if spec == "Flat" else faiss.index_factory(
                dim, spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise HanetError(f"bad FAISS index spec {spec!r}: {str(exc).splitlines()[0]}") from None
        if not index.is_trained:
            if train is None or len(train) == 0:
                raise HanetError(f"FAISS index {spec!r} needs training vectors")
            try:
                index.train(np.ascontiguousarray(train, dtype=np.float32))
            except RuntimeError as exc:
                raise HanetError(f"cannot train FAISS index {spec!r} on {len(train)} vectors "
                                 f"({str(exc).splitlines()[0]}); use --faiss Flat for small collections") from None
        return cls(index, spec, nprobe)

    @classmethod
    def load(cls, path: Path, spec: str, nprobe: int = 64) -> "FirstStage":
        """Open a saved index read-only, memory-mapped where the index type allows it."""
        faiss = _faiss()
        flags = faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_MMAP_IFC
        try:
            index = faiss.read_index(str(path), flags)
        except RuntimeError:
            try:
                index = faiss.read_index(str(path), faiss.IO_FLAG_READ_ONLY)
            except RuntimeError as exc:
                raise HanetError(f"{path}: unreadable FAISS index ({str(exc).splitlines()[0]})") from None
        return cls(index, spec, nprobe)

    @classmethod
    def load_writable(cls, path: Path, spec: str, nprobe: int = 64) -> "FirstStage":
        faiss = _faiss()
        try:
            return cls(faiss.read_index(str(path)), spec, nprobe)
        except RuntimeError as exc:
            raise HanetError(f"{path}: unreadable FAISS index ({str(exc).splitlines()[0]})") from None

    def add(self, vectors: np.ndarray) -> None:
        """Append vectors; their ids continue the row numbering."""
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def save(self, path: Path) -> None:
        """Write whole or not at all (temporary file, fsync, rename)."""
        faiss = _faiss()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            faiss.write_index(self.index, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _params(self, sel: Any, k: int) -> Any:
        faiss = _faiss()
        kind = type(self.index).__name__
        if "IVF" in kind:
            return faiss.SearchParametersIVF(sel=sel, nprobe=self.nprobe)
        if "HNSW" in kind:
            return faiss.SearchParametersHNSW(sel=sel, efSearch=max(2 * k, 64))
        return faiss.SearchParameters(sel=sel)

    def search(self, queries: np.ndarray, k: int, alive: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by inner product, skipping dead rows.

        Args:
            queries: (nq, P) float32 proxies.
            k: rows per query.
            alive: (ntotal,) bool, or None when nothing is deleted.

        Returns:
            (scores (nq, k) float32, rows (nq, k) int64; -1 where fewer than k rows qualify).
        """
        faiss = _faiss()
        q = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(int(k), self.ntotal))
        sel = None
        bitmap = None
        if alive is not None and not alive.all():
            # The bitmap must outlive the search call: FAISS keeps a raw pointer to it.
            bitmap = np.packbits(alive.astype(np.uint8), bitorder="little")
            sel = faiss.IDSelectorBitmap(len(alive), faiss.swig_ptr(bitmap))
        params = self._params(sel, k)
        scores, rows = self.index.search(q, k, params=params)
        del bitmap
        return scores, rows.astype(np.int64)


__all__ = ["DEFAULT_SPEC", "proxy_weights", "proxy_dim", "make_proxy", "FirstStage"]
