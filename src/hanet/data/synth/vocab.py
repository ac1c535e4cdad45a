"""The synthetic world's vocabulary: colours, shapes, sizes, backgrounds, actions and their words.

Everything the world can show is listed here once, in a fixed order: a config's ``num_colours``
(``num_shapes``, ``num_actions``, ...) selects the first *n* entries, so a smaller world is a
subset of a larger one and the lists below double as the documentation of the grammar.

Verb phrases are written in the base form ("move to the left"); :func:`third_person` and
:func:`gerund` inflect their first word. A phrase's verb lemma is its first word, except for the
passive phrases of interactions, which name their lemma explicitly.
"""

from __future__ import annotations

from typing import Mapping

# Object colours: name -> RGB. Saturated so that they survive yuv420p chroma subsampling.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "blue": (40, 90, 230),
    "green": (40, 170, 60),
    "yellow": (240, 215, 40),
    "purple": (140, 60, 200),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
    "pink": (245, 130, 190),
    "black": (20, 20, 20),
    "gray": (135, 135, 135),
    "brown": (125, 75, 35),
}

# Background colours: muted so that objects stand out; a background never shares its name with an
# object of its scene (the captions would then say "a blue circle on a blue background").
BACKGROUND_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (225, 225, 220),
    "black": (25, 25, 30),
    "gray": (105, 105, 110),
    "blue": (60, 90, 150),
    "green": (60, 115, 70),
    "yellow": (215, 200, 120),
    "brown": (105, 80, 60),
    "pink": (220, 180, 195),
    "purple": (95, 70, 130),
}

# Background textures; the caption names some of them ("a striped blue background").
BACKGROUND_KINDS: tuple[str, ...] = ("plain", "gradient", "stripes", "checker", "blotches")
BACKGROUND_ADJECTIVES: dict[str, tuple[str, ...]] = {
    "plain": ("",),
    "gradient": ("",),
    "stripes": ("striped",),
    "checker": ("checkered",),
    "blotches": ("",),
}
BACKGROUND_NOUNS: tuple[str, ...] = ("background", "background", "backdrop", "screen")

SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "diamond", "hexagon", "cross", "heart",
)
SHAPE_NOUNS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "circle", "ball", "disc", "dot"),
    "square": ("square", "square", "box", "block"),
    "triangle": ("triangle",),
    "star": ("star",),
    "diamond": ("diamond", "diamond", "rhombus"),
    "hexagon": ("hexagon",),
    "cross": ("cross",),
    "heart": ("heart",),
}
GENERIC_NOUNS: tuple[str, ...] = ("shape", "object", "thing")
# Shapes that look the same at every angle: spinning them shows nothing.
ROTATION_INVARIANT: frozenset[str] = frozenset({"circle"})

# Sizes: bounding radius as a fraction of min(width, height), and the words that may name them.
SIZES: dict[str, float] = {"small": 0.085, "medium": 0.12, "large": 0.16}
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "small", "little", "tiny"),
    "medium": (),
    "large": ("big", "large", "large", "huge"),
}

# Single-object actions, in the order that num_actions truncates (still first: it is the idle
# action of companion objects).
SOLO_ACTIONS: tuple[str, ...] = (
    "still", "move_left", "move_right", "bounce", "spin", "grow", "shrink", "blink",
    "move_up", "move_down", "appear", "disappear", "change_colour", "fall", "rise",
)
INTERACTIONS: tuple[str, ...] = ("collide", "chase", "pass")
# Actions a companion object may do over the whole clip (no state change that needs a caption).
COMPANION_ACTIONS: frozenset[str] = frozenset(
    {"move_left", "move_right", "move_up", "move_down", "bounce", "spin", "blink"}
)

VERB_PHRASES: dict[str, tuple[str, ...]] = {
    "still": ("stay still", "sit still", "stay in place", "rest", "remain still", "stand still"),
    "move_left": ("move to the left", "move left", "slide to the left", "go to the left",
                  "drift to the left", "travel to the left"),
    "move_right": ("move to the right", "move right", "slide to the right", "go to the right",
                   "drift to the right", "travel to the right"),
    "move_up": ("move up", "move upward", "slide up", "go up", "travel upward"),
    "move_down": ("move down", "move downward", "slide down", "go down", "travel downward"),
    "bounce": ("bounce", "bounce up and down", "jump up and down", "hop", "bounce around", "jump"),
    "spin": ("spin", "rotate", "spin around", "turn around", "twirl", "rotate in place"),
    "grow": ("grow", "grow bigger", "get bigger", "expand", "become larger", "grow in size"),
    "shrink": ("shrink", "get smaller", "become smaller", "shrink down", "shrink in size"),
    "blink": ("blink", "flash", "flicker", "blink on and off", "flash on and off"),
    "appear": ("appear", "show up", "fade in", "appear out of nowhere", "pop up"),
    "disappear": ("disappear", "vanish", "fade away", "fade out", "disappear from view"),
    # {c}: the new colour, {c0}: the old one.
    "change_colour": ("turn {c}", "change color to {c}", "become {c}", "change from {c0} to {c}",
                      "change color", "change its color to {c}"),
    "fall": ("fall", "fall down", "drop", "drop down", "fall quickly"),
    "rise": ("rise", "float up", "rise up", "float upward", "drift upward"),
}

# Interactions. {o}: the other object, {s}: the subject (in passive phrases), {a}/{b}: both objects
# in symmetric phrases (plural verb).
INTERACTION_TRANSITIVE: dict[str, tuple[str, ...]] = {
    "collide": ("collide with {o}", "crash into {o}", "hit {o}", "bump into {o}", "run into {o}"),
    "chase": ("chase {o}", "follow {o}", "run after {o}", "go after {o}", "pursue {o}"),
    "pass": ("pass {o}", "move past {o}", "go past {o}", "pass by {o}"),
}
INTERACTION_SYMMETRIC: dict[str, tuple[str, ...]] = {
    "collide": ("collide", "crash into each other", "bump into each other", "collide with each other"),
    "chase": (),
    "pass": ("pass each other", "move past each other", "go past each other"),
}
# (phrase in the base form, verb lemma): said of the object of the interaction.
INTERACTION_PASSIVE: dict[str, tuple[tuple[str, str], ...]] = {
    "collide": (("get hit by {s}", "hit"), ("be hit by {s}", "hit")),
    "chase": (("be chased by {s}", "chase"), ("be followed by {s}", "follow"),
              ("run away from {s}", "run"), ("flee from {s}", "flee")),
    "pass": (("be passed by {s}", "pass"),),
}

_DOUBLING = frozenset({"spin", "hop", "drop", "pop", "run", "sit", "get", "hit", "stop", "swim", "jog"})
_THIRD_PERSON_IRREGULAR = {"be": "is", "go": "goes", "have": "has", "do": "does"}


def third_person(phrase: str) -> str:
    """Inflect a base-form verb phrase for a singular subject: ``"move left"`` -> ``"moves left"``.

    Args:
        phrase: a verb phrase whose first word is a verb in the base form.

    Returns:
        The phrase with its first word in the third person singular present.
    """
    verb, _, rest = phrase.partition(" ")
    if verb in _THIRD_PERSON_IRREGULAR:
        inflected = _THIRD_PERSON_IRREGULAR[verb]
    elif verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        inflected = verb + "es"
    elif verb.endswith("y") and verb[-2:-1] not in "aeiou":
        inflected = verb[:-1] + "ies"
    else:
        inflected = verb + "s"
    return f"{inflected} {rest}".strip()


def gerund(phrase: str) -> str:
    """Inflect a base-form verb phrase as a present participle: ``"spin"`` -> ``"spinning"``.

    Args:
        phrase: a verb phrase whose first word is a verb in the base form.

    Returns:
        The phrase with its first word in the -ing form.
    """
    verb, _, rest = phrase.partition(" ")
    if verb == "be":
        inflected = "being"
    elif verb in _DOUBLING:
        inflected = verb + verb[-1] + "ing"
    elif verb.endswith("e") and not verb.endswith(("ee", "ye")):
        inflected = verb[:-1] + "ing"
    else:
        inflected = verb + "ing"
    return f"{inflected} {rest}".strip()


def lemma(phrase: str) -> str:
    """The verb lemma of a base-form phrase: its first word."""
    return phrase.split(" ", 1)[0]


def action_verbs(action: str) -> frozenset[str]:
    """Every verb lemma the grammar may use for an action or interaction.

    Args:
        action: a name from :data:`SOLO_ACTIONS` or :data:`INTERACTIONS`.

    Returns:
        The lemmas, e.g. ``{"bounce", "jump", "hop"}`` for ``"bounce"``.
    """
    if action in VERB_PHRASES:
        return frozenset(lemma(p) for p in VERB_PHRASES[action])
    if action in INTERACTION_TRANSITIVE:
        words = {lemma(p) for p in INTERACTION_TRANSITIVE[action]}
        words |= {lemma(p) for p in INTERACTION_SYMMETRIC[action]}
        words |= {lem for _, lem in INTERACTION_PASSIVE[action]}
        return frozenset(words)
    raise KeyError(f"unknown action {action!r}")


def shape_nouns(shape: str) -> frozenset[str]:
    """Every noun the grammar may use for a shape (its synonyms, without the generic nouns)."""
    return frozenset(SHAPE_NOUNS[shape])


def article(next_word: str) -> str:
    """``"an"`` before a vowel sound, else ``"a"`` (no word in the vocabulary needs more)."""
    return "an" if next_word[:1] in "aeio" else "a"


def colour_distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """Euclidean distance of two RGB triples (0..441)."""
    return float(sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5)


def subset(mapping: Mapping[str, object] | tuple[str, ...], n: int | None) -> tuple[str, ...]:
    """The first ``n`` names of a vocabulary list (all of them for None)."""
    names = tuple(mapping)
    return names if n is None else names[:n]
