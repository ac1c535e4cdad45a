"""What building an index reads: the run's model and vocabulary, concept names, feature
files, name lists and captions; and the report of what a build kept and skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from hanet.errors import DataError, HanetError
from hanet.index.first_stage import PARTS as STAGE_PARTS
from hanet.index.first_stage import first_stage_vectors


@dataclass
class BuildReport:
    """What a build or add did.

    Attributes:
        index_dir: the index.
        added: ids of the videos encoded and added.
        skipped: ids already in the index (not re-encoded).
        replaced: ids re-encoded whose old rows were deleted (``replace=True``).
        captions_added: captions indexed for video-to-text search.
        thumbnails: strips written.
        thumbnail_failures: ``"id: reason"`` for videos whose strip could not be made.
        unusable: ``"file: video: reason"`` for videos left out because their features cannot be
            read (not a dataset, wrong shape or type, NaN...).
        attributes_left_out: ``"id: reason"`` for per-video attributes (frame times, duration)
            not recorded because they are malformed; the video is indexed without them.
        generation: the manifest generation after the last commit.
        seconds: wall time.
    """

    index_dir: str
    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    captions_added: int = 0
    thumbnails: int = 0
    thumbnail_failures: list[str] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)
    attributes_left_out: list[str] = field(default_factory=list)
    generation: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        s = (f"{self.index_dir}: added {len(self.added)} video(s)"
             + (f", replaced {len(self.replaced)}" if self.replaced else "")
             + (f", skipped {len(self.skipped)} already indexed" if self.skipped else "")
             + (f", {self.captions_added} caption(s)" if self.captions_added else "")
             + f", {self.thumbnails} thumbnail strip(s) in {self.seconds:.1f} s (generation {self.generation})")
        if self.thumbnail_failures:
            s += f"\n  no thumbnail for {len(self.thumbnail_failures)} video(s), e.g. {self.thumbnail_failures[0]}"
        for what, items in (("left out (features unusable)", self.unusable),
                            ("indexed without malformed attributes", self.attributes_left_out)):
            if items:
                s += f"\n  {len(items)} video(s) {what}:" + "".join(f"\n    {x}" for x in items[:10])
                s += f"\n    ... {len(items) - 10} more in the report" if len(items) > 10 else ""
        return s


class Unusable(Exception):
    """Videos of a segment being written whose features turned out unreadable when read."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = list(names)


# ---------------------------------------------------------------------- model and vocabulary
def load_run_model(run_dir: Optional[str | os.PathLike], checkpoint: Optional[str | os.PathLike],
                    official: Optional[tuple[str | os.PathLike, str | os.PathLike]] = None):
    from hanet.run import RunDir, model_from_checkpoint, model_from_official

    if official is not None:  # an authors' checkpoint with their model.json
        model, cfg, _ = model_from_official(*official, device="cpu")
        return model, cfg, Path(official[0])
    if checkpoint is None:
        if run_dir is None:
            raise HanetError("give --run RUN_DIR (or --checkpoint FILE)")
        checkpoint = RunDir(run_dir).default_checkpoint()
    model, cfg, _ = model_from_checkpoint(checkpoint, device="cpu")
    return model, cfg, Path(checkpoint)


def run_vocab(run_dir: Optional[str | os.PathLike], vocab: Optional[str | os.PathLike]) -> tuple[dict[str, int], Path]:
    """The model's vocabulary: ``vocab``, or the run's dataset's; refused when the run recorded
    another (a model reads other word ids wrong, silently)."""
    from hanet.data.formats import DatasetSpec, load_vocab, vocab_fingerprint
    from hanet.run import RunDir

    info = RunDir(run_dir).read_info() if run_dir is not None and RunDir(run_dir).info_path.is_file() else None
    if vocab is not None:
        path = Path(vocab)
    elif info is None:
        raise HanetError("give --vocab word2int.json (no run directory to find the dataset's vocabulary)")
    elif not info.dataset:
        raise HanetError(f"{run_dir}: run.json records no dataset; give --vocab word2int.json")
    else:
        path = DatasetSpec.load(info.dataset).word2int
    words = load_vocab(path)
    if info is not None and info.vocab is not None and vocab_fingerprint(words) != info.vocab:
        raise DataError(f"{path}: not the vocabulary the model of {run_dir} was trained with (fingerprint "
                        f"{vocab_fingerprint(words)}, the run's {info.vocab}); every query would be read wrong")
    return words, path


def read_concept_names(folder: Optional[Path], cfg: Any) -> Optional[dict[str, list[str]]]:
    """Concept names from ``verb_concepts.json`` / ``noun_concepts.json`` (written by ``hanet prepare``)."""
    if folder is None:
        return None
    from hanet.text.concepts import ConceptVocab

    out = {}
    for kind, size in (("verb", cfg.num_verb_concepts), ("noun", cfg.num_noun_concepts)):
        p = Path(folder) / f"{kind}_concepts.json"
        if not p.is_file():
            return None
        try:
            vocab = ConceptVocab.from_json(json.loads(p.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{p}: unreadable concept vocabulary ({exc})") from None
        names = list(vocab.concepts)[:size]
        out[kind] = names + [f"{kind}#{i}" for i in range(len(names), size)]
        if vocab.shares is not None:  # how often the word is of this kind (tagger slips are rare)
            out[f"{kind}_share"] = vocab.shares[:size] + [1.0] * (size - len(names))
    return out


# ---------------------------------------------------------------------- first-stage vectors
class StageVectors:
    """First-stage vectors of a segment's rows, gathered batch by batch as the rows are written."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in STAGE_PARTS}

    def add(self, fields: dict[str, np.ndarray]) -> None:
        for k, v in first_stage_vectors(fields["global_embeds"], fields["verb_probs"], fields["noun_probs"]).items():
            self.parts[k].append(v)

    def stacked(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts.items()}


def open_features(features: Sequence[str | os.PathLike] | str | os.PathLike):
    """The feature file(s) to index, with the sampling their videos were extracted at (if recorded)."""
    from hanet.data.features import FeatureStore

    files = [Path(features)] if isinstance(features, (str, os.PathLike)) else [Path(f) for f in features]
    store = FeatureStore(files)
    sampling = store.meta().get("sampling")
    return store, None if sampling is None else str(sampling)


def read_names(names: Optional[Sequence[str] | str | os.PathLike]) -> Optional[list[str]]:
    if names is None or isinstance(names, (list, tuple)):
        return None if names is None else [str(n) for n in names]
    p = Path(names)
    if p.suffix == ".npy":
        from hanet.data.formats import load_names

        return load_names(p)
    try:
        return [line.strip() for line in p.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise DataError(f"{p}: cannot read the names file ({exc})") from None


def load_captions(captions: Optional[str | os.PathLike | dict], rolegraphs: Optional[str | os.PathLike]):
    if captions is None:
        return None, None
    from hanet.data.formats import load_captions, load_json

    caps = captions if isinstance(captions, dict) else load_captions(Path(captions))
    graphs = None
    gpath = Path(rolegraphs) if rolegraphs else (Path(captions).parent / "sent2rolegraph.augment.json"
                                                  if not isinstance(captions, dict) else None)
    if gpath is not None and gpath.is_file():
        graphs = load_json(gpath, "role graph")
        if not isinstance(graphs, dict):
            raise DataError(f"{gpath}: role graphs must be {{caption: [nodes, edges]}}")
    elif rolegraphs:
        raise DataError(f"{rolegraphs}: role graph file not found")
    return caps, graphs


__all__ = ["BuildReport", "Unusable", "load_run_model", "run_vocab", "read_concept_names", "StageVectors", "open_features",
           "read_names", "load_captions"]
