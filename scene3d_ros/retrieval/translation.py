"""Translation from the retrieved model's size: move the object along its viewing ray (and across
it) until the model, posed in the final rotation, projects onto the detected box.

Network 1 regresses the depth from the box and the category, so its translation inherits the
spread of sizes within a category (a city bus vs a minibus). Once a CAD model is retrieved and a
rotation chosen, the object's size is known: its projection in the real camera (``K``) must cover
the detected box. Pinhole projection scales as 1/z, so scaling the translation by
``projected size / box size`` brings the projected size to the box's (exactly for a distant
object, within a few percent in a few iterations otherwise); the centre is then moved across the
ray so that the projected box centre lands on the detected one.

Boxes cut by the image border (truncated objects) do not show the object's extent: they are left
as they are (``None``). Units: metres in the camera optical frame, pixels (edges) for boxes.
"""

from __future__ import annotations

import numpy as np
import trimesh

from scene3d_ros.geometry import CameraIntrinsics

BORDER_MARGIN_PX = 2.0
"""A box edge this close to the image border counts as cut by it (the object may extend beyond)."""
MIN_DEPTH_M = 0.05
ITERATIONS = 4


def projected_box(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                  intrinsics: CameraIntrinsics) -> np.ndarray | None:
    """x0 y0 x1 y1 (pixels) of object-frame ``points`` (N, 3) posed by ``rotation`` (3, 3) and
    ``translation`` (3,), or None when a point lies behind ``MIN_DEPTH_M``."""
    camera = points @ np.asarray(rotation).T + np.asarray(translation)
    if np.any(camera[:, 2] < MIN_DEPTH_M):
        return None
    k = intrinsics.matrix
    u = k[0, 0] * camera[:, 0] / camera[:, 2] + k[0, 1] * camera[:, 1] / camera[:, 2] + k[0, 2]
    v = k[1, 1] * camera[:, 1] / camera[:, 2] + k[1, 2]
    return np.array([u.min(), v.min(), u.max(), v.max()])


def cut_by_border(box: np.ndarray, intrinsics: CameraIntrinsics, margin: float = BORDER_MARGIN_PX) -> bool:
    """Whether ``box`` (pixel edges) touches the image border within ``margin`` pixels."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    return x0 <= margin or y0 <= margin or x1 >= intrinsics.width - margin or y1 >= intrinsics.height - margin


def fit_translation(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray, box: np.ndarray,
                    intrinsics: CameraIntrinsics, iterations: int = ITERATIONS) -> np.ndarray | None:
    """The translation (3,) metres at which ``points`` (N, 3, object frame, true size) posed in
    ``rotation`` project onto ``box`` (x0 y0 x1 y1 pixel edges), starting from ``translation``; None
    for a box cut by the image border, a degenerate box, or a start behind the camera."""
    box = np.asarray(box, dtype=np.float64)
    t = np.asarray(translation, dtype=np.float64).copy()
    size_box = np.sqrt(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))
    if cut_by_border(box, intrinsics) or size_box < 1.0 or not np.all(np.isfinite(t)) or t[2] < MIN_DEPTH_M:
        return None
    k = intrinsics.matrix
    for _ in range(iterations):
        proj = projected_box(points, rotation, t, intrinsics)
        if proj is None:
            return None
        size_proj = np.sqrt((proj[2] - proj[0]) * (proj[3] - proj[1]))
        if size_proj <= 0.0:
            return None
        t = t * (size_proj / size_box)  # along the ray: projected size ~ 1 / distance
        proj = projected_box(points, rotation, t, intrinsics)
        if proj is None:
            return None
        du = (box[0] + box[2] - proj[0] - proj[2]) / 2.0
        dv = (box[1] + box[3] - proj[1] - proj[3]) / 2.0
        t[1] += dv * t[2] / k[1, 1]
        t[0] += (du - k[0, 1] * dv / k[1, 1]) * t[2] / k[0, 0]
    return t


class ModelPoints:
    """``shapes`` for :meth:`ResolutionPolicy.resolve`: called with a model id, the convex-hull
    vertices (what decides a projected box) of a library model's mesh; :meth:`mesh`, the mesh itself
    (for rendering its silhouette in the camera). Object frame, true size, metres; each loaded once
    per model (the same mesh object every time, so the renderer's per-mesh cache holds)."""

    def __init__(self, library) -> None:
        self.library = library
        self._points: dict[str, np.ndarray] = {}
        self._meshes: dict[str, trimesh.Trimesh] = {}

    def __call__(self, model_id: str) -> np.ndarray:
        points = self._points.get(model_id)
        if points is None:
            points = self._points[model_id] = np.asarray(self.mesh(model_id).convex_hull.vertices, dtype=np.float64)
        return points

    def shape_key(self, model_id: str) -> str:
        """The model's shape class, ``"<category>/<subtype>"`` (the crop viewpoint stage's shape head's classes)."""
        return self.library.get(model_id).shape_class

    def mesh(self, model_id: str) -> trimesh.Trimesh:
        """The model's mesh (do not modify it: it is shared)."""
        mesh = self._meshes.get(model_id)
        if mesh is None:
            mesh = self._meshes[model_id] = self.library.mesh(model_id)
        return mesh
