"""The QVHighlights metrics on hand-worked cases and, where its files are on disk, on the
benchmark's own sample predictions against the figures its repository records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from hanet.errors import DataError
from hanet.moment_metrics import (IOU_THRESHOLDS, MomentPrediction, MomentQuery, detection_ap, evaluate_moments,
                                  ranking_ap, read_ground_truth, read_predictions, write_ground_truth,
                                  write_predictions)

# The figures jayleicn/moment_detr records for standalone_eval/sample_val_preds.jsonl against
# data/highlight_val_release.jsonl (standalone_eval/sample_val_preds_metrics_raw.json, "brief").
SAMPLE_BRIEF = {
    "MR-full-R1@0.5": 53.94, "MR-full-R1@0.7": 34.84, "MR-full-mAP": 32.2, "MR-full-mAP@0.5": 54.96,
    "MR-full-mAP@0.75": 31.01, "MR-long-mAP": 41.11, "MR-middle-mAP": 32.3, "MR-short-mAP": 3.28,
    "HL-min-Fair-mAP": 67.77, "HL-min-Fair-Hit1": 66.45, "HL-min-Good-mAP": 58.09, "HL-min-Good-Hit1": 64.45,
    "HL-min-VeryGood-mAP": 35.65, "HL-min-VeryGood-Hit1": 55.55,
}
SAMPLE_FULL_MAP = {"0.5": 54.96, "0.55": 49.88, "0.6": 46.62, "0.65": 40.2, "0.7": 35.49, "0.75": 31.01, "0.8": 24.79,
                   "0.85": 18.72, "0.9": 13.21, "0.95": 7.16, "average": 32.2}


def q(qid, windows, duration=150.0, clips=None, sal=None) -> MomentQuery:
    return MomentQuery(qid, f"v{qid}", duration, windows, "", clips, sal)


def test_r1_takes_the_first_window_and_the_truth_it_overlaps_most() -> None:
    truth = [q(1, [(0, 10), (20, 30)]), q(2, [(0, 10)])]
    preds = [MomentPrediction(1, "v1", [(21, 30, 0.1), (0, 10, 0.9)]),  # first in the list, not best score
             MomentPrediction(2, "v2", [(0, 6, 0.5)])]
    m = evaluate_moments(preds, truth).metrics
    # query 1: IoU 0.9 with (20, 30); query 2: IoU 0.6
    assert m["full"]["MR-R1"]["0.5"] == 100.0 and m["full"]["MR-R1"]["0.7"] == 50.0
    assert m["full"]["MR-R1"]["0.95"] == 0.0 and m["brief"]["MR-full-R1@0.7"] == 50.0


def test_detection_ap_by_hand() -> None:
    # two true windows; by score: a hit on the first, a miss, then a hit on the second
    ap = detection_ap([(0, 10), (20, 30)], [(0, 10, 0.9), (50, 60, 0.8), (20, 30, 0.7)])
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: envelope 1 up to 1/2, then 2/3 -> 0.5 + 1/3
    assert ap == pytest.approx(np.full(len(IOU_THRESHOLDS), 0.5 + 1 / 3))
    # a duplicate of a matched window is a false positive: that truth is taken
    dup = detection_ap([(0, 10)], [(0, 10, 0.9), (0, 10, 0.8)])
    assert dup == pytest.approx(np.ones(len(IOU_THRESHOLDS)))
    # IoU 0.6: a hit at thresholds up to 0.6, a miss beyond
    partial = detection_ap([(0, 10)], [(0, 6, 1.0)])
    assert list(partial) == [1.0, 1.0, 1.0] + [0.0] * 7


def test_length_ranges_keep_their_windows_only() -> None:
    truth = [q(1, [(0, 5), (40, 100)]), q(2, [(0, 20)])]
    preds = [MomentPrediction(1, "v1", [(40, 100, 1.0)]), MomentPrediction(2, "v2", [(0, 20, 1.0)])]
    m = evaluate_moments(preds, truth).metrics
    assert m["long"]["MR-R1"]["0.9"] == 100.0 and m["long"]["MR-mAP"]["average"] == 100.0  # query 1 only
    assert m["short"]["MR-R1"]["0.5"] == 0.0  # query 1's short window alone; its prediction misses it
    assert m["middle"]["MR-mAP"]["average"] == 100.0  # query 2 only
    assert m["full"]["MR-mAP"]["average"] == pytest.approx(75.0)  # query 1 finds one of two windows


def test_highlight_scores_by_hand() -> None:
    # 4 clips of 2 s; annotator scores per clip
    truth = [q(1, [(0, 4)], duration=8.0, clips=[0, 1, 3], sal=[[4, 1], [2, 3], [0, 4]])]
    preds = [MomentPrediction(1, "v1", [(0, 4, 1.0)], [0.9, 0.5, 0.1, 0.7])]
    m = evaluate_moments(preds, truth).metrics
    # top clip 0: Fair (>=2) for annotator 0, VeryGood (4) too
    assert m["HL-min-Fair"]["HL-Hit1"] == 100.0 and m["HL-min-VeryGood"]["HL-Hit1"] == 100.0
    # Good (>=3): annotator 0 marks clip 0, annotator 1 clips 1 and 3
    # ranking 0, 3, 1, 2: annotator 0 AP 1; annotator 1 precision 1/2 at recall 1/2 and 2/3 at
    # recall 1, so 2/3 at both levels once interpolated (the best precision at that recall or more)
    assert m["HL-min-Good"]["HL-mAP"] == pytest.approx(100 * (1 + 2 / 3) / 2, abs=0.005)
    assert ranking_ap(np.array([1.0, 1.0]), np.array([0.1, 0.2])) == 1.0
    assert ranking_ap(np.array([0.0, 0.0]), np.array([0.1, 0.2])) == 0.0


def test_query_ids_must_match_unless_shared() -> None:
    truth = [q(1, [(0, 10)]), q(2, [(0, 10)])]
    preds = [MomentPrediction(1, "v1", [(0, 10, 1.0)]), MomentPrediction(3, "v3", [(0, 10, 1.0)])]
    with pytest.raises(DataError, match="different query ids"):
        evaluate_moments(preds, truth)
    ev = evaluate_moments(preds, truth, shared=True)
    assert ev.queries == 1 and ev.missing == [2] and ev.extra == [3]
    assert ev.metrics["brief"]["MR-full-R1@0.5"] == 100.0


def test_files_round_trip(tmp_path: Path) -> None:
    truth = [q(1, [(1.5, 3.25)], duration=6.0), q("a", [(0, 2)], duration=2.0)]
    preds = [MomentPrediction(1, "v1", [(1.5, 3.0, 0.8)]), MomentPrediction("a", "va", [(0, 2, 0.5)])]
    write_ground_truth(tmp_path / "gt.jsonl", truth)
    write_predictions(tmp_path / "p.jsonl", preds, {1: "a query"})
    assert [x.windows for x in read_ground_truth(tmp_path / "gt.jsonl")] == [[(1.5, 3.25)], [(0.0, 2.0)]]
    back = read_predictions(tmp_path / "p.jsonl")
    assert back[0].windows == [(1.5, 3.0, 0.8)] and back[1].qid == "a"
    assert json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])["query"] == "a query"


@pytest.mark.parametrize("line, problem", [
    ('[1, 2]', "must be a JSON object"),
    ('{"qid": 1, "vid": "v", "relevant_windows": [[5, 2]]}', "ends before it starts"),
    ('{"qid": 1, "vid": "v", "relevant_windows": [[-1, 2]]}', "starts before 0"),
    ('{"qid": 1, "vid": "v", "duration": 10, "relevant_windows": [[0, 12]]}', "past the video's duration"),
    ('{"qid": 1, "vid": "v", "relevant_windows": [["0", 2]]}', "finite number"),
    ('{"vid": "v", "relevant_windows": [[0, 2]]}', "'qid'"),
    ('{"qid": 1, "vid": "v"}', "relevant_windows"),
    ('{"qid": 1, "vid": "v", "relevant_windows": [[0, 2]]}\n{"qid": 1, "vid": "w", "relevant_windows": [[0, 2]]}',
     "already on line 1"),
])
def test_bad_ground_truth_names_file_line_and_problem(tmp_path: Path, line: str, problem: str) -> None:
    f = tmp_path / "gt.jsonl"
    f.write_text(line + "\n")
    with pytest.raises(DataError, match=problem) as e:
        read_ground_truth(f)
    assert str(f) in str(e.value)


def test_not_utf8_and_not_a_file(tmp_path: Path) -> None:
    f = tmp_path / "gt.jsonl"
    f.write_bytes(b'{"qid": 1, "vid": "\xff"}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        read_ground_truth(f)
    with pytest.raises(DataError, match="not a regular file"):
        read_predictions(tmp_path)


SAMPLE = os.environ.get("HANET_QVHIGHLIGHTS_DIR")


@pytest.mark.skipif(not SAMPLE, reason="set HANET_QVHIGHLIGHTS_DIR to a checkout of jayleicn/moment_detr "
                                       "(its files are not redistributed here)")
def test_the_benchmarks_sample_predictions_give_its_recorded_figures() -> None:
    root = Path(SAMPLE)
    ev = evaluate_moments(read_predictions(root / "standalone_eval" / "sample_val_preds.jsonl"),
                          read_ground_truth(root / "data" / "highlight_val_release.jsonl"))
    assert ev.queries == 1550
    assert ev.metrics["brief"] == SAMPLE_BRIEF
    assert list(ev.metrics["brief"]) == list(SAMPLE_BRIEF)
    assert ev.metrics["full"]["MR-mAP"] == SAMPLE_FULL_MAP
