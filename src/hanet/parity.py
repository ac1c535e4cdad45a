"""``hanet parity``: check this implementation against numbers the official code produced.

A reference directory holds (as the one shipped with the package, :data:`DEFAULT_REFERENCE`;
its ``README.md`` documents every key):

* ``reference_outputs.npz``: the official outputs;
* ``data/``: the dataset they were computed from, in the released format;
* the official ``model.json`` as the npz string ``config_json`` or the file ``model_config.json``;
* optionally ``supplement.npz``: true initial and after-one-step states (see below);
* optionally ``reference.json``: ``{"seed": N}``, the seed the official model was built with.

Each group of numbers is compared and reported on one line with its max abs difference;
the command fails if any difference exceeds the tolerance (1e-5) or a metric differs at all.

The initial state: a reference records the official model's state right after construction
(``init_state``). The first recording of the shipped set stored state-dict *references*, so its
``init_state`` and ``after_step_state`` hold the final ``eval_state`` values; its
``supplement.npz`` holds the true states, computed afresh. Where a set has no true initial state,
the model is built as the official one after ``torch.manual_seed(seed)`` (:class:`HANet`'s
``seed`` replays that draw for draw) with the seed the npz records (key ``seed``) or ``--seed``,
and the run says which; the loss and gradients then confirm or refute it.

One Adam step: the first step moves each weight by ``lr * g / (|g| + eps)``, which is ``+-lr``
wherever ``|g| >> eps`` and flips sign with ``g``. Where the official gradient is near zero
(a bias feeding BatchNorm or a softmax, whose true gradient is 0), two correct implementations
disagree there by float noise, and the step by up to ``2 * lr``. So the step is judged exactly
where the official gradient is clearly non-zero (:func:`adam_step_threshold`) and only bounded
(a move of at most ``lr``) elsewhere.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from hanet.config import HANetConfig
from hanet.errors import HanetError
# the tolerance and the reference set shipped inside the package (so ``hanet parity`` works from
# a wheel) live with the command, whose --help needs no torch
from hanet.parity_cli import DEFAULT_REFERENCE, TOLERANCE

ADAM_EPS = 1e-8  # torch's and the official code's default


@dataclass
class Check:
    group: str
    max_diff: float
    ok: bool
    note: str = ""

    def line(self) -> str:
        status = "ok  " if self.ok else "FAIL"
        diff = "exact" if self.max_diff == 0 else f"{self.max_diff:.3e}"
        return f"{status} {self.group:<40} max|diff| {diff:>10}  {self.note}".rstrip()


def _states(npz: Any, prefix: str) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for k in npz.files:
        if k.startswith(prefix + "/"):
            side, name = k[len(prefix) + 1:].split("/", 1)
            out.setdefault(side, {})[name] = npz[k]
    return out


def _aliased(a: dict, b: dict) -> bool:
    return bool(a) and all(np.array_equal(a[s][k], b[s][k]) for s in a for k in a[s] if s in b and k in b[s])


def _maxdiff(pairs: list[tuple[Any, Any]]) -> float:
    m = 0.0
    for ours, ref in pairs:
        o = ours.detach().cpu().double().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours, np.float64)
        r = np.asarray(ref, np.float64)
        if o.shape != r.shape:
            if o.size == r.size:
                o = o.reshape(r.shape)
            else:
                return float("inf")
        if o.size:
            m = max(m, float(np.abs(o - r).max()))
    return m


def load_reference_config(ref_dir: Path, npz: Any) -> HANetConfig:
    if "config_json" in npz.files:
        text = str(npz["config_json"])
    elif (ref_dir / "model_config.json").is_file():
        text = (ref_dir / "model_config.json").read_text()
    else:
        raise HanetError(f"{ref_dir}: no config_json in the npz and no model_config.json")
    return HANetConfig.from_official(json.loads(text), name="reference")


# ---------------------------------------------------------------------- the Adam step rule
def adam_step_threshold(grad_diff: float, lr: float, tolerance: float, eps: float = ADAM_EPS) -> float:
    """The official gradient magnitude above which a first Adam step is compared exactly.

    With gradients that disagree by at most ``grad_diff``, the two steps
    ``lr * g / (|g| + eps)`` differ by about ``lr * eps * grad_diff / (|g| + eps)^2``; that stays
    within half the tolerance once ``|g| >= sqrt(2 * lr * eps * grad_diff / tolerance)``, and the
    estimate holds once ``|g|`` is well above the disagreement itself (ten times).
    """
    return max(10.0 * grad_diff, math.sqrt(2.0 * lr * eps * max(grad_diff, 0.0) / tolerance), 10.0 * eps)


@dataclass
class StepComparison:
    """The first Adam step, compared where it is determined and bounded elsewhere.

    Attributes:
        judged_diff: max |ours - official| after the step where the official gradient is above
            the threshold (and over every BatchNorm buffer).
        free_excess: how far beyond ``lr`` (relative 1e-3 slack) the largest move went where it
            is not determined (0 when every such move is within it).
        judged, free: element counts of the two kinds.
        largest_free_move: the largest move among the undetermined elements (ours or theirs).
        threshold: the gradient magnitude that separates them.
    """

    judged_diff: float
    free_excess: float
    judged: int
    free: int
    largest_free_move: float
    threshold: float


def compare_adam_step(ours_after: dict[str, torch.Tensor], ref_after: dict[str, torch.Tensor],
                      before: dict[str, torch.Tensor], ref_grads: dict[str, torch.Tensor], lr: float,
                      tolerance: float, grad_diff: float) -> StepComparison:
    """Judge a first Adam step against the official one (see the module docstring).

    Args:
        ours_after, ref_after, before: state dicts (our names) after our step, after theirs, before.
        ref_grads: the official gradient of each parameter (our names); entries without one
            (BatchNorm running statistics) are compared exactly.
        lr: the learning rate.
        tolerance: allowed difference where the step is determined.
        grad_diff: max |our gradient - official gradient| (from the gradient check).
    """
    threshold = adam_step_threshold(grad_diff, lr, tolerance)
    judged_diff = excess = largest = 0.0
    judged = free = 0
    for name, ours in ours_after.items():
        o, r = ours.detach().double(), ref_after[name].detach().double()
        g = ref_grads.get(name)
        if g is None or not o.is_floating_point():
            judged_diff = max(judged_diff, float((o - r).abs().max()) if o.numel() else 0.0)
            judged += o.numel()
            continue
        sure = g.detach().double().abs() >= threshold
        if sure.any():
            judged_diff = max(judged_diff, float((o - r).abs()[sure].max()))
        judged += int(sure.sum())
        loose = ~sure
        if loose.any():
            b = before[name].detach().double()
            move = torch.maximum((o - b).abs()[loose], (r - b).abs()[loose])
            largest = max(largest, float(move.max()))
            excess = max(excess, float((move - lr * (1 + 1e-3)).clamp(min=0).max()))
        free += int(loose.sum())
    return StepComparison(judged_diff, excess, judged, free, largest, threshold)


# ---------------------------------------------------------------------- the run
@dataclass
class _Parity:
    """What the phases of one parity run share."""

    ref_dir: Path
    z: Any
    sup: Any
    cfg: HANetConfig
    tolerance: float
    report: Callable[[str], None]
    checks: list[Check] = field(default_factory=list)
    spec: Any = None
    grad_diff: float = 0.0

    def add(self, group: str, diff: float, note: str = "", exact: bool = False) -> None:
        ok = diff == 0 if exact else diff <= self.tolerance
        c = Check(group, diff, ok, note)
        self.checks.append(c)
        self.report(c.line())

    def batch(self):
        from hanet.data.batch import TrainBatch

        return TrainBatch.from_official({k[len("train_batch/"):]: self.z[k] for k in self.z.files
                                         if k.startswith("train_batch/")})


def _check_reader(p: _Parity) -> None:
    """Our reader rebuilds the official training batch from ``data/``."""
    from hanet.data.dataset import PairDataset, RetrievalData, collate_pairs
    from hanet.data.formats import DatasetSpec

    data_dir = p.ref_dir / "data"
    p.spec = DatasetSpec.load(data_dir) if data_dir.is_dir() else None
    if p.spec is None or "train_pair_index" not in p.z.files:
        p.report("skip reader: train_batch from data/ (no data/ or train_pair_index)")
        return
    ref_batch = {k[len("train_batch/"):]: p.z[k] for k in p.z.files if k.startswith("train_batch/")}
    trn = RetrievalData(p.spec, "trn", p.cfg.model, with_concepts=True)
    pairs = PairDataset(trn)
    ours = collate_pairs([pairs[int(i)] for i in p.z["train_pair_index"]])
    fields = [(ours.video.features, "attn_fts"), (ours.video.lengths, "attn_lens"), (ours.text.word_ids, "sent_ids"),
              (ours.text.lengths, "sent_lens"), (ours.text.verb_masks, "verb_masks"),
              (ours.text.noun_masks, "noun_masks"), (ours.text.node_roles, "node_roles"),
              (ours.text.edges, "rel_edges"), (ours.concepts.verb_labels, "verb_concept_label"),
              (ours.concepts.noun_labels, "noun_concept_label"), (ours.concepts.verb_mask, "verb_concept_mask"),
              (ours.concepts.noun_mask, "noun_concept_mask")]
    same_names = list(ours.video.names) == [str(n) for n in ref_batch.get("names", ours.video.names)]
    p.add("reader: train_batch from data/", _maxdiff([(o, ref_batch[k]) for o, k in fields]) + (0 if same_names else 1),
          f"{len(fields)} arrays + names", exact=True)


def _initial_model(p: _Parity, seed: Optional[int]):
    """The model in the official initial state: the true state when the reference has one."""
    from hanet.model import HANet
    from hanet.model.official import from_official_state

    init, evals = _states(p.z, "init_state"), _states(p.z, "eval_state")
    true_init = None
    if p.sup is not None and any(k.startswith("init_state/") for k in p.sup.files):
        true_init, where = _states(p.sup, "init_state"), "supplement.npz"
    elif init and not _aliased(init, evals):
        true_init, where = init, "the npz"
    recorded = _recorded_seed(p)
    given = seed is not None
    if seed is None:
        seed = recorded
    if true_init is not None:
        model = HANet(p.cfg.model, seed=0 if seed is None else seed)
        ref_sd = from_official_state(true_init, model)
        if seed is not None:
            p.add(f"init: HANet(seed={seed}) = official", _maxdiff([(v, ref_sd[k]) for k, v in model.state_dict().items()]),
                  f"the official model after torch.manual_seed({seed}) ({where})")
        else:
            p.report(f"note init: the true initial state from {where} (no seed recorded: the seeded "
                     f"initialisation is not checked; pass --seed to check it)")
        model.load_state_dict(ref_sd)
        return model
    how = "--seed" if given else "recorded with the reference" if seed is not None else \
        "assumed: the reference records no seed; pass --seed"
    seed = 0 if seed is None else seed
    p.report(f"note init: the npz holds no true initial state (init_state equals eval_state); using "
             f"HANet(seed={seed}) ({how}), to be confirmed by the loss and gradients below")
    return HANet(p.cfg.model, seed=seed)


def _recorded_seed(p: _Parity) -> Optional[int]:
    """The seed of the official model: the npz's ``seed`` key, else ``reference.json``'s."""
    if "seed" in p.z.files:
        return int(p.z["seed"])
    meta = p.ref_dir / "reference.json"
    if meta.is_file():
        try:
            value = json.loads(meta.read_text()).get("seed")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise HanetError(f"{meta}: unreadable ({exc})") from None
        return None if value is None else int(value)
    return None


def _check_training(p: _Parity, model) -> None:
    """Training loss, gradients and one Adam step (train mode: BatchNorm on batch statistics)."""
    from hanet.model.official import from_official_state, official_name

    model.train()
    out = model(p.batch())
    p.add("train: loss", _maxdiff([(out.loss, p.z["train/loss"])]))
    model.zero_grad()
    out.loss.backward()
    grads, ref_grads = [], {}
    for name, prm in model.named_parameters():
        side, off = official_name(name)
        key = f"train_grad/{side}/{off}"
        if key in p.z.files:
            ref = torch.as_tensor(p.z[key]).reshape(prm.shape)
            grads.append((prm.grad if prm.grad is not None else torch.zeros_like(prm), ref))
            ref_grads[name] = ref
    p.grad_diff = _maxdiff(grads)
    p.add("train: gradients", p.grad_diff, f"{len(grads)} tensors")

    after = None
    if p.sup is not None and any(k.startswith("after_step_state/") for k in p.sup.files):
        after, src = _states(p.sup, "after_step_state"), "supplement.npz"
    elif not _aliased(_states(p.z, "after_step_state"), _states(p.z, "eval_state")):
        after, src = _states(p.z, "after_step_state"), "npz"
    if not after:
        p.report("skip train: state after one Adam step (no true after-step state available)")
        return
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.optim.Adam(model.parameters(), lr=p.cfg.train.lr, eps=ADAM_EPS).step()
    step = compare_adam_step(model.state_dict(), from_official_state(after, model), before, ref_grads,
                             p.cfg.train.lr, p.tolerance, p.grad_diff)
    p.add("train: state after one Adam step", step.judged_diff,
          f"{step.judged} values where the official gradient is >= {step.threshold:.1e}, + BatchNorm buffers ({src})")
    p.add("train: undetermined steps moved <= lr", step.free_excess,
          f"{step.free} values with a near-zero gradient, largest move {step.largest_free_move:.2e}")


def _check_eval(p: _Parity, model) -> None:
    """Eval-mode encoders and the seven scores on the training batch, from ``eval_state``."""
    from hanet.model import SCORE_NAMES
    from hanet.model.official import from_official_state

    model.load_state_dict(from_official_state(_states(p.z, "eval_state"), model))
    model.eval()
    batch = p.batch()
    with torch.no_grad():
        v = model.encode_video(batch.video.features, batch.video.lengths)
        t = model.encode_text(batch.text)
        s = model.score(v, t)
    z = p.z
    vid = [(v.global_embeds, "vid_sent_embeds"), (v.verb_clips, "vid_verb_embeds"), (v.noun_clips, "vid_noun_embeds"),
           (v.verb_frames, "local_vid_embeds.0"), (v.noun_frames, "local_vid_embeds.1"), (v.verb_probs, "logits.0"),
           (v.noun_probs, "logits.1"), (v.top_verbs, "logits.2"), (v.top_nouns, "logits.3")]
    p.add("eval: video encoder", _maxdiff([(o, z["eval_video/" + k]) for o, k in vid]), f"{len(vid)} outputs")
    txt = [(t.global_embeds, "sent_embeds"), (t.verb_embeds, "verb_embeds"), (t.noun_embeds, "noun_embeds"),
           (t.verb_phrases, "local_sent_embeds.0"), (t.noun_phrases, "local_sent_embeds.1"),
           (t.verb_probs, "sent_logits.0"), (t.noun_probs, "sent_logits.1"), (t.verb_lens, "verb_lens"),
           (t.noun_lens, "noun_lens")]
    # Empty phrase slots hold -1e10 (the official fill value) in local_sent_embeds; they match exactly.
    p.add("eval: text encoder", _maxdiff([(o, z["eval_text/" + k]) for o, k in txt]), f"{len(txt)} outputs")
    p.add("eval: seven score matrices", _maxdiff([(getattr(s, n), z["eval_scores/" + n]) for n in SCORE_NAMES]))


def _check_test_split(p: _Parity, model) -> None:
    """The test split end to end: the seven matrices and the official metrics of their fusion."""
    from hanet.data.dataset import RetrievalData
    from hanet.evaluate import encode_videos, score_matrices
    from hanet.metrics import retrieval_metrics
    from hanet.model import SCORE_NAMES
    from hanet.model.scoring import ScoreOutput

    z = p.z
    if p.spec is None or "tst" not in p.spec.splits or "test/scores" not in z.files:
        p.report("skip test split (no data/tst or no test/scores)")
        return
    tst = RetrievalData(p.spec, "tst", p.cfg.model)
    bs = p.cfg.train.eval_batch_size
    with torch.no_grad():
        videos = encode_videos(model, tst.video_batches(bs), "cpu")
        mats = score_matrices(model, videos, tst.caption_batches(bs), len(tst.unique_captions), "cpu",
                              names=list(SCORE_NAMES), progress=False)
    ref_vids = [str(x) for x in z["test/vid_names"]]
    ref_caps = [str(x) for x in z["test/cap_names"]]
    if ref_vids != list(tst.names) or sorted(ref_caps) != sorted(tst.unique_captions):
        p.add("test: split contents", float("inf"), "videos or captions differ from the reference")
        return
    col = {c: i for i, c in enumerate(tst.unique_captions)}
    order = np.array([col[c] for c in ref_caps])
    ours_scores = np.stack([mats[n][:, order] for n in SCORE_NAMES])
    p.add("test: score matrices", _maxdiff([(ours_scores, z["test/scores"])]),
          f"{ours_scores.shape} (captions aligned by text)")
    fused = model.fused_score(ScoreOutput(*torch.from_numpy(ours_scores))).numpy()  # the one fusion rule
    gv, gc = tst.gt_pairs
    inv = np.argsort(order)  # our column j sits at position inv[j] of the reference order
    metrics = retrieval_metrics(fused, gv, inv[gc])
    ref_m = {k[len("test/metrics/"):]: float(z[k]) for k in z.files if k.startswith("test/metrics/")}
    diffs = {k: abs(metrics[k] - ref_m[k]) for k in ref_m}
    bad = [k for k, d in diffs.items() if d != 0]
    p.add("test: metrics (must be equal)", max(diffs.values(), default=0.0),
          ", ".join(f"{k}={metrics[k]:.4g}" for k in ("ir1", "cr1", "rsum")) + (f"; differ: {bad}" if bad else ""),
          exact=True)


def run_parity(ref_dir: str | Path = DEFAULT_REFERENCE, tolerance: float = TOLERANCE,
               report: Callable[[str], None] = print, seed: Optional[int] = None) -> list[Check]:
    """Run every comparison and return the checks (also reported line by line).

    Args:
        ref_dir: the reference directory.
        tolerance: max abs difference allowed.
        report: receives each line.
        seed: the official seed of the reference's initial state, when it holds no true state
            and records none (see the module docstring).
    """
    ref_dir = Path(ref_dir)
    npz_path = ref_dir / "reference_outputs.npz"
    if not npz_path.is_file():
        raise HanetError(f"{ref_dir}: no reference_outputs.npz")
    z = np.load(npz_path, allow_pickle=False)
    sup_path = ref_dir / "supplement.npz"
    sup = np.load(sup_path, allow_pickle=False) if sup_path.is_file() else None
    p = _Parity(ref_dir, z, sup, load_reference_config(ref_dir, z), tolerance, report)
    torch.use_deterministic_algorithms(False)
    _check_reader(p)
    model = _initial_model(p, seed)
    _check_training(p, model)
    _check_eval(p, model)
    _check_test_split(p, model)
    return p.checks


__all__ = ["run_parity", "Check", "TOLERANCE", "DEFAULT_REFERENCE", "adam_step_threshold", "compare_adam_step",
           "StepComparison"]
