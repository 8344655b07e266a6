"""image_folder_camera over DDS: the sample photos with their calibration; a bad folder stops it cleanly."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from ros_harness import NodeProcess, ros_test_node, run_until_exit, spin_until
from sensor_msgs.msg import CameraInfo, Image

from scene3d_ros.image_source import sample_photos
from scene3d_ros.ros.conversions import image_msg_to_rgb, stamp_to_ns


@pytest.fixture
def ros_node():
    with ros_test_node("image_folder_listener") as node:
        yield node


def test_sample_photos_are_published_with_their_calibration(ros_node, tmp_path):
    images, infos = {}, {}
    ros_node.create_subscription(Image, "image", lambda m: images.__setitem__(stamp_to_ns(m.header.stamp), m),
                                 qos_profile_sensor_data)
    ros_node.create_subscription(CameraInfo, "camera_info", lambda m: infos.__setitem__(stamp_to_ns(m.header.stamp), m), 10)
    camera = NodeProcess("scene3d_ros.ros.image_folder_camera", tmp_path, ["-p", "rate_hz:=10.0"])
    try:
        assert spin_until(ros_node, lambda: len(set(images) & set(infos)) >= 3, 60.0, [camera]), camera.log()[-3000:]
    finally:
        assert camera.stop() in (0, -2), camera.log()[-3000:]
    expected = [photo.read_rgb() for photo in sample_photos()]
    shown = []
    for stamp in sorted(set(images) & set(infos)):
        rgb = image_msg_to_rgb(images[stamp])
        shown.append(next(k for k, photo in enumerate(expected) if np.array_equal(rgb, photo)))
        assert infos[stamp].k[0] == pytest.approx(994.978) and infos[stamp].k[2] == pytest.approx(311.193)
        assert infos[stamp].header.frame_id == images[stamp].header.frame_id == "camera_optical_frame"
    assert set(shown) == {0, 1}  # both photos, in turn (the loop starts again after the last one)


def test_bad_folder_exits_cleanly_with_a_message(tmp_path):
    code, log = run_until_exit("scene3d_ros.ros.image_folder_camera", tmp_path, ["-p", f"folder:={tmp_path / 'nowhere'}"])
    assert code == 1
    assert "cannot start" in log and "no image folder" in log and "Traceback" not in log
