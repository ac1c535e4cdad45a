"""Thumbnail strips."""

from __future__ import annotations


import numpy as np


from .corpus import QUERY, RATE, arrays, frame_level, make_corpus, padded  # noqa: F401


def test_thumbnail_strips_are_the_model_frames(index, corpus):
    from PIL import Image

    T = index.config.max_frames_in_video
    for name in corpus.names:
        meta = index.video(name)
        assert meta["length"] == min(corpus.lengths[name], T)
        path = index.thumbnail(name)
        if corpus.names.index(name) >= 6:  # features without a video file
            assert path is None and not meta["source_available"]
            continue
        assert path is not None and meta["source_available"]
        img = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        assert img.shape == (96, 96 * meta["length"])
        # tile i shows the source frame at the model frame's time
        for i, t in enumerate(meta["frame_times"]):
            j = int(round(t * RATE))
            assert abs(img[:, 96 * i:96 * (i + 1)].mean() - frame_level(j)) < 6, (name, i, j)
