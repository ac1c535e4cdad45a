"""Searching an index: two-stage (FAISS candidates, then the full HANet score) or exhaustive.

Two-stage: the first stage (:mod:`hanet.index.first_stage`) computes, with FAISS, the three
scores that need one vector per side (``sent`` and the two concept scores, 60% of the fused
score) for every live video, exactly, and keeps the ``candidates`` best; those are scored with
all seven HANet scores and ranked by the fused score. Exhaustive: every live video is scored
the same way, in chunks, so its answer is exact; two-stage returns the same top-k whenever the
exact top-k is among the candidates, and says so (``exact``) when the first stage's bound
proves it.

Both paths rank by (fused score descending, row ascending), so ties are broken the same way.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from hanet.errors import HanetError, UnknownVideoError
from hanet.index.first_stage import FirstStage, first_stage_vectors, remaining_bound
from hanet.index.query import EncodedQueries, QueryEncoder, QueryError, QueryInfo
from hanet.index.rerank import frame_concepts, read_products, stores_frame_concepts, text_outputs, video_outputs
from hanet.index.results import CaptionHit, CaptionResult, Hit, PhraseMoment, Ranking, SearchResult
from hanet.index.storage import (CONCEPTS_FILE, MODEL_FILE, VOCAB_FILE, Collection, IndexFormatError, check_files,
                                 model_fingerprint, read_index_json, read_manifest)
from hanet.index.tuning import CANDIDATE_READ_BYTES, CANDIDATE_STEP, DEFAULT_CANDIDATES, MAX_CHUNK, PAIR_BUDGET
from hanet.model.moments import Moments, moments
from hanet.model.scoring import SCORE_NAMES, ScoreOutput, fuse, variant_scores

MODES = ("two-stage", "exhaustive")


def default_candidates(record_bytes: int) -> int:
    """Candidates by default for records of this size: as many as :data:`CANDIDATE_READ_BYTES`
    holds, rounded down to a multiple of :data:`CANDIDATE_STEP`, between that step and
    :data:`DEFAULT_CANDIDATES` (500 at the synth sizes, 21 KiB a video; 200 at MSR-VTT's, 171 KiB)."""
    fit = CANDIDATE_READ_BYTES // max(int(record_bytes), 1)
    return int(max(CANDIDATE_STEP, min(DEFAULT_CANDIDATES, fit // CANDIDATE_STEP * CANDIDATE_STEP)))


def _merge_topk(best_rows: np.ndarray, best_scores: np.ndarray, rows: np.ndarray, scores: np.ndarray,
                k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the k best of (previous best, new block) per query, ties to the lower row.

    Args:
        best_rows, best_scores: (Q, k0), ranked.
        rows: (n,) ascending, all above every row of ``best_rows``.
        scores: (Q, n).
        k: how many to keep.
    """
    Q = scores.shape[0]
    all_rows = np.concatenate([best_rows, np.broadcast_to(rows, (Q, len(rows)))], axis=1)
    all_scores = np.concatenate([best_scores, scores], axis=1)
    # Stable sort on -score: earlier columns (lower rows, see Args) win ties.
    order = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(all_rows, order, 1), np.take_along_axis(all_scores, order, 1)


class SearchIndex:
    """An index opened read-only for searching (thread-safe).

    Use :meth:`open`.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], model: Any, word2int: dict[str, int],
                 concepts: Optional[dict[str, list[str]]], videos: Collection, captions: Collection,
                 stages: dict[str, Optional[FirstStage]], queries: QueryEncoder) -> None:
        self.path = path
        self.manifest = manifest
        self.model = model
        self.config = model.config
        self.word2int = word2int
        self.concepts = concepts
        self.videos = videos
        self.captions = captions
        self.stages = stages
        self.queries = queries
        #: lists the approximate first stage probes per query (None: its default)
        self.nprobe: Optional[int] = None
        self._captions_by_video: Optional[dict[str, list[int]]] = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, index_dir: str | os.PathLike, *, run: Optional[str | os.PathLike] = None,
             checkpoint: Optional[str | os.PathLike] = None, parser: Any = None, max_query_chars: int = 1000,
             threads: Optional[int] = None, engine_url: Optional[str] = None) -> "SearchIndex":
        """Open an index read-only (records read by positional reads; FAISS files memory-mapped where possible).

        Args:
            index_dir: the index.
            run, checkpoint: if given, must be the model the index was built with (checked by
                fingerprint): an index built by another model is refused.
            parser: a loaded :class:`~hanet.text.rolegraph.RoleGraphParser` to share; None
                loads spaCy on the first query.
            max_query_chars: longer queries are refused.
            threads: if given, ``torch.set_num_threads(threads)`` (process-wide; torch and FAISS
                share one OpenMP pool). A search is many small tensor operations: on a small or
                busy CPU one thread per search is fastest, and concurrent searches use the cores.
            engine_url: an engine-backed index's engine at another URL than the one it records
                (e.g. a load balancer in front of the Qdrant cluster).

        Raises:
            IndexFormatError: not an index, damaged, another format version, or another model.
            EngineError: an engine-backed index's engine is unreachable or holds another index.
        """
        from hanet.index.first_stage import open_stages
        from hanet.run import model_from_checkpoint

        path = Path(index_dir)
        for attempt in range(2):
            manifest = read_manifest(path)
            try:
                check_files(path, manifest)  # a file of another index, or truncated: named, never answered from
                videos = Collection(path, "videos", manifest)
                captions = Collection(path, "captions", manifest)
                stages = open_stages(path, manifest, {"videos": videos, "captions": captions}, engine_url)
                break
            except (FileNotFoundError, HanetError):
                # A writer may have committed (and removed the old files) between our reads.
                if attempt == 1 or read_manifest(path).get("generation") == manifest.get("generation"):
                    raise
        if threads is not None:
            torch.set_num_threads(int(threads))
        model, cfg, _ = model_from_checkpoint(path / MODEL_FILE, device="cpu")
        fp = model_fingerprint(model)
        if fp != manifest["model"]["fingerprint"]:
            raise IndexFormatError(f"{path / MODEL_FILE}: is not the model this index was built with "
                                   f"(fingerprint {fp[:12]} vs {manifest['model']['fingerprint'][:12]})")
        if run is not None or checkpoint is not None:
            from hanet.run import RunDir

            ck = Path(checkpoint) if checkpoint is not None else RunDir(run).default_checkpoint()
            other, _, _ = model_from_checkpoint(ck, device="cpu")
            ofp = model_fingerprint(other)
            if ofp != fp:
                raise IndexFormatError(
                    f"{path}: was built by another model (fingerprint {fp[:12]}, from "
                    f"{manifest['model'].get('source')}) than {ck} (fingerprint {ofp[:12]}); rebuild the index "
                    f"with this model (`hanet index build`) or search without --run")
        word2int = read_index_json(path / VOCAB_FILE)
        # only what the manifest records: a concepts.json an index was built without is not its own
        concepts = read_index_json(path / CONCEPTS_FILE) if manifest.get("concepts") else None
        queries = QueryEncoder(model, word2int, parser=parser, max_chars=max_query_chars)
        return cls(path, manifest, model, word2int, concepts, videos, captions, stages, queries)

    def close(self) -> None:
        """Let go of the engine (and an ``edge:`` engine's private copies)."""
        for st in self.stages.values():
            if st is not None and hasattr(st, "engine"):
                st.engine.close()

    def __enter__(self) -> "SearchIndex":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ properties
    @property
    def num_videos(self) -> int:
        return self.videos.num_alive

    @property
    def num_captions(self) -> int:
        return self.captions.num_alive

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["model"]["fingerprint"])

    @property
    def variant(self) -> str:
        return str(self.manifest["model"]["variant"])

    @property
    def generation(self) -> int:
        return int(self.manifest["generation"])

    def score_names(self) -> tuple[str, ...]:
        return variant_scores(self.variant)

    def concept_name(self, kind: str, cid: int) -> str:
        """A concept as a word people read (:func:`hanet.text.concepts.concept_label`)."""
        if self.concepts and kind in self.concepts and 0 <= cid < len(self.concepts[kind]):
            from hanet.text.concepts import concept_label

            return concept_label(self.concepts[kind][cid], self.word2int)
        return f"{kind}#{cid}"

    def is_shown(self, kind: str, cid: int) -> bool:
        """Whether a concept is listed in explanations: not when the tagger made it of a word it
        mostly reads otherwise ("blue" a verb in "turns blue"; its share, recorded by ``hanet
        prepare``, below :data:`hanet.text.concepts.SHOWN_SHARE`)."""
        from hanet.text.concepts import SHOWN_SHARE

        shares = (self.concepts or {}).get(f"{kind}_share")
        return not shares or not 0 <= cid < len(shares) or shares[cid] >= SHOWN_SHARE

    def row(self, video_id: str) -> int:
        """The row of a live video.

        Raises:
            UnknownVideoError: no such video.
        """
        if not isinstance(video_id, str) or video_id not in self.videos.row_of:
            raise UnknownVideoError(video_id, self.path)
        return self.videos.row_of[video_id]

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def _score(self, video: Any, text: Any) -> ScoreOutput:
        return self.model.score(video, text)

    @torch.no_grad()
    def score_rows(self, rows: np.ndarray, text: Any) -> ScoreOutput:
        """The seven scores of indexed videos for encoded queries.

        Args:
            rows: (n,) video rows.
            text: :class:`~hanet.model.text.TextEncoderOutput` of Q queries.

        Returns:
            :class:`~hanet.model.scoring.ScoreOutput` of (n, Q) matrices: the model's scoring
            rule on the stored videos' products with the queries' phrases
            (:func:`hanet.index.rerank.read_products`).
        """
        queries = self.model.phrase_queries(text)
        video = read_products(self.videos, rows, queries, with_concepts=self.variant != "global")
        return self.model.score_products(video, text, queries)

    def default_candidates(self, part: str = "videos") -> int:
        """First-stage candidates when none are asked for (:func:`default_candidates` of the
        part's record size)."""
        coll = self.videos if part == "videos" else self.captions
        return default_candidates(coll.segments[0].dtype.itemsize) if coll.segments else DEFAULT_CANDIDATES

    def _check(self, k: int, mode: str, candidates: Optional[int], part: str = "videos") -> int:
        if mode not in MODES:
            raise HanetError(f"unknown search mode {mode!r}; choose {' or '.join(MODES)}")
        if int(k) < 1:
            raise HanetError(f"k must be >= 1, not {k}")
        c = self.default_candidates(part) if candidates is None else int(candidates)
        if c < 1:
            raise HanetError(f"candidates must be >= 1, not {candidates}")
        return max(c, int(k))

    def rank_encoded(self, text: Any, k: int = 10, mode: str = "two-stage",
                     candidates: Optional[int] = None) -> Ranking:
        """Rank the index's videos for encoded queries.

        Args:
            text: :class:`~hanet.model.text.TextEncoderOutput` of Q queries.
            k: videos per query.
            mode: ``two-stage`` or ``exhaustive``.
            candidates: first-stage candidates per query (two-stage).

        Returns:
            :class:`Ranking` with k' = min(k, live videos) rows per query.
        """
        c = self._check(k, mode, candidates)
        proxies = lambda: first_stage_vectors(text.global_embeds.numpy(), text.verb_probs.numpy(),  # noqa: E731
                                              text.noun_probs.numpy(), round_to_stored=False)
        return self._rank("videos", len(text), k, c, mode, lambda rows, q: self.score_rows(rows, text.select(q)),
                          proxies)

    def _rank(self, part: str, Q: int, k: int, c: int, mode: str,
              score: Callable[[np.ndarray, slice], ScoreOutput], proxies: Callable[[], dict[str, np.ndarray]]) -> Ranking:
        """The one ranking routine of both directions: a part's rows for Q queries.

        Args:
            part: ``videos`` (text to video) or ``captions`` (video to text).
            Q: queries.
            k: rows per query.
            c: first-stage candidates per query.
            mode: ``two-stage`` or ``exhaustive``.
            score: (rows (n,), queries slice) -> :class:`~hanet.model.scoring.ScoreOutput` of (n, q)
                (videos x queries, or captions' transposed: always part rows first).
            proxies: the queries' first-stage vectors (:func:`~hanet.index.first_stage.first_stage_vectors`).

        Returns:
            :class:`Ranking` with k' = min(k, live rows) rows per query.
        """
        coll = self.videos if part == "videos" else self.captions
        n_alive = coll.num_alive
        k = min(int(k), n_alive)
        if k == 0:
            return Ranking(np.zeros((Q, 0), np.int64), np.zeros((Q, 0), np.float32), 0, np.ones(Q, bool))
        if mode == "exhaustive" or n_alive <= c or self.stages.get(part) is None:
            best_rows = np.zeros((Q, 0), np.int64)
            best_scores = np.zeros((Q, 0), np.float32)
            chunk = max(64, min(MAX_CHUNK, PAIR_BUDGET // max(Q, 1)))
            for rows in coll.chunks(chunk):
                fused = fuse(score(rows, slice(0, Q)), self.variant).numpy().T  # (Q, n)
                best_rows, best_scores = _merge_topk(best_rows, best_scores, rows, fused, k)
            return Ranking(best_rows, best_scores, n_alive, np.ones(Q, bool))
        alive = None if coll.alive.all() else coll.alive
        found = self.stages[part].find(proxies(), c, alive, self.nprobe)
        out_rows = np.zeros((Q, k), np.int64)
        out_scores = np.full((Q, k), -np.inf, np.float32)
        out_parts = np.zeros((Q, len(SCORE_NAMES), k), np.float32)
        for q in range(Q):  # one query's candidates at a time (each query has its own)
            rows = found.rows[q]
            so = score(rows, slice(q, q + 1))
            fused = fuse(so, self.variant).numpy()[:, 0]
            order = np.argsort(-fused, kind="stable")[:k]
            out_rows[q, :len(order)] = rows[order]
            out_scores[q, :len(order)] = fused[order]
            out_parts[q, :, :len(order)] = so.stack()[:, order, 0].numpy()  # the hits' scores, kept
        # A row left out scores at most its first-stage part plus the largest phrase-level part;
        # a stage that did not look at every row bounds nothing.
        exact = (found.best_left + remaining_bound(self.variant) < out_scores[:, -1] if found.best_left is not None
                 else np.zeros(Q, bool))
        return Ranking(out_rows, out_scores, max(len(x) for x in found.rows), exact, out_parts)

    @property
    def moments_note(self) -> Optional[str]:
        """Why hits carry no time spans, or None when they can."""
        if not stores_frame_concepts(self.videos):
            return (f"{self.path}: this index stores no per-frame concepts (built by an older hanet): no time "
                    f"spans; rebuild it with `hanet index build` for them")
        return None

    def moments(self, rows: np.ndarray, text: Any, info: Optional[QueryInfo] = None) -> Moments:
        """Time spans of videos for one encoded query (:mod:`hanet.model.moments`).

        Args:
            rows: (n,) video rows.
            text: :class:`~hanet.model.text.TextEncoderOutput` of one query.
            info: what the query was made into; with it, phrases the query puts in order ("X and
                then Y") get spans in that order (:meth:`QueryInfo.verb_sequence`).

        Returns:
            :class:`~hanet.model.moments.Moments` (no spans for an index that does not store
            per-frame concepts, or a query encoded without its phrases' concepts).
        """
        rows = np.asarray(rows, np.int64)
        metas = [self.videos.meta(int(r)) for r in rows.tolist()]
        probs = frame_concepts(self.videos, rows) if len(rows) else None
        phrase = None if text.verb_phrase_probs is None else text.verb_phrase_probs[0].numpy()
        slots = np.flatnonzero(text.verb_lens[0].numpy() > 0).tolist()
        lengths = [int(m.get("length") or 0) for m in metas]
        return moments(probs, np.array(lengths, np.int64), phrase, slots, [m.get("frame_times") for m in metas],
                       [m.get("duration") for m in metas], kernel=self.config.video.verb_kernel,
                       sequence=info.verb_sequence() if info is not None else None)

    def _parts(self, rows: np.ndarray, text: Any) -> np.ndarray:
        """(7, n) the seven scores of rows for one query."""
        if not len(rows):
            return np.zeros((len(SCORE_NAMES), 0), np.float32)
        return self.score_rows(rows, text).stack()[:, :, 0].numpy()

    # ------------------------------------------------------------------ text -> video
    def encode(self, text: str) -> EncodedQueries:
        """Encode a query (cached).

        Raises:
            QueryError: empty, too long, or no known word.
        """
        return self.queries.encode_one(text)

    def search_result(self, text: str, k: int = 10, mode: str = "two-stage",
                      candidates: Optional[int] = None) -> SearchResult:
        """Search with a text query, with warnings and timings.

        Args:
            text: the query.
            k: hits.
            mode: ``two-stage`` (default) or ``exhaustive``.
            candidates: first-stage candidates (default :meth:`default_candidates`).

        Raises:
            QueryError: a query that cannot be searched.
            HanetError: a bad k, mode or candidate count.
        """
        self._check(k, mode, candidates)
        t0 = time.perf_counter()
        enc = self.encode(text)
        t1 = time.perf_counter()
        ranking = self.rank_encoded(enc.text, k, mode, candidates)
        t2 = time.perf_counter()
        rows, fused = ranking.rows, ranking.scores
        # exhaustive mode keeps no scores: the top k once more, in one batch
        parts = ranking.parts[0] if ranking.parts is not None else self._parts(rows[0], enc.text)
        info = enc.infos[0]
        spans = self.moments(rows[0], enc.text, info)
        names = self.score_names()
        hits = [Hit(i + 1, self.videos.ids[int(r)], float(fused[0, i]),
                    {n: float(parts[SCORE_NAMES.index(n), i]) for n in names},
                    spans.hit[i] if spans.hit else None,
                    [PhraseMoment(p.kind, p.role, " ".join(p.words), spans.phrases[i][(p.kind, p.slot)])
                     for p in info.phrases if (p.kind, p.slot) in spans.phrases[i]])
                for i, r in enumerate(rows[0].tolist())]
        t3 = time.perf_counter()
        return SearchResult(text, info.normalized, mode, int(k), ranking.scored, self.num_videos, hits,
                            bool(ranking.exact[0]), info.warnings(),
                            {"encode": (t1 - t0) * 1e3, "rank": (t2 - t1) * 1e3, "scores": (t3 - t2) * 1e3,
                             "total": (t3 - t0) * 1e3})

    def search(self, text: str, k: int = 10, mode: str = "two-stage", candidates: Optional[int] = None) -> list[Hit]:
        """Search with a text query.

        Args:
            text: the query (any casing and punctuation).
            k: hits.
            mode: ``two-stage`` (default) or ``exhaustive`` (exact).
            candidates: first-stage candidates (default :meth:`default_candidates`).

        Returns:
            Hits, best first.
        """
        return self.search_result(text, k, mode, candidates).hits

    # ------------------------------------------------------------------ video -> text
    def search_captions(self, video_id: str, k: int = 10, mode: str = "two-stage",
                        candidates: Optional[int] = None) -> CaptionResult:
        """Rank the indexed captions for an indexed video (video-to-text).

        Raises:
            HanetError: no captions are indexed.
            UnknownVideoError: no such video.
        """
        c = self._check(k, mode, candidates, part="captions")
        caps = self.captions
        if caps.num_alive == 0:
            raise HanetError(f"{self.path}: no captions are indexed (build with --captions for video-to-text search)")
        t0 = time.perf_counter()
        vrow = np.array([self.row(video_id)])
        video = video_outputs(self.videos, vrow)
        proxies = lambda: first_stage_vectors(video.global_embeds.numpy(), video.verb_probs.numpy(),  # noqa: E731
                                              video.noun_probs.numpy())
        ranked = self._rank("captions", 1, k, c, mode, lambda rows, q: self._score(video, text_outputs(caps, rows)).transposed(),
                            proxies)
        rows, fused, scored = ranked.rows[0], ranked.scores[0], ranked.scored
        if ranked.parts is not None:
            sc = ranked.parts[0]
        else:
            sc = self._score(video, text_outputs(caps, rows)).stack()[:, 0, :].numpy() if len(rows) else None
        names = self.score_names()
        hits = []
        for i, r in enumerate(rows.tolist()):
            meta = caps.meta(int(r))
            hits.append(CaptionHit(i + 1, meta["text"], meta["video"], float(fused[i]),
                                   {n: float(sc[SCORE_NAMES.index(n), i]) for n in names}))
        return CaptionResult(video_id, mode, int(k), int(scored), caps.num_alive, hits,
                             {"total": (time.perf_counter() - t0) * 1e3})

    # ------------------------------------------------------------------ videos
    def video(self, video_id: str) -> dict[str, Any]:
        """Metadata of a video: id, frames, frame times, duration, whether a thumbnail and the file exist.

        Raises:
            UnknownVideoError: no such video.
        """
        row = self.row(video_id)
        m = dict(self.videos.meta(row))
        src = m.get("source")
        return {"id": video_id, "length": m.get("length"), "frame_times": m.get("frame_times"),
                "duration": m.get("duration"), "width": m.get("width"), "height": m.get("height"),
                "feature_frames": m.get("feature_frames"),
                "thumbnail": self.videos.thumbnail(row) is not None,
                "source_available": bool(src) and Path(src).is_file(),
                "source_name": Path(src).name if src else None}

    def thumbnail(self, video_id: str) -> Optional[Path]:
        """The thumbnail strip of a video, or None (UnknownVideoError for an unknown video)."""
        return self.videos.thumbnail(self.row(video_id))

    def source(self, video_id: str) -> Optional[Path]:
        """The video file recorded at build time, if it still exists (UnknownVideoError for an unknown video)."""
        src = self.videos.meta(self.row(video_id)).get("source")
        return Path(src) if src and Path(src).is_file() else None

    def captions_of(self, video_id: str, limit: int = 5) -> list[str]:
        """The indexed captions of a video (at most ``limit``; [] when none are indexed).

        Raises:
            UnknownVideoError: no such video.
        """
        self.row(video_id)
        if self._captions_by_video is None:  # built on first use: only the web page asks
            by: dict[str, list[int]] = {}
            caps = self.captions
            for r in np.flatnonzero(caps.alive).tolist():
                by.setdefault(caps.meta(r)["video"], []).append(r)
            self._captions_by_video = by
        return [self.captions.meta(r)["text"] for r in self._captions_by_video.get(video_id, [])[:limit]]

    def examples(self, count: int = 3) -> list[str]:
        """Example queries for this collection: those recorded at build time (``--example``),
        else indexed captions of different videos, else none."""
        recorded = [q for q in self.manifest.get("examples", []) if isinstance(q, str) and q.strip()]
        if recorded:
            return recorded[:count]
        out: list[str] = []
        seen: set[str] = set()
        caps = self.captions
        for r in np.flatnonzero(caps.alive)[:10 * count].tolist():
            m = caps.meta(r)
            if m["video"] not in seen:
                seen.add(m["video"])
                out.append(m["text"])
            if len(out) == count:
                break
        return out

    # ------------------------------------------------------------------ explanations
    def explain(self, text: str, video_id: str):
        """Why a video matches a query (see :func:`hanet.index.explain.explain`).

        Raises:
            QueryError: a bad query.
            UnknownVideoError: no such video.
        """
        from hanet.index.explain import explain

        return explain(self, text, video_id)


__all__ = ["MODES", "DEFAULT_CANDIDATES", "CANDIDATE_READ_BYTES", "default_candidates", "Hit", "CaptionHit", "SearchResult", "CaptionResult", "Ranking", "SearchIndex",
           "QueryError"]
