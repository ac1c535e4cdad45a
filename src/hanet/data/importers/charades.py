"""Charades-STA (Gao et al., TALL, ICCV 2017) in its own release format.

``charades_sta_train.txt`` / ``charades_sta_test.txt``: one query per line, ``VIDEO start
end##sentence`` (seconds). Splits by file name. The lengths of the videos are in Charades'
own ``Charades_v1_train.csv`` / ``Charades_v1_test.csv`` (columns ``id`` and ``length``); give
them as further sources to check windows against them (otherwise the length is read from the
video files with ``--videos``, or left unknown).
"""

from __future__ import annotations

from pathlib import Path

from hanet.data.importers.base import Entry, Parsed, Problem, number, read_csv, read_text, split_of_file

SPLIT_WORDS = {"train": "trn", "val": "val", "test": "tst"}


def parse(sources: list[Path], split_of: dict[str, str]) -> Parsed:
    out = Parsed()
    lengths: dict[str, float] = {}
    for src in [s for s in sources if s.suffix.lower() == ".csv"]:
        for where, row in read_csv(src, required=("id", "length")):
            try:
                lengths[row["id"].strip()] = number(row["length"], "'length'")
            except ValueError as exc:
                out.problems.append(Problem(where, str(exc)))
    for src in [s for s in sources if s.suffix.lower() != ".csv"]:
        split = split_of.get(src.name) or split_of_file(src, SPLIT_WORDS)
        for no, line in enumerate(read_text(src).splitlines(), 1):
            if not line.strip():
                continue
            where = f"{src}:{no}"
            head, sep, sentence = line.partition("##")
            parts = head.split()
            if not sep or len(parts) != 3:
                out.problems.append(Problem(where, "expected 'VIDEO start end##sentence'"))
                continue
            try:
                start, end = number(parts[1], "the start"), number(parts[2], "the end")
            except ValueError as exc:
                out.problems.append(Problem(where, str(exc)))
                continue
            out.entries.append(Entry(parts[0], sentence.strip(), split, where, windows=[(start, end)],
                                     duration=lengths.get(parts[0])))
    return out
