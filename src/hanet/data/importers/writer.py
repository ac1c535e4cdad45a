"""Checks every imported entry the same way, whatever its format, and writes the dataset folder.

The folder the rest of the pipeline takes unchanged::

    OUT/ref_captions.json       {video: [caption, ...]} (the released MSR-VTT/VATEX format)
    OUT/trn_names.npy ...       each split's videos (np.save of an array of str)
    OUT/moments.jsonl           where the dataset has time windows: one line per caption, the
                                moment benchmark's ground-truth format (qid, query, vid,
                                duration, relevant_windows; hanet.moment_metrics)
    OUT/dataset.yaml            the dataset description `hanet train` reads, naming the
                                features file `hanet extract` writes and the files of
                                `hanet prepare --out OUT/ann`
    OUT/import_report.json      counts per split, every entry left out and why, videos missing

Checks: a caption empty once normalised, a window that starts before 0, ends before it starts or
past the video's duration, a query id seen twice, a video in two splits (its entries in the
later split are left out). Every problem names the file and the record. With ``strict`` any
problem is an error and nothing is written.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from hanet.data.importers.base import Entry, Parsed, Problem
from hanet.errors import DataError

#: Problems printed in the summary (all of them go to import_report.json).
SHOWN_PROBLEMS = 20
#: Window ends this far past the duration (seconds) count as at its end (rounding in the files).
DURATION_SLACK = 0.05
OUTPUTS = ("ref_captions.json", "moments.jsonl", "dataset.yaml", "import_report.json")


@dataclass
class ImportReport:
    """What an import wrote and left out.

    Attributes:
        format: the dataset format.
        out_dir: the dataset folder.
        splits: split -> {"videos", "captions", "moments"}.
        dropped: reason -> entries left out.
        problems: every record left out, ``file:record: reason``.
        missing_videos: videos with no file in the videos folder (when one was given).
        sources: the files read.
    """

    format: str
    out_dir: str
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    missing_videos: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"imported {self.format} into {self.out_dir}"]
        for split, c in self.splits.items():
            lines.append(f"  {split:<4} {c['videos']:>7,} videos {c['captions']:>8,} captions"
                         + (f" {c['moments']:>8,} with time windows" if c.get("moments") else ""))
        if self.problems:
            lines.append(f"  left out {len(self.problems):,} record(s): "
                         + ", ".join(f"{n:,} {why}" for why, n in sorted(self.dropped.items(), key=lambda kv: -kv[1])))
            lines += [f"    {p}" for p in self.problems[:SHOWN_PROBLEMS]]
            if len(self.problems) > SHOWN_PROBLEMS:
                lines.append(f"    ... {len(self.problems) - SHOWN_PROBLEMS:,} more in import_report.json")
        if self.missing_videos:
            lines.append(f"  {len(self.missing_videos):,} video(s) have no file in the videos folder: "
                         + ", ".join(self.missing_videos[:10]) + (" ..." if len(self.missing_videos) > 10 else ""))
        return "\n".join(lines)


def _reason(message: str) -> str:
    """A problem's kind, for the counts (its message without the particulars)."""
    for key in ("empty", "ends before it starts", "starts before 0", "past the video's duration", "already",
                "in two splits", "no captions", "number", "split"):
        if key in message:
            return key
    return "malformed"


def check(parsed: Parsed, clip_windows: bool = False) -> tuple[list[Entry], list[Problem]]:
    """The entries that pass every check, and the problems (the importer's and these).

    Args:
        parsed: what an importer read.
        clip_windows: cut windows that run past the video's duration back to it instead of
            leaving their entries out.
    """
    from hanet.text.normalize import normalize_caption

    problems = list(parsed.problems)
    kept: list[Entry] = []
    split_of: dict[str, tuple[str, str]] = {}
    qids: dict[Any, str] = {}
    for e in parsed.entries:
        if not normalize_caption(e.caption):
            problems.append(Problem(e.where, f"the caption of video {e.video!r} is empty once normalised "
                                             f"({e.caption[:40]!r})"))
            continue
        if e.duration is not None and not e.duration > 0:
            problems.append(Problem(e.where, f"video {e.video!r}: duration {e.duration} is not positive"))
            continue
        bad = None
        windows = []
        for a, b in e.windows or []:
            if a < 0:
                bad = f"window [{a:g}, {b:g}] starts before 0"
            elif b < a:
                bad = f"window [{a:g}, {b:g}] ends before it starts"
            elif e.duration is not None and b > e.duration + DURATION_SLACK and not clip_windows:
                bad = f"window [{a:g}, {b:g}] ends past the video's duration {e.duration:g} s"
            if bad:
                break
            if e.duration is not None:
                b = min(b, e.duration)
                if b <= a and clip_windows:
                    bad = f"window [{a:g}, {b:g}] lies past the video's duration {e.duration:g} s"
                    break
            if (a, b) not in windows:  # annotators' windows cut to the same one count once
                windows.append((a, b))
        if bad:
            problems.append(Problem(e.where, bad))
            continue
        if e.qid is not None:
            if e.qid in qids:
                problems.append(Problem(e.where, f"query id {e.qid!r} already at {qids[e.qid]}"))
                continue
            qids[e.qid] = e.where
        first = split_of.setdefault(e.video, (e.split, e.where))
        if first[0] != e.split:
            problems.append(Problem(e.where, f"video {e.video!r} is in two splits: {first[0]} (at {first[1]}) and "
                                             f"{e.split}; left in {first[0]}"))
            continue
        kept.append(Entry(e.video, e.caption, e.split, e.where, windows if e.windows else None, e.duration, e.qid,
                          e.saliency))
    return kept, problems


def find_videos(folder: Path) -> dict[str, Path]:
    """Video files of a folder (and its subfolders), by file stem."""
    from hanet.video.decode import VIDEO_EXTENSIONS

    if not folder.is_dir():
        raise DataError(f"{folder}: no such videos folder")
    out: dict[str, Path] = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = Path(root) / f
            if p.suffix.lower() in VIDEO_EXTENSIONS:
                out.setdefault(p.stem, p)
    return out


def _prepare_out(out: Path) -> None:
    """The output folder: new, empty, or an earlier import's (whose files are replaced)."""
    from hanet.io import ensure_dir

    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "import_report.json").is_file():
        raise DataError(f"{out}: the folder holds other files; import into a new or empty folder")
    ensure_dir(out, "dataset folder")


def write(fmt: str, parsed: Parsed, out: Path, sources: list[Path], videos: Optional[Path] = None,
          strict: bool = False, clip_windows: bool = False, probe_durations: bool = True) -> ImportReport:
    """Check the entries and write the dataset folder (see the module docstring).

    Raises:
        DataError: ``strict`` and a record had a problem (all of them listed; nothing written),
            no entry left, or an output folder that holds other files.
    """
    from hanet.io import atomic_save_npy, atomic_write_json, atomic_write_text
    from hanet.moment_metrics import MomentQuery, write_ground_truth

    files = find_videos(videos) if videos is not None else None
    if files is not None and probe_durations:
        _probe_durations(parsed.entries, files)
    entries, problems = check(parsed, clip_windows)
    if strict and problems:
        raise DataError(f"{len(problems)} bad record(s) (--strict: nothing written):\n  "
                        + "\n  ".join(str(p) for p in problems[:50])
                        + (f"\n  ... {len(problems) - 50} more" if len(problems) > 50 else ""))
    if not entries:
        raise DataError("no usable entry in " + ", ".join(str(s) for s in sources)
                        + (":\n  " + "\n  ".join(str(p) for p in problems[:20]) if problems else ""))
    _prepare_out(out)
    captions: dict[str, list[str]] = {}
    by_split: dict[str, list[str]] = {}
    moments: list[MomentQuery] = []
    counts: dict[str, Counter] = {}
    next_qid = 0
    used_qids = {e.qid for e in entries if e.qid is not None}
    for e in entries:
        if e.video not in captions:
            by_split.setdefault(e.split, []).append(e.video)
        captions.setdefault(e.video, []).append(e.caption)
        c = counts.setdefault(e.split, Counter())
        c["captions"] += 1
        if e.windows:
            c["moments"] += 1
            qid = e.qid
            if qid is None:
                while next_qid in used_qids:
                    next_qid += 1
                qid, next_qid = next_qid, next_qid + 1
            clips, scores = e.saliency or (None, None)
            moments.append(MomentQuery(qid, e.video, e.duration, list(e.windows), e.caption, clips, scores))
    report = ImportReport(fmt, str(out), sources=[str(s) for s in sources])
    for split, names in by_split.items():
        report.splits[split] = {"videos": len(names), "captions": counts[split]["captions"],
                                "moments": counts[split]["moments"]}
        atomic_save_npy(out / f"{split}_names.npy", np.array(names, dtype=str))
    atomic_write_json(out / "ref_captions.json", captions)
    if moments:
        write_ground_truth(out / "moments.jsonl", moments)
    elif (out / "moments.jsonl").exists():
        (out / "moments.jsonl").unlink()  # an earlier import's, not this one's
    atomic_write_text(out / "dataset.yaml", dataset_yaml(fmt, list(by_split), bool(moments)))
    report.problems = [str(p) for p in problems]
    report.dropped = dict(Counter(_reason(p.message) for p in problems))
    if files is not None:
        report.missing_videos = sorted(v for v in captions if v not in files)
    atomic_write_json(out / "import_report.json", asdict(report))
    return report


def _probe_durations(entries: list[Entry], files: dict[str, Path]) -> None:
    """Durations the annotations do not give, read from the video files' headers."""
    from hanet.video.decode import probe

    need = {e.video for e in entries if e.duration is None and e.windows}
    known: dict[str, Optional[float]] = {}
    for v in sorted(need):
        p = files.get(v)
        if p is None:
            continue
        try:
            known[v] = probe(p).duration
        except DataError:
            known[v] = None  # an unreadable video: its windows are not checked against a length
    for e in entries:
        if e.duration is None and known.get(e.video):
            e.duration = known[e.video]


def dataset_yaml(fmt: str, splits: list[str], moments: bool) -> str:
    """The dataset description, relative to its folder: features from ``hanet extract --out
    features.hdf5``, vocabulary, concepts and role graphs from ``hanet prepare --out ann``."""
    lines = [f"# written by `hanet import {fmt}`; paths are relative to this file.",
             "# Next: hanet extract VIDEOS --out features.hdf5 (here), then",
             "#       hanet prepare --captions ref_captions.json --train-names trn_names.npy --out ann",
             "splits:"]
    for s in splits:
        lines.append(f"  {s}: {{names: {s}_names.npy, features: features.hdf5}}")
    lines += ["captions: ann/ref_captions.json", "rolegraphs: ann/sent2rolegraph.augment.json",
              "word2int: ann/word2int.json",
              "concepts: {verb: ann/verb_gt.json, noun: ann/noun_gt.json, verb_all: ann/verb_gt_all.json, "
              "noun_all: ann/noun_gt_all.json}"]
    if moments:
        lines.append("moments: moments.jsonl")
    return "\n".join(lines) + "\n"


__all__ = ["ImportReport", "check", "write", "find_videos", "dataset_yaml", "OUTPUTS"]
