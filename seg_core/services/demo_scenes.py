"""Deterministic photo-like demo scenes (textured, lit surfaces with shaded, shadowed objects) and their exact masks."""

from __future__ import annotations

import colorsys
import math
from statistics import NormalDist

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

MULTICLASS_NAMES = ("background", "blob", "block")
BLOB, BLOCK = 1, 2
SUPERSAMPLE = 4  # 4x4 subpixels per pixel: coverage is an exact count of 16, so "alpha >= 0.5" is exact
OBJECT_COUNTS = (1, 2, 3, 4, 5)
OBJECT_COUNT_WEIGHTS = (0.08, 0.22, 0.3, 0.24, 0.16)
RADIUS_RANGE = (0.09, 0.34)  # object radius as a fraction of the shorter image side
BORDER_PROBABILITY = 0.3  # share of objects whose centre is put near an image edge, so they cross it
LOW_CONTRAST_PROBABILITY = 0.35
LOW_CONTRAST = (0.07, 0.14)  # RGB distance (0..1 per channel) between object and surface albedo
HIGH_CONTRAST = (0.14, 0.45)
SURFACES = ("plaster", "wood", "fabric", "concrete")
SENSOR_NOISE = (1.5, 4.0)  # standard deviation in 0..255 grey levels
FINAL_BLUR = (0.5, 0.9)
_NORMAL_QUANTILES = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], np.float32)


def render_scene(seed: int, width: int = 320, height: int = 240,
                 multiclass: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return (rgb uint8 array HxWx3, mask uint8 array HxW).

    Binary: mask 0 = background, 1 = object (blobs and blocks alike). Multiclass: 0 background,
    1 blob (ellipses, wobbly blobs), 2 block (rotated rectangles, triangles, polygons).
    The scene depends on `seed` only: the binary mask is the multiclass mask with both classes merged.
    """
    rng = np.random.default_rng(seed)
    h, w = int(height), int(width)
    side = min(h, w)
    light = _light_direction(rng)
    illum = _illumination(rng, h, w, light)
    img = _surface(rng, h, w) * illum[..., None]
    mask = np.zeros((h, w), np.uint8)
    count = int(rng.choice(OBJECT_COUNTS, p=OBJECT_COUNT_WEIGHTS))
    kinds = rng.choice((BLOB, BLOCK), count)
    if count >= 2 and len(set(kinds.tolist())) == 1:
        kinds[rng.integers(count)] = BLOB + BLOCK - kinds[0]
    for kind in kinds.tolist():
        r = side * rng.uniform(*RADIUS_RANGE)
        cx, cy = _centre(rng, w, h, r)
        rot = rng.uniform(0, 2 * math.pi)
        points = _blob_outline(rng, cx, cy, r, rot) if kind == BLOB else _block_outline(rng, cx, cy, r, rot)
        _draw_object(rng, img, mask, illum, points, r, light, kind == BLOB, kind if multiclass else 1)
    return _camera(rng, img), mask


def _light_direction(rng: np.random.Generator) -> np.ndarray:
    """One light per scene: surface gradient, object shading and shadows all agree with it."""
    azimuth, elevation = rng.uniform(0, 2 * math.pi), rng.uniform(0.6, 1.1)
    return np.array([math.cos(azimuth) * math.cos(elevation), math.sin(azimuth) * math.cos(elevation),
                     math.sin(elevation)], np.float32)


def _illumination(rng: np.random.Generator, h: int, w: int, light: np.ndarray) -> np.ndarray:
    yy, xx = _grid(h, w)
    side = min(h, w)
    toward = ((xx - w / 2) * light[0] + (yy - h / 2) * light[1]) / side
    r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
    blotches = _fbm(rng, h, w, cells=2, octaves=2)
    field = (1 + rng.uniform(0.15, 0.45) * toward) * (1 - rng.uniform(0.1, 0.4) * r2) * (1 + 0.06 * blotches)
    return (field * rng.uniform(0.85, 1.15)).astype(np.float32)


def _surface(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Albedo of the surface the objects lie on: a random hue and one of a few material textures."""
    hue = rng.uniform(0, 1)
    base = _hsv(hue, rng.uniform(0.05, 0.6), rng.uniform(0.3, 0.8))
    tint = _hsv(hue + rng.uniform(-0.06, 0.06), rng.uniform(0.05, 0.6), rng.uniform(0.25, 0.85))
    kind = SURFACES[int(rng.integers(len(SURFACES)))]
    yy, xx = _grid(h, w)
    if kind == "wood":
        vertical = rng.random() < 0.5
        across = xx if vertical else yy
        grain = _fbm(rng, h, w, cells=_side_cells(h, w, 4.0), octaves=1, stretch=12.0, vertical=vertical)
        warp = _fbm(rng, h, w, cells=2, octaves=2, stretch=3.0, vertical=vertical)
        phase = across / rng.uniform(10, 35) + 0.25 * warp
        # Thin dark latewood lines on lighter earlywood, as in sawn boards.
        rings = (0.5 + 0.5 * np.sin(2 * math.pi * phase)) ** 3
        mix = 0.3 + 0.5 * rings + 0.1 * grain
        detail = 0.05 * grain
    elif kind == "fabric":
        period = rng.uniform(2.5, 5.0)
        weave = np.sin(2 * math.pi * xx / period) * np.sin(2 * math.pi * yy / period)
        mix = 0.5 + 0.25 * _fbm(rng, h, w, cells=3, octaves=3)
        detail = rng.uniform(0.03, 0.07) * weave + 0.03 * _fbm(rng, h, w, cells=40, octaves=1)
    elif kind == "concrete":
        grit = _fbm(rng, h, w, cells=_side_cells(h, w, 3.0), octaves=1)
        specks = np.clip(np.abs(grit) - 2.0, 0, None) * np.sign(grit)
        mix = 0.5 + 0.3 * _fbm(rng, h, w, cells=4, octaves=4, gain=0.6)
        detail = 0.05 * grit + 0.12 * specks
    else:  # plaster / paper: soft clouds and a little fine tooth
        mix = 0.5 + 0.35 * _fbm(rng, h, w, cells=3, octaves=5, gain=0.55)
        detail = 0.035 * _fbm(rng, h, w, cells=_side_cells(h, w, 6.0), octaves=1)
    albedo = base + (tint - base) * mix[..., None] + detail[..., None]
    return np.clip(albedo, 0.02, 0.98, out=albedo)


def _side_cells(h: int, w: int, pixels: float) -> int:
    """Noise cells along the shorter side for features about `pixels` wide."""
    return max(2, int(min(h, w) / pixels))


def _centre(rng: np.random.Generator, w: int, h: int, r: float) -> tuple[float, float]:
    cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
    if rng.random() < BORDER_PROBABILITY:
        # Straddle an edge: between a third and two thirds of the radius stays inside.
        edge, inset = int(rng.integers(4)), r * rng.uniform(-0.35, 0.35)
        cx, cy = ((inset, cy), (w - inset, cy), (cx, inset), (cx, h - inset))[edge]
    return cx, cy


def _blob_outline(rng: np.random.Generator, cx: float, cy: float, r: float, rot: float) -> np.ndarray:
    """An ellipse, or a smooth wobbly closed curve (a star-shaped radius with a few low harmonics)."""
    t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
    radius = np.ones_like(t)
    if rng.random() < 0.6:
        for k in (2, 3, 4, 5):
            radius += rng.uniform(0, 0.3 / k ** 1.5) * np.sin(k * t + rng.uniform(0, 2 * math.pi))
    aspect = rng.uniform(0.55, 1.0)
    x, y = r * radius * np.cos(t), r * radius * np.sin(t) * aspect
    return _place(np.stack([x, y], 1) / math.sqrt(aspect), cx, cy, rot)


def _block_outline(rng: np.random.Generator, cx: float, cy: float, r: float, rot: float) -> np.ndarray:
    """A rectangle, a triangle or a convex polygon with sharp corners."""
    kind = int(rng.integers(3))
    if kind == 0:
        a = rng.uniform(0.5, 1.0)
        pts = np.array([(-1, -a), (1, -a), (1, a), (-1, a)]) * (0.9 / math.sqrt(a))
    else:
        n = 3 if kind == 1 else int(rng.integers(4, 7))
        # Jittered even angles keep every polygon fat enough to read as a shape, not a sliver.
        t = (np.arange(n) + rng.uniform(-0.25, 0.25, n)) * 2 * math.pi / n
        pts = np.stack([np.cos(t), np.sin(t)], 1) * rng.uniform(0.85, 1.1, (n, 1))
    return _place(pts * r, cx, cy, rot)


def _place(pts: np.ndarray, cx: float, cy: float, rot: float) -> np.ndarray:
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + c * pts[:, 0] - s * pts[:, 1], cy + s * pts[:, 0] + c * pts[:, 1]], 1)


def _coverage(points: np.ndarray, x0: int, y0: int, rw: int, rh: int) -> np.ndarray:
    """Subpixel counts (0..SUPERSAMPLE**2) of the polygon over the region starting at (x0, y0)."""
    canvas = Image.new("L", (rw * SUPERSAMPLE, rh * SUPERSAMPLE), 0)
    local = (points - (x0, y0)) * SUPERSAMPLE
    # Filled with SUPERSAMPLE**2, the box reduction's mean is exactly the count of covered subpixels.
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in local.tolist()], fill=SUPERSAMPLE ** 2)
    return np.asarray(canvas.reduce(SUPERSAMPLE))


def _draw_object(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, illum: np.ndarray,
                 points: np.ndarray, r: float, light: np.ndarray, rounded: bool, label: int) -> None:
    # The object's box may extend past the image: shading and shadows of a border-crossing object stay right.
    x0, y0 = np.floor(points.min(0)).astype(int)
    x1, y1 = np.ceil(points.max(0)).astype(int) + 1
    alpha = _coverage(points, x0, y0, x1 - x0, y1 - y0).astype(np.float32) / SUPERSAMPLE ** 2
    boxes = _overlap(mask.shape, x0, y0, alpha.shape)
    if boxes is None:
        return
    inside, local = boxes
    hard = alpha[local] >= 0.5
    if not hard.any():
        return
    _cast_shadow(rng, img, alpha, x0, y0, r, light)
    view, lit = img[inside], illum[inside][..., None]
    surface = (view[hard] / lit[hard]).mean(0)
    albedo = _object_albedo(rng, surface)
    diffuse, specular = _shading(rng, alpha, r, light, rounded)
    texture = _object_texture(rng, alpha.shape, r)
    a = alpha[local][..., None]
    obj = (albedo * (diffuse * texture)[local][..., None] + specular[local][..., None]) * lit
    view += a * (obj - view)
    mask[inside][hard] = label


def _overlap(shape: tuple[int, int], x0: int, y0: int,
             size: tuple[int, int]) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Slices of the image and of a local region at (x0, y0) where the two overlap, or None."""
    h, w = shape
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + size[1], w), min(y0 + size[0], h)
    if ix0 >= ix1 or iy0 >= iy1:
        return None
    return ((slice(iy0, iy1), slice(ix0, ix1)),
            (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0)))


def _cast_shadow(rng: np.random.Generator, img: np.ndarray, alpha: np.ndarray, x0: int, y0: int,
                 r: float, light: np.ndarray) -> None:
    """Darken what lies under and beside the object (the surface and earlier objects), away from the light."""
    length = r * rng.uniform(0.06, 0.2) / max(float(light[2]), 0.3)
    blur = 1.0 + r * rng.uniform(0.04, 0.12)
    dx, dy = int(round(-light[0] * length)), int(round(-light[1] * length))
    pad = int(3 * blur) + 2 + max(abs(dx), abs(dy))
    padded = Image.fromarray(np.pad((alpha * 255).astype(np.uint8), pad))
    # Both shadows are blurred at half resolution: they are soft anyway, and blurring is the costly part.
    half = padded.reduce(2)
    drop = np.roll(_upsampled_blur(half, blur / 2, padded.size), (dy, dx), (0, 1))
    # A tight dark rim where the object meets the surface makes it sit on it rather than float.
    contact = _upsampled_blur(half, 0.5 + 0.01 * r, padded.size)
    darkening = drop * np.float32(rng.uniform(0.3, 0.6) / 255) + contact * np.float32(rng.uniform(0.15, 0.3) / 255)
    boxes = _overlap(img.shape[:2], x0 - pad, y0 - pad, darkening.shape)
    if boxes is not None:
        img[boxes[0]] *= (1.0 - darkening[boxes[1]])[..., None]


def _object_albedo(rng: np.random.Generator, surface: np.ndarray) -> np.ndarray:
    """A colour at a chosen distance from the surface under it: some objects are deliberately subtle."""
    span = LOW_CONTRAST if rng.random() < LOW_CONTRAST_PROBABILITY else HIGH_CONTRAST
    target = rng.uniform(*span)
    for _ in range(4):
        candidate = _hsv(rng.uniform(0, 1), rng.uniform(0.1, 0.85), rng.uniform(0.15, 0.95))
        diff = candidate - surface
        if np.linalg.norm(diff) > 0.05:
            break
    else:
        diff = rng.normal(0, 1, 3).astype(np.float32)
    colour = surface + diff * (target / (np.linalg.norm(diff) + 1e-6))
    return np.clip(colour, 0.03, 0.97).astype(np.float32)


def _shading(rng: np.random.Generator, alpha: np.ndarray, r: float, light: np.ndarray,
             rounded: bool) -> tuple[np.ndarray, np.ndarray]:
    """Diffuse factor (1 on a flat top) and specular highlight, from a height map made by blurring the shape:
    a wide blur gives a dome or pillow, a narrow one a bevelled edge."""
    spread = r * (rng.uniform(0.3, 0.6) if rounded else rng.uniform(0.04, 0.15))
    steepness = rng.uniform(1.2, 2.2) if rounded else rng.uniform(0.6, 1.4)
    height = _box_blur(alpha, max(1, int(spread))) * (spread * steepness)
    gy, gx = np.gradient(height)
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    n_dot_l = (-gx * light[0] - gy * light[1] + light[2]) / norm
    ambient = rng.uniform(0.3, 0.55)
    diffuse = ambient + (1 - ambient) * np.clip(n_dot_l, 0, None) / light[2]
    yy, xx = _grid(*alpha.shape)
    cy, cx = (alpha.shape[0] - 1) / 2, (alpha.shape[1] - 1) / 2
    # The side nearer the light is brighter overall, on top of the slope-dependent term.
    diffuse *= 1 + rng.uniform(0.05, 0.2) * ((xx - cx) * light[0] + (yy - cy) * light[1]) / r
    half = light + np.array([0, 0, 1], np.float32)
    half /= np.linalg.norm(half)
    n_dot_h = np.clip((-gx * half[0] - gy * half[1] + half[2]) / norm, 0, None)
    gloss = rng.uniform(0, 0.35) if rng.random() < 0.6 else 0.0
    return diffuse.astype(np.float32), (gloss * n_dot_h ** rng.uniform(12, 60)).astype(np.float32)


def _object_texture(rng: np.random.Generator, shape: tuple[int, int], r: float) -> np.ndarray:
    """Multiplicative surface detail: fine mottling, broad patches, and sometimes printed stripes."""
    rh, rw = shape
    fine_cells = max(2, int(min(rh, rw) / rng.uniform(4, 12)))
    texture = 1 + rng.uniform(0.03, 0.12) * _fbm(rng, rh, rw, cells=fine_cells, octaves=2)
    texture += rng.uniform(0.02, 0.08) * _fbm(rng, rh, rw, cells=2, octaves=2)
    if rng.random() < 0.3:
        yy, xx = _grid(rh, rw)
        ang = rng.uniform(0, math.pi)
        period = rng.uniform(0.15, 0.5) * r
        phase = (xx * math.cos(ang) + yy * math.sin(ang)) / period
        texture = texture + rng.uniform(0.05, 0.15) * np.sin(2 * math.pi * phase)
    return texture.astype(np.float32)


def _camera(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """White balance, a little lens blur and sensor noise: the image side only, never the mask."""
    arr = _gaussian_blur(img * ((1 + rng.uniform(-0.05, 0.05, 3).astype(np.float32)) * 255),
                         rng.uniform(*FINAL_BLUR))
    # Gaussian noise through a 256-entry quantile table: a third of the cost of standard_normal.
    table = _NORMAL_QUANTILES * np.float32(rng.uniform(*SENSOR_NOISE)) + np.float32(0.5)
    arr += table[rng.integers(0, 256, arr.shape, dtype=np.uint8)]
    np.clip(arr, 0, 255, out=arr)
    return arr.astype(np.uint8)


def _gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """A separable 5-tap Gaussian over the first two axes: for sigma < 1 it matches PIL's GaussianBlur,
    at a fraction of the cost of PIL's on an RGB image."""
    taps = np.exp(-np.arange(-2, 3, dtype=np.float32) ** 2 / np.float32(2 * sigma * sigma))
    taps /= taps.sum()
    h, w = a.shape[:2]
    p = np.pad(a, [(2, 2)] + [(0, 0)] * (a.ndim - 1), mode="edge")
    a = taps[0] * p[0:h]
    for i in range(1, 5):
        a += taps[i] * p[i:i + h]
    p = np.pad(a, [(0, 0), (2, 2)] + [(0, 0)] * (a.ndim - 2), mode="edge")
    a = taps[0] * p[:, 0:w]
    for i in range(1, 5):
        a += taps[i] * p[:, i:i + w]
    return a


def _fbm(rng: np.random.Generator, h: int, w: int, cells: int, octaves: int, gain: float = 0.5,
         stretch: float = 1.0, vertical: bool = False) -> np.ndarray:
    """Zero-mean, unit-std value noise: random grids, each finer by 2x, summed and upsampled bicubically.
    `stretch` elongates features along x (or y when `vertical`), as in wood grain."""
    side = max(min(h, w), 1)
    acc = None
    amp = 1.0
    for octave in range(octaves):
        c = cells * 2 ** octave
        gh, gw = max(2, round(c * h / side)), max(2, round(c * w / side))
        if vertical:
            gh = max(2, round(gh / stretch))
        else:
            gw = max(2, round(gw / stretch))
        grid = rng.standard_normal((gh + 1, gw + 1), dtype=np.float32)
        if acc is not None:
            # Coarser octaves so far are brought up to this octave's grid: one full-size resize at the end.
            acc = _resize(acc, gw + 1, gh + 1)
            acc += amp * grid
        else:
            acc = grid
        amp *= gain
    out = _resize(acc, w, h)
    out -= out.mean()
    return out / (out.std() + 1e-6)


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.array(Image.fromarray(a, "F").resize((w, h), Image.BICUBIC), np.float32)


def _box_blur(a: np.ndarray, radius: int) -> np.ndarray:
    """Two box passes per axis (close to a Gaussian); float-exact, unlike PIL's 8-bit blur."""
    k = 2 * radius + 1
    for axis in (0, 1):
        for _ in range(2):
            widths = [(0, 0), (0, 0)]
            widths[axis] = (radius + 1, radius)
            c = np.cumsum(np.pad(a, widths, mode="edge"), axis=axis, dtype=np.float32)
            a = (c[k:] - c[:-k]) if axis == 0 else (c[:, k:] - c[:, :-k])
            a /= k
    return a


def _upsampled_blur(image: Image.Image, radius: float, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.filter(ImageFilter.GaussianBlur(radius)).resize(size, Image.BILINEAR), np.float32)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), np.float32)
