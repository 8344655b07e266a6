"""perception_node with two inference workers (``inference_workers:=2``) over real DDS, tiny network.

Frames run in parallel, yet what the node publishes stays in time order: a fast camera whose
frames cost very different times (small and large images alternate, so one worker's frame often
finishes after the other's newer one) gets detections whose stamps strictly increase on every
topic, each frame's detections, descriptors and TF frames agree, and the node stops cleanly
(every worker joined, the network released). A slow camera gets every frame answered.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import perception_process, ros_test_node, spin_until
from sensor_msgs.msg import Image
from tf2_msgs.msg import TFMessage
from tiny_model import save_tiny_checkpoint
from vision_msgs.msg import Detection2DArray, Detection3DArray

from scene3d_ros.ros.conversions import header, rgb8_image_msg, stamp_to_ns
from scene3d_ros.ros.perception_node import (
    CPU_INFERENCE_WORKERS,
    MAX_INFERENCE_WORKERS,
    RELEASED_LOG,
    TF_QOS,
    parse_shutdown_stats,
    resolve_inference_workers,
)

FRAME = "cam_optical"
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
SIZES = [(1280, 960), (96, 72)]  # alternating: the large frame costs many times the small one


def test_automatic_worker_count_is_two_on_the_cpu_and_one_on_cuda():
    assert resolve_inference_workers(0, "cpu") == CPU_INFERENCE_WORKERS == 2
    assert resolve_inference_workers(0, "cuda") == 1
    assert resolve_inference_workers(3, "cpu") == 3 and resolve_inference_workers(1, "cuda") == 1
    for bad in (-1, MAX_INFERENCE_WORKERS + 1):
        with pytest.raises(ValueError, match="inference_workers"):
            resolve_inference_workers(bad, "cpu")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("workers") / "tiny.pt")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(5)
    return [(rng.random((h, w, 3)) * 255).astype(np.uint8) for w, h in SIZES]


def _record(node) -> dict[str, list]:
    """(stamp ns, message) per topic, in arrival order; /tf as (stamp ns, child frame ids) per message."""
    got: dict[str, list] = {"3d": [], "2d": [], "desc": [], "tf": []}
    node.create_subscription(Detection3DArray, "detections_3d",
                             lambda m: got["3d"].append((stamp_to_ns(m.header.stamp), m)), RELIABLE)
    node.create_subscription(Detection2DArray, "detections_2d",
                             lambda m: got["2d"].append((stamp_to_ns(m.header.stamp), m)), RELIABLE)
    node.create_subscription(Image, "descriptors", lambda m: got["desc"].append((stamp_to_ns(m.header.stamp), m)),
                             RELIABLE)
    node.create_subscription(TFMessage, "/tf", lambda m: got["tf"].append(
        (stamp_to_ns(m.transforms[0].header.stamp), sorted(t.child_frame_id for t in m.transforms))), TF_QOS)
    return got


def _stop(perception) -> tuple[str, dict[str, float]]:
    code = perception.stop()
    log = perception.log()
    assert code in (0, -2) and "Traceback" not in log, log[-3000:]
    assert RELEASED_LOG in log and "still busy" not in log, log[-3000:]  # every worker joined
    stats = parse_shutdown_stats(log)
    assert stats is not None and "late" in stats, log[-3000:]
    return log, stats


def test_two_workers_publish_in_time_order_and_each_frame_stays_consistent(checkpoint, images, tmp_path):
    with ros_test_node("workers_fast_camera") as node:
        got = _record(node)
        publisher = node.create_publisher(Image, "image", RELIABLE)
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable",
                                        "-p", "inference_workers:=2")
        sent = 0
        try:
            assert spin_until(node, lambda: "serving" in perception.log() and publisher.get_subscription_count() > 0,
                              90.0, [perception]), perception.log()[-3000:]
            while len(got["3d"]) < 30 and sent < 1500:  # ~20 frames per second
                publisher.publish(rgb8_image_msg(images[sent % 2], header(1_000_000_000 + 1_000_000 * sent, FRAME)))
                sent += 1
                spin_until(node, lambda: False, 0.05, [perception])
            last = 1_000_000_000 + 1_000_000 * (sent - 1)
            assert spin_until(node, lambda: all(any(s == last for s, _ in received) for received in got.values()),
                              30.0, [perception]), perception.log()[-3000:]  # the newest frame is never late
            for k in range(2):  # the node stops while both workers may be busy
                publisher.publish(rgb8_image_msg(images[k], header(last + 1_000_000 * (k + 1), FRAME)))
            spin_until(node, lambda: False, 0.1, [perception])
        finally:
            log, stats = _stop(perception)
    assert len(got["3d"]) >= 30, (len(got["3d"]), log[-3000:])
    assert re.search(r"\(2 inference workers, each \d+ intra-op threads, OMP_WAIT_POLICY=", log), log[-3000:]
    for topic, received in got.items():
        stamps = [s for s, _ in received]
        assert stamps == sorted(set(stamps)), f"{topic} out of order or repeated: {stamps}"
    # up to the last frame waited for: every output received (after it, the listener stopped listening)
    got = {topic: [(s, m) for s, m in received if s <= last] for topic, received in got.items()}
    detections = dict(got["3d"])
    assert len(detections) <= stats["processed"] <= len(detections) + 2
    assert stats["processed"] + stats["late"] + stats["dropped"] <= stats["received"] <= sent + 2  # DDS may drop too
    tf = dict(got["tf"])
    for stamp, d2 in got["2d"]:  # one frame's outputs describe the same objects
        d3 = detections[stamp]
        ids = sorted(d.id for d in d3.detections)
        assert len(d3.detections) == len(d2.detections) == dict(got["desc"])[stamp].height >= 1
        assert tf[stamp] == ids
        assert sorted(d.id for d in d2.detections) == ids
    assert set(dict(got["2d"])) == set(dict(got["desc"])) == set(tf) == set(detections)


def test_two_workers_answer_every_frame_of_a_slow_camera(checkpoint, images, tmp_path):
    """One frame a second, far slower than inference: every frame is answered, none is dropped or late."""
    stamps = [2_000_000_000 + 1_000_000_000 * k for k in range(6)]
    with ros_test_node("workers_slow_camera") as node:
        got = _record(node)
        publisher = node.create_publisher(Image, "image", RELIABLE)
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable",
                                        "-p", "inference_workers:=2")
        try:
            assert spin_until(node, lambda: "serving" in perception.log() and publisher.get_subscription_count() > 0,
                              90.0, [perception]), perception.log()[-3000:]
            for k, stamp in enumerate(stamps):
                publisher.publish(rgb8_image_msg(images[k % 2], header(stamp, FRAME)))
                spin_until(node, lambda: False, 1.0, [perception])  # the camera's period
            assert spin_until(node, lambda: len(got["3d"]) >= len(stamps), 30.0, [perception]), (
                [s for s, _ in got["3d"]], perception.log()[-3000:])
        finally:
            log, stats = _stop(perception)
    assert [s for s, _ in got["3d"]] == stamps
    assert (stats["processed"], stats["dropped"], stats["late"], stats["received"]) == (len(stamps), 0, 0, len(stamps))
