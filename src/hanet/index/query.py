"""Text queries and captions -> HANet text encodings (the same path as training captions).

A query is put into the canonical caption form (:func:`hanet.text.normalize.normalize_caption`),
parsed into a role graph by spaCy (:class:`hanet.text.rolegraph.RoleGraphParser`, loaded once),
turned into word ids, phrase masks and graph by the training reader's
:class:`~hanet.data.dataset.CaptionEncoder`, and encoded by the model's text encoder.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch

from hanet.errors import HanetError


class QueryError(HanetError):
    """A query that cannot be searched (empty, too long, no known word)."""


@dataclass
class Phrase:
    """A verb or noun phrase slot of a query.

    Attributes:
        kind: ``verb`` or ``noun``.
        slot: slot number within its kind.
        role: semantic role (``V``, ``ARG0``, ``ARG1``, ``ARGM-LOC``...).
        words: the phrase's words.
        positions: their word positions in the normalised query.
    """

    kind: str
    slot: int
    role: str
    words: list[str]
    positions: list[int]


@dataclass
class QueryInfo:
    """What the text side made of a query.

    Attributes:
        text: as typed.
        normalized: canonical form (what is encoded).
        words: its words (after the model's length cut).
        unknown: words not in the model's vocabulary (encoded as ``<unk>``).
        truncated: words cut because the model reads at most ``max_words_in_sent``.
        phrases: the verb and noun phrase slots the role graph filled.
    """

    text: str
    normalized: str
    words: list[str]
    unknown: list[str]
    truncated: int
    phrases: list[Phrase] = field(default_factory=list)

    def verb_sequence(self) -> list[int]:
        """Verb slots in the order the query says they happen ("X and then Y"), or [] when it
        orders none (:func:`hanet.text.temporal.phrase_sequence`)."""
        from hanet.text.temporal import phrase_sequence

        return phrase_sequence(self.words, [(p.slot, p.positions) for p in self.phrases if p.kind == "verb"])

    def warnings(self) -> list[str]:
        out = []
        if self.unknown:
            out.append(f"not in the model's vocabulary (ignored as <unk>): {', '.join(sorted(set(self.unknown)))}")
        if self.truncated:
            out.append(f"the model reads the first {len(self.words)} words; {self.truncated} more were cut")
        if not any(p.kind == "verb" for p in self.phrases):
            out.append("no verb phrase found: the verb-level scores are 0 for this query")
        return out


@dataclass
class EncodedQueries:
    """Encoded queries: the text encoder's outputs and what each query was made into."""

    text: Any  # hanet.model.text.TextEncoderOutput
    infos: list[QueryInfo]


_ROLE_NAMES: dict[int, str] = {}


def _role_name(role_id: int) -> str:
    if not _ROLE_NAMES:
        from hanet.data.formats import ROLES

        _ROLE_NAMES.update(dict(enumerate(ROLES)))
    return _ROLE_NAMES.get(int(role_id), "?")


class QueryEncoder:
    """Encodes queries with one model; thread-safe.

    Args:
        model: the :class:`~hanet.model.HANet` (eval mode).
        word2int: its vocabulary.
        parser: a :class:`~hanet.text.rolegraph.RoleGraphParser`; None loads spaCy on first use.
        max_chars: longer queries are refused (a bound on the work one request can ask for).
        cache_size: encoded queries kept (a search followed by its explanations parses once).
    """

    def __init__(self, model: Any, word2int: dict[str, int], parser: Any = None, max_chars: int = 1000,
                 cache_size: int = 256) -> None:
        from hanet.data.dataset import CaptionEncoder

        cfg = model.config
        self.model = model
        self.word2int = word2int
        self.max_chars = int(max_chars)
        self.encoder = CaptionEncoder(word2int, cfg.max_words_in_sent, cfg.num_verbs, cfg.num_nouns)
        self._parser = parser
        self._parse_lock = threading.Lock()
        self._parse_thread: Any = None
        self._parse_pid = 0
        self._cache: OrderedDict[str, EncodedQueries] = OrderedDict()
        self._cache_size = int(cache_size)
        self._cache_lock = threading.Lock()

    @property
    def parser(self) -> Any:
        if self._parser is None:
            with self._parse_lock:
                if self._parser is None:
                    from hanet.text.rolegraph import RoleGraphParser

                    self._parser = RoleGraphParser()
        return self._parser

    def check(self, text: str) -> str:
        """Validate a query and return its canonical form.

        Raises:
            QueryError: not a string, too long, or without words.
        """
        from hanet.text.normalize import normalize_caption

        if not isinstance(text, str):
            raise QueryError(f"a query must be text, not {type(text).__name__}")
        if len(text) > self.max_chars:
            raise QueryError(f"query too long: {len(text)} characters (at most {self.max_chars})")
        norm = normalize_caption(text)
        if not norm:
            raise QueryError("empty query: type a few words describing the video" if not text.strip()
                             else f"the query {text[:60]!r} has no words (only punctuation or symbols)")
        return norm

    def _graphs(self, captions: Sequence[str], parser: Any = None) -> list[Any]:
        parser = parser or self.parser
        # spaCy's pipeline is not documented as thread-safe: one parse at a time.
        with self._parse_lock:
            return parser.parse(list(captions))

    @torch.no_grad()
    def encode(self, texts: Sequence[str], graphs: Optional[Sequence[Any]] = None,
               allow_unknown: bool = False) -> EncodedQueries:
        """Encode several queries (or captions) in one batch.

        Args:
            texts: the queries as typed.
            graphs: their role graphs (``[nodes, edges]``, spans indexing the *normalised* words),
                e.g. from a dataset's ``sent2rolegraph.augment.json``; None parses with spaCy.
            allow_unknown: accept a text whose words are all unknown (indexing captions).

        Returns:
            :class:`EncodedQueries` (text outputs on the CPU, float32).

        Raises:
            QueryError: a query is empty, too long, or (unless ``allow_unknown``) has no known word.
        """
        from hanet.data.dataset import collate_captions

        norms = [self.check(t) for t in texts]
        states = None
        if graphs is None and len(norms) == 1:
            graphs, states = self._parse_alongside_words(norms)
        elif graphs is None:
            graphs = self._graphs(norms)
        items, infos = [], []
        W = self.encoder.max_words
        for text, norm, graph in zip(texts, norms, graphs):
            enc = self.encoder.encode(norm, graph)
            words = norm.split()
            kept = words[:W]
            unknown = [w for w in kept if w not in self.word2int]
            if not allow_unknown and len(unknown) == len(kept):
                raise QueryError(
                    f"none of the words of {norm[:80]!r} is in the model's vocabulary "
                    f"({len(self.word2int)} words): nothing to search with")
            items.append(enc)
            infos.append(QueryInfo(text, norm, kept, unknown, len(words) - len(kept),
                                   _phrases(enc.verb_mask, enc.noun_mask, enc.roles, kept)))
        batch = collate_captions(items, norms)
        out = self.model.encode_text(batch, words=states)  # the encoder checks the states' shape
        return EncodedQueries(out, infos)

    def _parse_alongside_words(self, norms: list[str]) -> tuple[list[Any], torch.Tensor]:
        """One query's role graph and BiGRU word states, the parse on the parser's thread while
        the GRU runs here: the word ids need no parse, and at MSR-VTT's sizes the GRU (memory-bound,
        ~11 ms) and spaCy (~5 ms) were the two largest parts of a query's encoding, one after the other."""
        from concurrent.futures import ThreadPoolExecutor

        with self._parse_lock:
            # a forked child inherits the executor but not its thread: it would wait forever
            if self._parse_thread is None or self._parse_pid != os.getpid():
                self._parse_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hanet-parse")
                self._parse_pid = os.getpid()
        parser = self.parser  # loaded here, not on the worker: a load error is raised where it is seen
        ids = self.encoder.tokens(norms[0])  # check() let through only texts with words
        word_ids = torch.tensor([ids], dtype=torch.int64)
        started: list[Any] = []
        words = self.model.text_encoder.encode_words(
            word_ids, torch.tensor([len(ids)]),
            before_recurrence=lambda: started.append(self._parse_thread.submit(self._graphs, norms, parser)))
        return started[0].result(), words

    def clear_cache(self) -> None:
        """Forget the encoded queries kept (benchmarks time encoding afresh)."""
        with self._cache_lock:
            self._cache.clear()

    def encode_one(self, text: str) -> EncodedQueries:
        """Encode one query, through a small LRU cache keyed by its canonical form."""
        norm = self.check(text)
        with self._cache_lock:
            hit = self._cache.get(norm)
            if hit is not None:
                self._cache.move_to_end(norm)
        if hit is not None:
            info = hit.infos[0]
            if info.text != text:
                info = QueryInfo(text, info.normalized, info.words, info.unknown, info.truncated, info.phrases)
            return EncodedQueries(hit.text, [info])
        enc = self.encode([text])
        with self._cache_lock:
            self._cache[norm] = enc
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return enc


def _phrases(verb_mask: np.ndarray, noun_mask: np.ndarray, roles: np.ndarray, words: list[str]) -> list[Phrase]:
    out = []
    nv = verb_mask.shape[0]
    for kind, mask, offset in (("verb", verb_mask, 0), ("noun", noun_mask, nv)):
        for slot in range(mask.shape[0]):
            pos = np.flatnonzero(mask[slot]).tolist()
            if not pos:
                continue
            out.append(Phrase(kind, slot, _role_name(int(roles[offset + slot])),
                              [words[p] for p in pos if p < len(words)], pos))
    return out


__all__ = ["QueryError", "Phrase", "QueryInfo", "EncodedQueries", "QueryEncoder"]
