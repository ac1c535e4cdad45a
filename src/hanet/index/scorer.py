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
from typing import Any, Optional

import numpy as np
import torch

from hanet.index.store import FRAME_FIELDS, TEXT_FLOAT_FIELDS, TEXT_INT_FIELDS, VIDEO_FLOAT_FIELDS, Collection


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


@dataclass
class StoredVideos:
    """Stored encodings of a block of videos, float32 tensors (F = frames or clips)."""

    global_embeds: torch.Tensor
    verb_clips: torch.Tensor
    noun_clips: torch.Tensor
    verb_frames: torch.Tensor
    noun_frames: torch.Tensor
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
        names = ("global_embeds",) if only_global else VIDEO_FLOAT_FIELDS + tuple(PRECOMPUTED_FIELDS) + ("lengths",)
        arrays = _dequantized(coll, coll.gather_many(names + _scales(coll, names), rows))
        vals = {name: _to_float(a) for name, a in arrays.items() if name != "lengths"}
        if only_global:
            empty = vals["global_embeds"].new_zeros(len(rows), 0)
            return cls(vals["global_embeds"], *([empty] * 15))
        vals["lengths"] = torch.from_numpy(arrays["lengths"].astype(np.int64))
        return cls(**vals)


def _scales(coll: Collection, names: tuple[str, ...]) -> tuple[str, ...]:
    """The scale fields of the int8 fields among ``names`` (an index built with ``frame_dtype=int8``)."""
    have = set(coll.segments[0].dtype.names) if coll.segments else set()
    return tuple(n + "_scale" for n in names if n + "_scale" in have)


def _dequantized(coll: Collection, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for name in [n for n in arrays if n + "_scale" in arrays]:
        arrays[name] = stored_values(arrays, name)
        del arrays[name + "_scale"]
    return arrays


def _to_float(a: np.ndarray) -> torch.Tensor:
    # torch's float16 -> float32 conversion is vectorised (numpy's is several times slower).
    return torch.from_numpy(np.ascontiguousarray(a)).to(torch.float32)


def video_outputs(coll: Collection, rows: np.ndarray, with_peaks: bool = False):
    """Stored encodings of videos as a :class:`~hanet.model.video.VideoEncoderOutput` (float32).

    Args:
        coll: the videos.
        rows: (n,) rows.
        with_peaks: also load the selected concepts and their frames (explanations).
    """
    from hanet.model.video import VideoEncoderOutput

    peaks = ("top_verbs", "top_nouns", "verb_peaks", "noun_peaks")
    names = VIDEO_FLOAT_FIELDS + ("lengths",) + (peaks if with_peaks else ())
    a = _dequantized(coll, coll.gather_many(names + _scales(coll, names), rows))
    f = {name: _to_float(a[name]) for name in VIDEO_FLOAT_FIELDS}
    lengths = torch.from_numpy(a["lengths"].astype(np.int64))
    if with_peaks:
        ints = {name: torch.from_numpy(a[name].astype(np.int64)) for name in peaks}
    else:
        empty = torch.zeros(len(rows), 0, dtype=torch.int64)
        ints = {"top_verbs": empty, "top_nouns": empty, "verb_peaks": empty, "noun_peaks": empty}
    return VideoEncoderOutput(lengths=lengths, verb_frame_probs=None, noun_frame_probs=None, **f, **ints)


def stores_frame_concepts(coll: Collection) -> bool:
    """Whether a collection's records hold per-frame verb concepts (indexes built before time
    spans do not); an empty collection counts as holding them."""
    return not coll.segments or "verb_frame_probs" in (coll.segments[0].dtype.names or ())


def frame_concepts(coll: Collection, rows: np.ndarray) -> Optional[np.ndarray]:
    """(n, T, Cv) float32 the videos' per-frame verb concept probabilities (what time spans
    read), or None for an index that does not store them."""
    if not coll.segments or not stores_frame_concepts(coll):
        return None
    return coll.gather("verb_frame_probs", np.asarray(rows, np.int64)).astype(np.float32)


def text_outputs(coll: Collection, rows: np.ndarray):
    """Stored caption encodings as a :class:`~hanet.model.text.TextEncoderOutput` (float32)."""
    from hanet.model.text import TextEncoderOutput

    a = coll.gather_many(TEXT_FLOAT_FIELDS + TEXT_INT_FIELDS, rows)
    f = {name: _to_float(a[name]) for name in TEXT_FLOAT_FIELDS}
    ints = {name: torch.from_numpy(a[name].astype(np.int64)) for name in TEXT_INT_FIELDS}
    return TextEncoderOutput(word_attn=torch.zeros(len(rows), 1), **f, **ints)


__all__ = ["PRECOMPUTED_FIELDS", "quantize_frames", "stored_values", "precompute", "StoredVideos", "video_outputs",
           "stores_frame_concepts", "frame_concepts", "text_outputs"]
