"""Take the embeddings away: an index's (or a feature file's) encodings as Parquet tables.

``hanet export SOURCE --out DIR`` writes, for SOURCE an index folder or a feature file
(HDF5, with ``--run`` for the model that encodes it):

* ``videos.parquet``: one row per video, every HANet level of it (schema in docs/export.md);
* ``captions.parquet``: the index's captions, encoded (an index with captions only);
* ``queries.parquet``: the text queries of ``--queries FILE`` (one per line), encoded;
* ``export.json``: what was written, the model's fingerprint and sizes.

**Why Parquet.** The encodings are fixed-size vectors (``fixed_size_list<float32>[d]``),
ragged per-frame sequences (``list<fixed_size_list<float32>[d]>``, one entry per frame the
model saw, with the frames' times) and plain columns (ids, text, lengths); Parquet holds all
three typed, compressed and column by column, and pandas, pyarrow, polars, DuckDB and Spark
read it without hanet (``pandas.read_parquet``). ``.npz`` has no ragged or text columns and
no schema; HDF5 (the features' format) has no ragged columns pandas reads. Values are float32:
from an index, the stored float16 (or int8 times its scale) values as the search scores them,
exactly; from a feature file, the model's outputs.

Files are written a row group (4,096 rows) at a time, to a temporary name renamed when
complete: memory stays bounded and a killed export leaves no half file (a re-run redoes it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from hanet.errors import DataError, HanetError

ROW_GROUP = 4096
FORMAT = "hanet-export"
VERSION = 1


def _pa() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise HanetError("export needs pyarrow: pip install 'hanet[export]' (or pip install pyarrow)") from None
    return pa, pq


@dataclass
class ExportReport:
    """What an export wrote."""

    out: str
    files: dict[str, int] = field(default_factory=dict)  # file -> rows
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        parts = ", ".join(f"{f} ({n} rows)" for f, n in self.files.items())
        s = f"{self.out}: wrote {parts} in {self.seconds:.1f} s"
        if self.skipped:
            s += f"; skipped {len(self.skipped)} (e.g. {self.skipped[0]})"
        return s


# ---------------------------------------------------------------------- columns
def _vectors(pa: Any, x: np.ndarray) -> Any:
    """(n, d) -> fixed_size_list<float32>[d]."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), int(x.shape[1]))


def _sequences(pa: Any, x: np.ndarray, lengths: np.ndarray) -> Any:
    """(n, F, d) padded with (n,) real lengths -> list<fixed_size_list<float32>[d]> of the real frames."""
    x = np.asarray(x, dtype=np.float32)
    n, F, d = x.shape
    keep = np.arange(F)[None, :] < np.asarray(lengths)[:, None]
    flat = np.ascontiguousarray(x[keep])  # (sum(lengths), d), rows in order
    offsets = np.concatenate([[0], np.cumsum(np.asarray(lengths, np.int64))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), _vectors(pa, flat))


def video_schema(pa: Any, d: int, Cv: int, Cn: int) -> Any:
    vec = lambda k: pa.list_(pa.float32(), k)  # noqa: E731  fixed size
    return pa.schema([
        ("video_id", pa.string()), ("row", pa.int64()), ("length", pa.int32()), ("duration", pa.float64()),
        ("frame_times", pa.list_(pa.float32())),
        ("global_embedding", vec(d)), ("verb_concepts", vec(Cv)), ("noun_concepts", vec(Cn)),
        ("verb_frames", pa.list_(vec(d))), ("noun_frames", pa.list_(vec(d))),
        ("verb_frame_concepts", pa.list_(vec(Cv))),
        ("verb_clips", pa.list_(vec(d))), ("verb_clip_concepts", pa.list_(pa.int32())),
        ("noun_clips", pa.list_(vec(d))), ("noun_clip_concepts", pa.list_(pa.int32())),
    ])


def text_schema(pa: Any, d: int, Cv: int, Cn: int, kind: str) -> Any:
    vec = lambda k: pa.list_(pa.float32(), k)  # noqa: E731
    head = ([("caption_id", pa.string()), ("video_id", pa.string()), ("text", pa.string())] if kind == "captions"
            else [("query", pa.string()), ("normalized", pa.string()), ("phrases", pa.list_(pa.struct(
                [("kind", pa.string()), ("role", pa.string()), ("text", pa.string())])))])
    return pa.schema(head + [("global_embedding", vec(d)), ("verb_concepts", vec(Cv)), ("noun_concepts", vec(Cn))])


def _fixed_rows(pa: Any, x: np.ndarray, lengths: np.ndarray) -> Any:
    """(n, S, d) clips (all S real) -> list<fixed_size_list<float32>[d]>."""
    return _sequences(pa, x, np.full(len(x), x.shape[1]))


def video_table(pa: Any, schema: Any, ids: Sequence[str], rows: Optional[Sequence[int]], fields: dict[str, np.ndarray],
                metas: Sequence[dict[str, Any]]) -> Any:
    """One batch of videos as a table of :func:`video_schema`.

    Args:
        fields: ``global_embeds`` (n, d), ``verb_probs``/``noun_probs``, ``verb_frames``/``noun_frames``
            (n, T, d), ``verb_frame_probs`` (n, T, Cv), ``verb_clips``/``noun_clips`` (n, S, d),
            ``top_verbs``/``top_nouns`` (n, S), ``lengths`` (n,): float32 values as scored.
    """
    lengths = np.asarray(fields["lengths"], np.int64)
    n = len(ids)
    times = [m.get("frame_times") for m in metas]
    cols = {
        "video_id": pa.array(list(ids), pa.string()),
        "row": pa.array(list(rows) if rows is not None else [None] * n, pa.int64()),
        "length": pa.array(lengths.astype(np.int32), pa.int32()),
        "duration": pa.array([None if m.get("duration") is None else float(m["duration"]) for m in metas], pa.float64()),
        "frame_times": pa.array([None if t is None else [float(v) for v in t] for t in times], pa.list_(pa.float32())),
        "global_embedding": _vectors(pa, fields["global_embeds"]),
        "verb_concepts": _vectors(pa, fields["verb_probs"]), "noun_concepts": _vectors(pa, fields["noun_probs"]),
        "verb_frames": _sequences(pa, fields["verb_frames"], lengths),
        "noun_frames": _sequences(pa, fields["noun_frames"], lengths),
        "verb_frame_concepts": _sequences(pa, fields["verb_frame_probs"], lengths),
        "verb_clips": _fixed_rows(pa, fields["verb_clips"], lengths),
        "verb_clip_concepts": pa.array([list(map(int, r)) for r in np.asarray(fields["top_verbs"])], pa.list_(pa.int32())),
        "noun_clips": _fixed_rows(pa, fields["noun_clips"], lengths),
        "noun_clip_concepts": pa.array([list(map(int, r)) for r in np.asarray(fields["top_nouns"])], pa.list_(pa.int32())),
    }
    return pa.table([cols[f.name] for f in schema], schema=schema)


# ---------------------------------------------------------------------- writing
class _Writer:
    """A Parquet file written a row group at a time under a temporary name."""

    def __init__(self, path: Path, schema: Any, meta: dict[str, str]) -> None:
        pa, pq = _pa()
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        self.rows = 0
        try:
            self.writer = pq.ParquetWriter(str(self.tmp), schema.with_metadata(meta), compression="zstd")
        except OSError as exc:
            from hanet.io import write_failure

            raise write_failure(path, exc) from None

    def write(self, table: Any) -> None:
        try:
            self.writer.write_table(table, row_group_size=ROW_GROUP)
        except OSError as exc:
            from hanet.io import write_failure

            self.abort()
            raise write_failure(self.path, exc) from None
        self.rows += table.num_rows

    def close(self) -> int:
        self.writer.close()
        os.replace(self.tmp, self.path)
        return self.rows

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass
        self.tmp.unlink(missing_ok=True)


def _metadata(fingerprint: str, source: str, dims: dict[str, int]) -> dict[str, str]:
    from hanet import __version__

    return {"hanet.format": FORMAT, "hanet.version": str(VERSION), "hanet.hanet_version": __version__,
            "hanet.model_fingerprint": fingerprint, "hanet.source": source, "hanet.dims": json.dumps(dims)}


def _index_videos(index: Any, batch: int) -> Iterator[tuple[list[str], list[int], dict[str, np.ndarray], list[dict]]]:
    from hanet.index.rerank import stores_frame_concepts, video_outputs

    coll = index.videos
    if not stores_frame_concepts(coll):
        raise HanetError(f"{index.path}: this index stores no per-frame concepts (built by an older hanet); "
                         f"rebuild it, or export its feature file with --run")
    for rows in coll.chunks(batch):
        out = video_outputs(coll, rows, with_peaks=True, with_frame_concepts=True)  # one read per record
        f = {name: getattr(out, name).numpy() for name in ("global_embeds", "verb_probs", "noun_probs", "verb_frames",
                                                          "noun_frames", "verb_clips", "noun_clips", "top_verbs",
                                                          "top_nouns", "lengths")}
        f["verb_frame_probs"] = out.verb_frame_probs.numpy()
        yield [coll.ids[r] for r in rows.tolist()], rows.tolist(), f, [coll.meta(int(r)) for r in rows.tolist()]


def export(source: str | os.PathLike, out: str | os.PathLike, *, run: Optional[str | os.PathLike] = None,
           checkpoint: Optional[str | os.PathLike] = None, queries: Optional[str | os.PathLike] = None,
           vocab: Optional[str | os.PathLike] = None, batch_size: int = 256, progress: bool = False) -> ExportReport:
    """Export encodings as Parquet (see the module docstring).

    Args:
        source: an index folder, or an HDF5 feature file (then ``run`` or ``checkpoint``).
        out: the output folder (created; existing export files in it are replaced).
        run, checkpoint: the model for a feature file (an index carries its own).
        queries: a text file of queries, one per line, to encode too.
        vocab: with a feature file and ``queries``: ``word2int.json`` (default: the run's dataset's).
        batch_size: videos per batch.
        progress: print progress to stderr.

    Raises:
        HanetError: a missing or unreadable source, a feature file without a model, an output
            that is a file or cannot be written.
    """
    from hanet.io import atomic_write_json, ensure_dir

    pa, _ = _pa()
    t0 = time.time()
    src = Path(source)
    if not src.exists():
        raise HanetError(f"{src}: no such index folder or feature file")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise HanetError(f"{out_dir}: is a file; --out names a folder")
    query_lines = _read_queries(Path(queries)) if queries else None
    ensure_dir(out_dir, "export folder")
    rep = ExportReport(str(out_dir))

    def say(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr, flush=True)

    index = store = None
    if src.is_dir():
        from hanet.index.search import SearchIndex

        if run is not None or checkpoint is not None:
            raise HanetError("an index carries its model: --run/--checkpoint go with a feature file")
        index = SearchIndex.open(src)
        model, fp, kind = index.model, index.fingerprint, "index"
    else:
        from hanet.data.features import FeatureStore
        from hanet.index.inputs import load_run_model
        from hanet.index.storage import model_fingerprint

        if run is None and checkpoint is None:
            raise HanetError(f"{src}: a feature file needs the model that encodes it: give --run RUN_DIR "
                             f"(or --checkpoint FILE)")
        model, _, _ = load_run_model(run, checkpoint)
        fp, kind = model_fingerprint(model), "features"
        store = FeatureStore([src])
    mc = model.config
    d, Cv, Cn = mc.video.dim_embed, mc.num_verb_concepts, mc.num_noun_concepts
    meta = _metadata(fp, str(src.resolve()), {"dim_embed": d, "num_verb_concepts": Cv, "num_noun_concepts": Cn,
                                              "max_frames_in_video": mc.max_frames_in_video})
    try:
        vs = video_schema(pa, d, Cv, Cn)
        w = _Writer(out_dir / "videos.parquet", vs, meta)
        try:
            if index is not None:
                total = index.videos.num_alive
                for ids, rows, f, metas in _index_videos(index, batch_size):
                    w.write(video_table(pa, vs, ids, rows, f, metas))
                    say(f"export: {w.rows}/{total} videos")
            else:
                rep.skipped += _export_features(pa, vs, w, model, store, batch_size, say)
            rep.files["videos.parquet"] = w.close()
        except BaseException:
            w.abort()
            raise
        if index is not None and index.num_captions:
            rep.files["captions.parquet"] = _export_captions(pa, out_dir, index, d, Cv, Cn, meta, batch_size)
        if query_lines is not None:
            word2int = None
            if index is None:
                from hanet.index.inputs import run_vocab

                word2int = run_vocab(run, vocab)[0]
            rep.files["queries.parquet"], bad = _export_queries(pa, out_dir, model, index, word2int, query_lines,
                                                                d, Cv, Cn, meta)
            rep.skipped += bad
    finally:
        if store is not None:
            store.close()
        if index is not None:
            index.close()
    rep.seconds = time.time() - t0
    atomic_write_json(out_dir / "export.json", {"format": FORMAT, "version": VERSION, "source": str(src.resolve()),
                                                "kind": kind, "model_fingerprint": fp, "files": rep.files,
                                                "dims": json.loads(meta["hanet.dims"]), "skipped": rep.skipped})
    return rep


def _export_features(pa: Any, schema: Any, w: _Writer, model: Any, store: Any, batch_size: int, say) -> list[str]:
    from hanet.data.formats import feature_key
    from hanet.index.encode import encode_stored_videos

    want = model.config.video.dim_input
    if sum(store.dims()) != want:
        raise DataError(f"{store.files[0]}: {sum(store.dims())}-d features, but the model expects {want}-d")
    names = [feature_key(n) for n in store.names()]
    bad, todo = [], []
    for n in names:  # a video whose features cannot be read is reported and left out, not fatal
        problem = store.shape_problems([n])
        (bad.append(problem[0]) if problem else todo.append(n))
    for part, fields, metas in encode_stored_videos(model, store, todo, batch_size):
        w.write(video_table(pa, schema, part, None, fields, metas))
        say(f"export: {w.rows}/{len(todo)} videos encoded")
    return bad


def _text_columns(pa: Any, out: Any) -> dict[str, Any]:
    return {"global_embedding": _vectors(pa, out.global_embeds.numpy()),
            "verb_concepts": _vectors(pa, out.verb_probs.numpy()), "noun_concepts": _vectors(pa, out.noun_probs.numpy())}


def _export_captions(pa: Any, out_dir: Path, index: Any, d: int, Cv: int, Cn: int, meta: dict[str, str],
                     batch: int) -> int:
    from hanet.index.rerank import text_outputs

    schema = text_schema(pa, d, Cv, Cn, "captions")
    w = _Writer(out_dir / "captions.parquet", schema, meta)
    try:
        coll = index.captions
        for rows in coll.chunks(batch):
            out = text_outputs(coll, rows)
            metas = [coll.meta(int(r)) for r in rows.tolist()]
            cols = {"caption_id": pa.array([coll.ids[r] for r in rows.tolist()], pa.string()),
                    "video_id": pa.array([m.get("video") for m in metas], pa.string()),
                    "text": pa.array([m.get("text") for m in metas], pa.string()), **_text_columns(pa, out)}
            w.write(pa.table([cols[f.name] for f in schema], schema=schema))
        return w.close()
    except BaseException:
        w.abort()
        raise


def _read_queries(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HanetError(f"{path}: no such queries file") from None
    except IsADirectoryError:
        raise HanetError(f"{path}: is a folder; --queries names a text file, one query per line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HanetError(f"{path}: cannot read the queries ({exc})") from None
    return [line.strip() for line in text.splitlines()]


def _export_queries(pa: Any, out_dir: Path, model: Any, index: Any, word2int: Optional[dict[str, int]],
                    lines: list[str], d: int, Cv: int, Cn: int, meta: dict[str, str]) -> tuple[int, list[str]]:
    from hanet.index.query import QueryEncoder, QueryError

    enc = index.queries if index is not None else QueryEncoder(model, word2int, cache_size=0)
    schema = text_schema(pa, d, Cv, Cn, "queries")
    w = _Writer(out_dir / "queries.parquet", schema, meta)
    bad: list[str] = []
    try:
        for i, q in enumerate(lines, 1):
            if not q:
                continue
            try:
                e = enc.encode([q])
            except QueryError as exc:
                bad.append(f"query line {i}: {exc}")
                continue
            info = e.infos[0]
            cols = {"query": pa.array([q], pa.string()), "normalized": pa.array([info.normalized], pa.string()),
                    "phrases": pa.array([[{"kind": p.kind, "role": p.role, "text": " ".join(p.words)}
                                          for p in info.phrases]], schema.field("phrases").type),
                    **_text_columns(pa, e.text)}
            w.write(pa.table([cols[f.name] for f in schema], schema=schema))
        return w.close(), bad
    except BaseException:
        w.abort()
        raise


__all__ = ["ExportReport", "export", "video_schema", "text_schema", "video_table", "ROW_GROUP"]
