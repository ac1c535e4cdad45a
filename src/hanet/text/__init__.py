"""hanet.text: captions -> canonical text, concepts and semantic role graphs (``hanet prepare``).

Modules (spaCy is imported only where a parse happens):

* :mod:`hanet.text.normalize` -- ``normalize_caption``: the canonical MSR-VTT caption form,
  for prepared captions and typed queries alike;
* :mod:`hanet.text.rolegraph` -- ``RoleGraphParser``: role graphs (and concepts) from spaCy's
  dependency parse, in the released ``sent2rolegraph.augment.json`` format;
* :mod:`hanet.text.concepts` -- verb/noun concepts and their vocabularies and label files;
* :mod:`hanet.text.srl` -- graphs from AllenNLP SRL output (``sent2srl.json``);
* :mod:`hanet.text.prepare` -- ``prepare_dataset``: the whole ``hanet prepare`` command;
* :mod:`hanet.text.cache` -- per-caption parse records and their cache;
* :mod:`hanet.text.nlp` -- loading the spaCy pipeline once, lemmas, parts of speech;
* :mod:`hanet.text.quality` -- scores against the hand-labelled captions;
* :mod:`hanet.text.cli` -- the ``hanet prepare`` command line.

See ``docs/prepare.md``.
"""
