"""Datasets and collation that rebuild the official reader's batches exactly.

* :class:`CaptionEncoder` turns a caption and its role graph into word ids, phrase masks, slot
  roles and the row-normalised graph adjacency (the official ``get_caption_outs``).
* :class:`RetrievalData` loads and validates one split: names, features, captions, graphs and,
  for training, concept targets. Every problem is collected and reported at once, before any
  long work starts.
* :class:`PairDataset` enumerates (video, caption) training pairs in the official order: videos
  in name-file order, then each video's captions in order.
* :func:`collate_pairs`, :func:`collate_videos`, :func:`collate_captions` trim padding to the
  batch's longest item, as the official collate does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from hanet.config import ModelConfig
from hanet.data.batch import ConceptTargets, TextBatch, TrainBatch, VideoBatch
from hanet.data.formats import (EOS, ROLE2ID, UNK, DatasetSpec, FeatureStore, load_captions, load_json,
                                load_names, load_vocab, pad_or_subsample)
from hanet.data.schema import concept_weight_problems, graph_problem, vocab_problems
from hanet.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class EncodedCaption:
    """One caption as arrays (W = max_words_in_sent, Pv/Pn = verb/noun slots).

    Attributes:
        word_ids: (W,) int64, padded with ``<eos>``.
        length: number of words (after truncation to W).
        verb_mask: (Pv, W) bool.
        noun_mask: (Pn, W) bool.
        roles: (Pv + Pn,) int64 role ids (0 for empty slots, as the official reader leaves them).
        edges: (1 + Pv + Pn, 1 + Pv + Pn) float32, row-normalised; node 0 is the sentence.
    """

    word_ids: np.ndarray
    length: int
    verb_mask: np.ndarray
    noun_mask: np.ndarray
    roles: np.ndarray
    edges: np.ndarray


class CaptionEncoder:
    """Caption + role graph -> arrays, following the official reader rule for rule.

    Args:
        word2int: vocabulary (unknown words map to ``<unk>`` = 2).
        max_words: captions are cut to this many words.
        num_verbs: verb slots; the first ``num_verbs`` V nodes (in the graph's node order) fill them.
        num_nouns: noun slots; the first ``num_nouns`` argument (non-ROOT, non-V) nodes fill them.
    """

    def __init__(self, word2int: dict[str, int], max_words: int, num_verbs: int, num_nouns: int) -> None:
        self.word2int = word2int
        self.max_words = max_words
        self.num_verbs = num_verbs
        self.num_nouns = num_nouns

    def tokens(self, caption: str) -> list[int]:
        return [self.word2int.get(w, UNK) for w in caption.split()][: self.max_words]

    def encode(self, caption: str, graph: Sequence[Any]) -> EncodedCaption:
        """Encode one caption.

        Args:
            caption: the caption (words separated by whitespace).
            graph: ``[nodes, edges]`` from ``sent2rolegraph.augment.json``.

        Returns:
            :class:`EncodedCaption`.
        """
        W, nv, nn_ = self.max_words, self.num_verbs, self.num_nouns
        ids = self.tokens(caption)
        word_ids = np.full(W, EOS, np.int64)
        word_ids[: len(ids)] = ids
        nodes, graph_edges = graph[0], graph[1]
        verb_mask = np.zeros((nv, W), bool)
        noun_mask = np.zeros((nn_, W), bool)
        roles = np.zeros(nv + nn_, np.int64)
        verb_slot: dict[str, int] = {}
        noun_slot: dict[str, int] = {}
        edges: list[tuple[int, int]] = []
        # Nodes whose first word lies beyond the cut are dropped; empty spans are dropped too
        # (the official reader would crash on them).
        for key, node in nodes.items():
            if len(verb_slot) >= nv:
                break
            spans = node.get("spans") or []
            if node.get("role") == "V" and spans and min(spans) < W:
                k = len(verb_slot)
                verb_slot[key] = 1 + k
                verb_mask[k, [w for w in spans if 0 <= w < W]] = True
                roles[k] = ROLE2ID["V"]
                edges.append((0, 1 + k))
        for key, node in nodes.items():
            if len(noun_slot) >= nn_:
                break
            spans = node.get("spans") or []
            if node.get("role") not in ("ROOT", "V") and spans and min(spans) < W:
                k = len(noun_slot)
                noun_slot[key] = 1 + nv + k
                noun_mask[k, [w for w in spans if 0 <= w < W]] = True
                roles[nv + k] = ROLE2ID.get(node.get("role"), ROLE2ID["NOUN"])
        for e in graph_edges:
            if e[0] in verb_slot and e[1] in noun_slot:
                edges.append((verb_slot[e[0]], noun_slot[e[1]]))
                edges.append((noun_slot[e[1]], verb_slot[e[0]]))
        n = 1 + nv + nn_
        adj = np.zeros((n, n), np.float32)
        for src, tgt in edges:
            adj[tgt, src] = 1
        rows = adj.sum(1, keepdims=True)
        adj = np.where(rows > 0, adj / np.where(rows > 0, rows, 1), adj).astype(np.float32)
        return EncodedCaption(word_ids, len(ids), verb_mask, noun_mask, roles, adj)


def collate_captions(items: Sequence[EncodedCaption], captions: Sequence[str]) -> TextBatch:
    """Stack encoded captions, trimming to the longest one."""
    L = max(1, max(it.length for it in items))
    return TextBatch(
        word_ids=torch.from_numpy(np.stack([it.word_ids[:L] for it in items])),
        lengths=torch.tensor([it.length for it in items], dtype=torch.int64),
        verb_masks=torch.from_numpy(np.stack([it.verb_mask[:, :L] for it in items])),
        noun_masks=torch.from_numpy(np.stack([it.noun_mask[:, :L] for it in items])),
        node_roles=torch.from_numpy(np.stack([it.roles for it in items])),
        edges=torch.from_numpy(np.stack([it.edges for it in items])),
        captions=list(captions),
    )


def collate_videos(features: Sequence[np.ndarray], lengths: Sequence[int], names: Sequence[str]) -> VideoBatch:
    """Stack padded videos (each (max_frames, D)), trimming to the longest one."""
    T = max(lengths)
    return VideoBatch(torch.from_numpy(np.stack([f[:T] for f in features])),
                      torch.tensor(list(lengths), dtype=torch.int64), list(names))


class RetrievalData:
    """One split of a dataset in the released format, loaded and validated.

    Args:
        spec: the dataset description.
        split: ``trn``, ``val`` or ``tst``.
        config: model config (frame and word limits, slot and concept counts).
        with_concepts: load concept targets (training).

    Raises:
        DataError: listing every problem found (missing videos, captions without graphs,
            concept ids out of range, ...).
    """

    def __init__(self, spec: DatasetSpec, split: str, config: ModelConfig, with_concepts: bool = False) -> None:
        files = spec.split(split)
        spec.require_files([split], concepts=with_concepts)
        self.split = split
        self.config = config
        self.names = load_names(files.names)
        self.features = FeatureStore(files.features)
        all_captions = load_captions(files.captions)
        graphs = load_json(files.rolegraphs, "role graph")
        if not isinstance(graphs, dict):
            raise DataError(f"{files.rolegraphs}: role graphs must be {{caption: [nodes, edges]}}")
        self.word2int = load_vocab(spec.word2int)
        self.encoder = CaptionEncoder(self.word2int, config.max_words_in_sent, config.num_verbs, config.num_nouns)

        problems: list[str] = []
        no_caps = [n for n in self.names if n not in all_captions]
        if no_caps:
            problems.append(f"{files.captions}: no captions for {len(no_caps)} video(s): {_few(no_caps)}")
        missing = self.features.missing(self.names)
        if missing:
            by_file: dict[str, list[str]] = {}
            for n, f in missing:
                by_file.setdefault(str(f), []).append(n)
            problems += [f"{f}: no features for {len(ns)} video(s): {_few(ns)}" for f, ns in by_file.items()]
        problems += self.features.shape_problems(self.names)
        self.captions: dict[str, list[str]] = {n: list(all_captions.get(n, [])) for n in self.names}
        no_graph = sorted({c for caps in self.captions.values() for c in caps if c not in graphs})
        if no_graph:
            problems.append(f"{files.rolegraphs}: no role graph for {len(no_graph)} caption(s): {_few(no_graph)}")
        bad_graph = sorted({f"{c!r}: {why}" for caps in self.captions.values() for c in caps
                            if c in graphs and (why := graph_problem(c, graphs[c])) is not None})
        if bad_graph:
            problems.append(f"{files.rolegraphs}: {len(bad_graph)} malformed graph(s): " + "; ".join(bad_graph[:8])
                            + (f"; ... ({len(bad_graph) - 8} more)" if len(bad_graph) > 8 else ""))
        problems += [f"{spec.word2int}: {p}" for p in vocab_problems(self.word2int)]
        max_id = max((i for i in self.word2int.values() if isinstance(i, int)), default=-1)
        if max_id >= config.text.num_words:
            problems.append(f"{spec.word2int}: word ids go up to {max_id} but the model has num_words="
                            f"{config.text.num_words}")
        self.concepts: Optional[dict[str, Any]] = None
        if with_concepts:
            problems += self._load_concepts(spec)
        if problems:
            raise DataError(f"dataset {spec.source} split {split}:\n  - " + "\n  - ".join(problems))

        # Zero-word captions cannot be encoded (the GRU needs a word); they are skipped, loudly.
        self.empty_captions = [(n, c) for n in self.names for c in self.captions[n] if not c.split()]
        if self.empty_captions:
            log.warning("%s split %s: skipping %d empty caption(s), e.g. of %s", spec.source, split,
                        len(self.empty_captions), self.empty_captions[0][0])
        self.graphs = {c: graphs[c] for caps in self.captions.values() for c in caps}
        # Training pairs in the official order: videos in name order, captions in file order.
        self.pairs: list[tuple[int, int]] = [(i, j) for i, n in enumerate(self.names)
                                             for j, c in enumerate(self.captions[n]) if c.split()]
        # Evaluation captions: unique texts in first-appearance order (the official reader uses a
        # set, whose order is arbitrary; metrics do not depend on the order).
        seen: dict[str, int] = {}
        for n in self.names:
            for c in self.captions[n]:
                if c.split() and c not in seen:
                    seen[c] = len(seen)
        self.unique_captions: list[str] = list(seen)
        gt_v, gt_c = [], []
        for i, n in enumerate(self.names):
            for c in dict.fromkeys(self.captions[n]):
                if c in seen:
                    gt_v.append(i)
                    gt_c.append(seen[c])
        # Ground truth as (video index, caption index) pairs: a caption shared by several videos
        # has each of them as a ground truth, as in the official evaluation.
        self.gt_pairs = (np.asarray(gt_v, np.int64), np.asarray(gt_c, np.int64))

    def _load_concepts(self, spec: DatasetSpec) -> list[str]:
        if not spec.has_concepts():
            return [f"dataset {spec.source}: training needs verb_gt.json, noun_gt.json, verb_gt_all.json and "
                    f"noun_gt_all.json (run `hanet prepare`)"]
        problems = []
        loaded = {}
        for kind, path, n_concepts in (("verb", spec.verb_concepts, self.config.num_verb_concepts),
                                       ("noun", spec.noun_concepts, self.config.num_noun_concepts)):
            per_cap = load_json(path, f"{kind} concepts")
            all_path = spec.verb_concepts_all if kind == "verb" else spec.noun_concepts_all
            per_vid = load_json(all_path, f"{kind} concepts (all)")
            absent = [n for n in self.names if n not in per_cap]
            if absent:
                problems.append(f"{path}: no entry for {len(absent)} video(s): {_few(absent)}")
            absent = [n for n in self.names if n not in per_vid]
            if absent:
                problems.append(f"{all_path}: no entry for {len(absent)} video(s): {_few(absent)}")
            wrong_len = [n for n in self.names if n in per_cap and len(per_cap[n]) != len(self.captions[n])]
            if wrong_len:
                problems.append(f"{path}: number of concept lists differs from number of captions for "
                                f"{_few(wrong_len)}")
            bad = sorted({(n, i) for n in self.names for lst in per_cap.get(n, []) for i in lst
                          if not isinstance(i, int) or not 0 <= i < n_concepts}
                         | {(n, k) for n in self.names for k in per_vid.get(n, {})
                            if not str(k).lstrip("-").isdigit() or not 0 <= int(k) < n_concepts})
            if bad:
                problems.append(f"{path} / {all_path}: concept ids outside [0, {n_concepts}) (num_{kind}_concepts): "
                                f"{_few([f'{n}:{i}' for n, i in bad])}")
            weights = concept_weight_problems(per_vid, self.names)
            if weights:
                problems.append(f"{all_path}: {len(weights)} concept weight(s) not in [0, 1]: {_few(weights)}")
            loaded[kind] = (per_cap, per_vid)
        self.concepts = loaded
        return problems

    # ------------------------------------------------------------------ items
    _preloaded: Optional[tuple[np.ndarray, np.ndarray]] = None

    def preload(self, features: np.ndarray, lengths: np.ndarray) -> None:
        """Serve videos from memory: (N, max_frames, D) padded features and (N,) lengths."""
        self._preloaded = (features, lengths)

    @property
    def preloaded(self) -> bool:
        return self._preloaded is not None

    def video(self, index: int) -> tuple[np.ndarray, int]:
        """(max_frames, D) padded/subsampled features and the real length of video ``index``."""
        if self._preloaded is not None:
            return self._preloaded[0][index], int(self._preloaded[1][index])
        return pad_or_subsample(self.features.get(self.names[index]), self.config.max_frames_in_video)

    def caption(self, text: str) -> EncodedCaption:
        return self.encoder.encode(text, self.graphs[text])

    def concept_targets(self, video: int, cap: int) -> tuple[np.ndarray, ...]:
        """(verb label, noun label, verb mask, noun mask) of a training pair, each (C,) float32."""
        assert self.concepts is not None
        name = self.names[video]
        out = []
        for kind, n_c in (("verb", self.config.num_verb_concepts), ("noun", self.config.num_noun_concepts)):
            per_cap, per_vid = self.concepts[kind]
            ids = per_cap[name][cap]
            label = np.zeros(n_c, np.float32)
            label[ids] = 1
            mask = np.ones(n_c, np.float32)
            mask[[int(k) for k in per_vid[name]]] = 0
            mask[ids] = 1
            out.append((label, mask))
        return out[0][0], out[1][0], out[0][1], out[1][1]

    def video_feature_dim(self) -> int:
        return int(sum(self.features.dims()))

    def video_batches(self, batch_size: int) -> Iterator[VideoBatch]:
        """Videos in name order, ``batch_size`` at a time (each padded to its own longest video)."""
        for s in range(0, len(self.names), batch_size):
            idx = range(s, min(s + batch_size, len(self.names)))
            fl = [self.video(i) for i in idx]
            yield collate_videos([f for f, _ in fl], [n for _, n in fl], [self.names[i] for i in idx])

    def caption_batches(self, batch_size: int) -> Iterator[TextBatch]:
        """Unique captions in :attr:`unique_captions` order, ``batch_size`` at a time."""
        caps = self.unique_captions
        for s in range(0, len(caps), batch_size):
            chunk = caps[s:s + batch_size]
            yield collate_captions([self.caption(c) for c in chunk], chunk)


def _few(items: Sequence[Any], k: int = 8) -> str:
    items = list(items)
    s = ", ".join(repr(x) if isinstance(x, str) else str(x) for x in items[:k])
    return s + (f", ... ({len(items) - k} more)" if len(items) > k else "")


class PairDataset(Dataset):
    """Training pairs of a split; item i is the i-th (video, caption) pair in official order."""

    def __init__(self, data: RetrievalData) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        vi, ci = self.data.pairs[index]
        name = self.data.names[vi]
        text = self.data.captions[name][ci]
        feats, length = self.data.video(vi)
        concepts = self.data.concept_targets(vi, ci) if self.data.concepts is not None else None
        return {"features": feats, "length": length, "name": name, "caption": text,
                "encoded": self.data.caption(text), "concepts": concepts}


def collate_pairs(items: Sequence[dict[str, Any]]) -> TrainBatch:
    """Collate :class:`PairDataset` items into a :class:`TrainBatch`."""
    video = collate_videos([it["features"] for it in items], [it["length"] for it in items],
                           [it["name"] for it in items])
    text = collate_captions([it["encoded"] for it in items], [it["caption"] for it in items])
    concepts = None
    if items[0]["concepts"] is not None:
        c = [np.stack(x) for x in zip(*(it["concepts"] for it in items))]
        concepts = ConceptTargets(*(torch.from_numpy(a) for a in c))
    return TrainBatch(video, text, concepts)


def infer_feature_dims(spec: DatasetSpec, split: str = "trn") -> tuple[int, ...]:
    """Feature sizes of a split's files (in file order)."""
    return tuple(FeatureStore(spec.split(split).features).dims())


def words_in_vocab(spec: DatasetSpec) -> int:
    """num_words for the model: one more than the largest id in word2int.

    Raises:
        DataError: the vocabulary is not one id per word (:func:`~hanet.data.schema.vocab_problems`),
            before a model is sized by it.
    """
    words = load_vocab(spec.word2int)
    problems = vocab_problems(words)
    if problems:
        raise DataError(f"{spec.word2int}: " + "; ".join(problems))
    return max(words.values()) + 1


__all__ = ["EncodedCaption", "CaptionEncoder", "RetrievalData", "PairDataset", "collate_pairs",
           "collate_captions", "collate_videos", "infer_feature_dims", "words_in_vocab"]
