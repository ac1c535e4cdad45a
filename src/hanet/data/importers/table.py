"""Your own captions as CSV or JSON lines: a row per caption, columns named by options.

Columns: the video (its file stem), the caption, and optionally a window (``start``/``end`` in
seconds), the video's duration and its split (``trn``/``train``, ``val``/``validation``,
``tst``/``test``). Without a split column, each video's split is drawn from a hash of its name
(``--val-share`` / ``--test-share``), so the same file always gives the same splits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from hanet.data.importers.base import Entry, Parsed, Problem, number, read_csv, read_jsonl

SPLIT_NAMES = {"trn": "trn", "train": "trn", "training": "trn", "val": "val", "valid": "val",
               "validation": "val", "dev": "val", "tst": "tst", "test": "tst", "testing": "tst"}


@dataclass
class Columns:
    """Which column holds what (None: the file has no such column)."""

    video: str = "video"
    caption: str = "caption"
    start: Optional[str] = None
    end: Optional[str] = None
    duration: Optional[str] = None
    split: Optional[str] = None
    val_share: float = 0.1
    test_share: float = 0.2


def hashed_split(video: str, val_share: float, test_share: float) -> str:
    """A split drawn from the video's name: the same name, the same split, on every machine."""
    u = int.from_bytes(hashlib.sha256(video.encode("utf-8")).digest()[:8], "big") / 2 ** 64
    return "tst" if u < test_share else "val" if u < test_share + val_share else "trn"


def _rows(path: Path, cols: Columns, jsonl: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    if jsonl:
        for where, obj in read_jsonl(path):
            yield where, obj if isinstance(obj, dict) else {"__bad__": obj}
    else:
        yield from read_csv(path, required=[c for c in (cols.video, cols.caption) if c])


def parse(sources: list[Path], cols: Columns, jsonl: bool) -> Parsed:
    out = Parsed()
    if (cols.start is None) != (cols.end is None):
        from hanet.errors import DataError

        raise DataError("--start-column and --end-column go together")
    for src in sources:
        for where, row in _rows(src, cols, jsonl):
            if "__bad__" in row:
                out.problems.append(Problem(where, "not a JSON object"))
                continue
            video, caption = row.get(cols.video), row.get(cols.caption)
            if video is None or caption is None:
                out.problems.append(Problem(where, f"no {cols.video!r} or {cols.caption!r}"))
                continue
            if not isinstance(caption, str) or not isinstance(video, (str, int)) or isinstance(video, bool):
                out.problems.append(Problem(where, "the video must be a name and the caption a string"))
                continue
            video = str(video).strip()
            if not video:
                out.problems.append(Problem(where, "empty video name"))
                continue
            try:
                windows = None
                if cols.start and row.get(cols.start) not in (None, ""):
                    windows = [(number(row.get(cols.start), cols.start), number(row.get(cols.end), cols.end or ""))]
                duration = (number(row[cols.duration], cols.duration)
                            if cols.duration and row.get(cols.duration) not in (None, "") else None)
            except ValueError as exc:
                out.problems.append(Problem(where, str(exc)))
                continue
            if cols.split:
                raw = str(row.get(cols.split, "")).strip().lower()
                split = SPLIT_NAMES.get(raw)
                if split is None:
                    out.problems.append(Problem(where, f"split {raw!r} is none of {', '.join(sorted(SPLIT_NAMES))}"))
                    continue
            else:
                split = hashed_split(video, cols.val_share, cols.test_share)
            out.entries.append(Entry(video, caption, split, where, windows=windows, duration=duration,
                                     qid=row.get("qid")))
    return out
