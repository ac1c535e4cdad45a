"""The order a query gives its actions (hanet.text.temporal)."""

from __future__ import annotations

import pytest

from hanet.text.temporal import phrase_sequence


def _phrases(words: list[str], verbs: list[str]) -> list[tuple[int, list[int]]]:
    return [(slot, [words.index(v)]) for slot, v in enumerate(verbs)]


@pytest.mark.parametrize("sentence, verbs, order", [
    ("a circle bounces and then spins", ["bounces", "spins"], [0, 1]),
    ("first a diamond grows bigger and then it vanishes", ["grows", "vanishes"], [0, 1]),
    ("a square spins before moving to the left", ["spins", "moving"], [0, 1]),
    ("a square spins after moving to the left", ["spins", "moving"], [1, 0]),
    ("after bouncing the circle spins", ["bouncing", "spins"], [0, 1]),
    ("a box bounces then spins and then grows", ["bounces", "spins", "grows"], [0, 1, 2]),
    ("a heart slides up while a triangle spins around", ["slides", "spins"], []),
    ("a heart slides up and spins", ["slides", "spins"], []),
    ("a heart slides up", ["slides"], []),
])
def test_order_words(sentence: str, verbs: list[str], order: list[int]) -> None:
    words = sentence.split()
    assert phrase_sequence(words, _phrases(words, verbs)) == order
