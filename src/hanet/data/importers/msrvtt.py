"""MSR-VTT in its own release format, with the full split or the 1k-A split.

``train_val_videodatainfo.json`` and ``test_videodatainfo.json`` (or the merged
``MSRVTT_data.json`` that later code ships) hold ``{"videos": [{"video_id": "video0", "split":
"train" | "validate" | "test", "start time", "end time", ...}], "sentences": [{"video_id",
"caption", "sen_id"}]}``: 10,000 clips with 20 captions each. The full split is the release's
(6,513 / 497 / 2,990). The 1k-A split (Yu et al., JSFusion, ECCV 2018; what most papers since
report) trains on 9,000 videos and tests on 1,000 with one caption each; its lists come as
``MSRVTT_train.9k.csv`` (a ``video_id`` column) or a text file of ids, and
``MSRVTT_JSFUSION_test.csv`` (``video_id`` and ``sentence``, the one test caption). 1k-A has no
validation split: with ``--val-from-train N`` the last N training videos (in list order) make one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from hanet.data.importers.base import Entry, Parsed, Problem, read_csv, read_json, read_text
from hanet.errors import DataError

SPLITS = {"train": "trn", "validate": "val", "val": "val", "test": "tst"}


def _info(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, list[tuple[int, str, str]]], Parsed]:
    """Videos (id -> record) and captions (id -> [(sen_id, caption, where)]) of one info file."""
    data = read_json(path)
    bad = Parsed()
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list) or not isinstance(data.get("sentences"), list):
        raise DataError(f"{path}: not an MSR-VTT videodatainfo file (expected an object with 'videos' and "
                        f"'sentences' lists)")
    videos: dict[str, dict[str, Any]] = {}
    for i, v in enumerate(data["videos"]):
        where = f"{path}: videos[{i}]"
        if not isinstance(v, dict) or not isinstance(v.get("video_id"), str) or not v["video_id"]:
            bad.problems.append(Problem(where, "no 'video_id' string"))
            continue
        videos[v["video_id"]] = {**v, "_where": where}
    caps: dict[str, list[tuple[int, str, str]]] = {}
    for i, s in enumerate(data["sentences"]):
        where = f"{path}: sentences[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("video_id"), str) or not isinstance(s.get("caption"), str):
            bad.problems.append(Problem(where, "needs a 'video_id' and a 'caption' string"))
            continue
        sid = s.get("sen_id", i)
        caps.setdefault(s["video_id"], []).append((sid if isinstance(sid, int) else i, s["caption"], where))
    return videos, caps, bad


def _duration(v: dict[str, Any]) -> Optional[float]:
    try:
        d = float(v.get("end time")) - float(v.get("start time"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return d if d > 0 else None


def _id_list(path: Path) -> tuple[list[str], dict[str, str]]:
    """Video ids of a split list (CSV with ``video_id``, else one id per line) and, when the
    CSV has a ``sentence`` column, the caption of each."""
    if path.suffix.lower() in (".csv", ".tsv"):
        ids, sentence = [], {}
        for where, row in read_csv(path, required=("video_id",)):
            vid = row["video_id"].strip()
            if vid:
                ids.append(vid)
                if row.get("sentence", "").strip():
                    sentence[vid] = row["sentence"]
        return ids, sentence
    return [ln.strip() for ln in read_text(path).splitlines() if ln.strip()], {}


def parse(sources: list[Path], split: str = "full", train_list: Optional[Path] = None,
          test_list: Optional[Path] = None, val_from_train: int = 0) -> Parsed:
    """Entries of MSR-VTT's info files under the full or the 1k-A split."""
    out = Parsed()
    videos: dict[str, dict[str, Any]] = {}
    caps: dict[str, list[tuple[int, str, str]]] = {}
    for src in sources:
        v, c, bad = _info(src)
        out.add(bad)
        videos.update(v)
        for k, items in c.items():
            caps.setdefault(k, []).extend(items)
    for k in caps:
        caps[k].sort(key=lambda t: t[0])
    if split == "full":
        for vid, v in videos.items():
            sp = SPLITS.get(str(v.get("split", "")).lower())
            if sp is None:
                out.problems.append(Problem(v["_where"], f"split {v.get('split')!r} is not train, validate or test"))
                continue
            for _, cap, where in caps.get(vid, []):
                out.entries.append(Entry(vid, cap, sp, where, duration=_duration(v)))
        return out
    if split != "1k-a":
        raise DataError(f"msrvtt --split must be full or 1k-a, not {split!r}")
    if train_list is None or test_list is None:
        raise DataError("msrvtt --split 1k-a needs --train-list (MSRVTT_train.9k.csv or a list of ids) and "
                        "--test-list (MSRVTT_JSFUSION_test.csv)")
    trn_ids, _ = _id_list(train_list)
    tst_ids, sentence = _id_list(test_list)
    if val_from_train:
        if not 0 < val_from_train < len(trn_ids):
            raise DataError(f"--val-from-train {val_from_train}: the training list has {len(trn_ids)} videos")
        val_ids, trn_ids = trn_ids[-val_from_train:], trn_ids[:-val_from_train]
    else:
        val_ids = []
    for sp, ids, lst in (("trn", trn_ids, train_list), ("val", val_ids, train_list)):
        for vid in ids:
            if vid not in caps:
                out.problems.append(Problem(f"{lst}: {vid}", "no captions for this video in the info files"))
            for _, cap, where in caps.get(vid, []):
                out.entries.append(Entry(vid, cap, sp, where, duration=_duration(videos.get(vid, {}))))
    for vid in tst_ids:
        if vid in sentence:  # the 1k-A protocol: one caption per test video
            out.entries.append(Entry(vid, sentence[vid], "tst", f"{test_list}: {vid}",
                                     duration=_duration(videos.get(vid, {}))))
        elif caps.get(vid):
            _, cap, where = caps[vid][0]
            out.entries.append(Entry(vid, cap, "tst", where, duration=_duration(videos.get(vid, {}))))
        else:
            out.problems.append(Problem(f"{test_list}: {vid}", "no caption for this test video"))
    return out
