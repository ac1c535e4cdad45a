"""Rasterising clips with numpy: backgrounds, shapes with soft edges, noise.

Drawing reads only a clip's annotation (see :mod:`hanet.data.synth.world`), so a clip can be
redrawn from ``annotations.json`` alone. Each shape is a union of parts (circles, convex polygons,
a five-fold star) given as a signed distance in *unit* coordinates (bounding radius 1); an object
is drawn for all its visible frames at once, in a window of fixed size around its centre:
coordinates of shape (frames, S, S), one vectorised distance evaluation, then an alpha blend of
each frame's window. Anti-aliasing is the 1-pixel ramp ``clip(0.5 - distance_px, 0, 1)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------------
# Shapes: signed distance in unit coordinates (negative inside), x right, y down
# ---------------------------------------------------------------------------------------------
Part = tuple[str, Any]


def _polygon(vertices: list[tuple[float, float]]) -> Part:
    """A convex polygon as half-planes: outward unit normals (n, 2) and offsets (n,)."""
    v = np.asarray(vertices, dtype=np.float32)
    centre = v.mean(axis=0)
    edges = np.roll(v, -1, axis=0) - v
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    # Point every normal away from the centre, whatever the vertex order.
    flip = np.einsum("ij,ij->i", normals, centre[None] - v) > 0
    normals[flip] *= -1
    offsets = np.einsum("ij,ij->i", normals, v)
    return ("poly", (normals, offsets))


def _regular(n: int, radius: float, start_deg: float) -> list[tuple[float, float]]:
    return [(radius * math.cos(math.radians(start_deg + 360 * i / n)),
             radius * math.sin(math.radians(start_deg + 360 * i / n))) for i in range(n)]


def _star_part(points: int, inner: float) -> Part:
    """A star by folding the angle into one half-sector, where its edge is one straight line."""
    half = math.pi / points
    tip = np.array([1.0, 0.0])
    valley = np.array([inner * math.cos(half), inner * math.sin(half)])
    edge = valley - tip
    normal = np.array([edge[1], -edge[0]])
    normal /= np.linalg.norm(normal)
    if normal @ (-tip) > 0:  # outward: away from the centre
        normal = -normal
    return ("star", (points, float(normal[0]), float(normal[1]), float(normal @ tip)))


SHAPE_PARTS: dict[str, list[Part]] = {
    "circle": [("circle", (0.0, 0.0, 0.82))],
    "square": [_polygon([(-0.7, -0.7), (0.7, -0.7), (0.7, 0.7), (-0.7, 0.7)])],
    "triangle": [_polygon(_regular(3, 1.0, -90))],
    "star": [_star_part(5, 0.45)],
    "diamond": [_polygon([(0.0, -1.0), (0.66, 0.0), (0.0, 1.0), (-0.66, 0.0)])],
    "hexagon": [_polygon(_regular(6, 0.92, 0))],
    "cross": [_polygon([(-0.88, -0.3), (0.88, -0.3), (0.88, 0.3), (-0.88, 0.3)]),
              _polygon([(-0.3, -0.88), (0.3, -0.88), (0.3, 0.88), (-0.3, 0.88)])],
    "heart": [_polygon([(0.0, 0.84), (0.62, 0.22), (0.0, -0.4), (-0.62, 0.22)]),
              ("circle", (-0.31, -0.09, 0.44)), ("circle", (0.31, -0.09, 0.44))],
}


def shape_distance(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance to a shape's outline in unit coordinates (negative inside).

    Exact for circles; for polygons the largest half-plane distance (exact inside and near
    edges, which is all anti-aliasing needs).

    Args:
        shape: a name of :data:`SHAPE_PARTS`.
        x: unit x coordinates (any shape).
        y: unit y coordinates (same shape as ``x``).

    Returns:
        The distances, shaped like ``x``.
    """
    out: np.ndarray | None = None
    for kind, data in SHAPE_PARTS[shape]:
        if kind == "circle":
            cx, cy, r = data
            d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2) - r
        elif kind == "poly":
            normals, offsets = data
            d = x * normals[0, 0] + y * normals[0, 1] - offsets[0]
            for (nx, ny), c in zip(normals[1:], offsets[1:]):
                d = np.maximum(d, x * nx + y * ny - c)
        else:  # star: fold into [0, pi/points], tip on the -y axis (pointing up)
            points, nx, ny, c = data
            sector = 2 * math.pi / points
            rho = np.sqrt(x * x + y * y)
            phi = np.arctan2(x, -y)  # 0 straight up
            phi = np.abs(np.mod(phi + sector / 2, sector) - sector / 2)
            d = rho * np.cos(phi) * nx + rho * np.sin(phi) * ny - c
        out = d if out is None else np.minimum(out, d)
    assert out is not None
    return out


# ---------------------------------------------------------------------------------------------
# Backgrounds
# ---------------------------------------------------------------------------------------------
def _second_tone(rgb: np.ndarray) -> np.ndarray:
    luminance = float(rgb @ np.array([0.299, 0.587, 0.114]))
    return np.clip(rgb * 0.78 if luminance > 80 else rgb + 38, 0, 255)


def render_background(background: dict[str, Any], width: int, height: int) -> np.ndarray:
    """Draw a background from its annotation.

    Args:
        background: ``{"kind", "rgb", "params"}`` as in the annotation.
        width: frame width.
        height: frame height.

    Returns:
        float32 array (height, width, 3) in 0..255.
    """
    rgb = np.asarray(background["rgb"], dtype=np.float32)
    kind = background["kind"]
    p = background.get("params", {})
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    if kind == "plain":
        return np.broadcast_to(rgb, (height, width, 3)).copy()
    if kind in ("gradient", "stripes"):
        ang = math.radians(float(p.get("angle", 0)))
        proj = xx * math.cos(ang) + yy * math.sin(ang)
        if kind == "gradient":
            t = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
            factor = 1 + float(p.get("strength", 0.35)) * (0.5 - t)
            return np.clip(rgb[None, None] * factor[..., None], 0, 255).astype(np.float32)
        band = (np.floor(proj / (float(p.get("period", 14)) / 2)) % 2).astype(bool)
    elif kind == "checker":
        cell = float(p.get("cell", 14))
        band = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(bool)
    elif kind == "blotches":
        rs = np.random.default_rng(int(p.get("seed", 0)))
        field = np.zeros((height, width), np.float32)
        for _ in range(4):
            wavelength = rs.uniform(30, 90)
            theta = rs.uniform(0, 2 * math.pi)
            field += np.cos((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi
                            / wavelength + rs.uniform(0, 2 * math.pi))
        field /= max(float(np.abs(field).max()), 1e-6)
        factor = 1 + float(p.get("strength", 0.15)) * field
        return np.clip(rgb[None, None] * factor[..., None], 0, 255).astype(np.float32)
    else:
        raise ValueError(f"unknown background kind {kind!r}")
    out = np.empty((height, width, 3), np.float32)
    out[:] = rgb
    out[band] = _second_tone(rgb)
    return out


# ---------------------------------------------------------------------------------------------
# Objects and clips
# ---------------------------------------------------------------------------------------------
def draw_object(canvas: np.ndarray, obj: dict[str, Any], antialias: bool = True) -> None:
    """Alpha-blend one object into every frame of a canvas, in place.

    Args:
        canvas: float32 (frames, height, width, 3).
        obj: the object's annotation (``shape`` and ``track``).
        antialias: soft 1-pixel edges; else hard ones.
    """
    F, H, W, _ = canvas.shape
    tr = obj["track"]
    alpha = np.asarray(tr["alpha"], np.float32)
    frames = np.nonzero(alpha > 1e-3)[0]
    if frames.size == 0:
        return
    cx = np.asarray(tr["x"], np.float32)[frames]
    cy = np.asarray(tr["y"], np.float32)[frames]
    r = np.maximum(np.asarray(tr["radius"], np.float32)[frames], 0.5)
    ang = np.asarray(tr["angle"], np.float32)[frames]
    rgb = np.asarray(tr["rgb"], np.float32)[frames]
    S = 2 * int(math.ceil(float(r.max()) + 1.5))
    ix = np.floor(cx).astype(np.int64) - S // 2
    iy = np.floor(cy).astype(np.int64) - S // 2
    grid = np.arange(S, dtype=np.float32) + 0.5
    u = (ix[:, None] + grid[None]) - cx[:, None]  # (n, S): pixel-centre offsets
    v = (iy[:, None] + grid[None]) - cy[:, None]
    inv = (1.0 / r)[:, None, None]
    if np.any(ang != 0):
        c = np.cos(ang)[:, None, None]
        s = np.sin(ang)[:, None, None]
        # Unit coordinates: rotate the pixel offset back by the object's angle.
        X = (c * u[:, None, :] + s * v[:, :, None]) * inv
        Y = (c * v[:, :, None] - s * u[:, None, :]) * inv
    else:
        X = np.broadcast_to(u[:, None, :] * inv, (len(frames), S, S))
        Y = np.broadcast_to(v[:, :, None] * inv, (len(frames), S, S))
    d = shape_distance(obj["shape"], X, Y) * r[:, None, None]
    if antialias:
        a = np.clip(0.5 - d, 0.0, 1.0)
    else:
        a = (d <= 0).astype(np.float32)
    a *= alpha[frames][:, None, None]
    for k, f in enumerate(frames):
        x0, y0 = int(ix[k]), int(iy[k])
        xa, xb = max(x0, 0), min(x0 + S, W)
        ya, yb = max(y0, 0), min(y0 + S, H)
        if xa >= xb or ya >= yb:
            continue
        w = a[k, ya - y0:yb - y0, xa - x0:xb - x0, None]
        region = canvas[f, ya:yb, xa:xb]
        region += w * (rgb[k] - region)


_BANK_FRAMES = 16
_BANK_MARGIN = 32
_banks: dict[tuple[int, int, int], np.ndarray] = {}


def noise_bank(seed: int, height: int, width: int) -> np.ndarray:
    """Unit Gaussian noise frames shared by a world's clips (cached per process).

    Drawing fresh noise for every pixel of every frame costs as much as drawing the shapes;
    a clip instead takes each frame's noise from a random frame and offset of this bank.

    Args:
        seed: the world's seed.
        height: frame height.
        width: frame width.

    Returns:
        float32 array (16, height + 32, width + 32).
    """
    key = (int(seed), int(height), int(width))
    if key not in _banks:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 4]))
        _banks.clear()  # one world at a time; keep memory flat
        _banks[key] = rng.standard_normal(
            (_BANK_FRAMES, height + _BANK_MARGIN, width + _BANK_MARGIN), dtype=np.float32)
    return _banks[key]


def render_clip(annotation: dict[str, Any], noise_std: float = 0.0, antialias: bool = True,
                rng: np.random.Generator | None = None, bank: np.ndarray | None = None
                ) -> np.ndarray:
    """Draw every frame of one clip.

    Args:
        annotation: the clip's annotation (size, background, objects with tracks).
        noise_std: standard deviation of brightness noise (0..255 units; 0: none).
        antialias: soft edges.
        rng: the clip's pixel generator (noise); required when ``noise_std > 0``.
        bank: noise frames from :func:`noise_bank`; None draws fresh noise.

    Returns:
        uint8 array (frames, height, width, 3), RGB.
    """
    F, H, W = annotation["num_frames"], annotation["height"], annotation["width"]
    canvas = np.empty((F, H, W, 3), np.float32)
    canvas[:] = render_background(annotation["background"], W, H)
    # Last object first: the main object (index 0) ends on top.
    for obj in reversed(annotation["objects"]):
        draw_object(canvas, obj, antialias)
    if noise_std > 0:
        if rng is None:
            raise ValueError("render_clip: noise_std > 0 needs an rng")
        # Brightness-only noise: like sensor grain, and it leaves the colour names true.
        std = np.float32(noise_std)
        if bank is None:
            canvas += rng.standard_normal((F, H, W, 1), dtype=np.float32) * std
        else:
            picks = rng.integers(0, [bank.shape[0], bank.shape[1] - H + 1, bank.shape[2] - W + 1],
                                 size=(F, 3))
            for f, (k, dy, dx) in enumerate(picks):
                canvas[f] += bank[k, dy:dy + H, dx:dx + W, None] * std
    canvas += 0.5
    np.clip(canvas, 0, 255, out=canvas)
    return canvas.astype(np.uint8)
