"""The span rule (hanet.model.moments) on hand-made curves: windows, seconds, the whole-clip cases."""

from __future__ import annotations

import numpy as np
import pytest

from hanet.model.moments import best_windows, frame_bounds, make_span, moments, temporal_iou


def test_best_window_is_the_stretch_most_above_the_average():
    x = np.array([[-.1, -.1, .3, .2, -.05, -.05, 0, 0], [.1, -.2, .1, .1, -.3, .2, 0, 0]])
    a, b, total = best_windows(x, np.array([6, 6]))
    assert (a.tolist(), b.tolist()) == ([2, 2], [3, 3])
    assert total == pytest.approx([0.5, 0.2])
    # values past a row's length are never part of a window
    a, b, _ = best_windows(np.array([[0.0, -1.0, 5.0]]), np.array([2]))
    assert (int(a[0]), int(b[0])) == (0, 0)


def test_frame_bounds_are_the_parts_of_uniform_sampling():
    times = [(k + 0.5) * 3.0 / 12 for k in range(12)]  # the frame at the centre of each of 12 parts
    np.testing.assert_allclose(frame_bounds(times, 12, 3.0), np.linspace(0, 3.0, 13))
    np.testing.assert_allclose(frame_bounds(times, 12, None), np.linspace(0, 3.0, 13))
    assert frame_bounds(None, 12, 3.0) is None  # no times: no seconds, never made-up ones
    assert frame_bounds(times[:3], 12, 3.0) is None
    assert frame_bounds([0.4], 1, 2.0).tolist() == [0.0, 2.0]


def _curve(Cv: int, frames: list[float], concept: int) -> np.ndarray:
    fp = np.full((1, len(frames), Cv), 0.1, np.float32)
    fp[0, :, concept] = frames
    return fp


def test_a_phrase_span_follows_its_concept_over_the_frames():
    times = [(k + 0.5) * 0.25 for k in range(12)]  # 12 frames over 3 s
    bounce = [0.1, 0.1, 0.1, 0.1, 0.8, 0.9, 0.9, 0.8, 0.2, 0.1, 0.1, 0.1]
    fp = _curve(5, bounce, concept=3)
    fp[0, :, 1] = [0.9] * 4 + [0.1] * 8  # another concept, early
    phrase = np.zeros((4, 5), np.float32)
    phrase[0, 3] = 0.9  # slot 0 is about concept 3 ("bounces")
    phrase[2, 1] = 0.7  # slot 2 about concept 1 ("spins")
    m = moments(fp, np.array([12]), phrase, [0, 2], [times], [3.0])
    p0, p2 = m.phrases[0][("verb", 0)], m.phrases[0][("verb", 2)]
    assert (p0.first_frame, p0.last_frame, p0.start, p0.end) == (4, 7, 1.0, 2.0) and p0.note is None
    assert (p2.first_frame, p2.last_frame, p2.start, p2.end) == (0, 3, 0.0, 1.0)
    hit = m.hit[0]  # the mean of the two curves: both stretches
    assert hit.start == 0.0 and hit.end == 2.0 and hit.format() == "0.0\u20132.0 s"
    assert temporal_iou((hit.start, hit.end), (0.0, 1.0)) == pytest.approx(0.5)


def test_the_whole_clip_is_said_so_never_a_made_up_time():
    phrase = np.zeros((2, 3), np.float32)
    phrase[0, 0] = 1.0
    flat = np.full((1, 6, 3), 0.4, np.float32)
    m = moments(flat, np.array([6]), phrase, [0], [[0.1 * k for k in range(6)]], [0.6])
    assert m.hit[0].note == "the concept is flat over the clip: the whole clip"
    assert (m.hit[0].first_frame, m.hit[0].last_frame) == (0, 5)
    one = moments(flat[:, :1], np.array([1]), phrase, [0], [[0.0]], [2.0])
    assert one.hit[0].note == "one frame: the whole clip" and (one.hit[0].start, one.hit[0].end) == (0.0, 2.0)
    no_verb = moments(flat, np.array([6]), phrase, [], [None], [None])
    assert no_verb.hit[0].note == "the query names no action: the whole clip" and no_verb.phrases == [{}]
    no_times = moments(_curve(3, [0.1, 0.9, 0.1, 0.1], 0), np.array([4]), phrase, [0], [None], [None])
    assert no_times.hit[0].start is None and no_times.hit[0].end is None
    assert no_times.hit[0].note == "the features carry no frame times: frames only"
    assert no_times.hit[0].format() == "frames 1\u20131"
    assert moments(None, np.array([4]), phrase, [0], [None], [None]).hit == [None]  # an index without the curves


def test_make_span_rounds_to_the_bounds():
    s = make_span(2, 3, 0.5, 6, np.array([0, .5, 1, 1.5, 2, 2.5, 3.0]))
    assert (s.start, s.end, s.excess, s.note) == (1.0, 2.0, 0.5, None)
    assert s.to_dict() == {"first_frame": 2, "last_frame": 3, "start": 1.0, "end": 2.0, "excess": 0.5, "note": None}


def test_a_phrase_curve_weighs_its_three_most_probable_concepts():
    from hanet.model.moments import TOP_CONCEPTS, phrase_curves

    assert TOP_CONCEPTS == 3
    rng = np.random.default_rng(0)
    fp = rng.random((2, 6, 5)).astype(np.float32)  # 2 videos, 6 frames, 5 concepts
    phrase = np.array([[0.05, 0.6, 0.0, 0.3, 0.1], [0, 0, 0, 0, 0]], np.float32)
    curves = phrase_curves(fp, phrase)
    assert curves.shape == (2, 2, 6)
    want = (0.6 * fp[:, :, 1] + 0.3 * fp[:, :, 3] + 0.1 * fp[:, :, 4]) / 1.0  # concept 0 (0.05) left out
    np.testing.assert_allclose(curves[:, 0], want, rtol=1e-6)
    # a phrase without concept mass: its first three concepts, equally
    np.testing.assert_allclose(curves[:, 1], fp[:, :, :3].mean(-1), rtol=1e-6)


def test_edge_frames_take_the_nearest_wholly_covered_frame():
    """The verb classifier's zero-padded window makes the first and last kernel // 2 frames
    partial: they take the value of the nearest frame whose window lies inside the clip, so an
    action that runs to the clip's end is read to the end."""
    from hanet.model.moments import edge_filled

    curves = np.arange(2 * 10, dtype=np.float32).reshape(2, 1, 10)
    out = edge_filled(curves, np.array([10, 7]), kernel=5)
    assert out[0, 0].tolist() == [2, 2, 2, 3, 4, 5, 6, 7, 7, 7]
    assert out[1, 0, :7].tolist() == [12, 12, 12, 13, 14, 14, 14]  # frames past the length are not read
    np.testing.assert_array_equal(edge_filled(curves, np.array([10, 4]), kernel=5)[1], curves[1])  # too short
    np.testing.assert_array_equal(edge_filled(curves, np.array([10, 7]), kernel=1), curves)
    # an action in the last four of twelve frames whose end the classifier under-reads
    probs = np.full((1, 12, 3), 0.1, np.float32)
    probs[0, 8:, 1] = [0.9, 0.9, 0.25, 0.2]
    phrase = np.array([[0.0, 1.0, 0.0]], np.float32)
    raw = moments(probs, np.array([12]), phrase, [0], [None], [None])
    fixed = moments(probs, np.array([12]), phrase, [0], [None], [None], kernel=5)
    assert (raw.hit[0].first_frame, raw.hit[0].last_frame) == (8, 9)
    assert (fixed.hit[0].first_frame, fixed.hit[0].last_frame) == (8, 11)


def test_phrases_the_query_orders_get_spans_in_that_order():
    times = [(k + 0.5) * 0.25 for k in range(12)]
    fp = np.full((1, 12, 4), 0.1, np.float32)
    # "spins" (concept 1) stands out late but also a little early; "bounces" (concept 2) in the middle
    fp[0, :, 1] = [0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9]
    fp[0, :, 2] = [0.1, 0.1, 0.1, 0.1, 0.8, 0.8, 0.8, 0.8, 0.1, 0.1, 0.1, 0.1]
    phrase = np.zeros((3, 4), np.float32)
    phrase[0, 1] = 1.0  # slot 0 "spins"
    phrase[1, 2] = 1.0  # slot 1 "bounces"
    free = moments(fp, np.array([12]), phrase, [0, 1], [times], [3.0])
    assert free.phrases[0][("verb", 0)].first_frame == 8  # on its own, "spins" goes late
    # "it spins and then bounces": spins must come before bounces
    seq = moments(fp, np.array([12]), phrase, [0, 1], [times], [3.0], sequence=[0, 1])
    spin, bounce = seq.phrases[0][("verb", 0)], seq.phrases[0][("verb", 1)]
    assert spin.last_frame < bounce.first_frame and (spin.first_frame, spin.last_frame) == (0, 1)
    assert (bounce.first_frame, bounce.last_frame) == (4, 7)
    assert (seq.hit[0].first_frame, seq.hit[0].last_frame) == (0, 7)  # from the first's start to the last's end
    # the order the video shows ("bounces and then spins") gives the free spans back
    back = moments(fp, np.array([12]), phrase, [0, 1], [times], [3.0], sequence=[1, 0])
    assert back.phrases[0][("verb", 0)].first_frame == 8 and back.phrases[0][("verb", 1)].last_frame == 7


def test_sequence_windows_are_the_best_ordered_choice():
    import itertools

    from hanet.model.moments import sequence_windows

    rng = np.random.default_rng(0)
    for _ in range(100):
        n, F = int(rng.integers(1, 4)), int(rng.integers(3, 8))
        x = rng.normal(size=(2, n, F))
        L = rng.integers(n, F + 1, size=2)
        first, last, own = sequence_windows(x, L)
        for v in range(2):
            wins = [(a, b) for a in range(L[v]) for b in range(a, L[v])]
            best = max(sum(x[v, i, a:b + 1].sum() for i, (a, b) in enumerate(c))
                       for c in itertools.product(wins, repeat=n) if all(c[i][1] < c[i + 1][0] for i in range(n - 1)))
            got = sum(x[v, i, first[v, i]:last[v, i] + 1].sum() for i in range(n))
            assert got == pytest.approx(best)
            assert all(last[v, i] < first[v, i + 1] for i in range(n - 1)) and last[v, -1] < L[v]
            assert own[v] == pytest.approx([x[v, i, first[v, i]:last[v, i] + 1].sum() for i in range(n)])
