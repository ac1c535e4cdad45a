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
from hanet.text.rolegraph.graph import (READER_ROLES, CaptionAnalysis, FallbackNode, Frame, Graph, assemble_graph,
                                        empty_graph, graph_for_given, graph_for_normalized, graph_roles, remap_graph,
                                        validate_graph)
from hanet.text.rolegraph.parser import RoleGraphParser
from hanet.text.rolegraph.rules import RULES_VERSION

__all__ = [
    "Graph", "Frame", "FallbackNode", "READER_ROLES", "RoleGraphParser", "CaptionAnalysis",
    "assemble_graph", "empty_graph", "validate_graph", "graph_roles", "remap_graph", "graph_for_given",
    "graph_for_normalized", "RULES_VERSION",
]
