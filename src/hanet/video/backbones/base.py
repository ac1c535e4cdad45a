"""The small interface every frame backbone implements.

A backbone is an ``nn.Module`` that maps a batch of RGB frames to one pooled feature vector per
frame. Besides ``forward`` it carries what the extractor needs to feed it:

- ``name``: the registry name (``"efficientnet-lite0"``, ``"resnet152"``, ...);
- ``feature_dim``: the length of the pooled feature (1280 for EfficientNet-Lite, 2048 for
  ResNet-152);
- ``image_size``: the square input side in pixels that frames are resized and cropped to;
- ``mean`` / ``std``: per-channel normalisation in 0..255 pixel units;
- ``preprocess(frames)``: uint8 frames ``(N, H, W, 3)`` -> float tensor ``(N, 3, S, S)`` on the
  backbone's device (resize of the short side to ``S`` and a centre crop when the frames are
  not already ``S x S``, then normalisation);
- ``classifier``: the ImageNet head (``nn.Linear(feature_dim, 1000)``) when the weights carry
  one, used by ``logits`` (tests check the weights are really the pretrained ones).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def resize_center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the short side to ``size`` and crop the centre square.

    The same geometry as the decoder's in-FFmpeg resize (``hanet.video.decode``), for frames
    that did not come through it (still images, frames decoded at full size).

    Args:
        frames: ``(N, 3, H, W)`` float tensor.
        size: output side ``S``.

    Returns:
        ``(N, 3, S, S)`` float tensor.
    """
    h, w = frames.shape[-2:]
    if (h, w) == (size, size):
        return frames
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    # antialias: frames are usually much larger than S, and plain bicubic would alias
    frames = F.interpolate(frames, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    return frames[..., top : top + size, left : left + size]


class Backbone(nn.Module):
    """Base class: frames -> pooled features. Subclasses implement ``forward_features``."""

    name: str = "backbone"
    feature_dim: int = 0
    image_size: int = 224
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    classifier: nn.Module | None = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features.

        Args:
            x: ``(N, 3, S, S)`` normalised float images.

        Returns:
            ``(N, feature_dim)`` features.
        """
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of normalised images ``(N, 3, S, S)`` -> ``(N, feature_dim)``."""
        return self.forward_features(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits ``(N, 1000)`` of normalised images ``(N, 3, S, S)``."""
        if self.classifier is None:
            raise RuntimeError(f"{self.name}: the loaded weights have no classifier head")
        return self.classifier(self.forward_features(x))

    def preprocess(self, frames: np.ndarray | torch.Tensor, size: int | None = None) -> torch.Tensor:
        """uint8 RGB frames -> normalised network input on this backbone's device.

        Args:
            frames: ``(N, H, W, 3)`` uint8 RGB (numpy or torch). Frames that are already
                ``S x S`` (the decoder resizes in FFmpeg) are only normalised.
            size: the input side, when not :attr:`image_size` (the flow stream's smaller images;
                the convolutional backbones take any size).

        Returns:
            ``(N, 3, S, S)`` float32 tensor on ``self.device``.
        """
        if isinstance(frames, np.ndarray) and not frames.flags.writeable:
            frames = frames.copy()  # torch refuses to wrap read-only memory (PIL images)
        x = torch.as_tensor(frames)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"{self.name}: expected frames (N, H, W, 3), got {tuple(x.shape)}")
        # move uint8 to the device first: a quarter of the bytes of float32 over PCIe
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        side = int(size or self.image_size)
        if x.shape[-2:] != (side, side):
            # bicubic overshoots at edges; clamp back to the range of real pixels
            x = resize_center_crop(x, side).clamp_(0.0, 255.0)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        inv_std = 1.0 / torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return ((x - mean) * inv_std).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def extract(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``preprocess`` then ``forward`` without autograd.

        Args:
            frames: ``(N, H, W, 3)`` uint8 RGB frames.

        Returns:
            ``(N, feature_dim)`` float32 features on ``self.device``.
        """
        return self.forward(self.preprocess(frames)).float()
