"""The synthetic world end to end: files on disk, decoded videos against annotations, captions,
splits, determinism and the idempotent/regenerate rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from hanet.data.synth import (SPLITS, SynthConfig, action_spans, generate, load_annotations,
                              load_world, oracle_recall, true_words, world_status)
from hanet.data.synth import vocab
from hanet.data.synth.writer import read_mp4
from hanet.errors import DataError

SEED = 7
CAPTION_RE = re.compile(r"[a-z]+( [a-z]+)*")


def small_config(**overrides) -> SynthConfig:
    return SynthConfig.preset("quick", num_videos=32, **overrides)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "world"
    report = generate(out, small_config(), seed=SEED, progress=False, workers=1)
    assert not report.skipped
    return out


def test_files_and_split_format(world: Path) -> None:
    cfg = small_config()
    sizes = cfg.split_sizes()
    names_per_split = {}
    for split in SPLITS:
        arr = np.load(world / f"{split}_names.npy")
        assert arr.dtype.kind == "U"  # released format: numpy array of str
        names_per_split[split] = list(arr)
        assert len(arr) == sizes[split]
    all_names = [n for names in names_per_split.values() for n in names]
    assert len(all_names) == len(set(all_names)) == cfg.num_videos
    assert set(all_names) == {f"video{i}" for i in range(cfg.num_videos)}
    for name in all_names:
        assert (world / "videos" / f"{name}.mp4").stat().st_size > 0
    anns = load_annotations(world)
    assert set(anns) == set(all_names)
    for split, names in names_per_split.items():
        assert all(anns[n]["split"] == split for n in names)
    meta = load_world(world)
    assert meta["splits"] == names_per_split
    assert meta["config"] == cfg.to_dict() and meta["seed"] == SEED


def test_captions_are_msrvtt_style(world: Path) -> None:
    caps = json.loads((world / "ref_captions.json").read_text())
    anns = load_annotations(world)
    assert set(caps) == set(anns)
    for name, captions in caps.items():
        assert len(captions) == 10
        assert len(set(captions)) == 10
        for c in captions:
            assert CAPTION_RE.fullmatch(c), c
            assert c.split(" ") == c.split()


def _inflections(phrases) -> set[str]:
    out = set()
    for p in phrases:
        head = p.split(" {")[0]  # the words before an object slot
        out |= {vocab.third_person(head), vocab.gerund(head), head}
    return {o for o in out if o}


def test_captions_are_true(world: Path) -> None:
    """Each caption names one of the main object's actions (or its interaction) and only
    colours and shape nouns that the clip shows."""
    caps = json.loads((world / "ref_captions.json").read_text())
    all_colours = set(vocab.COLOURS) | set(vocab.BACKGROUND_COLOURS)
    all_nouns = {n for v in vocab.SHAPE_NOUNS.values() for n in v}
    for name, ann in load_annotations(world).items():
        main = ann["objects"][0]
        if ann["interaction"]:
            kind = ann["interaction"]
            forms = _inflections(vocab.INTERACTION_TRANSITIVE[kind])
            forms |= _inflections(vocab.INTERACTION_SYMMETRIC[kind])
            forms |= _inflections([p for p, _ in vocab.INTERACTION_PASSIVE[kind]])
        else:
            phrases = [p for a in main["actions"] for p in vocab.VERB_PHRASES[a]]
            forms = _inflections(phrases)
        words = true_words(ann)
        colours = set(words.colours) | {ann["background"]["colour"]}
        for c in caps[name]:
            padded = f" {c} "
            assert any(f" {f} " in padded for f in forms), (c, ann["actions"])
            tokens = set(c.split())
            assert tokens & all_colours <= colours, c
            assert tokens & all_nouns <= set(words.shape_nouns), c


def test_videos_decode_and_objects_are_where_annotated(world: Path) -> None:
    anns = load_annotations(world)
    checked = 0
    for name, ann in anns.items():
        frames = read_mp4(world / "videos" / f"{name}.mp4")
        assert frames.shape == (ann["num_frames"], ann["height"], ann["width"], 3)
        main = ann["objects"][0]
        tr = main["track"]
        for f in range(ann["num_frames"]):
            if tr["alpha"][f] < 1 or tr["radius"][f] < 4:
                continue
            x, y = int(np.floor(tr["x"][f])), int(np.floor(tr["y"][f]))
            got = frames[f, y, x].astype(int)
            # The main object is drawn last, so its centre pixel shows its colour.
            assert np.abs(got - np.array(tr["rgb"][f])).max() <= 30, (name, f, got, tr["rgb"][f])
            checked += 1
        if len(ann["objects"]) == 1 and tr["alpha"][0] == 1 and main["radius_px"] >= 6:
            rgb = np.array(tr["rgb"][0])
            dist = np.abs(frames[0].astype(int) - rgb).max(axis=-1)
            ys, xs = np.nonzero(dist < 40)
            assert len(xs) > 10
            r = tr["radius"][0]
            assert abs(xs.mean() + 0.5 - tr["x"][0]) < 0.25 * r + 1.5, name
            assert abs(ys.mean() + 0.5 - tr["y"][0]) < 0.25 * r + 1.5, name
            # Nothing of the object's colour outside its bounding circle.
            assert np.hypot(xs + 0.5 - tr["x"][0], ys + 0.5 - tr["y"][0]).max() < r + 2
    assert checked > 100


def test_annotation_spans_and_tracks(world: Path) -> None:
    for ann in load_annotations(world).values():
        F, fps = ann["num_frames"], ann["fps"]
        assert ann["duration_s"] == pytest.approx(F / fps)
        for obj in ann["objects"]:
            assert all(len(v) == F for v in obj["track"].values())
            spans = [s for s in action_spans(ann) if s.subject == obj["id"]]
            assert spans or any(s.object == obj["id"] for s in action_spans(ann)), \
                "every object does something or takes part in an interaction"
            if obj["actions"]:  # solo actions follow each other in order
                assert [s.action for s in spans] == obj["actions"]
                assert 0 <= spans[0].start_frame and spans[-1].end_frame <= F
                main = obj["role"] == "main"  # only its actions leave still stretches around them
                if not main or obj["actions"][0] == "still":
                    assert spans[0].start_frame == 0
                if not main or obj["actions"][-1] == "still":
                    assert spans[-1].end_frame == F
                for a, b in zip(spans, spans[1:]):
                    assert a.end_frame == b.start_frame
                assert all(s.end_frame - s.start_frame >= 4 for s in spans)
            for s in spans:
                assert s.start_s == pytest.approx(s.start_frame / fps)
                assert s.end_s == pytest.approx(s.end_frame / fps)
                assert s.verbs == vocab.action_verbs(s.action)
        if ann["interaction"]:
            inter = [s for s in action_spans(ann) if s.object is not None]
            assert len(inter) == 1 and (inter[0].subject, inter[0].object) == (0, 1)
        assert ann["two_actions"] == (len(ann["objects"][0]["actions"]) == 2)


def test_true_words(world: Path) -> None:
    for ann in load_annotations(world).values():
        words = true_words(ann)
        for a in ann["actions"]:
            assert set(a["verbs"]) <= words.verbs
        for o in ann["objects"]:
            assert o["shape"] in words.shapes
            assert vocab.SHAPE_NOUNS[o["shape"]][0] in words.nouns
            assert o["colour"] in words.colours
        assert words.main_verbs <= words.verbs
        assert "background" in words.nouns and "background" not in words.shape_nouns


def test_novel_split_is_novel(world: Path) -> None:
    meta = load_world(world)
    held = {tuple(p) for p in meta["held_out"]}
    assert held and {k for k, _, _ in held} == {"colour", "shape"}
    anns = meta["videos"]

    def pairs(ann, objects):
        return {(kind, o[kind], a) for o in objects for a in o["actions"]
                for kind in ("colour", "shape")}

    for split in ("trn", "val", "tst"):
        for name in meta["splits"][split]:
            assert not pairs(anns[name], anns[name]["objects"]) & held, name
    assert meta["splits"]["tst_novel"]
    for name in meta["splits"]["tst_novel"]:
        shown = pairs(anns[name], anns[name]["objects"][:1]) & held
        assert shown and {tuple(p) for p in anns[name]["novel_pairs"]} == shown


def test_held_out_parts_are_seen_in_training() -> None:
    """In the default world every held-out colour, shape and action is seen in training, only
    never together."""
    from hanet.data.synth.world import object_pairs, plan_world

    plan = plan_world(SynthConfig(), seed=0)
    assert len(plan.held_out) == SynthConfig().novel_pairs
    trn = [v.spec for v in plan.videos if v.split == "trn"]
    seen_values = {(k, getattr(o, k)) for s in trn for o in s.objects for k in ("colour", "shape")}
    seen_actions = {a for s in trn for o in s.objects for a in o.actions}
    for kind, value, action in plan.held_out:
        assert (kind, value) in seen_values and action in seen_actions
    assert all(not object_pairs(o) & set(plan.held_out) for s in trn for o in s.objects)


def test_oracle_difficulty(world: Path) -> None:
    """Every caption is true of its clip by the oracle's reading too, and words beyond colours
    and shapes are needed to find the clip."""
    for split in SPLITS:
        r = oracle_recall(world, split)
        assert r["untrue"] == 0 and r["clips"] == len(load_world(world)["splits"][split])
        assert 1 / r["clips"] <= r["appearance"] <= r["words"] <= 1
    r = oracle_recall(world, "tst")
    assert r["appearance"] < 0.8


def _caption_columns(world: Path, names: list[str]):
    """Unique captions of ``names`` in column order and the (row, column) ground-truth pairs."""
    caps = json.loads((world / "ref_captions.json").read_text())
    columns: dict[str, int] = {}
    gv, gc = [], []
    for row, name in enumerate(names):
        for c in caps[name]:
            gv.append(row)
            gc.append(columns.setdefault(c, len(columns)))
    return list(columns), np.array(gv), np.array(gc)


def test_t2v_breakdown(world: Path) -> None:
    """R@1 by kind of caption and the kind of each wrong first answer, on answers we choose."""
    from hanet.data.synth.analysis import CAPTION_KINDS, ERROR_KINDS, caption_kind, t2v_breakdown

    anns = load_annotations(world)
    names = sorted(anns)
    captions, gv, gc = _caption_columns(world, names)
    first = np.full(len(captions), -1)
    for v, c in zip(gv[::-1], gc[::-1]):  # the first clip each caption was written for
        first[c] = v
    perfect = t2v_breakdown(world, names, captions, first, gv, gc)
    assert perfect["r1"] == 100 and perfect["queries"] == len(captions)
    assert sum(k["queries"] for k in perfect["kinds"].values()) == len(captions)
    assert all(k["r1"] == 100 for k in perfect["kinds"].values() if k["queries"])
    assert all(v == 0 for v in perfect["errors"].values())
    kinds = [caption_kind(anns[names[first[c]]], cap) for c, cap in enumerate(captions)]
    assert set(kinds) <= set(CAPTION_KINDS) and {"one_action", "sequence"} <= set(kinds)
    for c, cap in enumerate(captions):
        if kinds[c] == "sequence":
            assert anns[names[first[c]]]["two_actions"] and ("then" in cap.split() or "before" in cap.split())

    # Answer every caption with another clip of its group where there is one, else with a clip of
    # another group; every mistake is then classified by how the answer differs from the truth.
    group = np.array([anns[n]["group"] for n in names])
    wrong = np.empty_like(first)
    expected = []
    for c in range(len(captions)):
        t = first[c]
        truths = set(gv[gc == c].tolist())
        mates = [v for v in np.flatnonzero(group == group[t]) if v not in truths]
        others = [v for v in np.flatnonzero(group != group[t]) if v not in truths]
        wrong[c] = mates[0] if mates else others[0]
        a, b = anns[names[t]], anns[names[wrong[c]]]
        ma, mb = a["objects"][0], b["objects"][0]
        if a["group"] != b["group"]:
            expected.append("other_group")
        elif (ma["shape"], ma["colour"], ma["size"]) != (mb["shape"], mb["colour"], mb["size"]):
            expected.append("look_alike_appearance")
        elif (a["interaction"], ma["actions"]) != (b["interaction"], mb["actions"]):
            expected.append("look_alike_action")
        else:
            expected.append("look_alike_companion")
    res = t2v_breakdown(world, names, captions, wrong, gv, gc)
    assert res["r1"] == 0
    for kind in ERROR_KINDS:
        assert res["errors"][kind] == pytest.approx(100 * expected.count(kind) / len(captions))
    assert res["errors"]["look_alike_action"] > 0  # groups differ mostly in what happens

    with pytest.raises(DataError, match="not in this world"):
        t2v_breakdown(world, names[:-1] + ["video9999"], captions, first, gv, gc)
    with pytest.raises(DataError, match="one row per caption"):
        t2v_breakdown(world, names, captions, first[:-1], gv, gc)


def test_test_videos_share_attributes(tmp_path: Path) -> None:
    """Look-alike groups: most test clips share the main object's looks with another test clip,
    differing in what happens."""
    from hanet.data.synth.world import plan_world

    plan = plan_world(SynthConfig(), seed=1)
    tst = [v for v in plan.videos if v.split == "tst"]
    looks = [(v.spec.objects[0].colour, v.spec.objects[0].shape) for v in tst]
    shared = sum(looks.count(look) > 1 for look in looks)
    assert shared / len(tst) > 0.6
    # ... and yet no two clips are the same scene.
    assert len({v.spec for v in tst}) == len(tst)
    groups: dict[int, list] = {}
    for v in tst:
        groups.setdefault(v.group, []).append(v.spec)
    assert max(len(g) for g in groups.values()) == SynthConfig().group_size
    for specs in groups.values():
        assert len({s.background for s in specs}) == 1
    plan1 = plan_world(SynthConfig(num_videos=40, group_size=1), seed=1)
    assert len({v.group for v in plan1.videos}) == 40


def test_deterministic_and_independent_of_workers(tmp_path: Path) -> None:
    cfg = SynthConfig.preset("quick", num_videos=12)
    a = generate(tmp_path / "a", cfg, seed=3, progress=False, workers=1)
    b = generate(tmp_path / "b", cfg, seed=3, progress=False, workers=2)
    assert (a.workers, b.workers) == (1, 2)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 12 + 7
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    generate(tmp_path / "c", cfg, seed=4, progress=False, workers=1)
    assert (tmp_path / "a" / "ref_captions.json").read_bytes() != \
        (tmp_path / "c" / "ref_captions.json").read_bytes()


def test_reuse_and_regenerate(tmp_path: Path) -> None:
    cfg = SynthConfig.preset("quick", num_videos=8)
    out = tmp_path / "w"
    out.mkdir()
    (out / "notes.txt").write_text("not ours")
    first = generate(out, cfg, seed=0, progress=False)
    assert not first.skipped and world_status(out, cfg, 0) == (True, "complete")
    assert generate(out, cfg, seed=0, progress=False).skipped

    # Another config or seed: not this world.
    assert not world_status(out, cfg.replace(noise_std=0.0), 0)[0]
    assert not world_status(out, cfg, 1)[0]

    # A lost video: detected, regenerated.
    (out / "videos" / "video3.mp4").unlink()
    assert world_status(out, cfg, 0)[0] is False
    again = generate(out, cfg, seed=0, progress=False)
    assert not again.skipped and (out / "videos" / "video3.mp4").is_file()

    # An older version: regenerated.
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["version"] = 0
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert "version" in world_status(out, cfg, 0)[1]
    assert not generate(out, cfg, seed=0, progress=False).skipped

    # Made by other generator code: regenerated.
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["code"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert "code" in world_status(out, cfg, 0)[1]
    assert not generate(out, cfg, seed=0, progress=False).skipped

    # Half-finished (killed before the manifest): regenerated, and stale clips removed.
    (out / "manifest.json").unlink()
    (out / "videos" / "video99.mp4").write_bytes(b"stale")
    (out / "videos" / "video5.mp4.tmp").write_bytes(b"half")
    (out / "annotations.json.tmp").write_bytes(b"half")
    assert not generate(out, cfg, seed=0, progress=False).skipped
    assert not (out / "videos" / "video99.mp4").exists()
    assert not (out / "videos" / "video5.mp4.tmp").exists()
    assert not (out / "annotations.json.tmp").exists()
    assert (out / "notes.txt").read_text() == "not ours"
    assert world_status(out, cfg, 0)[0]

    # force=True always regenerates.
    assert not generate(out, cfg, seed=0, progress=False, force=True).skipped


def test_load_annotations_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_annotations(tmp_path)
    (tmp_path / "annotations.json").write_text("{not json")
    with pytest.raises(DataError, match="JSON"):
        load_annotations(tmp_path)
    (tmp_path / "annotations.json").write_text(json.dumps({"version": -1, "videos": {}}))
    with pytest.raises(DataError, match="version"):
        load_annotations(tmp_path)
