"""``hanet demo``: the whole system on the built-in synthetic world, end to end, on a CPU.

Stages (each cached in the work directory and skipped when its outputs are complete and were
made from the same inputs and settings; anything else is redone, never trusted):

1. ``synth``    render the world (mp4 clips, captions, splits, annotations)
2. ``extract``  EfficientNet-Lite0 features of every clip -> ``features.hdf5``
3. ``prepare``  spaCy: vocabulary, concepts, role graphs -> ``annotations/``
4. ``train``    HANet and the global-only variant (same encoders, video-sentence score only)
5. ``evaluate`` both on the test split and the novel-composition split
6. ``report``   results table, HANet against global-only query by query, concept quality,
                verb-peak timing, example queries through the search index (free text, then
                test captions with the rank of their clip), plots (training curves, a concept
                timeline)

Everything lands in ``WORKDIR`` (default ``hanet-demo``): ``results.md`` / ``results.json``
summarise it, ``plots/*.png`` show it, ``runs/*`` and ``index/`` can be used with the other
commands (``hanet search hanet-demo/index "QUERY"``, ``hanet serve hanet-demo/index``).
"""

from __future__ import annotations

from hanet import options

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from hanet import __version__

DEMO_VERSION = 1


@dataclass
class DemoSettings:
    """What the demo does; ``quick`` is the preset used by the end-to-end test.

    Attributes:
        quick: a tiny world and short training (under 40 s on 2 cores; a smoke test).
        seed: seed of the world and of training.
        world_preset: synth preset (``default`` or ``quick``).
        num_frames: frames sampled per clip for features.
        image_size: network input side (the clips are 128 px; smaller is faster).
        motion_gain: extract the motion stream too, with this gain (``hanet extract --motion``);
            None: appearance features only. On by default: the world tells clips apart by how
            things move, which pooled appearance features barely keep (``docs/demo.md``).
        flow_size: extract the optical-flow stream too, at this size (``hanet extract --flow``);
            None: no flow. On by default: the difference images say what changed, the flow
            images which way it moved (``docs/demo.md``).
        epochs: training epochs per model (early stopping may end sooner).
        lr: learning rate, divided by ``decay_rate`` at each of ``decay_boundaries`` (epochs).
        batch_size: training batch.
        device: where to extract and train.
        examples: example queries offered on the search page and in ``results.md``: test
            captions of different kinds whose clip HANet ranks first.
        caption_queries: test captions also asked as queries, spread over the test split, to
            show where the clip each one describes ranks.
    """

    quick: bool = False
    seed: int = 0
    world_preset: str = "default"
    num_frames: int = 12
    image_size: int = 128
    motion_gain: float | None = 2.0
    flow_size: int | None = 64
    epochs: int = 10
    lr: float = 5e-4
    decay_boundaries: tuple[int, ...] = (5, 8)
    decay_rate: float = 0.3
    batch_size: int = 64
    device: str = "cpu"
    examples: int = 3
    caption_queries: int = 2

    @classmethod
    def for_mode(cls, quick: bool, **overrides: Any) -> "DemoSettings":
        s = cls(quick=quick)
        if quick:
            s.world_preset, s.num_frames, s.image_size, s.flow_size, s.epochs = "quick", 8, 96, 48, 6
            s.decay_boundaries = ()
        for k, v in overrides.items():
            if v is not None:
                setattr(s, k, v)
        return s


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StageBook:
    """Which stages are complete, and from what (``WORKDIR/demo_state.json``)."""

    def __init__(self, work: Path) -> None:
        self.path = work / "demo_state.json"
        self.state: dict[str, Any] = {"version": DEMO_VERSION, "hanet": __version__, "stages": {}}
        if self.path.is_file():
            try:
                st = json.loads(self.path.read_text())
                if st.get("version") == DEMO_VERSION and st.get("hanet") == __version__:
                    self.state = st
            except (json.JSONDecodeError, OSError):
                pass  # unreadable: every stage is redone

    def done(self, stage: str, fingerprint: str) -> bool:
        rec = self.state["stages"].get(stage)
        return bool(rec and rec.get("fingerprint") == fingerprint and rec.get("done"))

    def mark(self, stage: str, fingerprint: str, seconds: float, **info: Any) -> None:
        from hanet.io import atomic_write_json

        self.state["stages"][stage] = {"fingerprint": fingerprint, "done": True, "seconds": round(seconds, 2), **info}
        atomic_write_json(self.path, self.state)

    def run(self, name: str, fingerprint: str, fn: Callable[[], dict[str, Any] | None], outputs: list[Path],
            say: Callable[[str], None]) -> float:
        """Run a stage unless it is done with this fingerprint and its outputs exist; its seconds."""
        if self.done(name, fingerprint) and all(p.exists() for p in outputs):
            say(f"[{name}] up to date, skipped")
            return 0.0
        self.invalidate(name)
        say(f"[{name}] running")
        t = time.time()
        info = fn() or {}
        seconds = time.time() - t
        self.mark(name, fingerprint, seconds, **info)
        say(f"[{name}] done in {seconds:.0f} s")
        return seconds

    def invalidate(self, stage: str) -> None:
        from hanet.io import atomic_write_json

        self.state["stages"].pop(stage, None)
        atomic_write_json(self.path, self.state)


@dataclass
class DemoResult:
    workdir: str
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: stage -> seconds it took when it last ran (a cached stage takes 0 s now)
    stage_seconds_when_run: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    concept_map: dict[str, float] = field(default_factory=dict)
    verb_peaks: dict[str, float] = field(default_factory=dict)
    queries: list[dict[str, Any]] = field(default_factory=list)
    #: split -> HANet (a) against global-only (b), query by query (:func:`hanet.metrics.paired_recall`)
    paired: dict[str, Any] = field(default_factory=dict)
    #: variant -> its tst text-to-video R@1 by kind of caption and kind of mistake
    #: (:func:`hanet.data.synth.t2v_breakdown`)
    breakdown: dict[str, Any] = field(default_factory=dict)
    #: HANet's time spans on tst against the true action spans (:mod:`hanet.world_moments`)
    moments: dict[str, Any] = field(default_factory=dict)


def run_demo(workdir: str | Path = "hanet-demo", settings: Optional[DemoSettings] = None, progress: bool = True,
             say: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> DemoResult:
    """Run (or resume) the demo; returns what it measured."""
    from hanet.io import ensure_dir

    s = settings or DemoSettings()
    work = ensure_dir(workdir, "demo folder")
    book = StageBook(work)
    t_all = time.time()
    times: dict[str, float] = {}

    def stage(name: str, fingerprint: str, fn: Callable[[], dict[str, Any] | None], outputs: list[Path]) -> None:
        times[name] = book.run(name, fingerprint, fn, outputs, say)

    world, fp_world = _stage_world(stage, work, s, progress)
    feats, fp_extract = _stage_features(stage, book, work, world, fp_world, s, progress)
    ann, fp_prepare = _stage_prepare(stage, work, world, fp_world, progress)
    dataset = _write_dataset_description(work, world, feats, ann)
    runs = _train_variants(stage, work, dataset, ann, s, (fp_extract, fp_prepare), progress=progress)

    t = time.time()
    res = DemoResult(workdir=str(work), seconds=0.0)
    res.metrics, res.paired, res.breakdown, models, datasets, ranks = _evaluate(runs, dataset, world, s.device)
    if "hanet" in models and "tst" in datasets:
        from hanet.world_moments import moment_report

        res.moments = moment_report(models["hanet"].cpu(), datasets["tst"], world)
    times["evaluate"] = time.time() - t

    t = time.time()
    _report_parts(res, book, work, world, feats, ann, runs, models, datasets, ranks, s, (fp_extract, fp_prepare))
    times["report"] = time.time() - t
    res.stage_seconds = {k: round(v, 1) for k, v in times.items()}
    res.stage_seconds_when_run = {k: rec["seconds"] for k, rec in book.state["stages"].items()}
    res.seconds = time.time() - t_all
    _write_report(work, res, s)
    return res


def _stage_world(stage: Callable, work: Path, s: DemoSettings, progress: bool) -> tuple[Path, str]:
    """1. The built-in world; returns its folder and fingerprint."""
    from hanet.data.synth import SynthConfig, generate

    world = work / "world"
    wcfg = SynthConfig.preset(s.world_preset)

    def do_synth() -> dict[str, Any]:
        rep = generate(world, wcfg, seed=s.seed, progress=progress)
        return {"clips": sum(rep.split_sizes.values())}

    stage("synth", _hash(wcfg.fingerprint(s.seed), "world"), do_synth, [world / "manifest.json"])
    manifest = json.loads((world / "manifest.json").read_text())
    return world, _hash(manifest.get("fingerprint"), manifest.get("code"))


def _stage_features(stage: Callable, book: "StageBook", work: Path, world: Path, fp_world: str, s: DemoSettings,
                    progress: bool) -> tuple[Path, str]:
    """2. Features of the world's clips; returns the feature file and its fingerprint."""
    from hanet.video.extract import extract_features

    feats = work / "features.hdf5"
    fp_extract = _hash(fp_world, "efficientnet-lite0", s.num_frames, s.image_size, s.motion_gain, s.flow_size)

    def do_extract() -> dict[str, Any]:
        if not book.done("extract", fp_extract) and feats.exists() and not _same_extract(feats, s):
            feats.unlink()  # made with other settings: redo
        videos = sorted((world / "videos").glob("*.mp4"))
        # the decoder, one process, takes a fraction of a core: the network gets every core
        rep = extract_features(videos, feats, backbone="efficientnet-lite0", num_frames=s.num_frames,
                               image_size=s.image_size, device=s.device, progress=progress,
                               motion_gain=s.motion_gain, flow_size=s.flow_size, num_workers=1,
                               threads=os.cpu_count() or 1)
        if rep.failed:
            raise RuntimeError(f"feature extraction failed for {len(rep.failed)} clips: {rep.failed[:3]}")
        return {"videos": len(videos)}

    stage("extract", fp_extract, do_extract, [feats])
    return feats, fp_extract


def _stage_prepare(stage: Callable, work: Path, world: Path, fp_world: str, progress: bool) -> tuple[Path, str]:
    """3. Captions -> vocabulary, concepts, role graphs; returns the folder and its fingerprint."""
    from hanet.config import get_preset
    from hanet.text.prepare import PrepareConfig, prepare_dataset
    from hanet.text.rolegraph import RULES_VERSION

    ann = work / "annotations"
    mcfg = get_preset("synth")
    # the rules' version: a workdir prepared by older role-graph rules is prepared (and trained) again
    fp_prepare = _hash(fp_world, mcfg.model.num_verb_concepts, mcfg.model.num_noun_concepts, RULES_VERSION)

    def do_prepare() -> dict[str, Any]:
        rep = prepare_dataset(world / "ref_captions.json", world / "trn_names.npy", ann,
                              PrepareConfig(num_verb_concepts=mcfg.model.num_verb_concepts,
                                            num_noun_concepts=mcfg.model.num_noun_concepts, progress=progress))
        return {"vocab": rep.vocab_size}

    stage("prepare", fp_prepare, do_prepare, [ann / "sent2rolegraph.augment.json", ann / "word2int.json"])
    return ann, fp_prepare


def _report_parts(res: "DemoResult", book: "StageBook", work: Path, world: Path, feats: Path, ann: Path,
                  runs: dict[str, Path], models: dict, datasets: dict, ranks: Any, s: DemoSettings,
                  fps: tuple[str, str]) -> None:
    """6. Concept quality, plots, the example queries answered from the demo's index."""
    from hanet.index.storage import INDEX_VERSION, MOMENT_FIELDS
    from hanet.io import ensure_dir
    from hanet.run import RunDir
    from hanet.train import plot_curves

    res.concept_map, res.verb_peaks, timeline = _concept_quality(models["hanet"], datasets["tst"], ann, world, feats)
    plots = ensure_dir(work / "plots", "plot folder")
    plot_curves({variant: RunDir(run).read_log() for variant, run in runs.items()}, plots / "training_curves.png")
    if timeline is not None:
        _plot_timeline(timeline, plots / "concept_timeline.png")
    examples = pick_examples(world, ranks, s.examples)
    best = str((runs["hanet"] / "checkpoints" / "best.pt").stat().st_mtime)
    res.queries = _queries(runs["hanet"], feats, world, ann, work / "index", datasets["tst"].names, examples,
                           s.caption_queries,
                           fp=_hash(*fps, best, INDEX_VERSION, MOMENT_FIELDS, examples),  # an index of an older layout is rebuilt
                           book=book)


def _train_variants(stage: Callable, work: Path, dataset: Path, ann: Path, s: DemoSettings,
                    upstream: tuple[str, ...], progress: bool) -> dict[str, Path]:
    """HANet and its global-only variant, one stage each; variant -> run folder."""
    from hanet.config import get_preset
    from hanet.train import TrainOptions, configure, train

    mcfg = get_preset("synth")
    runs = {}
    # The world has fewer concepts than the preset's vocabulary sizes: size the heads to what
    # prepare found, so no classifier is left for concepts that never occur.
    sizes = {k: json.loads((ann / f"{k}_concepts.json").read_text())["size"] for k in ("verb", "noun")}
    overrides = [f"model.num_verb_concepts={max(sizes['verb'], mcfg.model.num_selected_verbs)}",
                 f"model.num_noun_concepts={max(sizes['noun'], mcfg.model.num_selected_nouns)}"]
    for variant in ("hanet", "global"):
        run_dir = work / "runs" / variant
        cfg = configure(get_preset("synth"), dataset, overrides=overrides,
                        train={"epochs": s.epochs, "batch_size": s.batch_size, "lr": s.lr, "seed": s.seed,
                               "num_workers": 0, "decay_boundaries": tuple(s.decay_boundaries),
                               "decay_rate": s.decay_rate})

        def do_train(cfg=cfg, run_dir=run_dir, variant=variant) -> dict[str, Any]:
            if run_dir.exists():
                shutil.rmtree(run_dir)  # half-finished or stale: never trusted
            summary = train(cfg, TrainOptions(data=str(dataset), out=str(run_dir), variant=variant,
                                              device=s.device, progress=progress, log_every=25))
            return {"best_rsum": summary["best_rsum"], "epochs": summary["epochs"]}

        stage(f"train-{variant}", _hash(*upstream, cfg.to_dict(), variant), do_train, [run_dir / "checkpoints" / "best.pt"])
        runs[variant] = run_dir
    return runs


def _same_extract(path: Path, s: DemoSettings) -> bool:
    from hanet.data.features import read_meta
    from hanet.errors import DataError

    try:
        meta = read_meta(str(path))
    except DataError:  # unreadable file: not the same
        return False
    gain, flow = meta.get("motion_gain"), meta.get("flow_size")
    return (int(meta.get("image_size", -1)) == s.image_size and str(meta.get("sampling", "")) == f"num_frames={s.num_frames}"
            and (None if gain is None else float(gain)) == s.motion_gain
            and (None if flow is None else int(flow)) == s.flow_size)


def _write_dataset_description(work: Path, world: Path, feats: Path, ann: Path) -> Path:
    from hanet.io import atomic_write_json

    splits = {}
    for split in ("trn", "val", "tst", "tst_novel"):
        if (world / f"{split}_names.npy").is_file():
            splits[split] = {"names": str(world / f"{split}_names.npy"), "features": str(feats)}
    desc = {"splits": splits, "captions": str(ann / "ref_captions.json"),
            "rolegraphs": str(ann / "sent2rolegraph.augment.json"), "word2int": str(ann / "word2int.json"),
            "concepts": {"verb": str(ann / "verb_gt.json"), "noun": str(ann / "noun_gt.json"),
                         "verb_all": str(ann / "verb_gt_all.json"), "noun_all": str(ann / "noun_gt_all.json")}}
    path = work / "dataset.json"
    atomic_write_json(path, desc)
    return path


def _evaluate(runs: dict[str, Path], dataset: Path, world: Path, device: str):
    from hanet.data.dataset import RetrievalData
    from hanet.data.formats import DatasetSpec
    from hanet.data.synth import t2v_breakdown
    from hanet.evaluate import evaluate_split
    from hanet.metrics import paired_recall
    from hanet.run import model_from_checkpoint

    spec = DatasetSpec.load(dataset)
    metrics: dict[str, Any] = {}
    ranks: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    models = {}
    datasets = {}
    breakdown = {}
    for variant, run in runs.items():
        model, cfg, _ = model_from_checkpoint(run / "checkpoints" / "best.pt", device=device)
        models[variant] = model
        for split in ("tst", "tst_novel"):
            if split not in spec.splits:
                continue
            if split not in datasets:
                datasets[split] = RetrievalData(spec, split, cfg.model)
            r = evaluate_split(model, datasets[split], device=device, batch_size=cfg.train.eval_batch_size,
                               per_score=variant == "hanet", progress=False)
            metrics.setdefault(split, {})[variant] = r.metrics["fused"]
            ranks[variant, split] = (r.t2v_ranks, r.v2t_ranks)
            if variant == "hanet" and split == "tst":
                breakdown["hanet_ranks"] = dict(zip(r.captions, r.t2v_ranks.tolist()))
            if split == "tst":
                breakdown[variant] = t2v_breakdown(world, r.video_names, r.captions, r.scores["fused"].argmax(0),
                                                   *datasets[split].gt_pairs)
            if variant == "hanet":
                metrics.setdefault(f"{split}_per_score", r.metrics)
    hanet_ranks = breakdown.pop("hanet_ranks", {})
    paired = {split: {"t2v": paired_recall(ranks["hanet", split][0], ranks["global", split][0]),
                      "v2t": paired_recall(ranks["hanet", split][1], ranks["global", split][1])}
              for split in datasets if ("hanet", split) in ranks and ("global", split) in ranks}
    return metrics, paired, breakdown, models, datasets, hanet_ranks


def average_precision(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AP of each column: scores, labels (n_items, n_classes); NaN for classes without positives."""
    order = np.argsort(-scores, axis=0, kind="stable")
    lab = np.take_along_axis(labels, order, axis=0).astype(np.float64)
    hits = np.cumsum(lab, axis=0)
    prec = hits / np.arange(1, len(lab) + 1)[:, None]
    npos = lab.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(npos > 0, (prec * lab).sum(0) / npos, np.nan)


def _concept_quality(model, data, ann: Path, world: Path, feats: Path):
    """Concept mAP of video-level predictions, and where verb concepts peak in time."""
    import torch

    from hanet.data.features import FeatureStore
    from hanet.data.synth import load_annotations, verb_spans
    from hanet.evaluate import encode_videos

    with torch.no_grad():
        out = encode_videos(model, data.video_batches(64), "cpu", keep_frame_probs=True)
    names = list(data.names)
    result_map = {}
    vocab = {}
    for kind, probs in (("verb", out.verb_probs), ("noun", out.noun_probs)):
        gt_all = json.loads((ann / f"{kind}_gt_all.json").read_text())
        vocab[kind] = {c: d["id"] for c, d in json.loads((ann / f"{kind}_concepts.json").read_text())["concepts"].items()}
        labels = np.zeros(probs.shape, bool)
        for i, n in enumerate(names):
            for cid in gt_all.get(n, {}):
                labels[i, int(cid)] = True
        ap = average_precision(probs.cpu().numpy(), labels)
        result_map[f"{kind}_mAP"] = float(np.nanmean(ap)) * 100
        # chance: a random ranking's AP is about the positive rate
        result_map[f"{kind}_chance"] = float(np.nanmean(np.where(labels.sum(0) > 0, labels.mean(0), np.nan))) * 100

    anns = load_annotations(world)
    inside, chance, inside_seq, chance_seq = [], [], [], []
    timeline = None
    fp = out.verb_frame_probs.cpu().numpy()
    store = FeatureStore([feats])
    try:
        for i, n in enumerate(names):
            a = anns[n]
            spans = verb_spans(a, main_only=True)
            attrs = store.attrs(n)
            ts = np.asarray(attrs["timestamps"])
            fps = float(attrs["source_fps"])
            total = int(attrs["source_frames"])
            frames = np.floor(ts * fps + 1e-6).astype(int)
            L = int(out.lengths[i])
            sequence = len({(st, en) for v in spans.values() for st, en in v}) > 1
            for lemma, ss in spans.items():
                cid = vocab["verb"].get(lemma)
                if cid is None:
                    continue
                peak = frames[int(np.argmax(fp[i, :L, cid]))]
                hit = any(st <= peak < en for st, en in ss)
                cover = sum(en - st for st, en in ss) / total
                inside.append(hit)
                chance.append(cover)
                if sequence:
                    inside_seq.append(hit)
                    chance_seq.append(cover)
                    if timeline is None and len(spans) >= 2:
                        timeline = {"video": n, "frames": frames[:L].tolist(), "total": total,
                                    "spans": {lem: spans[lem] for lem in spans if lem in vocab["verb"]},
                                    "probs": {lem: fp[i, :L, vocab["verb"][lem]].tolist()
                                              for lem in spans if lem in vocab["verb"]},
                                    "caption": data.captions[n][0]}
    finally:
        store.close()
    peaks = {"inside_span": 100 * float(np.mean(inside)) if inside else float("nan"),
             "chance": 100 * float(np.mean(chance)) if chance else float("nan"),
             "inside_span_sequences": 100 * float(np.mean(inside_seq)) if inside_seq else float("nan"),
             "chance_sequences": 100 * float(np.mean(chance_seq)) if chance_seq else float("nan"),
             "verbs": len(inside), "verbs_in_sequences": len(inside_seq)}
    return result_map, peaks, timeline


def _plot_timeline(tl: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (lem, probs) in enumerate(tl["probs"].items()):
        c = colors[k % len(colors)]
        ax.plot(tl["frames"], probs, marker="o", color=c, label=f"concept '{lem}'")
        for st, en in tl["spans"].get(lem, []):
            ax.axvspan(st - 0.5, en - 0.5, color=c, alpha=0.15)
    ax.set(xlim=(-0.5, tl["total"] - 0.5), xlabel="frame", ylabel="verb concept probability",
           title=f"{tl['video']}: \"{tl['caption']}\" (shaded: true action spans)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from hanet.io import atomic_write

    try:
        atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)


#: Kinds of example queries, in the order offered: two actions in order (their spans show the
#: order), an interaction, a single action.
EXAMPLE_KINDS = ("sequence", "interaction", "one_action")


def pick_examples(world: Path, ranks: dict[str, int], count: int) -> list[tuple[str, str]]:
    """Test captions that make good example queries: of different kinds, whose clip HANet ranks
    first, of a readable length; ``[(caption, its clip), ...]``.

    Args:
        world: the world (its annotations tell each caption's kind).
        ranks: caption -> 0-based rank of its clip (HANet, text to video, ``tst``).
        count: how many.
    """
    from hanet.data.synth import load_annotations
    from hanet.data.synth.analysis import caption_kind

    anns = load_annotations(world)
    caps = json.loads((world / "ref_captions.json").read_text())
    owner = {c: n for n in anns if anns[n]["split"] == "tst" for c in caps.get(n, [])}
    found: dict[str, list[tuple[str, str]]] = {k: [] for k in EXAMPLE_KINDS}
    for cap, rank in sorted(ranks.items()):
        n = owner.get(cap)
        if n is None or rank != 0 or not 5 <= len(cap.split()) <= 12:
            continue
        kind = caption_kind(anns[n], cap)
        if kind in found and (kind != "sequence" or " then " in f" {cap} "):
            found[kind].append((cap, n))
    out: list[tuple[str, str]] = []
    for k in range(max(count, 1)):  # one of each kind in turn, then more of each
        for kind in EXAMPLE_KINDS:
            if len(found[kind]) > k and len(out) < count and all(found[kind][k][1] != v for _, v in out):
                out.append(found[kind][k])
    return out


def _queries(run: Path, feats: Path, world: Path, ann: Path, index_dir: Path, names: list[str],
             examples: list[tuple[str, str]], caption_queries: int, fp: str, book: StageBook) -> list[dict[str, Any]]:
    """Answer the example queries with a search index over the test clips (the index offers
    them on its search page).

    The examples come first (:func:`pick_examples`), then ``caption_queries`` test captions
    spread over the split; each with the clip it describes (``target``) and where that clip
    ranks (``target_rank``, 1-based).
    """
    from hanet.index import SearchIndex, build_index

    caps = json.loads((ann / "ref_captions.json").read_text())
    if not book.done("index", fp) or not (index_dir / "manifest.json").exists():
        if index_dir.exists():
            shutil.rmtree(index_dir)
        t = time.time()
        build_index(run, feats, index_dir, names=list(names), videos_dir=world / "videos",
                    captions={n: caps[n] for n in names},
                    rolegraphs=ann / "sent2rolegraph.augment.json", concepts=ann,
                    examples=[q for q, _ in examples])
        book.mark("index", fp, time.time() - t)
    index = SearchIndex.open(index_dir)
    asked: list[tuple[str, str]] = list(examples)
    m = min(caption_queries, len(names))
    asked += [(caps[n][0], n) for n in (names[i * len(names) // m] for i in range(m))] if m else []
    out = []
    for q, target in asked:
        # rank every clip exactly, so that the described clip's place is known beyond the top 3
        hit_list = index.search(q, k=len(names), mode="exhaustive")
        rows = []
        for h in hit_list[:3]:
            why = index.explain(q, h.video_id)
            d = why.to_dict()
            rows.append({"video": h.video_id, "score": round(float(h.score), 4), "caption": caps[h.video_id][0],
                         "is_target": h.video_id == target,
                         "moment": h.moment.to_dict() if h.moment is not None else None,
                         "phrase_moments": [(p.text, p.span.format()) for p in h.phrases],
                         "verb_concepts": [c["concept"] if isinstance(c, dict) else c for c in
                                           d.get("video_concepts", {}).get("verb", [])[:4]],
                         "noun_concepts": [c["concept"] if isinstance(c, dict) else c for c in
                                           d.get("video_concepts", {}).get("noun", [])[:4]]})
        rank = next((i + 1 for i, h in enumerate(hit_list) if h.video_id == target), None)
        out.append({"query": q, "target": target, "target_rank": rank, "candidates": len(names), "top": rows,
                    "example": (q, target) in examples})
    return out


def _fmt_metrics_table(metrics: dict[str, Any]) -> list[str]:
    lines = ["| split | model | t2v R@1 | R@5 | R@10 | MedR | v2t R@1 | R@5 | R@10 | MedR | rsum |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for split in ("tst", "tst_novel"):
        for variant in ("hanet", "global"):
            m = metrics.get(split, {}).get(variant)
            if m is None:
                continue
            lines.append(f"| {split} | {variant} | {m['ir1']:.1f} | {m['ir5']:.1f} | {m['ir10']:.1f} | {m['imedr']:.0f} | "
                         f"{m['cr1']:.1f} | {m['cr5']:.1f} | {m['cr10']:.1f} | {m['cmedr']:.0f} | {m['rsum']:.1f} |")
    return lines


_KIND_LABELS = {"one_action": "one action (over the clip or part of it)",
                "sequence": "two actions, both named in order (\"... and then ...\")",
                "one_of_two": "two actions, one of them named",
                "interaction": "two objects interacting (collide, chase, pass)"}


def _fmt_breakdown(breakdown: dict[str, Any]) -> list[str]:
    """The tst text-to-video R@1 of both variants by kind of caption, and their wrong first answers."""
    if set(breakdown) != {"hanet", "global"}:
        return []
    h, g = breakdown["hanet"], breakdown["global"]
    lines = ["", "Text to video R@1 on tst by kind of caption (the clip's ground truth says which):", "",
             "| captions of clips with | queries | HANet | global-only |", "| --- | ---: | ---: | ---: |"]
    for kind, label in _KIND_LABELS.items():
        lines.append(f"| {label} | {h['kinds'][kind]['queries']} | {h['kinds'][kind]['r1']:.1f} | "
                     f"{g['kinds'][kind]['r1']:.1f} |")
    lines.append(f"| all | {h['queries']} | {h['r1']:.1f} | {g['r1']:.1f} |")

    def wrong(b: dict[str, Any]) -> str:
        e = b["errors"]
        look = e["look_alike_action"] + e["look_alike_companion"] + e["look_alike_appearance"]
        return (f"a look-alike {look:.1f}% (it does something else {e['look_alike_action']:.1f}, other "
                f"companions {e['look_alike_companion']:.1f}, looks different {e['look_alike_appearance']:.1f}), "
                f"another group's clip {e['other_group']:.1f}%")

    lines += ["", f"Wrong first answers, share of all queries: HANet {wrong(h)}; global-only {wrong(g)}."]
    return lines


def _fmt_moments(m: dict[str, Any]) -> list[str]:
    """HANet's time spans against the true action spans, and rules that see no pixel."""
    if not m.get("kinds"):
        return []
    lines = ["", f"Where in the clip (time spans, docs/search.md) on the {m['videos']} test clips with two actions in "
             "sequence: mean temporal IoU with the true action span, then the moment benchmark's R1@0.5 / R1@0.7 / "
             "mAP (the rules are chosen on these very clips, an oracle's best):", "",
             "| captions | spans | HANet | whole clip | best fixed span | order-aware rule |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]

    def cell(v: Optional[dict[str, float]]) -> str:
        return "-" if v is None else f"{v['miou']:.3f} ({v['r1_50']:.0f} / {v['r1_70']:.0f} / {v['map']:.0f})"

    for kind, k in m["kinds"].items():
        label = "name one of the two actions" if kind == "one action" else "name both in order (one span per verb)"
        rows = [(label, k)] + [(f"... of which the {which} action", part) for which, part in k.get("by_action", {}).items()]
        for name, part in rows:
            f = part["methods"]
            lines.append(f"| {name} | {part['items']} | {cell(f['model'])} | {cell(f['whole clip'])} | "
                         f"{cell(f['best fixed span'])} | {cell(f.get('order-aware rule'))} |")
    if m.get("unparsed"):
        lines += ["", f"({m['unparsed']} captions name both actions but their parse has a verb phrase for only one: "
                  "left out of both rows.)"]
    return lines


def _write_report(work: Path, res: DemoResult, s: DemoSettings) -> None:
    from hanet.io import atomic_write_bytes, atomic_write_json

    atomic_write_json(work / "results.json", {"settings": asdict(s), **asdict(res)})
    def took(k: str, v: float) -> str:
        then = res.stage_seconds_when_run.get(k)
        return f"{k} {v:.0f} s" if v > 0 or then is None else f"{k} cached ({then:.0f} s when run)"

    md = ["# hanet demo results", "", f"Work directory `{work}`, {res.seconds:.0f} s "
          f"({', '.join(took(k, v) for k, v in res.stage_seconds.items())}).", ""]
    if s.quick:
        from hanet.data.synth import SynthConfig

        sizes = SynthConfig.preset(s.world_preset).split_sizes()
        md += [f"`--quick` proves the pipeline end to end on {sum(sizes.values())} small clips and {s.epochs} "
               f"epochs; with {sizes['tst']} test clips its numbers say nothing about which model is better "
               "(the default run does).", ""]
    md += ["## Retrieval (test split and novel compositions)", ""] + _fmt_metrics_table(res.metrics)
    pt = res.paired.get("tst", {}).get("t2v")
    if pt:
        md += ["", "Query by query on tst, text to video (HANet / global-only; queries only one of them finds "
               "within the top K; exact McNemar p): " + "; ".join(
                   f"{k} {c['a']:.1f} / {c['b']:.1f}, {c['a_only']} / {c['b_only']}, p={c['p']:.2g}" for k, c in pt.items())]
    md += _fmt_breakdown(res.breakdown)
    md += _fmt_moments(res.moments)
    per = res.metrics.get("tst_per_score")
    if per:
        md += ["", "HANet's scores alone on tst (t2v R@1 / rsum): "
               + ", ".join(f"{k} {v['ir1']:.1f} / {v['rsum']:.0f}" for k, v in per.items())]
    cm, vp = res.concept_map, res.verb_peaks
    md += ["", "## Concepts (test split)", "",
           f"* video-level concept mAP: verbs {cm.get('verb_mAP', float('nan')):.1f} "
           f"(chance {cm.get('verb_chance', float('nan')):.1f}), nouns {cm.get('noun_mAP', float('nan')):.1f} "
           f"(chance {cm.get('noun_chance', float('nan')):.1f})",
           f"* a verb concept's peak frame falls inside the true action span for {vp.get('inside_span', float('nan')):.1f}% "
           f"of the clips' verbs (a random frame: {vp.get('chance', float('nan')):.1f}%); in clips with two actions in "
           f"sequence {vp.get('inside_span_sequences', float('nan')):.1f}% "
           f"(random: {vp.get('chance_sequences', float('nan')):.1f}%)", "", "## Example queries", ""]
    for q in res.queries:
        what = "an example query the search page offers, " if q.get("example") else ""
        md.append(f"**\"{q['query']}\"** ({what}a caption of test clip `{q['target']}`; HANet ranks that clip "
                  f"{q['target_rank']} of {q['candidates']})")
        md.append("")
        for i, r in enumerate(q["top"], 1):
            mark = " **<- the clip it describes**" if r.get("is_target") else ""
            when = ""
            if r.get("moment"):
                m = r["moment"]
                when = (f" at {m['start']:.1f}\u2013{m['end']:.1f} s" if m.get("start") is not None
                        else f" at frames {m['first_frame']}\u2013{m['last_frame']}")
                if r.get("phrase_moments") and len(r["phrase_moments"]) > 1:
                    when += " (" + ", ".join(f"\"{t}\" {w}" for t, w in r["phrase_moments"]) + ")"
            md.append(f"{i}. `{r['video']}` ({r['score']:.3f}){when} — \"{r['caption']}\"; predicted verbs "
                      f"{', '.join(r['verb_concepts']) or '-'}; nouns {', '.join(r['noun_concepts']) or '-'}{mark}")
        md.append("")
    md += ["Plots: `plots/training_curves.png`, `plots/concept_timeline.png`. Search the index: "
           f"`hanet search {work / 'index'} \"{res.queries[0]['query'] if res.queries else 'a red circle bounces'}\" "
           f"--phrases`, `hanet serve {work / 'index'}`."]
    atomic_write_bytes(work / "results.md", ("\n".join(md) + "\n").encode())


# ---------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default="hanet-demo", help="where everything goes (default ./hanet-demo)")
    p.add_argument("--quick", action="store_true", help="a tiny world and short training (about 30 s on 2 cores; "
                   "a smoke test whose numbers compare nothing)")
    p.add_argument("--epochs", type=options.COUNT, help="training epochs per model")
    p.add_argument("--seed", type=options.SEED, help="seed of the world and of training (default 0)")
    p.add_argument("--device", default=None, help="cpu (default) or cuda")
    p.add_argument("--force", action="store_true", help="redo every stage")
    p.add_argument("--no-motion", action="store_true",
                   help="no difference-image stream (with --no-flow: appearance features only; for comparison)")
    p.add_argument("--no-flow", action="store_true", help="no optical-flow stream (for comparison)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (the stage lines stay)")


def run(args: argparse.Namespace) -> int:
    s = DemoSettings.for_mode(args.quick, epochs=args.epochs, seed=args.seed, device=args.device)
    if args.no_motion:
        s.motion_gain = None
    if args.no_flow:
        s.flow_size = None
    work = Path(args.workdir)
    if args.force and (work / "demo_state.json").exists():
        (work / "demo_state.json").unlink()
    res = run_demo(work, s, progress=not args.no_progress)
    print((work / "results.md").read_text())
    print(f"total {res.seconds:.0f} s; everything is in {work}/", file=sys.stderr)
    return 0
