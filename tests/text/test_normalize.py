from __future__ import annotations

import pytest

from hanet.text.normalize import normalize_caption, split_words


@pytest.mark.parametrize("raw, expected", [
    ("A man plays the guitar.", "a man plays the guitar"),
    ("a man is playing a guitar on stage", "a man is playing a guitar on stage"),
    ("  Two   dogs,\tplaying!\n", "two dogs playing"),
    ("a man\u2019s T-Shirt \u2014 \u201ccool\u201d", "a man's t-shirt cool"),
    ("it costs 3.5 dollars (approx.)", "it costs 3.5 dollars approx"),
    ("Caf\u00e9 au lait\u200b", "caf\u00e9 au lait"),
    ("\uff21 \uff2d\uff21\uff2e", "a man"),  # full-width letters (NFKC)
    ("\u4e00\u4e2a \u7537\u4eba", "\u4e00\u4e2a \u7537\u4eba"),
    ("...", ""),
    ("", ""),
    ("   ", ""),
    ("snake_case words", "snake case words"),
])
def test_normalize_examples(raw: str, expected: str) -> None:
    assert normalize_caption(raw) == expected


def test_normalize_is_idempotent_and_keeps_msrvtt_captions() -> None:
    msrvtt = ["a man is talking about a woman's dress", "a group of people are dancing",
              "a cartoon of a t-rex running", "someone is cooking 2 eggs"]
    for caption in msrvtt:
        assert normalize_caption(caption) == caption
    for raw in ["Hello,World!!", "A-B--C", "x'' y", "rock'n'roll", "'quoted'"]:
        once = normalize_caption(raw)
        assert normalize_caption(once) == once
        assert "  " not in once and once == once.strip()


def test_normalize_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        normalize_caption(None)  # type: ignore[arg-type]


def test_split_words_matches_the_readers_split() -> None:
    assert split_words("a  man\tsings ") == ["a", "man", "sings"]
    assert split_words("") == []
