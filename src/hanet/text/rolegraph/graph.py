"""The role graph itself: its types, assembly as the official converter does it, remapping to
other word lists, validation; and the record of a caption's analysis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence



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
