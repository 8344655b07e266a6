"""Ground truth of rendered scenes: boxes, visibility, occlusion and truncation, canonical poses.

Definitions (pixels of the rendered image; a pixel belongs to an object when the ray through
its centre hits it):

* visible mask: pixels where the object is the nearest surface (the instance map);
  ``box`` = tight box ``(x0, y0, x1, y1)`` of the visible mask, x1/y1 exclusive;
* amodal mask: pixels the object would cover alone, on a canvas extending beyond the image
  borders (see :data:`scene3d_ros.world.renderer.AMODAL_CANVAS_MARGIN`);
  ``visible_fraction = visible_pixels / amodal_pixels``;
* ``truncated``: more than :data:`TRUNCATED_FRACTION` of the amodal mask lies outside the image;
* ``occluded``: more than :data:`OCCLUDED_FRACTION` of the in-image amodal mask is hidden by
  other objects;
* ``difficult``: fewer than :data:`MIN_VISIBLE_PIXELS` visible pixels, or a visible fraction
  below :data:`MIN_VISIBLE_FRACTION`. Such objects are **kept** (they are in the instance map,
  and a detector may see them) but flagged so training/evaluation can ignore them, as Pascal
  does with its "difficult" flag;
* objects with no visible pixel are **dropped** from the ground truth (they cannot appear in the
  instance map); a scene with no visible object is resampled by :func:`generate_annotated_scene`.

Poses: ``quaternion`` (w, x, y, z), w >= 0, is the object -> camera rotation canonicalised modulo
the model's symmetry (:func:`scene3d_ros.geometry.canonicalize_rotation`); ``viewpoint`` is
(azimuth, elevation, in-plane) degrees of that canonical rotation; ``rotation`` keeps the raw
3x3 matrix used to render. ``translation`` is in metres, optical frame; ``projected_centre`` is
``K t`` in the continuous pixel coordinates of :meth:`CameraIntrinsics.project` (pixel ``u``
spans [u, u + 1)).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from scene3d_ros import CATEGORIES
from scene3d_ros.geometry import canonicalize_rotation, matrix_to_quaternion, rotation_to_viewpoint
from scene3d_ros.world.backgrounds import render_background
from scene3d_ros.world.renderer import RenderedScene, Renderer, RenderObject, apply_camera_effects
from scene3d_ros.world.scene_sampler import Scene, SceneConfig, sample_scene

TRUNCATED_FRACTION = 0.03
"""An object is truncated when more than this share of its amodal area lies outside the image."""
OCCLUDED_FRACTION = 0.10
"""An object is occluded when more than this share of its in-image amodal area is hidden."""
MIN_VISIBLE_PIXELS = 64
"""Objects with fewer visible pixels than this are flagged ``difficult``."""
MIN_VISIBLE_FRACTION = 0.1
"""Objects with a smaller visible/amodal fraction than this are flagged ``difficult``."""
MAX_SCENE_TRIES = 20
"""How many scenes :func:`generate_annotated_scene` draws before giving up on a visible object."""


@dataclass(frozen=True)
class ObjectAnnotation:
    """Ground truth of one visible object; see the module docstring for every definition."""

    instance_id: int  # value of this object in the instance map (index in Scene.objects)
    category: str
    label: int  # 1-based index into CATEGORIES (detector class id)
    model_id: str
    symmetry: str
    quaternion: tuple[float, float, float, float]  # canonical, w >= 0
    rotation: tuple[tuple[float, ...], ...]  # raw 3x3 object -> camera
    translation: tuple[float, float, float]  # metres, optical frame
    viewpoint: tuple[float, float, float]  # azimuth, elevation, in-plane (deg) of the canonical rotation
    box: tuple[int, int, int, int]  # visible mask, x1/y1 exclusive
    amodal_box: tuple[int, int, int, int]  # amodal mask on the extended canvas
    visible_pixels: int
    amodal_pixels: int
    visible_fraction: float
    truncated: bool
    occluded: bool
    difficult: bool
    projected_centre: tuple[float, float]  # K t, pixels

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectAnnotation:
        def tup(v):
            return tuple(tup(x) for x in v) if isinstance(v, list) else v
        return cls(**{k: tup(v) for k, v in data.items()})


@dataclass(eq=False)
class AnnotatedScene:
    """A sampled scene, its rendering (after camera effects) and the per-object ground truth."""

    scene: Scene
    rendered: RenderedScene
    annotations: list[ObjectAnnotation]


def render_scene(scene: Scene, library, renderer: Renderer) -> RenderedScene:
    """Render ``scene`` (meshes from ``library``) over its background, with amodal statistics and
    the scene's sensor effects (blur, noise) applied to the RGB image."""
    intrinsics = scene.intrinsics
    background = render_background(scene.background, intrinsics.width, intrinsics.height)
    objects = [RenderObject(library.mesh(o.model_id), o.rotation, o.translation, o.material)
               for o in scene.objects]
    rendered = renderer.render(objects, intrinsics, background=background, light=scene.light, amodal=True)
    rendered.rgb = apply_camera_effects(rendered.rgb, scene.effects_seed, scene.noise_std, scene.blur_radius)
    return rendered


def annotate(scene: Scene, rendered: RenderedScene) -> list[ObjectAnnotation]:
    """Ground truth of every object of ``scene`` with at least one visible pixel."""
    annotations = []
    intrinsics = scene.intrinsics
    instance = rendered.instance
    counts = np.bincount(instance.ravel() + 1, minlength=len(scene.objects) + 1)[1:]
    for k, obj in enumerate(scene.objects):
        visible = int(counts[k])
        if visible == 0:
            continue
        amodal = rendered.amodal[k]
        mask = instance == k
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        box = (int(cols[0]), int(rows[0]), int(cols[-1] + 1), int(rows[-1] + 1))
        amodal_pixels = max(amodal.pixels, visible)  # equal up to ray-cast ties on shared surfaces
        outside = (amodal_pixels - amodal.in_image_pixels) / amodal_pixels
        hidden = amodal.hidden_pixels / amodal.in_image_pixels if amodal.in_image_pixels else 0.0
        visible_fraction = visible / amodal_pixels
        canonical = canonicalize_rotation(obj.rotation, obj.symmetry)
        centre = intrinsics.project(np.asarray(obj.translation, dtype=np.float64))[0]
        annotations.append(ObjectAnnotation(
            instance_id=k,
            category=obj.category,
            label=CATEGORIES.index(obj.category) + 1,
            model_id=obj.model_id,
            symmetry=obj.symmetry,
            quaternion=tuple(float(x) for x in matrix_to_quaternion(canonical)),
            rotation=tuple(tuple(float(x) for x in row) for row in np.asarray(obj.rotation)),
            translation=tuple(float(x) for x in obj.translation),
            viewpoint=tuple(float(x) for x in rotation_to_viewpoint(canonical)),
            box=box,
            amodal_box=tuple(int(x) for x in amodal.box),
            visible_pixels=visible,
            amodal_pixels=int(amodal_pixels),
            visible_fraction=float(visible_fraction),
            truncated=bool(outside > TRUNCATED_FRACTION),
            occluded=bool(hidden > OCCLUDED_FRACTION),
            difficult=bool(visible < MIN_VISIBLE_PIXELS or visible_fraction < MIN_VISIBLE_FRACTION),
            projected_centre=(float(centre[0]), float(centre[1])),
        ))
    return annotations


def generate_annotated_scene(rng: np.random.Generator, library, config: SceneConfig,
                             renderer: Renderer) -> AnnotatedScene:
    """Sample, render and annotate a scene; resample (same ``rng``, so still deterministic)
    while no object is visible, at most :data:`MAX_SCENE_TRIES` times."""
    for _ in range(MAX_SCENE_TRIES):
        scene = sample_scene(rng, library, config)
        rendered = render_scene(scene, library, renderer)
        annotations = annotate(scene, rendered)
        if annotations:
            return AnnotatedScene(scene, rendered, annotations)
    raise RuntimeError(f"no visible object in {MAX_SCENE_TRIES} sampled scenes: check the scene config")
