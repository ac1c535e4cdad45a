"""The order a sentence gives its actions: "X and then Y", "X before Y", "X after Y".

A query that names two actions in sequence says which comes first; the time spans of its verb
phrases (:mod:`hanet.model.moments`) then put them in that order. The order is read from the
words between two verb phrases, a closed list of English connectives; anything else ("and",
"while", "as") says nothing about order, and those phrases are placed independently.

Example:
    >>> phrase_sequence("a circle bounces and then spins".split(), [(0, [2]), (1, [5])])
    [0, 1]
    >>> phrase_sequence("a circle spins after bouncing".split(), [(0, [2]), (1, [4])])
    [1, 0]
"""

from __future__ import annotations

from typing import Sequence

#: "X <word> Y": X happens first.
FORWARD = frozenset({"then", "before", "afterwards", "afterward", "later", "next", "finally", "subsequently",
                     "until", "till"})
#: "X <word> Y": Y happens first ("a square spins after bouncing").
BACKWARD = frozenset({"after", "once"})
#: Words before the first phrase that put it first ("after bouncing, it spins"): the same list.
LEADING = BACKWARD


def _relation(words: Sequence[str], first: Sequence[int], second: Sequence[int], start: int) -> int:
    """+1: the first phrase (in the text) happens first; -1: the second does; 0: not said."""
    between = set(words[max(first) + 1:min(second)])
    if between & FORWARD:
        return 1
    if between & BACKWARD:
        return -1
    if set(words[start:min(first)]) & LEADING:  # "after X, Y"
        return 1
    return 0


def phrase_sequence(words: Sequence[str], phrases: Sequence[tuple[int, Sequence[int]]]) -> list[int]:
    """The verb phrases that the sentence says happen one after another, in that order.

    Args:
        words: the sentence's words (normalised).
        phrases: ``(slot, word positions)`` of each verb phrase.

    Returns:
        Slots in the order they happen: the longest run of phrases (adjacent in the text) joined
        by order words; [] when the sentence orders no two of them.
    """
    ps = sorted(((slot, sorted(pos)) for slot, pos in phrases if pos), key=lambda p: p[1][0])
    best: list[int] = []
    chain: list[int] = []
    direction = 0
    prev_end = 0
    for i in range(1, len(ps)):
        rel = _relation(words, ps[i - 1][1], ps[i][1], prev_end)
        prev_end = max(ps[i - 1][1]) + 1
        if rel != 0 and (not chain or rel == direction):
            chain = chain or [ps[i - 1][0]]
            chain.append(ps[i][0])
            direction = rel
        else:
            chain = [ps[i - 1][0], ps[i][0]] if rel != 0 else []
            direction = rel
        if len(chain) > len(best):
            best = chain if direction > 0 else chain[::-1]
    return list(best)


__all__ = ["FORWARD", "BACKWARD", "phrase_sequence"]
