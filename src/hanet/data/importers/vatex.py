"""VATEX in its own release format.

``vatex_training_v1.0.json``, ``vatex_validation_v1.0.json`` and the public test file are JSON
lists of ``{"videoID": "<YouTube id>_<start>_<end>", "enCap": [10 English captions], "chCap":
[10 Chinese captions]}``. The split comes from the file name (training, validation, test); the
English captions are imported. The video's name is its ``videoID`` (the clip files are
usually saved under it).
"""

from __future__ import annotations

from pathlib import Path

from hanet.data.importers.base import Entry, Parsed, Problem, read_json, split_of_file
from hanet.errors import DataError

SPLIT_WORDS = {"train": "trn", "valid": "val", "test": "tst"}


def _duration(video_id: str) -> float | None:
    parts = video_id.rsplit("_", 2)
    try:
        d = float(parts[2]) - float(parts[1])
    except (IndexError, ValueError):
        return None
    return d if d > 0 else None


def parse(sources: list[Path], split_of: dict[str, str]) -> Parsed:
    out = Parsed()
    for src in sources:
        split = split_of.get(src.name) or split_of_file(src, SPLIT_WORDS)
        data = read_json(src)
        if not isinstance(data, list):
            raise DataError(f"{src}: expected a JSON list of {{videoID, enCap, chCap}}, got a JSON {type(data).__name__}")
        for i, rec in enumerate(data):
            where = f"{src}: [{i}]"
            if not isinstance(rec, dict) or not isinstance(rec.get("videoID"), str) or not rec["videoID"]:
                out.problems.append(Problem(where, "no 'videoID' string"))
                continue
            caps = rec.get("enCap")
            if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
                out.problems.append(Problem(f"{where} ({rec['videoID']})", "'enCap' must be a list of strings"))
                continue
            for j, cap in enumerate(caps):
                out.entries.append(Entry(rec["videoID"], cap, split, f"{where} ({rec['videoID']}) enCap[{j}]",
                                         duration=_duration(rec["videoID"])))
    return out
