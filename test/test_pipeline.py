"""The ROS-free pipeline and the demo's prediction path, on a tiny untrained network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_model import TINY_MODEL, save_tiny_checkpoint

from scene3d_ros import CATEGORIES
from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.pipeline import Pipeline
from scene3d_ros.world.annotations import generate_annotated_scene
from scene3d_ros.world.cad_library import ensure_cad_library
from scene3d_ros.world.renderer import Renderer
from scene3d_ros.world.scene_sampler import SceneConfig

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("pipeline") / "tiny.pt")


@pytest.fixture(scope="module")
def frame():
    library = ensure_cad_library(progress=False)
    return generate_annotated_scene(np.random.default_rng(1), library, SceneConfig(image_sizes=((160, 120),)),
                                    Renderer())


def test_pipeline_returns_posed_objects_in_the_optical_frame(checkpoint, frame):
    pipeline = Pipeline(checkpoint, "cpu", score_threshold=0.0)
    objects = pipeline(frame.rendered.rgb, frame.scene.intrinsics)
    assert 1 <= len(objects) <= TINY_MODEL["detector"]["box_detections_per_img"]
    scores = [o.score for o in objects]
    assert scores == sorted(scores, reverse=True)
    for obj in objects:
        assert obj.category == CATEGORIES[obj.label - 1]
        assert obj.quaternion[0] >= 0 and abs(np.linalg.norm(obj.quaternion) - 1) < 1e-5
        assert np.all(np.isfinite(obj.translation)) and obj.translation[2] > 0
        assert obj.mask.shape == (120, 160) and obj.mask.dtype == bool
        assert np.all(obj.size > 0) and obj.descriptor.shape == (TINY_MODEL["descriptor"]["dim"],)
    # the threshold filters
    assert Pipeline(checkpoint, "cpu", score_threshold=1.01)(frame.rendered.rgb, frame.scene.intrinsics) == []


def test_pipeline_rejects_inconsistent_input(checkpoint, frame):
    pipeline = Pipeline(checkpoint, "cpu")
    with pytest.raises(ValueError, match="intrinsics are for"):
        pipeline(frame.rendered.rgb, CameraIntrinsics(100, 100, 50, 50, 100, 100))
    with pytest.raises(ValueError, match="uint8 RGB"):
        pipeline(frame.rendered.rgb.astype(np.float32), frame.scene.intrinsics)
