"""Depth views: the one definition of the shape-only depth maps network 2 embeds.

A view shows one CAD model alone, its bounding-box centre on the optical axis of a virtual
camera, in a given **allocentric** rotation (object -> camera optical frame, the rotation an
ROI crop shows; see :mod:`scene3d_ros.model.rotations`). The camera (horizontal and vertical
field of view :data:`VIEW_FOV_DEG`) stands at the distance where the model's bounding sphere
(radius r about the bounding-box centre) just fits the view, so every model fills a view the same
way whatever its metric size. Depth is normalised to a shape-only map::

    view = (z - z_centre) / r    on the object  (in [-1, 1])
    view = BACKGROUND            where no surface is hit

with ``z`` the z-depth in metres and ``z_centre`` the depth of the bounding-box centre. Training
(positives/negatives of the triplet loss) and the retrieval database both render with
:func:`object_depth_view`, so they always agree.

A view's **silhouette** (:func:`view_silhouette`) is its object pixels resampled to a
``SILHOUETTE_GRID`` x ``SILHOUETTE_GRID`` grid over their tight bounding box, the way Mask R-CNN
resamples a mask into its box: it compares directly with the mask head's box-relative output
(``box_masks`` of a detection), whatever the object's size in the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import trimesh

from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.world.renderer import Renderer, default_renderer

VIEW_FOV_DEG = 30.0
"""Field of view of the virtual camera, degrees (horizontal = vertical: square views)."""
BACKGROUND = 1.5
"""Value of background pixels (beyond the farthest possible surface at +1)."""
SILHOUETTE_GRID = 28
"""Side of a view silhouette (cells): the resolution of torchvision's Mask R-CNN mask head."""


def view_intrinsics(size_px: int) -> CameraIntrinsics:
    """The virtual camera of a ``size_px`` x ``size_px`` view."""
    if int(size_px) < 1:
        raise ValueError(f"view size must be >= 1 pixel, got {size_px}")
    return CameraIntrinsics.from_fov(int(size_px), int(size_px), VIEW_FOV_DEG)


def bounding_sphere(mesh: trimesh.Trimesh) -> tuple[np.ndarray, float]:
    """(centre (3,), radius) in metres, object frame: the bounding-box centre and the largest
    vertex distance from it (not the minimal sphere, but cheap and deterministic)."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if len(vertices) == 0:
        raise ValueError("cannot render a depth view of an empty mesh")
    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    radius = float(np.sqrt(((vertices - centre) ** 2).sum(axis=1).max()))
    if not radius > 0.0:
        raise ValueError("cannot render a depth view of a mesh with zero extent")
    return centre, radius


def view_translation(mesh: trimesh.Trimesh, rotation: np.ndarray) -> tuple[np.ndarray, float, float]:
    """How a view frames ``mesh`` (object frame, metres) in ``rotation`` (3, 3) (object -> virtual
    optical frame): ``(translation (3,), distance, radius)``, metres: the bounding-box centre on the
    optical axis at ``distance``, where the bounding sphere of ``radius`` fits the ``VIEW_FOV_DEG`` view."""
    centre, radius = bounding_sphere(mesh)
    distance = radius / math.sin(math.radians(VIEW_FOV_DEG) / 2.0)
    translation = np.array([0.0, 0.0, distance]) - np.asarray(rotation, dtype=np.float64).reshape(3, 3) @ centre
    return translation, distance, radius


def object_depth_view(mesh: trimesh.Trimesh, rotation_allocentric: np.ndarray, size_px: int = 64,
                      renderer: Renderer | None = None) -> np.ndarray:
    """Normalised depth view (size_px, size_px) float32 of ``mesh`` (object frame, metres) in
    rotation ``rotation_allocentric`` (3, 3) (object -> virtual optical frame); see the module doc.

    ``renderer``: the :class:`Renderer` to use (its per-mesh scene cache makes repeated views of
    one mesh cheap); default the process-wide one.
    """
    rotation = np.asarray(rotation_allocentric, dtype=np.float64).reshape(3, 3)
    translation, distance, radius = view_translation(mesh, rotation)
    depth = (renderer or default_renderer()).render_depth(mesh, rotation, translation, view_intrinsics(size_px))
    view = np.where(depth > 0.0, (depth - distance) / radius, BACKGROUND)
    return view.astype(np.float32)


def triplet_depth_views(meshes: Sequence[trimesh.Trimesh], negative_meshes: Sequence[trimesh.Trimesh],
                        rotations_allocentric: np.ndarray, size_px: int = 64,
                        renderer: Renderer | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative views ``(N, size_px, size_px)`` float32 for N objects: object ``i``'s
    own mesh and ``negative_meshes[i]`` (a model with a different shape), both in object ``i``'s
    allocentric rotation ``rotations_allocentric[i]`` ``(N, 3, 3)``."""
    rotations = np.asarray(rotations_allocentric, dtype=np.float64).reshape(-1, 3, 3)
    if not len(meshes) == len(negative_meshes) == len(rotations):
        raise ValueError(f"need one mesh, negative mesh and rotation per object, got {len(meshes)}, "
                         f"{len(negative_meshes)}, {len(rotations)}")
    shape = (len(rotations), int(size_px), int(size_px))
    positives = np.empty(shape, dtype=np.float32)
    negatives = np.empty(shape, dtype=np.float32)
    for i, rotation in enumerate(rotations):
        positives[i] = object_depth_view(meshes[i], rotation, size_px, renderer)
        negatives[i] = object_depth_view(negative_meshes[i], rotation, size_px, renderer)
    return positives, negatives


def view_silhouette(view: np.ndarray, grid: int = SILHOUETTE_GRID) -> np.ndarray:
    """Silhouette ``(grid, grid)`` float32 in [0, 1] of a depth view ``(S, S)`` (module doc): the
    object pixels (``view < BACKGROUND``) over their tight bounding box, resampled with
    ``torchvision.ops.roi_align`` (as Mask R-CNN's mask targets); all zeros for an empty view."""
    import torch
    from torchvision.ops import roi_align

    view = np.asarray(view)
    if view.ndim != 2:
        raise ValueError(f"a depth view is (S, S), got shape {view.shape}")
    if int(grid) < 1:
        raise ValueError(f"silhouette grid must be >= 1 cell, got {grid}")
    inside = view < BACKGROUND
    rows, cols = np.nonzero(inside)
    if len(rows) == 0:
        return np.zeros((int(grid), int(grid)), dtype=np.float32)
    box = torch.tensor([[0.0, cols.min(), rows.min(), cols.max() + 1.0, rows.max() + 1.0]], dtype=torch.float32)
    image = torch.from_numpy(inside.astype(np.float32))[None, None]
    return roi_align(image, box, (int(grid), int(grid)), spatial_scale=1.0, sampling_ratio=2,
                     aligned=False)[0, 0].numpy()
