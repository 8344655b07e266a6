"""The fitted translation over real DDS: retrieval_node joins perception_node's ``detections_2d``
(each object's 2D box) and keeps the latest ``camera_info``, so the positions of its ``objects``
(and of their TF frames and markers) are the resolution policy's final translation, equal to the
in-process Pipeline's ``model_translation`` on the same image; before any camera_info arrives the
fit is skipped (the detections_3d positions are kept, with a warning) and the node still answers."""

from __future__ import annotations

import numpy as np
import pytest
from ros_harness import NodeProcess, perception_process, ros_test_node, spin_until
from sensor_msgs.msg import CameraInfo, Image
from test_retrieval_node_ros import _listen_markers_and_tf, assert_one_pose_per_object
from tiny_model import build_tiny_shape_db, save_tiny_checkpoint
from vision_msgs.msg import Detection3DArray

from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.pipeline import Pipeline
from scene3d_ros.retrieval import ResolutionPolicy, ShapeDatabase
from scene3d_ros.ros.conversions import camera_info_msg, header, rgb8_image_msg, stamp_to_ns

FRAME = "cam_optical"
# the tiny untrained network sees boats in the test image; with 20 detections some are away from the
# image border on any CPU (with 5, rounding differences between CPUs left all of them on it), so
# their translations are fitted; a car model too, so the search has choices
MODELS = ["boat_canoe_01", "boat_catamaran_01", "car_sedan_01"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("translation")
    checkpoint = save_tiny_checkpoint(root / "tiny.pt", detections=20)
    db_path = build_tiny_shape_db(root / "shape_db.pt", checkpoint, MODELS)
    rgb = (np.random.default_rng(1).random((120, 160, 3)) * 255).astype(np.uint8)
    # not perception_node's default camera (60 deg), so the fit must use the camera_info's K
    return checkpoint, db_path, rgb, CameraIntrinsics.from_fov(160, 120, 50)


def _positions(objects: Detection3DArray) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in (d.results[0].pose.pose.position for d in objects.detections)])


def test_objects_carry_the_translation_fitted_like_the_pipeline_and_the_node_answers_without_camera_info(
        setup, tmp_path):
    checkpoint, db_path, rgb, intrinsics = setup
    with ros_test_node("translation_feeder") as node:
        got = {"objects": {}, "3d": {}}
        for kind, topic in (("objects", "objects"), ("3d", "detections_3d")):
            node.create_subscription(Detection3DArray, topic,
                                     lambda m, kind=kind: got[kind].__setitem__(stamp_to_ns(m.header.stamp), m), 10)
        _listen_markers_and_tf(node, got)
        image_pub = node.create_publisher(Image, "image", 10)
        info_pub = node.create_publisher(CameraInfo, "camera_info", 10)
        retrieval = NodeProcess("scene3d_ros.ros.retrieval_node", tmp_path,
                                ["-p", f"shape_db:={db_path}", "-p", f"model_path:={checkpoint}"])
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable", "-p",
                                        "viewpoint_model_path:=none", "-p", "publish_tf:=false")  # as in the graph
        processes = [perception, retrieval]
        try:
            def complete(stamp: int) -> bool:
                return all(stamp in got[k] for k in ("objects", "3d", "markers", "tf"))

            def answer(first: int, with_camera_info: bool) -> int:
                """Send the image with stamps first, first + 1, ... until retrieval_node answers one
                (frames sent before DDS has matched every pair of nodes are lost), then once more: the
                stamp of that last, fully connected frame."""
                stamp = first
                while not any(s in got["objects"] for s in range(first, stamp)):
                    assert stamp < first + 40, (list(got["objects"]), *(p.log()[-3000:] for p in processes))
                    if with_camera_info:  # perception_node's camera receives it with the image's stamp
                        info_pub.publish(camera_info_msg(intrinsics, header(stamp, FRAME)))
                    image_pub.publish(rgb8_image_msg(rgb, header(stamp, FRAME)))
                    spin_until(node, lambda s=stamp: s in got["objects"], 3.0, processes)
                    stamp += 1
                if with_camera_info:
                    info_pub.publish(camera_info_msg(intrinsics, header(stamp, FRAME)))
                image_pub.publish(rgb8_image_msg(rgb, header(stamp, FRAME)))
                assert spin_until(node, lambda: complete(stamp), 60.0, processes), \
                    (list(got["objects"]), *(p.log()[-3000:] for p in processes))
                return stamp

            # both nodes listen to camera_info before anything is sent, and nobody publishes hypotheses
            assert spin_until(node, lambda: "serving" in perception.log() and info_pub.get_subscription_count() == 2
                              and image_pub.get_subscription_count() > 0 and node.count_publishers("objects") > 0
                              and node.count_publishers("detections_2d") == 1, 120.0, processes), \
                perception.log()[-3000:] + retrieval.log()[-3000:]
            without_info = answer(1_000, with_camera_info=False)
            with_info = answer(2_000, with_camera_info=True)
        finally:
            codes = [p.stop() for p in (perception, retrieval)]
    log = retrieval.log()
    assert codes[1] in (0, -2) and "Traceback" not in log, log[-3000:]
    assert "translation fitted to the 2D boxes" in log and "no usable camera_info (none so far)" in log, log[-3000:]

    # without camera_info: the fit is skipped, the objects keep the detections' positions
    np.testing.assert_array_equal(_positions(got["objects"][without_info]), _positions(got["3d"][without_info]))

    # with it: the Pipeline's final translation (and rotation, relative to the new viewing ray)
    expected = Pipeline(checkpoint, "cpu", score_threshold=0.0, viewpoint_checkpoint="",
                        shape_db=ShapeDatabase.load(db_path), policy=ResolutionPolicy())(rgb, intrinsics)
    objects = got["objects"][with_info]
    assert len(objects.detections) == len(expected) >= 1
    np.testing.assert_allclose(_positions(got["3d"][with_info]), np.array([o.translation for o in expected]),
                               atol=1e-6)
    np.testing.assert_allclose(_positions(objects), np.array([o.model_translation for o in expected]), atol=1e-4)
    orientations = [d.results[0].pose.pose.orientation for d in objects.detections]
    np.testing.assert_allclose([[o.w, o.x, o.y, o.z] for o in orientations],
                               np.array([o.model_quaternion for o in expected]), atol=1e-4)
    moved = np.linalg.norm(_positions(objects) - _positions(got["3d"][with_info]), axis=1)
    assert (moved > 1e-3).any(), "the test image must have an object whose translation the fit moves"
    # the TF frames and the markers carry the fitted positions too
    assert_one_pose_per_object(objects, got["markers"][with_info], got["tf"][with_info])
