"""Optical-flow images (hanet.video.flow): the direction of motion as a colour, and the flow
stream of ``hanet extract --flow``."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from hanet.cli import main
from hanet.video.flow import flow_fields, flow_images


def _square(x0: float, size: int = 128, side: int = 24, y0: float = 52) -> np.ndarray:
    """A textured square on a plain background, its top-left corner at (x0, y0)."""
    img = np.full((size, size, 3), 40, np.uint8)
    yy, xx = np.mgrid[0:side, 0:side]
    patch = (120 + 60 * np.sin(xx / 3.0) * np.cos(yy / 4.0)).astype(np.uint8)
    x, y = int(round(x0)), int(round(y0))
    img[y:y + side, x:x + side] = patch[..., None]
    return img


@pytest.mark.parametrize("dx, dy", [(2, 0), (-2, 0), (0, 2), (0, -2)])
def test_flow_points_where_the_square_goes(dx: int, dy: int) -> None:
    frames = [_square(50 + k * dx, y0=52 + k * dy) for k in range(3)]
    u, v = flow_fields(*(f[None] for f in frames), size=64)
    inside = (slice(None), slice(28, 36), slice(28, 36))  # the square's middle, at 64 px
    mu, mv = u[inside].mean(), v[inside].mean()
    # speeds are in pixels per frame at the flow images' size: half of 2 px at 128
    assert np.sign(round(mu, 1)) == np.sign(dx) and np.sign(round(mv, 1)) == np.sign(dy)
    assert abs(mu - dx / 2) < 0.6 and abs(mv - dy / 2) < 0.6
    still = flow_fields(*(frames[1][None],) * 3, size=64)
    assert np.abs(still[0]).max() == 0 and np.abs(still[1]).max() == 0


def test_flow_images_colour_the_direction_and_stay_white_where_still() -> None:
    right = flow_images(*(_square(50 + 2 * k)[None] for k in range(3)), size=64)[0]
    left = flow_images(*(_square(54 - 2 * k)[None] for k in range(3)), size=64)[0]
    assert right.shape == (64, 64, 3) and right.dtype == np.uint8
    assert (right[0:8, 0:8] == 255).all()  # the still background is white
    mid_r, mid_l = right[28:36, 28:36].reshape(-1, 3).mean(0), left[28:36, 28:36].reshape(-1, 3).mean(0)
    assert np.abs(mid_r - mid_l).max() > 60  # opposite directions, different colours
    assert (mid_r < 250).any() and (mid_l < 250).any()


def test_extract_appends_the_flow_stream(tmp_path: Path) -> None:
    from hanet.data.synth import SynthConfig, generate
    from hanet.video.backbones import get_backbone
    from hanet.video.decode import decode_video

    world = tmp_path / "world"
    generate(world, SynthConfig.preset("quick", num_videos=8, novel_fraction=0.0, novel_pairs=0), progress=False)
    video = sorted((world / "videos").glob("*.mp4"))[0]
    out = tmp_path / "f.h5"
    assert main(["extract", str(video), "--out", str(out), "--num-frames", "4", "--image-size", "64", "--motion",
                 "--flow", "--flow-size", "32", "--no-progress"]) == 0
    net = get_backbone("efficientnet-lite0", image_size=64)
    d = decode_video(video, num_frames=4, size=64, motion_gain=2.0, flow_size=32)
    assert d.flow.shape == (4, 32, 32, 3)
    with h5py.File(out) as f:
        assert f.attrs["streams"] == "rgb+motion+flow" and int(f.attrs["feature_dim"]) == 3 * 1280
        assert int(f.attrs["flow_size"]) == 32
        got = f[video.stem][...].astype(np.float32)
    import torch

    with torch.inference_mode():
        flow = net(net.preprocess(d.flow, size=32)).numpy()
    np.testing.assert_allclose(got[:, 2560:], flow.astype(np.float16).astype(np.float32), atol=0)
    assert main(["extract", str(video), "--out", str(tmp_path / "g.h5"), "--image-size", "64", "--flow",
                 "--flow-size", "48", "--no-progress"]) == 2  # not a divisor of the input side
