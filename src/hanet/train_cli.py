"""``hanet train``: the command line of :mod:`hanet.train` (arguments in, a run directory out).

    hanet train --data DATASET --preset msrvtt --out RUN_DIR
    hanet train --data DATASET --config model.json --out RUN_DIR     # the authors' config, or ours
    torchrun --nproc_per_node 4 -m hanet train --data DATASET --preset msrvtt --out RUN_DIR
"""

from __future__ import annotations

from hanet import options

import argparse

from hanet.config import HANetConfig, get_preset, load_config_file


#: the command line's options that set TrainConfig fields of the same name
SCHEDULE_OPTIONS = ("epochs", "batch_size", "lr", "max_steps", "seed", "num_workers", "precision", "early_stop",
                    "eval_batch_size")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset: a release-layout folder, path.json or dataset.json/yaml")
    p.add_argument("--out", required=True, help="run directory to create (or continue with --resume)")
    p.add_argument("--preset", help="msrvtt (default), vatex, clip (CLIP-family features) or synth")
    p.add_argument("--config", help="a config JSON (HANetConfig.to_dict) instead of a preset")
    p.add_argument("--variant", choices=["hanet", "global"],
                   help="hanet (full model; the default) or global (video-sentence score only; an ablation)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped, with "
                   "its own settings (only --epochs, --max-steps, --early-stop, --num-workers and "
                   "--eval-batch-size may change; other settings that differ from the run's are refused)")
    p.add_argument("--epochs", type=options.COUNT, help="most epochs to train (default: the preset's)")
    p.add_argument("--batch-size", type=options.COUNT, help="global batch size (split across torchrun ranks)")
    p.add_argument("--eval-batch-size", type=options.COUNT, help="videos and captions encoded at once when validating")
    p.add_argument("--lr", type=options.POSITIVE, help="Adam learning rate (default: the preset's)")
    p.add_argument("--max-steps", type=options.COUNT, help="stop after this many optimiser steps (resumable)")
    p.add_argument("--early-stop", type=options.NONNEGATIVE, help="stop after this many epochs without a better validation rsum")
    p.add_argument("--seed", type=options.SEED, help="seed of the initialisation, shuffling and dropout (default 0)")
    p.add_argument("--num-workers", type=options.integer(0, 256), help="data-loading processes (0: load in the training process)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="arithmetic of the forward pass "
                   "(bf16/fp16: autocast, on a GPU)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--dim-fts", type=options.integer(1, 1 << 20), nargs="+", help="expected feature sizes (checked against the files)")
    p.add_argument("--dim-word", type=options.integer(1, 4096), help="word embedding size")
    p.add_argument("--word-embeddings", help="GloVe text file, or the official word_embeds.*.th, to initialise words")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config field, e.g. "
                   "model.video.dropout=0.1 or train.grad_clip=2 (repeatable)")
    p.add_argument("--val-split", default=None, help="split that picks the best epoch (default: val, when the "
                   "dataset has one; none: no validation, the last epoch is kept)")
    p.add_argument("--save-every", type=options.NONNEGATIVE, default=0, help="also checkpoint every N steps (0: each epoch)")
    p.add_argument("--log-every", type=options.COUNT, default=10, help="write the mean loss every N steps (default 10)")
    p.add_argument("--preload", default="auto", choices=["auto", "always", "never"],
                   help="read all features into memory first (auto: when they fit in 2 GiB)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_config(args: argparse.Namespace) -> HANetConfig:
    """Preset (or a config file: ours or the authors' model.json) fitted to ``--data`` with the
    command line's settings."""
    from hanet.train import configure

    base = load_config_file(args.config) if args.config else get_preset(args.preset or "msrvtt")
    schedule = {name: getattr(args, name, None) for name in SCHEDULE_OPTIONS}
    return configure(base, args.data, train=schedule, dim_fts=args.dim_fts, dim_word=args.dim_word,
                     word_embeddings=args.word_embeddings, overrides=args.set or [])


def run(args: argparse.Namespace) -> int:
    from hanet.train import TrainOptions, train

    cfg = build_config(args)
    opts = TrainOptions(data=args.data, out=args.out, variant=args.variant or "hanet", resume=args.resume,
                        device=args.device, word_embeddings=args.word_embeddings, val_split=args.val_split,
                        save_every=args.save_every, log_every=args.log_every, preload=args.preload,
                        progress=not args.no_progress, given=given_settings(args))
    train(cfg, opts)
    return 0




def given_settings(args: argparse.Namespace) -> frozenset[str]:
    """What the command line set explicitly: train field names, ``variant``, and ``model`` when a
    preset, config file, model override or input size was given (a resumed run refuses those that
    differ from its own)."""
    from dataclasses import fields

    from hanet.config import TrainConfig

    if args.config:  # a whole config: every setting in it was given
        return frozenset(f.name for f in fields(TrainConfig)) | {"model"} | ({"variant"} if args.variant else set())
    given = {name for name in SCHEDULE_OPTIONS if getattr(args, name, None) is not None}
    for item in args.set or []:
        key = item.split("=", 1)[0].strip()
        given.add(key.split(".", 1)[1] if key.startswith("train.") else "model")
    if args.variant:
        given.add("variant")
    if args.preset or args.dim_fts or args.dim_word or args.word_embeddings:
        given.add("model")
    return frozenset(given)


__all__ = ["add_arguments", "run", "build_config", "given_settings"]
