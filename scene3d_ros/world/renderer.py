"""Headless CPU renderer on open3d ray casting: RGB, z-depth, instance map and amodal masks.

Frames and units: meshes are given in their object frame (metres) with a pose ``(R, t)`` that maps
object to camera **optical** frame (``p_cam = R p_obj + t``; x right, y down, z forward). Rays go
through pixel centres: pixel ``(u, v)`` (column, row) is sampled at ``((u + 0.5 - cx) / fx,
(v + 0.5 - cy) / fy, 1)``, the convention of :class:`scene3d_ros.geometry.CameraIntrinsics`
and of open3d's ``create_rays_pinhole``. Ray directions keep ``z = 1`` (not normalised), so
open3d's ``t_hit`` is the z-depth in metres.

Shading is Lambertian + ambient + a weak Blinn-Phong highlight with one directional light, flat
per-face normals, a per-object base colour, per-part colours (the mesh's connected components),
a procedural 3D noise texture fixed to the object and, where the material names a scheme,
semantic surface markings (lights, glass, signs: :mod:`scene3d_ros.world.markings`).
Everything is a deterministic function of the inputs (no global random state).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import open3d as o3d
import trimesh
from PIL import Image, ImageFilter

from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.world import markings

INVALID_ID = int(o3d.t.geometry.RaycastingScene.INVALID_ID)

# Amodal masks are computed on a canvas that extends the image by this many image widths/heights
# on every side; projections beyond it are clipped (counts then underestimate the amodal area of
# objects that reach far out of the image, which the scene sampler never produces).
AMODAL_CANVAS_MARGIN = 1.0
# Vertices closer than this (metres, optical z) are treated as "behind the camera" for the
# projected amodal extent; such objects get the whole amodal canvas as their search region.
NEAR_PLANE = 1e-3


@dataclass(frozen=True)
class Light:
    """One directional light plus ambient term, in the camera optical frame.

    ``direction`` is a unit vector from the surface towards the light (optical frame); a light
    behind the camera has ``direction[2] < 0``. Intensities are dimensionless multipliers of the
    albedo; ``colour`` tints the light (RGB, ~1).
    """

    direction: tuple[float, float, float] = (0.3, -0.5, -0.81)
    ambient: float = 0.35
    diffuse: float = 0.75
    specular: float = 0.1
    shininess: float = 20.0
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Material:
    """Appearance of one object: RGB colours in [0, 1] and procedural texture parameters.

    The largest connected component of the mesh gets ``colour``; every other component gets
    ``colour`` or ``secondary_colour`` or ``dark_colour``, chosen from ``part_seed``. A 3D value
    noise of relative amplitude ``texture_amplitude`` and spatial frequency
    ``texture_frequency`` (cycles per metre, object frame) modulates the albedo.
    ``markings`` names a scheme of :mod:`scene3d_ros.world.markings` (lights, glass, signs ...;
    '' = none), drawn from ``marking_seed``.
    """

    colour: tuple[float, float, float] = (0.7, 0.2, 0.2)
    secondary_colour: tuple[float, float, float] = (0.8, 0.8, 0.8)
    dark_colour: tuple[float, float, float] = (0.08, 0.08, 0.08)
    part_seed: int = 0
    texture_amplitude: float = 0.0
    texture_frequency: float = 4.0
    texture_seed: int = 0
    markings: str = ""
    marking_seed: int = 0


@dataclass(frozen=True, eq=False)
class RenderObject:
    """A mesh (object frame, metres) posed in the optical frame, with its material."""

    mesh: trimesh.Trimesh
    rotation: np.ndarray
    translation: np.ndarray
    material: Material = field(default_factory=Material)


@dataclass(frozen=True)
class AmodalInfo:
    """Amodal (occlusion-free) extent of one object, in pixels.

    ``box`` is the tight box ``(x0, y0, x1, y1)`` (x1/y1 exclusive) of the amodal mask on the
    extended canvas (may lie partly outside the image; all zeros when the mask is empty).
    ``pixels``: amodal pixel count including pixels outside the image; ``in_image_pixels``: the
    part inside the image; ``hidden_pixels``: in-image amodal pixels covered by other objects.
    """

    pixels: int
    in_image_pixels: int
    hidden_pixels: int
    box: tuple[int, int, int, int]


@dataclass(eq=False)
class RenderedScene:
    """Renderer output for one image of ``height`` x ``width`` pixels.

    rgb: uint8 (H, W, 3); depth: float32 (H, W) z-depth in metres along the optical axis, 0 on
    background; instance: int32 (H, W), ``k`` where object ``k`` (index in the input list) is
    the nearest surface, -1 on background; amodal: one :class:`AmodalInfo` per input object
    (empty when amodal masks were not requested).
    """

    rgb: np.ndarray
    depth: np.ndarray
    instance: np.ndarray
    amodal: list[AmodalInfo]


# --------------------------------------------------------------------------- rays
def pixel_rays(intrinsics: CameraIntrinsics, x0: int = 0, y0: int = 0,
               x1: int | None = None, y1: int | None = None) -> np.ndarray:
    """Rays ``(rows, cols, 6)`` float32 (origin 0, direction with z = 1) for pixel columns
    ``x0..x1-1`` and rows ``y0..y1-1`` (may extend outside the image), through pixel centres."""
    x1 = intrinsics.width if x1 is None else x1
    y1 = intrinsics.height if y1 is None else y1
    xs = ((np.arange(x0, x1, dtype=np.float64) + 0.5 - intrinsics.cx) / intrinsics.fx).astype(np.float32)
    ys = ((np.arange(y0, y1, dtype=np.float64) + 0.5 - intrinsics.cy) / intrinsics.fy).astype(np.float32)
    rays = np.zeros((len(ys), len(xs), 6), dtype=np.float32)
    rays[..., 3] = xs[None, :]
    rays[..., 4] = ys[:, None]
    rays[..., 5] = 1.0
    return rays


class _RayCache:
    """Full-image ray grids for the last few intrinsics (numpy memory, shared with open3d)."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._items: OrderedDict[CameraIntrinsics, np.ndarray] = OrderedDict()

    def get(self, intrinsics: CameraIntrinsics) -> np.ndarray:
        if intrinsics in self._items:
            self._items.move_to_end(intrinsics)
            return self._items[intrinsics]
        rays = pixel_rays(intrinsics)
        self._items[intrinsics] = rays
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return rays


def _posed_vertices(mesh: trimesh.Trimesh, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Mesh vertices in the optical frame, float64 (N, 3)."""
    rotation = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    translation = np.asarray(translation, dtype=np.float64).reshape(3)
    return np.asarray(mesh.vertices, dtype=np.float64) @ rotation.T + translation


def _faces_u32(mesh: trimesh.Trimesh) -> o3d.core.Tensor:
    return o3d.core.Tensor(np.ascontiguousarray(mesh.faces, dtype=np.uint32))


def _cast(scene: o3d.t.geometry.RaycastingScene, rays: np.ndarray, nthreads: int) -> dict[str, np.ndarray]:
    """Cast float32 rays (..., 6); returns the hit arrays as numpy (no open3d memory kept)."""
    array = np.ascontiguousarray(rays, dtype=np.float32)  # referenced until the cast returns
    hits = scene.cast_rays(o3d.core.Tensor.from_numpy(array), nthreads=nthreads)
    return {key: value.numpy() for key, value in hits.items()}


# --------------------------------------------------------------------------- texture
def _value_noise_3d(points: np.ndarray, seed: int) -> np.ndarray:
    """Smooth pseudo-random field in [-1, 1] at ``points`` (N, 3): a sum of four random 3D
    sinusoids (cheap stand-in for Perlin noise; period ~1 in the points' units)."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(4, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    frequencies = 2.0 * np.pi * rng.uniform(0.5, 2.0, size=4)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=4)
    weights = np.array([0.4, 0.3, 0.2, 0.1], dtype=np.float32)
    arg = points @ (directions * frequencies[:, None]).T.astype(points.dtype) + phases.astype(points.dtype)
    return np.sin(arg) @ weights.astype(points.dtype)


# --------------------------------------------------------------------------- renderer
class Renderer:
    """Renders posed meshes with open3d's ``RaycastingScene`` (headless, CPU).

    One instance per process; it caches ray grids per intrinsics, face part labels per mesh and
    object-frame scenes for :meth:`render_depth`. ``nthreads`` is passed to open3d (0 = all
    cores; use 1 in data-generation worker processes so they do not compete).
    """

    def __init__(self, nthreads: int = 0, max_cached_meshes: int = 512) -> None:
        self.nthreads = int(nthreads)
        self._rays = _RayCache()
        self._max_cached = max_cached_meshes
        # id(mesh) -> (mesh, cached value...); the mesh reference keeps the id valid
        self._parts: OrderedDict[int, tuple] = OrderedDict()
        self._depth_scenes: OrderedDict[int, tuple] = OrderedDict()

    # ------------------------------------------------------------------ caches
    def _cache_get(self, cache: OrderedDict, mesh: trimesh.Trimesh, build):
        key = id(mesh)
        item = cache.get(key)
        if item is not None and item[0] is mesh:
            cache.move_to_end(key)
            return item[1:]
        item = (mesh,) + build(mesh)
        cache[key] = item
        if len(cache) > self._max_cached:
            cache.popitem(last=False)
        return item[1:]

    @staticmethod
    def _build_parts(mesh: trimesh.Trimesh) -> tuple[np.ndarray]:
        """Per-face part label (connected components, ranked by face count, 0 = largest)."""
        labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
        counts = np.bincount(labels)
        rank = np.empty_like(counts)
        rank[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
        return (rank[labels].astype(np.int32),)

    def part_labels(self, mesh: trimesh.Trimesh) -> np.ndarray:
        """Per-face part index of ``mesh`` (0 = the component with most faces)."""
        return self._cache_get(self._parts, mesh, self._build_parts)[0]

    # ------------------------------------------------------------------ scene rendering
    def render(self, objects: list[RenderObject], intrinsics: CameraIntrinsics,
               background: np.ndarray | None = None, light: Light | None = None,
               amodal: bool = True) -> RenderedScene:
        """Render ``objects`` seen by a pinhole camera ``intrinsics``.

        ``background``: uint8 (H, W, 3) image composited behind the objects (mid grey if None).
        ``amodal``: also compute each object's amodal mask statistics (see :class:`AmodalInfo`
        and :meth:`_amodal`). Only rays inside the union of the objects' projected boxes are
        cast (a ray outside every box cannot hit anything).
        """
        light = light or Light()
        height, width = intrinsics.height, intrinsics.width
        rays = self._rays.get(intrinsics).reshape(-1, 6)

        scene = o3d.t.geometry.RaycastingScene()
        posed = []
        for obj in objects:
            vertices = _posed_vertices(obj.mesh, obj.rotation, obj.translation)
            posed.append(vertices)
            scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), _faces_u32(obj.mesh))
        regions = [self._projected_region(v, intrinsics, self._canvas(intrinsics)) for v in posed]

        # only rays inside some object's projected box can hit anything: cast those alone
        cover = np.zeros((height, width), dtype=bool)
        for x0, y0, x1, y1 in regions:
            cover[max(y0, 0):max(min(y1, height), 0), max(x0, 0):max(min(x1, width), 0)] = True
        cast_index = np.flatnonzero(cover.ravel())
        geometry = np.full(height * width, INVALID_ID, dtype=np.uint32)
        t_hit = np.zeros(height * width, dtype=np.float32)
        hit_index = np.zeros(0, dtype=np.int64)
        if len(cast_index):
            hits = _cast(scene, rays[cast_index], self.nthreads)
            cast_hit = hits["geometry_ids"] != INVALID_ID
            hit_index = cast_index[cast_hit]
            geometry[hit_index] = hits["geometry_ids"][cast_hit]
            t_hit[hit_index] = hits["t_hit"][cast_hit]

        instance = np.where(geometry != INVALID_ID, geometry.astype(np.int64), -1).astype(np.int32)
        instance = instance.reshape(height, width)
        depth = t_hit.reshape(height, width)

        if background is None:
            rgb = np.full((height, width, 3), 128, dtype=np.uint8)
        else:
            background = np.asarray(background)
            if background.shape != (height, width, 3) or background.dtype != np.uint8:
                raise ValueError(f"background must be uint8 ({height}, {width}, 3), "
                                 f"got {background.dtype} {background.shape}")
            rgb = background.copy()
        if len(hit_index):
            colours = self._shade(objects, rays[hit_index, 3:], t_hit[hit_index], geometry[hit_index],
                                  hits["primitive_ids"][cast_hit], hits["primitive_normals"][cast_hit], light)
            rgb.reshape(-1, 3)[hit_index] = colours

        amodal_info = self._amodal(objects, posed, regions, intrinsics, instance) if amodal else []
        return RenderedScene(rgb=rgb, depth=depth, instance=instance, amodal=amodal_info)

    def _shade(self, objects: list[RenderObject], directions: np.ndarray, t_hit: np.ndarray,
               instance: np.ndarray, primitive: np.ndarray, normals: np.ndarray, light: Light) -> np.ndarray:
        """uint8 (N, 3) colours of N hit pixels (all arrays are per hit pixel; float32 maths)."""
        normals = normals.astype(np.float32, copy=True)
        # two-sided faces: turn every normal towards the camera
        facing = np.einsum("ij,ij->i", normals, directions)
        normals[facing > 0] *= -1.0
        l_dir = np.asarray(light.direction, dtype=np.float64)
        l_dir = (l_dir / np.linalg.norm(l_dir)).astype(np.float32)
        n_dot_l = np.clip(normals @ l_dir, 0.0, None)
        half = l_dir - directions / np.linalg.norm(directions, axis=1, keepdims=True)  # light + view
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), np.float32(1e-12))
        spec = np.clip(np.einsum("ij,ij->i", normals, half), 0.0, None) ** np.float32(light.shininess)
        spec *= np.float32(light.specular) * (n_dot_l > 0)

        albedo = np.empty((len(t_hit), 3), dtype=np.float32)
        emission = np.zeros((len(t_hit), 3), dtype=np.float32)
        gloss = np.ones(len(t_hit), dtype=np.float32)
        for k, obj in enumerate(objects):
            sel = np.flatnonzero(instance == k)
            if not len(sel):
                continue
            mat = obj.material
            parts = self.part_labels(obj.mesh)
            palette = self._part_palette(mat, int(parts.max()) + 1).astype(np.float32)
            albedo[sel] = palette[parts[primitive[sel]]]
            if not (mat.texture_amplitude > 0 or mat.markings):
                continue
            rotation = np.asarray(obj.rotation, dtype=np.float32).reshape(3, 3)
            points = directions[sel] * t_hit[sel, None]  # optical frame
            p_obj = (points - np.asarray(obj.translation, dtype=np.float32).reshape(3)) @ rotation  # object frame
            if mat.texture_amplitude > 0:
                noise = _value_noise_3d(p_obj * np.float32(mat.texture_frequency), mat.texture_seed)
                albedo[sel] *= (1.0 + np.float32(mat.texture_amplitude) * noise)[:, None]
            if mat.markings:
                n_obj = np.asarray(obj.mesh.face_normals, dtype=np.float32)[primitive[sel]]
                painted = markings.draw_markings(mat.markings, mat.marking_seed)
                albedo[sel], emission[sel], gloss[sel] = markings.paint(
                    painted, p_obj, n_obj, obj.mesh.bounds, mat.markings, albedo[sel])
        light_colour = np.asarray(light.colour, dtype=np.float32)
        shade = np.float32(light.ambient) + np.float32(light.diffuse) * n_dot_l
        colour = (albedo * shade[:, None] + (spec * gloss)[:, None]) * light_colour
        colour = np.maximum(colour, np.float32(0.95) * emission)  # a lit lamp glows in any light
        return np.clip(colour * 255.0 + 0.5, 0, 255).astype(np.uint8)

    @staticmethod
    def _canvas(intrinsics: CameraIntrinsics) -> tuple[int, int, int, int]:
        """Extended pixel range (x0, y0, x1, y1) of amodal masks (see AMODAL_CANVAS_MARGIN)."""
        pad_x = int(np.ceil(AMODAL_CANVAS_MARGIN * intrinsics.width))
        pad_y = int(np.ceil(AMODAL_CANVAS_MARGIN * intrinsics.height))
        return (-pad_x, -pad_y, intrinsics.width + pad_x, intrinsics.height + pad_y)

    @staticmethod
    def _part_palette(material: Material, n_parts: int) -> np.ndarray:
        """RGB albedo per part (n_parts, 3): part 0 the base colour, others drawn from part_seed."""
        choices = np.array([material.colour, material.secondary_colour, material.dark_colour], np.float64)
        rng = np.random.default_rng(material.part_seed)
        index = rng.choice(3, size=n_parts, p=(0.5, 0.3, 0.2))
        index[0] = 0
        return choices[index]

    # ------------------------------------------------------------------ amodal masks
    def _amodal(self, objects: list[RenderObject], posed: list[np.ndarray], regions: list[tuple[int, ...]],
                intrinsics: CameraIntrinsics, instance: np.ndarray) -> list[AmodalInfo]:
        """Amodal statistics per object. Inside the image, a pixel can belong to object k's amodal
        mask only where k is visible or another object is in front (a miss of the scene cast is a
        miss of k too), so only those pixels and the region's part outside the image are re-cast
        against k alone."""
        width, height = intrinsics.width, intrinsics.height
        infos = []
        for k, obj in enumerate(objects):
            x0, y0, x1, y1 = regions[k]
            if x1 <= x0 or y1 <= y0:
                infos.append(AmodalInfo(0, 0, 0, (0, 0, 0, 0)))
                continue
            # instance ids over the region of the extended canvas; -2 outside the image
            sub = np.full((y1 - y0, x1 - x0), -2, dtype=np.int32)
            ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
            inner = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
            if ix1 > ix0 and iy1 > iy0:
                sub[inner] = instance[iy0:iy1, ix0:ix1]
            mask = sub == k
            need = (sub == -2) | ((sub >= 0) & (sub != k))
            if need.any():
                scene = o3d.t.geometry.RaycastingScene()
                scene.add_triangles(o3d.core.Tensor(posed[k].astype(np.float32)), _faces_u32(obj.mesh))
                rays = pixel_rays(intrinsics, x0, y0, x1, y1)[need]
                mask[need] = _cast(scene, rays, self.nthreads)["geometry_ids"] != INVALID_ID
            total = int(mask.sum())
            if total == 0:
                infos.append(AmodalInfo(0, 0, 0, (0, 0, 0, 0)))
                continue
            in_image = int(mask[inner].sum()) if ix1 > ix0 and iy1 > iy0 else 0
            hidden = int((mask[inner] & (sub[inner] != k)).sum()) if in_image else 0
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            box = (int(x0 + cols[0]), int(y0 + rows[0]), int(x0 + cols[-1] + 1), int(y0 + rows[-1] + 1))
            infos.append(AmodalInfo(pixels=total, in_image_pixels=in_image, hidden_pixels=hidden, box=box))
        return infos

    @staticmethod
    def _projected_region(vertices: np.ndarray, intrinsics: CameraIntrinsics,
                          canvas: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """Integer pixel range (x0, y0, x1, y1) covering the projection of ``vertices`` (optical
        frame), padded by one pixel and clipped to ``canvas``."""
        z = vertices[:, 2]
        if np.all(z <= NEAR_PLANE):
            return (0, 0, 0, 0)
        if np.any(z <= NEAR_PLANE):
            return canvas
        uv = intrinsics.project(vertices)
        x0 = max(int(np.floor(uv[:, 0].min())) - 1, canvas[0])
        y0 = max(int(np.floor(uv[:, 1].min())) - 1, canvas[1])
        x1 = min(int(np.ceil(uv[:, 0].max())) + 1, canvas[2])
        y1 = min(int(np.ceil(uv[:, 1].max())) + 1, canvas[3])
        return (x0, y0, x1, y1)

    # ------------------------------------------------------------------ single-object depth
    def render_depth(self, mesh: trimesh.Trimesh, rotation: np.ndarray, translation: np.ndarray,
                     intrinsics: CameraIntrinsics) -> np.ndarray:
        """z-depth (H, W) float32 in metres of ``mesh`` alone in pose ``(R, t)`` (object -> optical
        frame); 0 where the ray misses. The mesh's scene is built once (object frame, cached)
        and the rays are moved into the object frame instead of moving the vertices."""
        scene = self._cache_get(self._depth_scenes, mesh, self._build_object_scene)[0]
        rays_np = self._rays.get(intrinsics)
        rotation = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
        translation = np.asarray(translation, dtype=np.float64).reshape(3)
        rays = np.empty_like(rays_np)
        rays[..., :3] = (-rotation.T @ translation).astype(np.float32)  # camera centre, object frame
        # direction R^T d keeps its parameter t = z-depth in the optical frame
        rays[..., 3:] = rays_np[..., 3:] @ rotation.astype(np.float32)
        t_hit = _cast(scene, rays, self.nthreads)["t_hit"]
        return np.where(np.isfinite(t_hit), t_hit, 0.0).astype(np.float32)

    @staticmethod
    def _build_object_scene(mesh: trimesh.Trimesh) -> tuple[o3d.t.geometry.RaycastingScene]:
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, dtype=np.float32)), _faces_u32(mesh))
        return (scene,)


_DEFAULT_RENDERER: Renderer | None = None


def default_renderer() -> Renderer:
    """A process-wide :class:`Renderer` (created on first use)."""
    global _DEFAULT_RENDERER
    if _DEFAULT_RENDERER is None:
        _DEFAULT_RENDERER = Renderer()
    return _DEFAULT_RENDERER


def render_depth(mesh: trimesh.Trimesh, rotation: np.ndarray, translation: np.ndarray,
                 intrinsics: CameraIntrinsics) -> np.ndarray:
    """z-depth map (H, W) float32, metres, 0 on background, of one mesh in pose (R, t) (object ->
    optical frame), with the process-wide renderer's caches. See :meth:`Renderer.render_depth`."""
    return default_renderer().render_depth(mesh, rotation, translation, intrinsics)


# --------------------------------------------------------------------------- camera effects
def apply_camera_effects(rgb: np.ndarray, seed: int, noise_std: float = 0.0,
                         blur_radius: float = 0.0) -> np.ndarray:
    """Sensor-like post-processing of a uint8 (H, W, 3) image: Gaussian blur of ``blur_radius``
    pixels, then additive Gaussian noise of ``noise_std`` grey levels (deterministic in seed)."""
    out = rgb
    if blur_radius > 0:
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(radius=float(blur_radius))))
    if noise_std > 0:
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal(size=out.shape, dtype=np.float32) * np.float32(noise_std)
        out = np.clip(out.astype(np.float32) + noise + 0.5, 0, 255).astype(np.uint8)
    return out
