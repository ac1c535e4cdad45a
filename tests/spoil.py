"""Spoiling a copy of the reference dataset one way at a time (the hostile-input tests and
``scripts/hostile_battery.py`` share it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: the ways :func:`spoil_graph` spoils a role graph
GRAPH_SPOILS = ("edge to no node", "span past the words", "negative span", "spans as strings", "no root", "no role",
                "edge without its role", "nodes not an object")


def spoil_graph(ds: Path, how: str) -> str:
    """Spoil the role graph of one training caption (one of :data:`GRAPH_SPOILS`); returns the caption."""
    names = [str(n) for n in np.load(ds / "trn_names.npy")]
    cap = json.loads((ds / "ref_captions.json").read_text())[names[0]][0]
    path = ds / "sent2rolegraph.augment.json"
    graphs = json.loads(path.read_text())
    nodes, edges = graphs[cap][0], graphs[cap][1]
    key = next(k for k in nodes if k != "ROOT")
    if how == "edge to no node":
        edges.append([key, "nowhere", "ARG0"])
    elif how == "span past the words":
        nodes[key]["spans"] = [len(cap.split()) + 3]
    elif how == "negative span":
        nodes[key]["spans"] = [-1]
    elif how == "spans as strings":
        nodes[key]["spans"] = ["0"]
    elif how == "no root":
        del nodes["ROOT"]
    elif how == "no role":
        nodes[key]["role"] = None
    elif how == "edge without its role":
        edges.append([key, "ROOT"])
    elif how == "nodes not an object":
        graphs[cap] = [[1, 2], edges]
    else:
        raise ValueError(how)
    path.write_text(json.dumps(graphs))
    return cap
