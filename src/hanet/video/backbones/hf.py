"""CLIP and SigLIP vision towers from a local Hugging Face folder, through transformers.

``hanet extract --backbone hf:PATH`` takes a folder as ``save_pretrained`` writes it
(``config.json``, ``model.safetensors``, ``preprocessor_config.json``): nothing is downloaded.

| ``config.json`` model_type | module | feature (``--hf-output``) |
| --- | --- | --- |
| ``clip_vision_model``, ``clip`` | ``CLIPVisionModelWithProjection`` | ``projected`` (default): the image embedding CLIP matches text with (``get_image_features``); ``pooled``: the pooled output before the projection |
| ``siglip_vision_model``, ``siglip``, ``siglip2_vision_model``, ``siglip2`` | ``SiglipVisionModel`` / ``Siglip2VisionModel`` | the pooled output (the attention-pooling head) |

Frames are prepared by the folder's own image processor (its resize, crop, rescale, mean and
std), so the features are those transformers gives for the same frames. Only ``safetensors``
weights are read (a pickled ``pytorch_model.bin`` could run code when loaded). transformers is
the optional extra ``hanet[hf]``; without it only this backbone is unavailable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hanet.errors import DataError
from hanet.video.backbones.base import Backbone

#: model_type -> (transformers class name, which output is the feature by default)
TOWERS: dict[str, tuple[str, str]] = {
    "clip_vision_model": ("CLIPVisionModelWithProjection", "projected"),
    "clip": ("CLIPVisionModelWithProjection", "projected"),
    "siglip_vision_model": ("SiglipVisionModel", "pooled"),
    "siglip": ("SiglipVisionModel", "pooled"),
    "siglip2_vision_model": ("Siglip2VisionModel", "pooled"),
    "siglip2": ("Siglip2VisionModel", "pooled"),
}
#: model types of text encoders, named as such when given as a vision tower
TEXT_TYPES = frozenset({"clip_text_model", "siglip_text_model", "siglip2_text_model", "bert", "roberta", "t5",
                        "gpt2", "llama", "distilbert", "xlm-roberta", "mpnet"})
OUTPUTS = ("projected", "pooled")
PREFIX = "hf:"


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise DataError("the hf: backbones need transformers: pip install 'hanet[hf]' (it installs beside the "
                        "CPU build of torch, without torchvision)") from None
    return transformers


def read_tower_config(folder: Path) -> dict[str, Any]:
    """The folder's ``config.json``, checked to be a supported vision tower with safetensors weights.

    Raises:
        DataError: naming the folder: not a folder, no config or weights, a text model, an
            architecture hanet does not take.
    """
    if not folder.exists():
        raise DataError(f"{folder}: no such model folder")
    if not folder.is_dir():
        raise DataError(f"{folder}: is a file; --backbone hf: takes a folder as save_pretrained writes it")
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise DataError(f"{folder}: no config.json (a Hugging Face model folder has config.json, "
                        f"model.safetensors and preprocessor_config.json)")
    try:
        cfg = json.loads(cfg_path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DataError(f"{cfg_path}: not a readable JSON config ({exc})") from None
    if not isinstance(cfg, dict):
        raise DataError(f"{cfg_path}: expected a JSON object")
    kind = cfg.get("model_type")
    if kind in TEXT_TYPES or (isinstance(kind, str) and kind.endswith("_text_model")):
        raise DataError(f"{folder}: is a text model ({kind}), not a vision tower; give the image tower's folder")
    if kind not in TOWERS:
        raise DataError(f"{folder}: model_type {kind!r} is not a supported vision tower (supported: "
                        f"{', '.join(sorted(TOWERS))})")
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickled = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt*")]
        raise DataError(f"{folder}: no model.safetensors" + (f" (only {', '.join(pickled)}: pickled weights are not "
                                                               f"read, as loading them could run code; convert "
                                                               f"them with save_pretrained)" if pickled else ""))
    if not (folder / "preprocessor_config.json").is_file():
        raise DataError(f"{folder}: no preprocessor_config.json (the frames' resize, crop, mean and std)")
    return cfg


class HFVisionTower(Backbone):
    """A transformers vision tower behind hanet's :class:`Backbone` interface.

    Args:
        folder: the model folder.
        output: ``projected`` (CLIP's image embedding) or ``pooled``.
    """

    mean = (0.0, 0.0, 0.0)
    std = (1.0, 1.0, 1.0)

    def __init__(self, folder: str | os.PathLike, output: str | None = None) -> None:
        super().__init__()
        folder = Path(folder)
        cfg = read_tower_config(folder)
        tf = _transformers()
        cls_name, default = TOWERS[cfg["model_type"]]
        output = output or default
        if output not in OUTPUTS:
            raise DataError(f"--hf-output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        if output == "projected" and default != "projected":
            raise DataError(f"{folder}: a {cfg['model_type']} tower has no projection; use --hf-output pooled")
        try:
            model, info = getattr(tf, cls_name).from_pretrained(str(folder), output_loading_info=True,
                                                                use_safetensors=True, local_files_only=True)
        except (OSError, ValueError, RuntimeError, TypeError, KeyError) as exc:
            raise DataError(f"{folder}: its weights do not load into a {cls_name} ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:300]})") from None
        bad = {k: v for k, v in info.items() if k in ("missing_keys", "mismatched_keys") and v}
        if bad:
            raise DataError(f"{folder}: the weights do not match the config ("
                            + "; ".join(f"{k.replace('_', ' ')}: {list(v)[:3]}" for k, v in bad.items()) + ")")
        try:
            # the PIL backend: the torchvision one would need torchvision (a CUDA torch build with it)
            processor = tf.AutoImageProcessor.from_pretrained(str(folder), local_files_only=True, backend="pil")
        except (OSError, ValueError, ImportError, KeyError, TypeError) as exc:
            raise DataError(f"{folder}: preprocessor_config.json does not load ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:300]})") from None
        self.model = model.eval()
        self.processor = processor
        self.output = output
        self.folder = folder
        self.name = f"{PREFIX}{folder.name}"
        vc = getattr(model.config, "vision_config", model.config)
        self.feature_dim = int(getattr(model.config, "projection_dim", 0) or vc.hidden_size) \
            if output == "projected" else int(vc.hidden_size)
        self.image_size = int(getattr(vc, "image_size", 224))

    def preprocess(self, frames: np.ndarray | torch.Tensor, size: int | None = None) -> torch.Tensor:
        """uint8 RGB frames ``(N, H, W, 3)`` -> the tower's ``pixel_values`` by its own processor
        (which decides the size: ``size`` does not apply)."""
        arr = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"{self.name}: expected frames (N, H, W, 3), got {tuple(arr.shape)}")
        px = self.processor(images=list(arr), return_tensors="pt")["pixel_values"]
        return px.to(self.device)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(next(self.model.parameters()).dtype)
        if self.output == "projected":
            return self.model(pixel_values=x).image_embeds
        # CLIP's pooled output is its vision transformer's, before the projection
        tower = getattr(self.model, "vision_model", self.model)
        return tower(pixel_values=x).pooler_output

    @property
    def classifier(self) -> None:  # type: ignore[override]
        return None


def build(name: str, weights: str | None = None, image_size: int | None = None, output: str | None = None
          ) -> HFVisionTower:
    """``hf:PATH`` -> the tower of that folder (``weights`` and ``image_size`` do not apply: the
    folder holds its weights and its processor decides the size)."""
    if weights is not None:
        raise DataError("--weights does not apply to an hf: backbone (the folder holds its weights)")
    folder = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if not folder:
        raise DataError("--backbone hf: needs a folder: hf:PATH")
    tower = HFVisionTower(folder, output)
    if image_size is not None and int(image_size) != tower.image_size:
        raise DataError(f"--image-size {image_size}: {folder} takes {tower.image_size} px frames (its processor's)")
    return tower


__all__ = ["HFVisionTower", "TOWERS", "OUTPUTS", "PREFIX", "build", "read_tower_config"]
