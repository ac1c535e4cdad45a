"""What every dataset importer shares: the records it yields, the problems it reports, and the
readers of JSON, JSON lines and CSV that name the file and the record when something is wrong.

An importer turns a public dataset's own annotation files into :class:`Entry` records (one per
caption: its video, split, text and, where the dataset has them, time windows) and
:class:`Problem` records (an entry it had to drop, and why). :mod:`hanet.data.importers.writer`
checks the entries once more, the same way for every format, and writes the dataset folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from hanet.errors import DataError

#: Largest annotation file read (bytes): the biggest public caption files are tens of MB.
MAX_FILE_BYTES = 2 << 30
#: Deepest JSON nesting accepted (the formats nest a few levels).
MAX_JSON_DEPTH = 64


@dataclass
class Entry:
    """One caption of one video.

    Attributes:
        video: the video's name (its file stem, as ``hanet extract`` names features).
        caption: the text, as the dataset has it.
        split: ``trn``, ``val``, ``tst`` (or another split name).
        where: the record in its file (``file:line`` or ``file: key``), for reports.
        windows: time windows in seconds where the caption happens, or None.
        duration: the video's length in seconds, when the dataset says it.
        qid: the dataset's id of this query, when it has one.
        saliency: ``(clip ids, scores per annotator)`` of the video's 2-second clips, when the
            dataset rates them (QVHighlights).
    """

    video: str
    caption: str
    split: str
    where: str
    windows: Optional[list[tuple[float, float]]] = None
    duration: Optional[float] = None
    qid: Any = None
    saliency: Optional[tuple[list[int], list[list[float]]]] = None


@dataclass
class Problem:
    """A record left out: where it is and why."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Parsed:
    """What an importer read: the entries and the records it could not use."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def add(self, other: "Parsed") -> None:
        self.entries += other.entries
        self.problems += other.problems


def _depth(obj: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_JSON_DEPTH:
            return d
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)
    return deepest


def read_text(path: Path) -> str:
    """A UTF-8 text file (a BOM is dropped); DataError naming it when it cannot be."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not an annotation file")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DataError(f"{path}: {size / 2**30:.1f} GiB, larger than any annotation file "
                            f"({MAX_FILE_BYTES / 2**30:.0f} GiB at most)")
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from None


def read_json(path: Path) -> Any:
    """A JSON file; DataError naming it (and the line) when it is not one."""
    text = read_text(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested deeper than any annotation file") from None
    if _depth(obj) > MAX_JSON_DEPTH:
        raise DataError(f"{path}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return obj


def read_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    """(``file:line``, object) of each non-empty line of a JSON-lines file."""
    for no, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise DataError(f"{where}: not a JSON value ({exc})") from None
        if _depth(obj) > MAX_JSON_DEPTH:
            raise DataError(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        yield where, obj


def read_csv(path: Path, required: Sequence[str] = ()) -> Iterator[tuple[str, dict[str, str]]]:
    """(``file:line``, row) of a CSV file with a header (the delimiter is sniffed: , ; tab).

    Raises:
        DataError: no header, or a required column missing (the columns present are named).
    """
    text = read_text(path)
    sample = text[:65536]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    cols = reader.fieldnames or []
    if not cols:
        raise DataError(f"{path}: no header row")
    missing = [c for c in required if c not in cols]
    if missing:
        raise DataError(f"{path}: no column {', '.join(repr(c) for c in missing)} (columns: {', '.join(cols)})")
    for row in reader:
        yield f"{path}:{reader.line_num}", {k: (v if v is not None else "") for k, v in row.items() if k is not None}


def number(value: Any, what: str) -> float:
    """A finite number from a JSON number or a numeric string; ValueError naming ``what``."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, not {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{what} must be a number, not {value!r}") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return float(value)


def window(value: Any, what: str = "a window") -> tuple[float, float]:
    """``[start, end]`` seconds from a two-element list; ValueError when it is not one."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{what} must be [start, end], not {value!r}")
    return number(value[0], f"{what}'s start"), number(value[1], f"{what}'s end")


def split_of_file(path: Path, names: dict[str, str], default: Optional[str] = None) -> str:
    """The split a dataset file holds, from the words in its name (``train`` -> ``trn``...).

    Raises:
        DataError: no word of ``names`` in the file name and no default.
    """
    stem = path.name.lower()
    for word, split in names.items():
        if word in stem:
            return split
    if default is not None:
        return default
    raise DataError(f"{path}: cannot tell its split from its name (expected one of "
                    f"{', '.join(repr(w) for w in names)} in it); rename it or give --split-of {path.name}=SPLIT")


__all__ = ["Entry", "Problem", "Parsed", "read_text", "read_json", "read_jsonl", "read_csv", "number", "window",
           "split_of_file", "MAX_FILE_BYTES"]
