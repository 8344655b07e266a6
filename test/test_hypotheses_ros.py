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
from vision_msgs.msg import Detection2DArray, Detection3DArray

from scene3d_ros import CATEGORIES
from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.model.viewpoint import ViewpointModelConfig, ViewpointNet
from scene3d_ros.model.viewpoint_checkpoint import save_viewpoint_checkpoint
from scene3d_ros.pipeline import Pipeline
from scene3d_ros.retrieval import ObjectQuery, ResolutionPolicy, ShapeDatabase
from scene3d_ros.ros.conversions import camera_info_msg, header, rgb8_image_msg, stamp_to_ns
from scene3d_ros.ros.wire_formats import hypotheses_from_msg, shape_classes_from_msg

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


class Feeder:
    """Sends the test image with its camera_info on ``image`` / ``camera_info`` and collects what
    comes back on ``topics`` (kind -> (message type, topic)) by stamp."""

    def __init__(self, node, rgb: np.ndarray, intrinsics: CameraIntrinsics, topics: dict) -> None:
        self.node, self.rgb, self.intrinsics = node, rgb, intrinsics
        self.got = {kind: {} for kind in topics}
        self.subscriptions = {kind: node.create_subscription(
            msg_type, topic, lambda m, kind=kind: self.got[kind].__setitem__(stamp_to_ns(m.header.stamp), m), 10)
            for kind, (msg_type, topic) in topics.items()}
        self.image_pub = node.create_publisher(Image, "image", 10)
        self.info_pub = node.create_publisher(CameraInfo, "camera_info", 10)

    def ready(self, perception_node: NodeProcess) -> bool:
        return ("serving" in perception_node.log() and self.subscriptions["objects"].get_publisher_count() > 0
                and self.image_pub.get_subscription_count() > 0 and self.info_pub.get_subscription_count() > 0)

    def send(self, stamp: int) -> None:
        self.info_pub.publish(camera_info_msg(self.intrinsics, header(stamp, FRAME)))
        self.image_pub.publish(rgb8_image_msg(self.rgb, header(stamp, FRAME)))

    def answer(self, first: int, processes: list[NodeProcess]) -> int:
        """Send the image with stamps first, first + 1, ... until retrieval_node answers one
        (DDS matches the nodes with each other in their own time; a frame published before
        that is lost), then once more: the stamp of that last, fully connected frame."""
        got, node = self.got, self.node
        stamp = first
        while not any(s in got["objects"] for s in range(first, stamp)):
            assert stamp < first + 40, ({k: list(v) for k, v in got.items()}, *(p.log()[-3000:] for p in processes))
            self.send(stamp)
            spin_until(node, lambda s=stamp: s in got["objects"], 3.0, processes)
            stamp += 1
        self.send(stamp)
        assert spin_until(node, lambda: stamp in got["objects"], 60.0, processes), \
            ({k: list(v) for k, v in got.items()}, *(p.log()[-3000:] for p in processes))
        return stamp


def test_retrieval_node_resolves_with_all_hypotheses_like_the_pipeline_and_answers_without_the_stage(setup, tmp_path):
    checkpoint, stage, db_path, rgb, intrinsics = setup
    with ros_test_node("hypotheses_feeder") as node:
        feeder = Feeder(node, rgb, intrinsics, {"objects": (Detection3DArray, "objects"),
                                                "hypotheses": (Image, "hypotheses"),
                                                "3d": (Detection3DArray, "detections_3d")})
        got, ready, answer = feeder.got, feeder.ready, feeder.answer
        retrieval = NodeProcess("scene3d_ros.ros.retrieval_node", tmp_path,
                                ["-p", f"shape_db:={db_path}", "-p", f"model_path:={checkpoint}"])
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable", "-p",
                                        f"viewpoint_model_path:={stage}", "-p", f"viewpoint_hypotheses:={K}")
        plain = None
        try:
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


def test_shape_classes_ride_to_retrieval_node_and_choose_the_model(setup, tmp_path):
    """A stage with a shape head: perception_node publishes each object's shape class probabilities
    on ``shape_classes``; retrieval_node joins them and, with ``shape_weight``, the class the head
    favours chooses the model, as the in-process Pipeline does, where the descriptor alone chose
    another one."""
    checkpoint, _, db_path, rgb, intrinsics = setup
    db = ShapeDatabase.load(db_path)
    classes = ("boat/canoe", "boat/catamaran", "car/sedan")
    torch.manual_seed(0)
    net = ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=16, shapes=classes), len(CATEGORIES), CATEGORIES)
    stage = tmp_path / "viewpoint_shapes.pt"
    save_viewpoint_checkpoint(stage, net, CATEGORIES)
    plain = Pipeline(checkpoint, "cpu", score_threshold=0.0, viewpoint_checkpoint=stage, viewpoint_k=K,
                     shape_db=db)(rgb, intrinsics)  # shape_weight 0: the descriptor chooses
    boats = [o for o in plain if o.category == "boat"]
    assert boats and all(o.model_id in MODELS[:2] for o in boats)
    # the head (an untrained MobileNetV2 pools to ~0: its bias decides) favours the boat class not chosen
    favoured = "boat/canoe" if boats[0].model_id == "boat_catamaran_01" else "boat/catamaran"
    with torch.no_grad():
        net.shape_logits.bias[classes.index(favoured)] = 5.0
    save_viewpoint_checkpoint(stage, net, CATEGORIES)
    weight = 50.0
    expected = Pipeline(checkpoint, "cpu", score_threshold=0.0, viewpoint_checkpoint=stage, viewpoint_k=K,
                        shape_db=db, policy=ResolutionPolicy(shape_weight=weight))(rgb, intrinsics)
    assert all(o.model_id == favoured.replace("/", "_") + "_01" for o in expected if o.category == "boat")
    assert expected[0].model_id != plain[0].model_id or expected[0].category != "boat"

    with ros_test_node("shape_classes_feeder") as node:
        feeder = Feeder(node, rgb, intrinsics, {"objects": (Detection3DArray, "objects"),
                                                "shape_classes": (Detection2DArray, "shape_classes")})
        retrieval = NodeProcess("scene3d_ros.ros.retrieval_node", tmp_path,
                                ["-p", f"shape_db:={db_path}", "-p", f"model_path:={checkpoint}",
                                 "-p", f"shape_weight:={weight}"])
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable", "-p",
                                        f"viewpoint_model_path:={stage}", "-p", f"viewpoint_hypotheses:={K}")
        try:
            assert spin_until(node, lambda: feeder.ready(perception) and node.count_publishers("shape_classes") == 1,
                              120.0, [perception, retrieval]), perception.log()[-3000:] + retrieval.log()[-3000:]
            stamp = feeder.answer(1_000, [perception, retrieval])
        finally:
            for process in (perception, retrieval):
                process.stop()
    assert "Traceback" not in retrieval.log(), retrieval.log()[-3000:]
    sent = shape_classes_from_msg(feeder.got["shape_classes"][stamp], [o.category for o in expected])
    assert sent == [pytest.approx(o.shape_probabilities, rel=1e-6) for o in expected]
    objects = feeder.got["objects"][stamp]
    assert [json.loads(d.id)["model_id"] for d in objects.detections] == [o.model_id for o in expected]
    np.testing.assert_allclose(_rotations(objects), np.array([o.model_quaternion for o in expected]), atol=1e-4)
