"""retrieval_node over real DDS: stamp join, the resolution policy, objects, RViz markers and the
object TF frames, which carry exactly the pose of ``objects`` and of the markers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import NodeProcess, ros_test_node, spin_until
from sensor_msgs.msg import Image
from tf2_msgs.msg import TFMessage
from tiny_model import build_tiny_shape_db, save_tiny_checkpoint
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import Marker, MarkerArray

from scene3d_ros.retrieval import ShapeDatabase
from scene3d_ros.ros.conversions import detection3d_msg, header, stamp_to_ns
from scene3d_ros.ros.wire_formats import box_masks_msg, descriptors_msg
from scene3d_ros.world.cad_library import ensure_cad_library

MODELS = ["car_sedan_01", "car_van_01", "chair_swivel_01"]
FRAME = "cam_optical"


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrieval_node")
    checkpoint = save_tiny_checkpoint(root / "tiny.pt", score_threshold=None)
    return build_tiny_shape_db(root / "shape_db.pt", checkpoint, MODELS), ensure_cad_library(progress=False)


def _listen_markers_and_tf(node, got: dict) -> None:
    """Collect markers and /tf messages by stamp into ``got["markers"]`` and ``got["tf"]``."""
    got["markers"], got["tf"] = {}, {}
    node.create_subscription(MarkerArray, "markers",
                             lambda m: got["markers"].__setitem__(stamp_to_ns(m.markers[0].header.stamp), m), 10)
    node.create_subscription(TFMessage, "/tf", lambda m: got["tf"].__setitem__(stamp_to_ns(m.transforms[0].header.stamp), m),
                             QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))


def assert_one_pose_per_object(objects: Detection3DArray, markers: MarkerArray, tf: TFMessage, prefix: str = "") -> None:
    """For every object: its TF frame ``<prefix><name>`` under the objects' frame, its mesh/cube
    marker and its bounding box carry exactly the pose of ``objects`` (one final pose)."""
    bodies = [m for m in markers.markers if m.ns == "scene3d_objects"]
    frames = {t.child_frame_id: t for t in tf.transforms}
    assert len(bodies) == len(frames) == len(objects.detections)
    for det, body in zip(objects.detections, bodies, strict=True):
        pose = det.results[0].pose.pose
        frame = frames[prefix + json.loads(det.id)["name"]]
        assert frame.header == objects.header and body.header == objects.header
        t = frame.transform
        assert (t.translation.x, t.translation.y, t.translation.z) == (pose.position.x, pose.position.y, pose.position.z)
        assert t.rotation == pose.orientation == body.pose.orientation == det.bbox.center.orientation
        assert body.pose.position == pose.position == det.bbox.center.position


def _descriptor_image(stamp_ns: int, rows: np.ndarray) -> Image:
    """Descriptor rows in the wire format perception_node publishes."""
    return descriptors_msg(header(stamp_ns, FRAME), rows)


def test_retrieval_node_publishes_models_cuboids_and_markers(database, tmp_path):
    db_path, library = database
    db = ShapeDatabase.load(db_path)
    view = 5  # a stored view: its own descriptor and rotation must retrieve its model
    expected_model = db.model_ids[int(db.model_index[view])]
    q_view = db.view_quaternions[view].double().numpy()
    with ros_test_node("retrieval_feeder") as node:
        got = {"objects": {}}
        node.create_subscription(Detection3DArray, "objects", lambda m: got["objects"].__setitem__(stamp_to_ns(m.header.stamp), m), 10)
        _listen_markers_and_tf(node, got)
        det_pub = node.create_publisher(Detection3DArray, "detections_3d", 10)
        desc_pub = node.create_publisher(Image, "descriptors", 10)
        retrieval = NodeProcess("scene3d_ros.ros.retrieval_node", tmp_path,
                                ["-p", f"shape_db:={db_path}", "-p", "silhouette_check:=false", "-p", "tf_prefix:=robot_"])
        try:
            assert spin_until(node, lambda: det_pub.get_subscription_count() > 0 and desc_pub.get_subscription_count() > 0,
                              60.0, [retrieval])
            stamp = 7_000_000
            h = header(stamp, FRAME)
            # on the optical axis the allocentric rotation equals the egocentric one
            detections = Detection3DArray(header=h, detections=[
                detection3d_msg(h, "car", 0.9, q_view, [0.0, 0.0, 8.0], [4.0, 1.8, 1.5], "car_0"),
                detection3d_msg(h, "aeroplane", 0.8, [1.0, 0, 0, 0], [1.0, 0.0, 30.0], [30.0, 28.0, 9.0], "aeroplane_1")])
            rows = np.stack([db.descriptors[view].float().numpy(), np.zeros(db.dim, np.float32)])
            bad_stamp = 6_000_000  # one descriptor row for two detections: rejected, the node keeps serving
            bad_header = header(bad_stamp, FRAME)
            desc_pub.publish(_descriptor_image(stamp, rows))  # descriptors first: the join must wait
            desc_pub.publish(_descriptor_image(bad_stamp, rows[:1]))
            det_pub.publish(Detection3DArray(header=bad_header, detections=detections.detections))
            # the bad frame's error: the node has taken both descriptor messages (one reliable publisher, in order)
            assert spin_until(node, lambda: "hold 1 rows for 2 detections" in retrieval.log(), 30.0, [retrieval]), \
                retrieval.log()[-3000:]
            det_pub.publish(detections)
            assert spin_until(node, lambda: all(stamp in got[k] for k in ("objects", "markers", "tf")), 30.0,
                              [retrieval]), retrieval.log()[-3000:]
        finally:
            code = retrieval.stop()
    log = retrieval.log()
    assert code in (0, -2), log[-3000:]
    assert "hold 1 rows for 2 detections" in log and bad_stamp not in got["objects"]
    objects = got["objects"][stamp]
    assert objects.header.frame_id == FRAME and len(objects.detections) == 2
    car, plane = (json.loads(d.id) for d in objects.detections)
    assert car["name"] == "car_0" and car["model_id"] == expected_model and car["distance"] < 1e-6
    assert Path(car["mesh_uri"].removeprefix("file://")).is_file()
    np.testing.assert_allclose([objects.detections[0].bbox.size.x, objects.detections[0].bbox.size.y,
                                objects.detections[0].bbox.size.z], library.get(expected_model).extents, rtol=1e-6)
    assert plane["model_id"] is None and plane["fallback"] == "cuboid"
    markers = got["markers"][stamp].markers
    assert markers[0].action == Marker.DELETEALL
    bodies = [m for m in markers[1:] if m.ns == "scene3d_objects"]
    assert [m.type for m in bodies] == [Marker.MESH_RESOURCE, Marker.CUBE]
    assert bodies[0].mesh_resource == car["mesh_uri"] and bodies[1].scale.x == pytest.approx(30.0)
    assert all(m.header.frame_id == FRAME for m in markers)
    assert_one_pose_per_object(objects, got["markers"][stamp], got["tf"][stamp], prefix="robot_")


def _mask_image(stamp_ns: int, masks: np.ndarray) -> Image:
    """Stacked box masks in the wire format perception_node publishes."""
    return box_masks_msg(header(stamp_ns, FRAME), masks)


def test_silhouette_check_joins_masks_and_poses_the_model_in_the_chosen_view(database, tmp_path):
    """With masks (the default), a frame waits for all three topics; the mask that equals a stored
    view's silhouette retrieves that view even when the descriptor points elsewhere, and the
    object's orientation becomes the view's rotation; bad masks are rejected and the node serves on."""
    db_path, _ = database
    db = ShapeDatabase.load(db_path)
    target = 5
    model = db.model_ids[int(db.model_index[target])]
    category = db.categories[int(db.model_index[target])]
    same = [v for v in range(len(db)) if db.categories[int(db.model_index[v])] == category and v != target]
    decoy = max(same, key=lambda v: float((db.silhouettes[v].float() - db.silhouettes[target].float()).abs().sum()))
    silhouette = db.silhouettes[target].float().numpy() / 255.0
    # the query: the decoy's descriptor, the target's mask and rotation
    q_prior = db.view_quaternions[target].double().numpy()
    with ros_test_node("retrieval_mask_feeder") as node:
        got = {}  # stamp -> every objects message with it
        node.create_subscription(Detection3DArray, "objects", lambda m: got.setdefault(stamp_to_ns(m.header.stamp), []).append(m), 10)
        extra = {}
        _listen_markers_and_tf(node, extra)
        det_pub = node.create_publisher(Detection3DArray, "detections_3d", 10)
        desc_pub = node.create_publisher(Image, "descriptors", 10)
        mask_pub = node.create_publisher(Image, "masks", 10)
        retrieval = NodeProcess("scene3d_ros.ros.retrieval_node", tmp_path,
                                ["-p", f"shape_db:={db_path}", "-p", "silhouette_weight:=1000000.0",
                                 "-p", "silhouette_max_angle_deg:=180.0"])
        try:
            assert spin_until(node, lambda: min(p.get_subscription_count() for p in (det_pub, desc_pub, mask_pub)) > 0,
                              60.0, [retrieval])
            h = header(9_000_000, FRAME)
            detections = Detection3DArray(header=h, detections=[
                detection3d_msg(h, category, 0.9, q_prior, [0.0, 0.0, 8.0], [4.0, 1.8, 1.5], "obj_0")])
            row = db.descriptors[decoy].float().numpy()[None]
            det_pub.publish(detections)
            desc_pub.publish(_descriptor_image(9_000_000, row))
            bad = header(8_000_000, FRAME)  # masks of the wrong size: rejected, the node keeps serving
            det_pub.publish(Detection3DArray(header=bad, detections=detections.detections))
            desc_pub.publish(_descriptor_image(8_000_000, row))
            mask_pub.publish(_mask_image(8_000_000, np.zeros((1, 14, 14))))
            # the bad frame's error: the node has taken frame 9_000_000's detections and descriptors
            # (published before, on the same reliable publishers); without masks it must wait for them
            assert spin_until(node, lambda: "masks are 14x14" in retrieval.log(), 30.0, [retrieval]), \
                retrieval.log()[-3000:]
            mask_pub.publish(_mask_image(9_000_000, silhouette[None]))
            assert spin_until(node, lambda: 9_000_000 in got and all(9_000_000 in extra[k] for k in ("markers", "tf")),
                              30.0, [retrieval]), retrieval.log()[-3000:]
        finally:
            code = retrieval.stop()
    log = retrieval.log()
    assert code in (0, -2), log[-3000:]
    assert "silhouette check on" in log and "masks are 14x14, expected 28x28" in log and 8_000_000 not in got
    assert len(got[9_000_000]) == 1  # answered once, with its mask (an answer without it would have come first)
    obj = got[9_000_000][0].detections[0]
    record = json.loads(obj.id)
    assert record["model_id"] == model and record["silhouette_iou"] == pytest.approx(1.0, abs=1e-6)
    o = obj.results[0].pose.pose.orientation
    np.testing.assert_allclose([o.w, o.x, o.y, o.z], db.view_quaternions[target].double().numpy(), atol=1e-5)
    assert record["confidence"] == pytest.approx(1.0, abs=1e-6)
    # the final pose (the chosen view's rotation) is also that of the TF frame, the marker and the box
    assert_one_pose_per_object(got[9_000_000][0], extra["markers"][9_000_000], extra["tf"][9_000_000])
