"""Measure concepts and role graphs against hand-labelled captions.

The labelled set lives in ``tests/text/data/gold_captions.json`` (format described in its
``about`` field). Run::

    python -m hanet.text.quality tests/text/data/gold_captions.json [--set heldout] [--errors]

Figures (micro-averaged over captions):

* verb / noun concepts: multiset precision, recall, F1 of the concept lemmas;
* predicates: the word indices of ``V`` nodes (fallback ``V`` nodes included);
* argument spans: (predicate word, argument word span) pairs, from the graph's edges;
* labelled spans: the same with the role.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from hanet.errors import DataError
from hanet.text.normalize import split_words

__all__ = ["GoldCaption", "Scores", "load_gold", "evaluate", "graph_facts"]

Arg = tuple[int, tuple[int, ...], str]  # (predicate word, span, role)


@dataclass
class GoldCaption:
    """One labelled caption, spans resolved to word indices.

    Attributes:
        caption: the caption text (already in canonical form).
        verbs: expected verb concepts (with repeats).
        nouns: expected noun concepts.
        predicates: word indices of the expected ``V`` nodes.
        args: expected ``(predicate, span, role)`` triples.
        set: the subset the item belongs to (``dev`` or ``heldout``).
    """

    caption: str
    verbs: list[str]
    nouns: list[str]
    predicates: set[int] = field(default_factory=set)
    args: set[Arg] = field(default_factory=set)
    set: str = "dev"


def _find(words: Sequence[str], text: str, where: str) -> list[int]:
    """Word span of ``text`` ("a man" or "a man@3") inside ``words``."""
    text, _, at = text.partition("@")
    target = text.split()
    starts = [i for i in range(len(words) - len(target) + 1)
              if list(words[i:i + len(target)]) == target]
    if at:
        starts = [int(at)] if int(at) in starts else []
    if len(starts) != 1:
        raise DataError(f"{where}: {text!r} occurs {len(starts)} times in the caption "
                        f"(use text@start to pick one)")
    return list(range(starts[0], starts[0] + len(target)))


def load_gold(path: str | Path) -> list[GoldCaption]:
    """Read a labelled caption file.

    Args:
        path: the JSON file (``{"items": [{"caption", "verbs", "nouns", "frames"}, ...]}``).

    Returns:
        The items with predicate and argument texts resolved to word indices.

    Raises:
        DataError: a label does not match its caption.
    """
    data = json.loads(Path(path).read_text("utf-8"))
    out: list[GoldCaption] = []
    for n, item in enumerate(data["items"]):
        caption = item["caption"]
        words = split_words(caption)
        gold = GoldCaption(caption, list(item["verbs"]), list(item["nouns"]),
                           set=item.get("set", "dev"))
        for pred, args in item["frames"].items():
            where = f"{path} item {n} ({caption!r})"
            (verb,) = _find(words, pred, where)
            gold.predicates.add(verb)
            for role, text in args:
                gold.args.add((verb, tuple(_find(words, text, where)), role))
        out.append(gold)
    return out


@dataclass
class Scores:
    """Counts and micro precision / recall / F1 of one quantity."""

    tp: int = 0
    predicted: int = 0
    gold: int = 0

    @property
    def precision(self) -> float:
        return self.tp / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.tp / self.gold if self.gold else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, predicted: Iterable[Any], gold: Iterable[Any]) -> None:
        """Add one caption's items (multisets)."""
        pc, gc = Counter(predicted), Counter(gold)
        self.tp += sum((pc & gc).values())
        self.predicted += sum(pc.values())
        self.gold += sum(gc.values())

    def as_dict(self) -> dict[str, float | int]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4), "tp": self.tp, "predicted": self.predicted,
                "gold": self.gold}


def graph_facts(graph: Any) -> tuple[set[int], set[Arg]]:
    """Predicate words and ``(predicate, span, role)`` triples of a graph."""
    nodes, edges = graph
    predicates = {n["spans"][0] for n in nodes.values() if n["role"] == "V" and n["spans"]}
    args = {(nodes[v]["spans"][0], tuple(nodes[a]["spans"]), role) for v, a, role in edges}
    return predicates, args


def evaluate(items: Sequence[GoldCaption], parser: Any) -> tuple[dict[str, Scores], list[str]]:
    """Score a parser on labelled captions.

    Args:
        items: labelled captions.
        parser: a :class:`hanet.text.rolegraph.RoleGraphParser`.

    Returns:
        ``({"verbs", "nouns", "predicates", "spans", "labelled_spans"} -> Scores, errors)``
        where ``errors`` describes every mismatch, one line each.
    """
    scores = {k: Scores() for k in ("verbs", "nouns", "predicates", "spans", "labelled_spans")}
    errors: list[str] = []
    for gold, got in zip(items, parser.analyze([g.caption for g in items])):
        words = split_words(gold.caption)
        preds, args = graph_facts(got.graph)
        scores["verbs"].add(got.verbs, gold.verbs)
        scores["nouns"].add(got.nouns, gold.nouns)
        scores["predicates"].add(preds, gold.predicates)
        scores["spans"].add({a[:2] for a in args}, {a[:2] for a in gold.args})
        scores["labelled_spans"].add(args, gold.args)

        def show(a: Arg) -> str:
            return f"{words[a[0]]}:{a[2]}=" + " ".join(words[i] for i in a[1])

        diffs = []
        if Counter(got.verbs) != Counter(gold.verbs):
            diffs.append(f"verbs {got.verbs} != {gold.verbs}")
        if Counter(got.nouns) != Counter(gold.nouns):
            diffs.append(f"nouns {got.nouns} != {gold.nouns}")
        if preds != gold.predicates:
            diffs.append(f"predicates {sorted(words[i] for i in preds)} != "
                         f"{sorted(words[i] for i in gold.predicates)}")
        if args != gold.args:
            diffs.append("extra " + "; ".join(sorted(map(show, args - gold.args))) +
                         " | missing " + "; ".join(sorted(map(show, gold.args - args))))
        if diffs:
            errors.append(f"{gold.caption!r}: " + " || ".join(diffs))
    return scores, errors


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures of ``evaluate`` as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gold", nargs="?", default="tests/text/data/gold_captions.json")
    ap.add_argument("--set", default=None, help="only items of this subset (dev, heldout)")
    ap.add_argument("--errors", action="store_true", help="list every mismatch")
    args = ap.parse_args(argv)

    from hanet.text.rolegraph import RoleGraphParser

    items = load_gold(args.gold)
    if args.set:
        items = [g for g in items if g.set == args.set]
    scores, errors = evaluate(items, RoleGraphParser())
    report = {"captions": len(items), **{k: s.as_dict() for k, s in scores.items()}}
    print(json.dumps(report, indent=2))
    if args.errors:
        print("\n".join(errors), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
