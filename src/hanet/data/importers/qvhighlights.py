"""QVHighlights (Lei et al., Moment-DETR, NeurIPS 2021) in its own release format.

``highlight_{train,val,test}_release.jsonl``: one query per line, ``{"qid", "query", "vid",
"duration", "relevant_windows": [[start, end], ...], "relevant_clip_ids", "saliency_scores"}``
(the test release has no windows or scores). Splits by file name. Each query is a caption of
its video with its windows; the query ids are kept, so ``moments.jsonl`` is the benchmark's own
ground truth for the videos imported.
"""

from __future__ import annotations

from pathlib import Path

from hanet.data.importers.base import Entry, Parsed, Problem, number, read_jsonl, split_of_file, window

SPLIT_WORDS = {"train": "trn", "val": "val", "test": "tst"}


def parse(sources: list[Path], split_of: dict[str, str]) -> Parsed:
    out = Parsed()
    for src in sources:
        split = split_of.get(src.name) or split_of_file(src, SPLIT_WORDS)
        for where, rec in read_jsonl(src):
            if not isinstance(rec, dict):
                out.problems.append(Problem(where, "not a JSON object"))
                continue
            qid, vid, query = rec.get("qid"), rec.get("vid"), rec.get("query")
            if isinstance(qid, bool) or not isinstance(qid, (int, str)):
                out.problems.append(Problem(where, f"'qid' must be an integer or a string, not {qid!r}"))
                continue
            where = f"{where} (qid {qid})"
            if not isinstance(vid, str) or not vid or not isinstance(query, str):
                out.problems.append(Problem(where, "needs 'vid' and 'query' strings"))
                continue
            try:
                duration = number(rec.get("duration"), "'duration'") if rec.get("duration") is not None else None
                wins = rec.get("relevant_windows")
                windows = None if wins is None else [window(w, "a relevant window") for w in wins]
            except (ValueError, TypeError) as exc:
                out.problems.append(Problem(where, str(exc)))
                continue
            if windows is not None and not windows:
                windows = None
            clips, scores = rec.get("relevant_clip_ids"), rec.get("saliency_scores")
            saliency = None
            if isinstance(clips, list) and isinstance(scores, list) and len(clips) == len(scores) and clips:
                saliency = (clips, scores)
            out.entries.append(Entry(vid, query, split, where, windows=windows, duration=duration, qid=qid,
                                     saliency=saliency))
    return out
