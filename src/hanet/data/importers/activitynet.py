"""ActivityNet Captions (Krishna et al., ICCV 2017) in its own release format.

``train.json``, ``val_1.json``, ``val_2.json``: ``{"v_<id>": {"duration": seconds, "timestamps":
[[start, end], ...], "sentences": [...]}}``, one timestamp per sentence. Splits by file name:
train -> trn, val_1 -> val, val_2 -> tst (the usual choice for retrieval and grounding). Each
sentence is a caption of its video with its window.
"""

from __future__ import annotations

from pathlib import Path

from hanet.data.importers.base import Entry, Parsed, Problem, number, read_json, split_of_file, window
from hanet.errors import DataError

SPLIT_WORDS = {"train": "trn", "val_1": "val", "val1": "val", "val_2": "tst", "val2": "tst", "test": "tst"}


def parse(sources: list[Path], split_of: dict[str, str]) -> Parsed:
    out = Parsed()
    for src in sources:
        split = split_of.get(src.name) or split_of_file(src, SPLIT_WORDS)
        data = read_json(src)
        if not isinstance(data, dict):
            raise DataError(f"{src}: expected {{video: {{duration, timestamps, sentences}}}}, got a JSON "
                            f"{type(data).__name__}")
        for vid, rec in data.items():
            where = f"{src}: {vid}"
            if not isinstance(rec, dict):
                out.problems.append(Problem(where, "not an object with duration, timestamps and sentences"))
                continue
            sents, stamps = rec.get("sentences"), rec.get("timestamps")
            if not isinstance(sents, list) or not isinstance(stamps, list) or len(sents) != len(stamps):
                out.problems.append(Problem(where, "'sentences' and 'timestamps' must be lists of equal length"))
                continue
            try:
                duration = number(rec.get("duration"), "'duration'")
            except ValueError as exc:
                out.problems.append(Problem(where, str(exc)))
                continue
            for j, (sent, ts) in enumerate(zip(sents, stamps)):
                w = f"{where} sentence {j}"
                if not isinstance(sent, str):
                    out.problems.append(Problem(w, "the sentence is not a string"))
                    continue
                try:
                    win = window(ts, "its timestamp")
                except ValueError as exc:
                    out.problems.append(Problem(w, str(exc)))
                    continue
                out.entries.append(Entry(vid, sent, split, w, windows=[win], duration=duration))
    return out
