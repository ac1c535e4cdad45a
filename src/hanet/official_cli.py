"""``hanet export-official``: a trained run in the authors' format (checkpoint + model.json).

Examples::

    hanet export-official runs/msrvtt epoch.best.th               # + epoch.best.model.json
    hanet export-official runs/msrvtt out.th --model-json model.json --checkpoint runs/msrvtt/checkpoints/last.pt

The authors' evaluation of the exported files gives the metrics ``hanet evaluate`` gives for the
run (their ``multilevel_match.py ... --resume_file out.th --eval_set tst``).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory written by `hanet train`")
    p.add_argument("out", metavar="OUT.th", help="the checkpoint to write (the authors' epoch.N.th format)")
    p.add_argument("--checkpoint", help="checkpoint of the run (default: best.pt, else last.pt)")
    p.add_argument("--model-json", metavar="FILE", help="where the authors' model.json goes "
                   "(default: OUT's stem + .model.json)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hanet.model.official import export_official
    from hanet.run import RunDir, model_from_checkpoint

    ckpt = Path(args.checkpoint) if args.checkpoint else RunDir(args.run).default_checkpoint()
    model, cfg, _ = model_from_checkpoint(ckpt, device="cpu")
    out = Path(args.out)
    cfg_path = Path(args.model_json) if args.model_json else out.with_name(out.stem + ".model.json")
    export_official(model, cfg, str(out), str(cfg_path))
    print(f"wrote {out} and {cfg_path} (the authors' format) from {ckpt}", file=sys.stderr)
    return 0
