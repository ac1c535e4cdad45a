"""ResNet (He et al. 2016) with bottleneck blocks, in torchvision's parameter layout.

The MSR-VTT features the HANet authors release are the 2048-d global-average-pooled output of an
ImageNet ResNet-152; this module rebuilds that network so users can extract matching features for
their own videos. No weights are downloaded: ``build`` loads a local torchvision-format state dict
(``resnet152-*.pth``, the ``conv1``/``bn1``/``layer1.0.conv1``/``fc`` naming) given by path.
Input: RGB in [0, 1] normalised by the ImageNet mean/std, 224 px.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hanet.errors import DataError
from hanet.video.backbones.base import Backbone

LAYERS: dict[str, tuple[int, int, int, int]] = {
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
    "resnet152": (3, 8, 36, 3),
}


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, as torchvision "v1.5") -> 1x1, expansion 4."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(Backbone):
    """Bottleneck ResNet feature extractor: ``(N, 3, S, S)`` -> ``(N, 2048)`` pooled features.

    Args:
        layers: blocks per stage; ``(3, 8, 36, 3)`` is ResNet-152.
        name: registry name stored in the output file.
        image_size: input side (224 for the released features).
        num_classes: size of the ImageNet head ``fc`` kept for ``logits``.
    """

    feature_dim = 2048
    mean = (0.485 * 255, 0.456 * 255, 0.406 * 255)
    std = (0.229 * 255, 0.224 * 255, 0.225 * 255)

    def __init__(self, layers: Sequence[int] = LAYERS["resnet152"], name: str = "resnet152",
                 image_size: int = 224, num_classes: int = 1000):
        super().__init__()
        self.name = name
        self.image_size = int(image_size)
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (n, width) in enumerate(zip(layers, (64, 128, 256, 512))):
            blocks = []
            for b in range(n):
                blocks.append(Bottleneck(cin, width, stride=2 if (b == 0 and i > 0) else 1))
                cin = width * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    @property
    def classifier(self) -> nn.Module:  # type: ignore[override]
        return self.fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features: ``(N, 3, S, S)`` -> ``(N, 2048)`` (the ``avgpool`` output)."""
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


def build(name: str, weights: str | None, image_size: int | None = None) -> ResNet:
    """Build a ResNet and load a local torchvision-format state dict.

    Args:
        name: ``resnet50``, ``resnet101`` or ``resnet152``.
        weights: path of the state dict (required: nothing is downloaded).
        image_size: input side; None for 224.

    Returns:
        The model in eval mode.

    Raises:
        DataError: no path given, or the file is unreadable or does not match the architecture.
    """
    from hanet.video.backbones import load_state_dict

    if name not in LAYERS:
        raise DataError(f"unknown ResNet {name!r}; known: {sorted(LAYERS)}")
    if weights is None:
        raise DataError(
            f"{name}: pass the path of a torchvision-format ImageNet state dict with --weights "
            f"(e.g. resnet152-394f9c45.pth); hanet downloads nothing"
        )
    model = ResNet(LAYERS[name], name, image_size or 224)
    load_state_dict(model, weights)
    return model.eval()
