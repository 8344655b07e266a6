"""Semantic surface markings: lights, glass, grilles, signs, bow numbers and screens.

Real objects say where their front is: white headlights and a dark windscreen at the front of a
car, red tail lights at its rear, a lit destination sign above a bus's windscreen, registration
numbers near a boat's bow, a dark glossy screen on a TV. The procedural CAD models are unions of
plain primitives painted with random colours, so without markings many of them (buses, coaches,
locomotives, canoes, flat TVs) look alike from the front and from the back (see
:mod:`scene3d_ros.world.front_back`). This module paints such markings at render time.

A marking is a region of the model's surface in its **canonical object frame** (+x front, +y
left, +z up; see :mod:`scene3d_ros.world.cad_library`), described in coordinates normalised to the
model's axis-aligned bounding box: ``x`` and ``z`` in [0, 1] from the back/bottom to the
front/top, ``y`` as the distance from the centre line in half-widths (0 on the centre line, 1 at
the side). A surface point belongs to the marking when its outward face normal (object frame)
points along ``facing`` (cosine >= ``min_cos``; both ways along the axis when ``both_ways``) and
it lies inside the three ranges. Every scheme is drawn with the world's randomisation: each
marking is present with probability ``MARKING_PROBABILITY``, its region is scaled by a random
factor, lights are on or off, colours are jittered. All of it is a deterministic function of
the material's ``marking_seed``.

Markings are given only to categories whose real counterparts have a front that shows
(:data:`SCHEMES`), and only to models without a declared symmetry about +z: a passenger coach
(``c2``) gets no tail lights at one end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MARKING_PROBABILITY = 0.9  # each marking of a scheme is painted with this probability
LIGHTS_ON_PROBABILITY = 0.5  # lights glow (emissive) or show their unlit lens colour
SIZE_JITTER = (0.8, 1.2)  # the random scale of a marking's region about its centre

FINISHES = ("head_light", "tail_light", "glass", "grille", "sign", "numbers", "screen")


@dataclass(frozen=True)
class Marking:
    """One painted region (see the module docstring for the frame and the normalisation)."""

    finish: str
    facing: tuple[float, float, float]
    min_cos: float
    x: tuple[float, float]
    z: tuple[float, float]
    y: tuple[float, float] = (0.0, 1.0)
    both_ways: bool = False

    def __post_init__(self) -> None:
        if self.finish not in FINISHES:
            raise ValueError(f"unknown finish {self.finish!r}; allowed {FINISHES}")


FRONT, REAR, UP_FRONT, SIDE = (1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.6, 0.0, 0.8), (0.0, 1.0, 0.0)

# Regions measured on the procedural models (cad_library's generators): e.g. a sedan's front face
# spans z 0.29-0.45 of its height, a city bus's windscreen z 0.3-0.85.
SCHEMES: dict[str, tuple[Marking, ...]] = {
    "car": (
        Marking("glass", FRONT, 0.35, x=(0.35, 1.0), z=(0.6, 1.0), y=(0.0, 0.92)),
        Marking("glass", REAR, 0.35, x=(0.0, 0.65), z=(0.6, 1.0), y=(0.0, 0.92)),
        Marking("grille", FRONT, 0.5, x=(0.9, 1.0), z=(0.18, 0.42), y=(0.0, 0.42)),
        Marking("head_light", FRONT, 0.5, x=(0.9, 1.0), z=(0.28, 0.48), y=(0.5, 0.88)),
        Marking("tail_light", REAR, 0.5, x=(0.0, 0.1), z=(0.35, 0.6), y=(0.55, 0.9)),
    ),
    "bus": (
        Marking("glass", FRONT, 0.35, x=(0.8, 1.0), z=(0.38, 0.88), y=(0.0, 0.93)),
        Marking("sign", FRONT, 0.5, x=(0.85, 1.0), z=(0.88, 0.97), y=(0.0, 0.7)),
        Marking("head_light", FRONT, 0.5, x=(0.9, 1.0), z=(0.12, 0.26), y=(0.55, 0.9)),
        Marking("tail_light", REAR, 0.5, x=(0.0, 0.1), z=(0.12, 0.3), y=(0.6, 0.92)),
    ),
    "train": (
        Marking("glass", FRONT, 0.35, x=(0.8, 1.0), z=(0.5, 0.85), y=(0.0, 0.85)),
        Marking("head_light", FRONT, 0.5, x=(0.85, 1.0), z=(0.2, 0.38), y=(0.3, 0.75)),
        Marking("tail_light", REAR, 0.5, x=(0.0, 0.15), z=(0.2, 0.38), y=(0.3, 0.75)),
    ),
    "motorbike": (
        Marking("head_light", FRONT, 0.4, x=(0.8, 1.0), z=(0.5, 0.78), y=(0.0, 0.45)),
        Marking("tail_light", REAR, 0.4, x=(0.0, 0.25), z=(0.45, 0.72), y=(0.0, 0.45)),
    ),
    "bicycle": (
        # above the wheels (tops at ~0.65 of the height): lamp on the handlebar, reflector under the saddle
        Marking("head_light", FRONT, 0.4, x=(0.62, 0.85), z=(0.72, 0.92), y=(0.0, 0.5)),
        Marking("tail_light", REAR, 0.4, x=(0.22, 0.42), z=(0.66, 0.8), y=(0.0, 0.5)),
    ),
    "aeroplane": (
        Marking("glass", UP_FRONT, 0.6, x=(0.85, 1.0), z=(0.0, 1.0), y=(0.0, 0.12)),
    ),
    # boats: z of the numbers is a fraction of the hull *length* above the keel (masts make the
    # bounding box far taller than the hull), see Z_OF_LENGTH
    "boat": (
        Marking("numbers", SIDE, 0.6, x=(0.68, 0.84), z=(0.03, 0.08), both_ways=True),
    ),
    "tvmonitor": (
        Marking("screen", FRONT, 0.8, x=(0.5, 1.0), z=(0.15, 1.0)),
    ),
}
Z_OF_LENGTH = frozenset({"boat"})  # schemes whose z ranges are fractions of the x extent


def scheme_for(category: str, symmetry: str) -> str:
    """The marking scheme of a model ('' for none): its category's, unless the model declares a
    symmetry about +z (then its two ends are alike and neither gets a front)."""
    return category if category in SCHEMES and symmetry == "none" else ""


@dataclass(frozen=True)
class PaintedMarking:
    """A scheme's marking as drawn for one material: region, colour and finish parameters."""

    marking: Marking
    x: tuple[float, float]
    y: tuple[float, float]
    z: tuple[float, float]
    colour: tuple[float, float, float]
    emissive: bool
    gloss: float  # multiplier of the light's specular term
    stripes: float  # stripe frequency across the region (grille, numbers), 0 = none


def _scaled(rng: np.random.Generator, lo: float, hi: float, clip: tuple[float, float]) -> tuple[float, float]:
    """``(lo, hi)`` scaled about its centre by a random factor; an end at the clip range's end
    stays there (a headlight region that reaches the front face keeps reaching it)."""
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * float(rng.uniform(*SIZE_JITTER))
    new_lo = lo if lo <= clip[0] else max(centre - half, clip[0])
    new_hi = hi if hi >= clip[1] else min(centre + half, clip[1])
    return new_lo, new_hi


def draw_markings(scheme: str, seed: int) -> tuple[PaintedMarking, ...]:
    """The markings of ``scheme`` as painted for ``seed`` (later ones paint over earlier ones)."""
    if not scheme:
        return ()
    if scheme not in SCHEMES:
        raise ValueError(f"unknown marking scheme {scheme!r}; known {sorted(SCHEMES)}")
    rng = np.random.default_rng([int(seed), 0x6D61726B])
    painted = []
    for marking in SCHEMES[scheme]:
        present = rng.random() < MARKING_PROBABILITY
        x = _scaled(rng, *marking.x, (0.0, 1.0))
        y = _scaled(rng, *marking.y, (0.0, 1.0))
        z = _scaled(rng, *marking.z, (0.0, 1.0 if scheme not in Z_OF_LENGTH else np.inf))
        on = rng.random() < LIGHTS_ON_PROBABILITY
        colour, emissive, gloss, stripes = _finish(rng, marking.finish, on)
        if present:
            painted.append(PaintedMarking(marking, x, y, z, colour, emissive, gloss, stripes))
    return tuple(painted)


def _finish(rng: np.random.Generator, finish: str, on: bool) -> tuple[tuple[float, float, float], bool, float, float]:
    """(colour, emissive, gloss, stripes) of one finish."""
    u = rng.uniform(size=3)
    if finish == "head_light":
        colour = (1.0, 0.95 + 0.05 * u[0], 0.75 + 0.25 * u[1]) if on else (0.8 + 0.15 * u[0],) * 3
        return colour, on, 4.0, 0.0
    if finish == "tail_light":
        colour = (1.0, 0.05 + 0.15 * u[0], 0.03 + 0.07 * u[1]) if on else (0.45 + 0.2 * u[0], 0.02, 0.03)
        return colour, on, 4.0, 0.0
    if finish == "sign":
        colour = (1.0, 0.55 + 0.3 * u[0], 0.05 + 0.15 * u[1]) if on else (0.1, 0.1, 0.1)
        return colour, on, 1.0, 0.0
    if finish in ("glass", "screen"):
        grey = (0.03 + 0.09 * u[0]) if finish == "glass" else (0.01 + 0.04 * u[0])
        return (grey, grey * (1.0 + 0.2 * u[1]), grey * (1.0 + 0.5 * u[2])), False, 3.0 + 3.0 * u[0], 0.0
    if finish == "grille":
        grey = 0.04 + 0.1 * u[0]
        return (grey, grey, grey), False, 1.5, float(rng.uniform(5.0, 10.0))
    # numbers: light plate with dark bars
    light = 0.8 + 0.2 * u[0]
    return (light, light, light), False, 1.0, float(rng.uniform(4.0, 8.0))


def paint(painted: tuple[PaintedMarking, ...], points: np.ndarray, normals: np.ndarray,
          bounds: np.ndarray, scheme: str, albedo: np.ndarray,
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint ``painted`` markings onto N surface points.

    ``points`` (N, 3) and outward face ``normals`` (N, 3) in the object frame (metres), ``bounds``
    (2, 3) the model's bounding box, ``albedo`` (N, 3) float32, changed in place. Returns
    ``(albedo, emission, gloss)``: emission (N, 3) float32, the colour a lit lamp shows whatever
    the shading (0 elsewhere), gloss (N,) float32 the specular multiplier (1 elsewhere).
    """
    emission = np.zeros_like(albedo)
    gloss = np.ones(len(albedo), dtype=np.float32)
    if not painted or not len(points):
        return albedo, emission, gloss
    lo, hi = np.asarray(bounds[0], np.float32), np.asarray(bounds[1], np.float32)
    extent = np.maximum(hi - lo, np.float32(1e-6))
    u = (points - lo) / extent
    y_off = np.abs(2.0 * u[:, 1] - 1.0)
    z = (points[:, 2] - lo[2]) / extent[0] if scheme in Z_OF_LENGTH else u[:, 2]
    for item in painted:
        m = item.marking
        cos = normals @ np.asarray(m.facing, np.float32)
        inside = (np.abs(cos) if m.both_ways else cos) >= m.min_cos
        inside &= (u[:, 0] >= item.x[0]) & (u[:, 0] <= item.x[1])
        inside &= (y_off >= item.y[0]) & (y_off <= item.y[1])
        inside &= (z >= item.z[0]) & (z <= item.z[1])
        sel = np.flatnonzero(inside)
        if not len(sel):
            continue
        colour = np.broadcast_to(np.asarray(item.colour, np.float32), (len(sel), 3)).copy()
        if item.stripes:
            # grille: horizontal bars (along z); numbers: characters as vertical bars (along x)
            along = z[sel] - item.z[0] if m.finish == "grille" else u[sel, 0] - item.x[0]
            span = (item.z[1] - item.z[0]) if m.finish == "grille" else (item.x[1] - item.x[0])
            bars = np.modf(along / max(span, 1e-6) * item.stripes)[0] < 0.45
            colour[bars] = np.float32(0.35) if m.finish == "grille" else np.float32(0.05)
        albedo[sel] = colour
        gloss[sel] = item.gloss
        emission[sel] = colour if item.emissive else 0.0
    return albedo, emission, gloss
