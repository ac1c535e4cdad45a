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

from hanet.index.store import (FRAME_FIELDS, TEXT_FLOAT_FIELDS, TEXT_INT_FIELDS, VIDEO_FLOAT_FIELDS, Collection,
                               IndexFormatError)


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
    def from_collection(cls, coll: Any, rows: np.ndarray, only_global: bool = False) -> "StoredVideos":
        """Read rows of a :class:`~hanet.index.store.Collection` (float16 -> float32).

        Args:
            coll: the videos.
            rows: (n,) rows.
            only_global: read the global embeddings only (the ``global`` variant needs nothing else).
        """
        names = ("global_embeds",) if only_global else VIDEO_FLOAT_FIELDS + tuple(PRECOMPUTED_FIELDS)
        lazy = () if only_global or not coll.segments else tuple(
            f for f in FRAME_FIELDS if len(rows) * int(np.prod(coll.segments[0].dtype[f].shape)) * 4 > LAZY_BYTES)
        vals = gather_float(coll, names, rows, lazy=lazy)
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

    Args:
        parts: (positions (m,) int64 of these videos among the n, values (m, F, d) float16 or
            int8 tensor, scales (m, F) float16 tensor or None) per group of records read.
        n: videos.
        shape: (F, d).
    """

    #: bytes of float32 converted per block: a few MiB, within the last-level cache (measured
    #: on the project's machine, per vector: 0.61 us in blocks of 120 vectors, 0.37 us of 960)
    BLOCK_BYTES = 1 << 22

    def __init__(self, parts: list[tuple[np.ndarray, torch.Tensor, Optional[torch.Tensor]]], n: int,
                 shape: tuple[int, int]) -> None:
        self.parts = parts
        self.shape = (int(n),) + tuple(int(x) for x in shape)

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
    def _put(out: torch.Tensor, pos: np.ndarray, values: torch.Tensor) -> None:
        if len(pos) and bool((np.diff(pos) == 1).all()):
            out[int(pos[0]):int(pos[0]) + len(pos)] = values
        else:
            out[torch.from_numpy(pos)] = values

    def dots(self, phrases: torch.Tensor) -> torch.Tensor:
        """(n, F, k) float32 dot products of every vector with every phrase.

        Args:
            phrases: (k, d) float32.
        """
        n, F, d = self.shape
        k = phrases.shape[0]
        out = torch.empty(n, F, k, dtype=torch.float32)
        for pos, block in self._blocks():
            m = len(pos)
            # (k, d) @ (d, m F): with so few phrases, this orientation is the faster product
            prod = torch.matmul(phrases, block.reshape(m * F, d).t())
            self._put(out, pos, prod.t().reshape(m, F, k))
        return out

    def float(self) -> torch.Tensor:
        """(n, F, d) float32 the values (what :func:`stored_values` gives)."""
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


def gather_float(coll: Collection, names: tuple[str, ...], rows: np.ndarray,
                 lazy: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> dict[str, Any]:
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
    parts: dict[str, list] = {n: [] for n in names if n in lazy}
    for idx, recs in coll.read_groups(rows):
        for n in copied:  # contiguous, in the stored dtype (numpy's copy of a field is fast)
            stored[n][idx] = recs[n]
        for n in parts:  # views into the records (StoredFrames converts them block by block)
            scale = torch.from_numpy(recs[n + "_scale"]) if n + "_scale" in scaled else None
            parts[n].append((idx, torch.from_numpy(recs[n]), scale))
    out: dict[str, Any] = {}
    for n in plain:
        # numpy allocates the float32 arrays (tens of MB per query at MSR-VTT's sizes) with
        # transparent huge pages where the kernel offers them on request; torch.empty does not,
        # and faulting in 4 KiB pages made the conversion ~6x slower on the project's VM
        dst = torch.from_numpy(np.empty(stored[n].shape, np.float32))
        _convert_into(dst, torch.from_numpy(stored[n]),
                      torch.from_numpy(stored[n + "_scale"]) if n + "_scale" in scaled else None)
        out[n] = dst
    for n, p in parts.items():
        out[n] = StoredFrames(p, len(rows), dt[n].shape)
    for n in extra_only:
        out[n] = stored[n]
    out["lengths"] = torch.from_numpy(stored["lengths"].astype(np.int64))
    return out


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
