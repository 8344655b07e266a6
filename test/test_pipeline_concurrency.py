"""Several threads calling one Pipeline at once (perception_node's inference_workers): each call's
objects equal those of the same frame run alone, with and without the crop viewpoint stage."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from tiny_model import save_tiny_checkpoint

from scene3d_ros import CATEGORIES
from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.pipeline import Pipeline

SIZES = [(160, 120), (200, 150), (128, 96), (240, 180)]  # frames of unequal cost overlap in every way


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("concurrency") / "tiny.pt")


@pytest.fixture(scope="module")
def viewpoint_stage(tmp_path_factory):
    from scene3d_ros.model.viewpoint import ViewpointModelConfig, ViewpointNet
    from scene3d_ros.model.viewpoint_checkpoint import save_viewpoint_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("concurrency_stage") / "viewpoint.pt"
    save_viewpoint_checkpoint(path, ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=16), len(CATEGORIES)),
                              CATEGORIES)
    return path


def _frames() -> list[tuple[np.ndarray, CameraIntrinsics]]:
    rng = np.random.default_rng(3)
    return [((rng.random((h, w, 3)) * 255).astype(np.uint8), CameraIntrinsics.from_fov(w, h, 60.0)) for w, h in SIZES]


def _summary(objects) -> list[tuple]:
    return [(o.category, o.score, o.box.tolist(), o.quaternion.tolist(), o.translation.tolist(), o.descriptor.tolist(),
             o.mask.tobytes(), None if o.hypotheses is None else o.hypotheses.tolist()) for o in objects]


@pytest.mark.parametrize("with_stage", [False, True], ids=["network", "network+stage"])
def test_concurrent_calls_give_each_frame_its_own_result(checkpoint, viewpoint_stage, with_stage):
    frames = _frames()
    pipeline = Pipeline(checkpoint, "cpu", score_threshold=0.0, num_threads=1,
                        viewpoint_checkpoint=viewpoint_stage if with_stage else "")
    expected = [_summary(pipeline(rgb, k)) for rgb, k in frames]  # one caller: the reference
    assert all(expected) and len({repr(e) for e in expected}) == len(frames)
    mismatches, errors, start = [], [], threading.Barrier(3)

    def worker(offset: int) -> None:
        try:
            start.wait(30)
            for step in range(12):
                i = (offset + step) % len(frames)
                if _summary(pipeline(*frames[i])) != expected[i]:
                    mismatches.append(i)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors
    assert not mismatches, f"frames {sorted(set(mismatches))} differ when other threads run the pipeline too"
