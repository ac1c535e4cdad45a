"""Videos and captions encoded as an index stores them.

Every video is padded to ``max_frames_in_video`` before it is encoded, alone or in any batch:
the official video encoder lets padding into SE pooling, the k=5 verb convolution and the
concept BatchNorm's input, so a short video's embeddings depend on how far it is padded. A fixed
padding makes a video's stored encodings independent of which videos were indexed with it (and
of the batch size), so adding videos later never changes the scores of those already indexed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from hanet.errors import DataError
from hanet.index.storage import MOMENT_FIELDS, TEXT_FLOAT_FIELDS, TEXT_INT_FIELDS, VIDEO_FLOAT_FIELDS, VIDEO_INT_FIELDS
from hanet.index.tuning import DEFAULT_BATCH


def video_fields(out: Any) -> dict[str, np.ndarray]:
    """Stored arrays of a batch of encoded videos.

    Args:
        out: :class:`~hanet.model.video.VideoEncoderOutput` of B videos padded to max_frames.

    Returns:
        field -> (B, ...) numpy array, with the norms and Gram matrices of
        :func:`hanet.index.storage.values.precompute`.
    """
    from hanet.index.storage.values import precompute

    f = {name: getattr(out, name).detach().cpu().numpy()
         for name in VIDEO_FLOAT_FIELDS + VIDEO_INT_FIELDS + MOMENT_FIELDS}
    f.update(precompute(f))
    return f


def text_fields(out: Any) -> dict[str, np.ndarray]:
    """Stored arrays of a batch of encoded captions.

    Phrase slots that scoring ignores are zeroed: the encoder fills them with -1e10, which
    float16 cannot hold.
    """
    from hanet.model.scoring import slot_mask

    f = {name: getattr(out, name).detach().cpu() for name in TEXT_FLOAT_FIELDS + TEXT_INT_FIELDS}
    vmask, nmask = slot_mask(f["verb_lens"]), slot_mask(f["noun_lens"])
    for name, m in (("verb_embeds", vmask), ("verb_phrases", vmask), ("noun_embeds", nmask), ("noun_phrases", nmask)):
        f[name] = f[name].masked_fill(~m.unsqueeze(-1), 0.0)
    return {k: v.numpy() for k, v in f.items()}


def encode_stored_videos(model: Any, store: Any, names: Sequence[str], batch_size: int = DEFAULT_BATCH,
                         videos_dir: Optional[Path] = None,
                         on_bad: Optional[Callable[[str, str], None]] = None):
    """Encode videos of a feature store as an index stores them, a batch at a time.

    Every video is padded (or subsampled) to ``max_frames_in_video`` first (see the module
    docstring), so its encodings do not depend on its batch.

    Args:
        model: the :class:`~hanet.model.HANet`.
        store: a :class:`~hanet.data.features.FeatureStore`.
        names: the videos (feature keys).
        batch_size: videos per encoder call.
        videos_dir: folder of the video files (recorded in the metadata when found).
        on_bad: called with ``(name, problem)`` for a video whose features cannot be read, which
            is then left out; None: the DataError is raised.

    Yields:
        ``(names, fields, metas)`` per batch: :func:`video_fields` and each video's metadata
        (length, frame times, duration, source...).
    """
    from hanet.data.formats import pad_or_subsample

    T = model.config.max_frames_in_video
    for s in range(0, len(names), batch_size):
        part, feats, lens, metas = [], [], [], []
        for n in names[s:s + batch_size]:
            try:
                raw = store.get(n)
            except DataError as exc:
                if on_bad is None:
                    raise
                on_bad(n, str(exc))
                continue
            part.append(n)
            x, length = pad_or_subsample(raw, T)
            feats.append(x)
            lens.append(length)
            metas.append(video_meta(n, store.attrs(n), raw.shape[0], T, videos_dir))
        if not part:
            continue
        with torch.no_grad():
            out = model.encode_video(torch.from_numpy(np.stack(feats)), torch.tensor(lens, dtype=torch.int64))
        yield part, video_fields(out), metas


def video_meta(name: str, attrs: dict[str, Any], n_frames: int, T: int, videos_dir: Optional[Path]) -> dict[str, Any]:
    from hanet.index.thumbs import find_video

    from hanet.data.formats import kept_frame_times, kept_frames

    length = min(n_frames, T)
    index = kept_frames(n_frames, T)
    frame_times = kept_frame_times(attrs.get("timestamps"), n_frames, T)
    source = attrs.get("source")
    path = find_video(name, videos_dir, source if isinstance(source, str) else None)
    meta = {"id": name, "length": int(length), "feature_frames": int(n_frames), "frame_index": index.tolist(),
            "frame_times": frame_times, "source": None if path is None else str(path),
            "duration": attrs.get("duration"), "width": attrs.get("width"), "height": attrs.get("height")}
    return meta


__all__ = ["DEFAULT_BATCH", "video_fields", "text_fields", "encode_stored_videos", "video_meta"]
