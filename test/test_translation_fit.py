"""Translation from the retrieved model's size: the fit recovers a known pose's translation."""

from __future__ import annotations

import numpy as np
import trimesh

from scene3d_ros.geometry import CameraIntrinsics, viewpoint_rotation
from scene3d_ros.retrieval.translation import cut_by_border, fit_translation, projected_box

CAMERA = CameraIntrinsics.from_fov(640, 480, 60.0)


def test_fit_recovers_the_translation_that_projects_onto_the_box() -> None:
    points = trimesh.creation.box(extents=(4.0, 1.8, 1.5)).vertices  # a car-sized box, metres
    rng = np.random.default_rng(0)
    for _ in range(20):
        rotation = viewpoint_rotation(rng.uniform(0, 360), rng.uniform(-10, 60), rng.uniform(-15, 15))
        truth = np.array([rng.uniform(-2, 2), rng.uniform(-1, 1), rng.uniform(12, 25)])
        box = projected_box(points, rotation, truth, CAMERA)
        if cut_by_border(box, CAMERA):
            continue
        start = truth * rng.uniform(0.7, 1.4) + np.array([rng.uniform(-1, 1), rng.uniform(-0.5, 0.5), 0.0])
        fitted = fit_translation(points, rotation, start, box, CAMERA)
        before = np.linalg.norm(start - truth) / np.linalg.norm(truth)
        after = np.linalg.norm(fitted - truth) / np.linalg.norm(truth)
        assert after < 0.02 and after < before, (before, after)


def test_boxes_cut_by_the_border_and_degenerate_input_are_left_alone() -> None:
    points = trimesh.creation.box(extents=(1.0, 1.0, 1.0)).vertices
    rotation = viewpoint_rotation(30, 10, 0)
    assert fit_translation(points, rotation, np.array([0, 0, 5.0]), np.array([0.0, 100, 50, 200]), CAMERA) is None
    assert fit_translation(points, rotation, np.array([0, 0, 5.0]), np.array([100.0, 100, 100.5, 100.5]), CAMERA) is None
    assert fit_translation(points, rotation, np.array([0, 0, -5.0]), np.array([100.0, 100, 200, 200]), CAMERA) is None
    assert fit_translation(points, rotation, np.array([np.nan, 0, 5.0]), np.array([100.0, 100, 200, 200]), CAMERA) is None
