"""Front/back ambiguity of a CAD model: how alike it is to itself turned 180 deg about its up axis.

Meshes are in the canonical object frame (:mod:`scene3d_ros.geometry`: +x front, +y left, +z up,
origin at the centre of the axis-aligned bounding box, metres). A network that tells a view from
the same view turned 180 deg in azimuth needs something in the object that differs between its
front and its back; this module measures how much there is, three ways:

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
* **appearance**: :func:`compare_flipped_appearance` renders RGB with the world's
  :class:`~scene3d_ros.world.renderer.Renderer` from the same two viewpoints, framed as the depth
  views are (bounding-box centre on the optical axis, bounding sphere fitting the
  ``VIEW_FOV_DEG`` view), with one uniform material (``APPEARANCE_MATERIAL``: every part the same
  grey, no texture noise), the fixed ``APPEARANCE_LIGHT`` (camera frame, so both views are lit
  alike relative to the camera) on a uniform ``APPEARANCE_BACKGROUND`` grey, and compares them by
  :func:`flipped_rgb_difference`: the mean absolute RGB difference (grey levels, 0-255) over the
  overlap of the two silhouettes. Measured **before** semantic surface markings (none painted)
  and **after** (the model's scheme, :func:`~scene3d_ros.world.markings.scheme_for`, averaged over
  the fixed ``MARKING_SEEDS``). Geometry alone shows through the shading of the faces each view
  sees; the markings add lights, glass, signs. A view and its turn count as distinct in
  appearance above ``DISTINCT_RGB_DIFFERENCE``.

:func:`sample_viewpoints` draws the viewpoints from the scene sampler's distribution
(:class:`~scene3d_ros.world.scene_sampler.SceneConfig` ranges), seeded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import open3d as o3d
import trimesh

from scene3d_ros.geometry import rotation_about_up, viewpoint_rotation
from scene3d_ros.mirror import MIRROR_SYMMETRY_TOLERANCE, self_map_asymmetry
from scene3d_ros.world.depth_views import BACKGROUND, object_depth_view, view_intrinsics, view_translation
from scene3d_ros.world.markings import SCHEMES
from scene3d_ros.world.renderer import Light, Material, Renderer, RenderObject, default_renderer
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


# --------------------------------------------------------------------------- appearance (RGB)
APPEARANCE_GREY = 0.5
"""Albedo (RGB, [0, 1]) of every part in the appearance views: mid grey, so that dark markings
(glass, screens, grilles) and bright ones (lamps, signs, numbers) both stand out from the body."""
APPEARANCE_MATERIAL = Material(colour=(APPEARANCE_GREY,) * 3, secondary_colour=(APPEARANCE_GREY,) * 3,
                               dark_colour=(APPEARANCE_GREY,) * 3, texture_amplitude=0.0)
"""The one uniform material of the appearance views: same colour for every part, no texture noise;
:func:`render_appearance_view` sets only its ``markings`` / ``marking_seed``."""
APPEARANCE_LIGHT = Light()
"""The fixed light of the appearance views (the renderer's default: directional, optical frame)."""
APPEARANCE_BACKGROUND = 128
"""Uniform background grey level (0-255) of the appearance views (outside every silhouette, so it
never enters the overlap measure)."""
MARKING_SEEDS = (0, 1, 2, 3)
"""Fixed ``marking_seed`` values the "after" measure averages over (the world draws the seed from
the material's part seed; these four cover presence, size, lights on/off and colours)."""
DISTINCT_RGB_DIFFERENCE = 5.0
"""Mean absolute RGB difference over the silhouettes' overlap (grey levels, 0-255) above which a
view and its 180 deg turn count as distinct in appearance: about 2 % of the range, e.g. a lamp or a
windscreen that covers ~5 % of the overlap at ~100 levels of contrast to the body. Ray-casting
noise of an exactly c2-symmetric model stays far below (< 0.5)."""


def render_appearance_view(mesh: trimesh.Trimesh, rotation: np.ndarray, size_px: int = 96, scheme: str = "",
                           marking_seed: int = 0, renderer: Renderer | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb, silhouette)`` of ``mesh`` (object frame, metres) in rotation ``rotation`` (3, 3)
    (object -> optical frame), framed as the depth views are
    (:func:`~scene3d_ros.world.depth_views.view_translation`) in a ``size_px`` square view:
    rgb uint8 ``(S, S, 3)`` rendered with ``APPEARANCE_MATERIAL`` (markings ``scheme``, '' = none,
    drawn from ``marking_seed``), ``APPEARANCE_LIGHT`` and the uniform ``APPEARANCE_BACKGROUND``;
    silhouette bool ``(S, S)`` the object's pixels. ``renderer``: default the process-wide one."""
    if scheme and scheme not in SCHEMES:
        raise ValueError(f"unknown marking scheme {scheme!r}; known '' (none) or {sorted(SCHEMES)}")
    rotation = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    intrinsics = view_intrinsics(size_px)
    material = replace(APPEARANCE_MATERIAL, markings=scheme, marking_seed=int(marking_seed))
    background = np.full((intrinsics.height, intrinsics.width, 3), APPEARANCE_BACKGROUND, dtype=np.uint8)
    rendered = (renderer or default_renderer()).render(
        [RenderObject(mesh, rotation, view_translation(mesh, rotation)[0], material)], intrinsics,
        background=background, light=APPEARANCE_LIGHT, amodal=False)
    return rendered.rgb, rendered.instance == 0


def flipped_rgb_difference(rgb: np.ndarray, silhouette: np.ndarray, flipped_rgb: np.ndarray,
                           flipped_silhouette: np.ndarray) -> float:
    """Mean absolute difference (grey levels, 0-255, averaged over the three channels) of two RGB
    views ``(S, S, 3)`` over the overlap of their silhouettes ``(S, S)`` (bool); NaN where the
    silhouettes do not meet. Symmetric in its two views."""
    rgb, flipped_rgb = np.asarray(rgb, dtype=np.float64), np.asarray(flipped_rgb, dtype=np.float64)
    silhouette, flipped_silhouette = np.asarray(silhouette, dtype=bool), np.asarray(flipped_silhouette, dtype=bool)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape != flipped_rgb.shape:
        raise ValueError(f"need two RGB views of the same (S, S, 3) shape, got {rgb.shape} and {flipped_rgb.shape}")
    if silhouette.shape != rgb.shape[:2] or flipped_silhouette.shape != rgb.shape[:2]:
        raise ValueError(f"silhouettes must be {rgb.shape[:2]}, got {silhouette.shape} and {flipped_silhouette.shape}")
    overlap = silhouette & flipped_silhouette
    if not overlap.any():
        return float("nan")
    return float(np.abs(rgb - flipped_rgb)[overlap].mean())


@dataclass(frozen=True)
class FlipAppearanceComparison:
    """Per-viewpoint appearance comparison of a model's view with the view turned 180 deg in azimuth.

    ``viewpoints`` ``(N, 3)`` (azimuth, elevation, in-plane; degrees); ``scheme`` the marking
    scheme painted "after" ('' = none); ``marking_seeds`` the seeds "after" averages over;
    ``before`` ``(N,)`` :func:`flipped_rgb_difference` (grey levels) without markings; ``after``
    ``(N,)`` its mean over ``marking_seeds`` with the scheme painted (NaN where the silhouettes do
    not overlap).
    """

    viewpoints: np.ndarray
    scheme: str
    marking_seeds: tuple[int, ...]
    before: np.ndarray
    after: np.ndarray

    @staticmethod
    def share_distinct(differences: np.ndarray, threshold: float = DISTINCT_RGB_DIFFERENCE) -> float:
        """Share of the viewpoints with a defined difference whose difference exceeds ``threshold``
        (grey levels); NaN when none is defined."""
        differences = np.asarray(differences, dtype=np.float64)
        defined = differences[np.isfinite(differences)]
        return float(np.mean(defined > float(threshold))) if len(defined) else float("nan")


def compare_flipped_appearance(mesh: trimesh.Trimesh, viewpoints: np.ndarray, scheme: str, size_px: int = 96,
                               marking_seeds: tuple[int, ...] = MARKING_SEEDS,
                               renderer: Renderer | None = None) -> FlipAppearanceComparison:
    """Render ``mesh`` (object frame) in RGB (:func:`render_appearance_view`) from each viewpoint
    ``(az, el, ip)`` of ``viewpoints`` ``(N, 3)`` (degrees) and from ``(az + 180, el, ip)``, and
    compare each pair (:func:`flipped_rgb_difference`) without markings ("before") and with the
    marking ``scheme`` painted ('' = none: then "after" equals "before"), for every seed of
    ``marking_seeds`` ("after", the mean over the seeds). Deterministic."""
    viewpoints = np.asarray(viewpoints, dtype=np.float64)
    if viewpoints.ndim != 2 or viewpoints.shape[1] != 3 or len(viewpoints) == 0:
        raise ValueError(f"viewpoints must be (N >= 1, 3) azimuth/elevation/in-plane, got shape {viewpoints.shape}")
    seeds = tuple(int(s) for s in marking_seeds)
    if not seeds:
        raise ValueError("need at least one marking seed")
    renderer = renderer or default_renderer()

    def difference(rotation: np.ndarray, flipped: np.ndarray, scheme: str, seed: int) -> float:
        return flipped_rgb_difference(*render_appearance_view(mesh, rotation, size_px, scheme, seed, renderer),
                                      *render_appearance_view(mesh, flipped, size_px, scheme, seed, renderer))

    before, after = [], []
    for azimuth, elevation, inplane in viewpoints:
        rotation = viewpoint_rotation(azimuth, elevation, inplane)
        flipped = viewpoint_rotation(azimuth + 180.0, elevation, inplane)
        before.append(difference(rotation, flipped, "", 0))
        per_seed = [difference(rotation, flipped, scheme, seed) for seed in seeds]
        after.append(np.nan if np.isnan(per_seed).any() else float(np.mean(per_seed)))
    return FlipAppearanceComparison(viewpoints=viewpoints, scheme=scheme, marking_seeds=seeds,
                                    before=np.array(before), after=np.array(after))
