"""The horizontal mirror of a scene: flipped image, annotations and poses.

Flipping an image left <-> right shows the mirror image of the scene: every point of the camera
optical frame (x right, y down, z forward) maps by ``MIRROR_CAMERA = diag(-1, 1, 1)``. An object
that is its own mirror image across its x-z plane (front-up; ``MIRROR_OBJECT = diag(1, -1, 1)``
maps it onto itself, as for the procedural models built from left/right twin parts) then appears
as the same object in the pose

    R' = MIRROR_CAMERA @ R @ MIRROR_OBJECT   (a proper rotation: both mirrors flip handedness)
    t' = MIRROR_CAMERA @ t

seen by the camera with the principal point ``cx' = W - cx`` (``CameraIntrinsics``' convention:
pixel u spans [u, u + 1), so column u moves to W - 1 - u and continuous x to W - x). Box edges
map the same way: ``x0' = W - x1``, ``x1' = W - x0``. Rotations are re-canonicalised modulo the
object's symmetry about its up axis (the mirror keeps the symmetry orbit).

:func:`mirror_target` flips a synthetic dataset item (training augmentation);
:func:`mirror_asymmetry` measures how far a mesh is from its own mirror image (a bicycle's chain
side, an L-shaped sofa), so augmentation can leave such objects alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from scene3d_ros.geometry import canonicalize_rotation, matrix_to_quaternion, quaternion_to_matrix

MIRROR_CAMERA = np.diag([-1.0, 1.0, 1.0])
"""Optical-frame points of the mirrored image: x -> -x."""
MIRROR_OBJECT = np.diag([1.0, -1.0, 1.0])
"""Object-frame mirror across the x-z (front-up) plane: left <-> right."""

MIRROR_SYMMETRY_TOLERANCE = 2.0
"""Largest :func:`mirror_asymmetry` of a mesh treated as its own mirror image."""


def mirror_rotations(rotations: np.ndarray, symmetries: list[str] | None = None) -> np.ndarray:
    """Object -> camera rotations ``(N, 3, 3)`` of the objects in the mirrored image, each
    canonicalised modulo ``symmetries[i]`` (default ``"none"``)."""
    rotations = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    mirrored = MIRROR_CAMERA @ rotations @ MIRROR_OBJECT
    if symmetries is None:
        return mirrored
    if len(symmetries) != len(mirrored):
        raise ValueError(f"need one symmetry per rotation, got {len(symmetries)} for {len(mirrored)}")
    return np.stack([canonicalize_rotation(r, s) for r, s in zip(mirrored, symmetries, strict=True)]) if len(mirrored) \
        else mirrored


def mirror_quaternions(quaternions: np.ndarray, symmetries: list[str] | None = None) -> np.ndarray:
    """(w, x, y, z) quaternions ``(N, 4)`` (w >= 0) of :func:`mirror_rotations`."""
    quaternions = np.asarray(quaternions, dtype=np.float64).reshape(-1, 4)
    if len(quaternions) == 0:
        return quaternions.copy()
    return matrix_to_quaternion(mirror_rotations(quaternion_to_matrix(quaternions), symmetries))


def mirror_translations(translations: np.ndarray) -> np.ndarray:
    """Optical-frame positions ``(N, 3)`` (metres) in the mirrored image."""
    return np.asarray(translations, dtype=np.float64).reshape(-1, 3) @ MIRROR_CAMERA


def mirror_intrinsics(k: np.ndarray, width: int) -> np.ndarray:
    """Camera matrix ``(3, 3)`` of an image ``width`` pixels wide after the flip (``cx -> W - cx``)."""
    k = np.array(k, dtype=np.float64).reshape(3, 3)
    k[0, 2] = float(width) - k[0, 2]
    return k


def mirror_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """Boxes ``(N, 4)`` x0 y0 x1 y1 (pixel edges) after the flip of an image ``width`` pixels wide."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)


def mirror_target(image: Any, target: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Flip a synthetic dataset item (image float ``(3, H, W)`` tensor, target of
    :class:`~scene3d_ros.data.synthetic_dataset.SyntheticSceneDataset`): image, ``masks``,
    ``boxes``, ``K``, ``quaternions`` and ``translations`` (``depth`` too when present); the
    other entries are unchanged. Right only for objects that are their own mirror image."""
    import torch

    width = int(image.shape[-1])
    out = dict(target)
    symmetries = list(target.get("symmetries") or ["none"] * len(target["labels"]))
    out["boxes"] = torch.as_tensor(mirror_boxes(target["boxes"].numpy(), width), dtype=target["boxes"].dtype)
    out["K"] = torch.as_tensor(mirror_intrinsics(target["K"].numpy(), width), dtype=target["K"].dtype)
    out["quaternions"] = torch.as_tensor(mirror_quaternions(target["quaternions"].numpy(), symmetries),
                                         dtype=target["quaternions"].dtype).reshape(-1, 4)
    out["translations"] = torch.as_tensor(mirror_translations(target["translations"].numpy()),
                                          dtype=target["translations"].dtype)
    out["masks"] = torch.flip(target["masks"], dims=[-1])
    if "depth" in target:
        out["depth"] = torch.flip(target["depth"], dims=[-1])
    return torch.flip(image, dims=[-1]), out


def self_map_asymmetry(mesh: trimesh.Trimesh, linear_map: np.ndarray, samples: int = 4000) -> float:
    """How far ``mesh`` is from its own image under ``linear_map`` (3, 3), an orthogonal map of its
    object frame about the origin (a mirror or a rotation): the 99th percentile of the distances
    from mapped surface samples to the surface samples, over the same percentile between two
    independent sample sets of the mesh itself (sampling noise). About 1 when the map takes the
    mesh onto itself; compare with :data:`MIRROR_SYMMETRY_TOLERANCE`. Deterministic."""
    linear_map = np.asarray(linear_map, dtype=np.float64)
    if linear_map.shape != (3, 3) or not np.allclose(linear_map @ linear_map.T, np.eye(3), atol=1e-9):
        raise ValueError(f"linear_map must be an orthogonal 3x3 matrix, got {linear_map.tolist()}")
    if int(samples) < 2:
        raise ValueError(f"need at least 2 surface samples, got {samples}")
    points, _ = trimesh.sample.sample_surface(mesh, int(samples), seed=0)
    others, _ = trimesh.sample.sample_surface(mesh, int(samples), seed=1)
    tree = cKDTree(points)
    noise = np.percentile(tree.query(others)[0], 99)
    mapped = np.percentile(tree.query(others @ linear_map.T)[0], 99)
    return float(mapped / max(noise, 1e-12))


def mirror_asymmetry(mesh: trimesh.Trimesh, samples: int = 4000) -> float:
    """How far ``mesh`` is from its mirror image across its x-z plane (:func:`self_map_asymmetry`
    of ``MIRROR_OBJECT``). About 1 for a mirror-symmetric mesh; 3-10 for a bicycle with its chain
    on one side or an L-shaped sofa. Deterministic."""
    return self_map_asymmetry(mesh, MIRROR_OBJECT, samples)
