"""The ROS-free pipeline and the demo's prediction path, on a tiny untrained network."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from tiny_model import TINY_MODEL, save_tiny_checkpoint

from scene3d_ros import CATEGORIES, MASK_THRESHOLD
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


def test_mask_threshold_decides_the_object_pixels(checkpoint, frame):
    pipeline = Pipeline(checkpoint, "cpu", score_threshold=0.0)
    assert pipeline.mask_threshold == MASK_THRESHOLD
    low = pipeline(frame.rendered.rgb, frame.scene.intrinsics)
    pipeline.mask_threshold = 0.6  # settable at run time
    high = pipeline(frame.rendered.rgb, frame.scene.intrinsics)
    assert [o.score for o in low] == [o.score for o in high]
    for a, b in zip(low, high, strict=True):
        assert not np.any(b.mask & ~a.mask)  # a higher threshold only removes pixels
    assert sum(int(a.mask.sum()) for a in low) > sum(int(b.mask.sum()) for b in high)
    with pytest.raises(ValueError, match="mask_threshold"):
        Pipeline(checkpoint, "cpu", mask_threshold=1.0)


def test_num_threads_applies_to_the_thread_that_runs_the_network(checkpoint, frame):
    """num_threads is torch's intra-op thread count on whichever thread calls the pipeline (the
    node's inference thread), seen by the network itself; 0 leaves torch's default."""
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    seen = {}
    try:
        pipeline = Pipeline(checkpoint, "cpu", score_threshold=0.0, num_threads=wanted)

        def record_network_threads(*_) -> None:
            seen["network"] = torch.get_num_threads()

        pipeline.model.register_forward_pre_hook(record_network_threads)
        torch.set_num_threads(before)  # new threads start from the process default again

        def infer():
            seen["before"] = torch.get_num_threads()
            pipeline(frame.rendered.rgb, frame.scene.intrinsics)
            seen["reported"] = pipeline.intra_op_threads

        worker = threading.Thread(target=infer)
        worker.start()
        worker.join()
    finally:
        torch.set_num_threads(before)
    assert seen == {"before": before, "network": wanted, "reported": wanted}
    default = Pipeline(checkpoint, "cpu", num_threads=0)
    default(frame.rendered.rgb, frame.scene.intrinsics)
    assert default.intra_op_threads == torch.get_num_threads() == before
    with pytest.raises(ValueError, match="num_threads must be >= 0.*-1"):
        Pipeline(checkpoint, "cpu", num_threads=-1)


def test_pipeline_rejects_inconsistent_input(checkpoint, frame):
    pipeline = Pipeline(checkpoint, "cpu")
    with pytest.raises(ValueError, match="intrinsics are for"):
        pipeline(frame.rendered.rgb, CameraIntrinsics(100, 100, 50, 50, 100, 100))
    with pytest.raises(ValueError, match="uint8 RGB"):
        pipeline(frame.rendered.rgb.astype(np.float32), frame.scene.intrinsics)


def test_thresholds_move_into_the_network_without_changing_the_kept_objects():
    """The heads and mask pasting run only on detections the pipeline keeps (the speed-up), with
    the same result as running on all and filtering afterwards (shipped model, distinct scores)."""
    library = ensure_cad_library(progress=False)
    scene = generate_annotated_scene(np.random.default_rng(3), library, SceneConfig(image_sizes=((320, 240),),
                                     num_objects_range=(3, 4)), Renderer())
    rgb, intrinsics = scene.rendered.rgb, scene.scene.intrinsics
    pipeline = Pipeline(None, "cpu", score_threshold=0.0)
    everything = pipeline(rgb, intrinsics)
    assert len(everything) >= 3 and everything[1].score > everything[2].score
    threshold = everything[2].score  # inclusive: keeps the first three
    pipeline.score_threshold, pipeline.max_detections = threshold, 2
    assert pipeline.model.roi_heads.score_thresh < threshold and pipeline.model.roi_heads.detections_per_img == 2
    kept = pipeline(rgb, intrinsics)
    assert len(kept) == 2
    pipeline.max_detections = 1000  # beyond the network's own limit: the network keeps its limit
    assert pipeline.model.roi_heads.detections_per_img == pipeline.model.config.detector.box_detections_per_img
    kept += pipeline(rgb, intrinsics)[2:]
    assert len(kept) == 3
    for ours, reference in zip(kept, everything[:3], strict=True):
        assert ours.category == reference.category and ours.score == pytest.approx(reference.score, abs=1e-6)
        np.testing.assert_allclose(ours.box, reference.box, atol=1e-3)
        np.testing.assert_allclose(ours.quaternion, reference.quaternion, atol=1e-4)
        np.testing.assert_allclose(ours.translation, reference.translation, atol=1e-4)
        np.testing.assert_allclose(ours.descriptor, reference.descriptor, atol=1e-4)
        assert np.mean(ours.mask != reference.mask) < 1e-3


def test_retrieval_with_the_silhouette_check_fits_the_model_to_the_mask(checkpoint, frame, tmp_path):
    from tiny_model import build_tiny_shape_db

    from scene3d_ros.model.rotations import allocentric_to_egocentric, egocentric_to_allocentric
    from scene3d_ros.retrieval import ObjectQuery, ResolutionPolicy, ShapeDatabase
    from scene3d_ros.retrieval.translation import ModelPoints

    models = sorted({m.model_id for m in ensure_cad_library(progress=False).models})
    db = ShapeDatabase.load(build_tiny_shape_db(tmp_path / "db.pt", checkpoint, models))
    silhouette_only = ResolutionPolicy(silhouette_weight=1e6, silhouette_angle_weight=0.0)
    # network 1's rotation as the one hypothesis (the shipped crop viewpoint stage is left out)
    checked = Pipeline(checkpoint, "cpu", score_threshold=0.0, shape_db=db, policy=silhouette_only,
                       viewpoint_checkpoint="")
    plain = Pipeline(checkpoint, "cpu", score_threshold=0.0, shape_db=db, policy=ResolutionPolicy(silhouette_check=False),
                     viewpoint_checkpoint="")
    with_check = checked(frame.rendered.rgb, frame.scene.intrinsics)
    without = plain(frame.rendered.rgb, frame.scene.intrinsics)
    assert with_check and len(with_check) == len(without)
    for a, b in zip(with_check, without, strict=True):
        assert a.box_mask.shape == (28, 28) and 0.0 <= a.box_mask.min() and a.box_mask.max() <= 1.0
        assert 0.0 <= a.confidence <= 1.0 and b.confidence is None
        # no check: the network's rotation, relative to the viewing ray of the final (fitted) translation
        net_allo = egocentric_to_allocentric(torch.tensor(b.quaternion)[None], torch.tensor(b.translation)[None])
        expected = allocentric_to_egocentric(net_allo, torch.tensor(b.model_translation)[None])[0].numpy()
        np.testing.assert_allclose(b.model_quaternion, expected, atol=1e-5)
        for obj in (a, b):
            assert obj.model_id is not None and obj.model_quaternion[0] >= 0
            assert abs(np.linalg.norm(obj.model_quaternion) - 1.0) < 1e-6
    # the pipeline publishes what the policy resolves; with an overwhelming silhouette weight the
    # check picks, among its candidates, the view whose silhouette overlaps the mask most: at least
    # as much as the descriptor-only choice
    queries = [ObjectQuery.from_egocentric(o.category, o.descriptor, o.quaternion, o.translation, mask=o.box_mask,
                                           intrinsics=frame.scene.intrinsics, box=o.box) for o in with_check]
    shapes = ModelPoints(checked.library)
    results = silhouette_only.resolve(db, queries, shapes=shapes)
    plain_views = silhouette_only.replace(silhouette_weight=0.0).resolve(db, queries, shapes=shapes)
    assert [r.model_id for r in results] == [o.model_id for o in with_check]
    for r, o in zip(results, with_check, strict=True):
        np.testing.assert_allclose(r.quaternion, o.model_quaternion, atol=1e-9)
        np.testing.assert_allclose(r.translation, o.model_translation, atol=1e-9)
    assert all(r.silhouette_iou >= p.silhouette_iou - 1e-6 for r, p in zip(results, plain_views, strict=True))


def test_viewpoint_stage_gives_each_object_sorted_hypotheses(checkpoint, frame, tmp_path):
    """With a crop viewpoint stage the published rotation is its best hypothesis; network 1's stays."""
    from scene3d_ros.geometry import quaternion_to_matrix, symmetric_rotation_error_deg
    from scene3d_ros.model.viewpoint import ViewpointModelConfig, ViewpointNet
    from scene3d_ros.model.viewpoint_checkpoint import save_viewpoint_checkpoint

    torch.manual_seed(0)
    stage = ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=32), len(CATEGORIES))
    path = tmp_path / "viewpoint.pt"
    save_viewpoint_checkpoint(path, stage, CATEGORIES)
    without = Pipeline(checkpoint, "cpu", score_threshold=0.0, viewpoint_checkpoint="")
    with_stage = Pipeline(checkpoint, "cpu", score_threshold=0.0, viewpoint_checkpoint=path, viewpoint_k=3)
    plain = without(frame.rendered.rgb, frame.scene.intrinsics)
    objects = with_stage(frame.rendered.rgb, frame.scene.intrinsics)
    assert len(objects) == len(plain) >= 1
    assert all(o.hypotheses is None and np.array_equal(o.network_quaternion, o.quaternion) for o in plain)
    for a, b in zip(plain, objects, strict=True):
        np.testing.assert_allclose(b.network_quaternion, a.quaternion)  # network 1's rotation is kept
        assert b.hypotheses.shape == (3, 4) and b.hypothesis_scores.shape == (3,)
        assert np.all(np.diff(b.hypothesis_scores) <= 0) and np.all(b.hypothesis_scores > 0)
        np.testing.assert_allclose(b.quaternion, b.hypotheses[0])
        rotations = quaternion_to_matrix(b.hypotheses)
        assert symmetric_rotation_error_deg(rotations[0], rotations[1]) > 1.0  # distinct hypotheses


def test_a_stage_with_a_mask_head_gives_the_policy_its_masks(checkpoint, frame, tmp_path):
    """With a mask head, each object's ``box_mask`` (what the policy and the box_masks topic get)
    is the stage's mask over the box, not network 1's; ``mask`` (full image) stays network 1's."""
    from scene3d_ros.model.viewpoint import ViewpointModelConfig, ViewpointNet, ViewpointStage
    from scene3d_ros.model.viewpoint_checkpoint import save_viewpoint_checkpoint

    torch.manual_seed(1)
    path = tmp_path / "viewpoint_mask.pt"
    save_viewpoint_checkpoint(path, ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=32, mask_size=16),
                                                 len(CATEGORIES)), CATEGORIES)
    without = Pipeline(checkpoint, "cpu", score_threshold=0.0, viewpoint_checkpoint="")
    masked = Pipeline(checkpoint, "cpu", score_threshold=0.0, viewpoint_checkpoint=path, viewpoint_k=2)
    plain = without(frame.rendered.rgb, frame.scene.intrinsics)
    objects = masked(frame.rendered.rgb, frame.scene.intrinsics)
    assert len(objects) == len(plain) >= 1
    image = torch.from_numpy(frame.rendered.rgb).permute(2, 0, 1).float().div(255.0)
    boxes = torch.as_tensor(np.stack([o.box for o in objects]), dtype=torch.float32)
    stage = ViewpointStage(masked.viewpoint_stage.model, CATEGORIES, 2, {})
    expected = stage.predict(image, boxes, torch.tensor([o.label for o in objects]),
                             torch.as_tensor(frame.scene.intrinsics.matrix, dtype=torch.float32))
    for a, b, e in zip(plain, objects, expected, strict=True):
        assert b.box_mask.shape == a.box_mask.shape == (28, 28)
        np.testing.assert_allclose(b.box_mask, e.box_mask, atol=1e-5)
        assert not np.allclose(b.box_mask, a.box_mask, atol=1e-3)
        np.testing.assert_array_equal(b.mask, a.mask)
