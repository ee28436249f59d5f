"""Photo-like synthetic scenes with exact masks for the demo project: textured, lit surfaces and shaded objects."""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

MULTICLASS_NAMES = ("background", "blob", "block")
SUPERSAMPLE = 4
NOISE_OCTAVES = (3, 6, 12, 24, 48)


def _value_noise(rng: np.random.Generator, h: int, w: int, channels: int = 1) -> np.ndarray:
    """Smooth multi-octave noise in [-1, 1] (small random grids upsampled bicubically)."""
    out = np.zeros((h, w, channels), np.float32)
    amp, total = 1.0, 0.0
    for cells in NOISE_OCTAVES:
        grid = rng.uniform(0, 255, (cells + 1, max(2, cells * w // h) + 1, channels)).astype(np.uint8)
        layers = [np.asarray(Image.fromarray(grid[..., c]).resize((w, h), Image.BICUBIC), np.float32)
                  for c in range(channels)]
        out += amp * (np.stack(layers, -1) / 127.5 - 1.0)
        total += amp
        amp *= 0.55
    return out / total


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1)), np.float32)


def _background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, float]:
    hue = rng.uniform(0, 1)
    base = _hsv(hue, rng.uniform(0.15, 0.55), rng.uniform(0.35, 0.75))
    tint = _hsv(hue + rng.uniform(-0.08, 0.08), rng.uniform(0.1, 0.5), rng.uniform(0.3, 0.8))
    n = _value_noise(rng, h, w, 1)
    fine = _value_noise(rng, h, w, 1)
    img = base + (tint - base) * (0.5 + 0.5 * n) + 0.06 * fine * rng.uniform(0.5, 1.5)
    # Light from one side, and a vignette, as a real photo of a surface has.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    light = ((xx / w - 0.5) * math.cos(ang) + (yy / h - 0.5) * math.sin(ang)) * rng.uniform(0.2, 0.5)
    r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) / 0.5
    img = img * (1.0 + light[..., None]) * (1.0 - rng.uniform(0.1, 0.35) * r2[..., None])
    return img, hue


def _blob_points(rng, cx, cy, r, aspect, rot):
    n = 48
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    wobble = 1.0 + sum(rng.uniform(0, 0.12) * np.sin(k * t + rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5))
    x, y = r * wobble * np.cos(t) * aspect, r * wobble * np.sin(t) / aspect
    c, s = math.cos(rot), math.sin(rot)
    return list(zip(cx + c * x - s * y, cy + s * x + c * y))


def _block_points(rng, cx, cy, r, rot):
    kind = rng.integers(0, 3)
    if kind == 0:  # rectangle
        a, b = r * rng.uniform(0.6, 1.1), r * rng.uniform(0.35, 0.9)
        pts = [(-a, -b), (a, -b), (a, b), (-a, b)]
    elif kind == 1:  # triangle
        pts = [(r * math.cos(t), r * math.sin(t)) for t in np.sort(rng.uniform(0, 2 * math.pi, 3))]
        (ax, ay), (bx, by) = np.subtract(pts[1], pts[0]), np.subtract(pts[2], pts[0])
        if abs(ax * by - ay * bx) < 0.4 * r * r:  # too thin a sliver: use an even triangle
            pts = [(r * math.cos(t), r * math.sin(t)) for t in (0.0, 2.1, 4.2)]
    else:  # convex polygon
        k = int(rng.integers(5, 7))
        ts = np.sort(rng.uniform(0, 2 * math.pi, k))
        pts = [(r * math.cos(t), r * math.sin(t)) for t in ts]
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + c * x - s * y, cy + s * x + c * y) for x, y in pts]


def _alpha(points, h: int, w: int) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] from a supersampled polygon."""
    canvas = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE), 0)
    ImageDraw.Draw(canvas).polygon([(x * SUPERSAMPLE, y * SUPERSAMPLE) for x, y in points], fill=255)
    return np.asarray(canvas.resize((w, h), Image.BOX), np.float32) / 255.0


def render_scene(seed: int, width: int = 320, height: int = 240, multiclass: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return (rgb uint8 HxWx3, mask uint8 HxW). Binary: 0 background, 1 object.
    Multiclass: 0 background, 1 blob (round, organic), 2 block (angular)."""
    rng = np.random.default_rng(seed)
    h, w = int(height), int(width)
    img, bg_hue = _background(rng, h, w)
    mask = np.zeros((h, w), np.uint8)
    side = min(h, w)
    count = int(rng.integers(2, 6))
    kinds = [int(rng.integers(1, 3)) for _ in range(count)]
    if multiclass and count >= 2 and len(set(kinds)) == 1:
        kinds[-1] = 3 - kinds[0]
    for kind in kinds:
        r = side * rng.uniform(0.1, 0.34)
        # Some objects cross the border on purpose.
        cx = rng.uniform(-0.05, 1.05) * w
        cy = rng.uniform(-0.05, 1.05) * h
        rot = rng.uniform(0, math.pi)
        pts = (_blob_points(rng, cx, cy, r, rng.uniform(0.7, 1.4), rot) if kind == 1
               else _block_points(rng, cx, cy, r, rot))
        alpha = _alpha(pts, h, w)
        if alpha.sum() < 20:
            continue
        # Soft shadow: the blurred shape, offset away from the light, darkens what is under it.
        shadow = Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(side * 0.025))
        dx, dy = rng.integers(2, max(3, side // 30), 2)
        sh = np.roll(np.asarray(shadow, np.float32) / 255.0, (int(dy), int(dx)), (0, 1))
        img = img * (1.0 - rng.uniform(0.25, 0.5) * sh[..., None])
        # Object colour: another hue, with contrast from strong to subtle.
        contrast = rng.uniform(0.15, 0.6)
        hue = bg_hue + rng.choice([-1, 1]) * rng.uniform(0.12, 0.5)
        col = _hsv(hue, rng.uniform(0.35, 0.9), rng.uniform(0.3, 0.95))
        ys, xs = np.nonzero(alpha > 0)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ang = rng.uniform(0, 2 * math.pi)
        gx = (xx - (x0 + x1) / 2) / max(x1 - x0, 1)
        gy = (yy - (y0 + y1) / 2) / max(y1 - y0, 1)
        shade = 1.0 + 0.6 * (gx * math.cos(ang) + gy * math.sin(ang))
        texture = 1.0 + 0.12 * _value_noise(rng, h, w, 1)[..., 0]
        local_bg = img[y0:y1, x0:x1].reshape(-1, 3).mean(0)
        obj_col = local_bg + (col - local_bg) * (0.4 + contrast * 1.2)
        obj = obj_col[None, None, :] * (shade * texture)[..., None]
        img = img * (1.0 - alpha[..., None]) + obj * alpha[..., None]
        label = (kind if multiclass else 1)
        mask[alpha >= 0.5] = label
    out = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
    arr = np.asarray(out, np.float32) + rng.normal(0, 3.0, (h, w, 3)).astype(np.float32)
    return np.clip(arr, 0, 255).round().astype(np.uint8), mask
