"""An index on disk: its layout and record fields (``layout``), the manifest that commits it and
binds its files (``manifest``), immutable segments (``segment``), a part's segments as one row
space with the one reader of records (``collection``), and the values stored beside the
encodings (``values``). Writing is :mod:`hanet.index.build`.
"""

from hanet.index.storage.collection import Collection
from hanet.index.storage.layout import (CONCEPTS_FILE, FRAME_DTYPES, FRAME_FIELDS, INDEX_FORMAT, INDEX_VERSION,
                                        MANIFEST, MODEL_FILE, MOMENT_FIELDS, PARTS, TEXT_FLOAT_FIELDS,
                                        TEXT_INT_FIELDS, VIDEO_FLOAT_FIELDS, VIDEO_INT_FIELDS, VOCAB_FILE,
                                        IndexFormatError, field_shapes, model_fingerprint, record_dtype)
from hanet.index.storage.manifest import (SEGMENT_FILES, IndexLock, check_files, collect_garbage, file_problems,
                                          file_record, read_index_json, read_manifest, record_files, recorded_files,
                                          referenced_paths, write_manifest)
from hanet.index.storage.segment import Segment, SegmentWriter

__all__ = ["Collection", "CONCEPTS_FILE", "FRAME_DTYPES", "FRAME_FIELDS", "INDEX_FORMAT", "INDEX_VERSION", "MANIFEST",
           "MODEL_FILE", "MOMENT_FIELDS", "PARTS", "TEXT_FLOAT_FIELDS", "TEXT_INT_FIELDS", "VIDEO_FLOAT_FIELDS",
           "VIDEO_INT_FIELDS", "VOCAB_FILE", "IndexFormatError", "field_shapes", "model_fingerprint", "record_dtype",
           "SEGMENT_FILES", "IndexLock", "check_files", "collect_garbage", "file_problems", "file_record",
           "read_index_json", "read_manifest", "record_files", "recorded_files", "referenced_paths", "write_manifest", "Segment",
           "SegmentWriter"]
