"""The fast CPU path (scene3d_ros.model.fast_path): folded batch norms compute what the unfolded
ones did, and Pipeline with it gives the shipped model's outputs without it (same detections,
rotations within 1 deg)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from scene3d_ros.evaluation.metrics import rotation_errors_deg
from scene3d_ros.model.fast_path import apply_fast_path, fold_batch_norms
from scene3d_ros.pipeline import Pipeline
from scene3d_ros.world.annotations import generate_annotated_scene
from scene3d_ros.world.cad_library import ensure_cad_library
from scene3d_ros.world.renderer import Renderer
from scene3d_ros.world.scene_sampler import SceneConfig

torch.set_num_threads(2)


def _random_statistics(norm: nn.Module, generator: torch.Generator) -> nn.Module:
    c = norm.running_mean.shape[0]
    with torch.no_grad():
        norm.running_mean.copy_(torch.randn(c, generator=generator))
        norm.running_var.copy_(torch.rand(c, generator=generator) + 0.1)
        norm.weight.copy_(torch.randn(c, generator=generator))
        norm.bias.copy_(torch.randn(c, generator=generator))
    return norm


def test_folded_batch_norms_compute_the_same_as_before():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), _random_statistics(FrozenBatchNorm2d(8), g), nn.ReLU6()),
        nn.Sequential(nn.Conv2d(8, 8, 3, groups=8), _random_statistics(nn.BatchNorm2d(8), g)),  # depthwise, with bias
        _random_statistics(nn.BatchNorm2d(8), g),  # after a batch norm, not a convolution: stays
    ).eval()
    x = torch.randn(2, 3, 12, 12, generator=g)
    before = model(x)
    assert fold_batch_norms(model) == 2
    assert isinstance(model[0][1], nn.Identity) and isinstance(model[1][1], nn.Identity)
    assert isinstance(model[2], nn.BatchNorm2d) and model[0][0].bias is not None
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)
    assert fold_batch_norms(model) == 0  # nothing left to fold


def test_fold_refuses_training_mode_and_leaves_unordered_containers_alone():
    with pytest.raises(ValueError, match="training mode"):
        fold_batch_norms(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train())

    class NotSequential(nn.Module):  # registration order need not be the order things run in
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm = nn.Conv2d(3, 4, 1), FrozenBatchNorm2d(4)

    module = NotSequential()
    assert fold_batch_norms(module) == 0 and isinstance(module.norm, FrozenBatchNorm2d)
    with pytest.raises(ValueError, match="inference"):
        apply_fast_path(nn.Sequential(nn.Conv2d(3, 4, 1)).train())


@pytest.fixture(scope="module")
def frames():
    library, renderer = ensure_cad_library(progress=False), Renderer()
    rng = np.random.default_rng(7)
    config = SceneConfig(image_sizes=((640, 480),), num_objects_range=(5, 5))
    return [generate_annotated_scene(rng, library, config, renderer) for _ in range(2)]


def test_pipeline_fast_path_gives_the_shipped_models_outputs(frames):
    slow = Pipeline(None, "cpu", 0.5, max_detections=20, fast_path=False)
    fast = Pipeline(None, "cpu", 0.5, max_detections=20)
    assert fast.fast_path_applied and not slow.fast_path_applied and fast.viewpoint_stage is not None
    folded_norms = [m for m in fast.model.backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert folded_norms == [] and [m for m in slow.model.backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert not [m for m in fast.viewpoint_stage.model.modules() if isinstance(m, nn.BatchNorm2d)]
    conv = next(m for m in fast.model.backbone.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    compared = 0
    for frame in frames:
        reference = slow(frame.rendered.rgb, frame.scene.intrinsics)
        objects = fast(frame.rendered.rgb, frame.scene.intrinsics)
        assert [o.category for o in objects] == [o.category for o in reference]
        for a, b in zip(objects, reference, strict=True):
            np.testing.assert_allclose(a.box, b.box, atol=0.05)
            assert abs(a.score - b.score) < 1e-3
            assert rotation_errors_deg(a.quaternion, b.quaternion)[0] < 1.0  # the published rotation
            assert rotation_errors_deg(a.network_quaternion, b.network_quaternion)[0] < 1.0
            np.testing.assert_allclose(a.translation, b.translation, atol=1e-3)
            np.testing.assert_allclose(a.hypothesis_scores, b.hypothesis_scores, atol=1e-3)
            np.testing.assert_allclose(a.descriptor, b.descriptor, atol=1e-3)
            assert np.mean(a.mask != b.mask) < 1e-3
            compared += 1
    assert compared >= 4  # the shipped model finds most of the 2 x 5 objects
