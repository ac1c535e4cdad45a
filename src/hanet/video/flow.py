"""Optical-flow images: where each part of a frame moves, coloured so that an image network sees it.

A frame's flow is estimated between its neighbours (Lucas-Kanade: per pixel, the least-squares
motion that explains the brightness change in a window around it, from image gradients) and
drawn as an image: the hue gives the direction, the saturation the speed, and still parts are
white (the coding optical-flow benchmarks use). Two-stream action networks feed an image network
with optical flow for the same reason hanet does: a network that sees appearance pools away
*where* things move, and "moves to the left" and "moves to the right" look alike to it; in a flow
image they are different colours. The frame-difference images of ``hanet.video.decode`` keep
what changed (an object appearing, blinking, changing colour) and its colours; flow images add
which way it went. Both are cheap: numpy on the decoded frames, no second network.
"""

from __future__ import annotations

import numpy as np

#: Luma weights (BT.601) for the grey images the flow is estimated on.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
#: Half-width of the window each pixel's motion is fitted in (pixels of the flow image).
WINDOW = 4
#: Speed (pixels per frame, at 128 px per side) at which a colour is fully saturated.
SATURATION_SPEED = 4.0
#: Tikhonov term of the 2x2 systems: where the image has no texture the motion is 0, not noise.
RIDGE = 1.0


def _box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window around every pixel of (N, H, W), edges repeated."""
    k = 2 * r + 1
    p = np.pad(x, ((0, 0), (r + 1, r), (r + 1, r)), mode="edge")
    c = p.cumsum(1).cumsum(2)
    return (c[:, k:, k:] - c[:, :-k, k:] - c[:, k:, :-k] + c[:, :-k, :-k]) / (k * k)


def _grey(frames: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, size, size) float32 luma, averaged down by an integer factor."""
    g = frames.astype(np.float32) @ _LUMA
    n, h, w = g.shape
    f = max(1, min(h, w) // size)
    if f > 1:
        g = g[:, :size * f, :size * f].reshape(n, size, f, size, f).mean((2, 4))
    return g


def flow_fields(before: np.ndarray, current: np.ndarray, after: np.ndarray, size: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel motion (pixels per frame, at ``size``) of each sampled frame.

    Args:
        before, current, after: ``(N, H, W, 3)`` uint8: each sampled frame and its neighbours.
        size: side of the flow images (H and W a multiple of it, as the decoder's square frames are).

    Returns:
        ``(u, v)``, each ``(N, size, size)`` float32: rightward and downward speed.
    """
    a, c, b = (_box(_grey(x, size), 1) for x in (before, current, after))
    ix, iy = np.gradient(c, axis=2), np.gradient(c, axis=1)
    it = (b - a) / 2
    sxx, syy, sxy = _box(ix * ix, WINDOW), _box(iy * iy, WINDOW), _box(ix * iy, WINDOW)
    sxt, syt = _box(ix * it, WINDOW), _box(iy * it, WINDOW)
    det = sxx * syy - sxy * sxy + 1e-2 * (sxx + syy) + RIDGE
    return (sxy * syt - syy * sxt) / det, (sxy * sxt - sxx * syt) / det


def flow_images(before: np.ndarray, current: np.ndarray, after: np.ndarray, size: int) -> np.ndarray:
    """Colour-coded optical flow of each sampled frame (see the module docstring).

    Args:
        before, current, after: ``(N, H, W, 3)`` uint8 frames (each sampled frame and its neighbours).
        size: side of the output images.

    Returns:
        ``(N, size, size, 3)`` uint8 RGB: white where still, the hue of the direction where moving.
    """
    u, v = flow_fields(before, current, after, size)
    scale = SATURATION_SPEED * size / 128.0
    sat = np.clip(np.sqrt(u * u + v * v) / scale, 0.0, 1.0)
    hue = (np.arctan2(-v, -u) / np.pi + 1.0) * 3.0  # [0, 6): the colour wheel's six sectors
    sector = np.floor(hue).astype(np.int64) % 6
    frac = hue - np.floor(hue)
    one = np.ones_like(sat)
    p, q, t = 1 - sat, 1 - sat * frac, 1 - sat * (1 - frac)
    r = np.choose(sector, [one, q, p, p, t, one])
    g = np.choose(sector, [t, one, one, q, p, p])
    b = np.choose(sector, [p, p, t, one, one, q])
    return np.clip(np.rint(np.stack([r, g, b], -1) * 255.0), 0, 255).astype(np.uint8)


__all__ = ["flow_fields", "flow_images", "WINDOW", "SATURATION_SPEED"]
