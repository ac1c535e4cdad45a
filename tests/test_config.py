"""Configs: presets, round trips, the authors' format, overrides, validation."""

from __future__ import annotations

import json
import subprocess

import pytest

from hanet.config import (OFFICIAL_FIXED, HANetConfig, apply_overrides, get_preset, is_official_config,
                          load_config_file, to_official)
from hanet.errors import HanetError


@pytest.mark.parametrize("name", ["msrvtt", "vatex", "synth"])
def test_presets_round_trip_and_validate(name):
    cfg = get_preset(name)
    again = HANetConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg
    cfg.model.text.num_words = max(cfg.model.text.num_words, 100)
    cfg.validate()
    assert get_preset(name) is not get_preset(name)  # fresh copies


def test_presets_hold_the_authors_values():
    """msrvtt and vatex equal the authors' data/*/model.json (read from their repository's values)."""
    official = {
        "msrvtt": {"dim_fts": (2048,), "num_words": 10510, "max_frames_in_video": 20},
        "vatex": {"dim_fts": (1024,), "num_words": 10424, "max_frames_in_video": 30},
    }
    for name, want in official.items():
        cfg = get_preset(name)
        assert cfg.model.video.dim_fts == want["dim_fts"] and cfg.model.text.num_words == want["num_words"]
        assert cfg.model.max_frames_in_video == want["max_frames_in_video"]
        assert (cfg.model.video.dim_embed, cfg.train.batch_size, cfg.train.lr, cfg.train.epochs) == (1024, 64, 1e-4, 50)
        assert cfg.model.margin == 0.2 and cfg.model.max_violation
        to_official(cfg)  # exportable: every fixed value is the authors'


def test_official_format_round_trip(reference_dir):
    official = json.loads((reference_dir / "model_config.json").read_text())
    cfg = HANetConfig.from_official(official)
    assert is_official_config(official) and not is_official_config(cfg.to_dict())
    back = HANetConfig.from_official(to_official(cfg))
    assert back.model == cfg.model and back.train == cfg.train
    assert set(OFFICIAL_FIXED) >= {"num_verb_concepts", "num_selected_verbs", "video.verb_kernel"}


def test_load_config_file_detects_the_format(tmp_path, reference_dir):
    ours = tmp_path / "ours.json"
    ours.write_text(get_preset("synth").to_json())
    assert load_config_file(ours) == get_preset("synth")
    assert load_config_file(reference_dir / "model_config.json").model.video.dim_embed == 32
    for text, words in (("not json", "not a readable JSON config"), ('{"model": {"videoo": {}}}', "videoo"),
                        ('{"model": {"video": {"dim_embed": 0}}}', "dim_embed"), ('{"train": []}', "must be a mapping")):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(HanetError, match=words):
            load_config_file(tmp_path / "bad.json").validate()
    with pytest.raises(HanetError, match="not found"):
        load_config_file(tmp_path / "none.json")


def test_overrides_are_typed_and_checked():
    cfg = get_preset("msrvtt")
    apply_overrides(cfg, ["model.video.dropout=0.1", "train.decay_boundaries=10,15", "model.max_violation=false",
                          "train.epochs=3"])
    assert cfg.model.video.dropout == 0.1 and cfg.train.decay_boundaries == (10, 15)
    assert cfg.model.max_violation is False and cfg.train.epochs == 3
    for bad, words in (("model.video.nope=1", "unknown field"), ("train.epochs=x", "cannot read 'x' as int"),
                       ("epochs", "KEY=VALUE"), ("nosection.x=1", "no config section")):
        with pytest.raises(HanetError, match=words):
            apply_overrides(get_preset("msrvtt"), [bad])


def test_schedule_validation():
    for field, value, words in (("batch_size", 0, "batch_size = 0"), ("lr", float("inf"), "lr = inf"),
                                ("epochs", -1, "epochs = -1"), ("precision", "fp8", "precision"),
                                ("decay_rate", 0.0, "decay_rate")):
        cfg = get_preset("msrvtt")
        setattr(cfg.train, field, value)
        with pytest.raises(HanetError, match=words):
            cfg.validate()


def test_lr_schedule_is_the_official_multistep():
    t = get_preset("msrvtt").train
    t.decay_boundaries, t.decay_rate = (2, 4), 0.5
    assert [t.lr_at(e) for e in range(6)] == [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2.5e-5]


def test_docs_name_every_preset():
    out = subprocess.run(["grep", "-l", "vatex", "README.md", "docs/model.md"], capture_output=True, text=True)
    assert "README.md" in out.stdout
