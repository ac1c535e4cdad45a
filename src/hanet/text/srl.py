"""Convert AllenNLP semantic-role-labelling output (``sent2srl.json``) into role graphs.

The authors ran AllenNLP's BERT SRL model on every caption (``predict_tokenized(caption.split())``)
and saved ``{caption: {"words": [...], "verbs": [{"verb", "description", "tags": [BIO tags]}]}}``,
then converted it in a notebook. Users who still have such a file can reuse it: this module
turns it into graphs the same way, and :mod:`hanet.text.prepare` fills in captions it lacks
with the spaCy parser.

Conversion rules (those of the official notebook):

* per predicate, BIO tags are grouped into phrases; a phrase is opened by ``B-`` or by an ``I-``
  tag whose role differs from the previous tag's (the notebook's repair of labeller slips);
  repeated roles of one predicate become separate phrases;
* a predicate becomes nodes only if it has exactly one ``V`` phrase and at least one other;
* nodes with the same span and role are shared; edges go predicate -> argument;
* a graph left with only ROOT gets the no-predicate fallback (noun chunks or ``NN*`` words as
  ``NOUN``, ``VB*`` words as ``V``) from spaCy.

One deliberate difference: an ``I-`` tag on the *first* word opens a phrase here; the notebook
raised an error and dropped the caption, which then broke the data reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from hanet.errors import DataError
from hanet.text.normalize import split_words
from hanet.text.rolegraph import FallbackNode, Frame, Graph, assemble_graph

__all__ = ["load_srl_file", "check_srl_entry", "frames_from_srl", "graph_from_srl"]


def check_srl_entry(entry: Any, where: str) -> None:
    """Raise :class:`DataError` unless ``entry`` looks like one AllenNLP SRL prediction.

    Args:
        entry: the value stored for one caption.
        where: file and caption, for the message.
    """
    if not isinstance(entry, Mapping):
        raise DataError(f"{where}: expected an object with 'words' and 'verbs', "
                        f"got {type(entry).__name__}")
    words, verbs = entry.get("words"), entry.get("verbs")
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise DataError(f"{where}: 'words' must be a list of strings")
    if not isinstance(verbs, list):
        raise DataError(f"{where}: 'verbs' must be a list")
    for k, verb in enumerate(verbs):
        tags = verb.get("tags") if isinstance(verb, Mapping) else None
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise DataError(f"{where}: verbs[{k}] has no list of string 'tags'")
        if len(tags) != len(words):
            raise DataError(f"{where}: verbs[{k}] has {len(tags)} tags for {len(words)} words")


def load_srl_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and check a ``sent2srl.json`` file.

    Args:
        path: the file written by the official ``semantic_role_labeling.py``.

    Returns:
        ``{caption: {"words": [...], "verbs": [...]}}``.

    Raises:
        DataError: the file is missing, not JSON, or an entry is malformed.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: SRL file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected {{caption: SRL prediction}}, "
                        f"got a JSON {type(data).__name__}")
    for caption, entry in data.items():
        check_srl_entry(entry, f"{path}: caption {caption!r}")
    return data


def frames_from_srl(entry: Mapping[str, Any], where: str = "") -> list[Frame]:
    """Group each predicate's BIO tags into a frame.

    Args:
        entry: one caption's prediction (``{"words", "verbs"}``).
        where: file and caption, for error messages.

    Returns:
        ``(verb_span, [(role, span), ...])`` for every predicate with exactly one ``V`` phrase
        and at least one other phrase, in the labeller's order.
    """
    check_srl_entry(entry, where or "SRL entry")
    frames: list[Frame] = []
    for verb in entry["verbs"]:
        phrases: dict[tuple[str, int], list[int]] = {}
        opened: dict[str, int] = {}
        prev_role = ""
        for t, tag in enumerate(verb["tags"]):
            if tag == "O" or len(tag) < 3:
                prev_role = ""
                continue
            role = tag[2:]
            if tag[0] == "B" or role != prev_role:
                opened[role] = opened.get(role, 0) + 1
            phrases.setdefault((role, opened[role]), []).append(t)
            prev_role = role
        if len(opened) > 1 and opened.get("V") == 1:
            args = [(role, spans) for (role, _), spans in phrases.items() if role != "V"]
            frames.append((phrases[("V", 1)], args))
    return frames


def graph_from_srl(entry: Mapping[str, Any], caption: str,
                   fallback: Iterable[FallbackNode] | Callable[[], Iterable[FallbackNode]] = ()
                   ) -> Graph | None:
    """The role graph of one caption from its SRL prediction.

    Args:
        entry: the caption's prediction.
        caption: the caption as stored (its ``split()`` must equal the prediction's words).
        fallback: nodes for a graph without predicates (from the spaCy parse), or a function
            giving them, called only if needed.

    Returns:
        The graph, or None when the prediction's words are not the caption's words (it was
        made for a differently tokenised caption and its spans cannot be trusted).
    """
    words = split_words(caption)
    if list(entry.get("words", [])) != words:
        return None
    return assemble_graph(words, frames_from_srl(entry, f"caption {caption!r}"), fallback)
