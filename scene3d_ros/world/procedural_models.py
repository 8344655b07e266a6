"""Procedural CAD models: mesh-building helpers and one generator per category sub-type.

Every generator takes a seeded ``numpy.random.Generator`` (its parameters are drawn from it) and
returns one ``trimesh.Trimesh`` in the **canonical object frame** of its category (see
:mod:`scene3d_ros.world.cad_library` for which physical side is the front of each category):
+x = front, +y = left, +z = up, metres. Generators build their parts with z = 0 at the ground
(or at the bottom of the object); :func:`finalize` then moves the origin to the centre of the
axis-aligned bounding box. Models are unions of closed primitives (boxes, cylinders, extrusions,
lofts, revolutions, tori, tubes swept along paths) concatenated without any boolean operation;
each part keeps its own connected component and outward-facing winding.

The registry :data:`SUBTYPES` lists, per category, the sub-types, their symmetry about +z and
their generator. :func:`generate_procedural_models` draws ``INSTANCES_PER_SUBTYPE`` instances of
each; instance parameters come from a generator seeded by ``(seed, crc32(model_id))``, so model
ids and meshes are stable when sub-types are added or reordered.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import trimesh
from trimesh import creation
from trimesh.transformations import rotation_matrix

from scene3d_ros import CATEGORIES
from scene3d_ros.geometry import SYMMETRIES

INSTANCES_PER_SUBTYPE = 2
VERTEX_DECIMALS = 6  # vertices are rounded to micrometres so exported files are stable

ArrayLike = Sequence[float] | np.ndarray
Generator = np.random.Generator


# =========================================================================== mesh helpers
def _outward(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Flip the winding of a closed part whose signed volume is negative (normals inward)."""
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def box(size: ArrayLike, center: ArrayLike = (0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    """Axis-aligned box of ``size`` (x, y, z) metres centred at ``center``."""
    mesh = creation.box(extents=np.asarray(size, dtype=float))
    mesh.apply_translation(np.asarray(center, dtype=float))
    return mesh


def box_between(lo: ArrayLike, hi: ArrayLike) -> trimesh.Trimesh:
    """Axis-aligned box spanning the corners ``lo`` and ``hi`` (any order)."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    return box(np.abs(hi - lo), (lo + hi) / 2.0)


def cylinder(p0: ArrayLike, p1: ArrayLike, radius: float, sections: int = 16) -> trimesh.Trimesh:
    """Solid cylinder of ``radius`` whose axis runs from point ``p0`` to point ``p1``."""
    segment = np.array([p0, p1], dtype=float)
    return creation.cylinder(radius=radius, segment=segment, sections=sections)


def _align_z_to(mesh: trimesh.Trimesh, p0: np.ndarray, p1: np.ndarray) -> trimesh.Trimesh:
    """Move a mesh built along +z from the origin so that its +z axis runs from p0 towards p1."""
    direction = p1 - p0
    transform = trimesh.geometry.align_vectors([0.0, 0.0, 1.0], direction / np.linalg.norm(direction))
    mesh.apply_transform(transform)
    mesh.apply_translation(p0)
    return mesh


def frustum(p0: ArrayLike, p1: ArrayLike, r0: float, r1: float, sections: int = 16) -> trimesh.Trimesh:
    """Truncated cone from ``p0`` (radius ``r0``) to ``p1`` (radius ``r1``)."""
    p0, p1 = np.asarray(p0, dtype=float), np.asarray(p1, dtype=float)
    length = float(np.linalg.norm(p1 - p0))
    mesh = revolve([(0.0, 0.0), (r0, 0.0), (r1, length), (0.0, length)], sections=sections)
    return _align_z_to(mesh, p0, p1)


def ellipsoid(center: ArrayLike, radii: ArrayLike, subdivisions: int = 2) -> trimesh.Trimesh:
    """Ellipsoid with semi-axes ``radii`` (x, y, z) centred at ``center``."""
    mesh = creation.icosphere(subdivisions=subdivisions, radius=1.0)
    mesh.apply_scale(np.asarray(radii, dtype=float))
    mesh.apply_translation(np.asarray(center, dtype=float))
    return mesh


def torus(center: ArrayLike, major: float, minor: float, axis: str = "y",
          major_sections: int = 24, minor_sections: int = 8) -> trimesh.Trimesh:
    """Torus (a tyre, a ring) of radii ``major``/``minor`` around ``axis`` ('x', 'y' or 'z')."""
    mesh = creation.torus(major, minor, major_sections=major_sections, minor_sections=minor_sections)
    if axis == "y":
        mesh.apply_transform(rotation_matrix(np.pi / 2.0, [1.0, 0.0, 0.0]))
    elif axis == "x":
        mesh.apply_transform(rotation_matrix(np.pi / 2.0, [0.0, 1.0, 0.0]))
    mesh.apply_translation(np.asarray(center, dtype=float))
    return mesh


def revolve(profile_rz: ArrayLike, sections: int = 32) -> trimesh.Trimesh:
    """Solid of revolution about +z of a profile of (radius, z) points; start/end it at radius 0."""
    mesh = creation.revolve(np.asarray(profile_rz, dtype=float), sections=sections)
    return _outward(mesh)


def _signed_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def triangulate_polygon(points: ArrayLike) -> np.ndarray:
    """Ear-clipping triangulation of a simple 2D polygon ``(N, 2)``; faces ``(N - 2, 3)``, CCW."""
    pts = np.asarray(points, dtype=float)
    order = list(range(len(pts)))
    if _signed_area(pts) < 0:
        order.reverse()

    def cross(a: int, b: int, c: int) -> float:
        ab, bc = pts[b] - pts[a], pts[c] - pts[b]
        return float(ab[0] * bc[1] - ab[1] * bc[0])

    def inside(p: np.ndarray, a: int, b: int, c: int) -> bool:
        d = [(pts[q][0] - p[0]) * (pts[r][1] - p[1]) - (pts[q][1] - p[1]) * (pts[r][0] - p[0])
             for q, r in ((a, b), (b, c), (c, a))]
        return min(d) >= -1e-15

    faces = []
    while len(order) > 3:
        n = len(order)
        for k in range(n):
            a, b, c = order[k - 1], order[k], order[(k + 1) % n]
            if cross(a, b, c) <= 1e-15:
                continue
            if any(inside(pts[j], a, b, c) for j in order if j not in (a, b, c)):
                continue
            faces.append((a, b, c))
            order.pop(k)
            break
        else:  # only degenerate (collinear) ears left: drop the flattest vertex
            k = min(range(n), key=lambda k: abs(cross(order[k - 1], order[k], order[(k + 1) % n])))
            faces.append((order[k - 1], order[k], order[(k + 1) % n]))
            order.pop(k)
    faces.append(tuple(order))
    return np.array(faces, dtype=np.int64)


# In-plane coordinates (u, v) and the normal axis w for extrusions and lofts: (u, v, w) is a
# right-handed permutation of (x, y, z) so that CCW polygons face +w.
_PLANE_AXES = {"x": (1, 2, 0), "y": (2, 0, 1), "z": (0, 1, 2)}
_PROFILE_AXES = {"x": (1, 2), "y": (0, 2), "z": (0, 1)}


def extrude(profile: ArrayLike, axis: str, lo: float, hi: float) -> trimesh.Trimesh:
    """Prism: a simple polygon extruded along ``axis`` from ``lo`` to ``hi`` (metres).

    The polygon is given in the two remaining axes in natural order: (y, z) for axis 'x',
    (x, z) for axis 'y' (a side profile), (x, y) for axis 'z' (a plan view).
    """
    pts = np.asarray(profile, dtype=float)
    faces = triangulate_polygon(pts)
    prism = creation.extrude_triangulation(pts, faces, height=hi - lo)
    vertices = np.zeros_like(prism.vertices)
    a, b = _PROFILE_AXES[axis]
    w = "xyz".index(axis)
    vertices[:, a] = prism.vertices[:, 0]
    vertices[:, b] = prism.vertices[:, 1]
    vertices[:, w] = prism.vertices[:, 2] + lo
    return _outward(trimesh.Trimesh(vertices, prism.faces, process=False))


def loft(axis: str, positions: Sequence[float], rings: Sequence[ArrayLike]) -> trimesh.Trimesh:
    """Closed skin through cross-sections perpendicular to ``axis``, capped at both ends.

    ``rings[i]`` is an ``(N, 2)`` simple polygon (same N for all) placed at ``positions[i]`` on
    ``axis``; its coordinates are the other two axes in natural order as in :func:`extrude`.
    """
    rings = [np.asarray(r, dtype=float) for r in rings]
    n = len(rings[0])
    if any(len(r) != n for r in rings) or len(rings) != len(positions):
        raise ValueError("loft needs one ring per position, all with the same number of points")
    if _signed_area(rings[0]) < 0:
        rings = [r[::-1] for r in rings]
    a, b = _PROFILE_AXES[axis]
    w = "xyz".index(axis)
    vertices = np.zeros((len(rings) * n, 3))
    for i, (pos, ring) in enumerate(zip(positions, rings, strict=True)):
        vertices[i * n:(i + 1) * n, a] = ring[:, 0]
        vertices[i * n:(i + 1) * n, b] = ring[:, 1]
        vertices[i * n:(i + 1) * n, w] = pos
    j = np.arange(n)
    side = []
    for i in range(len(rings) - 1):
        p, q = i * n + j, i * n + (j + 1) % n
        r, s = (i + 1) * n + (j + 1) % n, (i + 1) * n + j
        side.append(np.stack([p, q, r], axis=1))
        side.append(np.stack([p, r, s], axis=1))
    cap = triangulate_polygon(rings[0])
    faces = np.vstack(side + [cap[:, ::-1], cap + (len(rings) - 1) * n])
    # the (a, b, w) axis order may be a reflection of (x, y, z): fix the winding by volume sign
    return _outward(trimesh.Trimesh(vertices, faces, process=False))


def superellipse_ring(half_u: float, half_v: float, exponent: float = 2.0, n: int = 16,
                      center: ArrayLike = (0.0, 0.0)) -> np.ndarray:
    """``(n, 2)`` CCW ring |u/a|^p + |v/b|^p = 1: p = 2 an ellipse, p ~ 5-8 a rounded rectangle."""
    t = 2.0 * np.pi * (np.arange(n) + 0.5) / n
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / exponent
    u = half_u * np.sign(c) * np.abs(c) ** e
    v = half_v * np.sign(s) * np.abs(s) ** e
    return np.stack([u, v], axis=1) + np.asarray(center, dtype=float)


def section_loft(sections: Sequence[Sequence[float]], exponent: float = 3.0, n: int = 16,
                 y: float = 0.0) -> trimesh.Trimesh:
    """Loft along x through rounded sections ``(x, half_width, z_bottom, z_top[, exponent])`` centred
    on ``y``: fairings, vehicle bodies, noses (superellipse sections, see :func:`superellipse_ring`)."""
    rings = [superellipse_ring(sec[1], (sec[3] - sec[2]) / 2.0, sec[4] if len(sec) > 4 else exponent, n,
                               (y, (sec[2] + sec[3]) / 2.0)) for sec in sections]
    return loft("x", [sec[0] for sec in sections], rings)


def rounded_box(size: ArrayLike, center: ArrayLike = (0.0, 0.0, 0.0), exponent: float = 6.0,
                axis: str = "x", n: int = 16) -> trimesh.Trimesh:
    """Box with rounded edges along ``axis`` (a superellipse cross-section extruded along it)."""
    size, center = np.asarray(size, dtype=float), np.asarray(center, dtype=float)
    a, b = _PROFILE_AXES[axis]
    w = "xyz".index(axis)
    ring = superellipse_ring(size[a] / 2.0, size[b] / 2.0, exponent, n, (center[a], center[b]))
    return extrude(ring, axis, center[w] - size[w] / 2.0, center[w] + size[w] / 2.0)


def tube(points: ArrayLike, radius: float, sides: int = 8,
         profile: ArrayLike | None = None) -> trimesh.Trimesh:
    """A tube swept along a polyline (bent tubes, handlebars, rails, mudguards).

    The cross-section is a circle of ``radius`` or ``profile`` ``(M, 2)`` given in the (normal,
    binormal) frame that is transported along the path without twist.
    """
    pts = np.asarray(points, dtype=float)
    if profile is None:
        t = 2.0 * np.pi * np.arange(sides) / sides
        profile = np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)
    profile = np.asarray(profile, dtype=float)
    if _signed_area(profile) < 0:
        profile = profile[::-1]  # CCW, like the caps, so that sides and caps wind the same way
    seg = np.diff(pts, axis=0)
    seg /= np.linalg.norm(seg, axis=1, keepdims=True)
    tangents = np.vstack([seg[:1], seg[:-1] + seg[1:], seg[-1:]])
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    ref = np.array([0.0, 0.0, 1.0]) if abs(tangents[0, 2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    normal = np.cross(tangents[0], ref)
    normal /= np.linalg.norm(normal)
    m = len(profile)
    vertices = []
    for p, t in zip(pts, tangents, strict=True):
        normal = normal - np.dot(normal, t) * t
        normal /= np.linalg.norm(normal)
        binormal = np.cross(t, normal)
        # stretch the section at bends so the tube keeps its thickness (mitre joint)
        vertices.append(p + np.outer(profile[:, 0], normal) + np.outer(profile[:, 1], binormal))
    vertices = np.vstack(vertices)
    j = np.arange(m)
    faces = []
    for i in range(len(pts) - 1):
        p, q = i * m + j, i * m + (j + 1) % m
        r, s = (i + 1) * m + (j + 1) % m, (i + 1) * m + j
        faces += [np.stack([p, q, r], axis=1), np.stack([p, r, s], axis=1)]
    cap = triangulate_polygon(profile)
    faces += [cap[:, ::-1], cap + (len(pts) - 1) * m]
    return _outward(trimesh.Trimesh(vertices, np.vstack(faces), process=False))


def arc_points(center: ArrayLike, radius: float, start_deg: float, end_deg: float, n: int = 8,
               plane: str = "xz") -> np.ndarray:
    """``(n, 3)`` points on a circular arc in the 'xz', 'xy' or 'yz' plane (angles from the first axis)."""
    t = np.radians(np.linspace(start_deg, end_deg, n))
    out = np.tile(np.asarray(center, dtype=float), (n, 1))
    a, b = ("xyz".index(plane[0]), "xyz".index(plane[1]))
    out[:, a] += radius * np.cos(t)
    out[:, b] += radius * np.sin(t)
    return out


def strip_profile(width: float, thickness: float) -> np.ndarray:
    """Flat rectangular cross-section for :func:`tube` (mudguards, bands, rockers), metres."""
    half = width / 2.0
    return np.array([[0.0, -half], [0.0, half], [thickness, half], [thickness, -half]])


def bar_y(x: float, z: float, half_width: float, radius: float, sections: int = 8) -> trimesh.Trimesh:
    """Cylinder across the object (along y, centred on y = 0) at (x, z): bars, axles, rails."""
    return cylinder((x, -half_width, z), (x, half_width, z), radius, sections)


def rotated(mesh: trimesh.Trimesh, angle_deg: float, axis: str = "z",
            about: ArrayLike = (0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    """Copy of ``mesh`` rotated by ``angle_deg`` about an axis through point ``about``."""
    direction = np.eye(3)["xyz".index(axis)]
    out = mesh.copy()
    out.apply_transform(rotation_matrix(np.radians(angle_deg), direction, np.asarray(about, dtype=float)))
    return out


def mirrored_y(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Mirror image of ``mesh`` across the x-z plane (left <-> right), winding kept outward."""
    vertices = mesh.vertices * np.array([1.0, -1.0, 1.0])
    return trimesh.Trimesh(vertices, mesh.faces[:, ::-1], process=False)


def both_sides(mesh: trimesh.Trimesh) -> list[trimesh.Trimesh]:
    """``[mesh, mirrored_y(mesh)]``: a part and its left/right twin."""
    return [mesh, mirrored_y(mesh)]


def finalize(parts: Sequence[trimesh.Trimesh]) -> trimesh.Trimesh:
    """Concatenate parts, drop degenerate faces, centre the bounding box at the origin, round.

    The result is in metres, its axis-aligned bounding-box centre at the origin (to within
    rounding, 1e-6 m).
    """
    mesh = trimesh.util.concatenate(list(parts))
    mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    mesh.update_faces(mesh.area_faces > 1e-12)
    mesh.remove_unreferenced_vertices()
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    mesh.vertices = np.round(mesh.vertices, VERTEX_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0
    mesh.update_faces(mesh.area_faces > 1e-12)
    mesh.remove_unreferenced_vertices()
    return mesh


# ------------------------------------------------------------------ shared vehicle parts
def wheel_y(x: float, z: float, radius: float, width: float, y: float, sections: int = 18) -> trimesh.Trimesh:
    """A solid wheel (axis along y) centred at (x, y, z)."""
    return cylinder((x, y - width / 2.0, z), (x, y + width / 2.0, z), radius, sections)


def wheel_pair(x: float, radius: float, width: float, track: float,
               sections: int = 18) -> list[trimesh.Trimesh]:
    """Left and right wheels of an axle at ``x`` standing on z = 0; ``track`` between wheel centres."""
    return [wheel_y(x, radius, radius, width, s * track / 2.0, sections) for s in (1.0, -1.0)]


def spoked_wheel(x: float, z: float, radius: float, tyre: float, y: float = 0.0, spokes: int = 12,
                 hub_width: float = 0.1, disc: bool = False) -> list[trimesh.Trimesh]:
    """Bicycle/motorbike wheel in the x-z plane: torus tyre, hub and spokes (or a solid disc)."""
    parts = [torus((x, y, z), radius - tyre, tyre, "y", 24, 8)]
    parts.append(cylinder((x, y - hub_width / 2.0, z), (x, y + hub_width / 2.0, z), max(0.02, tyre), 10))
    if disc:
        parts.append(cylinder((x, y - tyre * 0.8, z), (x, y + tyre * 0.8, z), radius - 1.8 * tyre, 20))
    else:
        rim = radius - 2.0 * tyre
        for k in range(spokes):
            a = 2.0 * np.pi * k / spokes
            side = hub_width / 2.0 * (1 if k % 2 else -1)
            end = (x + rim * np.cos(a), y, z + rim * np.sin(a))
            parts.append(cylinder((x, y + side, z), end, 0.0025, 4))
    return parts


def bogie(x: float, wheel_r: float = 0.46, axles: int = 2, spacing: float = 2.5, gauge: float = 1.5,
          frame_width: float = 2.3) -> list[trimesh.Trimesh]:
    """A railway bogie centred at ``x`` on the rail plane z = 0: side frame and wheelsets."""
    length = spacing * (axles - 1) + 2.0 * wheel_r + 0.6
    parts = [box((length, frame_width, 0.45), (x, 0.0, wheel_r + 0.1))]
    for k in range(axles):
        ax = x + (k - (axles - 1) / 2.0) * spacing
        parts += wheel_pair(ax, wheel_r, 0.16, gauge, 16)
        parts.append(bar_y(ax, wheel_r, gauge / 2.0, 0.09))  # axle
    return parts


def propeller(center: ArrayLike, radius: float, blades: int = 3, phase_deg: float = 30.0,
              axis_len: float = 0.4) -> list[trimesh.Trimesh]:
    """Propeller facing +x at ``center``: a spinner and ``blades`` flat blades in the y-z plane."""
    c = np.asarray(center, dtype=float)
    parts = [ellipsoid(c + (axis_len * 0.3, 0.0, 0.0), (axis_len * 0.6, radius * 0.12, radius * 0.12), 1)]
    for k in range(blades):
        blade = box((0.05 * radius, 0.14 * radius, radius), (0.0, 0.0, radius / 2.0))
        blade = rotated(blade, phase_deg + 360.0 * k / blades, "x")
        blade.apply_translation(c)
        parts.append(blade)
    return parts


def _u(rng: Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


# =========================================================================== aeroplane
def _fuselage(length: float, radius: float, nose_len: float, tail_len: float, z: float = 0.0,
              width_ratio: float = 1.0, tail_radius: float = 0.12, nose_drop: float = 0.0,
              n: int = 16) -> trimesh.Trimesh:
    """Fuselage along x (nose at +x) with a rounded nose and an upswept tapered tail cone."""
    x_nose, x_tail = length / 2.0, -length / 2.0
    xs = [x_tail + (1.0 - t) * tail_len for t in (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)]
    xs += [x_nose - nose_len + t * nose_len for t in (0.0, 0.35, 0.6, 0.78, 0.9, 0.97, 1.0)]
    rings = []
    for x in xs:
        if x >= x_nose - nose_len:
            t = (x - (x_nose - nose_len)) / nose_len
            r = radius * max(np.sqrt(max(1.0 - t * t, 0.0)), 0.04)
            zc = z - nose_drop * radius * t * t
        else:
            t = (x_tail + tail_len - x) / tail_len  # 0 at the start of the tail cone, 1 at its tip
            r = radius * (1.0 - (1.0 - tail_radius) * t)
            zc = z + (radius - r) * 0.85  # keep the top line straight, sweep the belly up
        rings.append(superellipse_ring(r * width_ratio, r, 2.0, n, (0.0, zc)))
    return loft("x", xs, rings)


def _wing(x_le_root: float, root_chord: float, tip_chord: float, half_span: float, sweep_deg: float,
          thickness: float, z: float, dihedral_deg: float = 0.0,
          y_root: float = 0.0) -> list[trimesh.Trimesh]:
    """A pair of flat wings (left and right) from ``y_root`` outwards; leading edge at +x."""
    x_le_tip = x_le_root - (half_span - y_root) * np.tan(np.radians(sweep_deg))
    planform = [(x_le_root, y_root), (x_le_root - root_chord, y_root),
                (x_le_tip - tip_chord, half_span), (x_le_tip, half_span)]
    left = extrude(planform, "z", z - thickness / 2.0, z + thickness / 2.0)
    if dihedral_deg:
        left = rotated(left, dihedral_deg, "x", (0.0, y_root, z))
    return both_sides(left)


def _fin(x_le_root: float, root_chord: float, tip_chord: float, height: float, sweep_deg: float,
         thickness: float, z0: float, y: float = 0.0) -> trimesh.Trimesh:
    """Vertical tail fin standing on z = ``z0`` with its leading edge at +x."""
    x_le_tip = x_le_root - height * np.tan(np.radians(sweep_deg))
    profile = [(x_le_root, z0), (x_le_root - root_chord, z0),
               (x_le_tip - tip_chord, z0 + height), (x_le_tip, z0 + height)]
    return extrude(profile, "y", y - thickness / 2.0, y + thickness / 2.0)


def _jet_engine(x_front: float, y: float, z: float, length: float, radius: float) -> list[trimesh.Trimesh]:
    """Under-wing turbofan nacelle (intake at +x) with its pylon going up to the wing."""
    return [frustum((x_front, y, z), (x_front - length, y, z), radius, radius * 0.7, 16),
            box((length * 0.6, radius * 0.3, radius * 1.2), (x_front - length * 0.55, y, z + radius * 1.1))]


def aeroplane_airliner(rng: Generator) -> trimesh.Trimesh:
    """Twin-engine narrow-body airliner: low swept wing, two under-wing engines, low tailplane."""
    length = _u(rng, 33.0, 44.0)
    radius = _u(rng, 1.85, 2.1)
    span = length * _u(rng, 0.9, 1.0)
    sweep = _u(rng, 24.0, 30.0)
    parts = [_fuselage(length, radius, 0.12 * length, 0.28 * length, nose_drop=0.15)]
    root_chord = 0.19 * length
    x_le = 0.12 * length
    parts += _wing(x_le, root_chord, 0.25 * root_chord, span / 2.0, sweep, 0.35, -0.55 * radius, 5.0)
    x_le_engine = x_le - np.tan(np.radians(sweep)) * 0.33 * span / 2.0 + 2.2
    for s in (1.0, -1.0):
        parts += _jet_engine(x_le_engine, s * 0.33 * span / 2.0, -radius * 0.95, 0.11 * length, 0.85)
    x_tail = -length / 2.0
    parts += _wing(x_tail + 0.16 * length, 0.1 * length, 0.035 * length, 0.17 * span, 32.0, 0.2,
                   0.4 * radius, 6.0)
    parts.append(_fin(x_tail + 0.2 * length, 0.14 * length, 0.05 * length, 0.2 * length, 38.0, 0.3,
                      radius * 0.7))
    return finalize(parts)


def aeroplane_jumbo(rng: Generator) -> trimesh.Trimesh:
    """Four-engine wide-body (747-like): upper-deck hump, long swept wing, four engines."""
    length = _u(rng, 62.0, 70.0)
    radius = _u(rng, 3.1, 3.4)
    span = length * _u(rng, 0.9, 0.97)
    sweep = _u(rng, 36.0, 40.0)
    parts = [_fuselage(length, radius, 0.1 * length, 0.26 * length, nose_drop=0.1, n=20)]
    hump_len = 0.32 * length  # upper deck
    parts.append(ellipsoid((length / 2.0 - 0.05 * length - hump_len / 2.0, 0.0, 0.55 * radius),
                           (hump_len / 2.0 + 0.02 * length, 0.72 * radius, radius)))
    root_chord = 0.22 * length
    x_le = 0.13 * length
    parts += _wing(x_le, root_chord, 0.2 * root_chord, span / 2.0, sweep, 0.6, -0.6 * radius, 6.0)
    for frac in (0.33, 0.62):
        y = frac * span / 2.0
        x_front = x_le - np.tan(np.radians(sweep)) * y + 3.0
        for s in (1.0, -1.0):
            z_engine = -radius * 0.75 + np.tan(np.radians(6.0)) * y
            parts += _jet_engine(x_front, s * y, z_engine, 0.085 * length, 1.3)
    x_tail = -length / 2.0
    parts += _wing(x_tail + 0.15 * length, 0.1 * length, 0.035 * length, 0.17 * span, 36.0, 0.3,
                   0.4 * radius, 7.0)
    parts.append(_fin(x_tail + 0.19 * length, 0.14 * length, 0.05 * length, 0.19 * length, 42.0, 0.45,
                      radius * 0.7))
    return finalize(parts)


def aeroplane_fighter(rng: Generator) -> trimesh.Trimesh:
    """Delta-wing jet fighter: slender pointed fuselage, big delta wing, canards, single fin."""
    length = _u(rng, 15.0, 19.0)
    radius = _u(rng, 0.75, 0.9)
    span = length * _u(rng, 0.58, 0.68)
    parts = [_fuselage(length, radius, 0.3 * length, 0.08 * length, width_ratio=1.2, tail_radius=0.75, n=14)]
    parts.append(ellipsoid((0.22 * length, 0.0, radius * 0.8), (0.12 * length, 0.4 * radius, 0.55 * radius)))
    x_le = 0.12 * length
    root = 0.56 * length
    half = span / 2.0
    sweep = np.degrees(np.arctan((root - 0.06 * length) / half * 0.95))
    parts += _wing(x_le, root, 0.06 * length, half, sweep, 0.22, -0.15 * radius)
    parts += _wing(0.28 * length, 0.1 * length, 0.03 * length, 0.2 * span, 45.0, 0.1, 0.2 * radius)  # canards
    for s in (1.0, -1.0):
        parts.append(box((0.3 * length, 0.5, 0.9 * radius), (0.0, s * 1.05 * radius, -0.1 * radius)))
    parts.append(_fin(-0.18 * length, 0.28 * length, 0.07 * length, 0.22 * length, 50.0, 0.16, 0.6 * radius))
    parts.append(frustum((-0.46 * length, 0.0, 0.0), (-0.5 * length, 0.0, 0.0), 0.8 * radius, 0.7 * radius))
    return finalize(parts)


def aeroplane_propeller(rng: Generator) -> trimesh.Trimesh:
    """Twin-turboprop regional aircraft: high straight wing, two propeller nacelles, T-tail."""
    length = _u(rng, 22.0, 27.0)
    radius = _u(rng, 1.3, 1.45)
    span = _u(rng, 25.0, 29.0)
    parts = [_fuselage(length, radius, 0.1 * length, 0.3 * length, nose_drop=0.2)]
    chord = 0.1 * length
    x_le = 0.06 * length
    parts += _wing(x_le, chord, 0.55 * chord, span / 2.0, 2.0, 0.3, radius + 0.15)
    for s in (1.0, -1.0):
        y = s * 0.3 * span / 2.0 * 1.2
        parts.append(rounded_box((0.32 * length, 1.0, 1.1), (x_le - 0.05 * length, y, radius - 0.2), 4.0))
        parts += propeller((x_le + 0.11 * length, y, radius - 0.1), 1.9, 6, 15.0)
        parts.append(box((0.2 * length, 1.1, 0.9), (0.0, s * (radius + 0.3), -radius + 0.3)))  # gear sponsons
    x_tail = -length / 2.0
    fin_h = 0.2 * length
    parts.append(_fin(x_tail + 0.22 * length, 0.17 * length, 0.09 * length, fin_h, 35.0, 0.3, radius * 0.6))
    parts += _wing(x_tail + 0.05 * length - fin_h * np.tan(np.radians(35.0)) + 0.1 * length, 0.08 * length,
                   0.05 * length, 0.19 * span, 10.0, 0.2, radius * 0.6 + fin_h)
    return finalize(parts)


def aeroplane_biplane(rng: Generator) -> trimesh.Trimesh:
    """Large single-engine biplane (An-2-like): two stacked wings with struts, radial engine, tail wheel."""
    length = _u(rng, 12.5, 13.5)
    span = _u(rng, 17.5, 18.5)
    radius = _u(rng, 0.9, 1.0)
    zf = 2.2  # fuselage axis above the ground
    parts = [_fuselage(length, radius, 0.1 * length, 0.45 * length, z=zf, tail_radius=0.25)]
    x_nose = length / 2.0
    parts.append(cylinder((x_nose - 1.6, 0.0, zf), (x_nose - 0.2, 0.0, zf), radius * 1.1, 16))
    parts += propeller((x_nose - 0.2, 0.0, zf), 1.8, 4, 20.0)
    chord = _u(rng, 2.2, 2.5)
    z_low, z_up = zf - radius + 0.1, zf + radius + 1.4
    parts += _wing(x_nose - 2.2, chord, chord, span / 2.0, 0.0, 0.22, z_up)
    parts += _wing(x_nose - 2.4, chord * 0.85, chord * 0.85, span * 0.38, 0.0, 0.2, z_low, 3.0)
    for s in (1.0, -1.0):
        for y in (3.5, 6.5):
            z_strut = z_low + np.tan(np.radians(3.0)) * y  # the lower wing has dihedral
            parts.append(cylinder((x_nose - 2.5, s * y, z_strut), (x_nose - 2.7, s * y, z_up), 0.06, 6))
        parts.append(cylinder((x_nose - 2.8, s * 0.5, zf - radius), (x_nose - 3.0, s * 1.6, 0.5), 0.1, 8))
        parts.append(wheel_y(x_nose - 3.0, 0.5, 0.5, 0.3, s * 1.6))
    parts.append(wheel_y(-length / 2.0 + 0.9, 0.25, 0.25, 0.12, 0.0))
    fin_top = z_up + 1.2
    parts.append(_fin(-length / 2.0 + 2.8, 2.8, 1.6, fin_top - zf, 20.0, 0.15, zf))
    parts += _wing(-length / 2.0 + 2.6, 1.8, 1.3, 3.5, 5.0, 0.12, zf + 0.5 * radius)
    return finalize(parts)


def aeroplane_glider(rng: Generator) -> trimesh.Trimesh:
    """Sailplane: long slender high-aspect wing, pod-and-boom fuselage, T-tail, no engine."""
    length = _u(rng, 7.0, 8.5)
    span = _u(rng, 15.0, 20.0)
    radius = _u(rng, 0.38, 0.45)
    parts = [_fuselage(length, radius, 0.2 * length, 0.62 * length, tail_radius=0.25, n=12)]
    parts.append(ellipsoid((0.22 * length, 0.0, radius * 0.7), (0.16 * length, 0.33, 0.3)))  # canopy
    chord = _u(rng, 0.9, 1.05)
    parts += _wing(0.08 * length, chord, 0.45 * chord, span / 2.0, 1.0, 0.1, 0.55 * radius, 3.0)
    fin_h = _u(rng, 1.2, 1.4)
    parts.append(_fin(-length / 2.0 + 1.2, 1.1, 0.6, fin_h, 25.0, 0.08, 0.5 * radius))
    parts += _wing(-length / 2.0 + 1.2 - fin_h * np.tan(np.radians(25.0)) + 0.1, 0.6, 0.4, 1.5, 5.0, 0.06,
                   0.5 * radius + fin_h)
    return finalize(parts)


# =========================================================================== bicycle
def _bike_drive(x_bb: float, z_bb: float, y_side: float = -0.06) -> list[trimesh.Trimesh]:
    """Chainring, crank arms and pedals around a bottom bracket at (x_bb, 0, z_bb)."""
    parts = [cylinder((x_bb, y_side - 0.005, z_bb), (x_bb, y_side + 0.005, z_bb), 0.1, 18)]
    for s, ang in ((-1.0, 60.0), (1.0, 240.0)):
        end = (x_bb + 0.17 * np.cos(np.radians(ang)), s * 0.09, z_bb + 0.17 * np.sin(np.radians(ang)))
        parts.append(cylinder((x_bb, s * 0.08, z_bb), end, 0.012, 6))
        parts.append(box((0.1, 0.09, 0.025), (end[0], s * 0.15, end[2])))
    return parts


def _bike_frame(rear: tuple[float, float], front: tuple[float, float], bb: tuple[float, float],
                seat_top: tuple[float, float], head_top: tuple[float, float],
                head_bottom: tuple[float, float], tube_r: float,
                top_tube: bool = True) -> list[trimesh.Trimesh]:
    """Diamond frame tubes in the x-z plane (y = 0) plus the fork; points are (x, z)."""
    def p(xz: tuple[float, float], y: float = 0.0) -> tuple[float, float, float]:
        return (xz[0], y, xz[1])
    seat_cluster = (bb[0] + 0.72 * (seat_top[0] - bb[0]), bb[1] + 0.72 * (seat_top[1] - bb[1]))
    parts = [cylinder(p(bb), p(seat_top), tube_r, 10),                       # seat tube + post
             cylinder(p(bb), p(head_bottom), tube_r * 1.15, 10),             # down tube
             cylinder(p(head_bottom), p(head_top), tube_r * 1.2, 10)]        # head tube
    if top_tube:
        parts.append(cylinder(p(seat_cluster), p(head_top), tube_r, 10))
    for s in (1.0, -1.0):
        parts.append(cylinder(p(bb, s * 0.03), p(rear, s * 0.06), tube_r * 0.7, 8))          # chain stays
        parts.append(cylinder(p(seat_cluster, s * 0.02), p(rear, s * 0.06), tube_r * 0.6, 8))  # seat stays
        parts.append(cylinder(p(head_bottom, s * 0.03), p(front, s * 0.055), tube_r * 0.8, 8))  # fork
    return parts


def _saddle(x: float, z: float, length: float = 0.27) -> trimesh.Trimesh:
    return extrude([(x - length * 0.45, -0.08), (x + length * 0.55, -0.02), (x + length * 0.55, 0.02),
                    (x - length * 0.45, 0.08)], "z", z, z + 0.05)


def bicycle_road(rng: Generator) -> trimesh.Trimesh:
    """Road bike: 700c thin tyres, horizontal top tube, drop handlebar lower than the saddle."""
    r = _u(rng, 0.33, 0.34)
    wb = _u(rng, 0.97, 1.01)
    xr, xf = -wb / 2.0, wb / 2.0
    bb = (xr + 0.41, 0.27)
    seat_top = (bb[0] - 0.22, 1.0)
    head_top, head_bottom = (xf - 0.17, 0.9), (xf - 0.12, 0.72)
    parts = spoked_wheel(xr, r, r, 0.013) + spoked_wheel(xf, r, r, 0.013)
    parts += _bike_frame((xr, r), (xf, r), bb, seat_top, head_top, head_bottom, 0.016)
    parts.append(_saddle(seat_top[0] - 0.02, seat_top[1]))
    stem = (head_top[0] + 0.1, head_top[1] + 0.04)
    parts.append(cylinder((head_top[0], 0.0, head_top[1]), (stem[0], 0.0, stem[1]), 0.015, 8))
    parts.append(bar_y(stem[0], stem[1], 0.21, 0.014))
    for s in (1.0, -1.0):  # drops
        bend = np.linspace(0.3, 3.1, 6)
        drop = [(stem[0], s * 0.2, stem[1])]
        drop += [(stem[0] + 0.06 + 0.08 * np.sin(a), s * 0.2, stem[1] - 0.08 + 0.08 * np.cos(a))
                 for a in bend]
        drop.append((stem[0] - 0.04, s * 0.2, stem[1] - 0.16))
        parts.append(tube(drop, 0.013, 6))
    parts += _bike_drive(*bb)
    return finalize(parts)


def bicycle_mountain(rng: Generator) -> trimesh.Trimesh:
    """Mountain bike: 29-inch knobby fat tyres, sloping top tube, suspension fork, wide flat bar."""
    r = _u(rng, 0.36, 0.375)
    wb = _u(rng, 1.12, 1.2)
    xr, xf = -wb / 2.0, wb / 2.0
    bb = (xr + 0.44, 0.33)
    seat_top = (bb[0] - 0.2, 0.98)
    head_top, head_bottom = (xf - 0.27, 0.98), (xf - 0.21, 0.82)
    parts = spoked_wheel(xr, r, r, 0.03, spokes=16) + spoked_wheel(xf, r, r, 0.03, spokes=16)
    parts += _bike_frame((xr, r), (xf, r), bb, seat_top, head_top, head_bottom, 0.024)
    for s in (1.0, -1.0):  # stanchions of the suspension fork
        parts.append(cylinder((head_bottom[0], s * 0.06, head_bottom[1]),
                              (head_bottom[0] + 0.09, s * 0.06, head_bottom[1] - 0.3), 0.02, 8))
    parts.append(_saddle(seat_top[0] - 0.02, seat_top[1]))
    bar_z = head_top[1] + 0.08
    parts.append(cylinder((head_top[0], 0.0, head_top[1]), (head_top[0] + 0.05, 0.0, bar_z), 0.018, 8))
    parts.append(bar_y(head_top[0] + 0.05, bar_z, 0.38, 0.015))
    parts += _bike_drive(*bb)
    return finalize(parts)


def bicycle_bmx(rng: Generator) -> trimesh.Trimesh:
    """BMX: small 20-inch wheels, compact low frame, low seat, tall braced riser bar, axle pegs."""
    r = _u(rng, 0.25, 0.26)
    wb = _u(rng, 0.93, 0.98)
    xr, xf = -wb / 2.0, wb / 2.0
    bb = (xr + 0.35, 0.3)
    seat_top = (bb[0] - 0.15, 0.78)
    head_top, head_bottom = (xf - 0.14, 0.68), (xf - 0.08, 0.52)
    parts = spoked_wheel(xr, r, r, 0.026, spokes=16) + spoked_wheel(xf, r, r, 0.026, spokes=16)
    parts += _bike_frame((xr, r), (xf, r), bb, seat_top, head_top, head_bottom, 0.02)
    parts.append(_saddle(seat_top[0], seat_top[1], 0.22))
    bar_z = head_top[1] + 0.22
    for s in (1.0, -1.0):
        parts.append(cylinder((head_top[0], s * 0.03, head_top[1]), (head_top[0] - 0.02, s * 0.26, bar_z),
                              0.012, 8))
        for x in (xr, xf):
            parts.append(cylinder((x, s * 0.05, r), (x, s * 0.16, r), 0.019, 8))  # pegs
    parts.append(bar_y(head_top[0] - 0.02, bar_z, 0.34, 0.012))
    parts.append(bar_y(head_top[0] - 0.015, bar_z - 0.1, 0.15, 0.01))  # cross brace
    parts += _bike_drive(*bb)
    return finalize(parts)


def bicycle_city(rng: Generator) -> trimesh.Trimesh:
    """Dutch city bike: step-through frame, mudguards, rear rack, front basket, upright swept bar."""
    r = _u(rng, 0.34, 0.35)
    wb = _u(rng, 1.1, 1.16)
    xr, xf = -wb / 2.0, wb / 2.0
    bb = (xr + 0.45, 0.28)
    seat_top = (bb[0] - 0.2, 0.98)
    head_top, head_bottom = (xf - 0.26, 1.0), (xf - 0.2, 0.78)
    parts = spoked_wheel(xr, r, r, 0.022) + spoked_wheel(xf, r, r, 0.022)
    parts += _bike_frame((xr, r), (xf, r), bb, seat_top, head_top, head_bottom, 0.02, top_tube=False)
    low_tube = [(bb[0], 0.0, bb[1] + 0.05), (bb[0] + 0.2, 0.0, 0.42), (head_bottom[0] - 0.05, 0.0, 0.62),
                (head_bottom[0], 0.0, head_bottom[1] + 0.08)]
    parts.append(tube(low_tube, 0.02, 8))  # second, low down tube of the step-through frame
    for x, a0, a1 in ((xr, 0.0, 170.0), (xf, 10.0, 160.0)):
        mudguard = arc_points((x, 0.0, r), r + 0.03, a0, a1, 9)
        parts.append(tube(mudguard, 0.0, profile=strip_profile(0.07, 0.03)))
    parts.append(box((0.4, 0.14, 0.015), (xr + 0.08, 0.0, 2 * r + 0.08)))  # rack
    for s in (1.0, -1.0):
        parts.append(cylinder((xr, s * 0.07, r), (xr + 0.1, s * 0.07, 2 * r + 0.07), 0.008, 6))
    parts.append(_saddle(seat_top[0] - 0.02, seat_top[1], 0.28))
    bar = [(head_top[0] - 0.17, 0.3, head_top[1] + 0.1), (head_top[0] + 0.02, 0.25, head_top[1] + 0.12),
           (head_top[0] + 0.05, 0.0, head_top[1] + 0.1), (head_top[0] + 0.02, -0.25, head_top[1] + 0.12),
           (head_top[0] - 0.17, -0.3, head_top[1] + 0.1)]
    parts.append(tube(bar, 0.012, 6))
    bx, bz = xf + 0.02, head_top[1] - 0.12  # open basket: floor and four walls
    parts += [box((0.3, 0.36, 0.01), (bx, 0.0, bz)),
              box((0.01, 0.36, 0.22), (bx + 0.15, 0.0, bz + 0.11)),
              box((0.01, 0.36, 0.22), (bx - 0.15, 0.0, bz + 0.11)),
              box((0.3, 0.01, 0.22), (bx, 0.18, bz + 0.11)),
              box((0.3, 0.01, 0.22), (bx, -0.18, bz + 0.11))]
    parts += _bike_drive(*bb)
    return finalize(parts)


def bicycle_tandem(rng: Generator) -> trimesh.Trimesh:
    """Tandem: very long frame with two saddles, two handlebars and two cranksets."""
    r = _u(rng, 0.335, 0.345)
    wb = _u(rng, 1.7, 1.8)
    xr, xf = -wb / 2.0, wb / 2.0
    bb_rear, bb_front = (xr + 0.42, 0.27), (xf - 0.62, 0.27)
    seat_rear, seat_front = (bb_rear[0] - 0.2, 0.98), (bb_front[0] - 0.2, 0.98)
    head_top, head_bottom = (xf - 0.2, 0.9), (xf - 0.14, 0.72)
    parts = spoked_wheel(xr, r, r, 0.016) + spoked_wheel(xf, r, r, 0.016)
    parts += _bike_frame((xr, r), (xf, r), bb_front, seat_front, head_top, head_bottom, 0.018)
    for s in (1.0, -1.0):
        parts.append(cylinder((bb_rear[0], s * 0.03, bb_rear[1]), (xr, s * 0.06, r), 0.012, 8))
        parts.append(cylinder((seat_rear[0] + 0.05, s * 0.02, 0.85), (xr, s * 0.06, r), 0.011, 8))
    parts.append(cylinder((bb_rear[0], 0.0, bb_rear[1]), (seat_rear[0], 0.0, seat_rear[1]), 0.018, 8))
    parts.append(cylinder((bb_rear[0], 0.0, bb_rear[1]), (bb_front[0], 0.0, bb_front[1]), 0.02, 8))
    parts.append(cylinder((seat_rear[0] + 0.05, 0.0, 0.85), (seat_front[0] + 0.05, 0.0, 0.85), 0.018, 8))
    parts.append(cylinder((seat_rear[0] + 0.05, 0.0, 0.85), (bb_front[0], 0.0, bb_front[1]), 0.018, 8))
    for seat in (seat_rear, seat_front):
        parts.append(_saddle(seat[0] - 0.02, seat[1]))
    parts.append(bar_y(seat_front[0] - 0.02, 1.0, 0.22, 0.012))  # stoker's bar
    stem = (head_top[0] + 0.08, head_top[1] + 0.08)
    parts.append(cylinder((head_top[0], 0.0, head_top[1]), (stem[0], 0.0, stem[1]), 0.014, 8))
    parts.append(bar_y(stem[0], stem[1], 0.24, 0.013))
    parts += _bike_drive(*bb_rear) + _bike_drive(*bb_front)
    return finalize(parts)


def bicycle_recumbent(rng: Generator) -> trimesh.Trimesh:
    """Recumbent: long low bike, reclined seat with backrest, cranks ahead of a small front wheel."""
    r_rear, r_front = _u(rng, 0.33, 0.34), _u(rng, 0.22, 0.25)
    wb = _u(rng, 1.5, 1.6)
    xr, xf = -wb / 2.0, wb / 2.0
    parts = spoked_wheel(xr, r_rear, r_rear, 0.02) + spoked_wheel(xf, r_front, r_front, 0.02)
    boom = [(xr + 0.2, 0.0, 0.42), (xf - 0.35, 0.0, 0.45), (xf + 0.35, 0.0, 0.55)]
    parts.append(tube(boom, 0.028, 8))
    for s in (1.0, -1.0):
        parts.append(cylinder((xr + 0.25, s * 0.03, 0.42), (xr, s * 0.06, r_rear), 0.014, 8))
        parts.append(cylinder((xr + 0.1, s * 0.03, 0.85), (xr, s * 0.06, r_rear), 0.012, 8))
        parts.append(cylinder((xf - 0.05, s * 0.03, 0.62), (xf, s * 0.05, r_front), 0.014, 8))
    parts.append(box((0.42, 0.4, 0.05), (xr + 0.45, 0.0, 0.5)))  # seat
    back = box((0.05, 0.38, 0.5), (0.0, 0.0, 0.25))
    parts.append(rotated(back, -30.0, "y").apply_translation((xr + 0.15, 0.0, 0.52)))
    parts.append(cylinder((xr + 0.15, 0.0, 0.56), (xr + 0.12, 0.0, 0.9), 0.012, 6))
    parts.append(cylinder((xf - 0.05, 0.0, 0.45), (xf - 0.05, 0.0, 0.66), 0.018, 8))  # head tube
    parts.append(cylinder((xf - 0.05, 0.0, 0.66), (xf - 0.25, 0.0, 0.75), 0.013, 8))  # tiller
    parts.append(bar_y(xf - 0.25, 0.75, 0.25, 0.012))
    parts += _bike_drive(xf + 0.35, 0.55)
    return finalize(parts)


# =========================================================================== boat
def _hull(length: float, beam: float, depth: float, *, stern_width: float = 0.85, bow_rise: float = 0.35,
          sheer_rise: float = 0.2, vee: float = 0.3, shell: float | None = None, double_ended: bool = False,
          sections: int = 13, half_points: int = 6) -> trimesh.Trimesh:
    """Boat hull along x (bow at +x), keel at z = 0, gunwale at z ~ ``depth``.

    ``vee`` blends a round bilge (0) into a V bottom (1). ``shell`` (metres) makes an open hull
    (canoe, rowboat) with walls of that thickness instead of a decked solid hull. A
    ``double_ended`` hull is pointed at both ends (canoe).
    """
    phi = np.linspace(0.0, np.pi / 2.0, half_points + 1)  # keel -> gunwale
    unit_y = np.sin(phi)
    unit_z = (1.0 - vee) * (1.0 - np.cos(phi)) + vee * phi / (np.pi / 2.0)
    ts = np.linspace(0.0, 1.0, sections)  # 0 = stern, 1 = bow
    positions, rings = [], []
    for t in ts:
        if double_ended:
            w = max(np.sqrt(max(1.0 - ((t - 0.5) / 0.5) ** 2, 0.0)), 0.03)
            end = abs(t - 0.5) / 0.5
            keel = depth * bow_rise * max(0.0, (end - 0.6) / 0.4) ** 2
            sheer = depth * (1.0 + sheer_rise * end ** 3)
        else:
            if t < 0.5:
                w = stern_width + (1.0 - stern_width) * np.sin(np.pi * t)
            else:
                w = max(np.sqrt(max(1.0 - ((t - 0.5) / 0.5) ** 2, 0.0)), 0.03)
            keel = depth * bow_rise * max(0.0, (t - 0.6) / 0.4) ** 2 + depth * 0.1 * max(0.0, 0.2 - t) / 0.2
            sheer = depth * (1.0 + sheer_rise * t ** 2)
        half = beam / 2.0 * w
        ys = half * unit_y
        zs = keel + (sheer - keel) * unit_z
        outer = np.concatenate([np.stack([ys[::-1], zs[::-1]], 1), np.stack([-ys[1:], zs[1:]], 1)])
        if shell is None:
            ring = outer
        else:
            th_y = min(shell, 0.45 * half)
            th_z = min(shell, 0.4 * (sheer - keel))
            yi = (half - th_y) * unit_y
            zi = keel + th_z + (sheer - keel - th_z) * unit_z
            inner = np.concatenate([np.stack([-yi[::-1], zi[::-1]], 1), np.stack([yi[1:], zi[1:]], 1)])
            ring = np.concatenate([outer, inner])
        positions.append(-length / 2.0 + t * length)
        rings.append(ring)
    return loft("x", positions, rings)


def _sail(points_xz: Sequence[tuple[float, float]], thickness: float = 0.04,
          y: float = 0.0) -> trimesh.Trimesh:
    return extrude(points_xz, "y", y - thickness / 2.0, y + thickness / 2.0)


def _rig(x_mast: float, z_deck: float, mast_h: float, boom_len: float, x_bow: float) -> list[trimesh.Trimesh]:
    """Mast, boom, mainsail and jib of a sloop."""
    top = z_deck + mast_h
    boom_z = z_deck + 1.1
    mainsail = [(x_mast - 0.12, boom_z + 0.1), (x_mast - boom_len, boom_z + 0.1), (x_mast - 0.12, top - 0.3)]
    jib = [(x_mast + 0.15, z_deck + 0.8), (x_bow - 0.3, z_deck + 0.4), (x_mast + 0.15, top - 1.5)]
    return [cylinder((x_mast, 0.0, z_deck), (x_mast, 0.0, top), 0.09, 10),
            cylinder((x_mast, 0.0, boom_z), (x_mast - boom_len, 0.0, boom_z), 0.07, 8),
            _sail(mainsail), _sail(jib)]


def boat_sailboat(rng: Generator) -> trimesh.Trimesh:
    """Sloop-rigged sailing yacht: decked hull, cabin trunk, fin keel, tall mast with main and jib."""
    length = _u(rng, 9.0, 13.0)
    beam, depth = length * _u(rng, 0.3, 0.34), _u(rng, 1.2, 1.5)
    keel_depth = length * 0.17
    z0 = keel_depth
    hull = _hull(length, beam, depth, stern_width=0.75, vee=0.4).apply_translation((0.0, 0.0, z0))
    keel = [(0.1 * length, 0.1), (-0.08 * length, 0.1), (-0.05 * length, 0.1 - keel_depth),
            (0.05 * length, 0.1 - keel_depth)]
    rudder = [(-0.38 * length, 0.1), (-0.44 * length, 0.1), (-0.44 * length, -0.6 * keel_depth),
              (-0.4 * length, -0.6 * keel_depth)]
    parts = [hull, extrude(keel, "y", -0.15, 0.15).apply_translation((0.0, 0.0, z0)),
             extrude(rudder, "y", -0.05, 0.05).apply_translation((0.0, 0.0, z0))]
    deck = z0 + depth
    parts.append(rounded_box((0.35 * length, 0.55 * beam, 0.7), (-0.02 * length, 0.0, deck + 0.3), 4.0, "x"))
    parts += _rig(0.1 * length, deck, 1.3 * length, 0.4 * length, length / 2.0)
    return finalize(parts)


def boat_motorboat(rng: Generator) -> trimesh.Trimesh:
    """Open speedboat: deep-V planing hull, windshield, cockpit seats, outboard motor at the stern."""
    length = _u(rng, 6.0, 8.5)
    beam, depth = length * _u(rng, 0.3, 0.34), _u(rng, 0.9, 1.1)
    parts = [_hull(length, beam, depth, stern_width=0.9, vee=0.9, bow_rise=0.5, sheer_rise=0.25)]
    ws_x = 0.08 * length
    windshield = [(ws_x, depth), (ws_x + 0.05, depth), (ws_x - 0.3, depth + 0.5), (ws_x - 0.35, depth + 0.5)]
    parts.append(extrude(windshield, "y", -0.42 * beam, 0.42 * beam))
    parts.append(box((0.18 * length, 0.9 * beam, 0.12), (ws_x + 0.12 * length, 0.0, depth * 1.05)))  # deck
    for y in (0.22 * beam, -0.22 * beam):
        parts.append(box((0.5, 0.5, 0.45), (ws_x - 0.8, y, depth * 0.75)))
        parts.append(box((0.12, 0.5, 0.55), (ws_x - 1.1, y, depth * 0.95)))
    parts.append(box((0.8, 0.9 * beam, 0.4), (-length / 2.0 + 0.9, 0.0, depth * 0.75)))  # rear bench
    xm = -length / 2.0 - 0.25
    parts += [rounded_box((0.6, 0.45, 0.65), (xm, 0.0, depth + 0.15), 4.0, "z"),
              box((0.25, 0.12, 1.0), (xm, 0.0, depth - 0.6)),
              cylinder((xm + 0.15, 0.0, depth - 1.0), (xm - 0.25, 0.0, depth - 1.0), 0.09, 10)]
    return finalize(parts)


def boat_canoe(rng: Generator) -> trimesh.Trimesh:
    """Open Canadian canoe: double-ended pointed hull, high ends, two seats (the bow seat further in)."""
    length = _u(rng, 4.6, 5.4)
    beam, depth = _u(rng, 0.8, 0.9), _u(rng, 0.33, 0.38)
    parts = [_hull(length, beam, depth, shell=0.02, double_ended=True, bow_rise=0.6, sheer_rise=0.45,
                   vee=0.1, sections=17)]
    for x, width in ((0.28 * length, 0.6), (-0.36 * length, 0.5), (0.02 * length, 0.8)):
        parts.append(box((0.22 if x else 0.08, width * beam, 0.03), (x, 0.0, depth - 0.06)))
    paddle = [cylinder((-0.1 * length, 0.2, depth + 0.02), (0.2 * length, 0.25, depth + 0.02), 0.015, 6),
              box((0.5, 0.18, 0.02), (-0.1 * length - 0.2, 0.2, depth + 0.02))]
    return finalize(parts + paddle)


def boat_ferry(rng: Generator) -> trimesh.Trimesh:
    """Passenger ferry: large decked hull, stacked superstructure with the bridge forward, funnel aft."""
    length = _u(rng, 30.0, 40.0)
    beam, depth = length * _u(rng, 0.24, 0.28), _u(rng, 3.2, 3.8)
    parts = [_hull(length, beam, depth, stern_width=0.92, vee=0.2, bow_rise=0.45, sheer_rise=0.12)]
    deck = depth
    d1 = (0.7 * length, 0.9 * beam, 2.6)
    parts.append(box(d1, (-0.1 * length, 0.0, deck + d1[2] / 2.0)))
    d2 = (0.5 * length, 0.75 * beam, 2.4)
    parts.append(box(d2, (-0.12 * length, 0.0, deck + d1[2] + d2[2] / 2.0)))
    bridge_z = deck + d1[2] + d2[2]
    parts.append(box((0.12 * length, 0.95 * beam, 2.2), (0.08 * length, 0.0, bridge_z + 1.1)))
    parts.append(cylinder((0.06 * length, 0.0, bridge_z + 2.2), (0.06 * length, 0.0, bridge_z + 6.0),
                          0.15, 8))  # mast
    fx = -0.25 * length
    parts.append(frustum((fx, 0.0, bridge_z), (fx - 1.0, 0.0, bridge_z + 4.0), 1.4, 1.1, 16))
    for s in (1.0, -1.0):
        for x in (-0.05 * length, -0.2 * length):
            parts.append(ellipsoid((x, s * 0.47 * beam, deck + d1[2] + 0.8), (3.0, 0.9, 0.6), 1))
    return finalize(parts)


def boat_rowboat(rng: Generator) -> trimesh.Trimesh:
    """Small open rowboat: transom stern, three thwarts, two oars in their rowlocks."""
    length = _u(rng, 3.1, 3.8)
    beam, depth = _u(rng, 1.3, 1.5), _u(rng, 0.5, 0.58)
    parts = [_hull(length, beam, depth, stern_width=0.6, vee=0.35, shell=0.025, bow_rise=0.5,
                   sheer_rise=0.25)]
    for x in (-0.32 * length, 0.0, 0.25 * length):
        parts.append(box((0.2, 0.8 * beam if x else 0.95 * beam, 0.03), (x, 0.0, depth - 0.12)))
    for s in (1.0, -1.0):
        lock = np.array([0.08 * length, s * beam / 2.0, depth + 0.05])
        tip = lock + (-1.6, s * 1.2, -0.35)
        inner = lock + (0.35, -s * 0.35, 0.1)
        parts.append(cylinder(inner, tip, 0.022, 6))
        blade = box((0.5, 0.14, 0.02), (0.0, 0.0, 0.0))
        blade = rotated(blade, float(np.degrees(np.arctan2(tip[1] - lock[1], tip[0] - lock[0]))), "z")
        parts.append(blade.apply_translation(tip))
    return finalize(parts)


def boat_catamaran(rng: Generator) -> trimesh.Trimesh:
    """Sailing catamaran: two slender hulls joined by a bridge deck with a cabin, mast and sails."""
    length = _u(rng, 10.0, 13.0)
    hull_beam, depth = _u(rng, 1.2, 1.5), _u(rng, 1.3, 1.5)
    spread = length * _u(rng, 0.22, 0.26)
    parts = []
    for s in (1.0, -1.0):
        hull = _hull(length, hull_beam, depth, stern_width=0.5, vee=0.5, bow_rise=0.3, sheer_rise=0.1)
        parts.append(hull.apply_translation((0.0, s * spread, 0.0)))
    deck = depth + 0.05
    parts.append(box((0.55 * length, 2.0 * spread, 0.35), (-0.05 * length, 0.0, deck)))
    parts.append(rounded_box((0.3 * length, 1.3 * spread, 1.2), (-0.1 * length, 0.0, deck + 0.75), 4.0, "x"))
    parts.append(cylinder((0.2 * length, -spread, deck), (0.2 * length, spread, deck), 0.1, 8))  # front beam
    parts += _rig(0.12 * length, deck + 0.15, 1.15 * length, 0.38 * length, 0.45 * length)
    return finalize(parts)


# =========================================================================== bottle
def _bottle(profile: Sequence[tuple[float, float]], sections: int = 32) -> trimesh.Trimesh:
    """Revolve a (radius, height) profile from the bottom centre to the top centre."""
    return finalize([revolve([(0.0, 0.0)] + list(profile) + [(0.0, profile[-1][1])], sections)])


def bottle_wine_bordeaux(rng: Generator) -> trimesh.Trimesh:
    """Bordeaux wine bottle: straight body, high sharp shoulders, long neck with a lip."""
    h, r = _u(rng, 0.29, 0.31), _u(rng, 0.036, 0.038)
    body = 0.62 * h
    return _bottle([(r * 0.95, 0.0), (r, 0.006), (r, body), (r * 0.9, body + 0.015), (r * 0.55, body + 0.03),
                    (0.0145, body + 0.05), (0.0145, h - 0.012), (0.0155, h - 0.01), (0.0155, h)])


def bottle_wine_burgundy(rng: Generator) -> trimesh.Trimesh:
    """Burgundy wine bottle: wide body, long gently sloping shoulders flowing into the neck."""
    h, r = _u(rng, 0.29, 0.31), _u(rng, 0.039, 0.042)
    body = 0.45 * h
    shoulder = [(r * (0.37 + 0.63 * np.cos(a) ** 1.3), body + (0.75 * h - body) * np.sin(a))
                for a in np.linspace(0.15, np.pi / 2.0, 6)]
    neck = [(0.0145, h - 0.012), (0.016, h - 0.01), (0.016, h)]
    return _bottle([(r * 0.95, 0.0), (r, 0.006), (r, body)] + shoulder + neck)


def bottle_beer(rng: Generator) -> trimesh.Trimesh:
    """Long-neck beer bottle: short body, rounded shoulder, neck with a bulge and a crown cap."""
    h, r = _u(rng, 0.22, 0.25), _u(rng, 0.029, 0.032)
    body = 0.52 * h
    return _bottle([(r * 0.93, 0.0), (r, 0.005), (r, body), (r * 0.85, body + 0.02), (r * 0.58, body + 0.04),
                    (0.0125, 0.82 * h), (0.0135, 0.9 * h), (0.012, h - 0.01), (0.0145, h - 0.008),
                    (0.0145, h)])


def bottle_water(rng: Generator) -> trimesh.Trimesh:
    """PET water bottle: ribbed body, short conical shoulder, short neck with a wide screw cap."""
    h, r = _u(rng, 0.21, 0.26), _u(rng, 0.033, 0.037)
    profile = [(r * 0.9, 0.0), (r, 0.008)]
    body = 0.62 * h
    for z in np.linspace(0.02, body, 8):
        profile += [(r, z - 0.004), (r * 0.93, z), (r, z + 0.004)]
    profile += [(r * 0.8, body + 0.03), (r * 0.5, 0.83 * h), (0.014, 0.88 * h), (0.017, 0.9 * h), (0.017, h)]
    return _bottle(profile)


def bottle_soda(rng: Generator) -> trimesh.Trimesh:
    """Contour soda bottle: bulging lower body, pinched waist, bulging upper body, tapered neck."""
    h, r = _u(rng, 0.24, 0.3), _u(rng, 0.031, 0.034)
    return _bottle([(r * 0.85, 0.0), (r, 0.02), (r, 0.2 * h), (r * 0.82, 0.32 * h), (r * 0.8, 0.38 * h),
                    (r * 1.03, 0.5 * h), (r * 0.95, 0.6 * h), (r * 0.6, 0.75 * h), (0.011, 0.88 * h),
                    (0.012, 0.92 * h), (0.0135, 0.93 * h), (0.0135, h)])


def bottle_flask(rng: Generator) -> trimesh.Trimesh:
    """Round-bellied flask (Chianti-like): spherical body on a small foot and a long thin neck."""
    h, r = _u(rng, 0.26, 0.3), _u(rng, 0.068, 0.075)
    zc = r * 0.95
    belly = [(r * np.sin(a), zc - r * np.cos(a)) for a in np.linspace(0.45, np.pi - 0.25, 9)]
    belly[0] = (belly[0][0], 0.0)
    return _bottle(belly + [(0.015, zc + r * 1.05), (0.014, h - 0.01), (0.016, h - 0.008), (0.016, h)])


def bottle_square_spirits(rng: Generator) -> trimesh.Trimesh:
    """Square spirits bottle (four-fold symmetric): rounded-square body, flat shoulder, short neck."""
    h, half = _u(rng, 0.24, 0.28), _u(rng, 0.038, 0.045)
    body = 0.7 * h
    square = superellipse_ring(half, half, 8.0, 32)
    neck = superellipse_ring(0.014, 0.014, 2.0, 32)
    zs = [0.0, body, body + 0.012]
    rings = [square, square, square * 0.5]
    parts = [loft("z", zs, rings), loft("z", [body + 0.011, h], [neck, neck]),
             loft("z", [h - 0.03, h], [neck * 1.3, neck * 1.3])]
    return finalize(parts)


# =========================================================================== bus
def _bus_body(length: float, width: float, z0: float, z1: float, front_slope: float = 0.0,
              rear_round: float = 0.1, corner: float = 6.0, x0: float | None = None) -> trimesh.Trimesh:
    """Bus body from ``x0`` (default -length/2) over ``length``: rounded sections, optional raked
    windscreen (the roof ends ``front_slope`` metres before the front)."""
    x0 = -length / 2.0 if x0 is None else x0
    x1, h, w = x0 + length, z1 - z0, width / 2.0
    sections = [(x0, 0.96 * w, z0, z1 - rear_round * h), (x0 + 0.15, w, z0, z1),
                (x1 - front_slope - 0.15, w, z0, z1)]
    if front_slope:
        sections.append((x1 - 0.05, w, z0, z1 - 0.6 * front_slope))
    else:
        sections.append((x1 - 0.1, w, z0, z1))
    sections.append((x1, 0.97 * w, z0, z1 - 0.25 * h))
    return section_loft(sections, corner, 24)


def bus_city(rng: Generator) -> trimesh.Trimesh:
    """Low-floor city bus: flat front, long box body, roof air-conditioning pod, two axles."""
    length, width, height = _u(rng, 11.5, 12.5), 2.55, _u(rng, 2.95, 3.05)
    parts = [_bus_body(length, width, 0.3, height, rear_round=0.05)]
    parts.append(rounded_box((2.8, 1.8, 0.3), (length / 2.0 - 3.5, 0.0, height + 0.15), 4.0))
    parts.append(rounded_box((1.5, 2.1, 0.35), (-length / 2.0 + 1.0, 0.0, height + 0.1), 4.0))
    for x in (length / 2.0 - 2.7, -length / 2.0 + 3.3):
        parts += wheel_pair(x, 0.5, 0.3, 2.1)
    return finalize(parts)


def bus_double_decker(rng: Generator) -> trimesh.Trimesh:
    """Double-decker bus: tall two-level body with rounded top edges, short front overhang."""
    length, width, height = _u(rng, 10.2, 11.5), 2.55, _u(rng, 4.2, 4.4)
    parts = [_bus_body(length, width, 0.3, height, rear_round=0.06, corner=5.0)]
    parts.append(box((length + 0.04, width + 0.04, 0.15), (0.0, 0.0, 2.3)))  # between-deck band
    for x in (length / 2.0 - 2.3, -length / 2.0 + 3.0):
        parts += wheel_pair(x, 0.52, 0.3, 2.1)
    return finalize(parts)


def bus_coach(rng: Generator) -> trimesh.Trimesh:
    """Touring coach: high floor, strongly raked windscreen, rounded roof, tag axle (three axles)."""
    length, width, height = _u(rng, 12.0, 13.0), 2.55, _u(rng, 3.5, 3.7)
    parts = [_bus_body(length, width, 0.45, height, front_slope=1.0, rear_round=0.12, corner=3.5)]
    for x in (length / 2.0 - 2.6, -length / 2.0 + 3.6, -length / 2.0 + 2.3):
        parts += wheel_pair(x, 0.52, 0.3, 2.1)
    for s in (1.0, -1.0):
        parts.append(box((0.12, 0.08, 0.35), (length / 2.0 - 0.2, s * 1.3, height - 0.6)))  # mirrors
    return finalize(parts)


def bus_school(rng: Generator) -> trimesh.Trimesh:
    """Conventional school bus: engine bonnet in front of a flat windscreen, high box body."""
    length, width, height = _u(rng, 10.5, 12.0), 2.45, _u(rng, 3.1, 3.2)
    hood = 1.7
    parts = [_bus_body(length - hood, width, 0.55, height, rear_round=0.08, corner=4.0, x0=-length / 2.0)]
    x_ws = length / 2.0 - hood
    parts.append(extrude([(x_ws, 0.6), (length / 2.0, 0.6), (length / 2.0, 1.4), (length / 2.0 - 0.4, 1.65),
                          (x_ws, 1.75)], "y", -1.0, 1.0))
    parts.append(box((0.2, width + 0.1, 0.25), (length / 2.0, 0.0, 0.7)))  # bumper
    for s in (1.0, -1.0):
        parts.append(box((0.9, 0.25, 0.5), (length / 2.0 - 1.0, s * 1.05, 1.0)))  # fenders
    for x in (length / 2.0 - 1.0, -length / 2.0 + 3.0):
        parts += wheel_pair(x, 0.52, 0.3, 2.05)
    return finalize(parts)


def bus_trolleybus(rng: Generator) -> trimesh.Trimesh:
    """Trolleybus: city-bus body with a roof platform and two long trolley poles reaching back."""
    length, width, height = _u(rng, 11.8, 12.5), 2.55, _u(rng, 3.0, 3.1)
    parts = [_bus_body(length, width, 0.3, height, rear_round=0.05)]
    base_x = length / 2.0 - 4.5
    parts.append(box((3.0, 1.6, 0.35), (base_x - 0.5, 0.0, height + 0.17)))
    pole_len = _u(rng, 6.0, 6.5)
    ang = np.radians(_u(rng, 14.0, 20.0))
    for s in (1.0, -1.0):
        p0 = np.array([base_x, s * 0.3, height + 0.4])
        p1 = p0 + pole_len * np.array([-np.cos(ang), 0.0, np.sin(ang)])
        parts.append(cylinder(p0, p1, 0.05, 8))
        parts.append(box((0.3, 0.12, 0.12), p1))
    for x in (length / 2.0 - 2.7, -length / 2.0 + 3.3):
        parts += wheel_pair(x, 0.5, 0.3, 2.1)
    return finalize(parts)


def bus_open_top(rng: Generator) -> trimesh.Trimesh:
    """Open-top sightseeing double-decker: closed lower deck, open upper deck with seat rows."""
    length, width = _u(rng, 10.5, 11.5), 2.55
    lower = 2.5
    parts = [_bus_body(length, width, 0.3, lower, rear_round=0.04)]
    top = lower + 1.05
    for s in (1.0, -1.0):
        parts.append(box((length, 0.07, top - lower), (0.0, s * (width / 2.0 - 0.035), (lower + top) / 2.0)))
    parts.append(box((0.07, width, top - lower), (length / 2.0 - 0.035, 0.0, (lower + top) / 2.0)))
    stair = 2.0
    parts.append(box((stair, width, 4.3 - lower), (-length / 2.0 + stair / 2.0, 0.0, (lower + 4.3) / 2.0)))
    for x in np.arange(-length / 2.0 + stair + 0.6, length / 2.0 - 0.5, 0.85):
        for s in (1.0, -1.0):
            parts.append(box((0.45, 0.9, 0.45), (x, s * 0.65, lower + 0.22)))
            parts.append(box((0.08, 0.9, 0.5), (x - 0.25, s * 0.65, lower + 0.6)))
    for x in (length / 2.0 - 2.3, -length / 2.0 + 3.0):
        parts += wheel_pair(x, 0.52, 0.3, 2.1)
    return finalize(parts)


# =========================================================================== car
def _car(length: float, width: float, lower: Sequence[tuple[float, float]],
         cabin: Sequence[tuple[float, float]], wheel_r: float, axles: tuple[float, float],
         cabin_width: float = 0.86, wheel_w: float = 0.24) -> list[trimesh.Trimesh]:
    """Car from a lower-body side profile and a (narrower) cabin side profile, points (x, z)."""
    parts = [extrude(lower, "y", -width / 2.0, width / 2.0),
             extrude(cabin, "y", -width * cabin_width / 2.0, width * cabin_width / 2.0)]
    for x in axles:
        parts += wheel_pair(x, wheel_r, wheel_w, width - wheel_w - 0.02)
    return parts


def car_sedan(rng: Generator) -> trimesh.Trimesh:
    """Three-box sedan: long bonnet, sloped windscreen, cabin, separate boot."""
    length, width, height = _u(rng, 4.5, 5.0), _u(rng, 1.78, 1.88), _u(rng, 1.4, 1.5)
    hx = length / 2.0
    belt = 0.92
    lower = [(-hx, 0.35), (-hx + 0.2, 0.28), (hx - 0.3, 0.28), (hx, 0.42), (hx, 0.65), (hx - 0.25, 0.75),
             (hx - 0.3 * length, belt), (-hx + 0.22 * length, belt + 0.06), (-hx + 0.05, belt + 0.04),
             (-hx, 0.85)]
    x_ws, x_rw = hx - 0.3 * length, -hx + 0.22 * length
    cabin = [(x_rw, belt), (x_ws, belt - 0.05), (x_ws - 0.75, height), (x_rw + 0.6, height)]
    r = _u(rng, 0.31, 0.33)
    return finalize(_car(length, width, lower, cabin, r, (hx - 0.9, -hx + 1.05)))


def car_hatchback(rng: Generator) -> trimesh.Trimesh:
    """Two-box hatchback: short bonnet, long roof ending in a steep tailgate, short rear overhang."""
    length, width, height = _u(rng, 3.7, 4.2), _u(rng, 1.68, 1.78), _u(rng, 1.45, 1.55)
    hx = length / 2.0
    belt = 0.95
    lower = [(-hx, 0.38), (-hx + 0.15, 0.3), (hx - 0.25, 0.3), (hx, 0.45), (hx, 0.68), (hx - 0.2, 0.78),
             (hx - 0.24 * length, belt), (-hx + 0.03, belt + 0.03), (-hx, 0.9)]
    x_ws = hx - 0.24 * length
    cabin = [(-hx + 0.04, belt), (x_ws, belt - 0.05), (x_ws - 0.8, height), (-hx + 0.25, height)]
    r = _u(rng, 0.3, 0.32)
    return finalize(_car(length, width, lower, cabin, r, (hx - 0.75, -hx + 0.7)))


def car_suv(rng: Generator) -> trimesh.Trimesh:
    """SUV: tall boxy body, high ground clearance, upright tailgate with spare wheel, roof rails."""
    length, width, height = _u(rng, 4.4, 4.9), _u(rng, 1.85, 1.95), _u(rng, 1.72, 1.85)
    hx = length / 2.0
    belt = 1.15
    lower = [(-hx, 0.5), (-hx + 0.15, 0.42), (hx - 0.3, 0.42), (hx, 0.55), (hx, 0.95), (hx - 0.15, 1.02),
             (hx - 0.27 * length, belt), (-hx, belt + 0.03)]
    x_ws = hx - 0.27 * length
    roof = height - 0.06
    cabin = [(-hx + 0.02, belt), (x_ws, belt - 0.05), (x_ws - 0.65, roof), (-hx + 0.1, roof)]
    r = _u(rng, 0.37, 0.39)
    parts = _car(length, width, lower, cabin, r, (hx - 0.9, -hx + 1.0), cabin_width=0.9, wheel_w=0.27)
    for s in (1.0, -1.0):
        parts.append(box_between((-hx + 0.2, s * 0.38 * width - 0.025, height - 0.06),
                                 (x_ws - 0.75, s * 0.38 * width + 0.025, height)))
    parts.append(cylinder((-hx, 0.0, 0.95), (-hx - 0.25, 0.0, 0.95), r, 16))
    return finalize(parts)


def car_pickup(rng: Generator) -> trimesh.Trimesh:
    """Pickup truck: bonnet, crew cab, then an open load bed with side walls and a tailgate."""
    length, width, height = _u(rng, 5.0, 5.4), _u(rng, 1.9, 2.0), _u(rng, 1.8, 1.9)
    hx = length / 2.0
    belt, floor = 1.2, 0.85
    x_bed = -hx + 0.38 * length
    lower = [(-hx, 0.5), (hx - 0.35, 0.45), (hx, 0.6), (hx, 1.05), (hx - 0.2, 1.12),
             (hx - 0.28 * length, belt), (x_bed, belt), (x_bed, floor), (-hx, floor)]
    x_ws = hx - 0.28 * length
    cabin = [(x_bed, belt), (x_ws, belt - 0.05), (x_ws - 0.6, height), (x_bed + 0.1, height)]
    r = _u(rng, 0.38, 0.4)
    parts = _car(length, width, lower, cabin, r, (hx - 0.95, -hx + 1.2), cabin_width=0.9, wheel_w=0.27)
    for s in (1.0, -1.0):
        wall_y = s * (width / 2.0 - 0.04)
        parts.append(box_between((-hx, wall_y - 0.04, floor), (x_bed, wall_y + 0.04, belt)))
    parts.append(box_between((-hx, -width / 2.0, floor), (-hx + 0.08, width / 2.0, belt)))  # tailgate
    return finalize(parts)


def car_van(rng: Generator) -> trimesh.Trimesh:
    """One-box van: very short sloping nose, tall box body to the rear, flat roof."""
    length, width, height = _u(rng, 4.8, 5.3), _u(rng, 1.9, 2.0), _u(rng, 1.95, 2.1)
    hx = length / 2.0
    belt = 1.1
    lower = [(-hx, 0.4), (hx - 0.25, 0.35), (hx, 0.5), (hx, 0.9), (hx - 0.45, belt), (-hx, belt)]
    cabin = [(-hx, belt - 0.02), (hx - 0.45, belt - 0.05), (hx - 1.2, height - 0.05), (hx - 1.4, height),
             (-hx + 0.05, height), (-hx, height - 0.05)]
    r = _u(rng, 0.33, 0.35)
    return finalize(_car(length, width, lower, cabin, r, (hx - 0.75, -hx + 1.0), cabin_width=0.97))


def car_sports(rng: Generator) -> trimesh.Trimesh:
    """Sports coupe: very low wedge body, long nose, raked fastback cabin set back, rear wing."""
    length, width, height = _u(rng, 4.2, 4.6), _u(rng, 1.9, 2.0), _u(rng, 1.12, 1.22)
    hx = length / 2.0
    belt = 0.78
    lower = [(-hx, 0.35), (-hx + 0.15, 0.14), (hx - 0.4, 0.12), (hx, 0.25), (hx - 0.05, 0.4),
             (hx - 0.38 * length, belt - 0.08), (-hx + 0.15 * length, belt), (-hx, belt - 0.02)]
    x_ws = hx - 0.4 * length
    cabin = [(-hx + 0.12 * length, belt - 0.02), (x_ws, belt - 0.1), (x_ws - 0.85, height),
             (x_ws - 1.4, height)]
    r = _u(rng, 0.33, 0.35)
    parts = _car(length, width, lower, cabin, r, (hx - 1.1, -hx + 1.05), cabin_width=0.8, wheel_w=0.29)
    wing_z = belt + 0.28
    parts.append(box((0.3, 0.92 * width, 0.04), (-hx + 0.18, 0.0, wing_z)))
    for s in (1.0, -1.0):
        parts.append(box((0.12, 0.04, 0.3), (-hx + 0.2, s * 0.3 * width, wing_z - 0.15)))
    return finalize(parts)


# =========================================================================== chair
def _corner_legs(half_x: float, half_y: float, z0: float, z1: float, size: float) -> list[trimesh.Trimesh]:
    """Four square legs of side ``size`` at (+-half_x, +-half_y) from z0 to z1."""
    return [box((size, size, z1 - z0), (sx * half_x, sy * half_y, (z0 + z1) / 2.0))
            for sx in (1.0, -1.0) for sy in (1.0, -1.0)]


def chair_four_leg(rng: Generator) -> trimesh.Trimesh:
    """Classic dining chair: four square legs, stretchers, rear posts rising into a slatted back."""
    w, d = _u(rng, 0.42, 0.48), _u(rng, 0.42, 0.48)
    seat, top = _u(rng, 0.44, 0.47), _u(rng, 0.85, 0.98)
    leg = 0.04
    hx, hy = d / 2.0 - leg / 2.0, w / 2.0 - leg / 2.0
    parts = [box((leg, leg, seat), (hx, s * hy, seat / 2.0)) for s in (1.0, -1.0)]  # front legs
    parts.append(box((d, w, 0.04), (0.0, 0.0, seat + 0.02)))
    for s in (1.0, -1.0):
        post = box((leg, leg, top), (0.0, 0.0, top / 2.0))
        parts.append(rotated(post, -4.0, "y", (0.0, 0.0, seat)).apply_translation((-hx, s * hy, 0.0)))
        parts.append(box((2 * hx, 0.02, 0.03), (0.0, s * hy, 0.15)))
    parts.append(box((0.02, 2 * hy, 0.03), (0.0, 0.0, 0.15)))
    back_x = -hx - np.tan(np.radians(4.0)) * (top - seat) * 0.6
    parts.append(box((0.025, 2 * hy, 0.08), (back_x - 0.01, 0.0, top - 0.06)))
    for y in np.linspace(-hy * 0.6, hy * 0.6, 3):
        parts.append(box((0.02, 0.04, top - seat - 0.18), (back_x + 0.01, y, (seat + top) / 2.0 - 0.02)))
    return finalize(parts)


def chair_swivel(rng: Generator) -> trimesh.Trimesh:
    """Office swivel chair: five-star base with castors, gas column, padded seat, tall back, armrests."""
    base_r = _u(rng, 0.3, 0.34)
    seat_z, top = _u(rng, 0.46, 0.5), _u(rng, 1.0, 1.1)
    parts = []
    for k in range(5):
        a = np.radians(72.0 * k + 18.0)
        end = (base_r * np.cos(a), base_r * np.sin(a), 0.09)
        parts.append(cylinder((0.0, 0.0, 0.12), end, 0.02, 8))
        parts.append(cylinder((end[0], end[1] - 0.02, 0.03), (end[0], end[1] + 0.02, 0.03), 0.03, 10))
    parts.append(cylinder((0.0, 0.0, 0.08), (0.0, 0.0, seat_z - 0.05), 0.028, 12))
    parts.append(rounded_box((0.5, 0.5, 0.08), (0.03, 0.0, seat_z), 5.0, "z"))
    parts.append(box((0.3, 0.05, 0.04), (-0.17, 0.0, seat_z - 0.04)))
    back = rounded_box((0.06, 0.46, top - seat_z - 0.12), (0.0, 0.0, 0.0), 5.0, "x")
    back_mid = (seat_z + 0.12 + top) / 2.0
    parts.append(rotated(back, -10.0, "y").apply_translation((-0.26, 0.0, back_mid)))
    parts.append(cylinder((-0.25, 0.0, seat_z - 0.04), (-0.29, 0.0, seat_z + 0.2), 0.025, 8))
    for s in (1.0, -1.0):
        parts.append(box((0.04, 0.03, 0.22), (-0.02, s * 0.24, seat_z + 0.11)))
        parts.append(box((0.26, 0.08, 0.03), (0.0, s * 0.24, seat_z + 0.23)))
    return finalize(parts)


def chair_armchair(rng: Generator) -> trimesh.Trimesh:
    """Upholstered club armchair: deep seat block, thick arms, thick back, short feet."""
    w, d = _u(rng, 0.78, 0.9), _u(rng, 0.8, 0.9)
    top, arm = _u(rng, 0.82, 0.95), _u(rng, 0.6, 0.66)
    arm_w, back_d = 0.16, 0.2
    inner_w = w - 2 * arm_w
    parts = _corner_legs(d / 2.0 - 0.06, w / 2.0 - 0.06, 0.0, 0.1, 0.05)
    parts.append(rounded_box((d, w, 0.25), (0.0, 0.0, 0.225), 6.0, "y"))
    parts.append(rounded_box((d - back_d - 0.02, inner_w - 0.02, 0.14), (back_d / 2.0, 0.0, 0.42), 5.0, "y"))
    for s in (1.0, -1.0):
        parts.append(rounded_box((d, arm_w, arm - 0.1), (0.0, s * (w - arm_w) / 2.0, (arm + 0.1) / 2.0), 5.0,
                                 "y"))
    back_z = (top + 0.35) / 2.0
    parts.append(rounded_box((back_d, inner_w, top - 0.35), (-(d - back_d) / 2.0, 0.0, back_z), 5.0, "x"))
    return finalize(parts)


def chair_bar_stool(rng: Generator) -> trimesh.Trimesh:
    """Counter stool with a low backrest: tall splayed legs, footrest ring, round seat, curved back band."""
    seat_z, r = _u(rng, 0.64, 0.72), _u(rng, 0.18, 0.21)
    top = seat_z + _u(rng, 0.3, 0.36)
    spread = r + 0.07
    parts = [cylinder((0.0, 0.0, seat_z - 0.05), (0.0, 0.0, seat_z), r, 24)]
    for k in range(4):
        a = np.radians(45.0 + 90.0 * k)
        parts.append(cylinder((0.7 * r * np.cos(a), 0.7 * r * np.sin(a), seat_z - 0.05),
                              (spread * np.cos(a), spread * np.sin(a), 0.0), 0.016, 8))
    ring_r = 0.7 * r + (spread - 0.7 * r) * (1.0 - 0.28 / seat_z)  # where the legs pass z = 0.28
    parts.append(torus((0.0, 0.0, 0.28), ring_r, 0.012, "z", 24, 6))  # footrest
    for s in (1.0, -1.0):
        parts.append(cylinder((-0.7 * r, s * 0.6 * r, seat_z), (-0.85 * r, s * 0.7 * r, top - 0.05), 0.014,
                              6))
    band = arc_points((0.0, 0.0, 0.0), r * 0.95, 130.0, 230.0, 7, "xy")
    band[:, 2] = top - 0.06
    parts.append(tube(band, 0.0, profile=strip_profile(0.1, 0.015)))
    return finalize(parts)


def chair_school(rng: Generator) -> trimesh.Trimesh:
    """School chair: moulded seat and back shells on two bent-tube sled runners."""
    w, d = _u(rng, 0.4, 0.44), _u(rng, 0.4, 0.44)
    seat_z, top = _u(rng, 0.43, 0.46), _u(rng, 0.78, 0.84)
    xf, xr = d / 2.0 - 0.03, -d / 2.0 + 0.03
    parts = []
    for s in (1.0, -1.0):
        y = s * (w / 2.0 - 0.02)
        path = [(xf, y, seat_z - 0.03), (xf + 0.02, y, 0.015), (xr - 0.03, y, 0.015),
                (xr - 0.01, y, seat_z - 0.03), (xr - 0.08, y, top - 0.12)]
        parts.append(tube(path, 0.011, 8))
    parts.append(rounded_box((d, w, 0.02), (0.0, 0.0, seat_z), 4.0, "z"))
    back = rounded_box((0.02, w, 0.22), (0.0, 0.0, 0.0), 4.0, "x")
    parts.append(rotated(back, -10.0, "y").apply_translation((xr - 0.08, 0.0, top - 0.11)))
    return finalize(parts)


def chair_folding(rng: Generator) -> trimesh.Trimesh:
    """Folding chair: crossed X legs seen from the side, thin seat, small back panel on the front legs."""
    w, d = _u(rng, 0.42, 0.46), _u(rng, 0.42, 0.48)
    seat_z, top = _u(rng, 0.44, 0.47), _u(rng, 0.8, 0.86)
    parts = []
    for s in (1.0, -1.0):
        y = s * (w / 2.0)
        parts.append(cylinder((0.55 * d, y, 0.0), (-0.45 * d, y, top), 0.012, 8))  # front leg + back upright
        y_rear = y - s * 0.02
        parts.append(cylinder((-0.5 * d, y_rear, 0.0), (0.42 * d, y_rear, seat_z), 0.011, 8))  # rear leg
    parts.append(box((0.7 * d, w - 0.03, 0.02), (0.0, 0.0, seat_z + 0.01)))
    back_z = top - 0.1
    back_x = -0.45 * d + (top - back_z) / top * d
    back = rotated(box((0.015, w, 0.15)), -25.0, "y")
    parts.append(back.apply_translation((back_x, 0.0, back_z)))
    parts.append(bar_y(0.55 * d, 0.04, w / 2.0, 0.01, 6))
    return finalize(parts)


def chair_rocking(rng: Generator) -> trimesh.Trimesh:
    """Rocking chair: four legs standing on two curved rockers, arms, tall spindle back."""
    w, d = _u(rng, 0.5, 0.56), _u(rng, 0.5, 0.55)
    seat_z, top = _u(rng, 0.42, 0.45), _u(rng, 1.0, 1.1)
    parts = []
    radius = 1.1
    for s in (1.0, -1.0):
        y = s * (w / 2.0 - 0.02)
        arc = arc_points((0.0, y, radius), radius, 245.0, 295.0, 9, "xz")
        parts.append(tube(arc, 0.0, profile=strip_profile(0.03, 0.04) - (0.02, 0.0)))  # rocker
        for x in (d / 2.0 - 0.04, -d / 2.0 + 0.04):
            z0 = radius - np.sqrt(radius ** 2 - x ** 2)
            parts.append(cylinder((x, y, z0), (x, y, seat_z), 0.018, 8))
        parts.append(cylinder((-d / 2.0 + 0.04, y, seat_z), (-d / 2.0 - 0.08, y, top), 0.02, 8))
        parts.append(cylinder((d / 2.0 - 0.04, y, seat_z), (d / 2.0 - 0.04, y, seat_z + 0.22), 0.015, 6))
        parts.append(box((d + 0.06, 0.06, 0.025), (0.0, y, seat_z + 0.23)))
    parts.append(box((d, w, 0.04), (0.0, 0.0, seat_z + 0.02)))
    parts.append(bar_y(-d / 2.0 - 0.08, top - 0.03, w / 2.0, 0.03))
    for y in np.linspace(-w / 2.0 + 0.08, w / 2.0 - 0.08, 5):
        parts.append(cylinder((-d / 2.0 + 0.02, y, seat_z + 0.04), (-d / 2.0 - 0.08, y, top - 0.05), 0.01, 6))
    return finalize(parts)


# =========================================================================== diningtable
def _table_top_and_legs(length_y: float, depth_x: float, height: float, thickness: float, leg: float,
                        inset: float) -> list[trimesh.Trimesh]:
    """Rectangular top (long side along y) on four corner legs with an apron; symmetric (c2)."""
    hx, hy = depth_x / 2.0 - inset - leg / 2.0, length_y / 2.0 - inset - leg / 2.0
    parts = [box((depth_x, length_y, thickness), (0.0, 0.0, height - thickness / 2.0))]
    parts += _corner_legs(hx, hy, 0.0, height - thickness, leg)
    apron_z = height - thickness - 0.05
    for s in (1.0, -1.0):
        parts.append(box((0.025, 2 * hy, 0.1), (s * hx, 0.0, apron_z)))
        parts.append(box((2 * hx, 0.025, 0.1), (0.0, s * hy, apron_z)))
    return parts


def diningtable_rectangular(rng: Generator) -> trimesh.Trimesh:
    """Rectangular four-leg table (long side along y, two-fold symmetric)."""
    length, depth = _u(rng, 1.4, 2.0), _u(rng, 0.8, 1.0)
    height = _u(rng, 0.72, 0.77)
    return finalize(_table_top_and_legs(length, depth, height, 0.04, 0.06, 0.05))


def diningtable_square(rng: Generator) -> trimesh.Trimesh:
    """Square four-leg table (four-fold symmetric)."""
    side, height = _u(rng, 0.8, 1.0), _u(rng, 0.72, 0.77)
    return finalize(_table_top_and_legs(side, side, height, 0.035, 0.05, 0.04))


def diningtable_round_pedestal(rng: Generator) -> trimesh.Trimesh:
    """Round table on a central turned pedestal with a flared round foot (rotationally symmetric)."""
    r, height = _u(rng, 0.45, 0.6), _u(rng, 0.72, 0.77)
    t = 0.035
    profile = [(0.0, 0.0), (0.32 * r + 0.1, 0.0), (0.3 * r + 0.1, 0.03), (0.09, 0.12), (0.055, 0.2),
               (0.06, 0.5 * height), (0.05, height - t - 0.1), (0.12, height - t - 0.02), (r, height - t),
               (r, height), (0.0, height)]
    return finalize([revolve(profile, 48)])


def diningtable_oval(rng: Generator) -> trimesh.Trimesh:
    """Oval top (long axis along y) on two pedestals with cross feet (two-fold symmetric)."""
    length, depth = _u(rng, 1.6, 2.2), _u(rng, 0.9, 1.1)
    height, t = _u(rng, 0.72, 0.77), 0.04
    top = superellipse_ring(depth / 2.0, length / 2.0, 2.2, 48)
    parts = [extrude(top, "z", height - t, height)]
    for s in (1.0, -1.0):
        y = s * length * 0.28
        parts.append(cylinder((0.0, y, 0.05), (0.0, y, height - t), 0.06, 12))
        parts.append(box((0.65 * depth, 0.1, 0.06), (0.0, y, 0.03)))
        parts.append(box((0.12, 0.3, 0.05), (0.0, y, height - t - 0.025)))
    parts.append(box((0.06, length * 0.56, 0.08), (0.0, 0.0, 0.2)))
    return finalize(parts)


def diningtable_trestle(rng: Generator) -> trimesh.Trimesh:
    """Trestle table: thick plank top on two end trestles (upright + foot + cap) and a stretcher."""
    length, depth = _u(rng, 1.8, 2.4), _u(rng, 0.85, 1.0)
    height, t = _u(rng, 0.73, 0.78), 0.06
    parts = [box((depth, length, t), (0.0, 0.0, height - t / 2.0))]
    for s in (1.0, -1.0):
        y = s * (length / 2.0 - 0.3)
        parts.append(box((0.1, 0.1, height - t - 0.16), (0.0, y, (height - t) / 2.0 + 0.01)))
        parts.append(box((0.8 * depth, 0.12, 0.08), (0.0, y, 0.04)))
        parts.append(box((0.75 * depth, 0.12, 0.06), (0.0, y, height - t - 0.03)))
    parts.append(box((0.06, length - 0.6, 0.12), (0.0, 0.0, 0.35)))
    return finalize(parts)


def diningtable_square_pedestal(rng: Generator) -> trimesh.Trimesh:
    """Square bistro table on a square column with a four-arm cross foot (four-fold symmetric)."""
    side, height, t = _u(rng, 0.7, 0.85), _u(rng, 0.72, 0.76), 0.03
    parts = [box((side, side, t), (0.0, 0.0, height - t / 2.0)),
             box((0.08, 0.08, height - t), (0.0, 0.0, (height - t) / 2.0)),
             box((0.3, 0.3, 0.03), (0.0, 0.0, height - t - 0.015))]
    for k in range(4):
        arm = extrude([(0.0, 0.0), (0.3 * side, 0.0), (0.33 * side, 0.02), (0.0, 0.07)], "y", -0.03, 0.03)
        parts.append(rotated(arm, 45.0 + 90.0 * k, "z"))
    return finalize(parts)


# =========================================================================== motorbike
def _moto_wheels(x_rear: float, x_front: float, r_rear: float, r_front: float, tyre_rear: float,
                 tyre_front: float) -> list[trimesh.Trimesh]:
    return (spoked_wheel(x_rear, r_rear, r_rear, tyre_rear, hub_width=0.15, disc=True)
            + spoked_wheel(x_front, r_front, r_front, tyre_front, hub_width=0.12, disc=True))


def _fork(x_axle: float, z_axle: float, rake_deg: float, length: float,
          gap: float = 0.09) -> tuple[list[trimesh.Trimesh], np.ndarray]:
    """Two fork legs from the front axle up and back at ``rake_deg`` from vertical (and a crown).

    Returns the parts and the top point (metres).
    """
    d = np.array([-np.sin(np.radians(rake_deg)), 0.0, np.cos(np.radians(rake_deg))])
    top = np.array([x_axle, 0.0, z_axle]) + length * d
    parts = [cylinder((x_axle, s * gap, z_axle), top + (0.0, s * gap, 0.0), 0.025, 8) for s in (1.0, -1.0)]
    parts.append(box((0.08, 2 * gap + 0.05, 0.06), top))
    return parts, top


def motorbike_sport(rng: Generator) -> trimesh.Trimesh:
    """Sport bike: full fairing, low clip-on bars, short windscreen, high upswept tail."""
    wb = _u(rng, 1.38, 1.45)
    xr, xf = -wb / 2.0, wb / 2.0
    r = 0.31
    parts = _moto_wheels(xr, xf, r, r, 0.07, 0.06)
    fork, top = _fork(xf, r, 24.0, 0.75)
    parts += fork
    fairing = [(xf + 0.05, 0.1, 0.75, 0.95), (xf - 0.15, 0.3, 0.45, 1.05), (0.05, 0.33, 0.35, 1.0),
               (-0.25, 0.25, 0.4, 0.85)]
    parts.append(section_loft(fairing, 3.0))
    tail = [(-0.2, 0.16, 0.72, 0.92), (xr + 0.05, 0.1, 0.85, 1.02), (xr - 0.15, 0.04, 0.95, 1.05)]
    parts.append(section_loft(tail, 3.0))
    parts.append(ellipsoid((-0.05, 0.0, 1.02), (0.25, 0.17, 0.1)))  # tank
    parts.append(rounded_box((0.4, 0.26, 0.08), (-0.38, 0.0, 0.86), 4.0, "x"))  # seat
    ws = extrude([(xf - 0.12, 1.05), (xf - 0.1, 1.05), (xf - 0.35, 1.2), (xf - 0.37, 1.2)], "y", -0.15, 0.15)
    parts.append(ws)
    parts.append(cylinder((top[0] - 0.05, -0.35, top[2]), (top[0] - 0.05, 0.35, top[2]), 0.014, 8))
    parts.append(cylinder((xr, -0.06, r), (-0.1, -0.06, 0.45), 0.03, 8))  # swingarm
    parts.append(frustum((-0.35, -0.15, 0.7), (xr - 0.1, -0.15, 0.95), 0.06, 0.07, 10))  # exhaust
    return finalize(parts)


def motorbike_cruiser(rng: Generator) -> trimesh.Trimesh:
    """Cruiser: long low chassis, steeply raked fork, teardrop tank, V-twin, tall wide handlebar."""
    wb = _u(rng, 1.62, 1.72)
    xr, xf = -wb / 2.0 + 0.05, wb / 2.0 + 0.05
    r_f, r_r = 0.33, 0.32
    parts = _moto_wheels(xr, xf, r_r, r_f, 0.08, 0.055)
    fork, top = _fork(xf, r_f, 34.0, 0.95)
    parts += fork
    parts.append(ellipsoid((0.12, 0.0, 0.9), (0.3, 0.16, 0.11)))  # tank
    parts.append(rounded_box((0.45, 0.34, 0.08), (-0.3, 0.0, 0.68), 4.0, "z"))  # seat
    parts.append(box((0.2, 0.3, 0.22), (-0.58, 0.0, 0.82)))  # backrest / sissy bar pad
    parts.append(box((0.35, 0.22, 0.2), (0.05, 0.0, 0.36)))  # crankcase
    for ang in (30.0, -30.0):
        d = np.array([np.sin(np.radians(ang)), 0.0, np.cos(np.radians(ang))])
        parts.append(cylinder(np.array([0.05, 0.0, 0.42]), np.array([0.05, 0.0, 0.42]) + 0.38 * d, 0.075, 12))
    for z in (0.3, 0.4):
        parts.append(cylinder((0.1, -0.16, z), (xr - 0.3, -0.17, z + 0.05), 0.04, 8))
    parts.append(cylinder(top, (0.05, 0.0, 0.62), 0.035, 8))  # frame backbone
    parts.append(cylinder((0.05, 0.0, 0.2), (xr, 0.0, r_r), 0.035, 8))
    bar = [top + (0.12, 0.42, 0.45), top + (0.1, 0.4, 0.08), top + (0.0, 0.15, 0.0), top + (0.0, -0.15, 0.0),
           top + (0.1, -0.4, 0.08), top + (0.12, -0.42, 0.45), top + (-0.05, -0.45, 0.5)]
    bar = np.vstack([top + (-0.05, 0.45, 0.5), bar])
    parts.append(tube(bar, 0.014, 6))
    parts.append(cylinder(top + (0.12, 0.0, -0.05), top + (0.2, 0.0, -0.05), 0.1, 12))  # headlight
    guard = np.array([[0.0, -0.1], [0.0, 0.1], [0.025, 0.1], [0.025, -0.1]])
    parts.append(tube(arc_points((xr, 0.0, r_r), r_r + 0.06, 0.0, 150.0, 8), 0.0, profile=guard))
    parts.append(tube(arc_points((xf, 0.0, r_f), r_f + 0.05, 20.0, 150.0, 7), 0.0, profile=guard * 0.8))
    return finalize(parts)


def motorbike_dirt(rng: Generator) -> trimesh.Trimesh:
    """Dirt bike: tall long-travel suspension, big thin front wheel, high beak fender, high flat seat."""
    wb = _u(rng, 1.45, 1.5)
    xr, xf = -wb / 2.0, wb / 2.0
    r_f, r_r = 0.37, 0.35
    parts = _moto_wheels(xr, xf, r_r, r_f, 0.06, 0.05)
    fork, top = _fork(xf, r_f, 27.0, 0.95)
    parts += fork
    parts.append(tube([top + (0.02, 0.0, -0.08), top + (0.25, 0.0, -0.12), top + (0.42, 0.0, -0.22)], 0.0,
                      profile=strip_profile(0.14, 0.02)))  # beak fender
    parts.append(box((0.05, 0.24, 0.22), top + (0.1, 0.0, 0.02)))  # number plate
    parts.append(rounded_box((0.85, 0.2, 0.08), (-0.28, 0.0, 0.95), 4.0, "x"))  # seat
    parts.append(extrude([(0.1, 0.88), (0.45, 0.95), (0.4, 1.02), (0.05, 1.0)], "y", -0.14, 0.14))  # tank
    parts.append(extrude([(-0.72, 0.95), (xr - 0.3, 1.02), (xr - 0.3, 1.05), (-0.72, 1.0)], "y", -0.09, 0.09))
    parts.append(box((0.3, 0.22, 0.3), (0.05, 0.0, 0.5)))  # engine
    side_panels = [(0.05, 0.62), (0.12, 0.92), (-0.72, 0.94), (-0.5, 0.72), (-0.15, 0.62)]
    parts.append(extrude(side_panels, "y", -0.12, 0.12))
    parts.append(cylinder(top, (0.1, 0.0, 0.45), 0.028, 8))
    parts.append(cylinder((-0.1, 0.0, 0.5), (xr, 0.0, r_r), 0.03, 8))
    parts.append(cylinder((-0.15, -0.14, 0.7), (xr - 0.2, -0.14, 0.95), 0.04, 8))  # high exhaust
    parts.append(cylinder(top + (-0.05, -0.4, 0.12), top + (-0.05, 0.4, 0.12), 0.014, 8))
    for s in (1.0, -1.0):
        parts.append(cylinder(top + (0.0, s * 0.05, 0.0), top + (-0.05, s * 0.15, 0.12), 0.013, 6))
    return finalize(parts)


def motorbike_scooter(rng: Generator) -> trimesh.Trimesh:
    """Scooter: small wheels, flat floorboard, tall front leg shield, bulbous rear body under the seat."""
    wb = _u(rng, 1.25, 1.35)
    xr, xf = -wb / 2.0, wb / 2.0
    r = _u(rng, 0.2, 0.23)
    parts = _moto_wheels(xr, xf, r, r, 0.06, 0.06)
    fork, top = _fork(xf, r, 20.0, 0.85, gap=0.0)
    parts += fork[:1] + fork[2:]
    parts.append(box((0.45, 0.34, 0.05), (0.05, 0.0, 0.28)))  # floorboard
    shield = [(xf - 0.12, 0.28), (xf - 0.04, 0.28), (xf - 0.2, 0.95), (xf - 0.28, 0.95)]
    parts.append(extrude(shield, "y", -0.22, 0.22))
    body = [(-0.2, 0.17, 0.28, 0.7), (-0.4, 0.22, 0.3, 0.75), (xr, 0.21, 0.45, 0.75),
            (xr - 0.25, 0.08, 0.55, 0.7)]
    parts.append(section_loft(body, 2.5))
    parts.append(rounded_box((0.6, 0.3, 0.1), (-0.35, 0.0, 0.8), 4.0, "x"))  # seat
    parts.append(rounded_box((0.16, 0.5, 0.12), top + (0.0, 0.0, 0.05), 3.0, "y"))  # handlebar housing
    guard = np.array([[0.0, -0.08], [0.0, 0.08], [0.02, 0.08], [0.02, -0.08]])
    parts.append(tube(arc_points((xf, 0.0, r), r + 0.03, 20.0, 160.0, 7), 0.0, profile=guard))
    return finalize(parts)


def motorbike_touring(rng: Generator) -> trimesh.Trimesh:
    """Touring bike: large fairing with tall windscreen, boxer engine, panniers and a top case."""
    wb = _u(rng, 1.55, 1.65)
    xr, xf = -wb / 2.0, wb / 2.0
    r = 0.33
    parts = _moto_wheels(xr, xf, r, r, 0.075, 0.065)
    fork, top = _fork(xf, r, 26.0, 0.72)
    parts += fork
    fairing = [(xf + 0.05, 0.2, 0.8, 1.05), (xf - 0.15, 0.42, 0.55, 1.15), (xf - 0.45, 0.38, 0.55, 1.1)]
    parts.append(section_loft(fairing, 3.0))
    windscreen = [(xf - 0.05, 1.1), (xf - 0.01, 1.1), (xf - 0.2, 1.5), (xf - 0.24, 1.5)]
    parts.append(extrude(windscreen, "y", -0.25, 0.25))
    parts.append(ellipsoid((0.0, 0.0, 0.95), (0.3, 0.22, 0.14)))  # tank
    covers = [(0.45, 0.55), (0.35, 0.9), (-0.1, 0.85), (xr - 0.3, 0.9), (xr - 0.3, 0.75), (-0.3, 0.5)]
    parts.append(extrude(covers, "y", -0.15, 0.15))  # frame covers and rear rack
    parts.append(rounded_box((0.75, 0.36, 0.12), (-0.35, 0.0, 0.85), 4.0, "x"))  # two-up seat
    parts.append(cylinder((0.2, -0.4, 0.42), (0.2, 0.4, 0.42), 0.09, 12))  # boxer cylinders
    parts.append(box((0.35, 0.3, 0.3), (0.1, 0.0, 0.45)))
    for s in (1.0, -1.0):
        parts.append(rounded_box((0.5, 0.2, 0.38), (xr + 0.1, s * 0.3, 0.65), 4.0, "y"))  # panniers
    parts.append(rounded_box((0.4, 0.45, 0.3), (xr - 0.1, 0.0, 1.08), 4.0, "y"))  # top case
    parts.append(cylinder((top[0] - 0.1, -0.38, top[2] + 0.1), (top[0] - 0.1, 0.38, top[2] + 0.1), 0.014, 8))
    return finalize(parts)


def motorbike_sidecar(rng: Generator) -> trimesh.Trimesh:
    """Motorbike with a sidecar on its right: naked bike plus a boat-shaped car with its own wheel."""
    wb = _u(rng, 1.4, 1.5)
    xr, xf = -wb / 2.0, wb / 2.0
    r = 0.31
    parts = _moto_wheels(xr, xf, r, r, 0.065, 0.055)
    fork, top = _fork(xf, r, 26.0, 0.75)
    parts += fork
    parts.append(ellipsoid((0.05, 0.0, 0.88), (0.27, 0.15, 0.11)))  # tank
    parts.append(rounded_box((0.6, 0.28, 0.09), (-0.35, 0.0, 0.8), 4.0, "x"))
    parts.append(box((0.4, 0.26, 0.3), (0.0, 0.0, 0.45)))
    parts.append(cylinder(top, (0.0, 0.0, 0.7), 0.03, 8))
    parts.append(cylinder((-0.1, 0.0, 0.45), (xr, 0.0, r), 0.03, 8))
    parts.append(cylinder(top + (0.05, 0.0, -0.05), top + (0.15, 0.0, -0.05), 0.09, 12))
    parts.append(cylinder(top + (-0.05, -0.35, 0.08), top + (-0.05, 0.35, 0.08), 0.014, 8))
    y_car = -_u(rng, 0.85, 0.95)
    car = [(0.65, 0.08, 0.45, 0.6), (0.45, 0.28, 0.3, 0.72), (-0.2, 0.32, 0.28, 0.78),
           (-0.6, 0.26, 0.32, 0.82), (-0.75, 0.15, 0.4, 0.8)]
    parts.append(section_loft(car, 2.5, y=y_car))
    windscreen = [(0.15, 0.75), (0.18, 0.75), (0.05, 0.95), (0.02, 0.95)]
    parts.append(extrude(windscreen, "y", y_car - 0.22, y_car + 0.22))
    parts += spoked_wheel(-0.1, 0.25, 0.25, 0.06, y=y_car - 0.3, hub_width=0.1, disc=True)
    for x in (0.35, -0.4):
        parts.append(cylinder((x, -0.05, 0.32), (x, y_car + 0.2, 0.32), 0.025, 8))
    return finalize(parts)


# =========================================================================== sofa
def _cushions(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float, n: int, gap: float = 0.015,
              axis: str = "y") -> list[trimesh.Trimesh]:
    """``n`` rounded cushions side by side along y filling the given box."""
    width = (y1 - y0 - (n - 1) * gap) / n
    out = []
    for k in range(n):
        yc = y0 + width / 2.0 + k * (width + gap)
        out.append(rounded_box((x1 - x0, width, z1 - z0), ((x0 + x1) / 2.0, yc, (z0 + z1) / 2.0), 6.0, axis))
    return out


def sofa_standard(rng: Generator) -> trimesh.Trimesh:
    """Three-seat sofa: box frame, square arms, three seat and three back cushions, short legs."""
    w, d = _u(rng, 2.0, 2.3), _u(rng, 0.88, 0.98)
    top, arm_h = _u(rng, 0.82, 0.9), _u(rng, 0.6, 0.66)
    arm, back = 0.2, 0.22
    hx, hy = d / 2.0, w / 2.0
    parts = _corner_legs(hx - 0.06, hy - 0.06, 0.0, 0.1, 0.05)
    parts.append(box((d, w, 0.25), (0.0, 0.0, 0.225)))
    for s in (1.0, -1.0):
        parts.append(box((d, arm, arm_h - 0.1), (0.0, s * (hy - arm / 2.0), (arm_h + 0.1) / 2.0)))
    parts.append(box((back, w - 2 * arm, top - 0.35), (-hx + back / 2.0, 0.0, (top + 0.35) / 2.0)))
    parts += _cushions(-hx + back, hx, -hy + arm, hy - arm, 0.35, 0.5, 3)
    parts += _cushions(-hx + back - 0.02, -hx + back + 0.16, -hy + arm, hy - arm, 0.5, top - 0.04, 3,
                       axis="x")  # back cushions
    return finalize(parts)


def sofa_rolled_arm(rng: Generator) -> trimesh.Trimesh:
    """Two-seat sofa with rolled (cylindrical) arms, skirted base and two seat cushions."""
    w, d = _u(rng, 1.55, 1.85), _u(rng, 0.85, 0.95)
    top, arm_h = _u(rng, 0.85, 0.95), _u(rng, 0.62, 0.68)
    arm, back = 0.17, 0.2
    hx, hy = d / 2.0, w / 2.0
    parts = [box((d, w - 0.1, 0.35), (0.0, 0.0, 0.175))]
    for s in (1.0, -1.0):
        y = s * (hy - arm / 2.0 - 0.03)
        parts.append(box((d, arm, arm_h - 0.1), (0.0, y, (arm_h - 0.1) / 2.0)))
        roll_y = y + s * 0.02
        roll_z = arm_h - 0.1
        parts.append(cylinder((-hx, roll_y, roll_z), (hx + 0.02, roll_y, roll_z), arm / 2.0 + 0.03, 16))
    back_z = (top + 0.35) / 2.0
    back_size = (back, w - 2 * arm - 0.06, top - 0.35)
    parts.append(rounded_box(back_size, (-hx + back / 2.0, 0.0, back_z), 4.0, "x"))
    parts.append(bar_y(-hx + back / 2.0, top, hy - arm - 0.03, back / 2.0, 16))
    parts += _cushions(-hx + back, hx, -hy + arm + 0.03, hy - arm - 0.03, 0.35, 0.5, 2)
    return finalize(parts)


def sofa_sectional(rng: Generator) -> trimesh.Trimesh:
    """L-shaped sectional: three-seat sofa whose left end extends forward into a chaise longue."""
    w, d = _u(rng, 2.3, 2.5), _u(rng, 0.9, 0.98)
    chaise_len, chaise_w = _u(rng, 1.5, 1.7), _u(rng, 0.75, 0.85)
    top = _u(rng, 0.8, 0.88)
    back, arm = 0.22, 0.18
    x_back = -d / 2.0
    parts = [box((d, w, 0.4), (0.0, 0.0, 0.2)),
             box((chaise_len, chaise_w, 0.4), (x_back + chaise_len / 2.0, w / 2.0 - chaise_w / 2.0, 0.2)),
             box((back, w, top - 0.4), (x_back + back / 2.0, 0.0, (top + 0.4) / 2.0)),
             box((d, arm, 0.25), (0.0, -w / 2.0 + arm / 2.0, 0.525))]
    parts += _cushions(x_back + back, d / 2.0, -w / 2.0 + arm, w / 2.0 - chaise_w - 0.01, 0.4, 0.52, 2)
    parts += _cushions(x_back + back, x_back + chaise_len, w / 2.0 - chaise_w, w / 2.0, 0.4, 0.52, 1)
    return finalize(parts)


def sofa_chesterfield(rng: Generator) -> trimesh.Trimesh:
    """Chesterfield: arms almost as high as the back, rolled tops all round, bun feet."""
    w, d = _u(rng, 1.9, 2.3), _u(rng, 0.9, 1.0)
    height = _u(rng, 0.74, 0.8)
    arm, back = 0.22, 0.24
    hx, hy = d / 2.0, w / 2.0
    parts = [ellipsoid((sx * (hx - 0.08), sy * (hy - 0.08), 0.05), (0.05, 0.05, 0.05), 1)
             for sx in (1, -1) for sy in (1, -1)]
    parts.append(box((d, w, 0.32), (0.0, 0.0, 0.26)))
    arm_top = height - 0.05
    for s in (1.0, -1.0):
        y = s * (hy - arm / 2.0)
        parts.append(box((d, arm, arm_top - 0.42), (0.0, y, (arm_top + 0.42) / 2.0)))
        parts.append(cylinder((-hx, y, arm_top), (hx, y, arm_top), arm / 2.0 + 0.02, 16))
    parts.append(box((back, w - 2 * arm, height - 0.42), (-hx + back / 2.0, 0.0, (height + 0.42) / 2.0)))
    parts.append(bar_y(-hx + back / 2.0, height, hy, back / 2.0 + 0.02, 16))
    parts += _cushions(-hx + back, hx - 0.02, -hy + arm, hy - arm, 0.42, 0.52, 3)
    return finalize(parts)


def sofa_camelback(rng: Generator) -> trimesh.Trimesh:
    """Camelback sofa: back with a raised hump in the middle, low sloping arms, tall turned legs."""
    w, d = _u(rng, 1.9, 2.3), _u(rng, 0.85, 0.95)
    hump, shoulder = _u(rng, 0.95, 1.02), _u(rng, 0.78, 0.84)
    arm, back = 0.16, 0.18
    hx, hy = d / 2.0, w / 2.0
    leg_h = 0.2
    parts = [cylinder((sx * (hx - 0.06), sy * (hy - 0.06), 0.0), (sx * (hx - 0.06), sy * (hy - 0.06), leg_h),
                      0.025, 8) for sx in (1, -1) for sy in (1, -1)]
    parts.append(box((d, w, 0.2), (0.0, 0.0, leg_h + 0.1)))
    ys = np.linspace(-hy, hy, 13)
    tops = shoulder + (hump - shoulder) * np.cos(np.pi * ys / (2.0 * hy)) ** 2
    back_profile = [(hy, leg_h + 0.2), (-hy, leg_h + 0.2)] + [(y, z) for y, z in zip(ys, tops, strict=True)]
    # profile in (y, z) extruded along x
    parts.append(extrude(back_profile, "x", -hx, -hx + back))
    for s in (1.0, -1.0):
        parts.append(extrude([(-hx, leg_h + 0.2), (hx, leg_h + 0.2), (hx, 0.6), (hx - 0.1, 0.64), (-hx, 0.7)],
                             "y", s * hy - (arm if s > 0 else 0.0), s * hy + (0.0 if s > 0 else arm)))
    parts += _cushions(-hx + back, hx, -hy + arm, hy - arm, leg_h + 0.2, leg_h + 0.33, 1)
    return finalize(parts)


def sofa_futon(rng: Generator) -> trimesh.Trimesh:
    """Armless futon / daybed: slatted low frame on thin legs, thick mattress folded into seat and back."""
    w, d = _u(rng, 1.8, 2.0), _u(rng, 0.85, 0.95)
    seat_z = _u(rng, 0.3, 0.35)
    hx, hy = d / 2.0, w / 2.0
    parts = [box((0.04, 0.04, seat_z), (sx * (hx - 0.05), sy * (hy - 0.05), seat_z / 2.0))
             for sx in (1, -1) for sy in (1, -1)]
    parts.append(box((d, w, 0.05), (0.0, 0.0, seat_z)))
    parts.append(rounded_box((d - 0.15, w, 0.15), (0.075, 0.0, seat_z + 0.1), 5.0, "y"))
    back = rounded_box((0.15, w, 0.6), (0.0, 0.0, 0.0), 5.0, "y")
    parts.append(rotated(back, -18.0, "y").apply_translation((-hx + 0.12, 0.0, seat_z + 0.35)))
    for s in (1.0, -1.0):
        parts.append(box((0.05, 0.04, 0.5), (-hx + 0.03, s * (hy - 0.05), seat_z + 0.25)))
    return finalize(parts)


# =========================================================================== train
def _train_body(x0: float, x1: float, width: float, z0: float, z1: float, nose0: float = 0.0,
                nose1: float = 0.0, corner: float = 5.0) -> trimesh.Trimesh:
    """Rail vehicle body from x0 to x1, rounded sections; ``nose0``/``nose1`` metres of sloped cab front."""
    h, w = z1 - z0, width / 2.0
    sections = [(x0, w, z0, z1 - (0.45 if nose0 else 0.04) * h), (x0 + max(nose0, 0.1), w, z0, z1),
                (x1 - max(nose1, 0.1), w, z0, z1), (x1, w, z0, z1 - (0.45 if nose1 else 0.04) * h)]
    return section_loft(sections, corner, 24)


def _pantograph(x: float, z_roof: float, raised: bool) -> list[trimesh.Trimesh]:
    """Diamond pantograph on the roof at x (raised or folded down)."""
    h = 1.3 if raised else 0.2
    parts = [box((1.2, 1.2, 0.1), (x, 0.0, z_roof + 0.05))]
    for s in (1.0, -1.0):
        parts.append(cylinder((x + s * 0.5, 0.0, z_roof + 0.1), (x, 0.0, z_roof + 0.1 + h / 2.0), 0.03, 6))
        parts.append(cylinder((x, 0.0, z_roof + 0.1 + h / 2.0), (x + s * 0.35, 0.0, z_roof + 0.1 + h),
                              0.03, 6))
    parts.append(box((0.3, 1.8, 0.06), (x, 0.0, z_roof + 0.12 + h)))
    return parts


def train_steam_locomotive(rng: Generator) -> trimesh.Trimesh:
    """Steam locomotive with tender: boiler, chimney and domes at the front, cab, big driving wheels."""
    length = _u(rng, 15.5, 18.5)
    x0, x1 = -length / 2.0, length / 2.0
    tender = 0.33 * length
    x_cab = x0 + tender + 0.3
    parts = [box((length - tender - 0.3, 2.8, 0.3), ((x_cab + x1) / 2.0, 0.0, 1.25)),
             box((tender, 2.9, 2.6), (x0 + tender / 2.0, 0.0, 2.3))]  # running board and tender
    parts += bogie(x0 + tender * 0.3, 0.45) + bogie(x0 + tender * 0.72, 0.45)
    r_b = _u(rng, 0.8, 0.9)
    z_b = 2.35
    parts.append(cylinder((x_cab + 2.0, 0.0, z_b), (x1 - 1.6, 0.0, z_b), r_b, 20))
    parts.append(cylinder((x1 - 1.6, 0.0, z_b), (x1 - 0.35, 0.0, z_b), r_b * 1.05, 20))  # smokebox
    parts.append(frustum((x1 - 1.0, 0.0, z_b + r_b * 0.8), (x1 - 1.0, 0.0, 4.3), 0.28, 0.35, 12))  # chimney
    x_dome = 0.25 * (x_cab + x1)
    parts.append(cylinder((x_dome, 0.0, z_b), (x_dome, 0.0, z_b + r_b + 0.45), 0.35, 12))  # steam dome
    parts.append(box((2.3, 3.0, 2.9), (x_cab + 1.15, 0.0, 2.85)))  # cab
    parts.append(box((2.8, 3.2, 0.12), (x_cab + 1.15, 0.0, 4.3)))
    n_drive = 3
    drive_r = _u(rng, 0.8, 0.92)
    for k in range(n_drive):
        x = x_cab + 2.3 + k * (2 * drive_r + 0.15)
        for s in (1.0, -1.0):
            parts.append(wheel_y(x, drive_r, drive_r, 0.14, s * 0.78, 20))
    for s in (1.0, -1.0):
        parts.append(wheel_y(x1 - 1.4, 0.45, 0.45, 0.14, s * 0.78))
        parts.append(cylinder((x1 - 2.4, s * 1.05, 1.25), (x1 - 0.9, s * 1.05, 1.25), 0.3, 12))  # cylinders
    parts.append(extrude([(x1 - 0.4, 1.1), (x1 - 0.4, 0.15), (x1 + 0.5, 0.15)], "y", -1.2, 1.2))  # pilot
    return finalize(parts)


def train_diesel_locomotive(rng: Generator) -> trimesh.Trimesh:
    """Diesel hood unit: narrow long hood, cab near the front, short front hood, walkways, two bogies."""
    length = _u(rng, 17.0, 20.5)
    x0, x1 = -length / 2.0, length / 2.0
    deck = 1.55
    parts = [box((length, 3.05, 0.35), (0.0, 0.0, deck - 0.17))]
    x_cab = x1 - 5.0
    parts.append(rounded_box((x_cab - x0 - 0.6, 1.9, 2.4), ((x_cab + x0 + 0.6) / 2.0, 0.0, deck + 1.2), 5.0,
                             "x"))  # long hood
    parts.append(box((2.6, 3.0, 2.9), (x_cab + 1.3, 0.0, deck + 1.45)))
    parts.append(box((3.0, 3.1, 0.12), (x_cab + 1.3, 0.0, deck + 2.95)))
    parts.append(rounded_box((x1 - x_cab - 3.0, 1.9, 1.6), ((x_cab + 2.6 + x1 - 0.4) / 2.0, 0.0, deck + 0.8),
                             5.0, "x"))  # short hood
    parts += bogie(x0 + 3.6, 0.5, 3, 1.9) + bogie(x1 - 3.6, 0.5, 3, 1.9)
    parts.append(rounded_box((4.0, 2.2, 0.8), (0.0, 0.0, 0.95), 4.0, "x"))  # fuel tank
    parts.append(box((0.3, 0.3, 0.5), (x0 + 3.0, 0.0, deck + 2.6)))  # exhaust stack
    return finalize(parts)


def train_high_speed(rng: Generator) -> trimesh.Trimesh:
    """High-speed train power car: long aerodynamic nose tapering down to a point, roof pantograph."""
    length = _u(rng, 20.0, 24.0)
    nose = _u(rng, 5.5, 7.5)
    x0, x1 = -length / 2.0, length / 2.0
    z0, z1, w = 0.55, 3.9, 2.95
    sections = [(x0, w / 2.0 - 0.05, z0 + 0.05, z1 - 0.05), (x0 + 0.2, w / 2.0, z0, z1)]
    for t in np.linspace(0.0, 1.0, 7):  # the nose: narrower, lower and rounder towards the tip
        s = np.sqrt(max(1.0 - t * t, 0.0))
        half_w = max(w / 2.0 * (0.25 + 0.75 * s ** 0.8), 0.3) if t < 1.0 else 0.25
        top = z0 + 0.3 + (z1 - z0 - 0.3) * (s ** 1.4) if t < 1.0 else z0 + 0.55
        sections.append((x1 - nose + t * nose, half_w, z0 + 0.15 * t, top, 4.0 - 1.5 * t))
    parts = [section_loft(sections, 4.0, 24)]
    parts += bogie(x0 + 2.8, 0.46) + bogie(x1 - nose - 1.5, 0.46)
    parts += _pantograph(x0 + 3.5, z1, True)
    return finalize(parts)


def train_passenger_coach(rng: Generator) -> trimesh.Trimesh:
    """Passenger coach: long rounded body, two bogies, gangways at both ends (two-fold symmetric)."""
    length = _u(rng, 23.0, 25.0)
    hx = length / 2.0
    parts = [_train_body(-hx + 0.3, hx - 0.3, 2.85, 0.95, 4.05, corner=4.0)]
    for s in (1.0, -1.0):
        parts.append(box((0.3, 1.2, 2.4), (s * (hx - 0.15), 0.0, 2.3)))
        parts += bogie(s * (hx - 3.5), 0.46)
    for x in np.linspace(-hx + 4.0, hx - 4.0, 4):
        parts.append(box((1.0, 1.0, 0.2), (x, 0.0, 4.1)))
    return finalize(parts)


def train_tank_wagon(rng: Generator) -> trimesh.Trimesh:
    """Tank wagon: horizontal cylindrical tank with domed ends on a frame, top dome (two-fold symmetric)."""
    length = _u(rng, 15.0, 17.5)
    hx = length / 2.0
    r = _u(rng, 1.35, 1.5)
    z_t = 1.4 + r
    parts = [box((length, 2.7, 0.3), (0.0, 0.0, 1.2))]
    half, head = hx - 0.6, 0.45 * r  # tank half-length and depth of its elliptical heads
    bend = np.linspace(0.0, np.pi / 2.0, 5)
    profile = ([(r * np.sin(a), -half + head * (1.0 - np.cos(a))) for a in bend]
               + [(r * np.sin(a), half - head * (1.0 - np.cos(a))) for a in bend[::-1]])
    tank = rotated(revolve(profile, 24), 90.0, "y")  # axis along x
    parts.append(tank.apply_translation((0.0, 0.0, z_t)))
    parts.append(cylinder((0.0, 0.0, z_t + r - 0.1), (0.0, 0.0, z_t + r + 0.45), 0.5, 16))
    parts.append(box((2.0, 1.0, 0.06), (0.0, 0.0, z_t + r + 0.05)))
    for s in (1.0, -1.0):
        parts += bogie(s * (hx - 2.5), 0.46)
        parts.append(box((0.6, 2.7, 0.1), (s * (hx - 0.3), 0.0, 1.6)))
    return finalize(parts)


def train_electric_locomotive(rng: Generator) -> trimesh.Trimesh:
    """Electric locomotive: box body with sloped cab fronts at both ends, rear pantograph raised."""
    length = _u(rng, 17.5, 19.5)
    hx = length / 2.0
    z1 = 3.95
    parts = [_train_body(-hx, hx, 3.0, 1.0, z1, nose0=1.2, nose1=1.2, corner=6.0)]
    parts += bogie(-hx + 4.2, 0.6, 2, 2.6) + bogie(hx - 4.2, 0.6, 2, 2.6)
    parts += _pantograph(-hx + 4.0, z1, True) + _pantograph(hx - 4.0, z1, False)
    parts.append(box((4.0, 1.8, 0.3), (0.0, 0.0, z1 + 0.1)))
    return finalize(parts)


# =========================================================================== tvmonitor
def _panel(width: float, height: float, depth: float, z0: float, bezel: float = 0.015,
           housing: tuple[float, float, float] | None = None) -> list[trimesh.Trimesh]:
    """Flat screen: front face (the screen, facing +x) at x = 0, slightly recessed within a bezel,
    panel body behind it and an optional back housing (width frac, height frac, depth metres)."""
    zc = z0 + height / 2.0
    parts = [box((depth, width - 2 * bezel, height - 2 * bezel), (-depth / 2.0 - 0.004, 0.0, zc))]
    parts += [box((depth, width, bezel), (-depth / 2.0, 0.0, z0 + bezel / 2.0)),
              box((depth, width, bezel), (-depth / 2.0, 0.0, z0 + height - bezel / 2.0))]
    for s in (1.0, -1.0):
        parts.append(box((depth, bezel, height - 2 * bezel), (-depth / 2.0, s * (width - bezel) / 2.0, zc)))
    if housing is not None:
        fw, fh, hd = housing
        parts.append(box((hd, fw * width, fh * height), (-depth - hd / 2.0, 0.0, z0 + 0.42 * height)))
    return parts


def tvmonitor_flat_pedestal(rng: Generator) -> trimesh.Trimesh:
    """Flat-panel TV on a central neck and a wide base plate; electronics housing at the back."""
    width = _u(rng, 0.9, 1.2)
    height = width * 9.0 / 16.0 + 0.02
    depth = _u(rng, 0.03, 0.05)
    z0 = _u(rng, 0.08, 0.12)
    parts = _panel(width, height, depth, z0, housing=(0.5, 0.45, 0.05))
    parts.append(box((0.05, 0.12, z0 + 0.25), (-depth - 0.04, 0.0, (z0 + 0.25) / 2.0)))
    parts.append(rounded_box((0.28, 0.4 * width, 0.025), (-depth / 2.0 - 0.03, 0.0, 0.0125), 4.0, "z"))
    return finalize(parts)


def tvmonitor_flat_feet(rng: Generator) -> trimesh.Trimesh:
    """Flat-panel TV standing on two splayed V feet near its ends; back housing."""
    width = _u(rng, 0.95, 1.2)
    height = width * 9.0 / 16.0 + 0.02
    depth = _u(rng, 0.025, 0.04)
    z0 = 0.07
    parts = _panel(width, height, depth, z0, housing=(0.55, 0.45, 0.045))
    for s in (1.0, -1.0):
        y = s * 0.4 * width
        for dx in (0.13, -0.16):
            parts.append(cylinder((-depth / 2.0, y, z0 + 0.02), (-depth / 2.0 + dx, y + s * 0.04, 0.0),
                                  0.012, 6))
    return finalize(parts)


def tvmonitor_crt(rng: Generator) -> trimesh.Trimesh:
    """CRT monitor / TV: 4:3 bezel with a slightly domed screen and a deep tapering tube housing."""
    width = _u(rng, 0.4, 0.55)
    height = width * 0.85
    depth = width * _u(rng, 0.9, 1.05)
    z0 = 0.05
    zc = z0 + height / 2.0
    parts = [box((0.07, width, height), (-0.035, 0.0, zc)),
             rounded_box((0.02, width * 0.82, height * 0.8), (0.005, 0.0, zc), 6.0, "x")]
    tube_pos = [-0.07, -0.25 * depth, -depth]
    tube_rings = [superellipse_ring(0.47 * width, 0.47 * height, 6.0, 20, (0.0, zc)),
                  superellipse_ring(0.42 * width, 0.42 * height, 5.0, 20, (0.0, zc)),
                  superellipse_ring(0.22 * width, 0.26 * height, 4.0, 20, (0.0, zc + 0.05 * height))]
    parts.append(loft("x", tube_pos, tube_rings))
    parts.append(cylinder((-0.35 * depth, 0.0, 0.0), (-0.35 * depth, 0.0, z0), 0.3 * width, 20))
    return finalize(parts)


def tvmonitor_monitor_arm(rng: Generator) -> trimesh.Trimesh:
    """Desktop computer monitor: thin panel on a height-adjustable neck rising from a round foot."""
    width = _u(rng, 0.55, 0.7)
    height = width * 9.0 / 16.0 + 0.03
    depth = 0.02
    z0 = _u(rng, 0.1, 0.14)
    parts = _panel(width, height, depth, z0, bezel=0.01, housing=(0.35, 0.35, 0.03))
    neck_x = -depth - 0.06
    parts.append(box((0.03, 0.07, z0 + 0.35 * height), (neck_x - 0.02, 0.0, (z0 + 0.35 * height) / 2.0)))
    parts.append(box((0.05, 0.05, 0.06), (neck_x + 0.01, 0.0, z0 + 0.42 * height)))
    parts.append(cylinder((neck_x - 0.02, 0.0, 0.0), (neck_x - 0.02, 0.0, 0.018), 0.12, 24))
    return finalize(parts)


def tvmonitor_curved(rng: Generator) -> trimesh.Trimesh:
    """Curved ultrawide monitor (21:9, screen concave towards +x) on a V-shaped stand."""
    width = _u(rng, 0.8, 0.9)
    height = width * 9.0 / 21.0 + 0.03
    radius = _u(rng, 1.5, 1.9)
    t = 0.025
    z0 = 0.12
    half = width / 2.0 / radius
    ang = np.linspace(-half, half, 16)
    front = np.stack([-radius * np.cos(ang) + radius, radius * np.sin(ang)], axis=1)
    back = np.stack([-(radius + t) * np.cos(ang[::-1]) + radius, (radius + t) * np.sin(ang[::-1])], axis=1)
    parts = [extrude(np.vstack([front, back]), "z", z0, z0 + height)]
    parts.append(box((0.05, 0.45 * width, 0.55 * height), (-t - 0.025, 0.0, z0 + 0.45 * height)))  # housing
    parts.append(box((0.03, 0.08, z0 + 0.3 * height), (-t - 0.065, 0.0, (z0 + 0.3 * height) / 2.0)))
    for s in (1.0, -1.0):
        foot = box((0.3, 0.04, 0.015), (0.0, 0.0, 0.0075))
        parts.append(rotated(foot, s * 35.0, "z").apply_translation((-t - 0.065 + 0.1, s * 0.09, 0.0)))
    return finalize(parts)


def tvmonitor_wall_mount(rng: Generator) -> trimesh.Trimesh:
    """Wall-mounted TV: slim panel held off a flat wall plate by two bracket arms, no stand."""
    width = _u(rng, 0.9, 1.2)
    height = width * 9.0 / 16.0 + 0.02
    depth = _u(rng, 0.025, 0.035)
    parts = _panel(width, height, depth, 0.0, housing=(0.45, 0.4, 0.03))
    plate_x = -depth - 0.1
    parts.append(box((0.01, 0.4 * width, 0.35 * height), (plate_x, 0.0, 0.45 * height)))
    for s in (1.0, -1.0):
        parts.append(box((0.07, 0.03, 0.3 * height), (plate_x + 0.035, s * 0.1 * width, 0.45 * height)))
    return finalize(parts)


# =========================================================================== registry
@dataclass(frozen=True)
class SubtypeSpec:
    """One procedural sub-type: its category, name, symmetry about +z and generator."""

    category: str
    subtype: str
    symmetry: str
    build: Callable[[Generator], trimesh.Trimesh]


_GENERATORS = (
    aeroplane_airliner, aeroplane_jumbo, aeroplane_fighter, aeroplane_propeller, aeroplane_biplane,
    aeroplane_glider,
    bicycle_road, bicycle_mountain, bicycle_bmx, bicycle_city, bicycle_tandem, bicycle_recumbent,
    boat_sailboat, boat_motorboat, boat_canoe, boat_ferry, boat_rowboat, boat_catamaran,
    bottle_wine_bordeaux, bottle_wine_burgundy, bottle_beer, bottle_water, bottle_soda, bottle_flask,
    bottle_square_spirits,
    bus_city, bus_double_decker, bus_coach, bus_school, bus_trolleybus, bus_open_top,
    car_sedan, car_hatchback, car_suv, car_pickup, car_van, car_sports,
    chair_four_leg, chair_swivel, chair_armchair, chair_bar_stool, chair_school, chair_folding, chair_rocking,
    diningtable_rectangular, diningtable_square, diningtable_round_pedestal, diningtable_oval,
    diningtable_trestle, diningtable_square_pedestal,
    motorbike_sport, motorbike_cruiser, motorbike_dirt, motorbike_scooter, motorbike_touring,
    motorbike_sidecar,
    sofa_standard, sofa_rolled_arm, sofa_sectional, sofa_chesterfield, sofa_camelback, sofa_futon,
    train_steam_locomotive, train_diesel_locomotive, train_high_speed, train_passenger_coach,
    train_tank_wagon, train_electric_locomotive,
    tvmonitor_flat_pedestal, tvmonitor_flat_feet, tvmonitor_crt, tvmonitor_monitor_arm, tvmonitor_curved,
    tvmonitor_wall_mount,
)
"""Every generator, named ``<category>_<subtype>``."""

_SYMMETRY = {
    bottle_wine_bordeaux: "continuous", bottle_wine_burgundy: "continuous", bottle_beer: "continuous",
    bottle_water: "continuous", bottle_soda: "continuous", bottle_flask: "continuous",
    bottle_square_spirits: "c4",
    diningtable_rectangular: "c2", diningtable_square: "c4", diningtable_round_pedestal: "continuous",
    diningtable_oval: "c2", diningtable_trestle: "c2", diningtable_square_pedestal: "c4",
    train_passenger_coach: "c2", train_tank_wagon: "c2",
}
"""Symmetry about +z of the generators whose meshes have one; all others are ``"none"``."""


def _specs() -> tuple[SubtypeSpec, ...]:
    specs = []
    for build in _GENERATORS:
        category = next(c for c in CATEGORIES if build.__name__.startswith(c + "_"))
        symmetry = _SYMMETRY.get(build, "none")
        assert symmetry in SYMMETRIES, symmetry
        specs.append(SubtypeSpec(category, build.__name__[len(category) + 1:], symmetry, build))
    return tuple(sorted(specs, key=lambda spec: CATEGORIES.index(spec.category)))


SUBTYPES: tuple[SubtypeSpec, ...] = _specs()
"""All procedural sub-types, in category order."""


@dataclass(frozen=True, eq=False)
class ProceduralModel:
    """One generated model: identity, symmetry and its mesh (canonical frame, metres)."""

    model_id: str
    category: str
    subtype: str
    symmetry: str
    mesh: trimesh.Trimesh


def model_rng(seed: int, model_id: str) -> Generator:
    """The parameter generator of one model: seeded by the library seed and the model id."""
    return np.random.default_rng([int(seed), zlib.crc32(model_id.encode("utf-8"))])


def procedural_model_id(spec: SubtypeSpec, instance: int) -> str:
    """The model id of instance ``instance`` (1-based) of a sub-type, e.g. ``chair_swivel_01``."""
    return f"{spec.category}_{spec.subtype}_{instance:02d}"


def procedural_model_ids() -> list[tuple[SubtypeSpec, str]]:
    """(sub-type spec, model id) of every procedural model of the default library."""
    return [(spec, procedural_model_id(spec, k + 1)) for spec in SUBTYPES for k in range(INSTANCES_PER_SUBTYPE)]


def build_procedural_model(spec: SubtypeSpec, model_id: str, seed: int) -> ProceduralModel:
    """Generate one model deterministically from ``seed`` and its id."""
    mesh = spec.build(model_rng(seed, model_id))
    return ProceduralModel(model_id, spec.category, spec.subtype, spec.symmetry, mesh)


def generate_procedural_models(seed: int = 0) -> Iterator[ProceduralModel]:
    """All procedural models (``INSTANCES_PER_SUBTYPE`` per sub-type), deterministic in ``seed``."""
    for spec, model_id in procedural_model_ids():
        yield build_procedural_model(spec, model_id, seed)
