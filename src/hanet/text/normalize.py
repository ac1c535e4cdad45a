"""Canonical caption form shared by data preparation and query time.

MSR-VTT captions, as released, are lowercase words separated by single spaces with no
sentence punctuation ("a man is playing a guitar on stage"). HANet reads a caption by
``caption.split()`` and looks each word up in ``word2int.json``, so every caption that is
prepared, and every query a user types, must be put into that same form first, or the words
of "A man plays guitar." ("A", "guitar.") would miss the vocabulary.

:func:`normalize_caption` is idempotent, and on a caption that is already in the MSR-VTT form
it returns the caption unchanged, so the keys of an official ``ref_captions.json`` survive it.

Public API:
    normalize_caption(text: str) -> str
    split_words(caption: str) -> list[str]
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_caption", "split_words"]

# Typographic variants that NFKC leaves alone but that people type (or paste) in captions.
_ASCII_FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'",
    "\u00b4": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
})

# A word is a run of letters/digits, optionally joined by single inner apostrophes, hyphens or
# dots ("man's", "t-shirt", "3.5"). Everything else (sentence punctuation, brackets, symbols)
# separates words and is dropped, which is what the released MSR-VTT captions look like.
_WORD = re.compile(r"[^\W_]+(?:['\-.][^\W_]+)*")


def normalize_caption(text: str) -> str:
    """Put a caption or a search query into the canonical MSR-VTT form.

    Unicode is NFKC-normalised and lowercased, typographic quotes and dashes become ASCII,
    invisible format characters (zero-width spaces, byte-order marks) are removed, and the text
    is reduced to its words joined by single spaces. Letters outside ASCII are kept
    ("café" stays "café"). A text with no letters or digits normalises to ``""``.

    Args:
        text: a caption or query in any casing and punctuation.

    Returns:
        The canonical caption: lowercase words separated by single spaces, no leading or
        trailing space. ``normalize_caption(normalize_caption(t)) == normalize_caption(t)``.
    """
    if not isinstance(text, str):
        raise TypeError(f"caption must be a str, not {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).translate(_ASCII_FOLD)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(_WORD.findall(text.lower()))


def split_words(caption: str) -> list[str]:
    """Split a caption into the words that role-graph spans and ``word2int`` index.

    This is exactly the official reader's ``caption.split()`` (any run of whitespace), so span
    indices computed here line up with the word ids the model sees, normalised or not.

    Args:
        caption: a caption as stored in ``ref_captions.json``.

    Returns:
        The caption's words.
    """
    return caption.split()
