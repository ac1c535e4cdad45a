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
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from hanet.data.synth import vocab
from hanet.data.synth.config import SPLITS, SynthConfig, WORLD_VERSION
from hanet.errors import DataError

ANNOTATIONS_FILE = "annotations.json"

# A held-out attribute-action pair: ("colour" | "shape", value, action).
Pair = tuple[str, str, str]


# ---------------------------------------------------------------------------------------------
# Symbolic scenes
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectSpec:
    """One object of a scene.

    Attributes:
        shape: a name of :data:`vocab.SHAPES`.
        colour: a name of :data:`vocab.COLOURS`.
        size: ``"small"``, ``"medium"`` or ``"large"``.
        actions: its single-object actions in order (empty for interaction participants).
        colour_to: the new colour when ``"change_colour"`` is among the actions.
    """

    shape: str
    colour: str
    size: str
    actions: tuple[str, ...] = ()
    colour_to: str | None = None


@dataclass(frozen=True)
class BackgroundSpec:
    """The background: a texture kind, a colour name and texture parameters."""

    kind: str
    colour: str
    params: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class SceneSpec:
    """The symbolic content of one clip.

    Attributes:
        objects: object 0 is the main one (the subject of captions), then companions.
        interaction: an interaction of object 0 (subject) with object 1, or None.
        background: the background.
    """

    objects: tuple[ObjectSpec, ...]
    interaction: str | None
    background: BackgroundSpec


def object_pairs(obj: ObjectSpec) -> set[Pair]:
    """The attribute-action pairs an object shows (its colour and shape with each action)."""
    return {(kind, value, a) for a in obj.actions
            for kind, value in (("colour", obj.colour), ("shape", obj.shape))}


def scene_pairs(spec: SceneSpec) -> set[Pair]:
    """The attribute-action pairs of every object of a scene."""
    out: set[Pair] = set()
    for obj in spec.objects:
        out |= object_pairs(obj)
    return out


# ---------------------------------------------------------------------------------------------
# Sampling specs
# ---------------------------------------------------------------------------------------------
def _colour_ok(colour: str, background: str) -> bool:
    """Whether an object colour stands out on a background colour."""
    return colour != background and vocab.colour_distance(
        vocab.COLOURS[colour], vocab.BACKGROUND_COLOURS[background]) >= 90


def _spec_colours(objects: Iterable[ObjectSpec]) -> set[str]:
    out: set[str] = set()
    for o in objects:
        out.add(o.colour)
        if o.colour_to:
            out.add(o.colour_to)
    return out


def choose_held_out(cfg: SynthConfig, rng: np.random.Generator) -> tuple[Pair, ...]:
    """Pick the attribute-action pairs that only ``tst_novel`` shows.

    Half are colour-action, half shape-action pairs. Each attribute value and each action is held
    out at most once where the vocabulary allows, so that training still sees every colour, shape
    and action many times, only never in these combinations.

    Args:
        cfg: the world config.
        rng: the world's generator.

    Returns:
        The held-out pairs, sorted.
    """
    # "still" and "change_colour" are excluded: companions stay still everywhere, and a colour
    # change names two colours.
    actions = [a for a in cfg.actions if a not in ("still", "change_colour")]
    if not actions:
        return ()
    pairs: list[Pair] = []
    used_values: set[tuple[str, str]] = set()
    used_actions: set[str] = set()
    for i in range(cfg.novel_pairs):
        kind = "colour" if i % 2 == 0 else "shape"
        values = list(cfg.colours if kind == "colour" else cfg.shapes)
        for _ in range(200):
            value = values[int(rng.integers(len(values)))]
            action = actions[int(rng.integers(len(actions)))]
            if kind == "shape" and action == "spin" and value in vocab.ROTATION_INVARIANT:
                continue
            fresh = (kind, value) not in used_values and action not in used_actions
            exhausted = len(used_actions) >= len(actions) or len(used_values) >= len(values)
            if (kind, value, action) not in pairs and (fresh or exhausted):
                pairs.append((kind, value, action))
                used_values.add((kind, value))
                used_actions.add(action)
                break
    return tuple(sorted(pairs))


class SceneSampler:
    """Samples scene specs and look-alike variants of them.

    Args:
        cfg: the world config.
        rng: the generator every draw comes from (the world's, so sampling is sequential and
            deterministic).
    """

    def __init__(self, cfg: SynthConfig, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.rng = rng
        self.colours = cfg.colours
        self.shapes = cfg.shapes
        self.actions = cfg.actions
        self.interactions = cfg.interactions
        self.companion_actions = tuple(a for a in self.actions if a in vocab.COMPANION_ACTIONS)

    # ---- small draws
    def _pick(self, items: Sequence[Any]) -> Any:
        return items[int(self.rng.integers(len(items)))]

    def _chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def _size(self) -> str:
        return self._pick(tuple(vocab.SIZES))

    def _appearance(self, taken: set[tuple[str, str]], background: str | None = None
                    ) -> tuple[str, str]:
        for _ in range(100):
            look = (self._pick(self.shapes), self._pick(self.colours))
            if look not in taken and (background is None or _colour_ok(look[1], background)):
                return look
        raise RuntimeError("no free appearance")  # only with absurdly small vocabularies

    def valid_sequence(self, shape: str, seq: Sequence[str]) -> bool:
        """Whether a main object of this shape can do these actions in this order."""
        if len(set(seq)) != len(seq):
            return False
        if "spin" in seq and shape in vocab.ROTATION_INVARIANT:
            return False
        # An object that has not appeared yet, or is gone, cannot be seen doing anything else.
        if "appear" in seq[1:] or "disappear" in seq[:-1]:
            return False
        return True

    def _actions_for(self, shape: str, force: str | None = None) -> tuple[str, ...]:
        two = self._chance(self.cfg.p_two_actions)
        for _ in range(200):
            if two:
                seq = [self._pick(self.actions), self._pick(self.actions)]
                if force is not None:
                    seq[int(self.rng.integers(2))] = force
            else:
                seq = [force if force is not None else self._pick(self.actions)]
            if self.valid_sequence(shape, seq):
                return tuple(seq)
        return (force or "still",)

    def _companion_action(self, shape: str) -> str:
        pool = [a for a in self.companion_actions
                if not (a == "spin" and shape in vocab.ROTATION_INVARIANT)]
        if not pool or self._chance(self.cfg.p_companion_still):
            return "still"
        return self._pick(pool)

    def _colour_to(self, obj: ObjectSpec, background: str | None) -> ObjectSpec:
        if "change_colour" not in obj.actions:
            return replace(obj, colour_to=None)
        if obj.colour_to and obj.colour_to != obj.colour and (
                background is None or _colour_ok(obj.colour_to, background)):
            return obj
        options = [c for c in self.colours if c != obj.colour
                   and (background is None or _colour_ok(c, background))]
        return replace(obj, colour_to=self._pick(options) if options else None)

    def background(self, colours: set[str]) -> BackgroundSpec:
        """A background whose colour every object colour stands out on.

        Args:
            colours: the colour names of the scene's objects (new colours included).
        """
        names = self.cfg.background_colours
        ok = [b for b in names if all(_colour_ok(c, b) for c in colours)]
        if not ok:  # fall back to the background farthest from every colour
            ok = [max(names, key=lambda b: min(vocab.colour_distance(
                vocab.COLOURS[c], vocab.BACKGROUND_COLOURS[b]) for c in colours))]
        colour = self._pick(ok)
        kind = self._pick(self.cfg.background_kinds)
        params: dict[str, float] = {}
        if kind == "gradient":
            params = {"angle": float(self._pick((0, 90, 45, 135))),
                      "strength": round(float(self.rng.uniform(0.25, 0.45)), 3)}
        elif kind == "stripes":
            params = {"angle": float(self._pick((0, 90, 45, 135))),
                      "period": float(int(self.rng.integers(10, 22)))}
        elif kind == "checker":
            params = {"cell": float(int(self.rng.integers(10, 20)))}
        elif kind == "blotches":
            params = {"seed": float(int(self.rng.integers(0, 2**31 - 1))),
                      "strength": round(float(self.rng.uniform(0.1, 0.2)), 3)}
        return BackgroundSpec(kind, colour, tuple(sorted(params.items())))

    # ---- whole scenes
    def scene(self, force: Pair | None = None) -> SceneSpec:
        """A fresh scene.

        Args:
            force: a pair the main object must show: its colour or shape is set and the action
                is among its actions (the scene then has no interaction).
        """
        cfg = self.cfg
        u = self.rng.random()
        n_obj = 3 if u < cfg.p_three_objects else 2 if u < cfg.p_three_objects + cfg.p_two_objects else 1
        interaction = None
        if n_obj >= 2 and force is None and self.interactions and self._chance(cfg.p_interaction):
            interaction = self._pick(self.interactions)
        taken: set[tuple[str, str]] = set()
        objects: list[ObjectSpec] = []
        for i in range(n_obj):
            for _ in range(100):
                shape, colour = self._appearance(taken)
                if i == 0 and force is not None:
                    if force[0] == "colour":
                        colour = force[1]
                    else:
                        shape = force[1]
                    if not self.valid_sequence(shape, (force[2],)):
                        continue
                if (shape, colour) not in taken:
                    break
            taken.add((shape, colour))
            if interaction is not None and i < 2:
                actions: tuple[str, ...] = ()
            elif i == 0:
                actions = self._actions_for(shape, force[2] if force else None)
            else:
                actions = (self._companion_action(shape),)
            objects.append(ObjectSpec(shape, colour, self._size(), actions))
        objects = [self._colour_to(o, None) for o in objects]
        bg = self.background(_spec_colours(objects))
        objects = [self._colour_to(o, bg.colour) for o in objects]
        return SceneSpec(tuple(objects), interaction, bg)

    def variant(self, base: SceneSpec, how: str) -> SceneSpec | None:
        """A look-alike of ``base`` that differs in one respect.

        Args:
            base: the group's first scene.
            how: ``"action"`` (what the main object does), ``"companion"`` (another, one more or
                one fewer companion object) or ``"appearance"`` (main object's colour, shape or
                size).

        Returns:
            The variant, or None when this draw gave nothing valid (the caller retries).
        """
        bg = base.background if self.cfg.group_shares_background else None
        objs = list(base.objects)
        main = objs[0]
        inter = base.interaction
        if how == "action":
            choices = ["resample"]
            if inter is None and len(main.actions) == 2:
                choices.append("replace_one")
            if len(objs) >= 2 and self.interactions:
                choices.append("interaction")
            choice = self._pick(choices)
            if choice == "interaction":
                options = [i for i in self.interactions if i != inter]
                if not options:
                    return None
                inter = self._pick(options)
                objs[0] = replace(main, actions=(), colour_to=None)
                objs[1] = replace(objs[1], actions=(), colour_to=None)
            else:
                if choice == "replace_one":
                    seq = list(main.actions)
                    seq[int(self.rng.integers(2))] = self._pick(self.actions)
                    actions = tuple(seq)
                else:
                    actions = self._actions_for(main.shape)
                if not self.valid_sequence(main.shape, actions):
                    return None
                if inter is not None:  # the partner becomes a companion
                    objs[1] = replace(objs[1], actions=(self._companion_action(objs[1].shape),))
                inter = None
                objs[0] = replace(main, actions=actions)
        elif how == "companion":
            taken = {(o.shape, o.colour) for o in objs}
            ops = []
            if len(objs) < 3:
                ops.append("add")
            if len(objs) >= 2:
                ops += ["look", "look"]
                if inter is None:
                    ops.append("act")
                if len(objs) > (2 if inter else 1):
                    ops.append("remove")
            op = self._pick(ops)
            if op == "add":
                shape, colour = self._appearance(taken, bg.colour if bg else None)
                objs.append(ObjectSpec(shape, colour, self._size(),
                                       (self._companion_action(shape),)))
            elif op == "remove":
                objs.pop()
            else:
                k = int(self.rng.integers(1, len(objs)))
                comp = objs[k]
                if op == "look":
                    shape, colour = self._appearance(taken, bg.colour if bg else None)
                    comp = replace(comp, shape=shape, colour=colour, size=self._size())
                    if "spin" in comp.actions and shape in vocab.ROTATION_INVARIANT:
                        comp = replace(comp, actions=("still",))
                else:
                    comp = replace(comp, actions=(self._companion_action(comp.shape),))
                objs[k] = comp
        elif how == "appearance":
            u = self.rng.random()
            if u < 0.45:
                main = replace(main, colour=self._pick(self.colours))
            elif u < 0.8:
                main = replace(main, shape=self._pick(self.shapes))
            else:
                main = replace(main, size=self._pick(tuple(vocab.SIZES)))
            if main.actions and not self.valid_sequence(main.shape, main.actions):
                return None
            if (main.shape, main.colour) in {(o.shape, o.colour) for o in objs[1:]}:
                return None
            objs[0] = main
        else:
            raise ValueError(f"unknown variation {how!r}")
        if bg is None:
            objs = [self._colour_to(o, None) for o in objs]
            bg = self.background(_spec_colours(objs))
        objs = [self._colour_to(o, bg.colour) for o in objs]
        if any(not _colour_ok(c, bg.colour) for c in _spec_colours(objs)):
            return None
        if any("change_colour" in o.actions and o.colour_to is None for o in objs):
            return None
        return SceneSpec(tuple(objs), inter, bg)

    def group(self, size: int, accept: Callable[[SceneSpec], bool],
              force: Pair | None = None) -> list[SceneSpec]:
        """A group of distinct look-alike scenes, all accepted by ``accept``.

        Args:
            size: how many scenes.
            accept: a scene predicate (the split's rule about held-out pairs).
            force: a pair the first scene's main object must show.

        Returns:
            ``size`` distinct scenes; the first is the base the others vary.
        """
        cfg = self.cfg
        for _ in range(1000):
            base = self.scene(force)
            if accept(base):
                break
        else:  # pragma: no cover - only with contradictory configs
            raise RuntimeError("could not sample a scene the split accepts")
        members = [base]
        kinds = ("action", "companion", "appearance")
        weights = np.array([cfg.vary_action, cfg.vary_companion, cfg.vary_appearance], float)
        weights = weights / weights.sum() if weights.sum() > 0 else np.ones(3) / 3
        while len(members) < size:
            found = None
            for _ in range(60):
                how = kinds[int(self.rng.choice(3, p=weights))]
                v = self.variant(base, how)
                if v is not None and v not in members and accept(v):
                    found = v
                    break
            if found is None:  # base admits no more variants: add an unrelated scene
                for _ in range(1000):
                    found = self.scene(force)
                    if found not in members and accept(found):
                        break
                else:  # pragma: no cover - only with contradictory configs
                    raise RuntimeError("could not sample a scene the split accepts")
            members.append(found)
        return members


# ---------------------------------------------------------------------------------------------
# Realising specs: per-frame tracks and spans
# ---------------------------------------------------------------------------------------------
def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass
class _Motion:
    """Per-frame state of one object relative to its start position."""

    dx: np.ndarray
    dy: np.ndarray
    scale: np.ndarray
    angle: np.ndarray
    alpha: np.ndarray
    mix: np.ndarray  # 0: colour, 1: colour_to

    @classmethod
    def rest(cls, n: int) -> "_Motion":
        return cls(np.zeros(n), np.zeros(n), np.ones(n), np.zeros(n), np.ones(n), np.zeros(n))


#: Frames an action lasts at the least (half a second at the default 8 fps).
MIN_ACTION_FRAMES = 4


def _spans(actions: Sequence[str], F: int, rng: np.random.Generator, rest_max: float = 0.0,
           timed: bool = False) -> list[tuple[int, int]]:
    """Frame spans of an object's actions, in order and back to back.

    With ``timed``, the actions start after a still stretch and end before another, each drawn
    uniformly up to ``rest_max`` of the clip (shortened when the actions would not fit), and two
    actions split the time between at a uniform point: when an action happens and how long it
    lasts vary from clip to clip, as in real videos, so no rule that ignores the pixels can say
    where it is. Without, the actions fill the clip (companions, and worlds before version 3).
    A ``still`` action reaches the clip's edge: a rest beside it would look the same.
    """
    n_actions = len(actions)
    lo, hi = 0, F
    need = n_actions * MIN_ACTION_FRAMES
    if timed and rest_max > 0:
        top = int(math.floor(rest_max * F))
        lo, hi = int(rng.integers(0, top + 1)), F - int(rng.integers(0, top + 1))
        lo = 0 if actions[0] == "still" else lo
        hi = F if actions[-1] == "still" else hi
        while hi - lo < need:  # not enough room left for the actions: give back rest
            lo, hi = max(lo - 1, 0), min(hi + 1, F)
    if n_actions == 1:
        return [(lo, hi)]
    if timed:
        k = int(rng.integers(lo + MIN_ACTION_FRAMES, hi - MIN_ACTION_FRAMES + 1))
    else:
        k = min(max(int(round(F * rng.uniform(0.4, 0.6))), MIN_ACTION_FRAMES), F - MIN_ACTION_FRAMES)
    return [(lo, k), (k, hi)]


def _solo_motion(actions: Sequence[str], spans: Sequence[tuple[int, int]], F: int, r0: float,
                 W: int, H: int, fps: float, rng: np.random.Generator
                 ) -> tuple[_Motion, list[dict[str, float]]]:
    """Chain single-object actions; each starts where the previous one ended."""
    m = _Motion.rest(F)
    x = y = ang = mix = 0.0
    s = 1.0
    unit = min(W, H)
    all_params: list[dict[str, float]] = []
    for action, (a, b) in zip(actions, spans):
        n = b - a
        k = np.arange(n, dtype=float)
        tau = (k + 1) / n           # motion: the span's last frame completes it
        tau0 = k / max(n - 1, 1)    # visibility and colour: first frame at 0, last at 1
        ddx = np.zeros(n)
        ddy = np.zeros(n)
        ds = np.ones(n)
        dang = np.zeros(n)
        alpha = np.ones(n)
        dmix = np.zeros(n)
        p: dict[str, float] = {}
        if action in ("move_left", "move_right"):
            d = rng.uniform(0.3, 0.5) * W
            ddx = (d if action == "move_right" else -d) * tau
            p = {"distance_px": d}
        elif action in ("move_up", "move_down"):
            d = rng.uniform(0.3, 0.45) * H
            ddy = (d if action == "move_down" else -d) * tau
            p = {"distance_px": d}
        elif action == "bounce":
            bounces = int(min(max(round(n / 6), 1), 4))
            h = rng.uniform(0.15, 0.25) * H
            ddy = -h * np.abs(np.sin(np.pi * bounces * tau))
            p = {"bounces": bounces, "height_px": h}
        elif action == "spin":
            turns = rng.uniform(0.5, 1.25) * (1 if rng.random() < 0.5 else -1)
            dang = 2 * np.pi * turns * tau
            p = {"turns": turns}
        elif action == "grow":
            g = min(rng.uniform(1.6, 2.0), max(0.3 * unit / (r0 * s), 1.2))
            ds = 1 + (g - 1) * _smooth(tau)
            p = {"factor": g}
        elif action == "shrink":
            g = rng.uniform(0.4, 0.6)
            ds = 1 + (g - 1) * _smooth(tau)
            p = {"factor": g}
        elif action == "blink":
            half = max(1, int(round(fps / 4)))
            alpha = np.where((k.astype(int) // half) % 2 == 1, 0.0, 1.0)
            p = {"period_frames": 2 * half}
        elif action == "appear":
            alpha = _smooth((tau0 - 0.2) / 0.4)
        elif action == "disappear":
            alpha = 1 - _smooth((tau0 - 0.4) / 0.4)
        elif action == "change_colour":
            dmix = _smooth((tau0 - 0.3) / 0.4)
        elif action == "fall":
            d = rng.uniform(0.45, 0.6) * H
            ddy = d * tau**2
            p = {"distance_px": d}
        elif action == "rise":
            d = rng.uniform(0.35, 0.5) * H
            wobble = 0.04 * W
            ddy = -d * tau
            ddx = wobble * np.sin(2 * np.pi * 1.5 * tau)
            p = {"distance_px": d, "wobble_px": wobble}
        elif action != "still":
            raise ValueError(f"unknown action {action!r}")
        if action == "appear":
            m.alpha[:a] = 0.0  # not there before it appears
        m.dx[a:b] = x + ddx
        m.dy[a:b] = y + ddy
        m.scale[a:b] = s * ds
        m.angle[a:b] = ang + dang
        m.alpha[a:b] = alpha
        m.mix[a:b] = mix + (1 - mix) * dmix if action == "change_colour" else mix
        x, y, s, ang, mix = m.dx[b - 1], m.dy[b - 1], m.scale[b - 1], m.angle[b - 1], m.mix[b - 1]
        # still after the action: it stays as the action left it (a blink ends visible)
        m.dx[b:], m.dy[b:], m.scale[b:], m.angle[b:], m.mix[b:] = x, y, s, ang, mix
        m.alpha[b:] = 1.0 if action == "blink" else alpha[-1]
        all_params.append({key: round(float(v), 3) for key, v in p.items()})
    return m, all_params


def _start_range(offset: np.ndarray, radius: np.ndarray, length: int, margin: float
                 ) -> tuple[float, float]:
    lo = float(np.max(radius + margin - offset))
    hi = float(np.min(length - radius - margin - offset))
    return lo, hi


def _place_solo(m: _Motion, r0: float, W: int, H: int, rng: np.random.Generator,
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """A random start position that keeps the whole track inside the frame (None: impossible)."""
    radius = r0 * m.scale
    lo_x, hi_x = _start_range(m.dx, radius, W, 2.0)
    lo_y, hi_y = _start_range(m.dy, radius, H, 2.0)
    if lo_x > hi_x or lo_y > hi_y:
        return None
    x0 = rng.uniform(lo_x, hi_x)
    y0 = rng.uniform(lo_y, hi_y)
    return x0 + m.dx, y0 + m.dy


def _fit_solo(actions: Sequence[str], spans: Sequence[tuple[int, int]], F: int, r0: float,
              W: int, H: int, fps: float, rng: np.random.Generator
              ) -> tuple[_Motion, list[dict[str, float]]]:
    """Motion whose track fits in the frame; long paths are shortened until they do."""
    m, params = _solo_motion(actions, spans, F, r0, W, H, fps, rng)
    for _ in range(12):
        radius = r0 * m.scale
        lo_x, hi_x = _start_range(m.dx, radius, W, 2.0)
        lo_y, hi_y = _start_range(m.dy, radius, H, 2.0)
        if lo_x <= hi_x and lo_y <= hi_y:
            break
        # Shrink the offending displacement about the start; growth is capped in _solo_motion.
        if lo_x > hi_x:
            m.dx *= 0.85
        if lo_y > hi_y:
            m.dy *= 0.85
        if m.scale.max() * r0 > 0.45 * min(W, H):
            m.scale = 1 + (m.scale - 1) * 0.85
    return m, params


def _interaction_tracks(kind: str, ra: float, rb: float, F: int, W: int, H: int,
                        rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Absolute tracks (xa, ya, xb, yb) of an interaction between objects a (subject) and b."""
    t = np.arange(F, dtype=float) / max(F - 1, 1)
    m = 2.0
    rmax = max(ra, rb)
    params: dict[str, Any] = {}
    circle_chase = kind == "chase" and rng.random() < 0.5
    if kind == "chase" and not circle_chase:
        horizontal = rng.random() < 0.7
        L = W if horizontal else H
        gap = (ra + rb) * 1.4 + rng.uniform(0, 0.1) * L
        # A path too short to show a chase (big objects, small frames): chase in a circle.
        circle_chase = (L - rb - ra - 2 * m - gap) < 0.35 * L
    if circle_chase:
        cx, cy = W / 2, H / 2
        r_max = min(W, H) / 2 - rmax - m
        R = rng.uniform(0.75, 1.0) * r_max
        lag = min(max(0.9, (ra + rb) * 1.3 / R), 2.5)
        turns = rng.uniform(0.5, 0.9)
        direction = 1 if rng.random() < 0.5 else -1
        th_b = rng.uniform(0, 2 * np.pi) + direction * 2 * np.pi * turns * t
        th_a = th_b - direction * lag
        xa, ya = cx + R * np.cos(th_a), cy + R * np.sin(th_a)
        xb, yb = cx + R * np.cos(th_b), cy + R * np.sin(th_b)
        params = {"path": "circle", "radius_px": R, "turns": turns}
    elif kind == "chase":
        C = H if horizontal else W
        amp = rng.uniform(0.05, 0.12) * C
        s_b0 = ra + m + gap + rng.uniform(0, 0.05) * L
        s_b1 = L - rb - m - rng.uniform(0, 0.05) * L
        s_b = s_b0 + (s_b1 - s_b0) * t
        s_a = s_b - gap
        c0 = rng.uniform(amp + rmax + m, C - amp - rmax - m)
        wavelength = rng.uniform(0.5, 0.9) * L
        phase = rng.uniform(0, 2 * np.pi)
        c_a = c0 + amp * np.sin(2 * np.pi * s_a / wavelength + phase)
        c_b = c0 + amp * np.sin(2 * np.pi * s_b / wavelength + phase)
        if rng.random() < 0.5:  # go the other way
            s_a, s_b = L - s_a, L - s_b
        xa, ya, xb, yb = (s_a, c_a, s_b, c_b) if horizontal else (c_a, s_a, c_b, s_b)
        params = {"path": "line" if horizontal else "column", "gap_px": gap}
    elif kind == "pass":
        horizontal = rng.random() < 0.7
        L, C = (W, H) if horizontal else (H, W)
        sep = (ra + rb) * 1.1 + rng.uniform(0, 0.12) * C
        mid = rng.uniform(sep / 2 + rmax + m, C - sep / 2 - rmax - m)
        c_a, c_b = (mid - sep / 2, mid + sep / 2) if rng.random() < 0.5 else (mid + sep / 2, mid - sep / 2)
        a0 = ra + m + rng.uniform(0, 0.1) * L
        a1 = L - ra - m - rng.uniform(0, 0.1) * L
        b0 = L - rb - m - rng.uniform(0, 0.1) * L
        b1 = rb + m + rng.uniform(0, 0.1) * L
        s_a = a0 + (a1 - a0) * t
        s_b = b0 + (b1 - b0) * t
        if rng.random() < 0.5:
            s_a, s_b = L - s_a, L - s_b
        ca, cb = np.full(F, c_a), np.full(F, c_b)
        xa, ya, xb, yb = (s_a, ca, s_b, cb) if horizontal else (ca, s_a, cb, s_b)
        params = {"direction": "horizontal" if horizontal else "vertical"}
    elif kind == "collide":
        horizontal = rng.random() < 0.7
        L, C = (W, H) if horizontal else (H, W)
        contact = (ra + rb) * 0.85  # shapes do not fill their bounding circles
        tc = rng.uniform(0.45, 0.65)
        a_lo, b_hi = ra + m, L - rb - m
        run = 0.2 * L  # the shortest approach that still reads as a movement
        lo, hi = a_lo + run + contact / 2, b_hi - run - contact / 2
        meet = rng.uniform(min(lo, hi), max(lo, hi)) if lo < hi else (lo + hi) / 2
        both = rng.random() < 0.5
        a_hit = meet - contact / 2
        b_hit = meet + contact / 2
        a0 = max(a_lo, a_hit - run - rng.uniform(0, 0.15) * L)
        va = (a_hit - a0) / tc
        after = np.clip(t - tc, 0, None)
        before = np.minimum(t, tc)
        if both:
            b0 = min(b_hi, b_hit + run + rng.uniform(0, 0.15) * L)
            vb = (b0 - b_hit) / tc
            s_a = a0 + va * before - 0.45 * va * after * (1 - 0.5 * after / (1 - tc))
            s_b = b0 - vb * before + 0.45 * vb * after * (1 - 0.5 * after / (1 - tc))
        else:
            s_a = a0 + va * before + 0.1 * va * after
            s_b = b_hit + 0.8 * va * after * (1 - 0.5 * after / (1 - tc))
        s_a = np.clip(s_a, ra + m, L - ra - m)
        s_b = np.clip(s_b, rb + m, L - rb - m)
        if rng.random() < 0.5:
            s_a, s_b = L - s_a, L - s_b
        c = rng.uniform(rmax + m, C - rmax - m)
        ca = np.full(F, c)
        xa, ya, xb, yb = (s_a, ca, s_b, ca.copy()) if horizontal else (ca, s_a, ca.copy(), s_b)
        params = {"contact_frame": int(round(tc * (F - 1))), "both_move": both,
                  "direction": "horizontal" if horizontal else "vertical"}
    else:
        raise ValueError(f"unknown interaction {kind!r}")
    params = {k: (round(float(v), 3) if isinstance(v, float) else v) for k, v in params.items()}
    return xa, ya, xb, yb, params


def _clearance(x: np.ndarray, y: np.ndarray, r: np.ndarray, placed: list[tuple]) -> float:
    """Smallest gap (px, over frames) between a track and already placed tracks."""
    best = math.inf
    for (px, py, pr) in placed:
        gap = np.hypot(x - px, y - py) - 0.9 * (r + pr)
        best = min(best, float(gap.min()))
    return best


def _jitter_rgb(rgb: Sequence[int], amount: int, rng: np.random.Generator) -> list[int]:
    if amount <= 0:
        return [int(c) for c in rgb]
    noise = rng.integers(-amount, amount + 1, size=3)
    return [int(v) for v in np.clip(np.asarray(rgb) + noise, 0, 255)]


def realize(spec: SceneSpec, cfg: SynthConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Turn a scene spec into an annotation: per-frame tracks and action spans.

    Args:
        spec: the scene.
        cfg: the world config (frame size, fps, duration, colour jitter).
        rng: the clip's generator (positions, speeds, colour jitter).

    Returns:
        The annotation dict (see the module docstring), without ``name``, ``split``, ``group``
        and ``novel_pairs``.
    """
    F, W, H, fps = cfg.num_frames, cfg.width, cfg.height, float(cfg.fps)
    unit = min(W, H)
    n = len(spec.objects)
    radii = [vocab.SIZES[o.size] * unit * rng.uniform(0.95, 1.05) for o in spec.objects]
    rgbs = [_jitter_rgb(vocab.COLOURS[o.colour], cfg.colour_jitter, rng) for o in spec.objects]
    rgbs_to = [_jitter_rgb(vocab.COLOURS[o.colour_to], cfg.colour_jitter, rng) if o.colour_to
               else None for o in spec.objects]
    motions: list[_Motion] = [_Motion.rest(F) for _ in range(n)]
    xs: list[np.ndarray] = [np.zeros(F)] * n
    ys: list[np.ndarray] = [np.zeros(F)] * n
    actions: list[dict[str, Any]] = []

    def span_entry(action: str, subject: int, obj: int | None, a: int, b: int,
                   params: dict[str, Any]) -> dict[str, Any]:
        return {"action": action, "verbs": sorted(vocab.action_verbs(action)), "subject": subject,
                "object": obj, "start_frame": a, "end_frame": b,
                "start_s": round(a / fps, 4), "end_s": round(b / fps, 4), "params": params}

    placed: list[tuple] = []
    first_free = 0
    if spec.interaction is not None:
        xa, ya, xb, yb, params = _interaction_tracks(spec.interaction, radii[0], radii[1], F, W, H, rng)
        xs[0], ys[0], xs[1], ys[1] = xa, ya, xb, yb
        placed += [(xa, ya, np.full(F, radii[0])), (xb, yb, np.full(F, radii[1]))]
        actions.append(span_entry(spec.interaction, 0, 1, 0, F, params))
        first_free = 2
    solo_entries: list[dict[str, Any]] = []
    for i in range(first_free, n):
        obj = spec.objects[i]
        # the main object's actions take a varying part of the clip; companions fill it
        timed = i == 0 and (len(obj.actions) == 2 or rng.random() < cfg.p_timed_single)
        spans = _spans(obj.actions, F, rng, cfg.rest_max, timed)
        motion, params = _fit_solo(obj.actions, spans, F, radii[i], W, H, fps, rng)
        motions[i] = motion
        best = None
        for _ in range(60):  # keep objects apart where possible; the main one is placed first
            pos = _place_solo(motion, radii[i], W, H, rng)
            if pos is None:
                break
            gap = _clearance(pos[0], pos[1], radii[i] * motion.scale, placed)
            if best is None or gap > best[0]:
                best = (gap, pos)
            if gap >= 0:
                break
        if best is None:  # cannot fit even alone: centre it (only with extreme configs)
            pos = (W / 2 + motion.dx - motion.dx.mean(), H / 2 + motion.dy - motion.dy.mean())
        else:
            pos = best[1]
        xs[i], ys[i] = pos
        placed.append((xs[i], ys[i], radii[i] * motion.scale))
        for action, (a, b), p in zip(obj.actions, spans, params):
            solo_entries.append(span_entry(action, i, None, a, b, p))
    actions += solo_entries

    objects = []
    for i, obj in enumerate(spec.objects):
        mo = motions[i]
        c0 = np.asarray(rgbs[i], float)
        c1 = np.asarray(rgbs_to[i], float) if rgbs_to[i] is not None else c0
        rgb_track = np.rint(c0[None] * (1 - mo.mix[:, None]) + c1[None] * mo.mix[:, None])
        role = "main" if i == 0 else ("partner" if spec.interaction and i == 1 else "companion")
        objects.append({
            "id": i, "role": role, "shape": obj.shape, "colour": obj.colour, "size": obj.size,
            "colour_to": obj.colour_to, "rgb": rgbs[i], "rgb_to": rgbs_to[i],
            "radius_px": round(float(radii[i]), 3), "actions": list(obj.actions),
            "track": {
                "x": [round(float(v), 3) for v in xs[i]],
                "y": [round(float(v), 3) for v in ys[i]],
                "radius": [round(float(v), 3) for v in radii[i] * mo.scale],
                "angle": [round(float(v), 4) for v in mo.angle],
                "alpha": [round(float(v), 4) for v in mo.alpha],
                "rgb": [[int(c) for c in row] for row in rgb_track],
            },
        })
    bg = spec.background
    return {
        "num_frames": F, "fps": fps, "width": W, "height": H,
        "duration_s": round(F / fps, 4),
        "background": {"kind": bg.kind, "colour": bg.colour,
                       "rgb": list(vocab.BACKGROUND_COLOURS[bg.colour]),
                       "params": {k: (int(v) if float(v).is_integer() else v) for k, v in bg.params}},
        "interaction": spec.interaction,
        "two_actions": len(spec.objects[0].actions) == 2,
        "objects": objects,
        "actions": actions,
    }


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
