"""Semantic role graphs of captions, from spaCy's dependency parse, in the released format.

HANet encodes a caption as a graph: a ``ROOT`` node (the whole sentence), one ``V`` node per
predicate, and argument nodes (``ARG0``, ``ARG1``, ``ARGM-LOC``, ...) linked to their predicate.
The authors obtained it from an AllenNLP BERT semantic role labeller (see
:mod:`hanet.text.srl` to convert that output); this module derives the same structure from a
dependency parse, offline and fast. The format (``sent2rolegraph.augment.json``)::

    {caption: [nodes, edges]}
    nodes = {"ROOT": {"role": "ROOT", "spans": [0..n-1], "words": [...]},
             "1": {"role": "V", "spans": [4], "words": ["playing"]},
             "2": {"role": "ARG0", "spans": [0, 1], "words": ["a", "man"]}, ...}
    edges = [["1", "2", "ARG0"], ...]          # verb node -> argument node, role

Spans are indices into ``caption.split()`` -- the words the model reads -- even where spaCy
tokenises differently ("man's" is one word, two spaCy tokens); every non-ROOT node has a
non-empty span. The rules (``docs/prepare.md`` has the full table):

* predicates: tokens spaCy tags as main verbs (``pos_ == "VERB"``), not auxiliaries, not "be";
  and present-tense verbs the tagger read as plural nouns after their subject ("a girl sings",
  "a red square travels to the left": an ``NNS`` with a subject, or with a singular determiner
  and a modifier before it, heading the sentence or hung on the verb after it), with their
  conjoined bare plurals ("... sings and dances"); the words the parser hung on a verb as a
  noun's modifiers ("a [red square] travels") are its subject;
* ``nsubj`` -> ARG0 (ARG1 for a short list of unaccusative verbs: "the water is boiling"),
  ``nsubjpass`` -> ARG1, ``agent`` ("by ...") -> ARG0, ``dobj`` -> ARG1, ``dative``/``iobj``
  -> ARG2, ``xcomp``/``ccomp`` -> ARG1, ``attr``/``acomp``/``oprd`` -> ARG2;
* prepositional phrases by preposition (in/on/at -> ARGM-LOC, into/to/through -> ARGM-DIR,
  during/after -> ARGM-TMP, with -> ARGM-MNR or ARGM-COM for people and animals, ...), refined
  by a few verb classes (put ... in -> ARG2, talk to -> ARG2, look at -> ARG1, ...), and
  ARGM-TMP whenever the object is a time noun ("in the morning");
* adverbs: manner -> ARGM-MNR, time -> ARGM-TMP, place -> ARGM-LOC, direction -> ARGM-DIR,
  negation -> ARGM-NEG, modals -> ARGM-MOD; adverbial clauses by their marker;
* subjects are shared the way a role labeller shares them: conjoined verbs (and a second verb
  left unlabelled, "slides up then flickers"), controlled
  infinitives/gerunds and adverbial clauses take their governor's subject; a participle or
  relative clause takes the noun it modifies (the relative pronoun becomes ``R-ARG0``/``R-ARG1``);
* an argument's span is the dependency subtree of its head (prepositions included, as PropBank
  spans are); the noun a participle modifies is cut to the part before the participle.

Graph assembly follows the official converter (the AllenNLP notebook of Roc-Ng/HANet): nodes in
predicate order, each predicate followed by its arguments in sentence order; a predicate with no
argument gets no node; nodes with the same span and role are shared between predicates. When no
predicate survives, the official fallback applies: noun chunks become ``NOUN`` nodes (or, if there
are none, every ``NN*`` word), then every ``VB*`` word becomes a ``V`` node.

Odd captions: an empty caption (no words) gets a graph with only a ROOT node whose spans and
words are empty; a caption with words but nothing nameable (digits, punctuation) gets a ROOT-only
graph over its words. Both are what the official reader consumes without error (zero verb and
noun slots); the data reader skips zero-length captions.
"""

from __future__ import annotations

import bisect
import itertools
import multiprocessing as mp
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from hanet.text.normalize import split_words

__all__ = [
    "Graph", "Frame", "FallbackNode", "READER_ROLES", "RoleGraphParser", "CaptionAnalysis",
    "assemble_graph", "empty_graph", "validate_graph", "graph_roles", "remap_graph", "graph_for_given",
    "graph_for_normalized",
]

#: ``[nodes, edges]`` as stored in ``sent2rolegraph.augment.json``.
Graph = list
#: One predicate: its word span and its arguments ``(role, word span)`` in sentence order.
Frame = tuple[list[int], list[tuple[str, list[int]]]]
#: A node of the no-predicate fallback: ``(role, word span)``.
FallbackNode = tuple[str, list[int]]

#: The roles the official reader embeds (``C-``/``R-`` prefixed ones share their base role's id,
#: anything else is read as ``NOUN``).
READER_ROLES = ("V", "ARG1", "ARG0", "ARG2", "ARG3", "ARG4", "ARGM-LOC", "ARGM-MNR", "ARGM-TMP",
                "ARGM-DIR", "ARGM-ADV", "ARGM-PRP", "ARGM-PRD", "ARGM-COM", "ARGM-MOD", "NOUN")

# Bump when a rule changes: cached parses made by another version are then recomputed.
RULES_VERSION = "3"

# --------------------------------------------------------------------------- word tables
_BE = frozenset(["be", "is", "are", "was", "were", "been", "being", "am", "'s", "'re", "'m"])

_PREP_ROLE = {
    **dict.fromkeys(["in", "on", "at", "inside", "near", "under", "underneath", "beneath",
                     "behind", "beside", "besides", "between", "among", "amongst", "above",
                     "below", "within", "outside", "atop", "against", "by", "opposite", "amid",
                     "upon", "alongside", "next", "beyond", "aboard"], "ARGM-LOC"),
    **dict.fromkeys(["into", "onto", "to", "toward", "towards", "through", "across", "along",
                     "down", "up", "out", "over", "from", "off", "past", "via", "throughout",
                     "around", "away", "round"], "ARGM-DIR"),
    **dict.fromkeys(["during", "before", "after", "until", "till", "since", "while"],
                    "ARGM-TMP"),
    **dict.fromkeys(["like", "without", "with", "unlike"], "ARGM-MNR"),
    **dict.fromkeys(["for"], "ARGM-PRP"),
    **dict.fromkeys(["about", "of", "regarding"], "ARG1"),
    **dict.fromkeys(["as"], "ARGM-PRD"),
    **dict.fromkeys(["because", "due"], "ARGM-CAU"),
}

# Verb classes whose prepositional phrases are numbered arguments in PropBank frames.
_PLACE = frozenset("""put place add insert pour drop dip stuff load set lay spread sprinkle
    transfer attach apply tuck throw toss stick plug hang layer pack inject squeeze spoon scoop
    arrange store lower""".split())
_GIVE_TALK = frozenset("""give hand pass send serve feed offer sell deliver throw toss kick
    show present introduce explain describe say tell talk speak sing read reply respond teach
    demonstrate announce report mention chat shout yell whisper write sign wave point
    propose bow""".split())
_LOOK_AT = frozenset("""look stare glance gaze peer laugh smile yell shout scream bark point
    aim shoot grin frown glare wink""".split())
_SEEK = frozenset("look search wait ask prepare shop hunt reach pay apply audition".split())
_CHANGE = frozenset("""turn change transform convert cut slice chop break divide split fold
    shape form roll mold grind crush blend mash make""".split())
_TAKE = frozenset("take remove get pull grab pick buy steal borrow receive".split())
_FILL = frozenset("""fill cover decorate top coat garnish stuff load sprinkle season spray
    replace provide""".split())
_WORK_ON = frozenset("work focus comment concentrate rely depend".split())

_VERB_PREP_ROLE: dict[tuple[str, str], str] = {}
for _v in _PLACE:
    for _p in ("in", "into", "on", "onto", "to", "inside", "over", "under"):
        _VERB_PREP_ROLE[(_v, _p)] = "ARG2"
for _v in _GIVE_TALK:
    _VERB_PREP_ROLE[(_v, "to")] = "ARG2"
for _v in _LOOK_AT:
    _VERB_PREP_ROLE[(_v, "at")] = "ARG1"
for _v in _SEEK:
    _VERB_PREP_ROLE[(_v, "for")] = "ARG1"
for _v in _CHANGE:
    _VERB_PREP_ROLE[(_v, "into")] = "ARG2"
for _v in _TAKE:
    _VERB_PREP_ROLE[(_v, "from")] = "ARG2"
for _v in _FILL:
    _VERB_PREP_ROLE[(_v, "with")] = "ARG2"
for _v in _WORK_ON:
    _VERB_PREP_ROLE[(_v, "on")] = "ARG1"
_VERB_PREP_ROLE.update({
    ("listen", "to"): "ARG1", ("react", "to"): "ARG1", ("belong", "to"): "ARG1",
    ("dance", "to"): "ARGM-MNR", ("play", "with"): "ARG1", ("dress", "in"): "ARG2",
    ("dress", "as"): "ARGM-PRD", ("talk", "with"): "ARG2", ("speak", "with"): "ARG2",
    ("chat", "with"): "ARG2",
})

_TIME_NOUNS = frozenset("""morning afternoon evening night nighttime daytime day today tonight
    minute second hour moment time week year month season winter summer autumn while
    beginning end weekend sunset sunrise dawn dusk noon midnight childhood""".split())

_ANIMATE = frozenset("""man woman boy girl person people guy lady kid child baby toddler friend
    family player team teammate crowd audience group dog cat puppy kitten horse animal bird
    partner mother father mom dad parent son daughter brother sister husband wife girlfriend
    boyfriend student teacher coach host reporter anchor fan someone somebody everyone other
    opponent band singer actor actress character chef customer doctor patient officer police
    soldier judge contestant guest interviewer celebrity monkey elephant lion bear cow pig
    sheep goat fish""".split())

# Tags of the word after a headline's verb ("talks to camera", "interviews soldiers", "walks away").
_AFTER_VERB = frozenset({"IN", "TO", "DT", "PRP", "PRP$", "RP", "RB", "RBR", "NN", "NNS", "NNP", "NNPS", "JJ", "CD",
                         "WDT", "WRB"})

# Intransitive subjects of these verbs undergo the event (PropBank ARG1): "the water boils".
_UNACCUSATIVE = frozenset("""fall boil melt explode collapse happen occur appear disappear die
    rise sink float drip flow spill burst fade freeze bloom erupt shatter crumble sizzle bubble
    hang shine glow grow emerge vanish crack topple burn spin roll bounce change open close
    drop""".split())

_ADV_ROLE = {
    **dict.fromkeys("""then now again still already soon later first finally afterwards
        afterward today tonight yesterday tomorrow once always often sometimes usually
        currently recently meanwhile eventually ever before after constantly continuously
        repeatedly immediately forever occasionally frequently lastly initially when whenever
        early late nowadays anymore yet momentarily""".split(), "ARGM-TMP"),
    **dict.fromkeys("""here there outside inside outdoors indoors everywhere somewhere anywhere
        nearby where underwater upstairs downstairs abroad onstage offstage overhead next close
        behind ahead beside underneath below above beneath elsewhere""".split(), "ARGM-LOC"),
    **dict.fromkeys("""away back up down around out off along forward forwards backward
        backwards over across through aside apart upward upwards downward downwards in home
        inward outward sideways past round""".split(), "ARGM-DIR"),
    **dict.fromkeys(["not", "n't", "never", "no"], "ARGM-NEG"),
    **dict.fromkeys("""also just even only too really actually probably maybe perhaps however
        so instead almost nearly else either especially mostly mainly basically apparently
        seemingly certainly definitely obviously""".split(), "ARGM-ADV"),
}

_MARKER_ROLE = {
    **dict.fromkeys("while when as whenever after before until till since once".split(),
                    "ARGM-TMP"),
    **dict.fromkeys(["because"], "ARGM-CAU"),
    **dict.fromkeys(["if", "unless", "though", "although", "whereas", "whether"], "ARGM-ADV"),
    **dict.fromkeys(["like"], "ARGM-MNR"),
    **dict.fromkeys(["so", "that"], "ARGM-PRP"),
}

# Prepositions whose phrase, found at the end of a verb's object, describes the event (where,
# whither, when) rather than the object: "playing [a guitar] [on stage]". "with", "of", "for",
# "about" and "like" phrases usually do describe the noun ("a man with a beard") and stay.
_VERB_SIDE_PREPS = frozenset("""in on at into onto to inside toward towards through across
    along near under underneath beneath behind beside during before after""".split())

_SUBJ = ("nsubj", "csubj")
_SUBJPASS = ("nsubjpass", "csubjpass")
# a noun's own modifiers: a word carrying one is read as a noun, and a verb misread as a noun
# carries its subject's words this way
_NOMINAL_MODIFIERS = ("det", "amod", "compound", "nummod", "poss", "nmod", "quantmod")
# where the parser puts a verb it read as a plural noun, under the verb that follows it
_MISREAD_AS_ARGUMENT = ("nsubj", "ccomp", "npadvmod", "dep")
# words of quantity that do take a plural after "a" ("a few birds"): no misread verb there
_QUANTITY_WORDS = frozenset("""few many several dozen dozens hundred hundreds thousand thousands
    couple lot lots bunch pair handful number variety series set group crowd team""".split())
_REL_PRON_TAGS = frozenset(["WDT", "WP", "WP$"])


# --------------------------------------------------------------------------- graph assembly
def _root(words: Sequence[str]) -> dict[str, Any]:
    return {"role": "ROOT", "spans": list(range(len(words))), "words": list(words)}


def empty_graph(words: Sequence[str]) -> Graph:
    """A graph with only the ROOT node (spans all words; empty for an empty caption).

    Args:
        words: the caption's words (``caption.split()``).

    Returns:
        ``[{"ROOT": ...}, []]``.
    """
    return [{"ROOT": _root(words)}, []]


def assemble_graph(words: Sequence[str], frames: Iterable[Frame],
                   fallback: Iterable[FallbackNode] | Callable[[], Iterable[FallbackNode]] = ()
                   ) -> Graph:
    """Build a graph from predicate frames, the way the official converter does.

    Each frame with at least one argument adds a ``V`` node and its argument nodes (in the order
    given) with one edge each; a node whose (span, role) already exists is reused, so an
    argument shared by two predicates is one node with two edges, and a predicate whose span
    already has a ``V`` node is skipped. If no frame adds a node, the ``fallback`` nodes are
    added instead (the official "augment" step).

    Args:
        words: the caption's words.
        frames: ``(verb_span, [(role, span), ...])`` per predicate, spans sorted word indices.
        fallback: ``(role, span)`` nodes for a graph without predicates, or a function
            returning them (called only when needed: noun chunks are not free).

    Returns:
        ``[nodes, edges]`` in the released format.
    """
    nodes: dict[str, dict[str, Any]] = {"ROOT": _root(words)}
    edges: list[list[str]] = []
    by_key: dict[tuple[tuple[int, ...], str], str] = {}

    def add(role: str, spans: list[int]) -> str:
        name = str(len(nodes))
        nodes[name] = {"role": role, "spans": list(spans), "words": [words[i] for i in spans]}
        by_key[(tuple(spans), role)] = name
        return name

    for verb_spans, args in frames:
        args = [(role, spans) for role, spans in args if spans]
        if not verb_spans or not args:
            continue  # official: a frame needs a V and another role to become nodes
        if (tuple(verb_spans), "V") in by_key:
            continue
        verb = add("V", verb_spans)
        seen_in_frame: set[tuple[tuple[int, ...], str]] = set()
        for role, spans in args:
            key = (tuple(spans), role)
            if key in seen_in_frame:
                continue
            seen_in_frame.add(key)
            arg = by_key.get(key) or add(role, spans)
            edges.append([verb, arg, role])
    if len(nodes) == 1:
        for role, spans in (fallback() if callable(fallback) else fallback):
            if spans and (tuple(spans), role) not in by_key:
                add(role, spans)
    return [nodes, edges]


def remap_graph(graph: Graph, mapping: Sequence[Sequence[int]], words: Sequence[str]) -> Graph:
    """The same graph over other word positions.

    Args:
        graph: ``[nodes, edges]`` whose spans index one word list.
        mapping: for each of those positions, its positions in ``words``.
        words: the word list the new spans index.

    Returns:
        A new graph: ROOT spans all of ``words``; every other node the union of its words'
        new positions (a node may end with empty spans, which the readers skip).
    """
    nodes, edges = graph
    out = {}
    for key, node in nodes.items():
        if key == "ROOT":
            spans = list(range(len(words)))
        else:
            spans = sorted({k for i in node.get("spans", []) if 0 <= i < len(mapping) for k in mapping[i]})
        out[key] = {**node, "spans": spans, "words": [words[k] for k in spans]}
    return [out, [list(e) for e in edges]]


def graph_for_given(graph: Graph, caption: str) -> Graph:
    """A graph parsed on ``normalize_caption(caption)``, re-indexed by the caption as given (its
    whitespace tokens: what a reader of the released format splits a graph's key into)."""
    from hanet.text.normalize import token_positions

    owner = [[i] for i, ps in enumerate(token_positions(caption)) for _ in ps]
    return remap_graph(graph, owner, caption.split())


def graph_for_normalized(graph: Graph, caption: str) -> Graph:
    """The inverse of :func:`graph_for_given`: a graph keyed by ``caption`` as given, re-indexed
    by the words of its canonical form (what a typed query is encoded as)."""
    from hanet.text.normalize import normalize_caption, token_positions

    return remap_graph(graph, token_positions(caption), normalize_caption(caption).split())


def graph_roles(graph: Graph) -> list[str]:
    """Roles of the non-ROOT nodes, in node order."""
    return [n["role"] for k, n in graph[0].items() if k != "ROOT"]


def validate_graph(graph: Any, words: Sequence[str]) -> list[str]:
    """Check that a graph is one the official reader consumes for this caption.

    Args:
        graph: the ``[nodes, edges]`` value of one caption.
        words: the caption's words.

    Returns:
        The problems found (empty when the graph is fine).
    """
    problems: list[str] = []
    if not isinstance(graph, (list, tuple)) or len(graph) != 2:
        return ["graph is not [nodes, edges]"]
    nodes, edges = graph
    if not isinstance(nodes, dict) or "ROOT" not in nodes:
        return ["nodes is not a dict with a ROOT node"]
    if list(nodes["ROOT"].get("spans", [])) != list(range(len(words))):
        problems.append("ROOT spans are not all the words")
    for name, node in nodes.items():
        spans = node.get("spans")
        if not isinstance(spans, list) or not all(isinstance(i, int) for i in spans):
            problems.append(f"node {name}: spans is not a list of ints")
            continue
        if name != "ROOT" and not spans:
            problems.append(f"node {name}: empty spans")
        if any(i < 0 or i >= len(words) for i in spans):
            problems.append(f"node {name}: span outside the caption's {len(words)} words")
        if node.get("words") != [words[i] for i in spans if 0 <= i < len(words)]:
            problems.append(f"node {name}: words do not match spans")
        if not isinstance(node.get("role"), str):
            problems.append(f"node {name}: role is not a string")
    for edge in edges:
        if len(edge) != 3 or edge[0] not in nodes or edge[1] not in nodes:
            problems.append(f"edge {edge!r} does not join two nodes")
        elif nodes[edge[0]]["role"] != "V":
            problems.append(f"edge {edge!r} does not start at a V node")
    return problems


# --------------------------------------------------------------------------- analysis record
@dataclass
class CaptionAnalysis:
    """Everything prepare needs from one parse of one caption.

    Attributes:
        graph: the role graph (``[nodes, edges]``).
        fallback: the official no-predicate nodes for this caption (used when an SRL graph
            from :mod:`hanet.text.srl` has no predicate); None when not computed (the graph
            had predicates and the parser was not asked to ``keep_fallback``).
        verbs: verb concepts, in order, repeats kept.
        nouns: noun concepts, in order, repeats kept.
    """

    graph: Graph
    fallback: list[FallbackNode] | None = field(default_factory=list)
    verbs: list[str] = field(default_factory=list)
    nouns: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- dependency rules
class _DocRules:
    """Frames of one parsed caption. Token indices are spaCy's; spans are word indices."""

    def __init__(self, doc: Any, word_of: list[int | None], lemma: Callable[[Any], str],
                 verbs: frozenset[str] = frozenset()):
        self.doc = doc
        self.verbs = verbs
        self.tokens = list(doc)  # Doc iteration builds Token objects: do it once
        self.word_of = word_of
        self._lemma_fn = lemma
        self._lemmas: dict[int, str] = {}
        self._subjects: dict[int, tuple[str, list[int]] | None] = {}
        self._visiting: set[int] = set()
        self.headline: int | None = None  # a headline's verb (_headline_verb): its frame is read in order
        self.misread = self._misread_verbs()
        for i in self.misread:
            # retagged, so that the concepts, the lemma ("vanishes" -> "vanish", not the noun
            # rule's "vanishe") and every rule below read them as the verbs they are
            self.tokens[i].tag_ = "VBZ"
            self.tokens[i].pos_ = "VERB"

    # ---- verbs the tagger read as plural nouns
    def _misread_verbs(self) -> frozenset[int]:
        """Tokens tagged as plural nouns that are present-tense verbs after their subject.

        The small English model often reads "NOUN VERB-s" as a compound noun: "a girl sings"
        (girl/compound, sings/NNS), "a red square travels to the left and then it grows"
        (travels/NNS heading the sentence). A role labeller sees the verbs there, and so must
        we (else the action is lost from the role graph and the verb concepts). Read as a verb:
        a plural noun that has a subject (nominal subjects belong to verbs), or that carries a
        singular determiner ("a", "an": no plural noun takes one) with a modifier between them
        ("a [girl] sings", "a [red square] travels"), heading the sentence or hung on the verb
        after it; not after a word of quantity ("a few birds"). Then the bare plurals joined to
        a verb ("sings and dances"; "shoots a basketball and misses"). The caller retags them
        all as verbs.
        """
        found: set[int] = set()
        for t in self.tokens:
            if t.tag_ != "NNS" or self.word_of[t.i] is None:
                continue
            lefts = list(t.lefts)
            if any(w.lower_ in _QUANTITY_WORDS for c in lefts for w in c.subtree):
                continue  # "a few birds", "a great many birds": a plural after all
            singular = any(c.dep_ == "det" and c.lower_ in ("a", "an") for c in lefts) and \
                any(c.dep_ in ("compound", "amod") for c in lefts)
            subject = any(c.dep_ in _SUBJ for c in lefts)
            if t.dep_ == "ROOT":
                if singular or subject:
                    found.add(t.i)
            elif (singular or subject) and t.dep_ in _MISREAD_AS_ARGUMENT and t.head.i > t.i \
                    and t.head.pos_ == "VERB":
                # "a tiny block drops then goes up": "a tiny block drops" read as the subject
                # of "goes", "first a shape rises and then it moves" as its complement
                found.add(t.i)
        verbs = [t for t in self.tokens if t.pos_ == "VERB" and t.dep_ not in ("aux", "auxpass") and t.lower_ not in _BE]
        if not found and all(t.dep_ == "compound" for t in verbs):
            # no verb, or only one parsed as a noun's modifier ("man [interviews] soldiers"): a headline
            self.headline = verbs[0].i if verbs else self._headline_verb()
            if self.headline is not None and not verbs:
                found.add(self.headline)
        for t in self.tokens:  # conjuncts after their verb, in sentence order
            if t.i not in found and self._bare_plural_conjunct(t, found):
                found.add(t.i)
        return frozenset(found)

    def _headline_verb(self) -> int | None:
        """The verb of a caption written like a headline, which the tagger read as a plural noun:
        "woman in gray top talks to camera", "man interviews soldiers under a tent" (people's
        video queries often drop the articles, and the small model then finds no verb at all).
        In a caption with no verb, the first plural noun after a noun, not right after a
        determiner or a number, whose singular the lemmatiser knows as a verb, followed by what
        follows a verb (a preposition, a determiner, a pronoun, an adverb, a particle, a noun
        phrase); at the caption's end it stays a noun ("the kitchen counters")."""
        if not self.verbs:
            return None
        seen_noun = False
        for k, t in enumerate(self.tokens):
            if t.tag_ == "NNS" and seen_noun and self.word_of[t.i] is not None:
                w = t.lower_
                base = next((b for b in (w[:-1], w[:-2]) if w.endswith("s") and b in self.verbs), None)
                nxt = self.tokens[k + 1] if k + 1 < len(self.tokens) else None
                after_det = self.tokens[k - 1].tag_ in ("DT", "PRP$", "CD")  # "some greens", "two stores"
                if base and not after_det and nxt is not None and (nxt.tag_ in _AFTER_VERB or nxt.is_punct):
                    return t.i
            if t.pos_ in ("NOUN", "PROPN"):
                seen_noun = True
        return None

    @staticmethod
    def _bare_plural_conjunct(tok: Any, verbs: set[int]) -> bool:
        # "dances" in "a girl sings and dances", "rotates in place" in "... travels to the right
        # and rotates in place": a plural with no noun modifier of its own, joined to a verb
        # ("a dot blinks then shrinks": "shrinks" hung on "blinks" as an unlabelled dependent)
        return (tok.dep_ in ("conj", "dep") and tok.tag_ == "NNS" and tok.head.i < tok.i
                and (tok.head.i in verbs or tok.head.pos_ == "VERB")
                and not any(c.dep_ in _NOMINAL_MODIFIERS for c in tok.children))

    # ---- helpers
    def lemma(self, tok: Any) -> str:
        if tok.i not in self._lemmas:
            self._lemmas[tok.i] = self._lemma_fn(tok).lower()
        return self._lemmas[tok.i]

    def spans(self, token_ids: Iterable[int]) -> list[int]:
        return sorted({w for t in token_ids if (w := self.word_of[t]) is not None})

    def is_predicate(self, tok: Any) -> bool:
        if self.word_of[tok.i] is None or tok.lower_ in _BE:
            return False
        # verbs the tagger read as plural nouns are retagged as verbs by now (_misread_verbs)
        return tok.pos_ == "VERB" and tok.dep_ not in ("aux", "auxpass") and self.lemma(tok) != "be"

    def is_passive(self, tok: Any) -> bool:
        return any(c.dep_ in ("auxpass", "nsubjpass", "csubjpass", "agent")
                   for c in tok.children)

    @staticmethod
    def subtree(tok: Any) -> list[int]:
        return [t.i for t in tok.subtree]

    def trim(self, tokens: list[int]) -> list[int]:
        """Sorted tokens without the conjunctions and punctuation at either end.

        A coordinated verb often leaves its "and" inside the previous object's subtree
        ("shoots [a basketball and] misses").
        """
        tokens = sorted(set(tokens))
        edge = ("cc", "punct")
        while tokens and self.tokens[tokens[-1]].dep_ in edge:
            tokens.pop()
        while tokens and self.tokens[tokens[0]].dep_ in edge:
            tokens.pop(0)
        return tokens

    def antecedent(self, noun: Any, clause: Any) -> list[int]:
        """The noun's phrase without the modifying clause: the contiguous part around it."""
        inside = {t.i for t in clause.subtree}
        keep = {t.i for t in noun.subtree} - inside
        lo = hi = noun.i
        while lo - 1 in keep:
            lo -= 1
        while hi + 1 in keep:
            hi += 1
        return list(range(lo, hi + 1))

    def adjust(self, role: str, pred: Any) -> str:
        """ARG0 -> ARG1 for intransitive unaccusative verbs ("the water is boiling")."""
        if role == "ARG0" and self.lemma(pred) in _UNACCUSATIVE and \
                not any(c.dep_ == "dobj" for c in pred.children):
            return "ARG1"
        return role

    # ---- subjects, own or shared
    def subject(self, pred: Any) -> tuple[str, list[int]] | None:
        """(role, token ids) of the predicate's subject-like argument, inherited if needed."""
        if pred.i in self._subjects:
            return self._subjects[pred.i]
        if pred.i in self._visiting:  # a cycle cannot happen in a tree; be safe anyway
            return None
        self._visiting.add(pred.i)
        try:
            found = self._own_subject(pred) or self._inherited_subject(pred)
        finally:
            self._visiting.discard(pred.i)
        self._subjects[pred.i] = found
        return found

    def _own_subject(self, pred: Any) -> tuple[str, list[int]] | None:
        for c in pred.children:
            if c.dep_ in _SUBJ and c.i in self.misread:
                # "[a tiny block drops] then goes up": the subject is the misread verb's
                shared = self.subject(c)
                return None if shared is None else (self.adjust("ARG0", pred), shared[1])
            if c.dep_ in _SUBJ and not self._is_rel_pronoun(c, pred):
                return self.adjust("ARG0", pred), self.subtree(c)
            if c.dep_ in _SUBJPASS and not self._is_rel_pronoun(c, pred):
                return "ARG1", self.subtree(c)
        # the parser hung the subject's words on the verb as a noun's modifiers ("a [red]
        # [square] travels", read as a plural noun; "a [square] expands", tagged a verb yet
        # parsed as a noun phrase): those before it, from the determiner on; a determiner
        # alone is no subject ("the dancing")
        words = [t for c in pred.lefts if c.dep_ in _NOMINAL_MODIFIERS for t in self.subtree(c)]
        if len(words) >= 2 and any(c.dep_ == "det" for c in pred.lefts):
            return self.adjust("ARG0", pred), words
        return None

    def _inherited_subject(self, pred: Any) -> tuple[str, list[int]] | None:
        dep, head = pred.dep_, pred.head
        passive = self.is_passive(pred)
        if dep in ("acl", "relcl") and head.i != pred.i:
            tokens = self.antecedent(head, pred)
            if dep == "relcl":
                role = self._relative_role(pred)
                if role is None:  # "the food she made": the antecedent is the object
                    role = "ARG1" if self._own_subject(pred) or passive else "ARG0"
                return self.adjust(role, pred), tokens
            role = "ARG1" if passive or pred.tag_ == "VBN" else "ARG0"
            if any(c.dep_ == "aux" and c.tag_ == "TO" for c in pred.children) and \
                    any(c.dep_ == "dobj" for c in pred.children):
                return None  # "a knife to cut bread": the noun is not the cutter
            return self.adjust(role, pred), tokens
        governor = None
        if dep in ("conj", "advcl", "xcomp") and head.i != pred.i and head.pos_ in ("VERB", "AUX"):
            governor = head
        elif dep == "dep" and head.i < pred.i and head.pos_ in ("VERB", "AUX"):
            governor = head  # "a triangle slides up then flickers": an unlabelled second verb
        elif dep == "acomp" and pred.tag_ == "VBG" and head.lower_ in _BE:
            governor = head  # "a star is [spinning] and then stands still": a progressive misparsed
        elif dep == "pcomp" and head.dep_ == "prep" and head.head.pos_ in ("VERB", "AUX"):
            governor = head.head
        if governor is None:
            return None
        if dep == "xcomp" and any(c.tag_ in ("WRB", "WP") for c in pred.children):
            return None  # "explains how to make a cake": whoever makes it is left open
        if dep == "xcomp":  # object control ("asks him to ...") else subject control
            obj = next((c for c in governor.children if c.dep_ in ("dobj", "dative")), None)
            if obj is not None:
                return ("ARG1" if passive else self.adjust("ARG0", pred)), self.subtree(obj)
        inherited = self.subject(governor)
        if inherited is None:
            return None
        gov_role, tokens = inherited
        own_aux = any(c.dep_ in ("aux", "auxpass") for c in pred.children)
        if passive or (dep == "conj" and gov_role == "ARG1" and pred.tag_ == "VBN"
                       and not own_aux and self.is_passive(governor)):
            return "ARG1", tokens
        if dep != "conj" and pred.tag_ == "VBN" and not own_aux:
            return "ARG1", tokens  # "sits, surrounded by ...": a participle of state
        return self.adjust("ARG0", pred), tokens

    @staticmethod
    def _is_rel_pronoun(tok: Any, pred: Any) -> bool:
        return pred.dep_ == "relcl" and (tok.tag_ in _REL_PRON_TAGS or tok.lower_ == "that")

    def _relative_role(self, pred: Any) -> str | None:
        for c in pred.children:
            if self._is_rel_pronoun(c, pred):
                if c.dep_ in _SUBJ:
                    return "ARG0"
                if c.dep_ in _SUBJPASS or c.dep_ in ("dobj", "attr"):
                    return "ARG1"
        return None

    # ---- one predicate's arguments
    def headline_frame(self, pred: Any) -> Frame:
        """A headline verb's frame, read in word order (the parse hung its words elsewhere): the
        words before it are its subject; after it, a noun phrase is its object and each
        preposition starts an argument of its own ("man in black | talks | to camera | from his
        office")."""
        words = [t for t in self.tokens if self.word_of[t.i] is not None and not t.is_punct]
        before = [t.i for t in words if t.i < pred.i]
        args: list[tuple[str, list[int]]] = [(self.adjust("ARG0", pred), before)] if before else []
        current: tuple[str, list[int]] | None = None
        for t in (t for t in words if t.i > pred.i):
            if t.tag_ in ("IN", "TO") or current is None:
                role = (self.prep_role(pred, t) if t.tag_ in ("IN", "TO") else
                        self.adverb_role(t) if t.tag_ in ("RB", "RP") else "ARG1")
                current = (role, [])
                args.append(current)
            current[1].append(t.i)
        return [self.word_of[pred.i]], [(role, self.spans(tokens)) for role, tokens in args if tokens]  # type: ignore[list-item]

    def frame(self, pred: Any) -> Frame:
        if pred.i == self.headline:
            return self.headline_frame(pred)
        args: list[tuple[int, str, list[int]]] = []  # (first token, role, token ids)

        def put(role: str, tokens: list[int]) -> None:
            tokens = self.trim(tokens)
            if tokens:
                args.append((tokens[0], role, tokens))

        subj = self.subject(pred)
        if subj is not None:
            put(subj[0], subj[1])
        merged: set[int] = set()
        for c in pred.children:
            dep = c.dep_
            if c.i in self.misread:
                continue  # a predicate of its own ("[first a shape rises] and then it moves")
            if self._is_rel_pronoun(c, pred):
                role = "ARG1" if dep in _SUBJPASS or dep in ("dobj", "attr") else \
                    self.adjust("ARG0", pred)
                put("R-" + role, self.subtree(c))
            elif dep in _SUBJ or dep in _SUBJPASS:
                continue  # taken by subject()
            elif dep == "agent":
                put("ARG0", self.subtree(c))
            elif dep == "dobj":
                if c.i in merged:
                    continue
                tokens, split = self.object_parts(pred, c)
                merged.update(tokens)
                put("ARG1", tokens)
                for prep in split:
                    put(self.prep_role(pred, prep), self.subtree(prep))
            elif dep in ("dative", "iobj"):
                put("ARG2", self.subtree(c))
            elif dep in ("attr", "acomp", "oprd"):
                put("ARG2", self.subtree(c))
            elif dep == "xcomp":
                put("ARG1" if c.pos_ in ("VERB", "AUX") else "ARG2", self.subtree(c))
            elif dep == "ccomp":
                put("ARG1", self.subtree(c))
            elif dep == "prep":
                put(self.prep_role(pred, c), self.subtree(c))
            elif dep == "advmod":
                if pred.dep_ == "relcl" and c.tag_ == "WRB":
                    put("R-" + _ADV_ROLE.get(c.lower_, "ARGM-MNR"), [c.i])
                else:
                    put(self.adverb_role(c), self.subtree(c))
            elif dep == "npadvmod":
                put(self.npadvmod_role(c), self.subtree(c))
            elif dep == "neg":
                put("ARGM-NEG", [c.i])
            elif dep == "aux" and c.tag_ == "MD":
                put("ARGM-MOD", [c.i])
            elif dep == "advcl":
                put(self.advcl_role(c), self.subtree(c))
        args.sort(key=lambda a: a[0])
        out: list[tuple[str, list[int]]] = []
        verb_word = self.word_of[pred.i]
        for _, role, tokens in args:
            spans = [w for w in self.spans(tokens) if w != verb_word]
            if spans:
                out.append((role, spans))
        return [verb_word], out  # type: ignore[list-item]

    def object_parts(self, pred: Any, obj: Any) -> tuple[list[int], list[Any]]:
        """The object's tokens, and the prepositional phrases that belong to the verb.

        Two parser habits are undone here. A noun-noun object is sometimes read as two
        objects ("demonstrating [a yoga] [pose]"): adjacent objects are joined. A place,
        direction or time phrase after the object is usually hung on the object ("playing
        [a guitar on stage]"), where a role labeller gives the verb an ARGM-LOC: such phrases,
        when they end the object, go to the verb.
        """
        tokens = self.subtree(obj)
        nxt = [c for c in pred.children if c.dep_ == "dobj" and c.i > obj.i]
        if nxt and nxt[0].left_edge.i == obj.right_edge.i + 1:
            tokens += self.subtree(nxt[0])
            obj = nxt[0]
        split: list[Any] = []
        for prep in reversed(list(obj.rights)):
            if prep.dep_ != "prep" or prep.right_edge.i != max(tokens):
                break
            pobj = next((c for c in prep.children if c.dep_ == "pobj"), None)
            timed = pobj is not None and self.lemma(pobj) in _TIME_NOUNS
            if prep.lower_ not in _VERB_SIDE_PREPS and not timed:
                break
            split.append(prep)
            inside = {t.i for t in prep.subtree}
            tokens = [t for t in tokens if t not in inside]
        return tokens, split[::-1]

    def prep_role(self, pred: Any, prep: Any) -> str:
        word = prep.lower_
        obj = next((c for c in prep.children if c.dep_ == "pobj"), None)
        if obj is not None and self.lemma(obj) in _TIME_NOUNS and word not in ("about", "of"):
            return "ARGM-TMP"
        verb = self.lemma(pred)
        if (verb, word) in _VERB_PREP_ROLE:
            return _VERB_PREP_ROLE[(verb, word)]
        if word == "with" and obj is not None and (
                self.lemma(obj) in _ANIMATE or obj.pos_ in ("PROPN", "PRON")):
            return "ARGM-COM"
        if word == "by" and any(c.dep_ == "pcomp" for c in prep.children):
            return "ARGM-MNR"  # "by cutting it"
        return _PREP_ROLE.get(word, "ARGM-ADV")

    @staticmethod
    def adverb_role(adv: Any) -> str:
        word = adv.lower_
        if word in _ADV_ROLE:
            return _ADV_ROLE[word]
        return "ARGM-MNR"

    def npadvmod_role(self, tok: Any) -> str:
        lemma = self.lemma(tok)
        if lemma in _TIME_NOUNS:
            return "ARGM-TMP"
        if lemma == "home":
            return "ARGM-DIR"
        return "ARGM-ADV"

    @staticmethod
    def advcl_role(clause: Any) -> str:
        for c in clause.children:
            if c.dep_ == "mark":
                return _MARKER_ROLE.get(c.lower_, "ARGM-ADV")
        if any(c.dep_ == "aux" and c.tag_ == "TO" for c in clause.children):
            return "ARGM-PRP"
        if clause.lower_ in _MARKER_ROLE:
            return _MARKER_ROLE[clause.lower_]
        return "ARGM-ADV"

    def frames(self) -> list[Frame]:
        return [self.frame(t) for t in self.tokens if self.is_predicate(t)]

    def fallback(self) -> list[FallbackNode]:
        """The official no-predicate nodes: noun chunks (or NN* words), then VB* words."""
        nodes: list[FallbackNode] = []
        for chunk in self.doc.noun_chunks:
            spans = self.spans(range(chunk.start, chunk.end))
            if spans:
                nodes.append(("NOUN", spans))
        if not nodes:
            nodes = [("NOUN", [w]) for t in self.tokens
                     if t.tag_.startswith("NN") and (w := self.word_of[t.i]) is not None]
        nodes += [("V", [w]) for t in self.tokens
                  if t.tag_.startswith("VB") and (w := self.word_of[t.i]) is not None]
        unique: list[FallbackNode] = []
        seen: set[tuple[str, tuple[int, ...]]] = set()
        for role, spans in nodes:
            if (role, tuple(spans)) not in seen:
                seen.add((role, tuple(spans)))
                unique.append((role, spans))
        return unique


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
        rules = _DocRules(doc, _align(doc, starts), self._lemma, self._verbs)
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
