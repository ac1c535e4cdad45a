"""Sampling the synthetic world: scenes (objects, actions, frame spans), groups and splits.

A *scene spec* (:class:`SceneSpec`) is the symbolic content of a clip: its objects (shape, colour,
size, actions), an optional interaction between the first two objects, and the background.
:func:`realize` turns a spec into an *annotation*: a JSON-able dict with per-frame tracks of every
object and the frame spans of every action. The renderer draws from the annotation alone, the
caption grammar reads it, and so can any later check (where do verb concepts peak?).

Annotation of one clip (``annotations.json["videos"][name]``)::

    {"name": "video7", "split": "trn", "group": 1,
     "num_frames": 24, "fps": 8.0, "width": 128, "height": 128, "duration_s": 3.0,
     "background": {"kind": "stripes", "colour": "blue", "rgb": [60, 90, 150],
                    "params": {"period": 14, "angle": 45}},
     "interaction": null,            # or "collide" / "chase" / "pass" (object 0 -> object 1)
     "two_actions": true,            # object 0 does two actions in sequence
     "novel_pairs": [],              # held-out pairs this clip shows (tst_novel only)
     "objects": [{"id": 0, "role": "main", "shape": "circle", "colour": "red", "size": "small",
                  "colour_to": null, "rgb": [221, 35, 47], "rgb_to": null, "radius_px": 10.9,
                  "actions": ["bounce", "spin"],
                  "track": {"x": [...], "y": [...], "radius": [...], "angle": [...],
                            "alpha": [...], "rgb": [[r, g, b], ...]}}, ...],
     "actions": [{"action": "bounce", "verbs": ["bounce", "hop", "jump"], "subject": 0,
                  "object": null, "start_frame": 0, "end_frame": 12, "start_s": 0.0,
                  "end_s": 1.5, "params": {"bounces": 2, "height_px": 25.1}}, ...]}

Coordinates are pixels with the origin at the top-left corner of the frame; pixel (row i, col j)
covers ``[j, j+1) x [i, i+1)``, so the object centre ``(x, y)`` lies in pixel
``(floor(y), floor(x))``. ``radius`` is the bounding radius (every shape fits in that circle),
``angle`` is in radians (clockwise on screen), ``alpha`` is opacity 0..1 (0: invisible: not yet
appeared, gone, or blinked off). Frame spans are half-open: ``[start_frame, end_frame)``, and
``start_s = start_frame / fps``. Objects are drawn from the last to the first, so object 0 (the
main one) is never hidden.

Helpers for later stages: :func:`load_annotations`, :func:`true_words` (the verbs and nouns that
can truly describe a clip) and :func:`action_spans`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hanet.data.synth import vocab
from hanet.data.synth.config import SPLITS, SynthConfig, WORLD_VERSION
from hanet.errors import DataError
from hanet.data.synth.motion import realize
from hanet.data.synth.scenes import (BackgroundSpec, ObjectSpec, Pair, SceneSampler, SceneSpec, choose_held_out,
                                     object_pairs, scene_pairs)

ANNOTATIONS_FILE = "annotations.json"


# ---------------------------------------------------------------------------------------------
# The world: groups, splits, names
# ---------------------------------------------------------------------------------------------
@dataclass
class PlannedVideo:
    """One clip of a planned world."""

    name: str
    split: str
    group: int
    spec: SceneSpec
    annotation: dict[str, Any]


@dataclass
class WorldPlan:
    """Everything sampled for a world, before drawing and captioning.

    Attributes:
        videos: the clips in name order (``video0``, ``video1``, ...; splits in :data:`SPLITS`
            order, shuffled within a split).
        held_out: the attribute-action pairs only ``tst_novel`` shows.
    """

    videos: list[PlannedVideo]
    held_out: tuple[Pair, ...]

    def names(self, split: str) -> list[str]:
        """The clip names of a split, in order."""
        return [v.name for v in self.videos if v.split == split]


def video_seed(seed: int, index: int, stream: int) -> np.random.SeedSequence:
    """The seed sequence of one clip's random stream (1: tracks, 2: captions, 3: pixels).

    Per-clip streams make every clip reproducible on its own, whichever process draws it.
    """
    return np.random.SeedSequence([int(seed), int(stream), int(index)])


def plan_world(cfg: SynthConfig, seed: int) -> WorldPlan:
    """Sample every clip's scene, split and track.

    Scenes come in groups of ``cfg.group_size`` look-alikes (a group never straddles splits).
    ``trn``, ``val`` and ``tst`` scenes never show a held-out pair; every ``tst_novel`` scene's
    main object shows one (the pairs are used in turn).

    Args:
        cfg: the world config (validated).
        seed: the world's seed.

    Returns:
        The plan.
    """
    cfg.validate()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
    sizes = cfg.split_sizes()
    held_out = choose_held_out(cfg, rng) if sizes["tst_novel"] > 0 else ()
    held = set(held_out)
    sampler = SceneSampler(cfg, rng)

    def familiar(spec: SceneSpec) -> bool:
        return not (scene_pairs(spec) & held)

    def novel(spec: SceneSpec) -> bool:
        return bool(object_pairs(spec.objects[0]) & held)

    per_split: list[tuple[str, int, SceneSpec]] = []
    group_id = 0
    for split in SPLITS:
        specs: list[tuple[int, SceneSpec]] = []
        g = 0
        while len(specs) < sizes[split]:
            size = min(cfg.group_size, sizes[split] - len(specs))
            if split == "tst_novel":
                members = sampler.group(size, novel, force=held_out[g % len(held_out)])
            else:
                members = sampler.group(size, familiar)
            specs += [(group_id, s) for s in members]
            group_id += 1
            g += 1
        order = rng.permutation(len(specs))
        per_split += [(split, specs[i][0], specs[i][1]) for i in order]
    videos = []
    for index, (split, gid, spec) in enumerate(per_split):
        ann = realize(spec, cfg, np.random.default_rng(video_seed(seed, index, 1)))
        name = f"video{index}"
        shown = sorted(object_pairs(spec.objects[0]) & held) if split == "tst_novel" else []
        head = {"name": name, "split": split, "group": gid,
                "novel_pairs": [list(p) for p in shown]}
        videos.append(PlannedVideo(name, split, gid, spec, {**head, **ann}))
    return WorldPlan(videos, held_out)


# ---------------------------------------------------------------------------------------------
# Reading a world back
# ---------------------------------------------------------------------------------------------
def load_world(directory: str | Path) -> dict[str, Any]:
    """Read ``annotations.json`` whole: ``version``, ``seed``, ``config``, ``held_out``, ``videos``.

    Args:
        directory: a world made by :func:`hanet.data.synth.generate`.

    Raises:
        DataError: the file is missing or malformed.
    """
    path = Path(directory) / ANNOTATIONS_FILE
    if not path.is_file():
        raise DataError(f"{path}: not found (make the world with `hanet synth --out {directory}`)")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not readable as JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("videos"), dict):
        raise DataError(f"{path}: expected an object with a 'videos' mapping")
    if data.get("version") != WORLD_VERSION:
        raise DataError(f"{path}: world version {data.get('version')!r}, this code reads "
                        f"{WORLD_VERSION}; regenerate it with `hanet synth`")
    return data


def load_annotations(directory: str | Path) -> dict[str, dict[str, Any]]:
    """The per-clip annotations of a world: ``{video_name: annotation}``.

    Args:
        directory: a world made by :func:`hanet.data.synth.generate`.

    Returns:
        The annotations in name order (see the module docstring for the fields).

    Raises:
        DataError: ``annotations.json`` is missing, malformed or from another version.
    """
    return load_world(directory)["videos"]


@dataclass(frozen=True)
class TrueWords:
    """The words that can truly describe a clip, for judging predicted concepts.

    Attributes:
        verbs: every verb lemma the grammar may use for the clip's actions (all objects).
        main_verbs: the same for the main object's actions and interaction only.
        nouns: every noun the grammar may use for its objects (shape synonyms), plus
            the background nouns.
        shape_nouns: the shape synonyms only (the nouns that tell clips apart).
        colours: the colour words of its objects (new colours of colour changes included).
        actions: canonical action names present.
        shapes: canonical shape names present.
    """

    verbs: frozenset[str]
    main_verbs: frozenset[str]
    nouns: frozenset[str]
    shape_nouns: frozenset[str]
    colours: frozenset[str]
    actions: frozenset[str]
    shapes: frozenset[str]


def true_words(annotation: dict[str, Any]) -> TrueWords:
    """The verbs, nouns and colours that truly describe one clip.

    Args:
        annotation: one clip's annotation (a value of :func:`load_annotations`).

    Returns:
        The word sets; compare a model's top verb/noun concepts against ``verbs`` and ``nouns``.
    """
    actions = [a["action"] for a in annotation["actions"]]
    verbs: set[str] = set()
    main: set[str] = set()
    for a in annotation["actions"]:
        words = vocab.action_verbs(a["action"])
        verbs |= words
        if a["subject"] == 0:
            main |= words
    shapes = {o["shape"] for o in annotation["objects"]}
    shape_words: set[str] = set()
    for s in shapes:
        shape_words |= vocab.shape_nouns(s)
    colours = {o["colour"] for o in annotation["objects"]}
    colours |= {o["colour_to"] for o in annotation["objects"] if o.get("colour_to")}
    return TrueWords(frozenset(verbs), frozenset(main),
                     frozenset(shape_words | set(vocab.BACKGROUND_NOUNS)),
                     frozenset(shape_words), frozenset(colours), frozenset(actions),
                     frozenset(shapes))


@dataclass(frozen=True)
class ActionSpan:
    """Where one action happens.

    Attributes:
        action: canonical action name.
        verbs: verb lemmas that may name it.
        subject: index of the object doing it.
        object: index of the other object of an interaction, else None.
        start_frame: first frame (inclusive).
        end_frame: end frame (exclusive).
        start_s: start time in seconds.
        end_s: end time in seconds.
    """

    action: str
    verbs: frozenset[str]
    subject: int
    object: int | None
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float

    def contains(self, frame: int) -> bool:
        """Whether a frame index lies in the span."""
        return self.start_frame <= frame < self.end_frame


def action_spans(annotation: dict[str, Any], main_only: bool = False) -> list[ActionSpan]:
    """The frame spans of a clip's actions.

    Args:
        annotation: one clip's annotation.
        main_only: keep only the main object's actions (and its interaction).

    Returns:
        The spans, in annotation order (interaction first, then per object in time order).
    """
    out = []
    for a in annotation["actions"]:
        if main_only and a["subject"] != 0:
            continue
        out.append(ActionSpan(a["action"], frozenset(a["verbs"]), a["subject"], a["object"],
                              a["start_frame"], a["end_frame"], a["start_s"], a["end_s"]))
    return out


def verb_spans(annotation: dict[str, Any], main_only: bool = False
               ) -> dict[str, list[tuple[int, int]]]:
    """Where each verb lemma is true: ``{lemma: [(start_frame, end_frame), ...]}``.

    For checking where a model's verb concepts peak: a peak of concept ``"bounce"`` at frame
    ``f`` is inside when some span of ``verb_spans(ann)["bounce"]`` has ``start <= f < end``.

    Args:
        annotation: one clip's annotation.
        main_only: only the main object's actions (and its interaction).

    Returns:
        Lemma -> half-open frame spans, in annotation order.
    """
    out: dict[str, list[tuple[int, int]]] = {}
    for span in action_spans(annotation, main_only):
        for lem in sorted(span.verbs):
            out.setdefault(lem, []).append((span.start_frame, span.end_frame))
    return out


__all__ = ["ANNOTATIONS_FILE", "Pair", "ObjectSpec", "BackgroundSpec", "SceneSpec", "SceneSampler", "object_pairs",
           "scene_pairs", "choose_held_out", "realize", "PlannedVideo", "WorldPlan", "video_seed", "plan_world",
           "load_world", "load_annotations", "TrueWords", "true_words", "ActionSpan", "action_spans", "verb_spans"]
