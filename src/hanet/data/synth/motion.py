"""Realising a scene spec: per-frame tracks of every object and the frame span of every action
(:func:`realize`, the annotation the renderer draws and the captions read)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from hanet.data.synth import vocab
from hanet.data.synth.config import SynthConfig
from hanet.data.synth.scenes import SceneSpec


# ---------------------------------------------------------------------------------------------
# Realising specs: per-frame tracks and spans
# ---------------------------------------------------------------------------------------------
def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass
class _Motion:
    """Per-frame state of one object relative to its start position."""

    dx: np.ndarray
    dy: np.ndarray
    scale: np.ndarray
    angle: np.ndarray
    alpha: np.ndarray
    mix: np.ndarray  # 0: colour, 1: colour_to

    @classmethod
    def rest(cls, n: int) -> "_Motion":
        return cls(np.zeros(n), np.zeros(n), np.ones(n), np.zeros(n), np.ones(n), np.zeros(n))


#: Frames an action lasts at the least (half a second at the default 8 fps).
MIN_ACTION_FRAMES = 4


def _spans(actions: Sequence[str], F: int, rng: np.random.Generator, rest_max: float = 0.0,
           timed: bool = False) -> list[tuple[int, int]]:
    """Frame spans of an object's actions, in order and back to back.

    With ``timed``, the actions start after a still stretch and end before another, each drawn
    uniformly up to ``rest_max`` of the clip (shortened when the actions would not fit), and two
    actions split the time between at a uniform point: when an action happens and how long it
    lasts vary from clip to clip, as in real videos, so no rule that ignores the pixels can say
    where it is. Without, the actions fill the clip (companions, and worlds before version 3).
    A ``still`` action reaches the clip's edge: a rest beside it would look the same.
    """
    n_actions = len(actions)
    lo, hi = 0, F
    need = n_actions * MIN_ACTION_FRAMES
    if timed and rest_max > 0:
        top = int(math.floor(rest_max * F))
        lo, hi = int(rng.integers(0, top + 1)), F - int(rng.integers(0, top + 1))
        lo = 0 if actions[0] == "still" else lo
        hi = F if actions[-1] == "still" else hi
        while hi - lo < need:  # not enough room left for the actions: give back rest
            lo, hi = max(lo - 1, 0), min(hi + 1, F)
    if n_actions == 1:
        return [(lo, hi)]
    if timed:
        k = int(rng.integers(lo + MIN_ACTION_FRAMES, hi - MIN_ACTION_FRAMES + 1))
    else:
        k = min(max(int(round(F * rng.uniform(0.4, 0.6))), MIN_ACTION_FRAMES), F - MIN_ACTION_FRAMES)
    return [(lo, k), (k, hi)]


def _solo_motion(actions: Sequence[str], spans: Sequence[tuple[int, int]], F: int, r0: float,
                 W: int, H: int, fps: float, rng: np.random.Generator
                 ) -> tuple[_Motion, list[dict[str, float]]]:
    """Chain single-object actions; each starts where the previous one ended."""
    m = _Motion.rest(F)
    x = y = ang = mix = 0.0
    s = 1.0
    unit = min(W, H)
    all_params: list[dict[str, float]] = []
    for action, (a, b) in zip(actions, spans):
        n = b - a
        k = np.arange(n, dtype=float)
        tau = (k + 1) / n           # motion: the span's last frame completes it
        tau0 = k / max(n - 1, 1)    # visibility and colour: first frame at 0, last at 1
        ddx = np.zeros(n)
        ddy = np.zeros(n)
        ds = np.ones(n)
        dang = np.zeros(n)
        alpha = np.ones(n)
        dmix = np.zeros(n)
        p: dict[str, float] = {}
        if action in ("move_left", "move_right"):
            d = rng.uniform(0.3, 0.5) * W
            ddx = (d if action == "move_right" else -d) * tau
            p = {"distance_px": d}
        elif action in ("move_up", "move_down"):
            d = rng.uniform(0.3, 0.45) * H
            ddy = (d if action == "move_down" else -d) * tau
            p = {"distance_px": d}
        elif action == "bounce":
            bounces = int(min(max(round(n / 6), 1), 4))
            h = rng.uniform(0.15, 0.25) * H
            ddy = -h * np.abs(np.sin(np.pi * bounces * tau))
            p = {"bounces": bounces, "height_px": h}
        elif action == "spin":
            turns = rng.uniform(0.5, 1.25) * (1 if rng.random() < 0.5 else -1)
            dang = 2 * np.pi * turns * tau
            p = {"turns": turns}
        elif action == "grow":
            g = min(rng.uniform(1.6, 2.0), max(0.3 * unit / (r0 * s), 1.2))
            ds = 1 + (g - 1) * _smooth(tau)
            p = {"factor": g}
        elif action == "shrink":
            g = rng.uniform(0.4, 0.6)
            ds = 1 + (g - 1) * _smooth(tau)
            p = {"factor": g}
        elif action == "blink":
            half = max(1, int(round(fps / 4)))
            alpha = np.where((k.astype(int) // half) % 2 == 1, 0.0, 1.0)
            p = {"period_frames": 2 * half}
        elif action == "appear":
            alpha = _smooth((tau0 - 0.2) / 0.4)
        elif action == "disappear":
            alpha = 1 - _smooth((tau0 - 0.4) / 0.4)
        elif action == "change_colour":
            dmix = _smooth((tau0 - 0.3) / 0.4)
        elif action == "fall":
            d = rng.uniform(0.45, 0.6) * H
            ddy = d * tau**2
            p = {"distance_px": d}
        elif action == "rise":
            d = rng.uniform(0.35, 0.5) * H
            wobble = 0.04 * W
            ddy = -d * tau
            ddx = wobble * np.sin(2 * np.pi * 1.5 * tau)
            p = {"distance_px": d, "wobble_px": wobble}
        elif action != "still":
            raise ValueError(f"unknown action {action!r}")
        if action == "appear":
            m.alpha[:a] = 0.0  # not there before it appears
        m.dx[a:b] = x + ddx
        m.dy[a:b] = y + ddy
        m.scale[a:b] = s * ds
        m.angle[a:b] = ang + dang
        m.alpha[a:b] = alpha
        m.mix[a:b] = mix + (1 - mix) * dmix if action == "change_colour" else mix
        x, y, s, ang, mix = m.dx[b - 1], m.dy[b - 1], m.scale[b - 1], m.angle[b - 1], m.mix[b - 1]
        # still after the action: it stays as the action left it (a blink ends visible)
        m.dx[b:], m.dy[b:], m.scale[b:], m.angle[b:], m.mix[b:] = x, y, s, ang, mix
        m.alpha[b:] = 1.0 if action == "blink" else alpha[-1]
        all_params.append({key: round(float(v), 3) for key, v in p.items()})
    return m, all_params


def _start_range(offset: np.ndarray, radius: np.ndarray, length: int, margin: float
                 ) -> tuple[float, float]:
    lo = float(np.max(radius + margin - offset))
    hi = float(np.min(length - radius - margin - offset))
    return lo, hi


def _place_solo(m: _Motion, r0: float, W: int, H: int, rng: np.random.Generator,
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """A random start position that keeps the whole track inside the frame (None: impossible)."""
    radius = r0 * m.scale
    lo_x, hi_x = _start_range(m.dx, radius, W, 2.0)
    lo_y, hi_y = _start_range(m.dy, radius, H, 2.0)
    if lo_x > hi_x or lo_y > hi_y:
        return None
    x0 = rng.uniform(lo_x, hi_x)
    y0 = rng.uniform(lo_y, hi_y)
    return x0 + m.dx, y0 + m.dy


def _fit_solo(actions: Sequence[str], spans: Sequence[tuple[int, int]], F: int, r0: float,
              W: int, H: int, fps: float, rng: np.random.Generator
              ) -> tuple[_Motion, list[dict[str, float]]]:
    """Motion whose track fits in the frame; long paths are shortened until they do."""
    m, params = _solo_motion(actions, spans, F, r0, W, H, fps, rng)
    for _ in range(12):
        radius = r0 * m.scale
        lo_x, hi_x = _start_range(m.dx, radius, W, 2.0)
        lo_y, hi_y = _start_range(m.dy, radius, H, 2.0)
        if lo_x <= hi_x and lo_y <= hi_y:
            break
        # Shrink the offending displacement about the start; growth is capped in _solo_motion.
        if lo_x > hi_x:
            m.dx *= 0.85
        if lo_y > hi_y:
            m.dy *= 0.85
        if m.scale.max() * r0 > 0.45 * min(W, H):
            m.scale = 1 + (m.scale - 1) * 0.85
    return m, params


def _interaction_tracks(kind: str, ra: float, rb: float, F: int, W: int, H: int,
                        rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Absolute tracks (xa, ya, xb, yb) of an interaction between objects a (subject) and b."""
    t = np.arange(F, dtype=float) / max(F - 1, 1)
    m = 2.0
    rmax = max(ra, rb)
    params: dict[str, Any] = {}
    circle_chase = kind == "chase" and rng.random() < 0.5
    if kind == "chase" and not circle_chase:
        horizontal = rng.random() < 0.7
        L = W if horizontal else H
        gap = (ra + rb) * 1.4 + rng.uniform(0, 0.1) * L
        # A path too short to show a chase (big objects, small frames): chase in a circle.
        circle_chase = (L - rb - ra - 2 * m - gap) < 0.35 * L
    if circle_chase:
        cx, cy = W / 2, H / 2
        r_max = min(W, H) / 2 - rmax - m
        R = rng.uniform(0.75, 1.0) * r_max
        lag = min(max(0.9, (ra + rb) * 1.3 / R), 2.5)
        turns = rng.uniform(0.5, 0.9)
        direction = 1 if rng.random() < 0.5 else -1
        th_b = rng.uniform(0, 2 * np.pi) + direction * 2 * np.pi * turns * t
        th_a = th_b - direction * lag
        xa, ya = cx + R * np.cos(th_a), cy + R * np.sin(th_a)
        xb, yb = cx + R * np.cos(th_b), cy + R * np.sin(th_b)
        params = {"path": "circle", "radius_px": R, "turns": turns}
    elif kind == "chase":
        C = H if horizontal else W
        amp = rng.uniform(0.05, 0.12) * C
        s_b0 = ra + m + gap + rng.uniform(0, 0.05) * L
        s_b1 = L - rb - m - rng.uniform(0, 0.05) * L
        s_b = s_b0 + (s_b1 - s_b0) * t
        s_a = s_b - gap
        c0 = rng.uniform(amp + rmax + m, C - amp - rmax - m)
        wavelength = rng.uniform(0.5, 0.9) * L
        phase = rng.uniform(0, 2 * np.pi)
        c_a = c0 + amp * np.sin(2 * np.pi * s_a / wavelength + phase)
        c_b = c0 + amp * np.sin(2 * np.pi * s_b / wavelength + phase)
        if rng.random() < 0.5:  # go the other way
            s_a, s_b = L - s_a, L - s_b
        xa, ya, xb, yb = (s_a, c_a, s_b, c_b) if horizontal else (c_a, s_a, c_b, s_b)
        params = {"path": "line" if horizontal else "column", "gap_px": gap}
    elif kind == "pass":
        horizontal = rng.random() < 0.7
        L, C = (W, H) if horizontal else (H, W)
        sep = (ra + rb) * 1.1 + rng.uniform(0, 0.12) * C
        mid = rng.uniform(sep / 2 + rmax + m, C - sep / 2 - rmax - m)
        c_a, c_b = (mid - sep / 2, mid + sep / 2) if rng.random() < 0.5 else (mid + sep / 2, mid - sep / 2)
        a0 = ra + m + rng.uniform(0, 0.1) * L
        a1 = L - ra - m - rng.uniform(0, 0.1) * L
        b0 = L - rb - m - rng.uniform(0, 0.1) * L
        b1 = rb + m + rng.uniform(0, 0.1) * L
        s_a = a0 + (a1 - a0) * t
        s_b = b0 + (b1 - b0) * t
        if rng.random() < 0.5:
            s_a, s_b = L - s_a, L - s_b
        ca, cb = np.full(F, c_a), np.full(F, c_b)
        xa, ya, xb, yb = (s_a, ca, s_b, cb) if horizontal else (ca, s_a, cb, s_b)
        params = {"direction": "horizontal" if horizontal else "vertical"}
    elif kind == "collide":
        horizontal = rng.random() < 0.7
        L, C = (W, H) if horizontal else (H, W)
        contact = (ra + rb) * 0.85  # shapes do not fill their bounding circles
        tc = rng.uniform(0.45, 0.65)
        a_lo, b_hi = ra + m, L - rb - m
        run = 0.2 * L  # the shortest approach that still reads as a movement
        lo, hi = a_lo + run + contact / 2, b_hi - run - contact / 2
        meet = rng.uniform(min(lo, hi), max(lo, hi)) if lo < hi else (lo + hi) / 2
        both = rng.random() < 0.5
        a_hit = meet - contact / 2
        b_hit = meet + contact / 2
        a0 = max(a_lo, a_hit - run - rng.uniform(0, 0.15) * L)
        va = (a_hit - a0) / tc
        after = np.clip(t - tc, 0, None)
        before = np.minimum(t, tc)
        if both:
            b0 = min(b_hi, b_hit + run + rng.uniform(0, 0.15) * L)
            vb = (b0 - b_hit) / tc
            s_a = a0 + va * before - 0.45 * va * after * (1 - 0.5 * after / (1 - tc))
            s_b = b0 - vb * before + 0.45 * vb * after * (1 - 0.5 * after / (1 - tc))
        else:
            s_a = a0 + va * before + 0.1 * va * after
            s_b = b_hit + 0.8 * va * after * (1 - 0.5 * after / (1 - tc))
        s_a = np.clip(s_a, ra + m, L - ra - m)
        s_b = np.clip(s_b, rb + m, L - rb - m)
        if rng.random() < 0.5:
            s_a, s_b = L - s_a, L - s_b
        c = rng.uniform(rmax + m, C - rmax - m)
        ca = np.full(F, c)
        xa, ya, xb, yb = (s_a, ca, s_b, ca.copy()) if horizontal else (ca, s_a, ca.copy(), s_b)
        params = {"contact_frame": int(round(tc * (F - 1))), "both_move": both,
                  "direction": "horizontal" if horizontal else "vertical"}
    else:
        raise ValueError(f"unknown interaction {kind!r}")
    params = {k: (round(float(v), 3) if isinstance(v, float) else v) for k, v in params.items()}
    return xa, ya, xb, yb, params


def _clearance(x: np.ndarray, y: np.ndarray, r: np.ndarray, placed: list[tuple]) -> float:
    """Smallest gap (px, over frames) between a track and already placed tracks."""
    best = math.inf
    for (px, py, pr) in placed:
        gap = np.hypot(x - px, y - py) - 0.9 * (r + pr)
        best = min(best, float(gap.min()))
    return best


def _jitter_rgb(rgb: Sequence[int], amount: int, rng: np.random.Generator) -> list[int]:
    if amount <= 0:
        return [int(c) for c in rgb]
    noise = rng.integers(-amount, amount + 1, size=3)
    return [int(v) for v in np.clip(np.asarray(rgb) + noise, 0, 255)]


def realize(spec: SceneSpec, cfg: SynthConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Turn a scene spec into an annotation: per-frame tracks and action spans.

    Args:
        spec: the scene.
        cfg: the world config (frame size, fps, duration, colour jitter).
        rng: the clip's generator (positions, speeds, colour jitter).

    Returns:
        The annotation dict (see the module docstring), without ``name``, ``split``, ``group``
        and ``novel_pairs``.
    """
    F, W, H, fps = cfg.num_frames, cfg.width, cfg.height, float(cfg.fps)
    unit = min(W, H)
    n = len(spec.objects)
    radii = [vocab.SIZES[o.size] * unit * rng.uniform(0.95, 1.05) for o in spec.objects]
    rgbs = [_jitter_rgb(vocab.COLOURS[o.colour], cfg.colour_jitter, rng) for o in spec.objects]
    rgbs_to = [_jitter_rgb(vocab.COLOURS[o.colour_to], cfg.colour_jitter, rng) if o.colour_to
               else None for o in spec.objects]
    motions: list[_Motion] = [_Motion.rest(F) for _ in range(n)]
    xs: list[np.ndarray] = [np.zeros(F)] * n
    ys: list[np.ndarray] = [np.zeros(F)] * n
    actions: list[dict[str, Any]] = []

    def span_entry(action: str, subject: int, obj: int | None, a: int, b: int,
                   params: dict[str, Any]) -> dict[str, Any]:
        return {"action": action, "verbs": sorted(vocab.action_verbs(action)), "subject": subject,
                "object": obj, "start_frame": a, "end_frame": b,
                "start_s": round(a / fps, 4), "end_s": round(b / fps, 4), "params": params}

    placed: list[tuple] = []
    first_free = 0
    if spec.interaction is not None:
        xa, ya, xb, yb, params = _interaction_tracks(spec.interaction, radii[0], radii[1], F, W, H, rng)
        xs[0], ys[0], xs[1], ys[1] = xa, ya, xb, yb
        placed += [(xa, ya, np.full(F, radii[0])), (xb, yb, np.full(F, radii[1]))]
        actions.append(span_entry(spec.interaction, 0, 1, 0, F, params))
        first_free = 2
    solo_entries: list[dict[str, Any]] = []
    for i in range(first_free, n):
        obj = spec.objects[i]
        # the main object's actions take a varying part of the clip; companions fill it
        timed = i == 0 and (len(obj.actions) == 2 or rng.random() < cfg.p_timed_single)
        spans = _spans(obj.actions, F, rng, cfg.rest_max, timed)
        motion, params = _fit_solo(obj.actions, spans, F, radii[i], W, H, fps, rng)
        motions[i] = motion
        best = None
        for _ in range(60):  # keep objects apart where possible; the main one is placed first
            pos = _place_solo(motion, radii[i], W, H, rng)
            if pos is None:
                break
            gap = _clearance(pos[0], pos[1], radii[i] * motion.scale, placed)
            if best is None or gap > best[0]:
                best = (gap, pos)
            if gap >= 0:
                break
        if best is None:  # cannot fit even alone: centre it (only with extreme configs)
            pos = (W / 2 + motion.dx - motion.dx.mean(), H / 2 + motion.dy - motion.dy.mean())
        else:
            pos = best[1]
        xs[i], ys[i] = pos
        placed.append((xs[i], ys[i], radii[i] * motion.scale))
        for action, (a, b), p in zip(obj.actions, spans, params):
            solo_entries.append(span_entry(action, i, None, a, b, p))
    actions += solo_entries

    objects = []
    for i, obj in enumerate(spec.objects):
        mo = motions[i]
        c0 = np.asarray(rgbs[i], float)
        c1 = np.asarray(rgbs_to[i], float) if rgbs_to[i] is not None else c0
        rgb_track = np.rint(c0[None] * (1 - mo.mix[:, None]) + c1[None] * mo.mix[:, None])
        role = "main" if i == 0 else ("partner" if spec.interaction and i == 1 else "companion")
        objects.append({
            "id": i, "role": role, "shape": obj.shape, "colour": obj.colour, "size": obj.size,
            "colour_to": obj.colour_to, "rgb": rgbs[i], "rgb_to": rgbs_to[i],
            "radius_px": round(float(radii[i]), 3), "actions": list(obj.actions),
            "track": {
                "x": [round(float(v), 3) for v in xs[i]],
                "y": [round(float(v), 3) for v in ys[i]],
                "radius": [round(float(v), 3) for v in radii[i] * mo.scale],
                "angle": [round(float(v), 4) for v in mo.angle],
                "alpha": [round(float(v), 4) for v in mo.alpha],
                "rgb": [[int(c) for c in row] for row in rgb_track],
            },
        })
    bg = spec.background
    return {
        "num_frames": F, "fps": fps, "width": W, "height": H,
        "duration_s": round(F / fps, 4),
        "background": {"kind": bg.kind, "colour": bg.colour,
                       "rgb": list(vocab.BACKGROUND_COLOURS[bg.colour]),
                       "params": {k: (int(v) if float(v).is_integer() else v) for k, v in bg.params}},
        "interaction": spec.interaction,
        "two_actions": len(spec.objects[0].actions) == 2,
        "objects": objects,
        "actions": actions,
    }
