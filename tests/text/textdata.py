"""Test data shared by the text tests: a small caption file with odd captions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

# A small MSR-VTT-like caption file with every kind of odd caption the issue lists.
CAPTIONS: dict[str, list[str]] = {
    "video0": ["a man is playing a guitar on stage", "A man plays the guitar.",
               "a man is singing and playing guitar"],
    "video1": ["a woman is cooking pasta in a kitchen", "a woman cooks food",
               "someone is cooking in the kitchen"],
    "video2": ["", "...", "!!! ???"],  # empty / punctuation only
    "video3": ["1 2 3", "a cat on a couch", "a cat is sleeping on a couch"],
    "video4": ["un homme joue de la guitare", "a café in paris", "a man\u2019s dog is running"],
    "video5": [" ".join(["a man is running and a dog is chasing him"] * 6),  # 66 words
               "two men are talking to each other", "a man is playing a guitar on stage"],
    "video6": ["a girl is riding a horse", "a girl rides a horse in a field",
               "a horse is running"],
}
TRAIN = ["video0", "video1", "video2", "video3", "video4"]


def write_dataset(root: Path, captions: dict[str, Any], train: list[str]) -> tuple[Path, Path]:
    """Write ref_captions.json and trn_names.npy under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    cap_file, names_file = root / "ref_captions.json", root / "trn_names.npy"
    cap_file.write_text(json.dumps(captions), encoding="utf-8")
    np.save(names_file, np.array(train, dtype=str))
    return cap_file, names_file
