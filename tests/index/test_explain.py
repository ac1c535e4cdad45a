"""Explanations of a (query, video) pair."""

from __future__ import annotations

import json

import numpy as np
import pytest


from .corpus import QUERY, RATE, arrays, frame_level, make_corpus, padded  # noqa: F401


def test_explanation_is_consistent_with_the_scores(index):
    hit = index.search("a man w12 is riding w40 on a w7", k=1)[0]
    exp = index.explain("a man w12 is riding w40 on a w7", hit.video_id)
    json.dumps(exp.to_dict())  # serialisable
    assert abs(exp.score - hit.score) < 1e-4
    assert abs(sum(c.contribution for c in exp.contributions) - exp.score) < 1e-5
    assert {c.name: c.score for c in exp.contributions} == pytest.approx(hit.scores, abs=1e-4)
    L = index.video(hit.video_id)["length"]
    for kind in ("verb", "noun"):
        ps = [p for p in exp.phrases if p.kind == kind]
        assert ps, kind
        # the individual- and local-level scores are the mean of the phrases' similarities
        assert np.mean([p.individual_similarity for p in ps]) == pytest.approx(hit.scores[f"ind_{kind}"], abs=1e-4)
        assert np.mean([p.local_similarity for p in ps]) == pytest.approx(hit.scores[kind], abs=1e-4)
        for p in ps:
            assert len(p.frames) == L and sum(f.weight for f in p.frames) == pytest.approx(1.0, abs=1e-5)
            assert p.top_frames[0] == int(np.argmax([f.weight for f in p.frames]))
            assert all(0 <= f < L for c in p.clips for f in c.frames)
    assert len(exp.video_concepts["verb"]) == 8 and exp.frame_times is not None
    text = exp.format()
    assert "concept_noun" in text and "riding" in text
