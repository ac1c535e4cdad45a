"""The released MSR-VTT / VATEX annotation and feature formats (as the HGR/HANet code reads them).

A dataset is described by one of:

* a directory laid out like the release (``trn_names.npy``, ``trn_ft.hdf5``, ``ref_captions.json``,
  ``sent2rolegraph.augment.json``, ``word2int.json``, ``verb_gt.json``, ... for splits ``trn``,
  ``val``, ``tst``; several feature files per split may be named ``trn_ft.*.hdf5``);
* the official ``path.json`` (keys ``attn_ft_files``, ``name_file``, ``word2int_file``,
  ``ref_caption_file``, ``ref_graph_file``, ``verb_concept_file``, ...), accepted as is;
* our own ``dataset.json`` / ``dataset.yaml`` (see :meth:`DatasetSpec.to_dict`).

Relative paths resolve against the description file's folder, then the working directory (the
official code resolves them against the working directory).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from hanet.data.features import FeatureStore, feature_key
from hanet.errors import DataError

SPLITS = ("trn", "val", "tst")
BOS, EOS, UNK = 0, 1, 2

# Semantic roles in the official order; C- and R- variants share their base role's id, and any
# other role (or the fallback graphs' NOUN) maps to NOUN.
ROLES: tuple[str, ...] = ("V", "ARG1", "ARG0", "ARG2", "ARG3", "ARG4", "ARGM-LOC", "ARGM-MNR", "ARGM-TMP",
                          "ARGM-DIR", "ARGM-ADV", "ARGM-PRP", "ARGM-PRD", "ARGM-COM", "ARGM-MOD", "NOUN")
ROLE2ID: dict[str, int] = {}
for _i, _r in enumerate(ROLES):
    ROLE2ID[_r] = ROLE2ID[f"C-{_r}"] = ROLE2ID[f"R-{_r}"] = _i


@dataclass
class SplitFiles:
    """Files of one split."""

    names: Path
    features: list[Path]
    captions: Path
    rolegraphs: Path


@dataclass
class DatasetSpec:
    """Where a dataset's files are.

    Attributes:
        splits: split name (``trn``/``val``/``tst``) -> its files; a split may be absent.
        word2int: vocabulary file.
        int2word: optional reverse vocabulary.
        verb_concepts, noun_concepts: per-caption concept ids of training videos.
        verb_concepts_all, noun_concepts_all: per-video concept weights of training videos.
        source: the path the spec was read from.
        moments: time windows of captions (``hanet import``'s ``moments.jsonl``, the moment
            benchmark's ground-truth format), when the dataset has them.
    """

    splits: dict[str, SplitFiles]
    word2int: Path
    int2word: Optional[Path] = None
    verb_concepts: Optional[Path] = None
    noun_concepts: Optional[Path] = None
    verb_concepts_all: Optional[Path] = None
    noun_concepts_all: Optional[Path] = None
    source: Optional[Path] = None
    extra: dict[str, Any] = field(default_factory=dict)
    moments: Optional[Path] = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | os.PathLike) -> "DatasetSpec":
        """Read a dataset description: a release-layout directory, a path.json, or dataset.json/yaml."""
        p = Path(path)
        if not p.exists():
            raise DataError(f"{p}: no such dataset directory or description file")
        if p.is_dir():
            for candidate in ("dataset.json", "dataset.yaml", "dataset.yml", "path.json"):
                if (p / candidate).is_file():
                    return cls.load(p / candidate)
            return cls._from_directory(p)
        try:
            text = p.read_text()
            if p.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"{p}: cannot parse dataset description ({exc})") from None
        if not isinstance(data, dict):
            raise DataError(f"{p}: a dataset description must be a mapping")
        if "attn_ft_files" in data or "name_file" in data:
            return cls._from_official(data, p)
        return cls._from_ours(data, p)

    @classmethod
    def _from_directory(cls, d: Path) -> "DatasetSpec":
        splits = {}
        for s in SPLITS:
            names = d / f"{s}_names.npy"
            if not names.is_file():
                continue
            feats = sorted(d.glob(f"{s}_ft.hdf5")) + sorted(d.glob(f"{s}_ft.*.hdf5"))
            if not feats:
                raise DataError(f"{d}: split {s} has {names.name} but no {s}_ft.hdf5")
            splits[s] = SplitFiles(names, feats, d / "ref_captions.json", d / "sent2rolegraph.augment.json")
        if not splits:
            raise DataError(f"{d}: no split found (expected trn_names.npy, val_names.npy or tst_names.npy)")

        def opt(name: str) -> Optional[Path]:
            return d / name if (d / name).is_file() else None

        return cls(splits=splits, word2int=d / "word2int.json", int2word=opt("int2word.npy"),
                   verb_concepts=opt("verb_gt.json"), noun_concepts=opt("noun_gt.json"),
                   verb_concepts_all=opt("verb_gt_all.json"), noun_concepts_all=opt("noun_gt_all.json"), source=d)

    @classmethod
    def _from_official(cls, data: dict[str, Any], src: Path) -> "DatasetSpec":
        base = src.parent

        def r(x: Optional[str]) -> Optional[Path]:
            return None if x is None else _resolve(x, base)

        def per_split(key: str, s: str) -> Any:
            v = data.get(key)
            return v.get(s) if isinstance(v, dict) else v

        splits = {}
        for s in SPLITS:
            names = per_split("name_file", s)
            if names is None:
                continue
            feats = per_split("attn_ft_files", s)
            if feats is None:
                raise DataError(f"{src}: split {s} has a name_file but no attn_ft_files")
            feats = [feats] if isinstance(feats, str) else list(feats)
            caps, graphs = per_split("ref_caption_file", s), per_split("ref_graph_file", s)
            if caps is None or graphs is None:
                raise DataError(f"{src}: split {s} needs ref_caption_file and ref_graph_file")
            splits[s] = SplitFiles(r(names), [r(f) for f in feats], r(caps), r(graphs))
        if not splits:
            raise DataError(f"{src}: no split in name_file")
        if "word2int_file" not in data:
            raise DataError(f"{src}: missing word2int_file")
        return cls(splits=splits, word2int=r(data["word2int_file"]), int2word=r(data.get("int2word_file")),
                   verb_concepts=r(data.get("verb_concept_file")), noun_concepts=r(data.get("noun_concept_file")),
                   verb_concepts_all=r(data.get("verb_concept_all_file")),
                   noun_concepts_all=r(data.get("noun_concept_all_file")), source=src)

    @classmethod
    def _from_ours(cls, data: dict[str, Any], src: Path) -> "DatasetSpec":
        base = src.parent / data.get("root", ".")
        splits = {}
        for s, sd in (data.get("splits") or {}).items():
            # trn/val/tst are what training and evaluation use by default; other names (e.g. a
            # held-out tst_novel) can be evaluated with --split.
            if not isinstance(sd, dict):
                raise DataError(f"{src}: split {s!r} must be a mapping with names and features")
            try:
                feats = sd["features"]
                feats = [feats] if isinstance(feats, str) else feats
                splits[s] = SplitFiles(_resolve(sd["names"], base), [_resolve(f, base) for f in feats],
                                       _resolve(sd.get("captions", data.get("captions", "ref_captions.json")), base),
                                       _resolve(sd.get("rolegraphs", data.get("rolegraphs",
                                                                              "sent2rolegraph.augment.json")), base))
            except KeyError as exc:
                raise DataError(f"{src}: split {s} lacks {exc.args[0]!r}") from None
        if not splits:
            raise DataError(f"{src}: 'splits' is empty")
        c = data.get("concepts") or {}

        def r(x: Optional[str]) -> Optional[Path]:
            return None if x is None else _resolve(x, base)

        return cls(splits=splits, word2int=_resolve(data.get("word2int", "word2int.json"), base),
                   int2word=r(data.get("int2word")), verb_concepts=r(c.get("verb")), noun_concepts=r(c.get("noun")),
                   verb_concepts_all=r(c.get("verb_all")), noun_concepts_all=r(c.get("noun_all")), source=src,
                   moments=r(data.get("moments")))

    def to_dict(self) -> dict[str, Any]:
        """Our description format (absolute paths)."""
        return {
            "splits": {s: {"names": str(f.names), "features": [str(x) for x in f.features],
                           "captions": str(f.captions), "rolegraphs": str(f.rolegraphs)} for s, f in self.splits.items()},
            "word2int": str(self.word2int),
            "int2word": None if self.int2word is None else str(self.int2word),
            "concepts": {"verb": _s(self.verb_concepts), "noun": _s(self.noun_concepts),
                         "verb_all": _s(self.verb_concepts_all), "noun_all": _s(self.noun_concepts_all)},
            **({"moments": str(self.moments)} if self.moments is not None else {}),
        }

    def split(self, name: str) -> SplitFiles:
        if name not in self.splits:
            raise DataError(f"dataset {self.source}: no split {name!r} (has {', '.join(self.splits) or 'none'})")
        return self.splits[name]

    def split_names(self, known: Optional[dict[str, list[str]]] = None) -> dict[str, list[str]]:
        """Split -> its video names, for every split whose names file reads (one that does not is
        left out: :meth:`missing_files` and ``check-data`` report it); ``known``: lists already read."""
        names = dict(known or {})
        for split in self.splits:
            if split not in names:
                try:
                    names[split] = load_names(self.splits[split].names)
                except DataError:
                    continue
        return names

    def missing_files(self, splits: Optional[Iterable[str]] = None, shared: bool = True) -> list[str]:
        """Every file this description names that does not exist (``"path: what not found"``),
        so that all of them are reported at once.

        Args:
            splits: the splits to look at (default: all).
            shared: also the files every split uses (vocabulary, concept labels).
        """
        wanted = list(self.splits) if splits is None else [s for s in splits if s in self.splits]
        files: list[tuple[Path, str]] = [(self.word2int, "vocabulary (word2int)")] if shared else []
        for s in wanted:
            f = self.splits[s]
            files += [(f.names, f"{s} names"), *((p, f"{s} features") for p in f.features),
                      (f.captions, "captions"), (f.rolegraphs, "role graphs")]
        if shared:
            for p, what in ((self.int2word, "int2word"), (self.verb_concepts, "verb concepts"),
                            (self.noun_concepts, "noun concepts"), (self.verb_concepts_all, "verb concepts (all)"),
                            (self.noun_concepts_all, "noun concepts (all)")):
                if p is not None:
                    files.append((p, what))
        out, seen = [], set()
        for p, what in files:
            if p in seen:
                continue
            seen.add(p)
            if not Path(p).is_file():
                out.append(f"{p}: {what} file {'is a folder' if Path(p).is_dir() else 'not found'}")
        return out

    def require_files(self, splits: Optional[Iterable[str]] = None, concepts: bool = True) -> None:
        """Raise one :class:`DataError` listing every missing file (see :meth:`missing_files`).

        Args:
            splits: the splits needed (default: all).
            concepts: the concept label files are needed too (training), where named.
        """
        missing = self.missing_files(splits, shared=concepts)
        if not concepts and not Path(self.word2int).is_file():
            missing.insert(0, f"{self.word2int}: vocabulary (word2int) file not found")
        if missing:
            raise DataError(f"dataset {self.source}: {len(missing)} file(s) missing:\n  - " + "\n  - ".join(missing))

    def has_concepts(self) -> bool:
        return all(p is not None for p in (self.verb_concepts, self.noun_concepts,
                                           self.verb_concepts_all, self.noun_concepts_all))


def _s(p: Optional[Path]) -> Optional[str]:
    return None if p is None else str(p)


def _resolve(p: str | os.PathLike, base: Path) -> Path:
    q = Path(p)
    if q.is_absolute():
        return q
    if (base / q).exists() or not q.exists():
        return base / q
    return q


# ---------------------------------------------------------------------- file readers
def regular_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` if it is a regular file; DataError naming it otherwise (missing, a folder, or a
    FIFO, socket or device, which a reader would wait on forever)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise DataError(f"{path}: {what} file not found")
    if path.is_dir():
        raise DataError(f"{path}: {what} file is a folder, not a file")
    raise DataError(f"{path}: {what} file is not a regular file (a pipe, socket or device)")


def load_json(path: str | os.PathLike, what: str) -> Any:
    """A JSON file; DataError naming it if it is missing, a folder, not UTF-8 or not JSON."""
    path = regular_file(path, what)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: {what} file is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: {what} file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what} file ({exc.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: {what} file is not valid JSON: {exc.msg} at line {exc.lineno} "
                        f"column {exc.colno}") from None
    except RecursionError:
        raise DataError(f"{path}: {what} file nests its values too deep to be a {what} file") from None


def load_names(path: str | os.PathLike) -> list[str]:
    """A split's video names: a 1-D numpy array of strings (``np.save(path, np.array(names))``).

    An ``.npy`` holding pickled objects is refused, never unpickled: unpickling runs whatever code
    the file carries, and a dataset may come from anyone.

    Raises:
        DataError: missing or unreadable file, pickled objects, not a 1-D array of strings,
            no names, or a name twice.
    """
    path = regular_file(path, "names")
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: names file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a names file") from None
    except ValueError as exc:
        raise DataError(f"{path}: cannot read names without unpickling ({exc}); save them with "
                        f"np.save(path, np.array(names, dtype=str))") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a numpy .npy file ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: expected one array of names, found an archive (.npz)")
    if arr.ndim != 1 or arr.dtype.kind not in ("U", "S"):
        raise DataError(f"{path}: expected a 1-D array of strings, got shape {arr.shape} dtype {arr.dtype}")
    names = [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in arr.tolist()]
    if not names:
        raise DataError(f"{path}: the split is empty (no video names)")
    dup = _duplicates(names)
    if dup:
        raise DataError(f"{path}: duplicate video names: {', '.join(dup[:10])}")
    return names


def load_captions(path: str | os.PathLike) -> dict[str, list[str]]:
    """``ref_captions.json``: ``{video_name: [caption, ...]}``, returned unchanged.

    Raises:
        DataError: missing, not JSON, not that shape, or a caption that is not valid Unicode
            (an unpaired surrogate such as ``"\\udcff"``, which JSON can spell but no text can
            hold); the message names the file, the video and the caption's index.
    """
    path = Path(path)
    data = load_json(path, "captions")
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected {{video_name: [caption, ...]}}, got a JSON {_json_type(data)}")
    if not data:
        raise DataError(f"{path}: the caption file has no videos")
    for name, caps in data.items():
        if not isinstance(caps, list):
            raise DataError(f"{path}: video {name!r}: expected a list of captions, got a JSON {_json_type(caps)}")
        for i, cap in enumerate(caps):
            if not isinstance(cap, str):
                raise DataError(f"{path}: video {name!r}, caption {i}: expected a string, got a JSON "
                                f"{_json_type(cap)}")
            try:
                cap.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise DataError(f"{path}: video {name!r}, caption {i}: not valid Unicode ({exc.reason}: "
                                f"{cap[exc.start:exc.end]!r} at character {exc.start})") from None
    return data


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def vocab_fingerprint(word2int: dict[str, int]) -> str:
    """A vocabulary's identity (SHA-256 of its sorted ``word: id`` pairs, 16 hex digits): a model
    trained with one vocabulary reads other word ids wrong, silently."""
    import hashlib

    text = json.dumps(sorted(word2int.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_vocab(path: Path) -> dict[str, int]:
    data = load_json(path, "vocabulary (word2int)")
    if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
        raise DataError(f"{path}: word2int must map words to integer ids")
    return data


def _duplicates(items: Iterable[str]) -> list[str]:
    seen, dup = set(), []
    for x in items:
        if x in seen:
            dup.append(x)
        seen.add(x)
    return dup


def pad_or_subsample(features: np.ndarray, max_frames: int) -> tuple[np.ndarray, int]:
    """Fit a video to ``max_frames`` frames the official way.

    Longer videos keep frames ``round(linspace(0, n-1, max_frames))`` (numpy's round: half to
    even, as the official reader); shorter ones are zero-padded.

    Args:
        features: (n, D) frames.
        max_frames: target length.

    Returns:
        ((max_frames, D) float32, number of real frames).
    """
    n, dim = features.shape
    if n < max_frames:
        out = np.zeros((max_frames, dim), np.float32)
        out[:n] = features
        return out, n
    idx = kept_frames(n, max_frames)
    return np.ascontiguousarray(features[idx], dtype=np.float32), max_frames


def kept_frames(n: int, max_frames: int) -> np.ndarray:
    """(min(n, max_frames),) the frames :func:`pad_or_subsample` keeps of an n-frame video."""
    if n < max_frames:
        return np.arange(n, dtype=np.int32)
    return np.round(np.linspace(0, n - 1, max_frames)).astype(np.int32)


def kept_frame_times(times: Any, n: int, max_frames: int) -> Optional[list[float]]:
    """The times (seconds) of the frames the model sees, from a video's ``timestamps`` attribute
    (None when absent or not one per frame: a time is never made up)."""
    if not isinstance(times, (list, tuple, np.ndarray)) or len(times) != n:
        return None
    return [round(float(times[i]), 4) for i in kept_frames(n, max_frames).tolist()]


__all__ = ["SPLITS", "ROLES", "ROLE2ID", "BOS", "EOS", "UNK", "SplitFiles", "DatasetSpec", "FeatureStore",
           "load_json", "load_names", "load_captions", "load_vocab", "feature_key", "pad_or_subsample",
           "kept_frames", "kept_frame_times"]
