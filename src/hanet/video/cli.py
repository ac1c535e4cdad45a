"""``hanet extract``: videos -> per-frame features (HDF5), and ``--merge`` of shard files.

Examples::

    hanet extract videos/ -o feats.h5                       # 20 uniform frames, EfficientNet-Lite0
    hanet extract list.txt -o feats.h5 --fps 2 --dtype float32
    hanet extract videos/ -o feats.h5 --backbone resnet152 --weights resnet152-394f9c45.pth
    hanet extract videos/ -o feats.h5 --shard 0/4            # writes feats.shard-0-of-4.h5
    hanet extract --merge -o feats.h5                        # joins feats.shard-*-of-4.h5

Exit status: 0 all videos done (or already done), 1 some videos failed (listed in the failure
report, ``<out stem>.failures.json``), 2 bad arguments or settings, 130 interrupted (finished
videos are kept; re-run the same command to resume).
"""

from __future__ import annotations

from hanet import options

import argparse
import os
import sys
from typing import Mapping

from hanet.errors import DataError

# kept here, not imported from the backbone registry, so `hanet extract --help` imports no torch
_BACKBONE_NAMES = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "efficientnet-lite3",
                   "efficientnet-lite4", "resnet50", "resnet101", "resnet152")


def _backbone_name(text: str) -> str:
    if text in _BACKBONE_NAMES or (text.startswith("hf:") and len(text) > 3):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: choose one of {', '.join(_BACKBONE_NAMES)}, or hf:PATH")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``hanet extract``'s options to its subparser."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "exit status: 0 all done, 1 some videos failed (see the failure report), 2 bad arguments, "
        "130 interrupted (re-run to resume)"
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="video files, folders (searched recursively) or list files (.txt/.csv: "
                             "one 'path[,name]' per line); with --merge: shard files (default: found "
                             "next to -o)")
    parser.add_argument("-o", "--out", required=True, help="output HDF5 file (resumed if it exists)")
    parser.add_argument("--merge", action="store_true", help="merge shard files into --out instead of extracting")
    g = parser.add_argument_group("sampling")
    ex = g.add_mutually_exclusive_group()
    ex.add_argument("--num-frames", type=options.integer(1, 100000), default=None, metavar="N",
                    help="N frames uniformly over each clip (default: 20, HANet's max_frames_in_video)")
    ex.add_argument("--fps", type=options.number(0, 1000, lo_open=True), default=None, metavar="F", help="F frames per second instead")
    g = parser.add_argument_group("backbone")
    g.add_argument("--backbone", default="efficientnet-lite0", type=_backbone_name, metavar="NAME",
                   help="frame network: " + ", ".join(_BACKBONE_NAMES) + ", or hf:PATH (a CLIP or SigLIP vision "
                        "tower in a local Hugging Face folder; pip install 'hanet[hf]'). Default efficientnet-lite0, "
                        "1280-d; resnet152 is 2048-d as the MSR-VTT release and needs --weights")
    g.add_argument("--hf-output", choices=("projected", "pooled"), default=None,
                   help="hf: backbones: CLIP's projected image embedding (default for CLIP) or the pooled output "
                        "before it (SigLIP has only this)")
    g.add_argument("--weights", default=None, metavar="PATH", help="weights file (torchvision format for resnet*)")
    g.add_argument("--image-size", type=options.integer(32, 4096), default=None, metavar="S",
                   help="network input side in pixels (default: the backbone's, 224 for efficientnet-lite0 "
                        "and resnet152; smaller is faster on CPUs)")
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (under torchrun, cuda means cuda:LOCAL_RANK)")
    g.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                   help="network arithmetic: fp32 (default), bf16 (CPU autocast, ~2x faster on CPUs "
                        "with AVX512-BF16/AMX), fp16 (CUDA)")
    g.add_argument("--motion", action="store_true",
                   help="also a motion stream: each sampled frame's neighbour difference through the same "
                        "backbone, appended to its features (the file is twice as wide)")
    g.add_argument("--flow", action="store_true",
                   help="also an optical-flow stream: each sampled frame's flow image (hue: direction, saturation: "
                        "speed) through the same backbone, appended last")
    g.add_argument("--flow-size", type=options.integer(8, 4096), default=64, metavar="S",
                   help="side of the flow images, a divisor of the network's input side (default 64: flow is smooth, "
                        "a quarter of the pixels costs a quarter of the time)")
    g.add_argument("--motion-gain", type=options.number(0, 100, lo_open=True), default=2.0, metavar="G",
                   help="contrast of the motion images, with --motion (default 2)")
    g = parser.add_argument_group("output")
    g.add_argument("--dtype", default="float16", choices=("float16", "float32"), help="stored feature type")
    g.add_argument("--names", default=None, metavar="FILE",
                   help="text file with one dataset name per video, in input order (default: file names)")
    g.add_argument("--root", default=None, metavar="DIR", help="folder that list-file paths are relative to")
    g.add_argument("--failures", default=None, metavar="PATH",
                   help="JSON failure report (default: <out stem>.failures.json)")
    g.add_argument("--checkpoint-seconds", type=options.number(0, lo_open=True), default=300.0, metavar="S",
                   help="commit finished videos into the output at least this often (default 300)")
    g = parser.add_argument_group("throughput")
    g.add_argument("--workers", type=options.integer(0, 256), default=None, metavar="N",
                   help="decoding processes (default: half the cores; 0 decodes in the main process)")
    g.add_argument("--batch-size", type=options.integer(1, 65536), default=None, metavar="B", help="frames per network batch (default 8 CPU, 64 CUDA)")
    g.add_argument("--threads", type=options.integer(1, 1024), default=None, metavar="T",
                   help="torch CPU threads (default: the cores not used by decoding workers)")
    g.add_argument("--shard", default=None, metavar="I/N",
                   help="process shard I of N (0-based) into <out stem>.shard-I-of-N.h5; under torchrun "
                        "RANK/WORLD_SIZE are used when this is not given")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_shard(text: str | None, env: Mapping[str, str] = os.environ) -> tuple[int, int] | None:
    """``"2/8"`` -> ``(2, 8)``; without text, torchrun's ``RANK``/``WORLD_SIZE`` when > 1 process.

    Raises:
        DataError: malformed text or out-of-range index.
    """
    if text is None:
        world = int(env.get("WORLD_SIZE", "1") or 1)
        if world > 1:
            return int(env.get("RANK", "0")), world
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise DataError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise DataError(f"--shard {text!r}: need 0 <= I < N")
    return i, n


def _read_names(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.strip() for line in fh if line.strip()]
    except OSError as exc:
        raise DataError(f"{path}: cannot read names ({exc})") from exc


def run(args: argparse.Namespace) -> int:
    """Run ``hanet extract``; returns the exit status (see the module docstring)."""
    import signal

    # Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning, so the decoding
    # workers get the cores they need. Spinning threads that lose their core stall every layer
    # (2-thread Lite0 fell from ~55 to ~7 frames/s with one competing process).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from hanet.video import extract as ex
    from hanet.data.features import merge_files

    if args.merge:
        shards = list(args.inputs) or ex.find_shards(args.out)
        keys = merge_files(shards, args.out)
        print(f"merged {len(shards)} files into {args.out}: {len(keys)} videos")
        return 0
    if not args.inputs:
        raise DataError("no input: give video files, folders or list files (or --merge)")
    if args.num_frames is not None and args.num_frames <= 0:
        raise DataError(f"--num-frames must be positive, got {args.num_frames}")
    if args.fps is not None and not args.fps > 0:
        raise DataError(f"--fps must be positive, got {args.fps}")
    if args.image_size is not None and args.image_size < 32:
        raise DataError(f"--image-size must be at least 32, got {args.image_size}")
    shard = parse_shard(args.shard)
    out = ex.shard_path(args.out, *shard) if shard else args.out
    device = args.device
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    def on_term(signum, frame):  # noqa: ARG001 - signal handler signature
        raise KeyboardInterrupt  # the store commits finished videos on the way out

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        report = ex.extract_features(
            args.inputs, out, backbone=args.backbone, num_frames=args.num_frames, fps=args.fps,
            image_size=args.image_size, dtype=args.dtype,
            names=_read_names(args.names) if args.names else None,
            num_workers=args.workers, batch_size=args.batch_size, device=device,
            progress=not args.no_progress, weights=args.weights, shard=shard,
            failures_path=args.failures, checkpoint_seconds=args.checkpoint_seconds,
            precision=args.precision, root=args.root,
            threads=args.threads if args.threads is not None else (ex.default_threads(args.workers) if device == "cpu" else None),
            motion_gain=args.motion_gain if args.motion else None, hf_output=args.hf_output,
            flow_size=args.flow_size if args.flow else None,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(
        f"{out}: {len(report.done)} videos extracted ({report.frames} frames, "
        f"{report.frames_per_second:.1f} frames/s), {len(report.skipped)} already done, "
        f"{len(report.failed)} failed"
    )
    if args.no_progress:  # with the bar on, failures were already shown as they happened
        for f in report.failed:
            print(f"  failed: {f.reason}", file=sys.stderr)
    if report.failed:
        print(f"failure report: {report.failures_path}", file=sys.stderr)
    return 0 if report.ok else 1
