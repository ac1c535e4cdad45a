"""Record what the authors' own code makes of hanet's files, as golden files for the tests.

The tests never need the authors' code: this script is run once by hand, with a checkout of
github.com/Roc-Ng/HANet (commit e679703), and its outputs are committed. It contains none of
their code; it imports it from the folder given.

    git clone https://github.com/Roc-Ng/HANet /tmp/official
    .venv/bin/python scripts/record_authors_golden.py /tmp/official reader \\
        --prepared OUT_OF_hanet_prepare --captions ref_captions.json --out tests/text/data/authors_reader.npz

``reader``: every caption of a caption file, through their ``RoleGraphDataset.get_caption_outs``
(word ids, phrase masks, slot roles, graph) with our ``word2int.json`` and role graphs; the keys
of the npz are ``<index>/<field>`` in caption-file order, ``captions`` holds the captions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def record_reader(official: Path, prepared: Path, captions: Path, out: Path, max_words: int = 30,
                  num_verbs: int = 4, num_nouns: int = 6) -> None:
    sys.path.insert(0, str(official))
    np.bool = bool  # type: ignore[attr-defined]  # their reader uses the alias numpy removed
    import t2vretrieval.readers.rolegraphs as rolegraphs  # noqa: E402 - the authors' module

    given = json.loads(captions.read_text("utf-8"))
    names = prepared / "_names.npy"
    np.save(names, np.array(list(given), dtype=str))
    try:
        ds = rolegraphs.RoleGraphDataset(str(names), [], str(prepared / "word2int.json"), max_words, num_verbs,
                                         num_nouns, str(captions), str(prepared / "sent2rolegraph.augment.json"),
                                         is_train=False, _logger=None)
    finally:
        names.unlink()
    order = list(dict.fromkeys(c for caps in given.values() for c in caps))
    arrays: dict[str, np.ndarray] = {"captions": np.array(order, dtype=str)}
    for i, sent in enumerate(order):
        o = ds.get_caption_outs({}, sent, ds.ref_graphs[sent])  # a KeyError here: the files do not mix
        for k in ("sent_ids", "sent_lens", "verb_masks", "noun_masks", "node_roles", "rel_edges"):
            arrays[f"{i}/{k}"] = np.asarray(o[k])
    np.savez_compressed(out, **arrays)
    print(f"{out}: {len(order)} captions through the authors' reader")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("official", type=Path, help="checkout of the authors' code")
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("reader")
    r.add_argument("--prepared", type=Path, required=True)
    r.add_argument("--captions", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    if a.what == "reader":
        record_reader(a.official, a.prepared, a.captions, a.out)


if __name__ == "__main__":
    main()
