"""Stored videos, ready for the model's own scoring, with the per-video parts precomputed.

The phrase scores need each video's frame and clip norms and its (frames x frames) Gram
matrices. They depend on the video alone, so the index computes them once, when a video is
added, from the very float16 values it stores (:func:`precompute`), and
:class:`StoredVideos` hands them to :func:`hanet.model.scoring.score_and_attend` (the one
scoring path of evaluation, search and explanations), which uses them when present. That saves
about half of the work per candidate, which is what first-stage candidates cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

import numpy as np
import torch

from hanet.index import native
from hanet.index.store import (FRAME_FIELDS, TEXT_FLOAT_FIELDS, TEXT_INT_FIELDS, VIDEO_FLOAT_FIELDS, Collection,
                               IndexFormatError)
from hanet.model.scoring import phrase_queries


PRECOMPUTED_FIELDS: dict[str, tuple[str, str]] = {
    "verb_frame_norms": ("verb_frames", "norm"), "noun_frame_norms": ("noun_frames", "norm"),
    "verb_clip_norms": ("verb_clips", "norm"), "noun_clip_norms": ("noun_clips", "norm"),
    "verb_frame_grams": ("verb_frames", "gram"), "noun_frame_grams": ("noun_frames", "gram"),
    "verb_clip_grams": ("verb_clips", "gram"), "noun_clip_grams": ("noun_clips", "gram"),
}


def quantize_frames(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """:data:`~hanet.index.store.FRAME_FIELDS` as int8 with one float16 scale per frame or clip.

    Each row vector is scaled so its largest magnitude maps to 127 (symmetric, round to nearest).

    Args:
        fields: the float fields (n, F, d).

    Returns:
        The same dict with those fields int8 and ``<field>_scale`` (n, F) float16 added.
    """
    out = dict(fields)
    for name in FRAME_FIELDS:
        x = np.asarray(fields[name], dtype=np.float32)
        scale = (np.abs(x).max(-1) / 127.0).astype(np.float16)
        s32 = np.maximum(scale.astype(np.float32), np.float32(1e-12))[..., None]
        out[name] = np.clip(np.rint(x / s32), -127, 127).astype(np.int8)
        out[name + "_scale"] = scale
    return out


def stored_values(fields: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A float field as scoring sees it: float16-rounded, or int8 times its scale (float32)."""
    x = fields[name]
    if np.asarray(x).dtype == np.int8:
        return x.astype(np.float32) * fields[name + "_scale"].astype(np.float32)[..., None]
    return np.asarray(x, dtype=np.float16).astype(np.float32)


def precompute(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Norms and Gram matrices of frames and clips, from the values as stored.

    Args:
        fields: ``verb_frames``/``noun_frames`` (n, T, d) and ``verb_clips``/``noun_clips``
            (n, S, d), any float dtype (rounded to float16 first, as stored) or int8 with their
            ``*_scale`` (:func:`quantize_frames`).

    Returns:
        ``*_norms`` (n, F) float32 sqrt(|x|^2 + 1e-18) and ``*_grams`` (n, F, F) float32.
    """
    out = {}
    for name, (src, kind) in PRECOMPUTED_FIELDS.items():
        x = torch.from_numpy(stored_values(fields, src))
        if kind == "norm":
            out[name] = (x.pow(2).sum(-1) + 1e-18).sqrt().numpy()
        else:
            out[name] = torch.bmm(x, x.transpose(1, 2)).numpy()
    return out


#: A frame field whose float32 copy for the rows scored would exceed this stays as stored
#: (:class:`StoredFrames`). Measured on the project's machine, read and seven scores: 200
#: candidates at MSR-VTT's sizes (16 MB per frame field) 26.4 ms as stored against 36.5 ms
#: converted whole; 500 at the synth sizes (6 MB) 23.2 against 21.0 ms. Their verb clips
#: (8.2 MB at 200 candidates, converted whole with the limit at 8 MiB): 20.8 against 22.2 ms
#: as stored (alternated per query), hence 6 MiB, still above the synth sizes' 6.1 MB.
LAZY_BYTES = 6 << 20


@dataclass
class StoredVideos:
    """Stored encodings of a block of videos, float32 tensors (F = frames or clips); frames and
    clips too large to convert whole (:data:`LAZY_BYTES`) are :class:`StoredFrames`, as stored,
    which the phrase scores multiply by the phrases block by block."""

    global_embeds: torch.Tensor
    verb_clips: "StoredFrames | torch.Tensor"
    noun_clips: "StoredFrames | torch.Tensor"
    verb_frames: "StoredFrames | torch.Tensor"
    noun_frames: "StoredFrames | torch.Tensor"
    verb_probs: torch.Tensor
    noun_probs: torch.Tensor
    lengths: torch.Tensor
    verb_frame_norms: torch.Tensor
    noun_frame_norms: torch.Tensor
    verb_clip_norms: torch.Tensor
    noun_clip_norms: torch.Tensor
    verb_frame_grams: torch.Tensor
    noun_frame_grams: torch.Tensor
    verb_clip_grams: torch.Tensor
    noun_clip_grams: torch.Tensor

    @classmethod
    def from_collection(cls, coll: Any, rows: np.ndarray, only_global: bool = False,
                        text: Any = None) -> "StoredVideos":
        """Read rows of a :class:`~hanet.index.store.Collection` (float16 -> float32).

        Args:
            coll: the videos.
            rows: (n,) rows.
            only_global: read the global embeddings only (the ``global`` variant needs nothing else).
            text: the :class:`~hanet.model.text.TextEncoderOutput` these videos will be scored
                against, if known: the frame fields too large to convert whole are then multiplied
                by its phrases (:func:`hanet.model.scoring.phrase_queries`) as their records are
                read (see :func:`gather_float`) and not kept; those videos can then be scored
                against that text only.
        """
        names = ("global_embeds",) if only_global else VIDEO_FLOAT_FIELDS + tuple(PRECOMPUTED_FIELDS)
        lazy = () if only_global or not coll.segments else tuple(
            f for f in FRAME_FIELDS if len(rows) * int(np.prod(coll.segments[0].dtype[f].shape)) * 4 > LAZY_BYTES)
        vals = gather_float(coll, names, rows, lazy=lazy,
                            dots_with=phrase_queries(text) if lazy and text is not None else None)
        if only_global:
            empty = vals["global_embeds"].new_zeros(len(rows), 0)
            return cls(vals["global_embeds"], *([empty] * 15))
        return cls(**vals)


class StoredFrames:
    """(n, F, d) frame or clip vectors of n videos as the records hold them (float16, or int8
    with one scale per vector), views into the records read.

    The phrase scores need these vectors only through their dot products with a few phrases
    (norms and Gram matrices are precomputed), so :meth:`dots` converts them to float32 a block
    of videos at a time, into a buffer that stays in cache, instead of materialising a float32
    copy of every candidate's frames: at MSR-VTT's sizes that copy was most of a query's memory
    traffic. Values are those of :func:`stored_values`, computed with the same float32 arithmetic.

    When the phrases are known before the records are read, :func:`gather_float` takes their
    dot products group by group as it reads and keeps only those (``prepared``): the records
    are then multiplied while still in the cache and need not stay in memory.

    Args:
        parts: (positions (m,) int64 of these videos among the n, values (m, F, d) float16 or
            int8 tensor, scales (m, F) float16 tensor or None) per group of records read;
            empty when ``prepared`` holds all that will be asked.
        n: videos.
        shape: (F, d).
        prepared: (phrases (k, d), their dot products (n, F, k)) taken while reading.
    """

    #: bytes of float32 converted per block: a few MiB, within the last-level cache (measured
    #: on the project's machine, per vector: 0.61 us in blocks of 120 vectors, 0.37 us of 960)
    BLOCK_BYTES = 1 << 22

    def __init__(self, parts: list[tuple[np.ndarray, torch.Tensor, Optional[torch.Tensor]]], n: int,
                 shape: tuple[int, int], prepared: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> None:
        self.parts = parts
        self.shape = (int(n),) + tuple(int(x) for x in shape)
        self.prepared = prepared

    def _step(self) -> int:
        F, d = self.shape[1:]
        return max(1, min(self.shape[0], self.BLOCK_BYTES // max(F * d * 4, 1)))

    def _blocks(self) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """(positions (m,) among the n videos, their float32 values (m, F, d)) per block.

        A block gathers up to the block size of videos across the groups read (a collection of
        many segments gives many small groups): one copy per group piece, one product per block.
        """
        step = self._step()
        buf = torch.from_numpy(np.empty((step,) + self.shape[1:], np.float32))  # see gather_float
        fill, pending = 0, []
        for pos, vals, scale in self.parts:
            b = 0
            while b < len(pos):
                take = min(step - fill, len(pos) - b)
                _convert_into(buf[fill:fill + take], vals[b:b + take], None if scale is None else scale[b:b + take])
                pending.append(pos[b:b + take])
                fill, b = fill + take, b + take
                if fill == step:
                    yield np.concatenate(pending), buf
                    fill, pending = 0, []
        if fill:
            yield np.concatenate(pending), buf[:fill]

    @staticmethod
    def _put(out: torch.Tensor, pos: "np.ndarray | slice", values: torch.Tensor) -> None:
        at = _positions(pos) if isinstance(pos, np.ndarray) else pos
        out[at if isinstance(at, slice) else torch.from_numpy(at)] = values

    def dots(self, phrases: torch.Tensor) -> torch.Tensor:
        """(n, F, k) float32 dot products of every vector with every phrase.

        Args:
            phrases: (k, d) float32.
        """
        if self.prepared is not None and self.prepared[0].shape == phrases.shape \
                and torch.equal(self.prepared[0], phrases):
            return self.prepared[1]
        self._need_values()
        n, F, d = self.shape
        k = phrases.shape[0]
        out = torch.empty(n, F, k, dtype=torch.float32)
        for pos, block in self._blocks():
            self._put(out, pos, _block_dots(block, phrases))
        return out

    def _need_values(self) -> None:
        if not self.parts and self.shape[0]:
            raise RuntimeError("these stored frames kept only their dot products with the phrases read with "
                               "them (gather_float's dots_with); read them again for anything else")

    def float(self) -> torch.Tensor:
        """(n, F, d) float32 the values (what :func:`stored_values` gives)."""
        self._need_values()
        out = torch.from_numpy(np.empty(self.shape, np.float32))
        for pos, block in self._blocks():
            self._put(out, pos, block)
        return out


def _convert_into(dst: torch.Tensor, vals: torch.Tensor, scale: Optional[torch.Tensor]) -> None:
    """``dst`` (float32) = ``vals`` as float32, times its per-vector ``scale`` for int8: the
    arithmetic of :func:`stored_values` (float32(x) * float32(scale)); torch's float16 ->
    float32 is vectorised, numpy's is not."""
    dst.copy_(vals)
    if scale is not None:
        dst.mul_(scale.to(torch.float32).unsqueeze(-1))


#: records read at a time when frame fields are multiplied as they are read (``dots_with``): a
#: group small enough to stay in the core's cache between its read and its products. Measured on
#: the project's machine (2 MiB L2 per core), 200 candidates at MSR-VTT's sizes, paired against
#: keeping the records: 2 MiB -1.2 to -3.4 ms, 4 MiB -2.5, 8 MiB -1.1, 1 MiB +2.3 (per-group calls)
DOTS_READ_BYTES = 2 << 20

#: with the compiled kernel, the as-read products come from the memory-mapped records
#: (:meth:`~hanet.index.store.Collection.mapped_groups`) instead of positional reads: measured
#: at 100k MSR-VTT-size videos, 200 candidates, the read and products 18-20 -> 9 ms per query
MAPPED_READS = True


def gather_float(coll: Collection, names: tuple[str, ...], rows: np.ndarray,
                 lazy: tuple[str, ...] = (), extra: tuple[str, ...] = (),
                 dots_with: Optional[dict[str, torch.Tensor]] = None) -> dict[str, Any]:
    """Float fields of rows as float32 tensors, plus ``lengths`` (int64), in one read.

    Each field is copied out of the records in its stored dtype, then converted to float32 in
    one pass; int8 fields are scaled as :func:`stored_values` does, with the same float32
    arithmetic. The fields in ``lazy`` stay as stored, views into the records
    (:class:`StoredFrames`). This is the second stage's read, the largest cost per candidate at
    MSR-VTT's sizes.

    Args:
        coll: the videos.
        names: float fields.
        rows: (n,) rows, any order.
        lazy: fields of ``names`` (of :data:`~hanet.index.store.FRAME_FIELDS`) to leave as stored.
        extra: other fields read in the same pass, returned as numpy arrays in their stored dtype.
        dots_with: lazy field -> (k, d) float32 phrases: that field's dot products with them are
            taken group by group as the records are read (:data:`DOTS_READ_BYTES` at a time),
            and its :class:`StoredFrames` keeps only those. At MSR-VTT's sizes this spares
            writing 200 candidates' 34 MB of records to memory and reading them back.

    Returns:
        field -> (n, ...) float32 tensor (or :class:`StoredFrames`, or for ``extra`` a numpy
        array) in the order of ``rows``; ``lengths`` -> (n,) int64.
    """
    rows = np.asarray(rows, np.int64)
    if not coll.segments:
        raise IndexFormatError(f"the index holds no {coll.part}")
    dt = coll.segments[0].dtype
    scaled = set(_scales(coll, names))
    plain = [n for n in names if n not in lazy]
    extra_only = [n for n in extra if n not in plain and n != "lengths"]
    copied = plain + [n + "_scale" for n in plain if n + "_scale" in scaled] + ["lengths"] + extra_only
    stored = {n: np.empty((len(rows),) + dt[n].shape, dtype=dt[n].base) for n in copied}
    dots_with = {n: p.to(torch.float32).contiguous() for n, p in (dots_with or {}).items() if n in lazy and n in names}
    parts: dict[str, list] = {n: [] for n in names if n in lazy and n not in dots_with}
    dots = {n: torch.empty(len(rows), dt[n].shape[0], p.shape[0], dtype=torch.float32) for n, p in dots_with.items()}
    bufs: dict[tuple[int, ...], torch.Tensor] = {}  # float32 conversion buffers, reused group after group
    # the compiled kernel converts and multiplies each group in one pass where it runs (hanet.index.native)
    plan = native.DotsPlan.make(dt, {n: (p, dots[n]) for n, p in dots_with.items()}) if dots_with else None
    if plan is not None and MAPPED_READS and not parts:
        # The kernel reads the frames where the page cache holds them (the records mapped, not
        # copied out first: that copy was a third of a query's rerank at MSR-VTT's sizes); the
        # other fields, a few KiB per record, are gathered by numpy. Then the pages touched are
        # counted and, past a bound, unmapped again (the resident set stays bounded).
        try:
            for idx, recs, local in coll.mapped_groups(rows):
                at = _positions(idx)
                for n in copied:
                    stored[n][at] = recs[n][local]
                plan.run(recs, idx, rows=local)
        finally:
            coll.release_mapped(len(rows))
    else:
        for idx, recs in coll.read_groups(rows, DOTS_READ_BYTES if dots_with else None):
            at = _positions(idx)
            for n in copied:  # contiguous, in the stored dtype (numpy's copy of a field is fast)
                stored[n][at] = recs[n]
            for n in parts:  # views into the records (StoredFrames converts them block by block)
                parts[n].append((idx, torch.from_numpy(recs[n]), _scale_of(recs, n, scaled)))
            if plan is not None:  # multiplied now, while this group is in the cache
                plan.run(recs, idx)
            else:
                for n, p in dots_with.items():
                    _dots_into(dots[n], at, torch.from_numpy(recs[n]), _scale_of(recs, n, scaled), p, bufs)
    out: dict[str, Any] = {}
    for n in plain:
        if stored[n].dtype == np.float32 and n + "_scale" not in scaled:
            out[n] = torch.from_numpy(stored[n])  # the precomputed norms and Gram matrices: already float32
            continue
        # numpy allocates the float32 arrays (tens of MB per query at MSR-VTT's sizes) with
        # transparent huge pages where the kernel offers them on request; torch.empty does not,
        # and faulting in 4 KiB pages made the conversion ~6x slower on the project's VM
        dst = torch.from_numpy(np.empty(stored[n].shape, np.float32))
        _convert_into(dst, torch.from_numpy(stored[n]),
                      torch.from_numpy(stored[n + "_scale"]) if n + "_scale" in scaled else None)
        out[n] = dst
    for n, p in parts.items():
        out[n] = StoredFrames(p, len(rows), dt[n].shape)
    for n, p in dots_with.items():
        out[n] = StoredFrames([], len(rows), dt[n].shape, prepared=(p, dots[n]))
    for n in extra_only:
        out[n] = stored[n]
    out["lengths"] = torch.from_numpy(stored["lengths"].astype(np.int64))
    return out


def _positions(idx: np.ndarray) -> "slice | np.ndarray":
    """``idx`` as a slice when it is a run of consecutive positions (the usual case: candidates
    come ascending; a slice assignment is a plain copy), else as it is."""
    if len(idx) and int(idx[-1]) - int(idx[0]) == len(idx) - 1 and bool((np.diff(idx) == 1).all()):
        return slice(int(idx[0]), int(idx[0]) + len(idx))
    return idx


def _block_dots(block: torch.Tensor, phrases: torch.Tensor) -> torch.Tensor:
    """(m, F, k) the dot products of a block of float32 vectors (m, F, d) with phrases (k, d)."""
    m, F, d = block.shape
    # (k, d) @ (d, m F), then transposed: with so few phrases this orientation is several times
    # faster than (m F, d) @ (d, k) (MKL, measured on the project's machine: 4x for 3 phrases)
    return torch.matmul(phrases, block.reshape(m * F, d).t()).t().reshape(m, F, -1)


def _dots_into(out: torch.Tensor, at: "slice | np.ndarray", vals: torch.Tensor,
               scale: Optional[torch.Tensor], phrases: torch.Tensor, bufs: dict) -> None:
    """``out[at]`` = the dot products of one group's stored vectors with the phrases, by torch
    (where the compiled kernel of :mod:`hanet.index.native` does not run).

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
        buf = bufs[(F, d)] = torch.from_numpy(np.empty((m, F, d), np.float32))  # see gather_float
    block = buf[:m]
    _convert_into(block, vals, scale)
    StoredFrames._put(out, at, _block_dots(block, phrases))


def _scale_of(recs: np.ndarray, name: str, scaled: set[str]) -> Optional[torch.Tensor]:
    return torch.from_numpy(recs[name + "_scale"]) if name + "_scale" in scaled else None


def _scales(coll: Collection, names: tuple[str, ...]) -> tuple[str, ...]:
    """The scale fields of the int8 fields among ``names`` (an index built with ``frame_dtype=int8``)."""
    have = set(coll.segments[0].dtype.names) if coll.segments else set()
    return tuple(n + "_scale" for n in names if n + "_scale" in have)


def _to_float(a: np.ndarray) -> torch.Tensor:
    # torch's float16 -> float32 conversion is vectorised (numpy's is several times slower).
    return torch.from_numpy(np.ascontiguousarray(a)).to(torch.float32)


def video_outputs(coll: Collection, rows: np.ndarray, with_peaks: bool = False, with_frame_concepts: bool = False):
    """Stored encodings of videos as a :class:`~hanet.model.video.VideoEncoderOutput` (float32),
    in one read of their records.

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
    f = gather_float(coll, VIDEO_FLOAT_FIELDS, rows, extra=extra)
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


__all__ = ["PRECOMPUTED_FIELDS", "LAZY_BYTES", "quantize_frames", "stored_values", "precompute", "StoredVideos", "StoredFrames", "gather_float", "video_outputs",
           "stores_frame_concepts", "frame_concepts", "text_outputs"]
