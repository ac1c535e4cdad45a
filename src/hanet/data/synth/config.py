"""Knobs of the synthetic world: :class:`SynthConfig` and its presets.

Every number that shapes the world (its size, the video format, how many colours, shapes and
actions are in play, how often clips hold two actions or two objects, how alike the test videos
are, how detailed the captions are) is a field here, so that the demo can calibrate difficulty
without touching the generator. The config (with the seed and :data:`WORLD_VERSION`) is hashed
into the world's manifest; a world is reused only when the hash matches.

Presets (:data:`PRESETS`):

* ``default``: 1,600 clips of 3 s at 8 fps (24 frames), 128x128, look-alike groups of 8; splits
  1,120/160/240 + 80 novel.
* ``quick``: 64 clips of 2 s at 8 fps (16 frames), 96x96, for end-to-end tests and ``--quick``.

Example:
    >>> cfg = SynthConfig.preset("quick", num_videos=32)
    >>> cfg.num_frames
    16
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

from hanet.errors import HanetError
from hanet.data.synth import vocab

# Bump whenever the same config and seed would give different files (sampling, drawing, grammar).
WORLD_VERSION = 3

SPLITS: tuple[str, ...] = ("trn", "val", "tst", "tst_novel")


#: The largest world one ``hanet synth`` makes (its plan, all annotations, lives in memory).
MAX_VIDEOS = 1_000_000


@dataclass(frozen=True)
class SynthConfig:
    """Everything that decides what a synthetic world looks like (the seed aside).

    Attributes:
        num_videos: clips in the world, all splits together. The default 1,600 leaves 1,120
            training clips (140 look-alike groups): with 320 the demo model could not learn what
            its features hold (a linear probe of the main object's colour was at its majority
            class), and text-to-video R@1 doubled from 320 to 1,120 (``docs/history.md``).
        val_fraction: share of clips in the validation split (default 0.1: 160 clips, 20 groups
            of 8, enough that early stopping does not react to a 10-group split's swings).
        test_fraction: share of clips in the (in-distribution) test split ``tst`` (default 0.15:
            240 clips, 30 groups of 8, about 2,400 captions).
        novel_fraction: share of clips in ``tst_novel``, whose main object shows an
            attribute-action pair never seen in ``trn``, ``val`` or ``tst``. 0 disables it
            (default 0.05: 80 clips).
        width: frame width in pixels (even: yuv420p halves the chroma planes).
        height: frame height in pixels (even).
        fps: frames per second.
        duration_s: clip length in seconds; ``num_frames = round(duration_s * fps)``.
        crf: x264 constant rate factor (lower: better quality, bigger files).
        num_colours: object colours in play, the first n of :data:`vocab.COLOURS`.
        num_shapes: shapes in play, the first n of :data:`vocab.SHAPES`.
        num_actions: single-object actions in play, the first n of :data:`vocab.SOLO_ACTIONS`.
        num_interactions: two-object interactions in play, the first n of
            :data:`vocab.INTERACTIONS` (0: none).
        num_background_colours: background colours in play, the first n of
            :data:`vocab.BACKGROUND_COLOURS`.
        background_kinds: background textures in play (subset of :data:`vocab.BACKGROUND_KINDS`).
        p_two_objects: probability of a clip with two objects.
        p_three_objects: probability of a clip with three objects.
        p_interaction: probability that a clip with two or more objects shows an interaction
            (collide, chase, pass) between its first two objects.
        p_two_actions: probability that the main object of a non-interaction clip does two
            actions in sequence ("... and then ..."), each over a part of the clip.
        p_companion_still: probability that a companion object (not the main one, not in an
            interaction) stays still; otherwise it moves, bounces, spins or blinks.
        rest_max: the main object may stay still before its first action and after its last,
            each stretch drawn uniformly up to this share of the clip; two actions split the time
            between at a uniform point (each lasts at least 4 frames). When actions happen and
            how long they last then vary as in real videos, so a time span that ignores the
            pixels (the first action early, the second late) finds them poorly. 0: the actions
            fill the clip.
        p_timed_single: probability that a main object doing one action also does it between
            such still stretches (otherwise the action fills the clip). Two actions always are.
        group_size: clips are made in groups of this many look-alikes that share the main
            object's appearance and the background and differ in one thing (what the main object
            does, the companion object, or one attribute). 1: every clip independent. The
            default 8 is calibrated with the demo (``docs/demo.md``): with groups of 4 the
            global-only variant came within a point of HANet's text-to-video R@1.
        vary_action: weight of "the main object does something else" among group variations.
        vary_companion: weight of "another companion object (or none, or one more)".
        vary_appearance: weight of "the main object has another colour, shape or size".
        group_shares_background: whether the clips of a group share the background.
        novel_pairs: attribute-action pairs (half colour-action, half shape-action) held out of
            ``trn``/``val``/``tst`` and shown in every ``tst_novel`` clip.
        noise_std: standard deviation of per-pixel brightness noise, in 0..255 units.
        colour_jitter: per-clip random offset (+-) of each RGB channel of object colours.
        antialias: draw soft (1-pixel) edges instead of hard ones.
        captions_per_video: captions written per clip.
        p_mention_colour: probability that a caption names an object's colour.
        p_mention_size: probability that it names a small or large object's size.
        p_mention_background: probability that it names the background.
        p_mention_companion: probability that it names a companion object (not in an
            interaction; interaction partners are always named).
        p_partial_sequence: probability that a caption of a two-action clip names only one of
            the two actions, as people often do.
        p_generic_noun: probability that a caption calls an object "shape", "object" or "thing".
        progressive_bias: weight multiplier of the progressive caption frames ("X is
            bouncing", "there is X bouncing", "X is spinning and then growing") against the
            simple present ("X bounces"). spaCy's small model tags the last verb of a short
            simple-present caption ("a red heart shrinks") as a plural noun about a quarter of
            the time, and concepts follow the tags; progressive frames are read right far more
            often (a verb tagged as a noun in 26% of the default world's simple-present
            captions, 5% of its progressive ones).
    """

    num_videos: int = 1600
    val_fraction: float = 0.1
    test_fraction: float = 0.15
    novel_fraction: float = 0.05
    width: int = 128
    height: int = 128
    fps: float = 8.0
    duration_s: float = 3.0
    crf: int = 23
    num_colours: int = 8
    num_shapes: int = 8
    num_actions: int = 15
    num_interactions: int = 3
    num_background_colours: int = 9
    background_kinds: tuple[str, ...] = vocab.BACKGROUND_KINDS
    p_two_objects: float = 0.35
    p_three_objects: float = 0.15
    p_interaction: float = 0.45
    p_two_actions: float = 0.4
    p_companion_still: float = 0.5
    rest_max: float = 0.35
    p_timed_single: float = 0.5
    group_size: int = 8
    vary_action: float = 0.5
    vary_companion: float = 0.25
    vary_appearance: float = 0.25
    group_shares_background: bool = True
    novel_pairs: int = 8
    noise_std: float = 2.0
    colour_jitter: int = 12
    antialias: bool = True
    captions_per_video: int = 10
    p_mention_colour: float = 0.8
    p_mention_size: float = 0.35
    p_mention_background: float = 0.3
    p_mention_companion: float = 0.5
    p_partial_sequence: float = 0.15
    p_generic_noun: float = 0.1
    progressive_bias: float = 1.0

    # ------------------------------------------------------------------ derived values
    @property
    def num_frames(self) -> int:
        """Frames per clip."""
        return int(round(self.duration_s * self.fps))

    @property
    def colours(self) -> tuple[str, ...]:
        """Object colour names in play."""
        return vocab.subset(vocab.COLOURS, self.num_colours)

    @property
    def shapes(self) -> tuple[str, ...]:
        """Shape names in play."""
        return vocab.subset(vocab.SHAPES, self.num_shapes)

    @property
    def actions(self) -> tuple[str, ...]:
        """Single-object action names in play."""
        return vocab.subset(vocab.SOLO_ACTIONS, self.num_actions)

    @property
    def interactions(self) -> tuple[str, ...]:
        """Interaction names in play."""
        return vocab.subset(vocab.INTERACTIONS, self.num_interactions)

    @property
    def background_colours(self) -> tuple[str, ...]:
        """Background colour names in play."""
        return vocab.subset(vocab.BACKGROUND_COLOURS, self.num_background_colours)

    def split_sizes(self) -> dict[str, int]:
        """Clips per split, in :data:`SPLITS` order; ``trn`` takes what the others leave.

        Returns:
            ``{"trn": n, "val": n, "tst": n, "tst_novel": n}``.
        """
        n = self.num_videos
        val = int(round(n * self.val_fraction))
        tst = int(round(n * self.test_fraction))
        novel = int(round(n * self.novel_fraction))
        if self.test_fraction > 0:
            tst = max(tst, 1)
        return {"trn": n - val - tst - novel, "val": val, "tst": tst, "tst_novel": novel}

    # ------------------------------------------------------------------ construction
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "SynthConfig":
        """A preset, optionally with some fields replaced.

        Args:
            name: a key of :data:`PRESETS`.
            **overrides: fields to replace.

        Returns:
            The validated config.

        Raises:
            HanetError: unknown preset or field, or an invalid value.
        """
        if name not in PRESETS:
            raise HanetError(f"unknown synth preset {name!r}; choose from {sorted(PRESETS)}")
        return PRESETS[name].replace(**overrides)

    def replace(self, **overrides: Any) -> "SynthConfig":
        """A copy with some fields replaced, validated.

        Args:
            **overrides: field name -> value.

        Raises:
            HanetError: unknown field or invalid value.
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise HanetError(f"unknown synth config field(s) {unknown}; known: {sorted(names)}")
        if "background_kinds" in overrides:
            overrides["background_kinds"] = tuple(overrides["background_kinds"])
        cfg = dataclasses.replace(self, **overrides)
        cfg.validate()
        return cfg

    def with_strings(self, assignments: Mapping[str, str]) -> "SynthConfig":
        """A copy with fields set from strings (the CLI's ``--set key=value``).

        Args:
            assignments: field name -> value as text; booleans accept true/false/1/0/yes/no,
                ``background_kinds`` a comma-separated list.

        Raises:
            HanetError: unknown field or a value that does not parse.
        """
        types = {f.name: type(getattr(self, f.name)) for f in dataclasses.fields(self)}
        parsed: dict[str, Any] = {}
        for key, text in assignments.items():
            if key not in types:
                raise HanetError(f"unknown synth config field {key!r}; known: {sorted(types)}")
            kind = types[key]
            try:
                if kind is bool:
                    low = text.strip().lower()
                    if low not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(text)
                    parsed[key] = low in ("true", "1", "yes")
                elif kind is tuple:
                    parsed[key] = tuple(t.strip() for t in text.split(",") if t.strip())
                else:
                    parsed[key] = kind(text)
            except ValueError:
                raise HanetError(f"synth config field {key}: cannot read {text!r} as {kind.__name__}")
        return self.replace(**parsed)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON-able values."""
        d = dataclasses.asdict(self)
        d["background_kinds"] = list(self.background_kinds)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SynthConfig":
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        return cls().replace(**dict(data))

    def fingerprint(self, seed: int) -> str:
        """Hash of the config, the seed and :data:`WORLD_VERSION`: equal hashes, equal worlds.

        Args:
            seed: the world's seed.

        Returns:
            A hex SHA-256 digest.
        """
        blob = json.dumps({"config": self.to_dict(), "seed": int(seed), "version": WORLD_VERSION},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check every field; raise :class:`HanetError` naming the first bad one."""

        def bad(name: str, why: str) -> HanetError:
            return HanetError(f"synth config {name}={getattr(self, name)!r}: {why}")

        for name in ("num_videos", "width", "height", "crf", "num_colours", "num_shapes",
                     "num_actions", "num_interactions", "num_background_colours", "group_size",
                     "novel_pairs", "colour_jitter", "captions_per_video"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad(name, "must be an integer")
        for f in dataclasses.fields(self):
            if f.name.startswith("p_") or f.name.endswith("_fraction"):
                v = getattr(self, f.name)
                if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                    raise bad(f.name, "must be a probability in [0, 1]")
        if self.num_videos < 4:
            raise bad("num_videos", "must be at least 4")
        if self.num_videos > MAX_VIDEOS:
            # the plan of the whole world is made in memory before the first clip is written
            raise bad("num_videos", f"must be at most {MAX_VIDEOS:,} (a larger world is planned in memory for "
                      f"hours before anything is written; make several worlds with different --seed)")
        if not (isinstance(self.progressive_bias, (int, float)) and 0 < self.progressive_bias <= 100):
            raise bad("progressive_bias", "must be in (0, 100]")
        for name in ("width", "height"):
            v = getattr(self, name)
            if v < 32 or v > 1024 or v % 2:
                raise bad(name, "must be an even number of pixels from 32 to 1024 (yuv420p)")
        if not (isinstance(self.fps, (int, float)) and 1 <= self.fps <= 60):
            raise bad("fps", "must be in [1, 60]")
        if not (isinstance(self.duration_s, (int, float)) and self.duration_s > 0):
            raise bad("duration_s", "must be positive")
        if self.num_frames < 8:
            raise bad("duration_s", f"gives {self.num_frames} frames; need at least 8 "
                      "(two actions of 4 frames)")
        if self.num_frames > 600:
            raise bad("duration_s", f"gives {self.num_frames} frames; at most 600")
        if not 0 <= self.crf <= 51:
            raise bad("crf", "must be in [0, 51]")
        limits = {"num_colours": (3, len(vocab.COLOURS)), "num_shapes": (2, len(vocab.SHAPES)),
                  "num_actions": (3, len(vocab.SOLO_ACTIONS)),
                  "num_interactions": (0, len(vocab.INTERACTIONS)),
                  "num_background_colours": (2, len(vocab.BACKGROUND_COLOURS)),
                  "group_size": (1, 16), "novel_pairs": (0, 32), "colour_jitter": (0, 40),
                  "captions_per_video": (1, 100)}
        for name, (lo, hi) in limits.items():
            if not lo <= getattr(self, name) <= hi:
                raise bad(name, f"must be in [{lo}, {hi}]")
        if not self.background_kinds or any(k not in vocab.BACKGROUND_KINDS
                                             for k in self.background_kinds):
            raise bad("background_kinds", f"must be a non-empty subset of {vocab.BACKGROUND_KINDS}")
        if self.p_two_objects + self.p_three_objects > 1:
            raise bad("p_three_objects", "p_two_objects + p_three_objects must be <= 1")
        if self.vary_action + self.vary_companion + self.vary_appearance <= 0 and self.group_size > 1:
            raise bad("vary_action", "the vary_* weights must not all be 0 when group_size > 1")
        if min(self.vary_action, self.vary_companion, self.vary_appearance) < 0:
            raise bad("vary_action", "the vary_* weights must be >= 0")
        if not (isinstance(self.rest_max, (int, float)) and 0 <= self.rest_max <= 0.45):
            raise bad("rest_max", "must be in [0, 0.45] (the actions need the rest of the clip)")
        if not (isinstance(self.noise_std, (int, float)) and 0 <= self.noise_std <= 50):
            raise bad("noise_std", "must be in [0, 50]")
        if self.val_fraction + self.test_fraction + self.novel_fraction >= 1:
            raise bad("val_fraction", "val + test + novel fractions must leave room for trn")
        sizes = self.split_sizes()
        if sizes["trn"] < 1:
            raise bad("num_videos", f"leaves no training clip (splits {sizes})")
        if sizes["tst_novel"] > 0 and self.novel_pairs < 1:
            raise bad("novel_pairs", "must be >= 1 when novel_fraction > 0")
        if math.isnan(self.noise_std):
            raise bad("noise_std", "must be a number")


PRESETS: dict[str, SynthConfig] = {
    "default": SynthConfig(),
    "quick": SynthConfig(
        num_videos=64, val_fraction=0.125, test_fraction=0.25, novel_fraction=0.125,
        width=96, height=96, fps=8.0, duration_s=2.0, novel_pairs=4, group_size=4,
    ),
}
