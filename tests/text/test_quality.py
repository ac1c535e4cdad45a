"""The hand-labelled captions: the issue's quality targets, on both subsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from hanet.text.quality import evaluate, load_gold
from hanet.text.rolegraph import RoleGraphParser

GOLD = Path(__file__).parent / "data" / "gold_captions.json"


def test_gold_file_is_large_enough_and_resolves() -> None:
    items = load_gold(GOLD)
    assert len(items) >= 40
    assert {g.set for g in items} == {"dev", "heldout"}
    assert sum(len(g.args) for g in items) > 150


@pytest.mark.parametrize("subset", ["dev", "heldout"])
def test_quality_targets(parser: RoleGraphParser, subset: str) -> None:
    items = [g for g in load_gold(GOLD) if g.set == subset]
    scores, errors = evaluate(items, parser)
    detail = "\n".join(errors)
    assert scores["verbs"].f1 >= 0.95, detail
    assert scores["nouns"].f1 >= 0.95, detail
    assert scores["predicates"].f1 >= 0.95, detail
    assert scores["spans"].f1 >= 0.85, detail
    assert scores["labelled_spans"].f1 >= 0.85, detail
