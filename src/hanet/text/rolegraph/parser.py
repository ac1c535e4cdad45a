"""The parser: spaCy once, the rules, the graph; in worker processes for many captions."""

from __future__ import annotations

import bisect
import itertools
import multiprocessing as mp
import re
from collections import deque
from typing import Any, Callable, Iterable, Iterator, Sequence

from hanet.text.normalize import split_words
from hanet.text.rolegraph.graph import (CaptionAnalysis, FallbackNode, Graph, assemble_graph, empty_graph)
from hanet.text.rolegraph.rules import (RULES_VERSION, DocRules)


# --------------------------------------------------------------------------- alignment
_NONSPACE = re.compile(r"\S+")


def _word_starts(text: str) -> list[int]:
    return [m.start() for m in _NONSPACE.finditer(text)]


def _align(doc: Any, starts: list[int]) -> list[int | None]:
    """Word index of every spaCy token (None for whitespace tokens)."""
    out: list[int | None] = []
    for tok in doc:
        if tok.is_space or not tok.text.strip():
            out.append(None)
        else:
            out.append(bisect.bisect_right(starts, tok.idx) - 1)
    return out


# --------------------------------------------------------------------------- the parser
class RoleGraphParser:
    """Parse captions into role graphs (and concepts) with one spaCy pass.

    Load once and reuse: the spaCy pipeline takes about half a second to load, a single
    caption then takes a few milliseconds.

    Args:
        nlp: a loaded spaCy pipeline with tagger and parser; None loads ``model``.
        model: the spaCy model to load when ``nlp`` is None.
        batch_size: captions per ``nlp.pipe`` batch.
        n_process: worker processes (forked, sharing the loaded pipeline; more than 1 pays
            off from a few thousand captions, and only where fork exists, else serial).
        max_parse_words: only the first this-many words of a longer caption are parsed (the
            model truncates captions to ``max_words_in_sent`` anyway); the ROOT node still
            spans every word.
        keep_fallback: compute the no-predicate fallback nodes of every caption (for SRL
            graphs), not only of those that need them.

    Example:
        >>> parser = RoleGraphParser()
        >>> nodes, edges = parser.parse_one("a man is playing a guitar")
        >>> [(n["role"], n["words"]) for k, n in nodes.items() if k != "ROOT"]
        [('V', ['playing']), ('ARG0', ['a', 'man']), ('ARG1', ['a', 'guitar'])]
    """

    def __init__(self, nlp: Any = None, *, model: str | None = None, batch_size: int = 256,
                 n_process: int = 1, max_parse_words: int = 256, keep_fallback: bool = False):
        from hanet.text.nlp import DEFAULT_MODEL, PosAssigner, lemma_of, load_nlp, verb_index

        self.nlp = nlp if nlp is not None else load_nlp(model or DEFAULT_MODEL)
        # load_nlp's pipelines set pos_ themselves; another pipeline may lack POS (attribute
        # ruler disabled): then the ruler's rules are applied here.
        self._assign_pos = None if {"hanet_pos", "attribute_ruler"} & set(self.nlp.pipe_names) \
            else PosAssigner.from_nlp(self.nlp)
        self.batch_size = int(batch_size)
        self.n_process = int(n_process)
        self.max_parse_words = int(max_parse_words)
        self.keep_fallback = bool(keep_fallback)
        self._lemma = lemma_of(self.nlp)
        self._verbs = verb_index(self.nlp)

    @property
    def fingerprint(self) -> str:
        """Identifies everything a parse depends on (used to invalidate caches)."""
        from hanet.text.nlp import model_fingerprint

        return f"rules {RULES_VERSION}; {model_fingerprint(self.nlp)}; " \
               f"max_parse_words {self.max_parse_words}"

    def _text_to_parse(self, caption: str, starts: list[int]) -> str:
        if len(starts) <= self.max_parse_words:
            return caption
        end = _NONSPACE.match(caption, starts[self.max_parse_words - 1])
        return caption[:end.end()] if end else caption

    def _analysis(self, caption: str, doc: Any, starts: list[int]) -> CaptionAnalysis:
        from hanet.text.concepts import concepts_from_doc

        words = split_words(caption)
        if self._assign_pos is not None:
            self._assign_pos(doc)
        rules = DocRules(doc, _align(doc, starts), self._lemma, self._verbs)
        fallback: list[FallbackNode] | None = None

        def make_fallback() -> list[FallbackNode]:
            nonlocal fallback
            fallback = rules.fallback()
            return fallback

        graph = assemble_graph(words, rules.frames(), make_fallback)
        if fallback is None and self.keep_fallback:
            make_fallback()
        verbs, nouns = concepts_from_doc(rules.tokens, self._lemma)
        return CaptionAnalysis(graph, fallback, verbs, nouns)

    def analyze(self, captions: Iterable[str],
                transform: Callable[[str, CaptionAnalysis], Any] | None = None) -> Iterator[Any]:
        """Parse captions lazily, in batches (in ``n_process`` processes when above 1).

        Args:
            captions: captions as stored (spans index ``caption.split()``).
            transform: ``(caption, analysis) -> value`` applied where the parse happens (in
                the worker processes when there are several), e.g. to serialise results so
                that only strings travel back; must be a module-level function.

        Yields:
            One :class:`CaptionAnalysis` (or ``transform``'s value) per caption, in order.
        """
        if self.n_process > 1 and "fork" in mp.get_all_start_methods():
            # Workers parse *and* build graphs, sending back small records: spaCy's own
            # n_process would ship whole Docs here and leave the graph work serial. Forked
            # workers share the loaded pipeline. The pool starts now, not at the first next(),
            # so it forks before the caller starts threads (a progress bar's monitor).
            global _WORKER
            _WORKER = (self, transform)
            pool = mp.get_context("fork").Pool(self.n_process)
            return self._drain(pool, captions)
        return self._analyze_serial(captions, transform)

    @staticmethod
    def _drain(pool: Any, captions: Iterable[str]) -> Iterator[Any]:
        try:
            for results in pool.imap(_analyze_chunk, _chunks(captions, _CHUNK)):
                yield from results
        finally:
            pool.terminate()
            pool.join()

    def _analyze_serial(self, captions: Iterable[str],
                        transform: Callable[[str, CaptionAnalysis], Any] | None = None
                        ) -> Iterator[Any]:
        # nlp.pipe reads ahead by a batch; captions wait here until their doc comes back.
        pending: deque[tuple[str, list[int]]] = deque()

        def texts() -> Iterator[str]:
            for caption in captions:
                starts = _word_starts(caption)
                pending.append((caption, starts))
                yield self._text_to_parse(caption, starts) if starts else ""

        for doc in self.nlp.pipe(texts(), batch_size=self.batch_size):
            caption, starts = pending.popleft()
            analysis = self._analysis(caption, doc, starts) if starts else \
                CaptionAnalysis(empty_graph([]))
            yield analysis if transform is None else transform(caption, analysis)

    def parse(self, captions: Sequence[str]) -> list[Graph]:
        """Role graphs of several captions.

        Args:
            captions: captions as stored; normalise user text first with
                :func:`hanet.text.normalize.normalize_caption`.

        Returns:
            One ``[nodes, edges]`` graph per caption.
        """
        if len(captions) == 1:
            return [self.parse_one(captions[0])]
        return [a.graph for a in self.analyze(captions)]

    def parse_one(self, caption: str) -> Graph:
        """The role graph of one caption (no batching overhead: query time)."""
        return self.analyze_one(caption).graph

    def analyze_one(self, caption: str) -> CaptionAnalysis:
        """Graph, fallback nodes and concepts of one caption."""
        starts = _word_starts(caption)
        if not starts:
            return CaptionAnalysis(empty_graph([]))
        return self._analysis(caption, self.nlp(self._text_to_parse(caption, starts)), starts)


# --------------------------------------------------------------------------- worker processes
_CHUNK = 1024  # captions per task sent to a worker
# (parser, transform), set in the parent just before forking; workers inherit it.
_WORKER: tuple[RoleGraphParser, Callable[[str, CaptionAnalysis], Any] | None] | None = None


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _analyze_chunk(captions: list[str]) -> list[Any]:
    assert _WORKER is not None
    parser, transform = _WORKER
    return list(parser._analyze_serial(captions, transform))
