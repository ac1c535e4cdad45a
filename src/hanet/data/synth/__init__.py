"""The built-in synthetic video-text world (``hanet synth``).

Short clips of 1-3 coloured shapes on varied backgrounds doing actions (move, bounce, spin, grow,
shrink, blink, appear, disappear, change colour, fall, rise, stay still), sometimes two in
sequence, or interacting (collide, chase, pass); ten MSR-VTT-style captions per clip; the
released split format; and the ground truth (objects, attributes, per-frame tracks, action frame
spans) to judge a model's concepts against. See docs/synth.md.

Python API::

    from hanet.data.synth import SynthConfig, generate, load_annotations, true_words

    report = generate("work/synth", SynthConfig.preset("quick"), seed=0)
    anns = load_annotations("work/synth")          # {video_name: annotation}
    words = true_words(anns["video0"])             # TrueWords(verbs=..., nouns=..., ...)

* :func:`generate` (``out_dir, config, seed, progress=True, workers=None, force=False``)
  -> :class:`SynthReport`; idempotent (skips a complete world of the same config, seed and
  version; regenerates anything else).
* :class:`SynthConfig` (all knobs), :data:`PRESETS` (``default``, ``quick``).
* :func:`load_annotations`, :func:`load_world`, :func:`true_words`, :func:`action_spans`,
  :func:`verb_spans` (ground truth for judging concepts and where verb concepts peak).
* :func:`world_status`: whether a directory holds a given world, complete.
* :func:`oracle_recall`: how hard a split is, from captions and ground truth alone;
  :func:`t2v_breakdown`: where a model's text-to-video answers go right and wrong.

Submodules: ``config`` (knobs), ``vocab`` (words and their order), ``world`` (sampling scenes,
groups, splits; annotation format), ``render`` (numpy rasteriser), ``captions`` (grammar),
``writer`` (mp4 via PyAV), ``pipeline`` (files on disk), ``analysis`` (oracle difficulty),
``cli`` (``hanet synth``).

Names are imported lazily so that ``hanet --help`` does not pay for numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SynthConfig": "hanet.data.synth.config",
    "PRESETS": "hanet.data.synth.config",
    "WORLD_VERSION": "hanet.data.synth.config",
    "SPLITS": "hanet.data.synth.config",
    "generate": "hanet.data.synth.pipeline",
    "SynthReport": "hanet.data.synth.pipeline",
    "world_status": "hanet.data.synth.pipeline",
    "load_annotations": "hanet.data.synth.world",
    "load_world": "hanet.data.synth.world",
    "true_words": "hanet.data.synth.world",
    "TrueWords": "hanet.data.synth.world",
    "action_spans": "hanet.data.synth.world",
    "ActionSpan": "hanet.data.synth.world",
    "verb_spans": "hanet.data.synth.world",
    "oracle_recall": "hanet.data.synth.analysis",
    "t2v_breakdown": "hanet.data.synth.analysis",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hanet.data.synth' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
