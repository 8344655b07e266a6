"""Image backgrounds for synthetic scenes: procedural textures and crops of real photos.

A background is described by a :class:`BackgroundSpec` (kind + integer seed) and rendered by
:func:`render_background` as a deterministic function of (spec, width, height), so that a scene
stores only the spec. Kinds:

* ``checker``: rotated two-colour checkerboard; ``stripes``: rotated hard or soft stripes;
* ``value_noise``: multi-octave smooth noise mixing two colours; ``gradient``: linear gradient
  between two or three colours; ``noise``: low-pass filtered colour noise;
* ``photo``: random crop (scale, aspect, flip) of a real photo or texture bundled with
  scikit-image (no download: astronaut, coffee, chelsea, rocket, the Middlebury motorcycle pair,
  and the grayscale textures brick, grass, gravel, camera, clock, tinted). Loaded once per process.

Every kind gets a brightness/contrast/colour jitter at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

BACKGROUND_KINDS = ("checker", "stripes", "value_noise", "gradient", "noise", "photo")

# skimage.data loaders that ship inside the package (checked offline); colour photos and
# grayscale textures (tinted when used).
_COLOUR_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "motorcycle_right")
_GRAY_PHOTOS = ("brick", "grass", "gravel", "camera", "clock")


@dataclass(frozen=True)
class BackgroundSpec:
    """Which background to draw: ``kind`` (one of :data:`BACKGROUND_KINDS`) and the seed of
    all its random choices."""

    kind: str
    seed: int

    def __post_init__(self) -> None:
        if self.kind not in BACKGROUND_KINDS:
            raise ValueError(f"unknown background kind {self.kind!r}, expected one of {BACKGROUND_KINDS}")


def sample_background_spec(rng: np.random.Generator, kinds: tuple[str, ...] = BACKGROUND_KINDS,
                           weights: tuple[float, ...] | None = None) -> BackgroundSpec:
    """Draw a background kind (with optional weights) and a 63-bit seed from ``rng``."""
    p = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(kinds),) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"background weights {weights} do not match kinds {kinds}")
        p = w / w.sum()
    kind = kinds[int(rng.choice(len(kinds), p=p))]
    return BackgroundSpec(kind=kind, seed=int(rng.integers(0, 2**63 - 1)))


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """The bundled scikit-image photos as uint8 RGB arrays (loaded once per process)."""
    import skimage.data

    images = []
    for name in _COLOUR_PHOTOS:
        if name.startswith("motorcycle"):
            left, right, _ = skimage.data.stereo_motorcycle()
            images.append(left if name.endswith("left") else right)
        else:
            images.append(getattr(skimage.data, name)())
    for name in _GRAY_PHOTOS:
        gray = getattr(skimage.data, name)()
        images.append(np.repeat(gray[..., None], 3, axis=2))
    return tuple(np.ascontiguousarray(img[..., :3], dtype=np.uint8) for img in images)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.05, 0.95, size=3)


def _pixel_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    return xs, ys


def _rotated_coordinate(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = _pixel_grid(width, height)
    angle = rng.uniform(0.0, np.pi)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return c * xs + s * ys, -s * xs + c * ys


def _mix(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(H, W, 3) float image: a * (1 - weight) + b * weight."""
    weight = weight[..., None].astype(np.float32)
    return a.astype(np.float32) * (1.0 - weight) + b.astype(np.float32) * weight


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """(H, W) float32 in [0, 1]: a random ``cells`` x ``cells`` grid upsampled bicubically."""
    grid = rng.uniform(0.0, 255.0, size=(cells + 1, cells + 1)).astype(np.float32)
    up = Image.fromarray(grid).resize((width, height), Image.BICUBIC)
    return np.clip(np.asarray(up, dtype=np.float32) / 255.0, 0.0, 1.0)


def _checker(rng, width, height):
    u, v = _rotated_coordinate(rng, width, height)
    cell = rng.uniform(8.0, 64.0) * max(width, height) / 256.0
    weight = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    return _mix(_random_colour(rng), _random_colour(rng), weight)


def _stripes(rng, width, height):
    u, _ = _rotated_coordinate(rng, width, height)
    period = rng.uniform(6.0, 60.0) * max(width, height) / 256.0
    phase = np.sin(2.0 * np.pi * u / period)
    weight = (phase > 0).astype(np.float32) if rng.random() < 0.5 else 0.5 + 0.5 * phase
    return _mix(_random_colour(rng), _random_colour(rng), weight)


def _value_noise(rng, width, height):
    weight = np.zeros((height, width), dtype=np.float32)
    amplitude, total = 1.0, 0.0
    cells = int(rng.integers(2, 6))
    for _ in range(4):
        weight += amplitude * _smooth_noise(rng, width, height, cells)
        total += amplitude
        amplitude *= 0.5
        cells *= 2
    return _mix(_random_colour(rng), _random_colour(rng), weight / total)


def _gradient(rng, width, height):
    u, _ = _rotated_coordinate(rng, width, height)
    t = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    colours = [_random_colour(rng) for _ in range(int(rng.integers(2, 4)))]
    if len(colours) == 2:
        return _mix(colours[0], colours[1], t)
    first = _mix(colours[0], colours[1], np.clip(2.0 * t, 0.0, 1.0))
    return _mix(first, colours[2], np.clip(2.0 * t - 1.0, 0.0, 1.0))


def _noise(rng, width, height):
    cells = int(rng.integers(8, 64))
    channels = [_smooth_noise(rng, width, height, cells) for _ in range(3)]
    base = np.stack(channels, axis=-1) * 255.0
    fine = rng.normal(0.0, rng.uniform(2.0, 12.0), size=(height, width, 3)).astype(np.float32)
    return 0.5 * base + 0.5 * _random_colour(rng) * 255.0 + fine


def _photo(rng, width, height):
    photos = _photos()
    index = int(rng.integers(len(photos)))
    img = photos[index]
    h, w = img.shape[:2]
    aspect = width / height * rng.uniform(0.85, 1.18)
    scale = rng.uniform(0.35, 1.0)
    crop_h = max(8, int(round(min(h, w / aspect) * scale)))
    crop_w = max(8, min(w, int(round(crop_h * aspect))))
    y0 = int(rng.integers(0, h - crop_h + 1))
    x0 = int(rng.integers(0, w - crop_w + 1))
    crop = Image.fromarray(img[y0:y0 + crop_h, x0:x0 + crop_w]).resize((width, height), Image.BILINEAR)
    out = np.asarray(crop, dtype=np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if index >= len(_COLOUR_PHOTOS):  # tint grayscale textures
        out = out * (0.4 + 0.8 * _random_colour(rng))
    return out


_KIND_FUNCTIONS = {
    "checker": lambda rng, w, h: _checker(rng, w, h) * 255.0,
    "stripes": lambda rng, w, h: _stripes(rng, w, h) * 255.0,
    "value_noise": lambda rng, w, h: _value_noise(rng, w, h) * 255.0,
    "gradient": lambda rng, w, h: _gradient(rng, w, h) * 255.0,
    "noise": _noise,
    "photo": _photo,
}


def render_background(spec: BackgroundSpec, width: int, height: int) -> np.ndarray:
    """uint8 (height, width, 3) RGB background for ``spec``; deterministic in its seed."""
    rng = np.random.default_rng(spec.seed)
    image = _KIND_FUNCTIONS[spec.kind](rng, int(width), int(height))
    # brightness / contrast / per-channel colour jitter
    contrast = rng.uniform(0.6, 1.2)
    brightness = rng.uniform(-30.0, 30.0)
    gains = rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    mean = float(image.mean())
    image = (image - mean) * contrast + mean + brightness
    image = image * gains
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)
