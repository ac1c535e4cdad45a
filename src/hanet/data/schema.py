"""What the released annotation files must hold, checked record by record.

One function per file kind; each returns every problem it finds (``[]`` when none), each naming
the record, so that ``check-data`` lists them all and ``train`` refuses a dataset it would
otherwise train on silently (a graph edge to a node that does not exist, a span past the
caption's last word, a vocabulary whose ids leave gaps, a concept weight that is NaN).
The files themselves are read by :mod:`hanet.data.formats`.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

#: ids reserved at the start of every vocabulary (``<bos>``, ``<eos>``, ``<unk>``)
RESERVED_IDS = 3


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def graph_problem(caption: str, graph: Any) -> Optional[str]:
    """Why a role graph (``[nodes, edges]`` of ``sent2rolegraph.augment.json``) cannot be the
    graph of ``caption``, or None.

    Nodes: ``{id: {"role": str, "spans": [word positions], "words": [...]}}`` with a ``ROOT``;
    spans are positions of the caption's words (0 .. words - 1); edges ``[from, to, role]``
    between existing nodes.
    """
    if not isinstance(graph, (list, tuple)) or len(graph) < 2:
        return "not [nodes, edges]"
    nodes, edges = graph[0], graph[1]
    if not isinstance(nodes, dict) or not isinstance(edges, list):
        return "not [nodes (an object), edges (a list)]"
    if "ROOT" not in nodes:
        return "no ROOT node"
    n_words = len(caption.split())
    for key, node in nodes.items():
        if not isinstance(node, dict):
            return f"node {key!r} is not an object"
        role = node.get("role")
        if not isinstance(role, str) or not role:
            return f"node {key!r} has no role"
        spans = node.get("spans", [])
        if not isinstance(spans, list) or not all(_is_int(w) for w in spans):
            return f"node {key!r}: spans {str(spans)[:60]} are not word positions"
        out = [w for w in spans if not 0 <= w < n_words]
        if out:
            return f"node {key!r}: spans {out[:5]} outside the caption's {n_words} words"
    for e in edges:
        if not isinstance(e, (list, tuple)) or len(e) != 3 or not isinstance(e[2], str):
            return f"edge {str(e)[:60]} is not [from, to, role]"
        missing = [x for x in e[:2] if not isinstance(x, str) or x not in nodes]
        if missing:
            return f"edge {list(e)[:3]} names no node {missing[0]!r}"
    return None


def vocab_problems(word2int: dict[str, Any]) -> list[str]:
    """Why ``word2int.json`` is not a vocabulary: non-negative integer ids that are 0 .. N-1 for
    N distinct ids, the first :data:`RESERVED_IDS` reserved (an id sizes the embedding table it
    indexes). Several keys may share an id: ``hanet prepare`` adds a caption's raw tokens
    ("guitar.") as aliases of their words."""
    if not word2int:
        return ["the vocabulary is empty"]
    bad = [w for w, i in word2int.items() if not _is_int(i) or i < 0]
    if bad:
        return [f"{len(bad)} word(s) without a non-negative integer id, e.g. {bad[0]!r}"]
    ids = set(word2int.values())
    out = []
    if max(ids) >= len(ids):
        out.append(f"ids go up to {max(ids):,} for {len(ids):,} distinct ids (ids are 0 .. {len(ids) - 1})")
    if len(ids) < RESERVED_IDS:
        out.append(f"{len(ids)} id(s): the first {RESERVED_IDS} are reserved (<bos>, <eos>, <unk>)")
    return out


def concept_weight_problems(per_video: dict[str, Any], names: Iterable[str]) -> list[str]:
    """Records of ``*_gt_all.json`` (``{video: {concept id: weight}}``) whose weights are not
    numbers in [0, 1]; ``video: concept`` for each."""
    out = []
    for n in names:
        entry = per_video.get(n)
        if entry is None:
            continue
        if not isinstance(entry, dict):
            out.append(f"{n}: not an object of concept weights")
            continue
        for k, w in entry.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or not 0 <= w <= 1:
                out.append(f"{n}: concept {k} weight {w!r}")
    return out


def split_overlap(names_by_split: dict[str, list[str]]) -> list[str]:
    """Videos named in more than one split (a test video seen in training inflates every figure)."""
    seen: dict[str, str] = {}
    out = []
    for split, names in names_by_split.items():
        for n in names:
            if n in seen and seen[n] != split:
                out.append(f"{n!r} in {seen[n]} and {split}")
            seen.setdefault(n, split)
    return out


__all__ = ["RESERVED_IDS", "graph_problem", "vocab_problems", "concept_weight_problems", "split_overlap"]
