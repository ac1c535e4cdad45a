"""Parts of the synthetic world: words, shapes, motions, captions, config and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from hanet.data.synth import vocab
from hanet.data.synth.captions import make_captions
from hanet.data.synth.config import PRESETS, SynthConfig
from hanet.data.synth.render import SHAPE_PARTS, render_clip, shape_distance
from hanet.data.synth.world import (BackgroundSpec, ObjectSpec, SceneSpec, realize, true_words,
                                    verb_spans)
from hanet.errors import HanetError

PLAIN = BackgroundSpec("plain", "gray")


def scene(*objects: ObjectSpec, interaction: str | None = None,
          background: BackgroundSpec = PLAIN) -> SceneSpec:
    return SceneSpec(tuple(objects), interaction, background)


def annotate(spec: SceneSpec, seed: int = 0, **cfg) -> dict:
    return realize(spec, SynthConfig(**cfg), np.random.default_rng(seed))


# ------------------------------------------------------------------------------------ words
@pytest.mark.parametrize("base, third, ing", [
    ("move to the left", "moves to the left", "moving to the left"),
    ("spin", "spins", "spinning"), ("go up", "goes up", "going up"),
    ("pass each other", "passes each other", "passing each other"),
    ("stay still", "stays still", "staying still"), ("rise", "rises", "rising"),
    ("be chased by {s}", "is chased by {s}", "being chased by {s}"),
    ("flee from {s}", "flees from {s}", "fleeing from {s}"), ("hit {o}", "hits {o}", "hitting {o}"),
    ("flash", "flashes", "flashing"), ("fly", "flies", "flying"), ("pop up", "pops up", "popping up"),
])
def test_inflections(base: str, third: str, ing: str) -> None:
    assert vocab.third_person(base) == third
    assert vocab.gerund(base) == ing


def test_vocabulary_is_caption_safe() -> None:
    words = set()
    for phrases in vocab.VERB_PHRASES.values():
        words |= {w for p in phrases for w in p.replace("{c}", "").replace("{c0}", "").split()}
    for nouns in vocab.SHAPE_NOUNS.values():
        words |= set(nouns)
    words |= set(vocab.COLOURS) | set(vocab.BACKGROUND_COLOURS) | set(vocab.GENERIC_NOUNS)
    assert all(re.fullmatch(r"[a-z]+", w) for w in words)
    assert vocab.action_verbs("bounce") == {"bounce", "jump", "hop"}
    assert {"chase", "follow", "run", "flee"} <= vocab.action_verbs("chase")
    # Every action and interaction has words; every shape can be drawn.
    assert set(vocab.VERB_PHRASES) == set(vocab.SOLO_ACTIONS)
    assert set(SHAPE_PARTS) == set(vocab.SHAPES)
    assert set(vocab.COMPANION_ACTIONS) <= set(vocab.SOLO_ACTIONS)


# ------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("shape", vocab.SHAPES)
def test_shape_fits_its_bounding_circle(shape: str) -> None:
    yy, xx = np.mgrid[-1.3:1.3:261j, -1.3:1.3:261j]
    inside = shape_distance(shape, xx, yy) <= 0
    assert inside[130, 130], "the centre is inside (the tests of positions rely on it)"
    assert not inside[np.hypot(xx, yy) > 1.0 + 1e-6].any()
    area = inside.mean() * 2.6**2 / np.pi  # as a fraction of the bounding circle
    assert 0.3 < area < 0.9


def _single(shape: str, angle: float, radius: float = 20.0) -> np.ndarray:
    ann = {"num_frames": 1, "width": 64, "height": 64,
           "background": {"kind": "plain", "rgb": [0, 0, 0], "params": {}},
           "objects": [{"shape": shape, "track": {"x": [32.0], "y": [32.0], "radius": [radius],
                                                  "angle": [angle], "alpha": [1.0],
                                                  "rgb": [[255, 255, 255]]}}]}
    return render_clip(ann)[0, ..., 0].astype(int)


def test_rotation_and_antialiasing() -> None:
    square0, square45 = _single("square", 0.0), _single("square", np.pi / 4)
    assert np.abs(square0 - square45).max() == 255  # a turned square covers other pixels
    circle0, circle45 = _single("circle", 0.0), _single("circle", np.pi / 4)
    assert np.abs(circle0 - circle45).max() <= 2
    edge = circle0[(circle0 > 0) & (circle0 < 255)]
    assert edge.size > 20  # soft edges
    tri_up = _single("triangle", 0.0)
    assert (tri_up[18] > 128).sum() < (tri_up[38] > 128).sum()  # the tip points up


def test_backgrounds_and_noise() -> None:
    for kind in vocab.BACKGROUND_KINDS:
        spec = scene(ObjectSpec("circle", "red", "medium", ("still",)),
                     background=BackgroundSpec(kind, "blue", (("angle", 45.0), ("cell", 12.0),
                                                              ("period", 14.0), ("seed", 3.0),
                                                              ("strength", 0.2))))
        ann = annotate(spec, fps=8, duration_s=1.0)
        clean = render_clip(ann)
        assert clean.shape == (8, 128, 128, 3) and clean.dtype == np.uint8
        bg = np.array(ann["background"]["rgb"])
        corner = clean[0, :8, :8].reshape(-1, 3).astype(int)
        assert np.abs(corner.mean(axis=0) - bg).max() < 60
        if kind == "plain":
            assert (clean[0, 0, 0] == bg).all()
        noisy = render_clip(ann, 3.0, rng=np.random.default_rng(0))
        diff = noisy.astype(int) - clean
        assert 1.5 < diff.std() < 4.5
        # Brightness noise: the same on the three channels.
        assert (np.abs(diff[..., 0] - diff[..., 1]) <= 1).mean() > 0.95
    with pytest.raises(ValueError):
        render_clip(ann, 3.0)  # noise needs an rng


# ------------------------------------------------------------------------------------ motion
def _track(spec: SceneSpec, i: int = 0, **cfg) -> dict:
    return annotate(spec, **cfg)["objects"][i]["track"]


@pytest.mark.parametrize("action, key, sign", [
    ("move_left", "x", -1), ("move_right", "x", 1), ("move_up", "y", -1), ("move_down", "y", 1),
    ("fall", "y", 1), ("rise", "y", -1), ("grow", "radius", 1), ("shrink", "radius", -1),
])
def test_actions_change_what_they_say(action: str, key: str, sign: int) -> None:
    ann = annotate(scene(ObjectSpec("square", "red", "medium", (action,))))
    values = np.array(ann["objects"][0]["track"][key])
    if key == "radius":
        assert (values[-1] / values[0]) ** sign > 1.4
    else:
        assert sign * (values[-1] - values[0]) > 10
    span = ann["actions"][0]
    before, after = values[:span["start_frame"]], values[span["end_frame"] - 1:]
    assert len(set(before)) <= 1 and len(set(after)) == 1  # still before and after the action
    if action == "fall":  # accelerating
        steps = np.diff(values[span["start_frame"]:span["end_frame"]])
        assert steps[-1] > 2 * steps[0]


def test_visibility_actions() -> None:
    appear = _track(scene(ObjectSpec("square", "red", "medium", ("appear",))))
    assert appear["alpha"][0] == 0 and appear["alpha"][-1] == 1
    disappear = _track(scene(ObjectSpec("square", "red", "medium", ("disappear",))))
    assert disappear["alpha"][0] == 1 and disappear["alpha"][-1] == 0
    blink = _track(scene(ObjectSpec("square", "red", "medium", ("blink",))))
    assert blink["alpha"].count(0.0) >= 4 and blink["alpha"].count(1.0) >= 4
    still = _track(scene(ObjectSpec("square", "red", "medium", ("still",))))
    assert len(set(still["x"])) == len(set(still["y"])) == 1
    spin = _track(scene(ObjectSpec("square", "red", "medium", ("spin",))))
    assert abs(spin["angle"][-1]) > 3
    bounce = _track(scene(ObjectSpec("square", "red", "medium", ("bounce",))))
    y = np.array(bounce["y"])
    assert y.max() - y.min() > 10 and abs(y[-1] - y.max()) < 1  # lands where it started


def test_colour_change() -> None:
    ann = annotate(scene(ObjectSpec("square", "red", "medium", ("change_colour",), "blue")),
                   colour_jitter=0)
    obj = ann["objects"][0]
    assert obj["track"]["rgb"][0] == list(vocab.COLOURS["red"])
    assert obj["track"]["rgb"][-1] == list(vocab.COLOURS["blue"])
    assert obj["rgb_to"] == list(vocab.COLOURS["blue"])


def test_two_actions_chain_and_split_the_clip() -> None:
    ann = annotate(scene(ObjectSpec("square", "red", "medium", ("move_right", "fall"))))
    first, second = ann["actions"]
    k = first["end_frame"]
    assert first["start_frame"] == 0 and second["start_frame"] == k and second["end_frame"] == 24
    assert 4 <= k <= 20
    x, y = np.array(ann["objects"][0]["track"]["x"]), np.array(ann["objects"][0]["track"]["y"])
    assert x[k - 1] - x[0] > 10 and abs(x[-1] - x[k - 1]) < 1e-6  # moves only in its span
    assert abs(y[k - 1] - y[0]) < 1e-6 and y[-1] - y[k] > 10       # falls only in its span


@pytest.mark.parametrize("kind", vocab.INTERACTIONS)
@pytest.mark.parametrize("seed", range(4))
def test_interactions(kind: str, seed: int) -> None:
    spec = scene(ObjectSpec("circle", "red", "large"), ObjectSpec("square", "blue", "large"),
                 interaction=kind)
    ann = annotate(spec, seed=seed, width=96, height=96, duration_s=2.0)
    a, b = (np.array([o["track"][k] for k in ("x", "y")]) for o in ann["objects"])
    dist = np.hypot(*(a - b))
    ra, rb = (o["radius_px"] for o in ann["objects"])
    for o in ann["objects"]:  # stays in the frame
        x, y, r = (np.array(o["track"][k]) for k in ("x", "y", "radius"))
        assert (x - r >= -1).all() and (x + r <= 97).all() and (y - r >= -1).all() and (y + r <= 97).all()
    assert np.hypot(*np.diff(a, axis=1)).sum() > 15  # the subject moves
    if kind == "collide":
        assert dist.min() < 0.9 * (ra + rb) and dist[0] > 1.2 * dist.min()
    elif kind == "chase":
        assert dist.min() > 0.9 * (ra + rb)  # follows without catching
    else:
        rel = a - b  # the sign of the offset along the motion flips: they pass
        axis = int(np.argmax(np.abs(rel[:, 0] - rel[:, -1])))
        assert np.sign(rel[axis, 0]) != np.sign(rel[axis, -1])
    assert ann["actions"][0]["action"] == kind and ann["actions"][0]["object"] == 1


# ------------------------------------------------------------------------------------ captions
def test_captions_follow_the_grammar() -> None:
    cfg = SynthConfig()
    two = annotate(scene(ObjectSpec("circle", "red", "small", ("bounce", "spin"))))
    caps = make_captions(two, cfg, np.random.default_rng(0))
    assert len(caps) == 10 and len(set(caps)) == 10
    assert any(" then " in c for c in caps)
    chase = annotate(scene(ObjectSpec("circle", "red", "medium"), ObjectSpec("star", "green", "medium"),
                           interaction="chase"))
    caps = make_captions(chase, cfg, np.random.default_rng(0))
    assert all(any(n in c.split() for n in ("star", "shape", "object", "shapes", "objects", "thing"))
               for c in caps)
    # Less detail: no colour words at all (objects have different shapes).
    bare = cfg.replace(p_mention_colour=0.0, p_generic_noun=0.0, p_mention_background=0.0)
    for c in make_captions(chase, bare, np.random.default_rng(1)):
        assert not set(c.split()) & set(vocab.COLOURS), c
    # Same shapes named together are told apart by colour.
    twins = annotate(scene(ObjectSpec("circle", "red", "medium"), ObjectSpec("circle", "blue", "medium"),
                           interaction="pass"))
    for c in make_captions(twins, bare, np.random.default_rng(2)):
        assert "red" in c.split() and "blue" in c.split(), c
    # Fewer sentences than asked: captions repeat rather than fail.
    tiny = cfg.replace(captions_per_video=100)
    assert len(make_captions(two, tiny, np.random.default_rng(0))) == 100


def test_progressive_bias_shifts_captions_to_the_progressive() -> None:
    def progressive_share(bias: float) -> float:
        cfg = SynthConfig(progressive_bias=bias)
        caps = []
        for seed in range(20):
            for actions in (("bounce",), ("spin", "grow")):
                ann = annotate(scene(ObjectSpec("circle", "red", "small", actions)), seed=seed)
                caps += make_captions(ann, cfg, np.random.default_rng(seed))
        # Progressive frames put a gerund right after "is", "of" or "see X"; the simple present
        # has none ("bounces", "spins and then grows").
        return sum(bool(re.search(r"\b\w+ing\b", c)) for c in caps) / len(caps)

    assert SynthConfig().progressive_bias == 1.0
    low, high = progressive_share(1.0), progressive_share(5.0)
    assert 0.2 < low < 0.6 and high > low + 0.25, (low, high)


def test_true_words_example() -> None:
    ann = annotate(scene(ObjectSpec("circle", "red", "small", ("bounce",)),
                         ObjectSpec("square", "blue", "medium", ("spin",))))
    words = true_words(ann)
    assert {"bounce", "hop", "jump", "spin", "rotate", "twirl"} <= words.verbs
    assert "spin" not in words.main_verbs and "bounce" in words.main_verbs
    assert {"circle", "ball", "disc", "dot", "square", "box", "block"} == words.shape_nouns
    assert words.colours == {"red", "blue"} and words.actions == {"bounce", "spin"}


def test_verb_spans() -> None:
    ann = annotate(scene(ObjectSpec("circle", "red", "small", ("bounce", "grow")),
                         ObjectSpec("square", "blue", "medium", ("spin",))))
    a, k, b = ann["actions"][0]["start_frame"], ann["actions"][0]["end_frame"], ann["actions"][1]["end_frame"]
    spans = verb_spans(ann)
    assert spans["hop"] == [(a, k)] and spans["expand"] == [(k, b)] and spans["twirl"] == [(0, 24)]
    main = verb_spans(ann, main_only=True)
    assert "twirl" not in main and main["bounce"] == [(a, k)]


# ------------------------------------------------------------------------------------ config
def test_presets_and_overrides() -> None:
    assert set(PRESETS) >= {"default", "quick"}
    d, q = SynthConfig.preset("default"), SynthConfig.preset("quick")
    assert d.num_frames == 24 and d.width == 128 and q.num_frames == 16 and q.width == 96
    assert sum(d.split_sizes().values()) == d.num_videos
    assert d.split_sizes() == {"trn": 1120, "val": 160, "tst": 240, "tst_novel": 80}
    cfg = d.with_strings({"group_size": "1", "antialias": "no", "fps": "10",
                          "background_kinds": "plain,stripes"})
    assert (cfg.group_size, cfg.antialias, cfg.fps, cfg.background_kinds) == \
        (1, False, 10.0, ("plain", "stripes"))
    assert SynthConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.fingerprint(0) != d.fingerprint(0) and d.fingerprint(0) != d.fingerprint(1)
    assert d.fingerprint(0) == SynthConfig().fingerprint(0)


@pytest.mark.parametrize("bad", [
    {"width": 97}, {"height": 16}, {"fps": 0}, {"duration_s": 0.5}, {"num_videos": 2},
    {"p_two_actions": 1.5}, {"num_colours": 1}, {"num_shapes": 99}, {"background_kinds": ("wood",)},
    {"val_fraction": 0.5, "test_fraction": 0.5}, {"novel_pairs": 0}, {"group_size": 0},
    {"p_two_objects": 0.8, "p_three_objects": 0.5}, {"crf": 60}, {"num_videos": 10.5},
    {"progressive_bias": 0}, {"progressive_bias": "lots"},
])
def test_bad_config(bad: dict) -> None:
    with pytest.raises(HanetError):
        SynthConfig().replace(**bad)


def test_bad_config_strings() -> None:
    with pytest.raises(HanetError, match="unknown"):
        SynthConfig().with_strings({"colour_count": "3"})
    with pytest.raises(HanetError, match="cannot read"):
        SynthConfig().with_strings({"num_videos": "many"})
    with pytest.raises(HanetError, match="preset"):
        SynthConfig.preset("huge")


# ------------------------------------------------------------------------------------ CLI
def test_cli(tmp_path: Path, capsys) -> None:
    from hanet.cli import main

    out = tmp_path / "w"
    assert main(["synth", "--out", str(out), "--quick", "--videos", "8", "--seed", "2",
                 "--no-progress", "--set", "noise_std=1"]) == 0
    assert "8 clips" in capsys.readouterr().out
    assert len(list((out / "videos").glob("*.mp4"))) == 8
    assert main(["synth", "--out", str(out), "--quick", "--videos", "8", "--seed", "2",
                 "--no-progress", "--set", "noise_std=1"]) == 0
    assert "already holds" in capsys.readouterr().out
    assert main(["synth", "--quick", "--list-knobs"]) == 0
    assert "group_size = 4" in capsys.readouterr().out
    for argv, message in [
        (["synth", "--out", str(out), "--set", "bogus=1"], "unknown synth config field"),
        (["synth", "--out", str(out), "--set", "novalue"], "KNOB=VALUE"),
        (["synth", "--out", str(out), "--size", "99"], "even"),
        (["synth", "--videos", "8"], "--out"),
        (["synth", "--out", str(out), "--workers", "0"], "--workers"),
    ]:
        try:
            code = main(argv)
        except SystemExit as e:  # refused by the option's own type, before any work
            code = e.code
        assert code == 2
        assert message in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["synth", "--out", str(tmp_path / "file"), "--quick", "--videos", "8"]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_what_a_caption_is_judged_on_comes_from_its_words() -> None:
    from hanet.world_moments import _forms, judge

    grow, disappear = (_forms(frozenset(vocab.action_verbs(a))) for a in ("grow", "disappear"))
    forms = [grow, disappear]
    # one verb phrase per action named: a sequence, in the phrases' order
    assert judge("a rhombus grows and then disappears".split(), [["grows"], ["disappears"]], forms) == \
        ("sequence", [0, 1])
    # the same caption parsed with one verb missed ("grows" read as a noun) names both actions:
    # not a caption naming the second one alone
    assert judge("a rhombus grows and then disappears".split(), [["disappears"]], forms) == ("unparsed", [])
    assert judge("a purple rhombus fades away".split(), [["fades", "away"]], forms) == ("one action", [1])
    assert judge("a rhombus is getting bigger".split(), [["getting", "bigger"]], forms)[0] == "one action"
    # a verb phrase naming neither action (another object's) or none at all: not judged
    assert judge("a rhombus grows as a star spins".split(), [["grows"], ["spins"]], forms) == (None, [])
    assert judge("a purple rhombus".split(), [], forms) == (None, [])
