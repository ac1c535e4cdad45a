"""``hanet import``: public datasets in their own annotation formats -> a hanet dataset folder.

One module per dataset family reads its files into :class:`~hanet.data.importers.base.Entry`
records; :mod:`hanet.data.importers.writer` checks them the same way for all and writes the
folder (captions, split names, time windows as the moment benchmark's ground truth, a dataset
description). ``docs/datasets.md`` walks each dataset from its download to a searchable index.

Example:
    >>> from hanet.data.importers import import_dataset  # doctest: +SKIP
    >>> report = import_dataset("activitynet", ["train.json", "val_1.json", "val_2.json"], "data/anet")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from hanet.data.importers.base import Parsed
from hanet.data.importers.table import Columns
from hanet.data.importers.writer import ImportReport, write
from hanet.errors import DataError

#: format -> what its sources are (for --help and errors)
FORMATS: dict[str, str] = {
    "msrvtt": "train_val_videodatainfo.json and/or test_videodatainfo.json (or MSRVTT_data.json)",
    "vatex": "vatex_training_v1.0.json, vatex_validation_v1.0.json, ... (split from the file name)",
    "activitynet": "ActivityNet Captions train.json, val_1.json, val_2.json",
    "charades-sta": "charades_sta_train.txt, charades_sta_test.txt (and Charades_v1_*.csv for video lengths)",
    "didemo": "DiDeMo train_data.json, val_data.json, test_data.json",
    "qvhighlights": "highlight_{train,val,test}_release.jsonl",
    "csv": "a CSV with a header: video, caption, optional start/end/duration/split columns",
    "jsonl": "JSON lines with the same fields as csv",
}


@dataclass
class ImportOptions:
    """Format options beyond the sources.

    Attributes:
        split: ``msrvtt``: ``full`` (the release's splits) or ``1k-a``.
        train_list, test_list: ``msrvtt --split 1k-a``: the 9k training list and the JSFusion
            1k test list.
        val_from_train: ``msrvtt --split 1k-a``: hold out this many training videos as ``val``.
        split_of: file name -> split, where the name does not say it.
        columns: ``csv``/``jsonl`` columns.
    """

    split: str = "full"
    train_list: Optional[Path] = None
    test_list: Optional[Path] = None
    val_from_train: int = 0
    split_of: dict[str, str] = field(default_factory=dict)
    columns: Columns = field(default_factory=Columns)


def parse(fmt: str, sources: Sequence[Path], opts: ImportOptions) -> Parsed:
    """Read a dataset's files into entries (no checks beyond the format's own)."""
    from hanet.data.importers import activitynet, charades, didemo, msrvtt, qvhighlights, table, vatex

    srcs = [Path(s) for s in sources]
    if not srcs:
        raise DataError(f"{fmt}: no annotation file given ({FORMATS.get(fmt, '')})")
    if fmt == "msrvtt":
        return msrvtt.parse(srcs, opts.split, opts.train_list, opts.test_list, opts.val_from_train)
    if fmt in ("csv", "jsonl"):
        return table.parse(srcs, opts.columns, jsonl=fmt == "jsonl")
    readers = {"vatex": vatex.parse, "activitynet": activitynet.parse, "charades-sta": charades.parse,
               "didemo": didemo.parse, "qvhighlights": qvhighlights.parse}
    if fmt not in readers:
        raise DataError(f"unknown dataset format {fmt!r}; one of {', '.join(FORMATS)}")
    return readers[fmt](srcs, opts.split_of)


def import_dataset(fmt: str, sources: Sequence[str | Path], out: str | Path, *, videos: Optional[str | Path] = None,
                   strict: bool = False, clip_windows: bool = False,
                   options: Optional[ImportOptions] = None) -> ImportReport:
    """Import a dataset: parse its files, check every entry, write the folder.

    Args:
        fmt: a key of :data:`FORMATS`.
        sources: its annotation files.
        out: the dataset folder (new, empty, or an earlier import's).
        videos: the folder of its video files: videos without a file are named in the report,
            and lengths the annotations lack are read from the files.
        strict: any bad record is an error (nothing written).
        clip_windows: windows running past the video's end are cut to it rather than left out.
        options: format options.

    Raises:
        DataError: unreadable or malformed files (naming file and record), or, with ``strict``,
            any bad record.
    """
    srcs = [Path(s) for s in sources]
    parsed = parse(fmt, srcs, options or ImportOptions())
    return write(fmt, parsed, Path(out), srcs, Path(videos) if videos else None, strict=strict,
                 clip_windows=clip_windows)


__all__ = ["FORMATS", "ImportOptions", "ImportReport", "import_dataset", "parse"]
