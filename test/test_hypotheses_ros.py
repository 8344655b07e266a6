"""The crop viewpoint stage's rotation hypotheses over real DDS: perception_node publishes all k per
object on ``hypotheses``, retrieval_node joins them and resolves each object with all k, so its
``objects`` equal what the in-process Pipeline returns on the same image (same checkpoints, shape
database and policy); without the stage nothing publishes hypotheses and retrieval_node still answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ros_harness import NodeProcess, perception_process, ros_test_node, spin_until
from sensor_msgs.msg import CameraInfo, Image
from tiny_model import build_tiny_shape_db, save_tiny_checkpoint
from vision_msgs.msg import Detection3DArray

from scene3d_ros import CATEGORIES
from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.model.viewpoint import ViewpointModelConfig, ViewpointNet
from scene3d_ros.model.viewpoint_checkpoint import save_viewpoint_checkpoint
from scene3d_ros.pipeline import Pipeline
from scene3d_ros.retrieval import ObjectQuery, ResolutionPolicy, ShapeDatabase
from scene3d_ros.ros.conversions import camera_info_msg, header, rgb8_image_msg, stamp_to_ns
from scene3d_ros.ros.wire_formats import hypotheses_from_msg

FRAME = "cam_optical"
K = 3  # hypotheses per object
# the tiny untrained network sees boats in the test image; a car model too, so the search has choices
MODELS = ["boat_canoe_01", "boat_catamaran_01", "car_sedan_01"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny network, a random-weights crop viewpoint stage, a shape database built with the
    network, and the test image with its camera."""
    root = tmp_path_factory.mktemp("hypotheses")
    checkpoint = save_tiny_checkpoint(root / "tiny.pt")
    torch.manual_seed(0)
    stage = root / "viewpoint.pt"
    save_viewpoint_checkpoint(stage, ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=16), len(CATEGORIES)),
                              CATEGORIES)
    db_path = build_tiny_shape_db(root / "shape_db.pt", checkpoint, MODELS)
    rgb = (np.random.default_rng(1).random((120, 160, 3)) * 255).astype(np.uint8)
    return checkpoint, stage, db_path, rgb, CameraIntrinsics.from_fov(160, 120, 60)


def _rotations(objects: Detection3DArray) -> np.ndarray:
    return np.array([[o.w, o.x, o.y, o.z] for o in (d.results[0].pose.pose.orientation for d in objects.detections)])


def test_retrieval_node_resolves_with_all_hypotheses_like_the_pipeline_and_answers_without_the_stage(setup, tmp_path):
    checkpoint, stage, db_path, rgb, intrinsics = setup
    with ros_test_node("hypotheses_feeder") as node:
        got = {"objects": {}, "hypotheses": {}, "3d": {}}
        subscriptions = {kind: node.create_subscription(
            msg_type, topic, lambda m, kind=kind: got[kind].__setitem__(stamp_to_ns(m.header.stamp), m), 10)
            for kind, msg_type, topic in (("objects", Detection3DArray, "objects"),
                                          ("hypotheses", Image, "hypotheses"), ("3d", Detection3DArray, "detections_3d"))}
        image_pub = node.create_publisher(Image, "image", 10)
        info_pub = node.create_publisher(CameraInfo, "camera_info", 10)
        retrieval = NodeProcess("scene3d_ros.ros.retrieval_node", tmp_path,
                                ["-p", f"shape_db:={db_path}", "-p", f"model_path:={checkpoint}"])
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable", "-p",
                                        f"viewpoint_model_path:={stage}", "-p", f"viewpoint_hypotheses:={K}")
        plain = None
        try:
            def ready(perception_node: NodeProcess) -> bool:
                return ("serving" in perception_node.log() and subscriptions["objects"].get_publisher_count() > 0
                        and image_pub.get_subscription_count() > 0 and info_pub.get_subscription_count() > 0)

            def send(stamp: int) -> None:
                info_pub.publish(camera_info_msg(intrinsics, header(stamp, FRAME)))
                image_pub.publish(rgb8_image_msg(rgb, header(stamp, FRAME)))

            def answer(first: int, processes: list[NodeProcess]) -> int:
                """Send the image with stamps first, first + 1, ... until retrieval_node answers one
                (DDS matches the nodes with each other in their own time; a frame published before
                that is lost), then once more: the stamp of that last, fully connected frame."""
                stamp = first
                while not any(s in got["objects"] for s in range(first, stamp)):
                    assert stamp < first + 40, ({k: list(v) for k, v in got.items()},
                                                *(p.log()[-3000:] for p in processes))
                    send(stamp)
                    spin_until(node, lambda s=stamp: s in got["objects"], 3.0, processes)
                    stamp += 1
                send(stamp)
                assert spin_until(node, lambda: stamp in got["objects"], 60.0, processes), \
                    ({k: list(v) for k, v in got.items()}, *(p.log()[-3000:] for p in processes))
                return stamp

            assert spin_until(node, lambda: ready(perception) and node.count_publishers("hypotheses") == 1, 120.0,
                              [perception, retrieval]), perception.log()[-3000:] + retrieval.log()[-3000:]
            with_stage = answer(1_000, [perception, retrieval])
            # the same graph without the stage: no hypotheses publisher, and the retrieval node,
            # which has seen hypotheses before, does not wait for them
            assert perception.stop() in (0, -2), perception.log()[-3000:]
            plain = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable", "-p",
                                       "viewpoint_model_path:=none", name="perception_plain")
            assert spin_until(node, lambda: ready(plain) and node.count_publishers("hypotheses") == 0, 120.0,
                              [plain, retrieval]), plain.log()[-3000:] + retrieval.log()[-3000:]
            without_stage = answer(2_000, [plain, retrieval])
        finally:
            for process in (perception, plain, retrieval):
                if process is not None:
                    process.stop()
    log = retrieval.log()
    assert "rotation hypotheses joined while published" in log and "Traceback" not in log, log[-3000:]
    assert with_stage in got["hypotheses"] and not any(s >= 2_000 for s in got["hypotheses"])

    db = ShapeDatabase.load(db_path)
    policy = ResolutionPolicy()  # the node's defaults: the silhouette check on
    expected = Pipeline(checkpoint, "cpu", score_threshold=0.0, viewpoint_checkpoint=stage, viewpoint_k=K,
                        shape_db=db, policy=policy)(rgb, intrinsics)
    objects = got["objects"][with_stage]
    assert len(objects.detections) == len(expected) >= 1
    # the hypotheses topic: all k per object, in detection order, the first one detections_3d's rotation
    quaternions, probabilities = hypotheses_from_msg(got["hypotheses"][with_stage], len(expected))
    assert quaternions.shape == (len(expected), K, 4)
    np.testing.assert_allclose(quaternions, np.array([o.hypotheses for o in expected]), atol=1e-6)
    np.testing.assert_allclose(probabilities, np.array([o.hypothesis_scores for o in expected]), rtol=1e-6)
    np.testing.assert_allclose(_rotations(got["3d"][with_stage]), quaternions[:, 0], atol=1e-6)
    # objects: the Pipeline's final rotation, model and confidence (masks ride as 255 levels)
    records = [json.loads(d.id) for d in objects.detections]
    assert [r["model_id"] for r in records] == [o.model_id for o in expected]
    np.testing.assert_allclose(_rotations(objects), np.array([o.model_quaternion for o in expected]), atol=1e-4)
    positions = [[p.x, p.y, p.z] for p in (d.results[0].pose.pose.position for d in objects.detections)]
    np.testing.assert_allclose(positions, np.array([o.model_translation for o in expected]), atol=1e-4)
    np.testing.assert_allclose([r["confidence"] for r in records], [o.confidence for o in expected], rtol=0.02)
    # which needs all k: with the most probable hypothesis alone some object ends elsewhere
    top1 = policy.resolve(db, [ObjectQuery.from_egocentric(o.category, o.descriptor, o.hypotheses[0], o.translation,
                                                           mask=o.box_mask, probabilities=o.hypothesis_scores[:1])
                               for o in expected])
    differs = [not np.allclose(r.quaternion, o.model_quaternion, atol=1e-2) for r, o in zip(top1, expected, strict=True)]
    assert any(differs), "the test image must have an object that a lower-ranked hypothesis resolves differently"

    # without the stage: one hypothesis per object (network 1's rotation), as the Pipeline without it
    plain_expected = Pipeline(checkpoint, "cpu", score_threshold=0.0, viewpoint_checkpoint="", shape_db=db,
                              policy=policy)(rgb, intrinsics)
    answer = got["objects"][without_stage]
    assert [json.loads(d.id)["model_id"] for d in answer.detections] == [o.model_id for o in plain_expected]
    np.testing.assert_allclose(_rotations(answer), np.array([o.model_quaternion for o in plain_expected]), atol=1e-4)
