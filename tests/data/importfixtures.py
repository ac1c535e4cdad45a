"""Small datasets in each public format, written from a `hanet synth` world: its clips copied
under the names each dataset gives its videos, its captions and true action spans written in
each dataset's own annotation format (the real files are not redistributable)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np


def world_facts(world: Path) -> tuple[dict[str, list[str]], dict[str, str], dict[str, dict[str, Any]]]:
    """captions, split of each clip (trn/val/tst; tst_novel left out), annotations."""
    caps = json.loads((world / "ref_captions.json").read_text())
    ann = json.loads((world / "annotations.json").read_text())["videos"]
    split = {}
    for s in ("trn", "val", "tst"):
        for n in np.load(world / f"{s}_names.npy").tolist():
            split[n] = s
    return caps, split, ann


def span(a: dict[str, Any]) -> tuple[float, float]:
    """The main object's actions, first start to last end (seconds)."""
    acts = [x for x in a["actions"] if x["subject"] == 0]
    return float(acts[0]["start_s"]), float(acts[-1]["end_s"])


def copy_videos(world: Path, out: Path, rename: dict[str, str], ext: str = ".mp4") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for old, new in rename.items():
        shutil.copy(world / "videos" / f"{old}.mp4", out / f"{new}{ext}")
    return out


def msrvtt(world: Path, d: Path) -> tuple[list[Path], dict[str, str]]:
    caps, split, ann = world_facts(world)
    names = {n: n for n in split}
    for fname, splits in (("train_val_videodatainfo.json", ("trn", "val")), ("test_videodatainfo.json", ("tst",))):
        vids = [n for n in split if split[n] in splits]
        data = {"info": {"year": 2016}, "videos": [
            {"category": 0, "url": "", "video_id": n, "start time": 10.0, "end time": 10.0 + ann[n]["duration_s"],
             "split": {"trn": "train", "val": "validate", "tst": "test"}[split[n]], "id": i}
            for i, n in enumerate(vids)],
            "sentences": [{"caption": c, "video_id": n, "sen_id": k} for n in vids for k, c in enumerate(caps[n])]}
        (d / fname).write_text(json.dumps(data))
    return [d / "train_val_videodatainfo.json", d / "test_videodatainfo.json"], names


def msrvtt_1ka_lists(world: Path, d: Path) -> tuple[Path, Path]:
    caps, split, _ = world_facts(world)
    with open(d / "MSRVTT_train.9k.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id"])
        w.writerows([[n] for n in split if split[n] in ("trn", "val")])
    with open(d / "MSRVTT_JSFUSION_test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", "key", "vid_key", "video_id", "sentence"])
        for i, n in enumerate(n for n in split if split[n] == "tst"):
            w.writerow([i, f"ret{i}", f"msr{n[5:]}", n, caps[n][3]])
    return d / "MSRVTT_train.9k.csv", d / "MSRVTT_JSFUSION_test.csv"


def vatex(world: Path, d: Path) -> tuple[list[Path], dict[str, str]]:
    caps, split, ann = world_facts(world)
    names = {n: f"yt{int(n[5:]):09d}_{10:06d}_{10 + int(ann[n]['duration_s']):06d}" for n in split}
    files = []
    for fname, s in (("vatex_training_v1.0.json", "trn"), ("vatex_validation_v1.0.json", "val"),
                     ("vatex_public_test_english_v1.1.json", "tst")):
        (d / fname).write_text(json.dumps([{"videoID": names[n], "enCap": caps[n], "chCap": ["一个视频"] * 10}
                                           for n in split if split[n] == s]))
        files.append(d / fname)
    return files, names


def activitynet(world: Path, d: Path) -> tuple[list[Path], dict[str, str]]:
    caps, split, ann = world_facts(world)
    names = {n: f"v_{n.upper()}x" for n in split}
    files = []
    for fname, s in (("train.json", "trn"), ("val_1.json", "val"), ("val_2.json", "tst")):
        data = {names[n]: {"duration": ann[n]["duration_s"], "timestamps": [list(span(ann[n]))] * len(caps[n]),
                           "sentences": caps[n]} for n in split if split[n] == s}
        (d / fname).write_text(json.dumps(data))
        files.append(d / fname)
    return files, names


def charades_sta(world: Path, d: Path) -> tuple[list[Path], dict[str, str]]:
    caps, split, ann = world_facts(world)
    names = {n: f"C{int(n[5:]):04d}" for n in split}
    files = []
    for fname, splits in (("charades_sta_train.txt", ("trn", "val")), ("charades_sta_test.txt", ("tst",))):
        lines = [f"{names[n]} {span(ann[n])[0]:.1f} {span(ann[n])[1]:.1f}##{c}."
                 for n in split if split[n] in splits for c in caps[n][:3]]
        (d / fname).write_text("\n".join(lines) + "\n")
        files.append(d / fname)
    with open(d / "Charades_v1_train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "subject", "scene", "length"])
        w.writerows([[names[n], "X", "Kitchen", ann[n]["duration_s"]] for n in split])
    return files + [d / "Charades_v1_train.csv"], names


def didemo(world: Path, d: Path) -> tuple[list[Path], dict[str, str]]:
    caps, split, _ = world_facts(world)
    names = {n: f"{int(n[5:]) + 1000}@N00_{int(n[5:]) * 7}_ab12" for n in split}
    files = []
    for k, (fname, s) in enumerate((("train_data.json", "trn"), ("val_data.json", "val"), ("test_data.json", "tst"))):
        data = [{"annotation_id": 10000 * k + i, "description": c, "video": names[n] + ".mov",
                 "times": [[0, 0], [0, 0], [0, 1], [0, 0]], "dl_link": ""}
                for i, (n, c) in enumerate((n, c) for n in split if split[n] == s for c in caps[n][:3])]
        (d / fname).write_text(json.dumps(data))
        files.append(d / fname)
    return files, names


def qvhighlights(world: Path, d: Path) -> tuple[list[Path], dict[str, str]]:
    caps, split, ann = world_facts(world)
    names = {n: f"yt{int(n[5:]):08d}x_60.0_{60 + ann[n]['duration_s']:.1f}" for n in split}
    files, qid = [], 100
    for fname, s in (("highlight_train_release.jsonl", "trn"), ("highlight_val_release.jsonl", "val"),
                     ("highlight_test_release.jsonl", "tst")):
        lines = []
        for n in (n for n in split if split[n] == s):
            for c in caps[n][:2]:
                rec = {"qid": qid, "query": c, "duration": ann[n]["duration_s"], "vid": names[n]}
                if s != "tst":
                    rec.update(relevant_windows=[list(span(ann[n]))], relevant_clip_ids=[0],
                               saliency_scores=[[4, 3, 2]])
                lines.append(json.dumps(rec))
                qid += 1
        (d / fname).write_text("\n".join(lines) + "\n")
        files.append(d / fname)
    return files, names


def table_csv(world: Path, d: Path) -> tuple[list[Path], dict[str, str]]:
    caps, split, ann = world_facts(world)
    names = {n: f"clip-{n}" for n in split}
    with open(d / "captions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip", "text", "t0", "t1", "part"])
        for n in split:
            for c in caps[n][:4]:
                w.writerow([names[n], c, *span(ann[n]), {"trn": "train", "val": "validation", "tst": "test"}[split[n]]])
    return [d / "captions.csv"], names


def table_jsonl(world: Path, d: Path) -> tuple[list[Path], dict[str, str]]:
    caps, split, ann = world_facts(world)
    names = {n: f"J{n}" for n in split}
    with open(d / "captions.jsonl", "w") as f:
        for n in split:
            for c in caps[n][:4]:
                f.write(json.dumps({"video": names[n], "caption": c, "split": split[n], "start": span(ann[n])[0],
                                    "end": span(ann[n])[1], "duration": ann[n]["duration_s"]}) + "\n")
    return [d / "captions.jsonl"], names


#: format -> (writer, import keyword arguments, has windows)
FORMATS: dict[str, tuple[Callable, dict[str, Any], bool]] = {
    "msrvtt": (msrvtt, {}, False),
    "vatex": (vatex, {}, False),
    "activitynet": (activitynet, {}, True),
    "charades-sta": (charades_sta, {}, True),
    "didemo": (didemo, {"clip_windows": True}, True),
    "qvhighlights": (qvhighlights, {}, True),
    "csv": (table_csv, {"columns": dict(video="clip", caption="text", start="t0", end="t1", split="part")}, True),
    "jsonl": (table_jsonl, {"columns": dict(start="start", end="end", split="split", duration="duration")}, True),
}
