"""Front/back ambiguity of a CAD model: how alike it is to itself turned 180 deg about its up axis.

Meshes are in the canonical object frame (:mod:`scene3d_ros.geometry`: +x front, +y left, +z up,
origin at the centre of the axis-aligned bounding box, metres). A network that tells a view from
the same view turned 180 deg in azimuth needs something in the object that differs between its
front and its back; this module measures how much there is, two ways:

* **geometric** (mesh only): :func:`front_back_asymmetry`, the :func:`~scene3d_ros.mirror.self_map_asymmetry`
  ratio of the half turn about +z (``HALF_TURN``, the ``"c2"`` symmetry), and
  :func:`front_back_mirror_asymmetry`, that of the front/back mirror ``FRONT_BACK_MIRROR =
  diag(-1, 1, 1)`` (x -> -x). About 1 when the map takes the mesh onto itself; a half-turn score
  below ``MIRROR_SYMMETRY_TOLERANCE`` (the tolerance the left/right mirror augmentation uses)
  makes the model a candidate for a declared ``"c2"`` symmetry. That ratio is relative to the
  sampling noise, which grows with the surface area, so it is loose for large objects (a 12 m bus
  within it may still differ by 30 cm); :func:`half_turn_deviation` gives the deviation in
  metres' terms, as a fraction of the largest extent, the way the library's own check of its
  declared symmetries measures it (``DECLARED_SYMMETRY_DEVIATION``).
* **rendered**: :func:`compare_flipped_views` renders the model's normalised depth views
  (:func:`~scene3d_ros.world.depth_views.object_depth_view`: centred, scaled to fit, what
  network 2 embeds) from viewpoints ``(az, el, ip)`` and ``(az + 180, el, ip)`` and compares
  them pixel by pixel, as a network sees them: silhouette IoU, and the mean absolute difference
  of the view maps (radius units) over the union of the two silhouettes (background pixels
  count as ``BACKGROUND``, so a silhouette difference weighs in) and over their overlap alone
  (the depth cue by itself). A c2-symmetric model gives IoU 1 and difference 0 at every view.

:func:`sample_viewpoints` draws the viewpoints from the scene sampler's distribution
(:class:`~scene3d_ros.world.scene_sampler.SceneConfig` ranges), seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d
import trimesh

from scene3d_ros.geometry import rotation_about_up, viewpoint_rotation
from scene3d_ros.mirror import MIRROR_SYMMETRY_TOLERANCE, self_map_asymmetry
from scene3d_ros.world.depth_views import BACKGROUND, object_depth_view
from scene3d_ros.world.renderer import Renderer
from scene3d_ros.world.scene_sampler import SceneConfig

HALF_TURN = rotation_about_up(np.pi)
"""Object-frame rotation by 180 deg about +z (front <-> back and left <-> right)."""
FRONT_BACK_MIRROR = np.diag([-1.0, 1.0, 1.0])
"""Object-frame mirror across the y-z plane: front <-> back, left and right kept."""
C2_TOLERANCE = MIRROR_SYMMETRY_TOLERANCE
"""Largest :func:`front_back_asymmetry` of a model that is a candidate for a declared ``"c2"``."""
DECLARED_SYMMETRY_DEVIATION = 0.01
"""Largest :func:`half_turn_deviation` (maximum, fraction of the largest extent) of a declared
symmetry that the CAD library's tests accept (``test_declared_symmetries_hold_and_are_the_largest``)."""


def front_back_asymmetry(mesh: trimesh.Trimesh, samples: int = 4000) -> float:
    """How far ``mesh`` (object frame) is from itself turned 180 deg about +z through the origin:
    :func:`~scene3d_ros.mirror.self_map_asymmetry` of ``HALF_TURN`` (about 1 when c2-symmetric)."""
    return self_map_asymmetry(mesh, HALF_TURN, samples)


def front_back_mirror_asymmetry(mesh: trimesh.Trimesh, samples: int = 4000) -> float:
    """How far ``mesh`` (object frame) is from its front/back mirror image (x -> -x):
    :func:`~scene3d_ros.mirror.self_map_asymmetry` of ``FRONT_BACK_MIRROR``."""
    return self_map_asymmetry(mesh, FRONT_BACK_MIRROR, samples)


def half_turn_deviation(mesh: trimesh.Trimesh, samples: int = 2000, percentile: float = 100.0) -> float:
    """Distance from the surface of ``mesh`` (object frame, metres) of its surface samples turned
    180 deg about +z, at ``percentile`` (100 = the largest) over the samples, as a fraction of the
    mesh's largest extent: 0 for an exactly c2-symmetric mesh. Deterministic (samples seed 0)."""
    if int(samples) < 1:
        raise ValueError(f"need at least 1 surface sample, got {samples}")
    if not 0.0 <= float(percentile) <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    extent = float(np.max(mesh.extents))
    if not extent > 0.0:
        raise ValueError(f"mesh has zero extent {mesh.extents.tolist()}")
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, dtype=np.float32)),
                        o3d.core.Tensor(np.asarray(mesh.faces, dtype=np.uint32)))
    points, _ = trimesh.sample.sample_surface(mesh, int(samples), seed=0)
    turned = (points @ HALF_TURN.T).astype(np.float32)
    distances = scene.compute_distance(o3d.core.Tensor(turned)).numpy()
    return float(np.percentile(distances, float(percentile)) / extent)


def sample_viewpoints(count: int, seed: int = 0, config: SceneConfig | None = None) -> np.ndarray:
    """``(count, 3)`` viewpoints (azimuth, elevation, in-plane; degrees) drawn uniformly from the
    scene sampler's ranges (``config``, default :class:`SceneConfig`'s), deterministic in ``seed``."""
    if int(count) < 1:
        raise ValueError(f"need at least 1 viewpoint, got {count}")
    config = config or SceneConfig()
    rng = np.random.default_rng(int(seed))
    ranges = (config.azimuth_deg_range, config.elevation_deg_range, config.inplane_deg_range)
    return np.stack([rng.uniform(low, high, size=int(count)) for low, high in ranges], axis=1)


@dataclass(frozen=True)
class FlipViewComparison:
    """Per-viewpoint comparison of a model's view with the view turned 180 deg in azimuth.

    ``viewpoints`` ``(N, 3)`` (azimuth, elevation, in-plane; degrees); ``iou`` ``(N,)`` silhouette
    IoU in [0, 1]; ``depth_difference`` ``(N,)`` mean absolute view-map difference over the union
    of the silhouettes (radius units, background = ``BACKGROUND``); ``overlap_depth_difference``
    ``(N,)`` the same over the silhouettes' intersection only (NaN where they do not overlap).
    """

    viewpoints: np.ndarray
    iou: np.ndarray
    depth_difference: np.ndarray
    overlap_depth_difference: np.ndarray


def flipped_view_difference(view: np.ndarray, flipped: np.ndarray) -> tuple[float, float, float]:
    """(silhouette IoU, mean |difference| over the union, over the overlap) of two normalised
    depth views ``(S, S)`` (:func:`~scene3d_ros.world.depth_views.object_depth_view`); IoU 1 and
    differences 0 for two empty views, NaN overlap difference where the silhouettes do not meet."""
    view, flipped = np.asarray(view, dtype=np.float64), np.asarray(flipped, dtype=np.float64)
    if view.ndim != 2 or view.shape != flipped.shape:
        raise ValueError(f"need two depth views of the same (S, S) shape, got {view.shape} and {flipped.shape}")
    inside_a, inside_b = view < BACKGROUND, flipped < BACKGROUND
    union, overlap = inside_a | inside_b, inside_a & inside_b
    if not union.any():
        return 1.0, 0.0, 0.0
    difference = np.abs(view - flipped)
    overlap_difference = float(difference[overlap].mean()) if overlap.any() else float("nan")
    return float(overlap.sum() / union.sum()), float(difference[union].mean()), overlap_difference


def compare_flipped_views(mesh: trimesh.Trimesh, viewpoints: np.ndarray, size_px: int = 96,
                          renderer: Renderer | None = None) -> FlipViewComparison:
    """Render ``mesh`` (object frame) from each viewpoint ``(az, el, ip)`` of ``viewpoints``
    ``(N, 3)`` (degrees) and from ``(az + 180, el, ip)`` as ``size_px`` x ``size_px`` depth views
    and compare them (:func:`flipped_view_difference`). ``renderer``: default the process-wide one."""
    viewpoints = np.asarray(viewpoints, dtype=np.float64)
    if viewpoints.ndim != 2 or viewpoints.shape[1] != 3 or len(viewpoints) == 0:
        raise ValueError(f"viewpoints must be (N >= 1, 3) azimuth/elevation/in-plane, got shape {viewpoints.shape}")
    rows = []
    for azimuth, elevation, inplane in viewpoints:
        view = object_depth_view(mesh, viewpoint_rotation(azimuth, elevation, inplane), size_px, renderer)
        flipped = object_depth_view(mesh, viewpoint_rotation(azimuth + 180.0, elevation, inplane), size_px, renderer)
        rows.append(flipped_view_difference(view, flipped))
    iou, depth, overlap = (np.array(column) for column in zip(*rows, strict=True))
    return FlipViewComparison(viewpoints=viewpoints, iou=iou, depth_difference=depth, overlap_depth_difference=overlap)
