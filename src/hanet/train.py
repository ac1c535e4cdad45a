"""Training: Adam on the HANet loss, validation rsum each epoch, best checkpoint, early stop.

``hanet train --data DATASET --preset msrvtt --out RUN_DIR`` trains with the paper's settings.
The same command under ``torchrun --nproc_per_node N`` trains with DistributedDataParallel
(NCCL on GPUs, gloo on CPUs); ``--batch-size`` stays the global batch and each rank takes an
equal share, so hardest negatives are mined within each rank's share (see docs/training.md).

Resuming (``--resume``) restores the model, the optimiser, the step inside the epoch and every
random generator, so on a CPU the losses after a resume equal those of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from hanet.config import HANetConfig
from hanet.data.formats import vocab_fingerprint
from hanet.data.schema import split_overlap
from hanet.errors import DataError, HanetError
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
        from hanet.io import safe_torch_load

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


# ---------------------------------------------------------------------- configuration
def configure(config: HANetConfig, data: str | os.PathLike, *, train: Optional[dict[str, Any]] = None,
              dim_fts: Optional[Sequence[int]] = None, dim_word: Optional[int] = None,
              word_embeddings: Optional[str] = None, overrides: Sequence[str] = ()) -> HANetConfig:
    """Fit a config to a dataset: feature sizes and vocabulary from its files, then the
    schedule fields given, then ``key=value`` overrides (:func:`hanet.config.apply_overrides`).

    Args:
        config: a preset or a loaded config file (changed in place and returned).
        data: the dataset (a release folder, path.json, dataset.json/yaml).
        train: ``TrainConfig`` fields to set (None values are skipped).
        dim_fts: expected feature sizes; an error if the files disagree.
        dim_word: word embedding size.
        word_embeddings: a GloVe file whose width sets ``dim_word`` when that is not given.
        overrides: ``section.field=value`` strings.

    Raises:
        HanetError: files that disagree with the expectations, a bad override, or a config
            that cannot run.
    """
    from hanet.config import apply_overrides
    from hanet.data.dataset import infer_feature_dims, words_in_vocab
    from hanet.data.formats import DatasetSpec

    spec = DatasetSpec.load(data)
    dims = infer_feature_dims(spec, "trn")
    if dim_fts and tuple(dim_fts) != dims:
        raise HanetError(f"--dim-fts {list(dim_fts)} disagrees with the feature files of {data}: {list(dims)}")
    config.model.video.dim_fts = dims
    config.model.text.num_words = words_in_vocab(spec)
    for name, value in (train or {}).items():
        if value is not None:
            setattr(config.train, name, value)
    if word_embeddings and dim_word is None:
        dim = _embedding_file_dim(word_embeddings)
        if dim and dim != config.model.text.dim_word:
            print(f"note: dim_word set to {dim} to match {word_embeddings}", file=sys.stderr)
            config.model.text.dim_word = dim
    if dim_word is not None:
        config.model.text.dim_word = dim_word
    apply_overrides(config, overrides)
    config.validate()
    return config


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


# ---------------------------------------------------------------------- plotting
def plot_curves(logs: dict[str, list[dict[str, Any]]] | list[dict[str, Any]], out: Path) -> None:
    """Training loss per step and validation rsum per epoch of one run or several, as a PNG.

    Args:
        logs: a run's ``metrics.jsonl`` records, or label -> records (one line per run, with a legend).
        out: the PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = logs if isinstance(logs, dict) else {"": logs}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, records in runs.items():
        steps = [(r["step"], r["loss"]) for r in records if r.get("kind") == "train"]
        vals = [(r["epoch"], r["rsum"]) for r in records if r.get("kind") == "val"]
        if steps:
            axes[0].plot(*zip(*steps), lw=1, label=label or None)
        if vals:
            axes[1].plot(*zip(*vals), marker="o", ms=3, label=label or None)
    axes[0].set(title="training loss", xlabel="step", ylabel="loss")
    axes[1].set(title="validation rsum", xlabel="epoch", ylabel="rsum")
    if len(runs) > 1:
        for ax in axes:
            ax.legend()
    fig.tight_layout()
    try:
        atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------- trainer
#: train settings a resumed run may take from the command line (they leave the steps so far as they were)
RESUME_CHANGEABLE = ("epochs", "max_steps", "early_stop", "num_workers", "eval_batch_size")


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
    #: on resume, which settings were given explicitly (train field names, ``variant``); a given
    #: setting that differs from the run's is refused. None: all of them were given.
    given: Optional[frozenset[str]] = None


def _dist_env() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local


@dataclass
class _Process:
    """Where this process trains: its rank among ``world`` processes and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def say(self, *a: Any) -> None:
        if self.is_main:
            print(*a, file=sys.stderr)

    @classmethod
    def start(cls, device_name: str) -> "_Process":
        """Read torchrun's environment, pick the device, join the process group if several."""
        from hanet.devices import resolve_device

        rank, world, local_rank = _dist_env()
        device = resolve_device(device_name)
        if world > 1:
            import torch.distributed as dist

            if device.type == "cuda":
                device = torch.device("cuda", local_rank)
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(rank, world, device)

    def finish(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()



def _refuse_split_overlap(spec: Any, trn: list[str], val_split: Optional[str], val: list[str]) -> None:
    """A video in two of the dataset's splits is refused, as ``check-data`` reports it: in trn and
    the validation split, validation would pick the epoch that best remembers it; in trn and a
    test split, the evaluation that follows would score videos the model was trained on."""
    names = spec.split_names({"trn": trn, **({val_split: val} if val_split else {})})
    overlap = split_overlap(names)
    if overlap:
        raise HanetError(f"dataset {spec.source}: {len(overlap)} video(s) in more than one split: "
                         + "; ".join(overlap[:8]))


class Trainer:
    """One training run, phase by phase: :meth:`prepare` checks the run folder and the data (every
    problem before any long work), :meth:`build` makes the model, optimiser and data loader in
    the official order of random draws (restoring a checkpoint on ``--resume``), :meth:`fit`
    runs the epochs.

    Args:
        config: model and schedule.
        opts: what the command line gives beyond the config.
    """

    def __init__(self, config: HANetConfig, opts: TrainOptions) -> None:
        from hanet.run import RunDir

        self.config, self.opts = config, opts
        self.proc = _Process.start(opts.device)
        self.run = RunDir(opts.out)
        self.state = TrainState()
        self.ckpt: Optional[dict[str, Any]] = None

    @property
    def tc(self):
        return self.config.train

    # ------------------------------------------------------------------ phases
    def prepare(self) -> None:
        """The run folder, the splits and the data, checked and loaded."""
        from hanet.data.dataset import RetrievalData
        from hanet.data.formats import DatasetSpec
        from hanet.run import RunInfo, load_checkpoint

        config, opts, run, say = self.config, self.opts, self.run, self.proc.say
        config.validate()
        if config.train.precision == "fp16" and self.proc.device.type != "cuda":
            raise HanetError(f"--precision fp16 needs a GPU (this run is on {self.proc.device}); "
                             f"use fp32, or bf16 where the CPU supports it")
        spec = DatasetSpec.load(opts.data)
        if run.exists() and not opts.resume:
            raise HanetError(f"{run.path}: already holds a run; pass --resume to continue it or choose another --out")
        if self.proc.is_main:
            ensure_dir(run.path, "run folder")  # before any long work: a bad --out fails now
        explicit_none = opts.val_split == "none"  # asked for: no validation, the last epoch is kept
        val_split = None if explicit_none else opts.val_split
        if val_split is not None and val_split not in spec.splits:
            raise HanetError(f"--val-split {val_split!r}: the dataset {spec.source} has no such split "
                             f"(it has {', '.join(spec.splits)})")
        if val_split is None and "val" in spec.splits and not explicit_none:
            val_split = "val"
        if opts.resume:
            self.config = config = self._resumed_config(config)
            self.ckpt = load_checkpoint(run.last)
        with_concepts = config.model.concept_bce_weight > 0 and opts.variant == "hanet"
        spec.require_files(["trn"] + ([val_split] if val_split else []), concepts=with_concepts)

        # Data first: every data problem is reported before any long work starts.
        self.trn = RetrievalData(spec, "trn", config.model, with_concepts=with_concepts)
        self.val = RetrievalData(spec, val_split, config.model) if val_split is not None else None
        _refuse_split_overlap(spec, self.trn.names, val_split, self.val.names if self.val is not None else [])
        if val_split is None and not explicit_none:
            say("note: the dataset has no 'val' split (give one with --val-split); keeping the last epoch as best")
        _maybe_preload(self.trn, opts.preload, say)
        if self.val is not None:
            _maybe_preload(self.val, opts.preload, say)
        vocab = vocab_fingerprint(self.trn.word2int)
        if opts.resume:
            theirs = run.read_info().vocab
            if theirs is not None and theirs != vocab:
                raise HanetError(f"{spec.word2int}: not the vocabulary {run.path} was trained with (fingerprint "
                                 f"{vocab}, the run's {theirs}); word ids would change meaning")
        if self.proc.is_main and not opts.resume:
            run.write_info(RunInfo(config, opts.variant, str(Path(opts.data).resolve()), time.time(), vocab=vocab))

    def _resumed_config(self, config: HANetConfig) -> HANetConfig:
        """The run's own config, with what may change on resume taken from ``config``
        (:data:`RESUME_CHANGEABLE`); settings given that differ from the run's are refused, each named."""
        run, opts = self.run, self.opts
        if not run.last.is_file():
            raise HanetError(f"{run.path}: nothing to resume (no {run.last})")
        info = run.read_info()
        given = opts.given
        problems = []
        if opts.variant != info.variant and (given is None or "variant" in given):
            problems.append(f"--variant {opts.variant} (the run's: {info.variant})")
        if info.config.model != config.model and (given is None or "model" in given):
            diff = [f"model.{k}" for k, v in asdict(config.model).items() if v != asdict(info.config.model).get(k)]
            problems.append(f"the model config ({', '.join(diff) or 'its fields'} differ from the run's)")
        mine, theirs = asdict(config.train), asdict(info.config.train)
        for k, v in mine.items():
            if v != theirs[k] and k not in RESUME_CHANGEABLE and (given is None or k in given):
                problems.append(f"train.{k} = {v} (the run's: {theirs[k]})")
        if problems:
            raise HanetError(f"{run.path}: --resume continues the run with its own settings; given other ones: "
                             + "; ".join(problems) + ". Drop them, or start a new run with another --out")
        opts.variant = info.variant  # the run's own, when none was given
        keep = {k: mine[k] for k in RESUME_CHANGEABLE if given is None or k in given}
        return replace(info.config, train=replace(info.config.train, **keep))

    def build(self) -> None:
        """Model, optimiser, scaler and loader; the checkpoint's state on resume.

        The order of the random draws is the official one (seeds, then the model's
        initialisation), so ``seed=s`` gives the official model built after ``manual_seed(s)``.
        """
        from hanet.data.dataset import PairDataset, collate_pairs
        from hanet.model import HANet

        tc, opts, device = self.tc, self.opts, self.proc.device
        torch.manual_seed(tc.seed)
        np.random.seed(tc.seed % 2**32)
        random.seed(tc.seed)
        model = HANet(self.config.model, variant=opts.variant, seed=tc.seed)
        if opts.word_embeddings and self.ckpt is None:
            self._init_word_embeddings(model)
        self.model = model.to(device)
        self.opt = make_optimizer(model, tc.lr)
        use_scaler = tc.precision == "fp16" and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        if self.ckpt is not None:
            self._restore(use_scaler)
        self.train_model: torch.nn.Module = model
        if self.proc.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=opts.variant != "hanet")
        pairs = PairDataset(self.trn)
        self.sampler = EpochSampler(len(pairs), tc.batch_size, tc.seed, self.proc.rank, self.proc.world)
        loader_gen = torch.Generator().manual_seed(tc.seed)  # keeps DataLoader off the global RNG
        workers = tc.num_workers if not getattr(self.trn, "preloaded", False) else 0
        self.make_loader = lambda: DataLoader(
            pairs, batch_sampler=BatchOf(self.sampler), collate_fn=collate_pairs, num_workers=workers,
            pin_memory=device.type == "cuda", persistent_workers=False, generator=loader_gen,
            prefetch_factor=4 if workers > 0 else None)
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tc.precision)
        self.autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext

    def _init_word_embeddings(self, model) -> None:
        opts, cfg = self.opts, self.config.model
        vecs, found = load_word_embeddings(opts.word_embeddings, self.trn.word2int, cfg.text.num_words)
        if vecs.shape[1] != cfg.text.dim_word:
            raise HanetError(f"{opts.word_embeddings}: {vecs.shape[1]}-d vectors but dim_word is {cfg.text.dim_word}")
        with torch.no_grad():
            model.text_encoder.word_embed.weight[found] = vecs[found]
        self.proc.say(f"word embeddings: {int(found.sum())}/{len(found)} words initialised from {opts.word_embeddings}")

    def _restore(self, use_scaler: bool) -> None:
        ckpt, rank, say = self.ckpt, self.proc.rank, self.proc.say
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt and use_scaler:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = TrainState(**ckpt["train_state"])
        rngs = ckpt["rng"]
        set_rng_state(rngs[rank] if isinstance(rngs, list) and rank < len(rngs) else
                      rngs[0] if isinstance(rngs, list) else rngs)
        if self.proc.is_main:
            self.run.truncate_log(self.state.step, self.state.epoch)  # what the killed run logged past its checkpoint
        say(f"resuming {self.run.path} at epoch {self.state.epoch}, step {self.state.step}")
        then = ckpt.get("threads")
        if then is not None and then != torch.get_num_threads() and self.proc.device.type == "cpu":
            # float sums are split per thread: another thread count rounds differently
            say(f"note: the run was checkpointed with {then} torch threads and resumes with "
                f"{torch.get_num_threads()}; the losses will not be bit-identical to an uninterrupted run "
                f"(set OMP_NUM_THREADS={then} for that)")

    def save(self, path: Path, tag: str) -> None:
        """A checkpoint of everything (every rank's RNG gathered), written atomically by rank 0."""
        from hanet.io import atomic_torch_save
        from hanet.run import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

        rngs: Any = rng_state()
        if self.proc.distributed:
            import torch.distributed as dist

            gathered: list[Any] = [None] * self.proc.world
            dist.all_gather_object(gathered, rngs)
            rngs = gathered
        if not self.proc.is_main:
            return
        state = self.state
        ckpt = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "tag": tag,
                "config": self.config.to_dict(), "variant": self.opts.variant, "model": self.model.state_dict(),
                "optimizer": self.opt.state_dict(), "scaler": self.scaler.state_dict(),
                "train_state": state.__dict__.copy(), "rng": rngs, "world_size": self.proc.world,
                "threads": torch.get_num_threads(), "epoch": state.epoch, "step": state.step}
        try:
            atomic_torch_save(ckpt, path)
        except WriteError as exc:
            raise WriteError(f"{exc}; the run's last complete checkpoint is intact: free some space and "
                             f"continue with --resume") from None

    def fit(self) -> dict[str, Any]:
        """Epochs until the last, early stop or ``max_steps``; returns the summary."""
        tc, state = self.tc, self.state
        t_start = time.time()
        while state.epoch < tc.epochs:
            if self._train_epoch():  # stopped by max_steps in mid-epoch
                self.save(self.run.last, "max_steps")
                self.proc.say(f"stopped at step {state.step} (--max-steps); resume with --resume")
                break
            if self._end_epoch() or (tc.max_steps and state.step >= tc.max_steps):
                break
        seconds = time.time() - t_start
        self.proc.finish()
        self.proc.say(f"done: best validation rsum {state.best_metric:.2f} at epoch {state.best_epoch}; "
                      f"{state.step} steps in {seconds:.0f} s; run in {self.run.path}")
        return {"best_rsum": state.best_metric, "best_epoch": state.best_epoch, "epochs": state.epoch,
                "steps": state.step, "seconds": seconds}

    def _train_epoch(self) -> bool:
        """The rest of the current epoch; True when ``max_steps`` stopped it before its end."""
        from tqdm import tqdm

        tc, opts, state, device = self.tc, self.opts, self.state, self.proc.device
        self.model.train()
        # Step decay by epoch (official MultiStepLR); set from the epoch, so a resumed run
        # trains at the same rate as an uninterrupted one.
        lr = tc.lr_at(state.epoch)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.sampler.set_epoch(state.epoch, state.epoch_step)
        per_epoch = self.sampler.batches_per_epoch()
        bar = tqdm(total=per_epoch, initial=state.epoch_step, disable=not (opts.progress and self.proc.is_main),
                   desc=f"epoch {state.epoch}", unit="batch", leave=False)
        run_loss, run_n = 0.0, 0
        try:
            for batch in self.make_loader():
                out = self._step(batch.to(device, non_blocking=True))
                loss = float(out.loss.detach())
                if not math.isfinite(loss):
                    raise HanetError(f"loss became {loss} at step {state.step} (epoch {state.epoch}); "
                                     f"try --precision fp32 or a lower --lr")
                state.step += 1
                state.epoch_step += 1
                run_loss, run_n = run_loss + loss, run_n + 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                if state.step % opts.log_every == 0 or state.epoch_step == per_epoch:
                    self._log_losses(lr, run_loss / run_n, out)
                    run_loss, run_n = 0.0, 0
                if opts.save_every and state.step % opts.save_every == 0:
                    self.save(self.run.last, "step")
                if tc.max_steps and state.step >= tc.max_steps:
                    return state.epoch_step < per_epoch
        finally:
            bar.close()
        return False

    def _step(self, batch):
        opt, scaler, tc = self.opt, self.scaler, self.tc
        opt.zero_grad(set_to_none=True)
        with self.autocast():
            out = self.train_model(batch)
        scaler.scale(out.loss).backward()
        if tc.grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        scaler.step(opt)
        scaler.update()
        return out

    def _log_losses(self, lr: float, mean_loss: float, out) -> None:
        parts = torch.tensor([mean_loss, float(out.fusion_loss.detach()), float(out.concept_loss.detach()),
                              float(out.bce_loss.detach())], dtype=torch.float64)
        if self.proc.distributed:  # log the mean over ranks, not rank 0's share alone
            import torch.distributed as dist

            parts = parts.to(self.proc.device)
            dist.all_reduce(parts)
            parts = parts.cpu() / self.proc.world
        if self.proc.is_main:
            self.run.log({"kind": "train", "epoch": self.state.epoch, "step": self.state.step, "lr": lr,
                          "loss": float(parts[0]), "fusion_loss": float(parts[1]), "concept_loss": float(parts[2]),
                          "bce_loss": float(parts[3])})

    def _end_epoch(self) -> bool:
        """Validate on rank 0, share the verdict, checkpoint; True to stop early."""
        state, val, tc = self.state, self.val, self.tc
        rsum = _validate(self.model, val, self.proc, tc.eval_batch_size, state, self.run)
        improved = rsum > state.best_metric if val is not None else True
        if improved:
            state.best_metric, state.best_epoch, state.no_improve = (rsum if val is not None else 0.0), state.epoch, 0
        else:
            state.no_improve += 1
        state.epoch += 1
        state.epoch_step = 0
        if improved:
            self.save(self.run.best, "best")
        self.save(self.run.last, "epoch")
        if self.proc.is_main:
            plot_curves(self.run.read_log(), self.run.path / "curves.png")
        # Official rule: stop once more than `early_stop` epochs in a row have not improved.
        if val is not None and state.no_improve > tc.early_stop:
            self.proc.say(f"early stop: {state.no_improve} epochs without a better validation rsum")
            return True
        return False


def train(config: HANetConfig, opts: TrainOptions) -> dict[str, Any]:
    """Train (or resume) a run. Returns a summary (best metric, epochs, steps, seconds)."""
    trainer = Trainer(config, opts)
    trainer.prepare()
    trainer.build()
    return trainer.fit()


def _validate(model, val, proc: _Process, batch_size: int, state: TrainState, run) -> float:
    from hanet.evaluate import evaluate_split

    rsum = 0.0
    if val is not None and proc.is_main:
        res = evaluate_split(model, val, device=proc.device, batch_size=batch_size, per_score=False, progress=False)
        m = res.metrics["fused"]
        rsum = m["rsum"]
        run.log({"kind": "val", "epoch": state.epoch, "step": state.step, **m})
        proc.say(f"epoch {state.epoch}: val rsum {rsum:.2f} (t2v R@1 {m['ir1']:.1f}, v2t R@1 {m['cr1']:.1f}) "
                 f"[{res.seconds:.1f} s]")
    if proc.distributed:
        import torch.distributed as dist

        t = torch.tensor([rsum], dtype=torch.float64, device=proc.device if proc.device.type == "cuda" else "cpu")
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


__all__ = ["train", "Trainer", "TrainOptions", "EpochSampler", "configure", "load_word_embeddings", "plot_curves"]
