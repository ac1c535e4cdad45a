"""The caption grammar: MSR-VTT-style sentences about a clip, drawn from its annotation.

Captions are lowercase words separated by single spaces, without punctuation, like the released
MSR-VTT captions ("a small red circle bounces on a blue background", "a red ball is bouncing up
and down", "a circle moves to the left and then spins"). Each is built from:

* a *subject*: the main object as a noun phrase with a varying amount of detail (size word,
  colour, a shape noun or synonym such as "ball" for a circle, rarely a generic "shape"/"object");
* a *verb phrase* per action (synonyms in :data:`vocab.VERB_PHRASES`), in one of several sentence
  frames ("X bounces", "X is bouncing", "there is X bouncing", "a video of X bouncing"); two
  actions are joined in order ("X bounces and then spins", "first X bounces and then it spins")
  or, with ``p_partial_sequence``, only one of them is named;
* for interactions, transitive ("X chases Y"), symmetric ("X and Y collide") or passive ("Y is
  chased by X") frames;
* optionally a companion clause ("next to a blue square", "while a green star spins") and a
  background clause ("on a striped blue background").

Every statement is true of the clip. Captions of a clip are distinct where the grammar allows.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from hanet.data.synth import vocab
from hanet.data.synth.config import SynthConfig

_CAPTION_RE = re.compile(r"[a-z]+( [a-z]+)*")
_MEDIA = ("a video of", "an animation of", "a clip of", "a cartoon of")


class _Grammar:
    """Draws the parts of one caption; a fresh instance per clip."""

    def __init__(self, ann: dict[str, Any], cfg: SynthConfig, rng: np.random.Generator) -> None:
        self.ann = ann
        self.cfg = cfg
        self.rng = rng

    def pick(self, items: Sequence[Any]) -> Any:
        return items[int(self.rng.integers(len(items)))]

    def weighted(self, options: Sequence[tuple[float, Any]]) -> Any:
        w = np.array([o[0] for o in options], float)
        return options[int(self.rng.choice(len(options), p=w / w.sum()))][1]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    # ---- noun phrases
    def noun_phrase(self, obj: dict[str, Any], force_colour: bool = False) -> str:
        generic = self.chance(self.cfg.p_generic_noun)
        words = []
        size_words = vocab.SIZE_WORDS[obj["size"]]
        if size_words and self.chance(self.cfg.p_mention_size):
            words.append(self.pick(size_words))
        # A generic noun says nothing on its own; the colour keeps the phrase about this object.
        if force_colour or generic or self.chance(self.cfg.p_mention_colour):
            words.append(obj["colour"])
        words.append(self.pick(vocab.GENERIC_NOUNS) if generic
                     else self.pick(vocab.SHAPE_NOUNS[obj["shape"]]))
        return f"{vocab.article(words[0])} {' '.join(words)}"

    def background(self) -> str:
        bg = self.ann["background"]
        adjective = self.pick(vocab.BACKGROUND_ADJECTIVES[bg["kind"]])
        words = []
        use_adj = bool(adjective) and self.chance(0.7)
        if use_adj:
            words.append(adjective)
        if not use_adj or self.chance(0.8):
            words.append(bg["colour"])
        words.append(self.pick(vocab.BACKGROUND_NOUNS))
        prep = self.pick(("on", "on", "in front of", "against"))
        return f"{prep} {vocab.article(words[0])} {' '.join(words)}"

    # ---- verb phrases
    def verb_phrase(self, action: str, obj: dict[str, Any]) -> str:
        phrase = self.pick(vocab.VERB_PHRASES[action])
        return phrase.format(c=obj.get("colour_to") or obj["colour"], c0=obj["colour"])

    def solo_clause(self, obj: dict[str, Any], force_colour: bool) -> str:
        actions = list(obj["actions"])
        if len(actions) == 2 and self.chance(self.cfg.p_partial_sequence):
            actions = [self.pick(actions)]
        s = self.noun_phrase(obj, force_colour)
        if len(actions) == 1:
            v = self.verb_phrase(actions[0], obj)
            prog = self.cfg.progressive_bias
            return self.weighted([
                (4.0, f"{s} {vocab.third_person(v)}"),
                (2.0 * prog, f"{s} is {vocab.gerund(v)}"),
                (1.0 * prog, f"there is {s} {vocab.gerund(v)}"),
                (1.0 * prog, f"{self.pick(_MEDIA)} {s} {vocab.gerund(v)}"),
                (0.5 * prog, f"you can see {s} {vocab.gerund(v)}"),
            ])
        v1 = self.verb_phrase(actions[0], obj)
        v2 = self.verb_phrase(actions[1], obj)
        t1, t2 = vocab.third_person(v1), vocab.third_person(v2)
        g1, g2 = vocab.gerund(v1), vocab.gerund(v2)
        prog = self.cfg.progressive_bias
        return self.weighted([
            (3.0, f"{s} {t1} and then {t2}"),
            (1.0, f"{s} {t1} then {t2}"),
            (1.0, f"{s} {t1} and then it {t2}"),
            (1.0, f"first {s} {t1} and then it {t2}"),
            (1.0 * prog, f"{s} is {g1} and then {t2}"),
            (0.5, f"{s} {t1} before {g2}"),
            (1.0, f"{s} {t1} and {t2}"),
            (0.5 * prog, f"{self.pick(_MEDIA)} {s} {g1} and then {g2}"),
            # Last and weightless at bias 1, so the default world's draws are unchanged.
            (3.0 * max(prog - 1.0, 0.0), f"{s} is {g1} and then {g2}"),
        ])

    def interaction_clause(self, kind: str, a: dict[str, Any], b: dict[str, Any],
                           force: tuple[bool, bool]) -> str:
        sa, sb = self.noun_phrase(a, force[0]), self.noun_phrase(b, force[1])
        options: list[tuple[float, str]] = []
        t = self.pick(vocab.INTERACTION_TRANSITIVE[kind]).format(o=sb)
        prog = self.cfg.progressive_bias
        options += [(3.0, f"{sa} {vocab.third_person(t)}"),
                    (1.5 * prog, f"{sa} is {vocab.gerund(t)}"),
                    (0.5 * prog, f"there is {sa} {vocab.gerund(t)}"),
                    (0.5 * prog, f"{self.pick(_MEDIA)} {sa} {vocab.gerund(t)}")]
        if vocab.INTERACTION_SYMMETRIC[kind]:
            sym = self.pick(vocab.INTERACTION_SYMMETRIC[kind])
            options += [(1.5, f"{sa} and {sb} {sym}"),
                        (0.5, f"{sa} and {sb} are {vocab.gerund(sym)}"),
                        (0.3, f"two {self.pick(('shapes', 'objects'))} {sym}")]
        passive, _ = self.pick(vocab.INTERACTION_PASSIVE[kind])
        options.append((1.0, f"{sb} {vocab.third_person(passive.format(s=sa))}"))
        return self.weighted(options)

    def companion_clause(self, obj: dict[str, Any], force_colour: bool) -> str:
        s = self.noun_phrase(obj, force_colour)
        action = obj["actions"][0] if obj["actions"] else "still"
        v = vocab.third_person(self.verb_phrase(action, obj))
        if action == "still":
            return self.pick((f"next to {s}", f"beside {s}", f"near {s}", f"while {s} {v}"))
        return self.pick((f"while {s} {v}", f"as {s} {v}", f"and {s} {v}"))

    # ---- whole captions
    def caption(self) -> str:
        objs = self.ann["objects"]
        inter = self.ann["interaction"]
        first_companion = 2 if inter else 1
        named = objs[:first_companion]
        p = self.cfg.p_mention_companion
        for obj in objs[first_companion:]:
            if self.chance(p):
                named.append(obj)
            p /= 2  # a third object is named less often, as annotators do
        # Objects of the same shape named together are told apart by their colours.
        shapes = [o["shape"] for o in named]
        force = [shapes.count(o["shape"]) > 1 for o in named]
        if inter:
            parts = [self.interaction_clause(inter, named[0], named[1], (force[0], force[1]))]
        else:
            parts = [self.solo_clause(named[0], force[0])]
        for obj, f in zip(named[first_companion:], force[first_companion:]):
            parts.append(self.companion_clause(obj, f))
        if self.chance(self.cfg.p_mention_background):
            parts.append(self.background())
        return " ".join(" ".join(parts).split())


def make_captions(annotation: dict[str, Any], cfg: SynthConfig, rng: np.random.Generator
                  ) -> list[str]:
    """``cfg.captions_per_video`` captions of one clip.

    Args:
        annotation: the clip's annotation (objects, actions, interaction, background).
        cfg: the world config (caption count and detail probabilities).
        rng: the clip's caption generator.

    Returns:
        The captions, distinct unless the grammar has too few sentences for the clip.
    """
    grammar = _Grammar(annotation, cfg, rng)
    n = cfg.captions_per_video
    out: list[str] = []
    for _ in range(40 * n):
        c = grammar.caption()
        if c not in out:
            out.append(c)
            if len(out) == n:
                break
    base = len(out)
    while len(out) < n:
        out.append(out[len(out) % base])
    for c in out:
        if not _CAPTION_RE.fullmatch(c):  # pragma: no cover - a grammar bug
            raise AssertionError(f"caption not in MSR-VTT form: {c!r}")
    return out
