"""DiDeMo (Hendricks et al., ICCV 2017) in its own release format.

``train_data.json``, ``val_data.json``, ``test_data.json``: JSON lists of ``{"annotation_id",
"description", "video": "<file name>", "times": [[s, e], ...]}``. Videos are split into
5-second segments (at most six: 30 s); each annotator marked the segments ``s..e`` (inclusive)
where the description happens. A segment pair becomes the window ``[5 s, 5 (e + 1)]`` seconds,
each distinct one a relevant window. The video's name is its file name without the extension.
"""

from __future__ import annotations

from pathlib import Path

from hanet.data.importers.base import Entry, Parsed, Problem, read_json, split_of_file
from hanet.errors import DataError

SPLIT_WORDS = {"train": "trn", "val": "val", "test": "tst"}
SEGMENT_SECONDS = 5.0
SEGMENTS = 6


def parse(sources: list[Path], split_of: dict[str, str]) -> Parsed:
    out = Parsed()
    for src in sources:
        split = split_of.get(src.name) or split_of_file(src, SPLIT_WORDS)
        data = read_json(src)
        if not isinstance(data, list):
            raise DataError(f"{src}: expected a JSON list of {{annotation_id, description, video, times}}")
        for i, rec in enumerate(data):
            where = f"{src}: [{i}]"
            if not isinstance(rec, dict):
                out.problems.append(Problem(where, "not an object"))
                continue
            where = f"{where} (annotation {rec.get('annotation_id')})"
            video, desc, times = rec.get("video"), rec.get("description"), rec.get("times")
            if not isinstance(video, str) or not video or not isinstance(desc, str):
                out.problems.append(Problem(where, "needs 'video' and 'description' strings"))
                continue
            if not isinstance(times, list) or not times:
                out.problems.append(Problem(where, "'times' must be a non-empty list of [start, end] segments"))
                continue
            windows: list[tuple[float, float]] = []
            for t in times:
                if (not isinstance(t, list) or len(t) != 2 or not all(isinstance(x, int) and not isinstance(x, bool)
                                                                       for x in t)):
                    out.problems.append(Problem(where, f"a segment pair must be two integers, not {t!r}"))
                    windows = []
                    break
                s, e = t
                if not (0 <= s <= e < SEGMENTS):
                    out.problems.append(Problem(where, f"segments {t} are not 0 <= start <= end < {SEGMENTS}"))
                    windows = []
                    break
                w = (s * SEGMENT_SECONDS, (e + 1) * SEGMENT_SECONDS)
                if w not in windows:
                    windows.append(w)
            if windows:
                out.entries.append(Entry(Path(video).stem, desc, split, where, windows=windows,
                                         qid=rec.get("annotation_id")))
    return out
