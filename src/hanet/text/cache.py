"""Per-caption parse records and their cache, so a re-run parses only new captions.

A parse is kept as a :class:`ParsedCaption`: the graph as JSON *text* (it is written out as is,
never decoded again), the concepts, the fallback nodes (for SRL graphs) and a few counts. For
200k captions that is about a tenth of the memory the decoded graphs would take.

The cache is a text file: a JSON header line naming what the parses depend on (rule version,
spaCy version, model name and version, parse limit), then one line per caption: a small JSON
object, a tab, and the graph's JSON (JSON text never contains a raw tab, so the split is safe)::

    {"hanet_prepare_cache": 2, "fingerprint": "rules 1; spacy 3.8.18; ..."}
    {"c": "a man sings", "v": ["sing"], "n": ["man"], "f": null, "nv": 1, "na": 1}<TAB>[{..}, [..]]

Lines are appended in batches, so an interrupted run keeps what it parsed; a torn last line is
cut off when the cache is next opened. A cache made under another fingerprint is discarded
(started afresh), never mixed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from hanet.io import atomic_write_text, write_failure
from hanet.text.normalize import split_words
from hanet.text.rolegraph import CaptionAnalysis, FallbackNode, Graph, graph_roles, validate_graph

__all__ = ["CACHE_FORMAT", "ParsedCaption", "encode_line", "decode_line", "ParseCache"]

CACHE_FORMAT = 2


@dataclass(slots=True)
class ParsedCaption:
    """What prepare keeps of one caption's parse.

    Attributes:
        graph_json: the role graph, JSON-encoded.
        verbs: verb concepts (repeats kept).
        nouns: noun concepts.
        fallback: the official no-predicate nodes (used under SRL graphs); None when the
            parse did not compute them.
        num_verbs: V nodes in the graph.
        num_args: other non-ROOT nodes.
        problems: what :func:`validate_graph` found (empty for a sound graph).
    """

    graph_json: str
    verbs: list[str] = field(default_factory=list)
    nouns: list[str] = field(default_factory=list)
    fallback: list[FallbackNode] | None = None
    num_verbs: int = 0
    num_args: int = 0
    problems: list[str] = field(default_factory=list)

    def graph(self) -> Graph:
        """The decoded graph."""
        return json.loads(self.graph_json)


def encode_line(caption: str, analysis: CaptionAnalysis) -> str:
    """One cache line for a parsed caption (run in the parsing process)."""
    roles = graph_roles(analysis.graph)
    meta: dict[str, Any] = {"c": caption, "v": analysis.verbs, "n": analysis.nouns,
                            "f": None if analysis.fallback is None else
                            [[r, s] for r, s in analysis.fallback],
                            "nv": sum(r == "V" for r in roles),
                            "na": sum(r != "V" for r in roles)}
    problems = validate_graph(analysis.graph, split_words(caption))
    if problems:
        meta["p"] = problems
    return json.dumps(meta, ensure_ascii=False) + "\t" + \
        json.dumps(analysis.graph, ensure_ascii=False) + "\n"


def decode_line(line: str) -> tuple[str, ParsedCaption]:
    """Inverse of :func:`encode_line`.

    Raises:
        ValueError: the line is not a cache record.
    """
    meta_text, sep, graph_json = line.rstrip("\n").partition("\t")
    if not sep:
        raise ValueError("no tab in cache line")
    meta = json.loads(meta_text)
    intern = sys.intern  # concept words repeat across captions: share the strings
    return meta["c"], ParsedCaption(
        graph_json, [intern(w) for w in meta["v"]], [intern(w) for w in meta["n"]],
        None if meta["f"] is None else [(r, list(s)) for r, s in meta["f"]],
        int(meta["nv"]), int(meta["na"]),
        list(meta.get("p", [])))


class ParseCache:
    """An append-only file of cache lines keyed by caption text.

    Args:
        path: the cache file (created with its directory when missing).
        fingerprint: identifies the parser; entries made under another one are not used.
    """

    def __init__(self, path: str | Path, fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.discarded = False  # an existing cache was dropped (other parser, unreadable)
        self.bad_lines = 0

    def _header(self) -> str:
        return json.dumps({"hanet_prepare_cache": CACHE_FORMAT, "fingerprint": self.fingerprint})

    def _restart(self) -> None:
        atomic_write_text(self.path, self._header() + "\n")

    def load(self, keep: Any = None) -> dict[str, ParsedCaption]:
        """Read the cached parses (and make the file ready for appending).

        Args:
            keep: if given, a container of captions: other entries are skipped (saves memory).

        Returns:
            ``{caption: parse}``; empty when there is no usable cache.
        """
        if not self.path.exists():
            self._restart()
            return {}
        out: dict[str, ParsedCaption] = {}
        with open(self.path, "r+b") as fh:
            header_line = fh.readline()
            try:
                header = json.loads(header_line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                header = {}
            if not isinstance(header, dict) or \
                    header.get("hanet_prepare_cache") != CACHE_FORMAT or \
                    header.get("fingerprint") != self.fingerprint:
                self.discarded = bool(header_line)
                fh.close()
                self._restart()
                return {}
            end = fh.tell()
            for raw in fh:
                if not raw.endswith(b"\n"):  # a run died mid-line: cut the torn line off
                    fh.truncate(end)
                    break
                end += len(raw)
                try:
                    caption, parsed = decode_line(raw.decode("utf-8"))
                except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                    self.bad_lines += 1
                    continue
                if keep is None or caption in keep:
                    out[caption] = parsed
        return out

    def append(self, lines: Iterable[str]) -> None:
        """Add lines from :func:`encode_line` at the end of the file (flushed on return)."""
        lines = list(lines)
        if lines:
            try:
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.writelines(lines)
            except OSError as exc:
                raise write_failure(self.path, exc, "append to") from None
