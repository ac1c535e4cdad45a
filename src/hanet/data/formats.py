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
                   verb_concepts_all=r(c.get("verb_all")), noun_concepts_all=r(c.get("noun_all")), source=src)

    def to_dict(self) -> dict[str, Any]:
        """Our description format (absolute paths)."""
        return {
            "splits": {s: {"names": str(f.names), "features": [str(x) for x in f.features],
                           "captions": str(f.captions), "rolegraphs": str(f.rolegraphs)} for s, f in self.splits.items()},
            "word2int": str(self.word2int),
            "int2word": None if self.int2word is None else str(self.int2word),
            "concepts": {"verb": _s(self.verb_concepts), "noun": _s(self.noun_concepts),
                         "verb_all": _s(self.verb_concepts_all), "noun_all": _s(self.noun_concepts_all)},
        }

    def split(self, name: str) -> SplitFiles:
        if name not in self.splits:
            raise DataError(f"dataset {self.source}: no split {name!r} (has {', '.join(self.splits) or 'none'})")
        return self.splits[name]

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
def load_json(path: Path, what: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: {what} file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: {what} file is not valid JSON ({exc})") from None


def load_names(path: Path) -> list[str]:
    """A split's video names (numpy array of str)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: names file not found") from None
    except ValueError:
        try:  # older releases pickled object arrays of str
            arr = np.load(path, allow_pickle=True)
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"{path}: not a numpy array of names ({exc})") from None
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path}: not a numpy array of names ({exc})") from None
    names = [str(n) for n in np.asarray(arr).reshape(-1)]
    if not names:
        raise DataError(f"{path}: the split is empty (no video names)")
    dup = _duplicates(names)
    if dup:
        raise DataError(f"{path}: duplicate video names: {', '.join(dup[:10])}")
    return names


def load_captions(path: Path) -> dict[str, list[str]]:
    data = load_json(path, "captions")
    if not isinstance(data, dict) or not all(isinstance(v, list) and all(isinstance(c, str) for c in v)
                                             for v in data.values()):
        raise DataError(f"{path}: captions must be {{video_name: [caption, ...]}}")
    return data


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


def feature_key(name: str) -> str:
    """HDF5 dataset key of a video name: VATEX names contain '/', stored as '_'."""
    return name.replace("/", "_")


class FeatureStore:
    """Frame features of one split, from one or more HDF5 files concatenated on the last axis.

    Files are opened lazily, once per process, so a store can be sent to DataLoader workers.

    Args:
        files: HDF5 files with one (frames, dim) dataset per video.
    """

    def __init__(self, files: list[Path]) -> None:
        if not files:
            raise DataError("no feature files given")
        for f in files:
            if not Path(f).is_file():
                raise DataError(f"{f}: feature file not found")
        self.files = [Path(f) for f in files]
        self._handles: Optional[list[Any]] = None
        self._pid: Optional[int] = None

    def __getstate__(self) -> dict[str, Any]:
        return {"files": self.files, "_handles": None, "_pid": None}

    def _open(self) -> list[Any]:
        if self._handles is None or self._pid != os.getpid():
            import h5py

            handles = []
            for f in self.files:
                try:
                    handles.append(h5py.File(f, "r"))
                except Exception as exc:  # noqa: BLE001
                    raise DataError(f"{f}: not a readable HDF5 feature file ({exc})") from None
            self._handles, self._pid = handles, os.getpid()
        return self._handles

    def dims(self) -> list[int]:
        """Feature size of each file (from its first dataset)."""
        out = []
        for f, h in zip(self.files, self._open()):
            key = next(iter(h.keys()), None)
            if key is None:
                raise DataError(f"{f}: the feature file holds no videos")
            shape = h[key].shape
            if len(shape) != 2:
                raise DataError(f"{f}: dataset {key!r} has shape {shape}; expected (frames, dim)")
            out.append(int(shape[1]))
        return out

    def missing(self, names: Iterable[str]) -> list[tuple[str, Path]]:
        """(name, file) for every video absent from a file."""
        out = []
        for f, h in zip(self.files, self._open()):
            keys = set(h.keys())
            out.extend((n, f) for n in names if feature_key(n) not in keys)
        return out

    def get(self, name: str) -> np.ndarray:
        """(frames, sum of dims) float32 features of a video; DataError if absent, empty or NaN."""
        parts = []
        key = feature_key(name)
        for f, h in zip(self.files, self._open()):
            if key not in h:
                raise DataError(f"{f}: no features for video {name!r}")
            arr = np.asarray(h[key][...], dtype=np.float32)
            if arr.ndim != 2 or arr.shape[0] == 0:
                raise DataError(f"{f}: features of {name!r} have shape {arr.shape}; expected (frames>0, dim)")
            parts.append(arr)
        if len({p.shape[0] for p in parts}) > 1:
            raise DataError(f"video {name!r} has different frame counts in {', '.join(map(str, self.files))}: "
                            f"{[p.shape[0] for p in parts]} (files are concatenated per frame)")
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        if not np.isfinite(out).all():
            raise DataError(f"{self.files[0] if len(self.files) == 1 else self.files}: "
                            f"features of {name!r} contain NaN or inf")
        return out

    def close(self) -> None:
        for h in self._handles or []:
            h.close()
        self._handles = None


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
    idx = np.round(np.linspace(0, n - 1, max_frames)).astype(np.int32)
    return np.ascontiguousarray(features[idx], dtype=np.float32), max_frames


__all__ = ["SPLITS", "ROLES", "ROLE2ID", "BOS", "EOS", "UNK", "SplitFiles", "DatasetSpec", "FeatureStore",
           "load_json", "load_names", "load_captions", "load_vocab", "feature_key", "pad_or_subsample"]
