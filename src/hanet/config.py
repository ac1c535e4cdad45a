"""Typed configuration for HANet: the model, the training schedule, and presets.

The presets hold the official values of ``data/msrvtt/model.json`` and ``data/vatex/model.json``
of the authors' code (Roc-Ng/HANet). :func:`HANetConfig.from_official` reads any official
``model.json`` (as a dict), so every configuration the authors' code accepts maps onto ours.

Example:
    >>> cfg = get_preset("msrvtt")
    >>> cfg.model.video.dim_embed, cfg.train.batch_size
    (1024, 64)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from hanet.errors import HanetError


@dataclass
class VideoEncoderConfig:
    """Multilevel video encoder.

    Attributes:
        dim_fts: feature sizes of the input files; they are concatenated on the last axis.
        dim_embed: size of the joint embedding space (must equal the text ``rnn_hidden_size``).
        dropout: dropout on the three level projections.
        se_reduction: squeeze-excitation bottleneck ratio (channels // r).
        verb_kernel: temporal kernel of the verb concept classifier (the noun one is 1).
    """

    dim_fts: tuple[int, ...] = (2048,)
    dim_embed: int = 1024
    dropout: float = 0.2
    se_reduction: int = 16
    verb_kernel: int = 5

    @property
    def dim_input(self) -> int:
        return int(sum(self.dim_fts))


@dataclass
class TextEncoderConfig:
    """Role-graph text encoder.

    Attributes:
        num_words: vocabulary size (ids 0, 1, 2 are ``<bos>``, ``<eos>``, ``<unk>``).
        dim_word: word embedding size.
        rnn_hidden_size: BiGRU hidden size; the two directions are averaged, so this is also
            the size of every text embedding.
        dropout: dropout on word embeddings.
        fix_word_embed: freeze the word embeddings.
        num_roles: number of semantic-role embeddings.
        gcn_num_layers: number of graph-convolution layers over the role graph.
        gcn_attention: use the attention GCN (the official configs all do).
        gcn_dropout: dropout on the GCN's context messages.
    """

    num_words: int = 10510
    dim_word: int = 300
    rnn_hidden_size: int = 1024
    dropout: float = 0.2
    fix_word_embed: bool = False
    num_roles: int = 16
    gcn_num_layers: int = 1
    gcn_attention: bool = True
    gcn_dropout: float = 0.5


@dataclass
class ModelConfig:
    """HANet: encoders plus the matching and loss settings.

    Attributes:
        video: video encoder settings.
        text: text encoder settings.
        num_verb_concepts: size of the verb concept vocabulary (official: 512).
        num_noun_concepts: size of the noun concept vocabulary (official: 1024).
        num_selected_verbs: verb concepts picked per video to form local clips (official: 10).
        num_selected_nouns: noun concepts picked per video (official: 20).
        mil_divisor: top-k MIL pooling uses k = ceil(length / mil_divisor) frames or words.
        verb_window: frames of a verb clip (centred on the concept's peak frame).
        noun_topk: frames averaged into a noun clip.
        max_frames_in_video: longer videos are subsampled to this many frames.
        max_words_in_sent: longer captions are truncated.
        num_verbs: verb phrase slots per caption.
        num_nouns: noun phrase (argument) slots per caption.
        simattn_sigma: softmax temperature of the phrase-to-frame attention.
        margin: hinge margin.
        max_violation: hardest negative (True) or sum over negatives.
        hard_topk: number of hardest negatives averaged.
        loss_direction: ``bi``, ``i2t`` or ``t2i``.
        concept_score_weight: weight of the hinge on the concept (Jaccard) score (official 0.1).
        concept_bce_weight: weight of each of the four concept BCE terms (official 0.01).
    """

    video: VideoEncoderConfig = field(default_factory=VideoEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    num_verb_concepts: int = 512
    num_noun_concepts: int = 1024
    num_selected_verbs: int = 10
    num_selected_nouns: int = 20
    mil_divisor: int = 8
    verb_window: int = 5
    noun_topk: int = 3
    max_frames_in_video: int = 20
    max_words_in_sent: int = 30
    num_verbs: int = 4
    num_nouns: int = 6
    simattn_sigma: float = 4.0
    margin: float = 0.2
    max_violation: bool = True
    hard_topk: int = 1
    loss_direction: str = "bi"
    concept_score_weight: float = 0.1
    concept_bce_weight: float = 0.01

    def validate(self) -> None:
        """Raise :class:`HanetError` for settings the model cannot run with."""
        _check_ranges(self, "model", _MODEL_RANGES)
        _check_ranges(self.video, "model.video", _VIDEO_RANGES)
        _check_ranges(self.text, "model.text", _TEXT_RANGES)
        if self.video.dim_embed != self.text.rnn_hidden_size:
            raise HanetError(
                f"video.dim_embed ({self.video.dim_embed}) must equal text.rnn_hidden_size "
                f"({self.text.rnn_hidden_size}): both sides embed into one space")
        if self.num_selected_verbs > self.num_verb_concepts:
            raise HanetError("num_selected_verbs exceeds num_verb_concepts")
        if self.num_selected_nouns > self.num_noun_concepts:
            raise HanetError("num_selected_nouns exceeds num_noun_concepts")
        if self.loss_direction not in ("bi", "i2t", "t2i"):
            raise HanetError(f"loss_direction must be bi, i2t or t2i, not {self.loss_direction!r}")
        if self.verb_window % 2 != 1:
            raise HanetError("verb_window must be odd (a window centred on the peak frame)")
        if min(self.video.dim_fts) <= 0 or self.text.num_words <= 3:
            raise HanetError("dim_fts must be positive and num_words > 3")


#: (field, kind, low, high): what a field may hold ("int" or "float", both ends included; None: open)
_Range = tuple[str, str, Optional[float], Optional[float]]
_VIDEO_RANGES: tuple[_Range, ...] = (
    ("dim_embed", "int", 1, 1 << 16), ("dropout", "float", 0.0, 0.99), ("se_reduction", "int", 1, 1 << 16),
    ("verb_kernel", "int", 1, 99))
_TEXT_RANGES: tuple[_Range, ...] = (
    ("num_words", "int", 0, 10_000_000), ("dim_word", "int", 1, 4096), ("rnn_hidden_size", "int", 1, 1 << 16),
    ("dropout", "float", 0.0, 0.99), ("num_roles", "int", 1, 1024), ("gcn_num_layers", "int", 0, 64),
    ("gcn_dropout", "float", 0.0, 0.99))
_MODEL_RANGES: tuple[_Range, ...] = (
    ("num_verb_concepts", "int", 1, 65536), ("num_noun_concepts", "int", 1, 65536),
    ("num_selected_verbs", "int", 1, 65536), ("num_selected_nouns", "int", 1, 65536), ("mil_divisor", "int", 1, 1024),
    ("verb_window", "int", 1, 99), ("noun_topk", "int", 1, 99), ("max_frames_in_video", "int", 1, 10_000),
    ("max_words_in_sent", "int", 1, 1000), ("num_verbs", "int", 1, 64), ("num_nouns", "int", 1, 64),
    ("simattn_sigma", "float", 1e-6, 1e6), ("margin", "float", 0.0, 100.0), ("hard_topk", "int", 1, 1 << 16),
    ("concept_score_weight", "float", 0.0, 1e3), ("concept_bce_weight", "float", 0.0, 1e3))


def _check_ranges(obj: Any, where: str, ranges: Sequence[_Range]) -> None:
    """Raise :class:`HanetError` naming the first field of ``obj`` outside its range or type."""
    for name, kind, lo, hi in ranges:
        v = getattr(obj, name)
        ok_type = (isinstance(v, int) and not isinstance(v, bool)) if kind == "int" else \
            (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
        if not ok_type or (lo is not None and v < lo) or (hi is not None and v > hi):
            what = "an integer" if kind == "int" else "a finite number"
            raise HanetError(f"{where}.{name} = {v!r}: must be {what} in [{lo:g}, {hi:g}]")
    dims = getattr(obj, "dim_fts", None)
    if dims is not None and not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 1 << 20 for d in dims):
        raise HanetError(f"{where}.dim_fts = {dims!r}: must be feature sizes in [1, {1 << 20}]")


@dataclass
class TrainConfig:
    """Training schedule.

    Attributes:
        batch_size: training pairs per step (official ``trn_batch_size``).
        eval_batch_size: videos (and captions) per encoding chunk at evaluation
            (official ``tst_batch_size``; it also decides how videos are padded, see
            ``docs/quirks.md``).
        epochs: maximum epochs (official ``num_epoch``).
        lr: Adam learning rate (official ``base_lr``).
        early_stop: stop after this many epochs without a better validation rsum.
        max_steps: stop after this many optimiser steps (0: no limit).
        seed: seed of the initialisation, shuffling and dropout.
        num_workers: data-loading worker processes.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast).
        grad_clip: clip the gradient norm (0: off; the official code does not clip).
        decay_boundaries: epochs at which the learning rate is multiplied by ``decay_rate``
            (official ``decay_boundarys`` and ``decay_rate``: a MultiStepLR stepped once per
            epoch, so epoch e trains at ``lr * decay_rate ** (number of boundaries <= e)``).
            The official configs leave it off (no boundaries, rate 1).
        decay_rate: the factor applied at each boundary.
    """

    batch_size: int = 64
    eval_batch_size: int = 300
    epochs: int = 50
    lr: float = 1e-4
    early_stop: int = 10
    max_steps: int = 0
    seed: int = 0
    num_workers: int = 2
    precision: str = "fp32"
    grad_clip: float = 0.0
    decay_boundaries: tuple[int, ...] = ()
    decay_rate: float = 1.0

    def validate(self) -> None:
        """Raise :class:`HanetError` for a schedule that cannot run (it would crash or silently do nothing)."""

        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise HanetError(f"train.{name} = {getattr(self, name)!r}: must be {what}")

        for name in ("batch_size", "eval_batch_size", "epochs"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, name, "an integer >= 1")
        for name in ("early_stop", "max_steps", "num_workers", "seed"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 0, name, "an integer >= 0")
        need(self.seed <= 2**32 - 1, "seed", "at most 2**32 - 1 (what torch, numpy and Python all take)")
        need(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0, "lr",
             "a positive finite number")
        need(isinstance(self.grad_clip, (int, float)) and math.isfinite(self.grad_clip) and self.grad_clip >= 0,
             "grad_clip", "a finite number >= 0 (0: off)")
        need(isinstance(self.decay_rate, (int, float)) and math.isfinite(self.decay_rate) and self.decay_rate > 0,
             "decay_rate", "a positive finite number")
        need(all(isinstance(b, int) and b >= 0 for b in self.decay_boundaries), "decay_boundaries",
             "epoch numbers >= 0")
        need(self.precision in ("fp32", "bf16", "fp16"), "precision", "fp32, bf16 or fp16")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of (0-based) ``epoch`` under the step decay."""
        return self.lr * self.decay_rate ** sum(1 for b in self.decay_boundaries if b <= epoch)


@dataclass
class HANetConfig:
    """Everything a run needs: the model and its training schedule."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = "custom"

    # ------------------------------------------------------------------ conversions
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise :class:`HanetError` for a model or schedule that cannot run."""
        self.model.validate()
        self.train.validate()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HANetConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error (they are likely typos)."""
        if not isinstance(data, dict):
            raise HanetError(f"a config must be a JSON object (mapping), not a {type(data).__name__}")
        data = copy.deepcopy(data)
        _known(cls, data, "the config")
        for part in ("model", "train"):
            if not isinstance(data.get(part, {}), dict):
                raise HanetError(f"config section {part!r} must be a mapping, not {type(data[part]).__name__}")
        model = data.get("model", {})
        for part in ("video", "text"):
            if not isinstance(model.get(part, {}), dict):
                raise HanetError(f"config section 'model.{part}' must be a mapping")
        video = VideoEncoderConfig(**_known(VideoEncoderConfig, model.pop("video", {}), "model.video"))
        video.dim_fts = tuple(int(d) for d in video.dim_fts)
        text = TextEncoderConfig(**_known(TextEncoderConfig, model.pop("text", {}), "model.text"))
        mcfg = ModelConfig(video=video, text=text, **_known(ModelConfig, model, "model"))
        tcfg = TrainConfig(**_known(TrainConfig, data.get("train", {}), "train"))
        tcfg.decay_boundaries = tuple(int(b) for b in tcfg.decay_boundaries)
        return cls(model=mcfg, train=tcfg, name=data.get("name", "custom"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_official(cls, official: dict[str, Any] | str, name: str = "official") -> "HANetConfig":
        """Build a config from the authors' ``model.json`` (a dict or its JSON text).

        Keys of the official format that do not change the model or schedule (``monitor_iter``,
        ``save_iter``, ...) are ignored; the concept counts and the numbers of selected concepts
        are literals in the official code, so they keep their official values here.
        """
        if isinstance(official, str):
            official = json.loads(official)
        sub = official.get("subcfgs", {})
        v = sub.get("video_encoder", {})
        t = sub.get("text_encoder", {})
        if v.get("share_enc", False):
            raise HanetError("share_enc=true is not supported (no official HANet config uses it)")
        if int(v.get("num_levels", 3)) != 3:
            raise HanetError("HANet has exactly three levels (num_levels must be 3)")
        if t.get("rnn_type", "gru") != "gru" or not t.get("bidirectional", True) or int(t.get("num_layers", 1)) != 1:
            raise HanetError("only the official one-layer bidirectional GRU text encoder is supported")
        if official.get("attn_fusion", "embed") != "embed":
            raise HanetError("only attn_fusion='embed' (the HANet setting) is supported")
        if official.get("loss_weights") is not None:
            raise HanetError("loss_weights other than null are not supported (HANet uses null)")
        video = VideoEncoderConfig(
            dim_fts=tuple(int(d) for d in v.get("dim_fts", [2048])),
            dim_embed=int(v.get("dim_embed", 1024)),
            dropout=float(v.get("dropout", 0.0)),
        )
        text = TextEncoderConfig(
            num_words=int(t.get("num_words", 0)),
            dim_word=int(t.get("dim_word", 300)),
            rnn_hidden_size=int(t.get("rnn_hidden_size", 1024)),
            dropout=float(t.get("dropout", 0.5)),
            fix_word_embed=bool(t.get("fix_word_embed", False)),
            num_roles=int(t.get("num_roles", 16)),
            gcn_num_layers=int(t.get("gcn_num_layers", 1)),
            gcn_attention=bool(t.get("gcn_attention", False)),
            gcn_dropout=float(t.get("gcn_dropout", 0.5)),
        )
        model = ModelConfig(
            video=video,
            text=text,
            max_frames_in_video=int(official.get("max_frames_in_video") or 20),
            max_words_in_sent=int(official.get("max_words_in_sent", 30)),
            num_verbs=int(official.get("num_verbs", 4)),
            num_nouns=int(official.get("num_nouns", 6)),
            simattn_sigma=float(official.get("simattn_sigma", 4)),
            margin=float(official.get("margin", 0.2)),
            # the authors' RoleGraphMatchModelConfig defaults to hardest negatives
            max_violation=bool(official.get("max_violation", True)),
            hard_topk=int(official.get("hard_topk", 1)),
            loss_direction=str(official.get("loss_direction", "bi")),
        )
        train = TrainConfig(
            batch_size=int(official.get("trn_batch_size", 128)),
            eval_batch_size=int(official.get("tst_batch_size", 128)),
            epochs=int(official.get("num_epoch", 100)),
            lr=float(official.get("base_lr", 1e-4)),
            decay_boundaries=tuple(int(b) for b in official.get("decay_boundarys") or ()),
            decay_rate=float(official.get("decay_rate", 1.0)),
        )
        cfg = cls(model=model, train=train, name=name)
        cfg.model.validate()
        return cfg


#: Settings that are literals in the authors' code (not in their ``model.json``): a model with
#: other values cannot be built by it, so it cannot be exported to it.
OFFICIAL_FIXED: dict[str, Any] = {
    "num_verb_concepts": 512, "num_noun_concepts": 1024, "num_selected_verbs": 10, "num_selected_nouns": 20,
    "mil_divisor": 8, "verb_window": 5, "noun_topk": 3, "concept_score_weight": 0.1, "concept_bce_weight": 0.01,
    "video.se_reduction": 16, "video.verb_kernel": 5,
}


def to_official(config: HANetConfig) -> dict[str, Any]:
    """The authors' ``model.json`` for a config (what their ``RoleGraphMatchModelConfig.load`` reads).

    Raises:
        HanetError: the config uses a setting the authors' code fixes to another value
            (:data:`OFFICIAL_FIXED`): their code could not build that model.
    """
    m, t = config.model, config.train

    def value(key: str) -> Any:
        obj: Any = m
        for part in key.split("."):
            obj = getattr(obj, part)
        return obj

    differ = [f"{k}={value(k)!r} (theirs: {v!r})" for k, v in OFFICIAL_FIXED.items() if value(k) != v]
    if differ:
        raise HanetError("the authors' code cannot build this model: it fixes " + ", ".join(differ))
    module = {"freeze": False, "lr_mult": 1.0, "opt_alg": "Adam", "weight_decay": 0}
    return {
        "subcfgs": {
            "video_encoder": {**module, "dim_fts": list(m.video.dim_fts), "dim_embed": m.video.dim_embed,
                              "dropout": m.video.dropout, "num_levels": 3, "share_enc": False},
            "text_encoder": {**module, "num_words": m.text.num_words, "dim_word": m.text.dim_word,
                             "fix_word_embed": m.text.fix_word_embed, "rnn_type": "gru", "bidirectional": True,
                             "rnn_hidden_size": m.text.rnn_hidden_size, "num_layers": 1, "dropout": m.text.dropout,
                             "num_roles": m.text.num_roles, "gcn_num_layers": m.text.gcn_num_layers,
                             "gcn_attention": m.text.gcn_attention, "gcn_dropout": m.text.gcn_dropout},
        },
        "trn_batch_size": t.batch_size, "tst_batch_size": t.eval_batch_size, "num_epoch": t.epochs,
        "val_per_epoch": True, "save_per_epoch": True, "val_iter": -1, "save_iter": -1, "monitor_iter": 1000,
        "summary_iter": 1000, "base_lr": t.lr, "decay_schema": None, "decay_boundarys": list(t.decay_boundaries),
        "decay_rate": t.decay_rate, "max_frames_in_video": m.max_frames_in_video,
        "max_words_in_sent": m.max_words_in_sent, "margin": m.margin, "max_violation": m.max_violation,
        "hard_topk": m.hard_topk, "loss_direction": m.loss_direction, "num_verbs": m.num_verbs,
        "num_nouns": m.num_nouns, "attn_fusion": "embed", "simattn_sigma": m.simattn_sigma, "loss_weights": None,
    }


def apply_overrides(config: HANetConfig, items: Sequence[str]) -> HANetConfig:
    """Set config fields from ``section.field=value`` strings (``model.video.dropout=0.1``,
    ``train.decay_boundaries=10,15``), each read as the field's type.

    Raises:
        HanetError: not ``KEY=VALUE``, an unknown section or field, or a value of another type.
    """
    for item in items:
        if "=" not in item:
            raise HanetError(f"--set takes KEY=VALUE (e.g. model.video.dropout=0.1), got {item!r}")
        key, value = item.split("=", 1)
        _set_field(config, key.split("."), value)
    return config


def _set_field(cfg: Any, keys: list[str], value: str) -> None:
    obj = cfg
    for k in keys[:-1]:
        if not hasattr(obj, k):
            raise HanetError(f"--set: no config section {'.'.join(keys[:-1])!r}")
        obj = getattr(obj, k)
    name = keys[-1]
    flds = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
    if name not in flds:
        raise HanetError(f"--set: unknown field {'.'.join(keys)!r}")
    cur = getattr(obj, name)
    if dataclasses.is_dataclass(cur):
        raise HanetError(f"--set {'.'.join(keys)}: is a section; set one of its fields "
                         f"({', '.join(f.name for f in dataclasses.fields(cur))})")
    try:
        if isinstance(cur, bool):
            if value.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(value)
            val: Any = value.lower() in ("1", "true", "yes", "on")
        elif isinstance(cur, int):
            val = int(value)
        elif isinstance(cur, float):
            val = float(value)
        elif isinstance(cur, tuple):
            val = tuple(json.loads(value) if value.startswith("[") else [int(x) for x in value.split(",")])
        else:
            val = value
    except ValueError:
        raise HanetError(f"--set {'.'.join(keys)}: cannot read {value!r} as {type(cur).__name__}") from None
    setattr(obj, name, val)


def is_official_config(data: Any) -> bool:
    """Whether a parsed JSON config is in the authors' ``model.json`` format (it has ``subcfgs``)."""
    return isinstance(data, dict) and "subcfgs" in data


def load_config_file(path: str | Path) -> HANetConfig:
    """Read a config file: ours (:meth:`HANetConfig.to_dict`) or the authors' ``model.json``.

    Raises:
        HanetError: the file is missing, not JSON, or not a valid config of either format
            (unknown keys of ours are an error: they are likely typos).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HanetError(f"{p}: config file not found") from None
    except IsADirectoryError:
        raise HanetError(f"{p}: is a folder, not a config file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HanetError(f"{p}: not a readable JSON config ({exc})") from None
    try:
        if is_official_config(data):
            return HANetConfig.from_official(data, name=p.stem)
        return HANetConfig.from_dict(data)
    except HanetError as exc:
        raise HanetError(f"{p}: {exc}") from None
    except (TypeError, ValueError) as exc:  # a field of the wrong type
        raise HanetError(f"{p}: a field has the wrong type ({exc})") from None


def _known(kind: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise HanetError(f"unknown config field(s) in {where}: {', '.join(unknown)}")
    return values


# ---------------------------------------------------------------------- presets
def _msrvtt() -> HANetConfig:
    """MSR-VTT: ResNet-152 features (2048-d), 20 frames (official data/msrvtt/model.json)."""
    return HANetConfig(
        name="msrvtt",
        model=ModelConfig(
            video=VideoEncoderConfig(dim_fts=(2048,), dim_embed=1024, dropout=0.2),
            text=TextEncoderConfig(num_words=10510, dim_word=300, rnn_hidden_size=1024, dropout=0.2,
                                   gcn_attention=True, gcn_dropout=0.5),
            max_frames_in_video=20,
        ),
        train=TrainConfig(batch_size=64, eval_batch_size=300, epochs=50, lr=1e-4),
    )


def _vatex() -> HANetConfig:
    """VATEX: I3D features (1024-d), 30 frames (official data/vatex/model.json)."""
    return HANetConfig(
        name="vatex",
        model=ModelConfig(
            video=VideoEncoderConfig(dim_fts=(1024,), dim_embed=1024, dropout=0.2),
            text=TextEncoderConfig(num_words=10424, dim_word=300, rnn_hidden_size=1024, dropout=0.2,
                                   gcn_attention=True, gcn_dropout=0.5),
            max_frames_in_video=30,
        ),
        train=TrainConfig(batch_size=64, eval_batch_size=300, epochs=50, lr=1e-4),
    )


def _clip() -> HANetConfig:
    """CLIP-family frame features (ViT-B/32's 512-d image embedding by default; the width of the
    feature file is read from it), 12 frames as CLIP4Clip samples them; everything else is the
    MSR-VTT preset's."""
    cfg = _msrvtt()
    cfg.name = "clip"
    cfg.model.video.dim_fts = (512,)
    cfg.model.max_frames_in_video = 12
    return cfg


def _synth() -> HANetConfig:
    """The built-in synthetic world: EfficientNet-Lite0 features (1280-d), sized for a CPU.

    The concept vocabularies of the synthetic world are small, so fewer concepts are
    selected per video; everything else keeps HANet's structure.
    """
    return HANetConfig(
        name="synth",
        model=ModelConfig(
            video=VideoEncoderConfig(dim_fts=(1280,), dim_embed=256, dropout=0.2, se_reduction=16),
            text=TextEncoderConfig(num_words=0, dim_word=64, rnn_hidden_size=256, dropout=0.2,
                                   gcn_attention=True, gcn_dropout=0.2),
            num_verb_concepts=64,
            num_noun_concepts=128,
            num_selected_verbs=4,
            num_selected_nouns=6,
            max_frames_in_video=12,
        ),
        train=TrainConfig(batch_size=64, eval_batch_size=128, epochs=30, lr=5e-4, early_stop=8,
                          num_workers=0),
    )


PRESETS: dict[str, Callable[[], HANetConfig]] = {
    "msrvtt": _msrvtt,
    "vatex": _vatex,
    "clip": _clip,
    "synth": _synth,
}


def get_preset(name: str) -> HANetConfig:
    """Return a fresh copy of a named preset (``msrvtt``, ``vatex``, ``clip`` or ``synth``)."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise HanetError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
