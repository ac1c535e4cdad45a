"""How hard is a world? Oracle retrieval scores from captions and ground truth, without a model.

For each caption of a split, the *consistent* clips are those whose true words contain every
content word of the caption of a given kind. An oracle that matches exactly those words, and
breaks ties at random, finds the right clip first with probability ``1 / #consistent``; the mean
over captions is its expected text-to-video R@1:

* ``appearance``: colour words and shape nouns only (what a model that sees only colours and
  shapes could use);
* ``words``: the same plus verbs (a perfect bag of words: no word order, no "and then", no
  who-does-what).

Low ``appearance`` means that attributes alone cannot tell the test clips apart; the gap between
``words`` and 1.0 is what only structure (which object does what, in which order) can close. Use
it to calibrate :class:`~hanet.data.synth.config.SynthConfig` knobs before training anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hanet.data.synth import vocab
from hanet.data.synth.world import load_world, true_words

# Verbs that are auxiliaries in the grammar's sentences ("gets hit", "is chased").
_AUXILIARIES = frozenset({"be", "get"})


def _verb_forms() -> dict[str, str]:
    forms: dict[str, str] = {}
    for action in vocab.SOLO_ACTIONS + vocab.INTERACTIONS:
        for lem in vocab.action_verbs(action):
            if lem in _AUXILIARIES:
                continue
            for form in (lem, vocab.third_person(lem), vocab.gerund(lem)):
                forms[form] = lem
    for phrase, lem in (p for ps in vocab.INTERACTION_PASSIVE.values() for p in ps):
        words = phrase.split()
        if words[0] in _AUXILIARIES:  # "be chased by": the participle names the action
            forms[words[1]] = lem
    return forms


def oracle_recall(directory: str | Path, split: str = "tst") -> dict[str, float]:
    """Expected text-to-video R@1 of word-matching oracles on one split.

    Args:
        directory: a world made by :func:`hanet.data.synth.generate`.
        split: ``"trn"``, ``"val"``, ``"tst"`` or ``"tst_novel"``.

    Returns:
        ``{"appearance": r1, "words": r1, "clips": n, "captions": n, "untrue": n}``; chance is
        ``1 / clips``; ``untrue`` counts captions whose own clip lacks one of their words (a
        grammar or ground-truth bug: always 0).
    """
    world = load_world(directory)
    captions = json.loads((Path(directory) / "ref_captions.json").read_text())
    names = list(world["splits"][split])
    if not names:
        return {"appearance": float("nan"), "words": float("nan"), "clips": 0, "captions": 0,
                "untrue": 0}
    nouns = {n for ns in vocab.SHAPE_NOUNS.values() for n in ns}
    colours = set(vocab.COLOURS) | set(vocab.BACKGROUND_COLOURS)
    verbs = _verb_forms()
    look, full = [], []
    for name in names:
        ann = world["videos"][name]
        t = true_words(ann)
        seen = set(t.shape_nouns) | set(t.colours) | {ann["background"]["colour"]}
        look.append(seen)
        full.append(seen | set(t.verbs))
    scores: dict[str, list[float]] = {"appearance": [], "words": []}
    untrue = 0
    for i, name in enumerate(names):
        for caption in captions[name]:
            tokens = caption.split()
            words = {w for w in tokens if w in nouns or w in colours}
            scores["appearance"].append(1 / max(1, sum(words <= s for s in look)))
            words |= {verbs[w] for w in tokens if w in verbs}
            scores["words"].append(1 / max(1, sum(words <= s for s in full)))
            untrue += not words <= full[i]
    return {"appearance": float(np.mean(scores["appearance"])),
            "words": float(np.mean(scores["words"])), "clips": len(names),
            "captions": len(scores["words"]), "untrue": untrue}
