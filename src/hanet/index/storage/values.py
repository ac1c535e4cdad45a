"""What an index stores of a video beyond its encodings: frames as int8 (optional), and the
per-video norms and Gram matrices the phrase scores need.

The phrase scores read a video's frames and clips through their dot products with a query's
phrases, their norms and their (frames x frames) Gram matrices
(:class:`hanet.model.scoring.FrameProducts`). Norms and Gram matrices depend on the video alone,
so they are computed once, when a video is added, from the very values the index stores
(:func:`precompute`): about half of the work per candidate at search time.
"""

from __future__ import annotations

import numpy as np
import torch

from hanet.index.storage.layout import FRAME_FIELDS

PRECOMPUTED_FIELDS: dict[str, tuple[str, str]] = {
    "verb_frame_norms": ("verb_frames", "norm"), "noun_frame_norms": ("noun_frames", "norm"),
    "verb_clip_norms": ("verb_clips", "norm"), "noun_clip_norms": ("noun_clips", "norm"),
    "verb_frame_grams": ("verb_frames", "gram"), "noun_frame_grams": ("noun_frames", "gram"),
    "verb_clip_grams": ("verb_clips", "gram"), "noun_clip_grams": ("noun_clips", "gram"),
}


def quantize_frames(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """:data:`~hanet.index.storage.layout.FRAME_FIELDS` as int8 with one float16 scale per frame or clip.

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


__all__ = ["PRECOMPUTED_FIELDS", "quantize_frames", "stored_values", "precompute"]
