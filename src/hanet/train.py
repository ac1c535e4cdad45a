"""Training: Adam on the HANet loss, validation rsum each epoch, best checkpoint, early stop.

``hanet train --data DATASET --preset msrvtt --out RUN_DIR`` trains with the paper's settings.
The same command under ``torchrun --nproc_per_node N`` trains with DistributedDataParallel
(NCCL on GPUs, gloo on CPUs); ``--batch-size`` stays the global batch and each rank takes an
equal share, so hardest negatives are mined within each rank's share (see docs/training.md).

Resuming (``--resume``) restores the model, the optimiser, the step inside the epoch and every
random generator, so on a CPU the losses after a resume equal those of an uninterrupted run.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from hanet.config import HANetConfig, get_preset, load_config_file
from hanet.errors import HanetError
from hanet.io import WriteError, atomic_write, ensure_dir

# ---------------------------------------------------------------------- sampling
class EpochSampler(Sampler[int]):
    """A deterministic shuffle per (seed, epoch), split across ranks, resumable mid-epoch.

    Every rank draws the same permutation and takes its own contiguous share of each global
    batch, so the union of the ranks' batches is the single-process batch.

    Args:
        num_items: dataset size.
        batch_size: global batch size.
        seed: base seed.
        rank, world: this process and the number of processes.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.batch, self.seed, self.rank, self.world = num_items, batch_size, seed, rank, world
        self.epoch = 0
        self.skip_batches = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches

    def batches_per_epoch(self) -> int:
        full, rest = divmod(self.n, self.batch)
        # With several ranks a last batch smaller than the number of ranks would leave a rank
        # without items (and DDP needs every rank to step): drop it.
        return full + (1 if rest and rest >= self.world else 0)

    def _order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        out = []
        for b in range(self.skip_batches, self.batches_per_epoch()):
            chunk = perm[b * self.batch:(b + 1) * self.batch]
            share = math.ceil(len(chunk) / self.world)
            out.extend(chunk[self.rank * share:(self.rank + 1) * share])
        return out

    def __iter__(self) -> Iterator[int]:
        return iter(self._order())

    def __len__(self) -> int:
        return len(self._order())


class BatchOf(Sampler[list[int]]):
    """Group an :class:`EpochSampler`'s stream into this rank's per-step batches."""

    def __init__(self, sampler: EpochSampler) -> None:
        self.s = sampler

    def __iter__(self) -> Iterator[list[int]]:
        order = self.s._order()
        per_rank = [math.ceil(min(self.s.batch, self.s.n - b * self.s.batch) / self.s.world)
                    for b in range(self.s.skip_batches, self.s.batches_per_epoch())]
        pos = 0
        for size in per_rank:
            yield order[pos:pos + size]
            pos += size

    def __len__(self) -> int:
        return self.s.batches_per_epoch() - self.s.skip_batches


# ---------------------------------------------------------------------- state
def rng_state() -> dict[str, Any]:
    # numpy's state as plain Python values: checkpoints load with weights_only (no code can run)
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    st = {"torch": torch.get_rng_state(), "numpy": (name, keys.tolist(), int(pos), int(has_gauss), float(gauss)),
          "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    name, keys, pos, has_gauss, gauss = st["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


@dataclass
class TrainState:
    epoch: int = 0            # current epoch (0-based)
    epoch_step: int = 0       # batches done in the current epoch
    step: int = 0             # optimiser steps done
    best_metric: float = 0.0  # official: best rsum starts at 0
    best_epoch: int = -1
    no_improve: int = 0


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam (the official optimiser) with torch's fused kernel where it exists.

    The fused kernel computes the same update as the default per-tensor loop (to float
    rounding) in one pass over all parameters; on a CPU it makes the step of HANet's ~25M
    parameters several times cheaper.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


# ---------------------------------------------------------------------- word embeddings
def load_word_embeddings(path: str, word2int: dict[str, int], num_words: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Word vectors for initialisation.

    Args:
        path: a GloVe text file (``word v1 v2 ...`` per line), or a torch file holding a
            (num_words, dim) tensor or an official ``word_embeds.*.th`` state
            (``{"text_encoder": {"embedding.we.weight": tensor}}``).
        word2int: the dataset vocabulary.
        num_words: rows of the embedding matrix.

    Returns:
        ((num_words, dim) vectors, (num_words,) bool rows that were found).
    """
    p = Path(path)
    if not p.is_file():
        raise HanetError(f"{p}: word embedding file not found")
    if p.suffix in (".th", ".pt", ".pth"):
        from hanet.run import safe_torch_load

        obj = safe_torch_load(p, "word embedding file")
        if isinstance(obj, dict):
            obj = obj.get("text_encoder", obj).get("embedding.we.weight") if isinstance(
                obj.get("text_encoder", obj), dict) else None
        if not isinstance(obj, torch.Tensor) or obj.dim() != 2:
            raise HanetError(f"{p}: expected a (num_words, dim) tensor or an official word_embeds state")
        if obj.shape[0] != num_words:
            raise HanetError(f"{p}: has {obj.shape[0]} rows but the vocabulary has {num_words} words")
        return obj.float(), torch.ones(num_words, dtype=torch.bool)
    vecs: Optional[torch.Tensor] = None
    found = torch.zeros(num_words, dtype=torch.bool)
    opener = open
    if p.suffix == ".gz":
        import gzip

        opener = gzip.open  # type: ignore[assignment]
    with opener(p, "rt", encoding="utf8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if len(parts) < 3:
                continue
            idx = word2int.get(parts[0])
            if idx is None or idx >= num_words:
                continue
            try:
                v = torch.tensor([float(x) for x in parts[1:]])
            except ValueError:
                raise HanetError(f"{p}:{line_no}: not a GloVe line (word then numbers)") from None
            if vecs is None:
                vecs = torch.zeros(num_words, len(v))
            if len(v) != vecs.shape[1]:
                raise HanetError(f"{p}:{line_no}: {len(v)} numbers, earlier lines have {vecs.shape[1]}")
            vecs[idx] = v
            found[idx] = True
    if vecs is None:
        raise HanetError(f"{p}: no word of the vocabulary found in this embedding file")
    return vecs, found


# ---------------------------------------------------------------------- plotting
def plot_curves(records: list[dict[str, Any]], out: Path) -> None:
    """Training loss per step and validation rsum per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [(r["step"], r["loss"]) for r in records if r.get("kind") == "train"]
    vals = [(r["epoch"], r["rsum"]) for r in records if r.get("kind") == "val"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    if steps:
        axes[0].plot(*zip(*steps), lw=1)
    axes[0].set(title="training loss", xlabel="step", ylabel="loss")
    if vals:
        axes[1].plot(*zip(*vals), marker="o")
    axes[1].set(title="validation rsum", xlabel="epoch", ylabel="rsum")
    fig.tight_layout()
    try:
        atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------- trainer
@dataclass
class TrainOptions:
    """What the command line gives beyond the config."""

    data: str
    out: str
    variant: str = "hanet"
    resume: bool = False
    device: str = "auto"
    word_embeddings: Optional[str] = None
    #: the validation split; None: ``val`` if the dataset has one (else the last epoch is kept)
    val_split: Optional[str] = None
    save_every: int = 0
    log_every: int = 10
    preload: str = "auto"
    progress: bool = True


def _dist_env() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local


def train(config: HANetConfig, opts: TrainOptions) -> dict[str, Any]:
    """Train (or resume) a run. Returns a summary (best metric, epochs, steps, seconds)."""
    from hanet.data.dataset import PairDataset, RetrievalData, collate_pairs
    from hanet.data.formats import DatasetSpec
    from hanet.evaluate import resolve_device
    from hanet.model import HANet
    from hanet.io import atomic_torch_save
    from hanet.run import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, RunDir, RunInfo, load_checkpoint

    rank, world, local_rank = _dist_env()
    distributed = world > 1
    device = resolve_device(opts.device)
    if distributed:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    is_main = rank == 0
    say = (lambda *a, **k: print(*a, **k, file=sys.stderr)) if is_main else (lambda *a, **k: None)

    config.validate()
    run = RunDir(opts.out)
    tc = config.train
    spec = DatasetSpec.load(opts.data)
    if run.exists() and not opts.resume:
        raise HanetError(f"{run.path}: already holds a run; pass --resume to continue it or choose another --out")
    if is_main:
        ensure_dir(run.path, "run folder")  # before any long work: a bad --out fails now
    val_split = opts.val_split
    if val_split == "none":  # asked for: no validation, the last epoch is kept
        val_split, explicit_none = None, True
    else:
        explicit_none = False
    if val_split is not None and val_split not in spec.splits:
        raise HanetError(f"--val-split {val_split!r}: the dataset {spec.source} has no such split "
                         f"(it has {', '.join(spec.splits)})")
    if val_split is None and "val" in spec.splits and not explicit_none:
        val_split = "val"
    with_concepts = config.model.concept_bce_weight > 0 and opts.variant == "hanet"
    spec.require_files(["trn"] + ([val_split] if val_split else []), concepts=with_concepts)
    ckpt = None
    if opts.resume:
        if not run.last.is_file():
            raise HanetError(f"{run.path}: nothing to resume (no {run.last})")
        info = run.read_info()
        if info.config.model != config.model:
            raise HanetError(f"{run.path}: --resume with a different model config than the run's; "
                             f"drop the overrides or start a new run")
        config = info.config if config.train == info.config.train else config
        tc = config.train
        ckpt = load_checkpoint(run.last)

    # Data first: every data problem is reported before any long work starts.
    trn = RetrievalData(spec, "trn", config.model, with_concepts=with_concepts)
    val = None
    if val_split is not None:
        val = RetrievalData(spec, val_split, config.model)
    elif not explicit_none:
        say("note: the dataset has no 'val' split (give one with --val-split); keeping the last epoch as best")
    _maybe_preload(trn, opts.preload, say)
    if val is not None:
        _maybe_preload(val, opts.preload, say)

    if is_main and not opts.resume:
        run.write_info(RunInfo(config, opts.variant, str(Path(opts.data).resolve()), time.time()))

    torch.manual_seed(tc.seed)
    np.random.seed(tc.seed % 2**32)
    random.seed(tc.seed)
    model = HANet(config.model, variant=opts.variant, seed=tc.seed)
    if opts.word_embeddings and ckpt is None:
        vecs, found = load_word_embeddings(opts.word_embeddings, trn.word2int, config.model.text.num_words)
        if vecs.shape[1] != config.model.text.dim_word:
            raise HanetError(f"{opts.word_embeddings}: {vecs.shape[1]}-d vectors but dim_word is "
                             f"{config.model.text.dim_word}")
        with torch.no_grad():
            model.text_encoder.word_embed.weight[found] = vecs[found]
        say(f"word embeddings: {int(found.sum())}/{len(found)} words initialised from {opts.word_embeddings}")
    model.to(device)
    opt = make_optimizer(model, tc.lr)
    use_scaler = tc.precision == "fp16" and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    state = TrainState()
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt and use_scaler:
            scaler.load_state_dict(ckpt["scaler"])
        state = TrainState(**ckpt["train_state"])
        set_rng_state(ckpt["rng"][rank] if isinstance(ckpt["rng"], list) and rank < len(ckpt["rng"]) else
                      ckpt["rng"][0] if isinstance(ckpt["rng"], list) else ckpt["rng"])
        if is_main:
            run.truncate_log(state.step, state.epoch)  # what the killed run logged past its checkpoint
        say(f"resuming {run.path} at epoch {state.epoch}, step {state.step}")
        then = ckpt.get("threads")
        if then is not None and then != torch.get_num_threads() and device.type == "cpu":
            # float sums are split per thread: another thread count rounds differently
            say(f"note: the run was checkpointed with {then} torch threads and resumes with "
                f"{torch.get_num_threads()}; the losses will not be bit-identical to an uninterrupted run "
                f"(set OMP_NUM_THREADS={then} for that)")

    train_model: torch.nn.Module = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                          find_unused_parameters=opts.variant != "hanet")

    pairs = PairDataset(trn)
    sampler = EpochSampler(len(pairs), tc.batch_size, tc.seed, rank, world)
    loader_gen = torch.Generator().manual_seed(tc.seed)  # keeps DataLoader off the global RNG
    num_workers = tc.num_workers if not getattr(trn, "preloaded", False) else 0

    def make_loader() -> DataLoader:
        return DataLoader(pairs, batch_sampler=BatchOf(sampler), collate_fn=collate_pairs, num_workers=num_workers,
                          pin_memory=device.type == "cuda", persistent_workers=False, generator=loader_gen,
                          prefetch_factor=4 if num_workers > 0 else None)

    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tc.precision)
    if tc.precision not in ("fp32", "bf16", "fp16"):
        raise HanetError(f"--precision must be fp32, bf16 or fp16, not {tc.precision!r}")
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext

    def save(path: Path, tag: str) -> None:
        rngs: Any = rng_state()
        if distributed:
            import torch.distributed as dist

            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, rngs)
            rngs = gathered
        if not is_main:
            return
        ckpt_state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "tag": tag,
                      "config": config.to_dict(), "variant": opts.variant, "model": model.state_dict(),
                      "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                      "train_state": state.__dict__.copy(), "rng": rngs, "world_size": world,
                      "threads": torch.get_num_threads(), "epoch": state.epoch, "step": state.step}
        try:
            atomic_torch_save(ckpt_state, path)
        except WriteError as exc:
            raise WriteError(f"{exc}; the run's last complete checkpoint is intact: free some space and "
                             f"continue with --resume") from None

    from tqdm import tqdm

    t_start = time.time()
    stop = False
    max_steps = tc.max_steps
    while state.epoch < tc.epochs and not stop:
        model.train()
        # Step decay by epoch (official MultiStepLR); set from the epoch, so a resumed run
        # trains at the same rate as an uninterrupted one.
        lr = tc.lr_at(state.epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        sampler.set_epoch(state.epoch, state.epoch_step)
        loader = make_loader()
        bar = tqdm(total=sampler.batches_per_epoch(), initial=state.epoch_step, disable=not (opts.progress and is_main),
                   desc=f"epoch {state.epoch}", unit="batch", leave=False)
        run_loss, run_n = 0.0, 0
        for batch in loader:
            batch = batch.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            with autocast():
                out = train_model(batch)
            scaler.scale(out.loss).backward()
            if tc.grad_clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            scaler.step(opt)
            scaler.update()
            loss = float(out.loss.detach())
            if not math.isfinite(loss):
                raise HanetError(f"loss became {loss} at step {state.step} (epoch {state.epoch}); "
                                 f"try --precision fp32 or a lower --lr")
            state.step += 1
            state.epoch_step += 1
            run_loss += loss
            run_n += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if state.step % opts.log_every == 0 or state.epoch_step == sampler.batches_per_epoch():
                parts = torch.tensor([run_loss / run_n, float(out.fusion_loss.detach()),
                                      float(out.concept_loss.detach()), float(out.bce_loss.detach())],
                                     dtype=torch.float64)
                if distributed:  # log the mean over ranks, not rank 0's share alone
                    import torch.distributed as dist

                    parts = parts.to(device)
                    dist.all_reduce(parts)
                    parts = parts.cpu() / world
                if is_main:
                    run.log({"kind": "train", "epoch": state.epoch, "step": state.step, "lr": lr,
                             "loss": float(parts[0]),
                             "fusion_loss": float(parts[1]), "concept_loss": float(parts[2]),
                             "bce_loss": float(parts[3])})
                run_loss, run_n = 0.0, 0
            if opts.save_every and state.step % opts.save_every == 0:
                save(run.last, "step")
            if max_steps and state.step >= max_steps:
                stop = True
                break
        bar.close()
        if stop and state.epoch_step < sampler.batches_per_epoch():
            save(run.last, "max_steps")
            say(f"stopped at step {state.step} (--max-steps); resume with --resume")
            break
        # End of epoch: validate on rank 0 and share the verdict.
        rsum = _validate(model, val, device, tc.eval_batch_size, is_main, distributed, say, state, run)
        improved = rsum > state.best_metric if val is not None else True
        if improved:
            state.best_metric, state.best_epoch, state.no_improve = (rsum if val is not None else 0.0), state.epoch, 0
        else:
            state.no_improve += 1
        state.epoch += 1
        state.epoch_step = 0
        if improved:
            save(run.best, "best")
        save(run.last, "epoch")
        if is_main:
            plot_curves(run.read_log(), run.path / "curves.png")
        # Official rule: stop once more than `early_stop` epochs in a row have not improved.
        if val is not None and state.no_improve > tc.early_stop:
            say(f"early stop: {state.no_improve} epochs without a better validation rsum")
            break
    seconds = time.time() - t_start
    if distributed:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    summary = {"best_rsum": state.best_metric, "best_epoch": state.best_epoch, "epochs": state.epoch,
               "steps": state.step, "seconds": seconds}
    say(f"done: best validation rsum {state.best_metric:.2f} at epoch {state.best_epoch}; "
        f"{state.step} steps in {seconds:.0f} s; run in {run.path}")
    return summary


def _validate(model, val, device, batch_size, is_main, distributed, say, state, run) -> float:
    from hanet.evaluate import evaluate_split

    rsum = 0.0
    if val is not None and is_main:
        res = evaluate_split(model, val, device=device, batch_size=batch_size, per_score=False, progress=False)
        m = res.metrics["fused"]
        rsum = m["rsum"]
        run.log({"kind": "val", "epoch": state.epoch, "step": state.step, **m})
        say(f"epoch {state.epoch}: val rsum {rsum:.2f} (t2v R@1 {m['ir1']:.1f}, v2t R@1 {m['cr1']:.1f}) "
            f"[{res.seconds:.1f} s]")
    if distributed:
        import torch.distributed as dist

        t = torch.tensor([rsum], dtype=torch.float64, device=device if device.type == "cuda" else "cpu")
        dist.broadcast(t, 0)
        rsum = float(t.item())
    model.train()
    return rsum


def _maybe_preload(data, mode: str, say) -> None:
    """Read every video of a split into memory once (the official --load_video_first)."""
    if mode == "never":
        return
    n = len(data.names)
    dim = data.video_feature_dim()
    size = n * data.config.max_frames_in_video * dim * 4
    if mode == "auto" and size > (2 << 30):
        return
    from hanet.errors import DataError

    feats = np.zeros((n, data.config.max_frames_in_video, dim), np.float32)
    lens = np.zeros(n, np.int64)
    bad: list[str] = []
    for i in range(n):
        try:
            feats[i], lens[i] = data.video(i)
        except DataError as exc:  # every unusable video at once, not the first alone
            bad.append(str(exc))
    if bad:
        raise DataError(f"split {data.split}: {len(bad)} unusable video(s):\n  - " + "\n  - ".join(bad[:20])
                        + (f"\n  ... ({len(bad) - 20} more)" if len(bad) > 20 else ""))
    data.preload(feats, lens)
    say(f"preloaded {n} videos of split {data.split} ({size / 2**20:.0f} MiB)")


# ---------------------------------------------------------------------- CLI
def _parse_set(items: list[str]) -> list[tuple[list[str], str]]:
    out = []
    for it in items:
        if "=" not in it:
            raise HanetError(f"--set takes KEY=VALUE (e.g. model.video.dropout=0.1), got {it!r}")
        k, v = it.split("=", 1)
        out.append((k.split("."), v))
    return out


def build_config(args: argparse.Namespace) -> HANetConfig:
    """Preset (or a config JSON) + dataset-derived sizes + command-line overrides."""
    import json

    from hanet.data.dataset import infer_feature_dims, words_in_vocab
    from hanet.data.formats import DatasetSpec

    if args.config:
        cfg = load_config_file(args.config)  # ours, or the authors' model.json
    else:
        cfg = get_preset(args.preset)
    spec = DatasetSpec.load(args.data)
    dims = infer_feature_dims(spec, "trn")
    if args.dim_fts and tuple(args.dim_fts) != dims:
        raise HanetError(f"--dim-fts {args.dim_fts} disagrees with the feature files of {args.data}: {list(dims)}")
    cfg.model.video.dim_fts = dims
    cfg.model.text.num_words = words_in_vocab(spec)
    for name in ("epochs", "batch_size", "lr", "max_steps", "seed", "num_workers", "precision", "early_stop",
                 "eval_batch_size"):
        v = getattr(args, name, None)
        if v is not None:
            setattr(cfg.train, name, v)
    if args.word_embeddings and args.dim_word is None:
        dim = _embedding_file_dim(args.word_embeddings)
        if dim and dim != cfg.model.text.dim_word:
            print(f"note: dim_word set to {dim} to match {args.word_embeddings}", file=sys.stderr)
            cfg.model.text.dim_word = dim
    if args.dim_word is not None:
        cfg.model.text.dim_word = args.dim_word
    for keys, value in _parse_set(args.set or []):
        _set_field(cfg, keys, value)
    cfg.validate()
    return cfg


def _embedding_file_dim(path: str) -> Optional[int]:
    p = Path(path)
    if p.suffix in (".th", ".pt", ".pth") or not p.is_file():
        return None
    with open(p, encoding="utf8", errors="replace") as f:
        for line in f:
            parts = line.rstrip().split(" ")
            if len(parts) > 2:
                return len(parts) - 1
    return None


def _set_field(cfg: Any, keys: list[str], value: str) -> None:
    import dataclasses
    import json

    obj = cfg
    for k in keys[:-1]:
        if not hasattr(obj, k):
            raise HanetError(f"--set: no config section {'.'.join(keys[:-1])!r}")
        obj = getattr(obj, k)
    name = keys[-1]
    flds = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
    if name not in flds:
        raise HanetError(f"--set: unknown field {'.'.join(keys)!r}")
    cur = getattr(obj, name)
    try:
        if isinstance(cur, bool):
            val: Any = value.lower() in ("1", "true", "yes", "on")
        elif isinstance(cur, int):
            val = int(value)
        elif isinstance(cur, float):
            val = float(value)
        elif isinstance(cur, tuple):
            val = tuple(json.loads(value) if value.startswith("[") else [int(x) for x in value.split(",")])
        else:
            val = value
    except ValueError:
        raise HanetError(f"--set {'.'.join(keys)}: cannot read {value!r} as {type(cur).__name__}") from None
    setattr(obj, name, val)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset: a release-layout folder, path.json or dataset.json/yaml")
    p.add_argument("--out", required=True, help="run directory to create (or continue with --resume)")
    p.add_argument("--preset", default="msrvtt", help="msrvtt (default), vatex or synth")
    p.add_argument("--config", help="a config JSON (HANetConfig.to_dict) instead of a preset")
    p.add_argument("--variant", default="hanet", choices=["hanet", "global"],
                   help="hanet (full model) or global (video-sentence score only; an ablation)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size (split across torchrun ranks)")
    p.add_argument("--eval-batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps (resumable)")
    p.add_argument("--early-stop", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--dim-fts", type=int, nargs="+", help="expected feature sizes (checked against the files)")
    p.add_argument("--dim-word", type=int, help="word embedding size")
    p.add_argument("--word-embeddings", help="GloVe text file, or the official word_embeds.*.th, to initialise words")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config field, e.g. "
                   "model.video.dropout=0.1 or train.grad_clip=2 (repeatable)")
    p.add_argument("--val-split", default=None, help="split that picks the best epoch (default: val, when the "
                   "dataset has one; none: no validation, the last epoch is kept)")
    p.add_argument("--save-every", type=int, default=0, help="also checkpoint every N steps (0: each epoch)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--preload", default="auto", choices=["auto", "always", "never"],
                   help="read all features into memory first (auto: when they fit in 2 GiB)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    opts = TrainOptions(data=args.data, out=args.out, variant=args.variant, resume=args.resume, device=args.device,
                        word_embeddings=args.word_embeddings, val_split=args.val_split, save_every=args.save_every,
                        log_every=args.log_every, preload=args.preload, progress=not args.no_progress)
    train(cfg, opts)
    return 0


__all__ = ["train", "TrainOptions", "EpochSampler", "build_config", "load_word_embeddings", "plot_curves"]
