"""Random Pascal3D+-like scenes: camera, background, light and posed CAD models.

:func:`sample_scene` draws a :class:`Scene` from a :class:`SceneConfig` (the ``scene`` section of
``config/generate_data.yaml``) and a CAD library. It is a pure function of the generator state:
the same ``np.random.Generator`` state always gives the same scene.

How objects are placed (every quantity in the optical frame, metres, or pixels):

* viewpoint: azimuth over the full circle, elevation and in-plane angle from their ranges;
  the rotation is :func:`scene3d_ros.geometry.viewpoint_rotation` (object -> camera);
* depth: chosen so that the projected extent of the rotated model's bounding box covers a
  fraction (``size_fraction_range``) of the image (the larger of width and height ratios), as
  objects in Pascal3D+ photos do, whatever their metric size;
* image position: with probability ``truncation_probability`` the projected box is pushed over
  one image border by ``truncation_range`` of its size (truncation), else it lies inside the
  image; objects may overlap in the image (occlusion) but their oriented 3D boxes may not
  intersect (up to ``max_placement_tries`` attempts, after which the object is skipped).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from scene3d_ros import CATEGORIES
from scene3d_ros.geometry import SYMMETRIES, CameraIntrinsics, viewpoint_rotation
from scene3d_ros.world.backgrounds import BACKGROUND_KINDS, BackgroundSpec, sample_background_spec
from scene3d_ros.world.markings import scheme_for
from scene3d_ros.world.renderer import Light, Material

# Minimum gap (metres) between the camera and the nearest point of an object's bounding box.
MIN_NEAR_DISTANCE = 0.05


def _check_range(name: str, value: tuple, low: float | None = None, high: float | None = None) -> None:
    if len(value) != 2 or not value[0] <= value[1]:
        raise ValueError(f"{name} must be a (min, max) pair with min <= max, got {value}")
    if low is not None and value[0] < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value[1] > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")


@dataclass(frozen=True)
class SceneConfig:
    """Distribution of synthetic scenes. Angles in degrees, sizes in pixels, colours in [0, 1].

    ``image_sizes``: (width, height) choices, drawn uniformly. ``hfov_deg_range``: horizontal
    field of view; ``aspect_jitter``: fy = fx * (1 + U(-a, a)); ``principal_point_jitter``:
    (cx, cy) = image centre + U(-j, j) * (width, height). ``category_weights``: relative weight
    per category (missing categories get 0; None = uniform over the library's categories).
    ``texture_frequency_range``: procedural texture cycles across the model's largest extent.
    ``surface_markings``: paint lights, glass, signs and screens where the category has a front
    (:mod:`scene3d_ros.world.markings`); the scenes' geometry (objects, poses, cameras) is the
    same either way for a given seed.
    See config/generate_data.yaml for every other field.
    """

    image_sizes: tuple[tuple[int, int], ...] = ((256, 256),)
    hfov_deg_range: tuple[float, float] = (35.0, 65.0)
    aspect_jitter: float = 0.0
    principal_point_jitter: float = 0.03
    num_objects_range: tuple[int, int] = (1, 6)
    category_weights: dict[str, float] | None = None
    azimuth_deg_range: tuple[float, float] = (0.0, 360.0)
    elevation_deg_range: tuple[float, float] = (-10.0, 60.0)
    inplane_deg_range: tuple[float, float] = (-15.0, 15.0)
    size_fraction_range: tuple[float, float] = (0.2, 0.8)
    truncation_probability: float = 0.2
    truncation_range: tuple[float, float] = (0.1, 0.5)
    max_placement_tries: int = 20
    saturation_range: tuple[float, float] = (0.0, 0.9)
    value_range: tuple[float, float] = (0.15, 0.95)
    texture_amplitude_range: tuple[float, float] = (0.0, 0.25)
    texture_frequency_range: tuple[float, float] = (1.0, 6.0)
    ambient_range: tuple[float, float] = (0.2, 0.5)
    diffuse_range: tuple[float, float] = (0.5, 0.9)
    specular_range: tuple[float, float] = (0.0, 0.3)
    light_colour_jitter: float = 0.1
    background_kinds: tuple[str, ...] = BACKGROUND_KINDS
    background_weights: tuple[float, ...] | None = (1.0, 1.0, 1.0, 1.0, 1.0, 4.0)
    noise_std_range: tuple[float, float] = (0.0, 4.0)
    blur_probability: float = 0.3
    blur_radius_range: tuple[float, float] = (0.3, 1.0)
    surface_markings: bool = True

    def __post_init__(self) -> None:
        if not self.image_sizes:
            raise ValueError("image_sizes must not be empty")
        for size in self.image_sizes:
            if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
                raise ValueError(f"image size must be (width, height) > 0, got {size}")
        # lists from YAML become tuples (dataclass_from_dict converts only plain tuple fields)
        for name, value in self.__dict__.items():
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "image_sizes", tuple((int(w), int(h)) for w, h in self.image_sizes))
        _check_range("hfov_deg_range", self.hfov_deg_range, 1.0, 179.0)
        _check_range("num_objects_range", self.num_objects_range, 1)
        _check_range("azimuth_deg_range", self.azimuth_deg_range)
        _check_range("elevation_deg_range", self.elevation_deg_range, -90.0, 90.0)
        _check_range("inplane_deg_range", self.inplane_deg_range)
        _check_range("size_fraction_range", self.size_fraction_range, 1e-3)
        _check_range("truncation_range", self.truncation_range, 0.0, 0.95)
        for name in ("saturation_range", "value_range", "texture_amplitude_range"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        for name in ("texture_frequency_range", "ambient_range", "diffuse_range", "specular_range",
                     "noise_std_range", "blur_radius_range"):
            _check_range(name, getattr(self, name), 0.0)
        if not 0.0 <= self.truncation_probability <= 1.0 or not 0.0 <= self.blur_probability <= 1.0:
            raise ValueError("probabilities must lie in [0, 1]")
        if self.principal_point_jitter < 0 or not 0 <= self.aspect_jitter < 1:
            raise ValueError("principal_point_jitter must be >= 0 and aspect_jitter in [0, 1)")
        if self.max_placement_tries < 1:
            raise ValueError("max_placement_tries must be >= 1")
        unknown = sorted(set(self.background_kinds) - set(BACKGROUND_KINDS))
        if unknown or not self.background_kinds:
            raise ValueError(f"background_kinds {unknown} unknown; allowed {BACKGROUND_KINDS}")
        if self.background_weights is not None and len(self.background_weights) != len(self.background_kinds):
            raise ValueError("background_weights must have one weight per background kind")
        if self.category_weights is not None:
            unknown = sorted(set(self.category_weights) - set(CATEGORIES))
            if unknown:
                raise ValueError(f"category_weights has unknown categories {unknown}; allowed {CATEGORIES}")
            if any(w < 0 for w in self.category_weights.values()) or sum(self.category_weights.values()) <= 0:
                raise ValueError("category_weights must be >= 0 with a positive sum")


@dataclass(frozen=True, eq=False)
class SceneObject:
    """One posed CAD model: ``rotation`` (3, 3) object -> optical frame, ``translation`` (3,)
    metres in the optical frame (the model's bounding-box centre), and its material."""

    model_id: str
    category: str
    symmetry: str
    rotation: np.ndarray
    translation: np.ndarray
    material: Material = field(default_factory=Material)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (metres, optical frame)."""
        return {
            "model_id": self.model_id, "category": self.category, "symmetry": self.symmetry,
            "rotation": np.asarray(self.rotation).tolist(),
            "translation": np.asarray(self.translation).tolist(),
            "material": _plain(self.material.__dict__),
        }


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything needed to render one image: camera, background, light, objects, sensor effects."""

    intrinsics: CameraIntrinsics
    background: BackgroundSpec
    light: Light
    objects: tuple[SceneObject, ...]
    noise_std: float = 0.0
    blur_radius: float = 0.0
    effects_seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the scene (pixels, metres, optical frame)."""
        return {
            "intrinsics": _plain(self.intrinsics.__dict__),
            "background": _plain(self.background.__dict__),
            "light": _plain(self.light.__dict__),
            "objects": [obj.to_dict() for obj in self.objects],
            "noise_std": float(self.noise_std), "blur_radius": float(self.blur_radius),
            "effects_seed": int(self.effects_seed),
        }


def _plain(mapping: dict[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, (tuple, list, np.ndarray)):
            return [conv(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        return v
    return {k: conv(v) for k, v in mapping.items()}


# --------------------------------------------------------------------------- sampling helpers
def _uniform(rng: np.random.Generator, value_range: tuple[float, float]) -> float:
    return float(rng.uniform(value_range[0], value_range[1]))


def sample_intrinsics(rng: np.random.Generator, config: SceneConfig) -> CameraIntrinsics:
    """Random pinhole camera (pixels): image size, focal length from the horizontal fov,
    aspect and principal-point jitter."""
    width, height = config.image_sizes[int(rng.integers(len(config.image_sizes)))]
    hfov = np.radians(_uniform(rng, config.hfov_deg_range))
    fx = 0.5 * width / np.tan(hfov / 2.0)
    fy = fx * (1.0 + float(rng.uniform(-config.aspect_jitter, config.aspect_jitter)))
    jitter = config.principal_point_jitter
    cx = width / 2.0 + float(rng.uniform(-jitter, jitter)) * width
    cy = height / 2.0 + float(rng.uniform(-jitter, jitter)) * height
    return CameraIntrinsics(float(fx), float(fy), float(cx), float(cy), int(width), int(height))


def _category_probabilities(library, config: SceneConfig) -> tuple[tuple[str, ...], np.ndarray]:
    present = [c for c in CATEGORIES if library.by_category(c)]
    if not present:
        raise ValueError("the CAD library holds no models of any known category")
    if config.category_weights is None:
        weights = np.ones(len(present))
    else:
        weights = np.array([float(config.category_weights.get(c, 0.0)) for c in present])
    if weights.sum() <= 0:
        raise ValueError(f"category_weights give zero weight to every category in the library ({present})")
    return tuple(present), weights / weights.sum()


def _random_colour(rng: np.random.Generator, config: SceneConfig) -> tuple[float, float, float]:
    rgb = colorsys.hsv_to_rgb(float(rng.random()), _uniform(rng, config.saturation_range),
                              _uniform(rng, config.value_range))
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]))


def sample_material(rng: np.random.Generator, config: SceneConfig, object_size: float = 1.0,
                    category: str = "", symmetry: str = "none") -> Material:
    """Random base/secondary/dark colours, part assignment and texture noise; the texture
    frequency is drawn in cycles per ``object_size`` (metres, the model's largest extent). With
    ``config.surface_markings`` the material gets ``category``'s marking scheme (none for a model
    with a declared ``symmetry``), drawn from its part seed: no extra draw from ``rng``, so
    switching markings on changes the objects' appearance and nothing else."""
    dark = float(rng.uniform(0.03, 0.15))
    material = Material(
        colour=_random_colour(rng, config),
        secondary_colour=_random_colour(rng, config),
        dark_colour=(dark, dark, dark),
        part_seed=int(rng.integers(0, 2**31 - 1)),
        texture_amplitude=_uniform(rng, config.texture_amplitude_range),
        texture_frequency=_uniform(rng, config.texture_frequency_range) / max(float(object_size), 1e-6),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )
    if not config.surface_markings:
        return material
    return replace(material, markings=scheme_for(category, symmetry), marking_seed=material.part_seed)


def sample_light(rng: np.random.Generator, config: SceneConfig) -> Light:
    """A directional light from the camera's side (direction z < 0 in the optical frame)."""
    direction = np.array([rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 0.6), -rng.uniform(0.2, 1.0)])
    direction /= np.linalg.norm(direction)
    jitter = config.light_colour_jitter
    colour = 1.0 + rng.uniform(-jitter, jitter, size=3)
    return Light(
        direction=tuple(float(x) for x in direction),
        ambient=_uniform(rng, config.ambient_range),
        diffuse=_uniform(rng, config.diffuse_range),
        specular=_uniform(rng, config.specular_range),
        shininess=float(rng.uniform(5.0, 60.0)),
        colour=tuple(float(x) for x in colour),
    )


def _box_corners(extents: np.ndarray) -> np.ndarray:
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    return 0.5 * signs * extents


def oriented_boxes_intersect(rot_a: np.ndarray, t_a: np.ndarray, ext_a: np.ndarray,
                             rot_b: np.ndarray, t_b: np.ndarray, ext_b: np.ndarray) -> bool:
    """Separating-axis test of two oriented boxes (centres ``t``, axes = columns of ``rot``, full
    ``extents``; one frame, metres). True when they intersect."""
    axes_a = np.asarray(rot_a, dtype=np.float64).T  # rows = box axes
    axes_b = np.asarray(rot_b, dtype=np.float64).T
    crosses = np.cross(axes_a[:, None, :], axes_b[None, :, :]).reshape(9, 3)
    crosses = crosses[np.linalg.norm(crosses, axis=1) > 1e-9]  # parallel edges add no axis
    candidates = np.concatenate([axes_a, axes_b, crosses])
    delta = np.asarray(t_b, dtype=np.float64) - np.asarray(t_a, dtype=np.float64)
    radius_a = np.abs(candidates @ axes_a.T) @ (0.5 * np.asarray(ext_a, dtype=np.float64))
    radius_b = np.abs(candidates @ axes_b.T) @ (0.5 * np.asarray(ext_b, dtype=np.float64))
    return not bool(np.any(np.abs(candidates @ delta) > radius_a + radius_b))


def _place(rng: np.random.Generator, config: SceneConfig, intrinsics: CameraIntrinsics,
           rotation: np.ndarray, extents: np.ndarray) -> np.ndarray:
    """Translation (metres, optical frame) for a model of ``extents`` under ``rotation``."""
    corners = _box_corners(extents) @ rotation.T  # centred at the origin
    span = corners.max(axis=0) - corners.min(axis=0)
    width, height = intrinsics.width, intrinsics.height
    fraction = _uniform(rng, config.size_fraction_range)
    # projected width/height at depth z are ~ f * span / z; make the larger ratio = fraction
    z = max(intrinsics.fx * span[0] / width, intrinsics.fy * span[1] / height) / fraction
    z = max(z, 0.5 * span[2] + MIN_NEAR_DISTANCE)
    half_w = 0.5 * intrinsics.fx * span[0] / z  # half projected size, pixels
    half_h = 0.5 * intrinsics.fy * span[1] / z

    def inside(half: float, size: int) -> float:
        return float(rng.uniform(half, size - half)) if 2 * half < size else size / 2.0

    u, v = inside(half_w, width), inside(half_h, height)
    if rng.random() < config.truncation_probability:
        outside = _uniform(rng, config.truncation_range)  # fraction of the projected box outside
        side = int(rng.integers(4))
        if side == 0:
            u = half_w * (1.0 - 2.0 * outside)
        elif side == 1:
            u = width - half_w * (1.0 - 2.0 * outside)
        elif side == 2:
            v = half_h * (1.0 - 2.0 * outside)
        else:
            v = height - half_h * (1.0 - 2.0 * outside)
    x = (u - intrinsics.cx) / intrinsics.fx * z
    y = (v - intrinsics.cy) / intrinsics.fy * z
    return np.array([x, y, z])


# --------------------------------------------------------------------------- scenes
def sample_scene(rng: np.random.Generator, library, config: SceneConfig) -> Scene:
    """Draw one random scene from ``library`` (a :class:`scene3d_ros.world.cad_library.CadLibrary`).

    Deterministic in the state of ``rng``. Returns at least one object.
    """
    intrinsics = sample_intrinsics(rng, config)
    background = sample_background_spec(rng, tuple(config.background_kinds), config.background_weights)
    light = sample_light(rng, config)
    categories, probabilities = _category_probabilities(library, config)
    n_objects = int(rng.integers(config.num_objects_range[0], config.num_objects_range[1] + 1))

    objects: list[SceneObject] = []
    placed: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (rotation, translation, extents)
    for _ in range(n_objects):
        category = categories[int(rng.choice(len(categories), p=probabilities))]
        candidates = library.by_category(category)
        model = candidates[int(rng.integers(len(candidates)))]
        if model.symmetry not in SYMMETRIES:
            raise ValueError(f"model {model.model_id} has unknown symmetry {model.symmetry!r}")
        extents = np.asarray(model.extents, dtype=np.float64)
        material = sample_material(rng, config, float(extents.max()), model.category, model.symmetry)
        for _ in range(config.max_placement_tries):
            rotation = viewpoint_rotation(_uniform(rng, config.azimuth_deg_range),
                                          _uniform(rng, config.elevation_deg_range),
                                          _uniform(rng, config.inplane_deg_range))
            translation = _place(rng, config, intrinsics, rotation, extents)
            if not any(oriented_boxes_intersect(rotation, translation, extents, *other) for other in placed):
                placed.append((rotation, translation, extents))
                objects.append(SceneObject(model.model_id, model.category, model.symmetry,
                                           rotation, translation, material))
                break

    noise_std = _uniform(rng, config.noise_std_range)
    blur = _uniform(rng, config.blur_radius_range) if rng.random() < config.blur_probability else 0.0
    return Scene(intrinsics=intrinsics, background=background, light=light, objects=tuple(objects),
                 noise_std=noise_std, blur_radius=blur, effects_seed=int(rng.integers(0, 2**31 - 1)))
