"""What `hanet import` and `hanet prepare` make of captions people wrote: QVHighlights' queries.

    python benchmarks/bench_real_language.py --source DIR [--out benchmarks/results/qvhighlights_language.json]

DIR holds the benchmark's released annotation files (``highlight_{train,val,test}_release.jsonl``;
they are not redistributed here). The dataset is imported and prepared in a temporary folder; the
figures (counts, what the preparation flagged, the share of queries whose role graph has a verb
phrase, wall times) are written with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()}


def _run(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hanet", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, type=Path, help="folder with highlight_*_release.jsonl")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "qvhighlights_language.json",
                    help="where to write the figures")
    a = ap.parse_args(argv)
    files = sorted(a.source.glob("highlight_*_release.jsonl"))
    if not files:
        print(f"error: {a.source}: no highlight_*_release.jsonl", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        ds = Path(tmp) / "qvh"
        t_import = _run(["import", "qvhighlights", *map(str, files), "--out", str(ds)])
        t_prepare = _run(["prepare", "--captions", str(ds / "ref_captions.json"), "--train-names", str(ds / "trn_names.npy"),
                          "--out", str(ds / "annotation"), "--workers", "1", "--no-progress"])
        rep = json.loads((ds / "annotation" / "prepare_report.json").read_text())
        graphs = json.loads((ds / "annotation" / "sent2rolegraph.augment.json").read_text())
        imp = json.loads((ds / "import_report.json").read_text())
    with_verb = sum(any(n.get("role") == "V" for n in g[0].values()) for g in graphs.values())
    fig = {
        "machine": _machine(),
        "command": "python benchmarks/bench_real_language.py --source DIR (QVHighlights release files: "
                   + ", ".join(f.name for f in files) + ")",
        "date": time.strftime("%Y-%m-%d"),
        "import_seconds": round(t_import, 1),
        "prepare_seconds": round(t_prepare, 1),
        "import": {k: imp[k] for k in ("splits", "dropped") if k in imp},
        "captions": rep["num_captions"],
        "distinct_captions": rep["num_unique_captions"],
        "vocabulary": rep["vocab_size"],
        "verb_concepts": rep["num_verb_concepts"],
        "noun_concepts": rep["num_noun_concepts"],
        "empty_captions": rep["num_empty_captions"],
        "captions_without_phrase_node": rep["num_no_node_captions"],
        "long_captions": rep["long_captions"],
        "non_ascii_captions": rep["non_ascii_captions"],
        "mean_verb_nodes": round(rep["mean_verb_nodes"], 3),
        "mean_arg_nodes": round(rep["mean_arg_nodes"], 3),
        "distinct_captions_with_verb_phrase": with_verb,
        "verb_phrase_share": round(100 * with_verb / max(len(graphs), 1), 2),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(fig, indent=2) + "\n")
    print(json.dumps(fig, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
