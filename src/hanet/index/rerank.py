"""The second stage's read: candidates' records -> what the model's scoring takes, as plain arrays.

A query's phrase scores read each candidate's frames and clips only through their dot products
with the query's few valid phrases, their norms and their Gram matrices
(:class:`hanet.model.scoring.FrameProducts`). The norms and Gram matrices depend on the video
alone: the index stores them (:func:`hanet.index.storage.values.precompute`). The dot products
are taken here, group by group, as the records are read (:meth:`Collection.read_groups`, one
reused buffer per thread), by the compiled kernel where it runs (:mod:`hanet.index.native`) or
by torch: the frames are never converted whole nor kept. :func:`read_products` returns a
:class:`~hanet.model.scoring.VideoProducts`, which the model scores with the same rule as its
own encoder outputs (:func:`hanet.model.scoring.score_products`).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from hanet.index import native
from hanet.index.storage import (TEXT_FLOAT_FIELDS, TEXT_INT_FIELDS, VIDEO_FLOAT_FIELDS, Collection,
                                 IndexFormatError)
from hanet.index.storage.values import PRECOMPUTED_FIELDS
from hanet.index.tuning import PRODUCT_READ_BYTES
from hanet.model.scoring import PHRASE_SCORES, FrameProducts, PhraseQueries, VideoProducts

_STORED_AS = {(src, kind): name for name, (src, kind) in PRECOMPUTED_FIELDS.items()}
#: phrase score -> (its frame field, that field's stored norms, its stored Gram matrices)
SCORE_FIELDS: dict[str, tuple[str, str, str]] = {
    name: (field, _STORED_AS[field, "norm"], _STORED_AS[field, "gram"])
    for name, (field, _, _, _) in PHRASE_SCORES.items()}


def read_products(coll: Collection, rows: np.ndarray, queries: dict[str, PhraseQueries],
                  with_concepts: bool = True) -> VideoProducts:
    """Candidates as the model's scoring takes them, in one read of their records.

    Args:
        coll: the videos.
        rows: (n,) rows, any order.
        queries: phrase score -> the captions' valid phrases
            (:meth:`hanet.model.HANet.phrase_queries`); only these scores' fields are read.
        with_concepts: read the concept probabilities (the ``global`` variant needs none).

    Returns:
        :class:`~hanet.model.scoring.VideoProducts` of the n videos in the order of ``rows``
        (float32; the products computed from the stored values, as
        :func:`~hanet.index.storage.values.stored_values` gives them).
    """
    names = ("global_embeds",) + (("verb_probs", "noun_probs") if with_concepts else ())
    names += tuple(n for q in queries for n in SCORE_FIELDS[q][1:])
    phrases = {SCORE_FIELDS[q][0]: p.phrases.to(torch.float32).contiguous() for q, p in queries.items()}
    f = read_fields(coll, names, rows, phrases=phrases)
    n = len(rows)
    empty = torch.zeros(n, 0)
    products = {q: FrameProducts(f[SCORE_FIELDS[q][0]], f[SCORE_FIELDS[q][1]], f[SCORE_FIELDS[q][2]])
                for q in queries}
    return VideoProducts(f["global_embeds"], f.get("verb_probs", empty), f.get("noun_probs", empty),
                         f["lengths"], products)


def read_fields(coll: Collection, names: tuple[str, ...], rows: np.ndarray, extra: tuple[str, ...] = (),
                phrases: Optional[dict[str, torch.Tensor]] = None) -> dict[str, Any]:
    """Float fields of rows as float32 tensors, plus ``lengths`` (int64), in one read.

    Each field is copied out of the records in its stored dtype, then converted to float32 in
    one pass; int8 fields are scaled as :func:`~hanet.index.storage.values.stored_values` does,
    with the same float32 arithmetic.

    Args:
        coll: the videos.
        names: float fields.
        rows: (n,) rows, any order.
        extra: other fields read in the same pass, returned as numpy arrays in their stored dtype.
        phrases: frame field -> (k, d) float32 contiguous phrases: that field's dot products with
            them, (n, F, k), are returned under its name instead of its values, taken group by
            group as the records are read (:data:`~hanet.index.tuning.PRODUCT_READ_BYTES` at a time,
            so each group is multiplied while still in the cache).

    Returns:
        field -> (n, ...) float32 tensor (for ``extra`` a numpy array) in the order of ``rows``;
        ``lengths`` -> (n,) int64.
    """
    rows = np.asarray(rows, np.int64)
    if not coll.segments:
        raise IndexFormatError(f"the index holds no {coll.part}")
    dt = coll.segments[0].dtype
    phrases = dict(phrases or {})
    scaled = {n + "_scale" for n in list(names) + list(phrases) if n + "_scale" in (dt.names or ())}
    plain = [n for n in names if n not in phrases]
    copied = list(dict.fromkeys(plain + [n + "_scale" for n in plain if n + "_scale" in scaled] + ["lengths"]
                                + [n for n in extra if n not in plain]))
    stored = {n: np.empty((len(rows),) + dt[n].shape, dtype=dt[n].base) for n in copied}
    dots = {n: torch.empty(len(rows), dt[n].shape[0], p.shape[0], dtype=torch.float32) for n, p in phrases.items()}
    # the compiled kernel converts and multiplies each group in one pass where it runs
    plan = native.DotsPlan.make(dt, {n: (p, dots[n]) for n, p in phrases.items()}) if phrases else None
    bufs: dict[tuple[int, ...], torch.Tensor] = {}  # torch's float32 conversion buffers, reused
    for idx, recs in coll.read_groups(rows, PRODUCT_READ_BYTES if phrases else None):
        at = _positions(idx)
        for n in copied:  # contiguous, in the stored dtype (numpy's copy of a field is fast)
            stored[n][at] = recs[n]
        if plan is not None:
            plan.run(recs, idx)
            continue
        for n, p in phrases.items():
            scale = torch.from_numpy(recs[n + "_scale"]) if n + "_scale" in scaled else None
            _dots_into(dots[n], at, torch.from_numpy(recs[n]), scale, p, bufs)
    out: dict[str, Any] = dict(dots)
    for n in plain:
        if stored[n].dtype == np.float32 and n + "_scale" not in scaled:
            out[n] = torch.from_numpy(stored[n])  # the precomputed norms and Gram matrices: already float32
            continue
        # numpy allocates the float32 arrays with transparent huge pages where the kernel offers
        # them on request; torch.empty does not, and 4 KiB page faults made this ~6x slower
        dst = torch.from_numpy(np.empty(stored[n].shape, np.float32))
        _convert_into(dst, torch.from_numpy(stored[n]),
                      torch.from_numpy(stored[n + "_scale"]) if n + "_scale" in scaled else None)
        out[n] = dst
    for n in extra:
        if n not in plain and n != "lengths":
            out[n] = stored[n]
    out["lengths"] = torch.from_numpy(stored["lengths"].astype(np.int64))
    return out


def _convert_into(dst: torch.Tensor, vals: torch.Tensor, scale: Optional[torch.Tensor]) -> None:
    """``dst`` (float32) = ``vals`` as float32, times its per-vector ``scale`` for int8: the
    arithmetic of :func:`~hanet.index.storage.values.stored_values` (float32(x) * float32(scale));
    torch's float16 -> float32 is vectorised, numpy's is not."""
    dst.copy_(vals)
    if scale is not None:
        dst.mul_(scale.to(torch.float32).unsqueeze(-1))


def _positions(idx: np.ndarray) -> "slice | np.ndarray":
    """``idx`` as a slice when it is a run of consecutive positions (the usual case: candidates
    come ascending; a slice assignment is a plain copy), else as it is."""
    if len(idx) and int(idx[-1]) - int(idx[0]) == len(idx) - 1 and bool((np.diff(idx) == 1).all()):
        return slice(int(idx[0]), int(idx[0]) + len(idx))
    return idx


def _dots_into(out: torch.Tensor, at: "slice | np.ndarray", vals: torch.Tensor,
               scale: Optional[torch.Tensor], phrases: torch.Tensor, bufs: dict) -> None:
    """``out[at]`` = the dot products of one group's stored vectors with the phrases, by torch
    (where the compiled kernel does not run).

    Args:
        out: (n, F, k) float32.
        at: the group's positions among the n (:func:`_positions`).
        vals: (m, F, d) float16 or int8, a view into the records.
        scale: (m, F) float16 for int8, else None.
        phrases: (k, d) float32.
        bufs: shape -> float32 buffer, kept across the groups of one read.
    """
    m, F, d = vals.shape
    buf = bufs.get((F, d))
    if buf is None or buf.shape[0] < m:
        buf = bufs[(F, d)] = torch.from_numpy(np.empty((m, F, d), np.float32))
    block = buf[:m]
    _convert_into(block, vals, scale)
    # (k, d) @ (d, m F), then transposed: with so few phrases this orientation is several times
    # faster than (m F, d) @ (d, k)
    prod = torch.matmul(phrases, block.reshape(m * F, d).t()).t().reshape(m, F, -1)
    out[at if isinstance(at, slice) else torch.from_numpy(at)] = prod


def _to_float(a: np.ndarray) -> torch.Tensor:
    # torch's float16 -> float32 conversion is vectorised (numpy's is several times slower).
    return torch.from_numpy(np.ascontiguousarray(a)).to(torch.float32)


def video_outputs(coll: Collection, rows: np.ndarray, with_peaks: bool = False, with_frame_concepts: bool = False):
    """Stored encodings of videos as a :class:`~hanet.model.video.VideoEncoderOutput` (float32,
    the frames whole: explanations and exports), in one read of their records.

    Args:
        coll: the videos.
        rows: (n,) rows.
        with_peaks: also load the selected concepts and their frames (explanations).
        with_frame_concepts: also load ``verb_frame_probs`` (what :func:`frame_concepts` reads;
            the index must store them, :func:`stores_frame_concepts`).
    """
    from hanet.model.video import VideoEncoderOutput

    peaks = ("top_verbs", "top_nouns", "verb_peaks", "noun_peaks")
    extra = (peaks if with_peaks else ()) + (("verb_frame_probs",) if with_frame_concepts else ())
    f = read_fields(coll, VIDEO_FLOAT_FIELDS, rows, extra=extra)
    lengths = f.pop("lengths")
    if with_peaks:
        ints = {name: torch.from_numpy(f.pop(name).astype(np.int64)) for name in peaks}
    else:
        empty = torch.zeros(len(rows), 0, dtype=torch.int64)
        ints = {"top_verbs": empty, "top_nouns": empty, "verb_peaks": empty, "noun_peaks": empty}
    frame_probs = _to_float(f.pop("verb_frame_probs")) if with_frame_concepts else None
    return VideoEncoderOutput(lengths=lengths, verb_frame_probs=frame_probs, noun_frame_probs=None, **f, **ints)


def stores_frame_concepts(coll: Collection) -> bool:
    """Whether a collection's records hold per-frame verb concepts (indexes built before time
    spans do not); an empty collection counts as holding them."""
    return not coll.segments or "verb_frame_probs" in (coll.segments[0].dtype.names or ())


def frame_concepts(coll: Collection, rows: np.ndarray) -> Optional[np.ndarray]:
    """(n, T, Cv) float32 the videos' per-frame verb concept probabilities (what time spans
    read), or None for an index that does not store them."""
    if not coll.segments or not stores_frame_concepts(coll):
        return None
    return _to_float(coll.gather("verb_frame_probs", np.asarray(rows, np.int64))).numpy()


def text_outputs(coll: Collection, rows: np.ndarray):
    """Stored caption encodings as a :class:`~hanet.model.text.TextEncoderOutput` (float32)."""
    from hanet.model.text import TextEncoderOutput

    a = coll.gather_many(TEXT_FLOAT_FIELDS + TEXT_INT_FIELDS, rows)
    f = {name: _to_float(a[name]) for name in TEXT_FLOAT_FIELDS}
    ints = {name: torch.from_numpy(a[name].astype(np.int64)) for name in TEXT_INT_FIELDS}
    return TextEncoderOutput(word_attn=torch.zeros(len(rows), 1), **f, **ints)


__all__ = ["SCORE_FIELDS", "read_products", "read_fields", "video_outputs", "stores_frame_concepts",
           "frame_concepts", "text_outputs"]
