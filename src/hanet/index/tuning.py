"""Every tuning constant of the index, each with why it has its value.

Figures cited come from ``benchmarks/bench_search.py`` (machine, command and figures in
``benchmarks/results/search.json`` and docs/search.md's table); what was tried and dropped is in
docs/history.md. Nothing here changes the host process.
"""

from __future__ import annotations

# ------------------------------------------------------------------ reading records
#: records are read into one reused buffer of at most this many bytes per thread: a search's
#: anonymous memory for records is this, whatever the index's size
READ_BYTES = 16 << 20
#: records read at a time when their frames are multiplied as read: small enough to stay in a
#: core's cache between the read and the products (2 MiB L2 per core on the machines measured)
PRODUCT_READ_BYTES = 2 << 20
#: up to this many rows one field is read alone from each record (a read per row, for a few
#: hits' frame concepts); more rows read whole records
FIELD_READ_ROWS = 64
#: bytes hashed at each end of each file when an index is opened (``index verify`` hashes all)
SAMPLE_BYTES = 64 << 10

# ------------------------------------------------------------------ second stage
#: the most candidates the first stage hands to full scoring by default
DEFAULT_CANDIDATES = 500
#: default candidates read at most this many bytes of records: 200 at MSR-VTT's sizes (171 KiB
#: a video) keeps 0.9935 of the exhaustive top 10 at 100,000 videos, 500 cost 1.5x the time
CANDIDATE_READ_BYTES = 36 << 20
#: default candidate counts are multiples of this
CANDIDATE_STEP = 50
#: (video, query) pairs scored at once in exhaustive mode (bounds the temporaries)
PAIR_BUDGET = 2_000_000
#: videos (or captions) read at once in exhaustive mode
MAX_CHUNK = 4096

# ------------------------------------------------------------------ first stage
#: the inverted-file first stage is built once a collection holds this many rows ("auto");
#: below it the exact scan costs less than a millisecond or two
ANN_MIN_ROWS = 50_000
#: lists probed per query (of about 4 sqrt(rows)): 32 kept the top-10 agreement of 48 at 1M
#: synth-size and 100k MSR-VTT-size videos
DEFAULT_NPROBE = 32
#: the inverted file's proxy pool, in candidates: 2 kept the agreement of 4 and halves the
#: exact rescoring of the pool
POOL_FACTOR = 2
#: a query probes lists holding on average at least this many times its pool (more than
#: DEFAULT_NPROBE where lists are short: small collections kept their top 10 only so)
PROBE_ROWS_FACTOR = 8
#: the Qdrant engine's proxy pool, in candidates (HNSW; 0.9985 agreement at 1M videos with 4)
ENGINE_POOL_FACTOR = 4
#: points per upsert request to the engine
UPSERT_BATCH = 1000

# ------------------------------------------------------------------ writing
#: rows per segment when an index is built
DEFAULT_SEGMENT = 20000
#: videos encoded per batch when an index is built from features
DEFAULT_BATCH = 64

__all__ = ["READ_BYTES", "PRODUCT_READ_BYTES", "FIELD_READ_ROWS", "SAMPLE_BYTES", "DEFAULT_CANDIDATES",
           "CANDIDATE_READ_BYTES", "CANDIDATE_STEP", "PAIR_BUDGET", "MAX_CHUNK", "ANN_MIN_ROWS", "DEFAULT_NPROBE",
           "POOL_FACTOR", "PROBE_ROWS_FACTOR", "ENGINE_POOL_FACTOR", "UPSERT_BATCH", "DEFAULT_SEGMENT",
           "DEFAULT_BATCH"]
