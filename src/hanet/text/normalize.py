"""Canonical caption form shared by data preparation and query time.

MSR-VTT captions, as released, are lowercase words separated by single spaces with no
sentence punctuation ("a man is playing a guitar on stage"). HANet reads a caption by
``caption.split()`` and looks each word up in ``word2int.json``, so every caption that is
prepared, and every query a user types, must be put into that same form first, or the words
of "A man plays guitar." ("A", "guitar.") would miss the vocabulary.

:func:`normalize_caption` is idempotent, and on a caption that is already in the MSR-VTT form
it returns the caption unchanged, so the keys of an official ``ref_captions.json`` survive it.

Normalisation works token by token (a word never spans whitespace), so every word of the
canonical form comes from one whitespace token of the text as given: :func:`token_positions`
says which, and a role graph parsed on the canonical form can be keyed by the caption as given
(the released format's rule: the reader splits the key on whitespace).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_caption", "split_words", "token_positions"]

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


def token_positions(text: str) -> list[list[int]]:
    """Which words of ``normalize_caption(text)`` each whitespace token of ``text`` became.

    Args:
        text: a caption as given.

    Returns:
        One list per ``text.split()`` token: the positions (in ``normalize_caption(text).split()``)
        of the words it gave; empty for a token of punctuation only; several for ``"man,woman"``.
    """
    out, pos = [], 0
    for token in text.split():
        n = len(normalize_caption(token).split())
        out.append(list(range(pos, pos + n)))
        pos += n
    return out


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
