"""Two processes over real DDS: the synthetic camera publishes, this test process listens.

Checks that Image, CameraInfo, ground-truth Detection3DArray and /tf arrive with one shared
header per frame, that the image matches the camera info, and that TF frames equal the poses.
"""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from ros_harness import NodeProcess, ros_test_node, run_until_exit, spin_until
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray

from scene3d_ros import CATEGORIES
from scene3d_ros.ros.conversions import intrinsics_from_camera_info, quaternion_wxyz, stamp_to_ns
from scene3d_ros.ros.synthetic_camera import TF_QOS

FRAME = "test_cam_optical"


@pytest.fixture
def ros_node():
    with ros_test_node("synthetic_camera_listener") as node:
        yield node


def test_synthetic_camera_publishes_consistent_frames(ros_node, tmp_path):
    received: dict[str, dict[int, object]] = {"image": {}, "info": {}, "gt": {}, "tf": {}}
    # best-effort image subscription (what a perception node uses) must match the camera's publisher
    ros_node.create_subscription(Image, "image", lambda m: received["image"].__setitem__(stamp_to_ns(m.header.stamp), m),
                                 qos_profile_sensor_data)
    ros_node.create_subscription(CameraInfo, "camera_info",
                                 lambda m: received["info"].__setitem__(stamp_to_ns(m.header.stamp), m), 10)
    ros_node.create_subscription(Detection3DArray, "ground_truth/detections_3d",
                                 lambda m: received["gt"].__setitem__(stamp_to_ns(m.header.stamp), m), 10)

    def on_tf(msg):
        for t in msg.transforms:
            received["tf"].setdefault(stamp_to_ns(t.header.stamp), []).append(t)

    ros_node.create_subscription(TFMessage, "/tf", on_tf, TF_QOS)
    camera = NodeProcess("scene3d_ros.ros.synthetic_camera", tmp_path, [
        "-p", "rate_hz:=10.0", "-p", f"frame_id:={FRAME}", "-p", "width:=320", "-p", "height:=240", "-p", "seed:=3"])
    try:
        def complete_frames():
            return [s for s in received["image"] if all(s in received[k] for k in ("info", "gt", "tf"))]

        assert spin_until(ros_node, lambda: len(complete_frames()) >= 3, 60.0, [camera]), (
            f"frames received per topic: { {k: len(v) for k, v in received.items()} }\n{camera.log()[-3000:]}")
    finally:
        assert camera.stop() in (0, -2), camera.log()[-3000:]

    for stamp in complete_frames():
        image, info, gt, tfs = (received[k][stamp] for k in ("image", "info", "gt", "tf"))
        for msg in (image, info, gt, *tfs):
            assert msg.header.frame_id == FRAME
        assert image.encoding == "rgb8" and (image.width, image.height) == (320, 240) == (info.width, info.height)
        assert image.step == 3 * image.width and len(image.data) == image.step * image.height
        intrinsics = intrinsics_from_camera_info(info)
        assert 1 <= len(gt.detections) <= 6 and len(tfs) == len(gt.detections)
        by_child = {t.child_frame_id: t for t in tfs}
        for k, det in enumerate(gt.detections):
            category = det.results[0].hypothesis.class_id
            assert category in CATEGORIES and det.header.stamp == gt.header.stamp
            tf = by_child[f"gt_{category}_{k}"]
            pose = det.results[0].pose.pose
            q = quaternion_wxyz(pose.orientation)
            assert q[0] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-6
            np.testing.assert_allclose(quaternion_wxyz(tf.transform.rotation), q)
            t = np.array([pose.position.x, pose.position.y, pose.position.z])
            np.testing.assert_allclose([tf.transform.translation.x, tf.transform.translation.y,
                                        tf.transform.translation.z], t)
            assert t[2] > 0, "objects are in front of the camera (optical frame z forward)"
            u, v = intrinsics.project(t[None])[0]
            margin = max(info.width, info.height)  # centres may lie off-image only for truncated objects
            assert -margin < u < info.width + margin and -margin < v < info.height + margin
            assert min(det.bbox.size.x, det.bbox.size.y, det.bbox.size.z) > 0


def test_bad_library_parameter_exits_cleanly_with_a_message(tmp_path):
    code, log = run_until_exit("scene3d_ros.ros.synthetic_camera", tmp_path, ["-p", f"cad_library:={tmp_path / 'nowhere'}"])
    assert code == 1
    assert "cannot start" in log and "nowhere" in log and "Traceback" not in log
