"""Verb and noun concepts: per-caption lemmas, the two concept vocabularies, the label files.

HANet's concept branch predicts, for every video and caption, which of 512 verb concepts and
1024 noun concepts it shows. The official recipe (``data/concept_frequency.py`` and
``data/make_gt.py`` of Roc-Ng/HANet) defines a concept as follows, and this module keeps that
definition while tagging with spaCy instead of NLTK:

1. tokenise and part-of-speech tag the caption; drop punctuation tokens;
2. drop stopwords (the NLTK English list, shipped as ``data/stopwords_en.txt``);
3. keep tokens tagged ``VB*`` (verbs) or ``NN*`` (nouns);
4. a verb tagged exactly ``VB`` and a noun tagged exactly ``NN`` are kept as written; every other
   form is lemmatised ("playing" -> "play", "men" -> "man"). Quirk kept for parity: the official
   code lemmatises only inflected forms, so a base-form word that the tagger got wrong is not
   normalised;
5. the vocabularies are the most frequent verbs / nouns over the *training* captions,
   ordered by (frequency, word) descending (parity quirk: ties go to the word that sorts *last*);
6. per-caption label lists keep one id per occurrence (a concept twice in a caption is listed
   twice, as in the official files); per-video weights are ``round(count / max_count, 2)`` over
   all the video's captions, ordered by (weight, id) descending.

Two small deviations, both no-ops on lowercase captions: words are lowercased before the
stopword test and in the concept, and clitics that spaCy splits off ("'s", "n't") count as
stopwords (their bare forms "s", "t" are in the NLTK list).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable, Container, Iterable, Mapping, Optional, Sequence

__all__ = [
    "STOPWORDS", "PUNCTUATION", "concepts_from_doc", "ConceptVocab", "count_concepts",
    "caption_labels", "video_weights", "concept_label", "SHOWN_SHARE",
]

#: Tokens the official script removes as punctuation before tagging.
PUNCTUATION = frozenset([",", ".", ":", ";", "?", "(", ")", "[", "]", "&", "!", "*", "@", "#",
                         "$", "%"])

_VERB_TAGS = frozenset(["VB", "VBD", "VBG", "VBN", "VBP", "VBZ"])
_NOUN_TAGS = frozenset(["NN", "NNS", "NNP", "NNPS"])


@functools.lru_cache(maxsize=1)
def _load_stopwords() -> frozenset[str]:
    text = resources.files("hanet.text").joinpath("data/stopwords_en.txt").read_text("utf-8")
    return frozenset(w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#"))


STOPWORDS: frozenset[str] = _load_stopwords()


def _is_stopword(word: str) -> bool:
    # spaCy splits "man's" into "man" + "'s" and "don't" into "do" + "n't"; the NLTK list has
    # the bare clitics ("s", "t", "ll"), so the apostrophe forms are treated the same way.
    return word in STOPWORDS or word.startswith("'") or word == "n't"


def default_lemma(token: Any) -> str:
    """The lemma spaCy assigned, or the token text when the pipeline set none."""
    return token.lemma_ or token.text


def concepts_from_doc(doc: Iterable[Any],
                      lemma: Callable[[Any], str] | None = None) -> tuple[list[str], list[str]]:
    """Extract the verb and noun concepts of one parsed caption.

    Args:
        doc: a spaCy ``Doc`` (or any iterable of tokens with ``text``, ``tag_``, ``lemma_``,
            ``is_space`` and ``is_punct``) that has been tagged.
        lemma: how to lemmatise a token; defaults to ``token.lemma_`` (falls back to the text).
            The parser passes spaCy's rule lemmatiser here so the pipeline can skip the
            lemmatiser component and lemmatise only the few concept words.

    Returns:
        ``(verbs, nouns)``: the concepts in caption order, with repeats.
    """
    lemma_fn = lemma or default_lemma
    verbs: list[str] = []
    nouns: list[str] = []
    for tok in doc:
        if tok.is_space:
            continue
        word = tok.text.lower()
        if word in PUNCTUATION or tok.is_punct or _is_stopword(word):
            continue
        tag = tok.tag_
        if tag in _VERB_TAGS:
            verbs.append(word if tag == "VB" else (lemma_fn(tok).lower() or word))
        elif tag in _NOUN_TAGS:
            nouns.append(word if tag == "NN" else (lemma_fn(tok).lower() or word))
    return verbs, nouns


@dataclass
class ConceptVocab:
    """A concept vocabulary: the ``size`` most frequent training concepts.

    Attributes:
        concepts: concepts by id (id = position).
        counts: training frequency of each concept, aligned with ``concepts``.
        kind: ``"verb"`` or ``"noun"`` (only used in the JSON file).
    """

    concepts: list[str]
    counts: list[int]
    kind: str = "verb"
    shares: Optional[list[float]] = None
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index = {c: i for i, c in enumerate(self.concepts)}

    @classmethod
    def build(cls, counts: Mapping[str, int], size: int, kind: str = "verb") -> "ConceptVocab":
        """Keep the ``size`` most frequent concepts.

        Args:
            counts: training frequency of every concept.
            size: vocabulary size (512 verbs / 1024 nouns officially); fewer distinct concepts
                give a smaller vocabulary, whose ids still fit the model's fixed-size output.
            kind: ``"verb"`` or ``"noun"``.

        Returns:
            The vocabulary, ordered by (frequency, concept) descending: the official order,
            ties included.
        """
        ranked = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:size]
        return cls([c for c, _ in ranked], [int(n) for _, n in ranked], kind)

    def __len__(self) -> int:
        return len(self.concepts)

    def __contains__(self, concept: object) -> bool:
        return concept in self._index

    def id(self, concept: str) -> int | None:
        """The concept's id, or None when it is not in the vocabulary."""
        return self._index.get(concept)

    def ids(self, concepts: Iterable[str]) -> list[int]:
        """Ids of the in-vocabulary concepts, in order, repeats kept (the official labels)."""
        return [self._index[c] for c in concepts if c in self._index]

    def to_json(self) -> dict[str, Any]:
        """The readable file form: ``{"kind", "size", "concepts": {concept: {"id", "count"[, "share"]}}}``."""
        return {
            "kind": self.kind,
            "size": len(self.concepts),
            "concepts": {c: {"id": i, "count": n, **({"share": self.shares[i]} if self.shares else {})}
                         for i, (c, n) in enumerate(zip(self.concepts, self.counts))},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ConceptVocab":
        """Inverse of :meth:`to_json`."""
        items = sorted(data["concepts"].items(), key=lambda kv: int(kv[1]["id"]))
        shares = [float(v["share"]) for _, v in items] if items and all("share" in v for _, v in items) else None
        return cls([c for c, _ in items], [int(v["count"]) for _, v in items],
                   str(data.get("kind", "verb")), shares)

    def with_shares(self, words: Mapping[str, int]) -> "ConceptVocab":
        """The vocabulary with each concept's *share*: its count over how often its word (or an
        inflection of it) occurs in the same captions at all. A concept the tagger made of a word
        it mostly reads otherwise ("blue" a verb in "turns blue") has a small share; displays
        list only the concepts whose share is at least :data:`SHOWN_SHARE`.

        Args:
            words: word -> occurrences in the captions the vocabulary was counted on.
        """
        shares = []
        for c, n in zip(self.concepts, self.counts):
            forms = {c, c + "s", c + "es", c + "ing", c + "ed", c + "d", c[:-1] + "ing" if c.endswith("e") else c,
                     c + c[-1:] + "ing", c + c[-1:] + "ed"}
            seen = sum(words.get(f, 0) for f in forms)
            shares.append(round(min(1.0, n / seen), 3) if seen else 1.0)
        return ConceptVocab(self.concepts, self.counts, self.kind, shares)


#: Concepts whose share (:meth:`ConceptVocab.with_shares`) is below this are tagger slips, not shown.
SHOWN_SHARE = 0.5


def count_concepts(per_caption: Iterable[Sequence[str]]) -> Counter[str]:
    """Frequency of every concept over captions (one count per occurrence, as officially)."""
    counts: Counter[str] = Counter()
    for concepts in per_caption:
        counts.update(concepts)
    return counts


def caption_labels(vocab: ConceptVocab, per_caption: Sequence[Sequence[str]]) -> list[list[int]]:
    """One video's ``verb_gt.json`` / ``noun_gt.json`` entry.

    Args:
        vocab: the concept vocabulary.
        per_caption: the concepts of each of the video's captions.

    Returns:
        Per caption, the ids of its in-vocabulary concepts (repeats kept).
    """
    return [vocab.ids(c) for c in per_caption]


def video_weights(vocab: ConceptVocab, per_caption: Sequence[Sequence[str]]) -> dict[str, float]:
    """One video's ``verb_gt_all.json`` / ``noun_gt_all.json`` entry.

    Args:
        vocab: the concept vocabulary.
        per_caption: the concepts of each of the video's captions.

    Returns:
        ``{str(id): round(count / max_count, 2)}`` over every concept of any caption, ordered by
        (weight, id) descending like the official file; empty when no caption has a concept.
    """
    counts: Counter[int] = Counter()
    for concepts in per_caption:
        counts.update(vocab.ids(concepts))
    if not counts:
        return {}
    top = max(counts.values())
    weights = {i: round(n / top, 2) for i, n in counts.items()}
    ranked = sorted(weights.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    return {str(i): w for i, w in ranked}


def concept_label(concept: str, words: Container[str]) -> str:
    """A concept as a word a person reads.

    The tagger sometimes reads a verb as a plural noun, and the lemmatiser then cuts it to a
    stem that is no word ("passes" -> "pas", "vanishes" -> "vanishe", "crosses" -> "cros"). The
    concept keeps that name (the labels are the official recipe's), but it is shown as the
    vocabulary word it was cut from.

    Args:
        concept: the concept's name.
        words: the caption vocabulary (``word2int``).

    Returns:
        ``concept`` when it is a word of the vocabulary, else the first of ``concept + "s"``,
        ``concept`` without a final "e", ``concept + "e"`` that is, else ``concept``.
    """
    if concept in words:
        return concept
    for cand in (concept + "s", concept[:-1] if concept.endswith("e") else "", concept + "e"):
        if cand and cand in words:
            return cand
    return concept
