"""Pipeline on a CUDA device (skipped without one), with no ROS import, so that a lent GPU machine
whose Python has no ROS 2 runs it (scripts/gpu/check.sh): after ``close`` the GPU memory returns
to its baseline."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from tiny_model import save_tiny_checkpoint

from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.pipeline import Pipeline

WIDTH, HEIGHT = 160, 120
RGB = (np.random.default_rng(0).random((HEIGHT, WIDTH, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("pipeline_cuda") / "tiny.pt")


def _frame() -> tuple[np.ndarray, CameraIntrinsics]:
    return RGB, CameraIntrinsics.from_fov(WIDTH, HEIGHT, 60.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pipeline_close_returns_gpu_memory_to_the_baseline(checkpoint):
    """Allocated CUDA memory returns exactly to what it was before the Pipeline existed, and the
    caching allocator hands its blocks back (reserved memory no higher than before)."""
    device = torch.device("cuda")
    # cuBLAS/cuDNN keep per-process workspaces in the caching allocator once used: create them first
    warm = torch.nn.functional.conv2d(torch.ones(1, 3, 16, 16, device=device), torch.ones(4, 3, 3, 3, device=device))
    warm = warm.flatten(1) @ warm.flatten(1).T
    del warm
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()

    pipeline = Pipeline(checkpoint, "cuda", score_threshold=0.0)
    objects = pipeline(*_frame())
    assert objects and all(np.isfinite(o.translation).all() for o in objects)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() > allocated  # the network lived on the GPU
    pipeline.close()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == allocated
    assert torch.cuda.memory_reserved() <= reserved
