from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hanet.errors import DataError
from hanet.text.rolegraph import RoleGraphParser, validate_graph
from hanet.text.srl import frames_from_srl, graph_from_srl, load_srl_file

EGG = ("a egg has been broken and dropped into the cup and a water is boiling in the sauce "
       "pan")


def tags(n: int, **spans: Any) -> list[str]:
    """BIO tags for n words from role=(start, end) keyword arguments (ARGM_LOC -> ARGM-LOC)."""
    out = ["O"] * n
    for role, (start, end) in spans.items():
        role = role.replace("_", "-")
        out[start] = f"B-{role}"
        for i in range(start + 1, end):
            out[i] = f"I-{role}"
    return out


def egg_srl() -> dict[str, Any]:
    n = 19
    return {"words": EGG.split(), "verbs": [
        {"verb": "has", "tags": tags(n, V=(2, 3))},
        {"verb": "been", "tags": tags(n, V=(3, 4))},
        {"verb": "broken", "tags": tags(n, ARG1=(0, 2), V=(4, 5))},
        {"verb": "dropped", "tags": tags(n, ARG1=(0, 2), V=(6, 7), ARG4=(7, 10))},
        {"verb": "boiling", "tags": tags(n, ARG1=(11, 13), V=(14, 15), ARGM_LOC=(15, 19))},
    ]}


def test_converts_like_the_official_notebook() -> None:
    nodes, edges = graph_from_srl(egg_srl(), EGG)
    brief = {k: (n["role"], n["spans"]) for k, n in nodes.items() if k != "ROOT"}
    assert brief == {"1": ("V", [4]), "2": ("ARG1", [0, 1]), "3": ("V", [6]),
                     "4": ("ARG4", [7, 8, 9]), "5": ("V", [14]), "6": ("ARG1", [11, 12]),
                     "7": ("ARGM-LOC", [15, 16, 17, 18])}
    assert edges == [["1", "2", "ARG1"], ["3", "2", "ARG1"], ["3", "4", "ARG4"],
                     ["5", "6", "ARG1"], ["5", "7", "ARGM-LOC"]]
    assert nodes["4"]["words"] == ["into", "the", "cup"]
    assert validate_graph([nodes, edges], EGG.split()) == []


def test_tag_repairs_and_repeated_roles() -> None:
    words = "w0 w1 w2 w3 w4".split()
    entry = {"words": words, "verbs": [
        # an I- tag after another role opens a phrase (the notebook's repair)
        {"tags": ["B-ARG0", "I-ARG1", "B-V", "B-ARGM-LOC", "B-ARGM-LOC"]},
        # two V phrases: not a usable frame
        {"tags": ["B-V", "O", "B-V", "B-ARG1", "O"]},
        # an I- tag on the first word opens a phrase (the notebook crashed here)
        {"tags": ["I-ARG0", "I-ARG0", "O", "B-V", "O"]},
    ]}
    frames = frames_from_srl(entry)
    assert frames == [([2], [("ARG0", [0]), ("ARG1", [1]), ("ARGM-LOC", [3]),
                             ("ARGM-LOC", [4])]),
                      ([3], [("ARG0", [0, 1])])]


def test_words_mismatch_returns_none() -> None:
    entry = {"words": ["a", "man's", "dog"], "verbs": []}
    assert graph_from_srl(entry, "a mans dog") is None


def test_srl_graph_without_predicates_gets_the_fallback(parser: RoleGraphParser) -> None:
    caption = "a cat is on a couch"
    entry = {"words": caption.split(), "verbs": [{"tags": tags(6, V=(2, 3))}]}
    fallback = parser.analyze_one(caption).fallback
    nodes, edges = graph_from_srl(entry, caption, fallback)
    assert [(n["role"], n["words"]) for k, n in nodes.items() if k != "ROOT"] == [
        ("NOUN", ["a", "cat"]), ("NOUN", ["a", "couch"]), ("V", ["is"])]
    assert edges == []


def test_malformed_srl_files(tmp_path: Path) -> None:
    path = tmp_path / "sent2srl.json"
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="sent2srl.json.*JSON array|sent2srl.json.*list"):
        load_srl_file(path)
    path.write_text(json.dumps({"a man": {"words": ["a", "man"], "verbs": [{"tags": ["O"]}]}}))
    with pytest.raises(DataError, match=r"caption 'a man'.*1 tags for 2 words"):
        load_srl_file(path)
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_srl_file(path)
    with pytest.raises(DataError, match="not found"):
        load_srl_file(tmp_path / "missing.json")
    path.write_text(json.dumps({EGG: egg_srl()}))
    assert list(load_srl_file(path)) == [EGG]
