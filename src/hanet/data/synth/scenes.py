"""Symbolic scenes (objects, actions, backgrounds) and how they are sampled: groups of
look-alike clips, held-out attribute-action pairs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from hanet.data.synth import vocab
from hanet.data.synth.config import SynthConfig

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
