"""Geometric agreement between a retrieved CAD model and the true one: Chamfer-L1 and F-score@tau.

Both meshes are compared in the object frame (+x front, +y left, +z up, origin at the bounding-box
centre), each at its own true size in metres: the retrieved model as the nodes publish it (its
mesh at scale 1, ``bbox.size`` = its extents), the true model as it stood in the scene. Each mesh
is represented by :data:`SURFACE_SAMPLES` points sampled uniformly on its surface (area-weighted,
``trimesh.sample.sample_surface``, a fixed seed per model), and nearest neighbours come from a
``scipy.spatial.cKDTree``, in the style of Mesh R-CNN / Pix3D and Occupancy Networks:

* **Chamfer-L1** (metres): the mean of the two directed mean nearest-neighbour distances
  (Euclidean, not squared): ``(mean_a min_b |a - b| + mean_b min_a |a - b|) / 2``;
* **F-score@tau**: the harmonic mean of precision (share of retrieved-surface points within
  ``tau`` of the true surface) and recall (share of true-surface points within ``tau`` of the
  retrieved one), ``tau`` = :data:`FSCORE_TAU_REL` times the true model's longest extent (Mesh
  R-CNN's 0.3 at a longest edge of 10); 1 for identical shapes.

The library's two instances of a sub-type, near twins, score close to 0 / 1; another sub-type of
the category scores visibly worse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.spatial import cKDTree

SURFACE_SAMPLES = 4096
"""Points sampled on each mesh surface."""
FSCORE_TAU_REL = 0.03
"""F-score distance threshold as a share of the true model's longest extent."""
SAMPLE_SEED = 0
"""Seed of every mesh's surface sampling: a model's points are the same in every run."""


@dataclass(frozen=True)
class ShapeAgreement:
    """Chamfer-L1 (metres) and F-score@tau in [0, 1] between a retrieved and a true model, and
    ``tau`` (metres)."""

    chamfer_l1_m: float
    fscore: float
    tau_m: float


def surface_points(mesh: trimesh.Trimesh, count: int = SURFACE_SAMPLES, seed: int = SAMPLE_SEED) -> np.ndarray:
    """``(count, 3)`` points (the mesh's units, its frame) sampled uniformly on ``mesh``'s surface."""
    if len(mesh.faces) == 0 or not mesh.area > 0.0:
        raise ValueError("cannot sample the surface of a mesh without area")
    points, _ = trimesh.sample.sample_surface(mesh, int(count), seed=seed)
    return np.asarray(points, dtype=np.float64)


def shape_agreement(retrieved: np.ndarray, true: np.ndarray, tau_m: float) -> ShapeAgreement:
    """Chamfer-L1 and F-score@``tau_m`` (module doc) of surface point sets ``(N, 3)`` and ``(M, 3)`` (metres)."""
    if not tau_m > 0.0:
        raise ValueError(f"tau must be > 0 metres, got {tau_m}")
    to_true, _ = cKDTree(true).query(retrieved)
    to_retrieved, _ = cKDTree(retrieved).query(true)
    precision, recall = float(np.mean(to_true <= tau_m)), float(np.mean(to_retrieved <= tau_m))
    fscore = 0.0 if precision + recall == 0.0 else 2.0 * precision * recall / (precision + recall)
    return ShapeAgreement(0.5 * (float(np.mean(to_true)) + float(np.mean(to_retrieved))), fscore, float(tau_m))


class MeshComparison:
    """:class:`ShapeAgreement` between models of one CAD library by id, with each model's surface
    samples and each pair's result cached (an evaluation compares the same few pairs many times)."""

    def __init__(self, library, samples: int = SURFACE_SAMPLES) -> None:
        self.library = library
        self.samples = int(samples)
        self._points: dict[str, np.ndarray] = {}
        self._pairs: dict[tuple[str, str], ShapeAgreement] = {}

    def points(self, model_id: str) -> np.ndarray:
        """The model's surface samples (metres, object frame)."""
        if model_id not in self._points:
            self._points[model_id] = surface_points(self.library.mesh(model_id), self.samples)
        return self._points[model_id]

    def compare(self, retrieved_id: str, true_id: str) -> ShapeAgreement:
        """The agreement of model ``retrieved_id`` with model ``true_id`` (tau from the true model's extents)."""
        key = (retrieved_id, true_id)
        if key not in self._pairs:
            tau = FSCORE_TAU_REL * float(np.max(self.library.get(true_id).extents))
            self._pairs[key] = shape_agreement(self.points(retrieved_id), self.points(true_id), tau)
        return self._pairs[key]
