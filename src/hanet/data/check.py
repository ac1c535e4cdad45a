"""``hanet check-data``: validate a whole dataset in the released format and summarise it.

Every split is loaded the way training and evaluation load it (so the same errors appear,
all offenders listed), then every video's features are read once to find empty, NaN or
inconsistent ones. The summary names the files and counts; the exit status is 1 if any
problem was found.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

import numpy as np


def check_dataset(path: str, preset: str = "msrvtt", scan_features: bool = True, progress: bool = True) -> dict[str, Any]:
    """Validate a dataset.

    Args:
        path: dataset folder or description file.
        preset: config whose limits (frames, words, slots, concept counts) apply.
        scan_features: read every video's features (slow on big datasets, thorough).
        progress: show a progress bar while scanning.

    Returns:
        ``{"splits": {split: summary}, "problems": [str, ...]}``.
    """
    from tqdm import tqdm

    from hanet.config import get_preset
    from hanet.data.dataset import RetrievalData, words_in_vocab
    from hanet.data.formats import DatasetSpec, load_vocab
    from hanet.data.schema import split_overlap
    from hanet.errors import DataError

    spec = DatasetSpec.load(path)
    report: dict[str, Any] = {"dataset": str(spec.source), "splits": {}, "problems": []}
    missing = spec.missing_files()
    if missing:  # every missing file at once; the splits that have all theirs are still checked
        report["problems"].append(f"{len(missing)} file(s) missing:\n    " + "\n    ".join(missing))
        if not spec.word2int.is_file():
            return report
    cfg = get_preset(preset).model
    try:
        cfg.text.num_words = words_in_vocab(spec)
    except DataError as exc:  # every split's records are read through the vocabulary: nothing more to check
        report["problems"].append(str(exc))
        return report
    vocab = load_vocab(spec.word2int)
    overlap = split_overlap(spec.split_names())  # a names file that does not read is reported with its split below
    if overlap:
        report["problems"].append(f"{len(overlap)} video(s) in more than one split: {', '.join(overlap[:8])}"
                                  + (f", ... ({len(overlap) - 8} more)" if len(overlap) > 8 else ""))
    dims_seen: dict[str, list[int]] = {}
    for split in spec.splits:
        if spec.missing_files([split], shared=False):
            continue
        try:
            data = RetrievalData(spec, split, cfg, with_concepts=split == "trn" and spec.has_concepts())
        except DataError as exc:
            report["problems"].append(str(exc))
            continue
        dims = data.features.dims()
        dims_seen[split] = dims
        caps = [c for n in data.names for c in data.captions[n]]
        lengths = np.array([len(c.split()) for c in caps]) if caps else np.zeros(0)
        words = Counter(w for c in caps for w in c.split())
        unknown = sum(n for w, n in words.items() if w not in vocab)
        no_verb = sum(1 for c in set(caps) if not any(node.get("role") == "V" for node in data.graphs[c][0].values()))
        s: dict[str, Any] = {
            "videos": len(data.names), "captions": len(caps), "unique_captions": len(data.unique_captions),
            "feature_files": [str(f) for f in data.features.files], "feature_dims": dims,
            "empty_captions": len(data.empty_captions),
            "captions_longer_than_max_words": int((lengths > cfg.max_words_in_sent).sum()),
            "mean_words": float(lengths.mean()) if len(lengths) else 0.0,
            "unknown_word_rate": unknown / max(1, sum(words.values())),
            "graphs_without_verb": no_verb,
        }
        odd = [f"{n}: {why}" for n in data.names for why in data.features.attr_problems(n)]
        if odd:
            report["problems"].append(f"split {split}: {len(odd)} video attribute(s) unusable (search would show no "
                                      f"times for them):\n    " + "\n    ".join(odd[:20])
                                      + (f"\n    ... ({len(odd) - 20} more)" if len(odd) > 20 else ""))
        if scan_features:
            frames = []
            bad = []
            for name in tqdm(data.names, desc=f"scanning {split}", unit="video", disable=not progress, leave=False):
                try:
                    frames.append(data.features.get(name).shape[0])
                except DataError as exc:
                    bad.append(str(exc))
            if bad:
                report["problems"].append(f"split {split}: {len(bad)} unusable video(s):\n    " + "\n    ".join(bad[:20])
                                          + (f"\n    ... ({len(bad) - 20} more)" if len(bad) > 20 else ""))
            if frames:
                f = np.array(frames)
                s["frames"] = {"min": int(f.min()), "median": float(np.median(f)), "max": int(f.max()),
                               "shorter_than_max_frames": int((f < cfg.max_frames_in_video).sum())}
        report["splits"][split] = s
    if len({tuple(d) for d in dims_seen.values()}) > 1:
        report["problems"].append(f"feature dims differ between splits: {dims_seen}")
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="dataset folder, path.json or dataset.json/yaml")
    p.add_argument("--preset", default="msrvtt", help="config whose limits apply (msrvtt, vatex, synth)")
    p.add_argument("--quick", action="store_true", help="skip reading every video's features")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    import json

    rep = check_dataset(args.data, args.preset, scan_features=not args.quick)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(f"dataset {rep['dataset']}")
        for split, s in rep["splits"].items():
            fr = s.get("frames")
            print(f"  {split}: {s['videos']} videos, {s['captions']} captions ({s['unique_captions']} unique), "
                  f"features {s['feature_dims']}" + (f", frames {fr['min']}-{fr['max']} (median {fr['median']:g})"
                                                     if fr else ""))
            print(f"       mean {s['mean_words']:.1f} words, {s['captions_longer_than_max_words']} longer than the limit, "
                  f"{s['empty_captions']} empty, unknown words {100 * s['unknown_word_rate']:.2f}%, "
                  f"{s['graphs_without_verb']} graphs without a verb")
        if rep["problems"]:
            print(f"{len(rep['problems'])} problem(s):", file=sys.stderr)
            for p in rep["problems"]:
                print(f"  - {p}", file=sys.stderr)
        else:
            print("no problems found")
    return 1 if rep["problems"] else 0
