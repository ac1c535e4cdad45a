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

:func:`t2v_breakdown` reads a *model's* text-to-video answers against the same ground truth: its
R@1 per kind of caption (one action, two actions named in order, one of two named, an
interaction) and what its wrong first answers are (a look-alike of the same group, and how it
differs, or a clip of another group). That is how the demo shows where HANet and the
global-only variant part ways.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hanet.data.synth import vocab
from hanet.data.synth.world import load_world, true_words
from hanet.errors import DataError

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


#: Caption kinds of :func:`t2v_breakdown`, in report order.
CAPTION_KINDS = ("one_action", "sequence", "one_of_two", "interaction")
#: Kinds of wrong first answers of :func:`t2v_breakdown`: a look-alike (same group) whose main
#: object does something else, has other companions, or looks different; or another group's clip.
ERROR_KINDS = ("look_alike_action", "look_alike_companion", "look_alike_appearance", "other_group")
# Words the grammar uses only to join two actions in order ("X spins and then grows",
# "X spins before growing").
_SEQUENCE_WORDS = frozenset({"then", "before"})


def caption_kind(annotation: dict[str, Any], caption: str) -> str:
    """Which of :data:`CAPTION_KINDS` a caption of this clip is.

    Args:
        annotation: the clip's annotation (a value of :func:`~hanet.data.synth.load_annotations`).
        caption: one of its captions.
    """
    if annotation["interaction"] is not None:
        return "interaction"
    if not annotation["two_actions"]:
        return "one_action"
    return "sequence" if _SEQUENCE_WORDS & set(caption.split()) else "one_of_two"


def _difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    """How clip ``b`` differs from clip ``a`` (one of :data:`ERROR_KINDS`)."""
    if a["group"] != b["group"]:
        return "other_group"
    ma, mb = a["objects"][0], b["objects"][0]
    if any(ma[k] != mb[k] for k in ("shape", "colour", "size")):
        return "look_alike_appearance"
    if a["interaction"] != b["interaction"] or ma["actions"] != mb["actions"]:
        return "look_alike_action"
    return "look_alike_companion"


def t2v_breakdown(directory: str | Path, video_names: Sequence[str], captions: Sequence[str],
                  top1: np.ndarray, gt_videos: np.ndarray, gt_captions: np.ndarray) -> dict[str, Any]:
    """A model's text-to-video R@1 on a synthetic split, by kind of caption and kind of mistake.

    Args:
        directory: the world the split comes from.
        video_names: (Nv,) the split's clips, in score-matrix row order.
        captions: (Nc,) its unique captions, in column order.
        top1: (Nc,) int, the row each caption ranks first (``scores.argmax(0)``).
        gt_videos, gt_captions: (G,) ground-truth (row, column) pairs; a caption written for two
            clips counts as found when either comes first.

    Returns:
        ``{"queries": Nc, "r1": %, "kinds": {kind: {"queries": n, "r1": %}}, "errors": {kind: %
        of all queries}}`` with kinds from :data:`CAPTION_KINDS` and errors from
        :data:`ERROR_KINDS` (a mistake counts against the first true clip of its caption).

    Raises:
        DataError: a clip name the world does not know, or arrays of the wrong shape.
    """
    videos = load_world(directory)["videos"]
    missing = [n for n in video_names if n not in videos]
    if missing:
        raise DataError(f"{directory}: clips {missing[:3]} are not in this world's annotations")
    top1 = np.asarray(top1)
    if top1.shape != (len(captions),):
        raise DataError(f"top1 has shape {top1.shape}, expected ({len(captions)},): one row per caption")
    gt_videos, gt_captions = np.asarray(gt_videos), np.asarray(gt_captions)
    targets: list[list[int]] = [[] for _ in captions]
    for v, c in zip(gt_videos.tolist(), gt_captions.tolist()):
        targets[c].append(v)
    anns = [videos[n] for n in video_names]
    kinds, errors = [], []
    for c, caption in enumerate(captions):
        if not targets[c]:
            raise DataError(f"caption {caption!r} has no ground-truth clip")
        first = anns[targets[c][0]]
        kinds.append(caption_kind(first, caption))
        errors.append(None if int(top1[c]) in targets[c] else _difference(first, anns[int(top1[c])]))
    kinds_arr = np.array(kinds)
    hit = np.array([e is None for e in errors])
    n = len(captions)
    return {"queries": n, "r1": 100 * float(hit.mean()) if n else float("nan"),
            "kinds": {k: {"queries": int((kinds_arr == k).sum()),
                          "r1": 100 * float(hit[kinds_arr == k].mean()) if (kinds_arr == k).any() else float("nan")}
                      for k in CAPTION_KINDS},
            "errors": {k: 100 * sum(e == k for e in errors) / max(n, 1) for k in ERROR_KINDS}}
