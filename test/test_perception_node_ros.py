"""perception_node over real DDS, in its own process, with a tiny untrained network.

synthetic camera -> perception node -> this process: outputs copy the image header, descriptor
rows match detections, one TF frame per object; bad images are rejected with a specific error
and the next good frame is still processed.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from ros_harness import NodeProcess, perception_process, ros_test_node, spin_until
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from tiny_model import TINY_MODEL, save_tiny_checkpoint
from vision_msgs.msg import Detection2DArray, Detection3DArray

from scene3d_ros import CATEGORIES
from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.ros.conversions import camera_info_msg, header, rgb8_image_msg, stamp_to_ns
from scene3d_ros.ros.perception_node import TF_QOS

FRAME = "cam_optical"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("perception") / "tiny.pt")


def _collect(node):
    got = {"2d": {}, "3d": {}, "desc": {}, "masks": {}, "tf": {}}
    node.create_subscription(Detection2DArray, "detections_2d", lambda m: got["2d"].__setitem__(stamp_to_ns(m.header.stamp), m), 10)
    node.create_subscription(Detection3DArray, "detections_3d", lambda m: got["3d"].__setitem__(stamp_to_ns(m.header.stamp), m), 10)
    node.create_subscription(Image, "descriptors", lambda m: got["desc"].__setitem__(stamp_to_ns(m.header.stamp), m), 10)
    node.create_subscription(Image, "masks", lambda m: got["masks"].__setitem__(stamp_to_ns(m.header.stamp), m), 10)

    def on_tf(msg):
        for t in msg.transforms:
            got["tf"].setdefault(stamp_to_ns(t.header.stamp), []).append(t)

    node.create_subscription(TFMessage, "/tf", on_tf, TF_QOS)
    return got


def test_camera_to_perception_outputs_share_the_image_header(checkpoint, tmp_path):
    with ros_test_node("perception_listener") as node:
        images = {}
        node.create_subscription(Image, "image", lambda m: images.__setitem__(stamp_to_ns(m.header.stamp), m), 10)
        got = _collect(node)
        camera = NodeProcess("scene3d_ros.ros.synthetic_camera", tmp_path, [
            "-p", "rate_hz:=5.0", "-p", f"frame_id:={FRAME}", "-p", "width:=160", "-p", "height:=120"])
        perception = perception_process(tmp_path, checkpoint)
        try:
            def ours(stamp):  # the perception node's frames, not the camera's ground truth
                return [t for t in got["tf"].get(stamp, []) if not t.child_frame_id.startswith("gt_")]

            def complete():
                return [s for s in got["3d"] if s in got["2d"] and s in got["desc"] and s in got["masks"]
                        and s in images and ours(s)]

            assert spin_until(node, lambda: len(complete()) >= 2, 120.0, [camera, perception]), (
                {k: len(v) for k, v in got.items()}, perception.log()[-3000:])
        finally:
            camera.stop()
            assert perception.stop() in (0, -2), perception.log()[-3000:]
        for stamp in complete():
            d3, d2, desc = got["3d"][stamp], got["2d"][stamp], got["desc"][stamp]
            assert d3.header.frame_id == d2.header.frame_id == desc.header.frame_id == FRAME
            n = len(d3.detections)
            assert n >= 1 and len(d2.detections) == n
            assert desc.encoding == "32FC1" and desc.height == n and desc.width == TINY_MODEL["descriptor"]["dim"]
            rows = np.frombuffer(bytes(desc.data), dtype="<f4").reshape(n, -1)
            assert np.all(np.isfinite(rows))
            masks = got["masks"][stamp]  # one 28 x 28 box mask per detection, same order
            assert masks.header.frame_id == FRAME and masks.encoding == "mono8"
            assert (masks.width, masks.height, masks.step, len(masks.data)) == (28, 28 * n, 28, 28 * 28 * n)
            assert sorted(t.child_frame_id for t in ours(stamp)) == sorted(d.id for d in d3.detections)
            assert all(t.header.frame_id == FRAME for t in ours(stamp))
            for det in d3.detections:
                q = det.results[0].pose.pose.orientation
                assert q.w >= 0 and det.results[0].hypothesis.class_id in CATEGORIES
                assert det.results[0].pose.pose.position.z > 0
        assert "processed" in perception.log() and "Traceback" not in perception.log()


def test_bad_images_are_rejected_and_the_next_good_frame_is_processed(checkpoint, tmp_path):
    """Bad images and camera_info are rejected with specific errors and the node serves on; a
    camera_info for another resolution of the same aspect ratio has K scaled (warned once), one of
    another aspect ratio rejects the frame. Each step waits for the node's own answer or log line
    (the subscriptions are reliable, so a message published is a message delivered)."""
    with ros_test_node("perception_feeder") as node:
        got = _collect(node)
        image_pub = node.create_publisher(Image, "image", 10)
        info_pub = node.create_publisher(CameraInfo, "camera_info", 10)
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable")

        def logged(text: str) -> bool:
            return spin_until(node, lambda: text in perception.log(), 30.0, [perception])

        def answered(stamp: int) -> bool:
            return spin_until(node, lambda: stamp in got["3d"], 30.0, [perception])

        try:
            assert spin_until(node, lambda: "serving" in perception.log() and image_pub.get_subscription_count() > 0
                              and info_pub.get_subscription_count() > 0, 90.0, [perception])
            rgb = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
            bad = rgb8_image_msg(rgb, header(1_000, FRAME))
            bad.encoding = "yuv422"
            padded = rgb8_image_msg(rgb, header(2_000, FRAME))
            padded.step = 3 * 160 + 1  # inconsistent with the data length
            nan_info = camera_info_msg(CameraIntrinsics.from_fov(160, 120, 60), header(3_000, FRAME))
            nan_info.k[0] = float("nan")
            image_pub.publish(bad)
            assert logged("unsupported image encoding 'yuv422'"), perception.log()[-3000:]
            image_pub.publish(padded)
            assert logged("data holds"), perception.log()[-3000:]
            info_pub.publish(nan_info)  # before the image: the node takes it first
            image_pub.publish(rgb8_image_msg(rgb, header(4_000, FRAME)))  # rejected: NaN intrinsics
            assert logged("bad camera_info: camera intrinsics must be finite"), perception.log()[-3000:]
            info_pub.publish(camera_info_msg(CameraIntrinsics.from_fov(320, 240, 60), header(5_000, FRAME)))
            for stamp in (6_000, 6_001):  # a resize of the camera_info's image: K scaled, warned about once
                image_pub.publish(rgb8_image_msg(rgb, header(stamp, FRAME)))
                assert answered(stamp), perception.log()[-3000:]
            info_pub.publish(camera_info_msg(CameraIntrinsics.from_fov(320, 180, 60), header(7_000, FRAME)))
            image_pub.publish(rgb8_image_msg(rgb, header(8_000, FRAME)))  # another aspect ratio: rejected
            assert logged("K cannot be scaled"), perception.log()[-3000:]
            info_pub.publish(camera_info_msg(CameraIntrinsics.from_fov(160, 120, 60), header(9_000, FRAME)))
            image_pub.publish(rgb8_image_msg(rgb, header(10_000, FRAME)))
            assert answered(10_000), perception.log()[-3000:]
        finally:
            code = perception.stop()
        log = perception.log()
        assert code in (0, -2), log[-3000:]
        assert not {1_000, 2_000, 4_000, 8_000} & set(got["3d"])
        assert log.count("camera_info is for 320x240 images but the image is 160x120: scaling K by 0.5 x 0.5") == 1
        assert ("bad camera_info: the intrinsics are for 320x180 images (aspect ratio 1.778) but the image is "
                "160x120 (aspect ratio 1.333)") in log
        depths = {stamp: [d.results[0].pose.pose.position.z for d in got["3d"][stamp].detections]
                  for stamp in (6_000, 10_000)}  # the scaled K is the image's own K: the same depths
        np.testing.assert_allclose(depths[6_000], depths[10_000], rtol=1e-5)
        assert "Traceback" not in log


def test_outputs_can_be_switched_off(checkpoint, tmp_path):
    """publish_detections_2d / publish_descriptors / publish_masks / publish_tf false: those topics get no publisher
    and no message, detections_3d still flows. Also: num_threads sets the inference thread's torch
    threads (one inference worker here; the CPU default is two), and the node's entry point makes OpenMP wait passively unless the user chose a policy."""
    with ros_test_node("perception_feeder_quiet") as node:
        got = _collect(node)
        image_pub = node.create_publisher(Image, "image", 10)
        info_pub = node.create_publisher(CameraInfo, "camera_info", 10)
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable",
                                        "-p", "publish_detections_2d:=false", "-p", "publish_descriptors:=false",
                                        "-p", "publish_masks:=false", "-p", "publish_tf:=false", "-p", "num_threads:=1",
                                        "-p", "inference_workers:=1")
        try:
            assert spin_until(node, lambda: "serving" in perception.log() and image_pub.get_subscription_count() > 0
                              and info_pub.get_subscription_count() > 0, 90.0, [perception])
            rgb = (np.random.default_rng(1).random((120, 160, 3)) * 255).astype(np.uint8)
            info_pub.publish(camera_info_msg(CameraIntrinsics.from_fov(160, 120, 60), header(1_000, FRAME)))
            for stamp in (1_000, 2_000):  # the node publishes frame 1_000's TF, if any, before answering 2_000
                image_pub.publish(rgb8_image_msg(rgb, header(stamp, FRAME)))
                assert spin_until(node, lambda s=stamp: s in got["3d"], 30.0, [perception]), perception.log()[-3000:]
            assert 1_000 in got["3d"] and len(got["3d"][1_000].detections) > 0
            assert node.count_publishers("detections_2d") == 0 and node.count_publishers("descriptors") == 0
            assert node.count_publishers("masks") == 0
        finally:
            code = perception.stop()
        log = perception.log()
        assert code in (0, -2), log[-3000:]
        assert not got["2d"] and not got["desc"] and not got["masks"] and not got["tf"]
        assert f"(1 intra-op threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')})" in log, log[-3000:]


def test_thresholds_change_at_run_time_and_out_of_range_values_are_refused(checkpoint, tmp_path):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    def set_parameter(node, client, name, value):
        kind = ParameterType.PARAMETER_DOUBLE if isinstance(value, float) else ParameterType.PARAMETER_INTEGER
        field = "double_value" if isinstance(value, float) else "integer_value"
        request = SetParameters.Request(parameters=[Parameter(name=name, value=ParameterValue(type=kind, **{field: value}))])
        future = client.call_async(request)
        assert spin_until(node, future.done, 30.0)
        return future.result().results[0].successful

    with ros_test_node("perception_tuner") as node:
        got = _collect(node)
        image_pub = node.create_publisher(Image, "image", 10)
        info_pub = node.create_publisher(CameraInfo, "camera_info", 10)
        client = node.create_client(SetParameters, "/perception_node/set_parameters")
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable")
        rgb = (np.random.default_rng(2).random((120, 160, 3)) * 255).astype(np.uint8)

        def detections(stamp):
            info_pub.publish(camera_info_msg(CameraIntrinsics.from_fov(160, 120, 60), header(stamp, FRAME)))
            for _ in range(60):
                image_pub.publish(rgb8_image_msg(rgb, header(stamp, FRAME)))
                if spin_until(node, lambda: stamp in got["3d"], 1.0, [perception]):
                    return len(got["3d"][stamp].detections)
            raise AssertionError(f"no answer for frame {stamp}:\n{perception.log()[-3000:]}")

        try:
            assert spin_until(node, lambda: "serving" in perception.log() and client.service_is_ready(), 90.0,
                              [perception])
            assert spin_until(node, lambda: image_pub.get_subscription_count() > 0, 90.0, [perception])
            assert 2 < detections(1_000) <= TINY_MODEL["detector"]["box_detections_per_img"]
            assert set_parameter(node, client, "max_detections", 2)
            assert detections(2_000) == 2
            assert set_parameter(node, client, "score_threshold", 1.0)  # the untrained network scores ~0.1
            assert detections(3_000) == 0
            assert not set_parameter(node, client, "score_threshold", 1.5)  # outside the declared range [0, 1]
            assert not set_parameter(node, client, "max_detections", 0)
            assert set_parameter(node, client, "mask_threshold", 0.6)
            assert not set_parameter(node, client, "mask_threshold", 0.99)  # outside [0.05, 0.95]
            assert detections(4_000) == 0  # still 1.0
        finally:
            code = perception.stop()
        assert code in (0, -2), perception.log()[-3000:]


def test_empty_and_body_frame_ids_are_warned_about_once_and_an_empty_one_gets_no_tf(checkpoint, tmp_path):
    """Poses follow the optical convention of the image's frame: a frame named like a body frame is
    served but warned about (once, however many frames); an empty frame_id is served without TF
    frames (tf2 rejects an empty parent) and warned about."""
    with ros_test_node("perception_frames") as node:
        got = _collect(node)
        image_pub = node.create_publisher(Image, "image", 10)
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable")
        rgb = (np.random.default_rng(2).random((120, 160, 3)) * 255).astype(np.uint8)
        try:
            assert spin_until(node, lambda: "serving" in perception.log(), 90.0, [perception])
            assert spin_until(node, lambda: image_pub.get_subscription_count() > 0, 90.0, [perception])
            for stamp, frame in ((1_000, "camera_link"), (2_000, "camera_link"), (3_000, "")):
                for _ in range(60):  # best effort on the node's side: resend until it is answered
                    image_pub.publish(rgb8_image_msg(rgb, header(stamp, frame)))
                    if spin_until(node, lambda s=stamp: s in got["3d"], 1.0, [perception]):
                        break
            # an optical frame's TF comes after any of frame 3_000's, on the same /tf publisher
            image_pub.publish(rgb8_image_msg(rgb, header(4_000, FRAME)))
            assert spin_until(node, lambda: 4_000 in got["tf"], 30.0, [perception]), perception.log()[-3000:]
        finally:
            code = perception.stop()
        log = perception.log()
        assert code in (0, -2) and "Traceback" not in log, log[-3000:]
        assert {1_000, 2_000, 3_000} <= set(got["3d"])
        assert got["3d"][1_000].header.frame_id == "camera_link" and got["3d"][3_000].header.frame_id == ""
        assert len(got["3d"][1_000].detections) > 0 and len(got["3d"][3_000].detections) > 0
        assert log.count("image frame_id 'camera_link' does not name an optical frame") == 1
        assert log.count("empty frame_id") == 1
        assert got["tf"].get(1_000) and 3_000 not in got["tf"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_frames_stream_stops_the_node_cleanly(checkpoint, tmp_path, signum):
    """SIGINT or SIGTERM while the inference thread is busy publishing: the node stops the thread,
    releases the network and reports its frame count before the ROS context goes down (exit 0,
    no publish on a shut-down context)."""
    with ros_test_node("perception_feeder_stop") as node:
        got = _collect(node)
        image_pub = node.create_publisher(Image, "image", 10)
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable")
        try:
            assert spin_until(node, lambda: "serving" in perception.log(), 90.0, [perception])
            assert spin_until(node, lambda: image_pub.get_subscription_count() > 0, 90.0, [perception])
            rgb = (np.random.default_rng(2).random((120, 160, 3)) * 255).astype(np.uint8)
            stamp = 10_000
            while len(got["3d"]) < 3 and stamp < 10_000 + 400:  # frames keep streaming, 20 per second at most
                image_pub.publish(rgb8_image_msg(rgb, header(stamp, FRAME)))
                spin_until(node, lambda: len(got["3d"]) >= 3, 0.05)
                stamp += 1
            assert len(got["3d"]) >= 3, perception.log()[-3000:]
            image_pub.publish(rgb8_image_msg(rgb, header(stamp, FRAME)))  # one more in flight
        finally:
            code = perception.stop(signum=signum)
        log = perception.log()
        assert code == 0, log[-3000:]
        assert "released the network" in log and "processed " in log, log[-3000:]
        assert "context is invalid" not in log and "Traceback" not in log, log[-3000:]


def test_detections_3d_carry_the_viewpoint_stage_rotation(checkpoint, tmp_path):
    """With a crop viewpoint stage, detections_3d carries its best hypothesis: the same rotations as
    the in-process Pipeline on the same image, not network 1's."""
    from scene3d_ros.model.viewpoint import ViewpointModelConfig, ViewpointNet
    from scene3d_ros.model.viewpoint_checkpoint import save_viewpoint_checkpoint
    from scene3d_ros.pipeline import Pipeline

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    stage = tmp_path / "viewpoint.pt"
    save_viewpoint_checkpoint(stage, ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=16), len(CATEGORIES)),
                              CATEGORIES)
    rgb = (np.random.default_rng(1).random((120, 160, 3)) * 255).astype(np.uint8)
    intrinsics = CameraIntrinsics.from_fov(160, 120, 60)
    with ros_test_node("perception_viewpoint") as node:
        got = _collect(node)
        image_pub = node.create_publisher(Image, "image", 10)
        info_pub = node.create_publisher(CameraInfo, "camera_info", 10)
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable", "-p",
                                        f"viewpoint_model_path:={stage}", "-p", "viewpoint_hypotheses:=3")
        try:
            assert spin_until(node, lambda: "serving" in perception.log() and image_pub.get_subscription_count() > 0
                              and info_pub.get_subscription_count() > 0, 90.0, [perception]), perception.log()[-3000:]
            info_pub.publish(camera_info_msg(intrinsics, header(1_000, FRAME)))
            image_pub.publish(rgb8_image_msg(rgb, header(1_000, FRAME)))
            assert spin_until(node, lambda: 1_000 in got["3d"], 60.0, [perception]), perception.log()[-3000:]
        finally:
            assert perception.stop() in (0, -2), perception.log()[-3000:]
    published = [d.results[0].pose.pose.orientation for d in got["3d"][1_000].detections]
    published = np.array([[q.w, q.x, q.y, q.z] for q in published])
    objects = Pipeline(checkpoint, "cpu", score_threshold=0.0, viewpoint_checkpoint=stage, viewpoint_k=3)(rgb, intrinsics)
    assert len(objects) == len(published) >= 1
    np.testing.assert_allclose(published, np.array([o.quaternion for o in objects]), atol=1e-4)
    assert not np.allclose(published, np.array([o.network_quaternion for o in objects]), atol=1e-2)
