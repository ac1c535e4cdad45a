"""Interoperability with the official HANet code (github.com/Roc-Ng/HANet).

* :func:`from_official_state` / :func:`to_official_state` map parameter names between the
  official ``{"video_encoder": ..., "text_encoder": ...}`` state dicts (checkpoints ``*.th``)
  and ours, so the authors' trained weights load into :class:`~hanet.model.hanet.HANet`.
* :func:`init_like_official_` reproduces the official initialisation draw for draw, so that
  ``HANet(cfg, seed=s)`` equals the official model built after ``torch.manual_seed(s)``.

Official modules that the forward pass never uses (``conv1``, ``conv2`` on the video side,
``fc`` on the text side) have no counterpart here; ``bn_verb``/``bn_noun`` appear twice in
official state dicts (also as ``classifier_*.1``) because one module is registered twice.
"""

from __future__ import annotations

import math
import re
from typing import Mapping, Optional

import torch
from torch import nn

from hanet.errors import HanetError

# Our name -> official name, per side. Regexes handle layer indices.
_VIDEO_RULES: list[tuple[str, str]] = [
    (r"level_proj\.(\d+)\.(weight|bias)", r"level_embeds.\1.\2"),
    (r"global_attn\.(weight|bias)", r"ft_attn.\1"),
    (r"verb_conv\.(weight|bias)", r"classifier_verb.0.\1"),
    (r"verb_bn\.(.+)", r"bn_verb.\1"),
    (r"noun_conv\.(weight|bias)", r"classifier_noun.0.\1"),
    (r"noun_bn\.(.+)", r"bn_noun.\1"),
    (r"verb_se\.fc1\.weight", r"seblock1.fc.0.weight"),
    (r"verb_se\.fc2\.weight", r"seblock1.fc.2.weight"),
    (r"noun_se\.fc1\.weight", r"seblock2.fc.0.weight"),
    (r"noun_se\.fc2\.weight", r"seblock2.fc.2.weight"),
]
_TEXT_RULES: list[tuple[str, str]] = [
    (r"word_embed\.weight", r"embedding.we.weight"),
    (r"rnn\.(.+)", r"rnn.\1"),
    (r"word_attn\.(weight|bias)", r"ft_attn.\1"),
    (r"role_embed\.weight", r"role_embedding.weight"),
    (r"gcn\.(\d+)\.ctx_proj\.weight", r"gcn.layers.\1.ctx_layer.weight"),
    (r"gcn\.(\d+)\.norm\.(weight|bias)", r"gcn.layers.\1.layernorm.\2"),
    (r"gcn\.(\d+)\.query\.(weight|bias)", r"gcn.layers.\1.edge_attn_query.\2"),
    (r"gcn\.(\d+)\.key\.(weight|bias)", r"gcn.layers.\1.edge_attn_key.\2"),
    (r"verb_head\.(weight|bias)", r"classifier_verb.0.\1"),
    (r"verb_bn\.(.+)", r"bn_verb.\1"),
    (r"noun_head\.(weight|bias)", r"classifier_noun.0.\1"),
    (r"noun_bn\.(.+)", r"bn_noun.\1"),
]
_SIDES = {"video_encoder": _VIDEO_RULES, "text_encoder": _TEXT_RULES}


def official_name(ours: str) -> tuple[str, str]:
    """Map one of our parameter/buffer names to (official side, official name).

    Args:
        ours: e.g. ``video_encoder.level_proj.0.weight``.

    Returns:
        e.g. ``("video_encoder", "level_embeds.0.weight")``.
    """
    side, _, rest = ours.partition(".")
    for pattern, repl in _SIDES.get(side, []):
        if re.fullmatch(pattern, rest):
            return side, re.sub(pattern, repl, rest)
    raise KeyError(f"no official counterpart for {ours}")


def from_official_state(official: Mapping[str, Mapping[str, torch.Tensor]], model: nn.Module,
                        strict: bool = True) -> dict[str, torch.Tensor]:
    """Convert an official state (``{"video_encoder": sd, "text_encoder": sd}``) to ours.

    Args:
        official: the official per-side state dicts (tensors or numpy arrays).
        model: the :class:`HANet` whose names and shapes to fill.
        strict: raise if a tensor of ours is missing from ``official`` or has another shape.

    Returns:
        A state dict for ``model.load_state_dict``.
    """
    ours = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    for name, target in ours.items():
        side, off = official_name(name)
        if side not in official or off not in official[side]:
            missing.append(f"{side}/{off}")
            continue
        value = torch.as_tensor(official[side][off])
        if value.shape != target.shape:
            # Kernel-1 temporal convs are linear maps here: (C, h, 1) -> (C, h).
            if value.dim() == target.dim() + 1 and value.shape[-1] == 1 and value.shape[:-1] == target.shape:
                value = value[..., 0]
            else:
                raise HanetError(f"official {side}/{off} has shape {tuple(value.shape)}, "
                                 f"expected {tuple(target.shape)} for {name} (a checkpoint of another config?)")
        out[name] = value.to(target.dtype).clone()
    if missing and strict:
        raise HanetError(f"official state lacks {len(missing)} tensors, e.g. {', '.join(missing[:5])}")
    return out


def to_official_state(model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """Our state in the official layout (loadable by the official ``load_checkpoint``).

    The BatchNorm modules are written under both of their official names; the unused official
    modules are absent (the official loader keeps its own values for absent names).
    """
    out: dict[str, dict[str, torch.Tensor]] = {"video_encoder": {}, "text_encoder": {}}
    for name, value in model.state_dict().items():
        side, off = official_name(name)
        if off.startswith("classifier_") and off.endswith(".0.weight") and value.dim() == 2:
            value = value.unsqueeze(-1)
        out[side][off] = value.detach().cpu().clone()
        m = re.fullmatch(r"bn_(verb|noun)\.(.+)", off)
        if m:
            out[side][f"classifier_{m.group(1)}.1.{m.group(2)}"] = value.detach().cpu().clone()
    return out


def _linear_like_init_(weight: torch.Tensor, bias: Optional[torch.Tensor]) -> None:
    """torch's default Linear/Conv init (kaiming-uniform a=sqrt(5), bias U(+-1/sqrt(fan_in)))."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        nn.init.uniform_(bias, -bound, bound)


def _skip_like_conv1x1(channels: int) -> None:
    """Consume the random draws of an unused official Conv1d(c, c, 1) (weights and bias)."""
    _linear_like_init_(torch.empty(channels, channels, 1), torch.empty(channels))


@torch.no_grad()
def init_like_official_(model: nn.Module, seed: Optional[int] = None) -> None:
    """(Re)initialise a :class:`HANet` exactly as the official code initialises its modules.

    The official code builds the video encoder then the text encoder; each module draws from
    torch's global generator in construction order, and the text encoder then re-draws its
    word embeddings (uniform +-1/sqrt(dim_word)) and GRU weights (orthogonal, zero biases).
    We replay that sequence, including the draws of official modules we do not keep, so the
    result is identical draw for draw.

    Args:
        model: a :class:`HANet`.
        seed: call ``torch.manual_seed(seed)`` first (as the official training script's seed
            would); None continues from the current global generator state.
    """
    if seed is not None:
        torch.manual_seed(seed)
    v = model.video_encoder
    t = model.text_encoder
    d = v.global_attn.in_features

    for proj in v.level_proj:
        _linear_like_init_(proj.weight, proj.bias)
    _linear_like_init_(v.global_attn.weight, v.global_attn.bias)
    for bn in (v.verb_bn, v.noun_bn):
        bn.reset_parameters()
    _linear_like_init_(v.verb_conv.weight, v.verb_conv.bias)
    _linear_like_init_(v.noun_conv.weight, v.noun_conv.bias)
    for se in (v.verb_se, v.noun_se):
        _linear_like_init_(se.fc1.weight, None)
        _linear_like_init_(se.fc2.weight, None)
    _skip_like_conv1x1(d)  # official conv1 (unused)
    _skip_like_conv1x1(d)  # official conv2 (unused)

    nn.init.normal_(t.word_embed.weight)  # nn.Embedding's own init, then the official re-draw
    std = 1.0 / math.sqrt(t.word_embed.embedding_dim)
    nn.init.uniform_(t.word_embed.weight, -std, std)
    t.rnn.reset_parameters()
    for suffix in ("", "_reverse"):
        for kind in ("i", "h"):
            nn.init.orthogonal_(getattr(t.rnn, f"weight_{kind}h_l0{suffix}"))
            nn.init.zeros_(getattr(t.rnn, f"bias_{kind}h_l0{suffix}"))
    _linear_like_init_(t.word_attn.weight, t.word_attn.bias)
    nn.init.normal_(t.role_embed.weight)
    for layer in t.gcn:
        _linear_like_init_(layer.ctx_proj.weight, None)
        layer.norm.reset_parameters()
        if layer.attention:
            _linear_like_init_(layer.query.weight, layer.query.bias)
            _linear_like_init_(layer.key.weight, layer.key.bias)
    for bn in (t.verb_bn, t.noun_bn):
        bn.reset_parameters()
    _linear_like_init_(t.verb_head.weight, t.verb_head.bias)
    _linear_like_init_(t.noun_head.weight, t.noun_head.bias)
    # The official text encoder ends with an unused Linear(h, h); its draws come last and
    # change nothing we keep.


def load_official_checkpoint(path: str, model: nn.Module) -> None:
    """Load an official ``*.th`` checkpoint (``{"video_encoder": sd, "text_encoder": sd}``)."""
    from hanet.io import safe_torch_load

    state = safe_torch_load(path, "official checkpoint")
    if not isinstance(state, dict) or not {"video_encoder", "text_encoder"} <= set(state):
        raise HanetError(f"{path}: not an official HANet checkpoint (no video_encoder/text_encoder)")
    model.load_state_dict(from_official_state(state, model))


def export_official(model: nn.Module, config, checkpoint_path: str, config_path: Optional[str] = None) -> None:
    """Write a model in the authors' format: ``checkpoint_path`` (``{"video_encoder": ...,
    "text_encoder": ...}``, what their ``load_checkpoint`` reads) and their ``model.json``.

    Args:
        model: a :class:`HANet` of the ``hanet`` variant.
        config: its :class:`~hanet.config.HANetConfig`.
        checkpoint_path: the ``.th`` file to write.
        config_path: where their ``model.json`` goes (default: beside the checkpoint,
            ``<stem>.model.json``).

    Raises:
        HanetError: a global-only model, or settings the authors' code fixes otherwise
            (:data:`hanet.config.OFFICIAL_FIXED`).
    """
    import json
    from pathlib import Path

    from hanet.config import to_official
    from hanet.io import atomic_torch_save, atomic_write_text, check_output_file

    if getattr(model, "variant", "hanet") != "hanet":
        raise HanetError(f"a {model.variant!r} model has no counterpart in the authors' code (only the full HANet)")
    official_config = to_official(config)  # refuses what their code cannot build, before anything is written
    ckpt = Path(checkpoint_path)
    cfg_path = Path(config_path) if config_path else ckpt.with_name(ckpt.stem + ".model.json")
    check_output_file(ckpt, "checkpoint")
    check_output_file(cfg_path, "model.json")
    atomic_torch_save(to_official_state(model), ckpt)
    atomic_write_text(cfg_path, json.dumps(official_config, indent=2) + "\n")


__all__ = ["export_official", "official_name", "from_official_state", "to_official_state", "init_like_official_",
           "load_official_checkpoint"]
