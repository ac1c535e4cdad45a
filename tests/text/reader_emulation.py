"""How the official reader (``t2vretrieval/readers/rolegraphs.py``) walks a graph, restated.

Used to check that every graph we write is one that reader consumes: it takes ``np.min`` of
every V and argument node's spans, fills up to ``num_verbs`` verb and ``num_nouns`` noun slots in
node order, and keeps edges between filled slots.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def consume(graph: Any, max_words: int = 30, num_verbs: int = 4,
            num_nouns: int = 6) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (verb masks, noun masks, number of kept edges) the way the reader builds them."""
    nodes, edges = graph
    verb_masks = np.zeros((num_verbs, max_words), bool)
    noun_masks = np.zeros((num_nouns, max_words), bool)
    verb_slots: dict[str, int] = {}
    noun_slots: dict[str, int] = {}
    for key, node in nodes.items():
        if len(verb_slots) >= num_verbs:
            break
        if node["role"] == "V" and np.min(node["spans"]) < max_words:
            verb_masks[len(verb_slots), [w for w in node["spans"] if w < max_words]] = True
            verb_slots[key] = len(verb_slots)
    for key, node in nodes.items():
        if len(noun_slots) >= num_nouns:
            break
        if node["role"] not in ("ROOT", "V") and np.min(node["spans"]) < max_words:
            noun_masks[len(noun_slots), [w for w in node["spans"] if w < max_words]] = True
            noun_slots[key] = len(noun_slots)
    kept = sum(1 for v, a, _ in edges if v in verb_slots and a in noun_slots)
    return verb_masks, noun_masks, kept
