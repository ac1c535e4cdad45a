"""The on-disk index: a manifest, immutable segments of float16 records, tombstones, FAISS files.

Layout::

    INDEX_DIR/manifest.json             the commit point: everything else is read through it
    INDEX_DIR/model.pt                  the model queries are encoded with (checkpoint format)
    INDEX_DIR/vocab.json                word2int of that model
    INDEX_DIR/concepts.json             {"verb": [names by id], "noun": [...]} (optional)
    INDEX_DIR/segments/v-000001-000/    one batch of videos, never modified after it is written:
        ids.json                        video ids in row order
        meta.jsonl                      one JSON object per row (source, frame times, thumbnail)
        records.npy                     (N,) structured rows, one field per stored output:
                                        encodings in float16, their norms and Gram matrices
                                        (hanet.index.storage.values) in float32, indices in int32
        thumbs/<row>.jpg                thumbnail strips (named by row, never by id)
    INDEX_DIR/segments/c-000001-000/    captions (video-to-text search), same scheme
    INDEX_DIR/faiss/videos-000001-global.faiss, -verbs.faiss, -nouns.faiss
                                        the first stage of generation 1 (hanet.index.first_stage)
    INDEX_DIR/tombstones/videos-000001.npy  deleted rows of generation 1 (sorted int64)
    INDEX_DIR/.lock                     held by the one writer (readers never write)

Crash safety: a writer builds every new file under a temporary name, fsyncs it and renames it
into place; a new segment is a temporary folder renamed whole. Only then is ``manifest.json``
replaced (temporary file, fsync, rename): that rename is the commit. A writer killed at any
point leaves the previous manifest, which names only complete files; whatever it left behind is
not referenced and is removed by the next writer. Readers load the manifest once and see one
generation, whatever writers do meanwhile (segments are immutable; old FAISS and tombstone files
are only removed after a newer manifest is in place, and a reader loads them when it opens).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from hanet.errors import HanetError

INDEX_FORMAT = "hanet-index"
INDEX_VERSION = 1
MANIFEST = "manifest.json"
MODEL_FILE = "model.pt"
VOCAB_FILE = "vocab.json"
CONCEPTS_FILE = "concepts.json"

VIDEO_FLOAT_FIELDS: tuple[str, ...] = ("global_embeds", "verb_clips", "noun_clips", "verb_frames", "noun_frames",
                                       "verb_probs", "noun_probs")
VIDEO_INT_FIELDS: tuple[str, ...] = ("lengths", "top_verbs", "top_nouns", "verb_peaks", "noun_peaks")
#: What time spans read (:mod:`hanet.model.moments`): each frame's verb concept probabilities.
#: Scoring never reads them; an index written before they were stored gives no spans.
MOMENT_FIELDS: tuple[str, ...] = ("verb_frame_probs",)
TEXT_FLOAT_FIELDS: tuple[str, ...] = ("global_embeds", "verb_embeds", "noun_embeds", "verb_phrases", "noun_phrases",
                                      "verb_probs", "noun_probs")
TEXT_INT_FIELDS: tuple[str, ...] = ("verb_lens", "noun_lens", "lengths")
PARTS = ("videos", "captions")
_PREFIX = {"videos": "v", "captions": "c"}


class IndexFormatError(HanetError):
    """The index directory is missing, damaged, or was written by another version or model."""


#: The per-frame and per-clip tensors (most of a video's bytes), which ``frame_dtype="int8"`` stores
#: as 8-bit integers with one float16 scale per frame or clip (``<field>_scale``).
FRAME_FIELDS: tuple[str, ...] = ("verb_frames", "noun_frames", "verb_clips", "noun_clips")
FRAME_DTYPES = ("float16", "int8")


def field_shapes(config: Any, kind: str, frame_dtype: str = "float16") -> dict[str, tuple[tuple[int, ...], str]]:
    """Per-row shape and dtype of every stored array.

    Args:
        config: the :class:`~hanet.config.ModelConfig`.
        kind: ``videos`` or ``captions``.
        frame_dtype: how videos store :data:`FRAME_FIELDS`: ``float16``, or ``int8`` with a scale
            per frame (about half the bytes; :func:`hanet.index.storage.values.quantize_frames`).

    Returns:
        field -> (row shape, numpy dtype name).
    """
    if frame_dtype not in FRAME_DTYPES:
        raise HanetError(f"frame dtype {frame_dtype!r}: choose one of {', '.join(FRAME_DTYPES)}")
    d = config.video.dim_embed
    if kind == "videos":
        T = config.max_frames_in_video
        Sv, Sn = config.num_selected_verbs, config.num_selected_nouns
        K = config.noun_topk if T >= config.noun_topk else 1
        shapes = {
            "global_embeds": ((d,), "float16"), "verb_clips": ((Sv, d), "float16"),
            "noun_clips": ((Sn, d), "float16"), "verb_frames": ((T, d), "float16"),
            "noun_frames": ((T, d), "float16"), "verb_probs": ((config.num_verb_concepts,), "float16"),
            "verb_frame_probs": ((T, config.num_verb_concepts), "float16"),
            "noun_probs": ((config.num_noun_concepts,), "float16"), "lengths": ((), "int32"),
            "top_verbs": ((Sv,), "int32"), "top_nouns": ((Sn,), "int32"), "verb_peaks": ((Sv,), "int32"),
            "noun_peaks": ((K, Sn), "int32"),
            # precomputed from the stored float16 frames and clips (see hanet.index.storage.values)
            "verb_frame_norms": ((T,), "float32"), "noun_frame_norms": ((T,), "float32"),
            "verb_clip_norms": ((Sv,), "float32"), "noun_clip_norms": ((Sn,), "float32"),
            "verb_frame_grams": ((T, T), "float32"), "noun_frame_grams": ((T, T), "float32"),
            "verb_clip_grams": ((Sv, Sv), "float32"), "noun_clip_grams": ((Sn, Sn), "float32"),
        }
        if frame_dtype == "int8":
            for name in FRAME_FIELDS:
                shape, _ = shapes[name]
                shapes[name] = (shape, "int8")
                shapes[name + "_scale"] = (shape[:1], "float16")
        return shapes
    if kind == "captions":
        Pv, Pn = config.num_verbs, config.num_nouns
        return {
            "global_embeds": ((d,), "float16"), "verb_embeds": ((Pv, d), "float16"),
            "noun_embeds": ((Pn, d), "float16"), "verb_phrases": ((Pv, d), "float16"),
            "noun_phrases": ((Pn, d), "float16"), "verb_probs": ((config.num_verb_concepts,), "float16"),
            "noun_probs": ((config.num_noun_concepts,), "float16"), "verb_lens": ((Pv,), "int32"),
            "noun_lens": ((Pn,), "int32"), "lengths": ((), "int32"),
        }
    raise ValueError(f"unknown segment kind {kind!r}")


def model_fingerprint(model: Any) -> str:
    """SHA-256 of a model's variant, model config and weights (what decides every embedding).

    Args:
        model: a :class:`~hanet.model.HANet`.

    Returns:
        64 hex digits.
    """
    import torch

    h = hashlib.sha256()
    h.update(model.variant.encode())
    cfg = json.dumps(_asdict(model.config), sort_keys=True)
    h.update(cfg.encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _asdict(cfg: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(cfg)


def record_dtype(shapes: dict[str, tuple[tuple[int, ...], str]]) -> np.dtype:
    """The structured dtype of one stored row, fields naturally aligned.

    Args:
        shapes: from :func:`field_shapes`.
    """
    return np.dtype([(f, dt, shape) for f, (shape, dt) in shapes.items()], align=True)


__all__ = ["INDEX_FORMAT", "INDEX_VERSION", "MANIFEST", "MODEL_FILE", "VOCAB_FILE", "CONCEPTS_FILE",
           "VIDEO_FLOAT_FIELDS", "VIDEO_INT_FIELDS", "MOMENT_FIELDS", "TEXT_FLOAT_FIELDS", "TEXT_INT_FIELDS", "PARTS",
           "FRAME_FIELDS", "FRAME_DTYPES", "IndexFormatError", "field_shapes", "record_dtype", "model_fingerprint"]
