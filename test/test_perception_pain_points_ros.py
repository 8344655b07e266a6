"""perception_node against the robot users' pain points (DESIGN.md), over real DDS, tiny network.

- QoS: every publisher/subscription reliability pair either delivers or makes the node log a
  clear incompatible-QoS warning (never a silent no-output).
- Keep-latest: a burst faster than inference is answered without any frame processed twice,
  in stamp order, and the newest frame of the burst is processed.
- The debug image is rendered only while someone subscribes to it.
- Without camera_info the node still answers (default intrinsics) and says so, throttled.
- Pipeline.close drops the network (on CUDA the GPU memory returns to its baseline:
  test_pipeline_cuda.py); a stopping node's inference thread closes its pipeline (logged).
"""

from __future__ import annotations

import time
import weakref

import numpy as np
import pytest
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import perception_process, ros_test_node, spin_until
from sensor_msgs.msg import Image
from tiny_model import save_tiny_checkpoint
from vision_msgs.msg import Detection3DArray

from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.pipeline import Pipeline
from scene3d_ros.ros.conversions import header, rgb8_image_msg, stamp_to_ns
from scene3d_ros.ros.perception_node import RELEASED_LOG, THROTTLE_S, parse_shutdown_stats

FRAME = "cam_optical"
WIDTH, HEIGHT = 160, 120
RGB = (np.random.default_rng(0).random((HEIGHT, WIDTH, 3)) * 255).astype(np.uint8)
RELIABLE = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
BEST_EFFORT = QoSProfile(depth=20, reliability=ReliabilityPolicy.BEST_EFFORT)
NO_CAMERA_INFO_WARNING = "no camera_info received yet"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("pain_points") / "tiny.pt")


def _image(stamp_ns: int) -> Image:
    return rgb8_image_msg(RGB, header(stamp_ns, FRAME))


def _record_detections(node) -> list[tuple[int, Detection3DArray]]:
    """(stamp in ns, message) of every detections_3d message, in arrival order (duplicates kept)."""
    received: list[tuple[int, Detection3DArray]] = []
    node.create_subscription(Detection3DArray, "detections_3d",
                             lambda m: received.append((stamp_to_ns(m.header.stamp), m)), RELIABLE)
    return received


def _wait_until_serving(node, perception, publisher) -> None:
    """The node has warmed up and ``publisher`` (a compatible one) is matched with its subscription."""
    assert spin_until(node, lambda: "serving" in perception.log() and publisher.get_subscription_count() > 0,
                      90.0, [perception]), perception.log()[-3000:]


def _stop(perception) -> tuple[str, dict[str, float]]:
    """Stop the node cleanly; its log and the counters of its shutdown line. A frame whose first
    message has arrived counts as processed: the stopping node lets its inference thread finish
    publishing it."""
    code = perception.stop()
    log = perception.log()
    assert code in (0, -2) and "Traceback" not in log, log[-3000:]
    assert RELEASED_LOG in log, log[-3000:]  # the inference thread dropped the network on its way out
    stats = parse_shutdown_stats(log)
    assert stats is not None, log[-3000:]
    return log, stats


@pytest.mark.parametrize("node_reliability", ["reliable", "best_effort"])
def test_every_qos_pair_delivers_or_warns(node_reliability, checkpoint, tmp_path):
    """A reliable and a best-effort publisher on ``image``, alternating frames with their own stamps:
    what the node's subscription can match is answered; the one it cannot (best-effort publisher,
    reliable subscription) is never answered and the node's log names the problem and the fix."""
    bases = {"reliable": 1_000_000_000, "best_effort": 2_000_000_000}  # stamp ranges of each publisher, ns
    compatible = {"reliable"} if node_reliability == "reliable" else {"reliable", "best_effort"}
    with ros_test_node("qos_publishers") as node:
        received = _record_detections(node)
        offered_incompatible = []  # the publisher side sees the mismatch too
        publishers = {"reliable": node.create_publisher(Image, "image", RELIABLE),
                      "best_effort": node.create_publisher(Image, "image", BEST_EFFORT, event_callbacks=(
                          PublisherEventCallbacks(incompatible_qos=offered_incompatible.append)))}
        perception = perception_process(tmp_path, checkpoint, "-p", f"image_reliability:={node_reliability}")

        def answered(kind: str) -> bool:
            return any(bases[kind] <= stamp < bases[kind] + 1_000_000 for stamp, _ in received)

        def done() -> bool:
            warned = node_reliability == "best_effort" or "incompatible QoS" in perception.log()
            return warned and all(answered(kind) for kind in compatible)

        try:
            _wait_until_serving(node, perception, publishers["reliable"])
            for k in range(40):
                for kind, publisher in publishers.items():
                    publisher.publish(_image(bases[kind] + k))
                    spin_until(node, lambda kind=kind: answered(kind), 0.5, [perception])
                if done() and k >= 2:  # the incompatible publisher has sent a few frames by now
                    break
        finally:
            log, _ = _stop(perception)
    for kind in compatible:
        assert answered(kind), f"{kind} publisher -> {node_reliability} subscription delivered nothing"
    if node_reliability == "reliable":
        assert not answered("best_effort")
        assert "incompatible QoS on '/image'" in log and "RELIABILITY" in log, log[-3000:]
        assert "set image_reliability:=best_effort" in log
        assert offered_incompatible
    else:
        assert "incompatible QoS" not in log and not offered_incompatible


def test_a_burst_is_answered_newest_last_and_no_frame_twice(checkpoint, tmp_path):
    """Ten frames published at once (far faster than inference): the keep-latest queue drops the
    middle ones, never processes one twice, answers in stamp order and ends on the newest. The
    subscription's history (qos_depth) holds the whole burst, so the node's queue, not DDS, drops.
    A frame sent after the burst's answer closes it: a duplicate of a burst frame would be
    answered before it (results go out in stamp order, one publisher)."""
    burst = [5_000_000_000 + 1_000_000 * k for k in range(10)]
    closing = burst[-1] + 1_000_000
    with ros_test_node("burst_publisher") as node:
        received = _record_detections(node)
        publisher = node.create_publisher(Image, "image", RELIABLE)
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable",
                                        "-p", f"qos_depth:={len(burst)}")
        try:
            _wait_until_serving(node, perception, publisher)
            for stamp in burst:
                publisher.publish(_image(stamp))
            assert spin_until(node, lambda: any(s == burst[-1] for s, _ in received), 60.0, [perception]), (
                [s for s, _ in received], perception.log()[-3000:])
            publisher.publish(_image(closing))
            assert spin_until(node, lambda: any(s == closing for s, _ in received), 60.0, [perception]), (
                [s for s, _ in received], perception.log()[-3000:])
        finally:
            _, stats = _stop(perception)
    assert [s for s, _ in received].count(closing) == 1 and received[-1][0] == closing
    stamps = [s for s, _ in received[:-1]]
    assert len(stamps) == len(set(stamps)), f"a frame was processed twice: {stamps}"
    assert stamps == sorted(stamps) and set(stamps) <= set(burst)
    assert stamps[-1] == burst[-1], "the newest frame of the burst was not processed"
    assert len(stamps) < len(burst), "no frame was dropped: the burst did not outrun inference"
    assert stats["processed"] == len(stamps) + 1
    # every frame is processed, replaced in the queue (dropped) or, with two inference workers (the
    # CPU default), overtaken by a newer frame's result (late): none is missing from the counts
    late = stats.get("late") or 0.0
    assert stats["received"] == len(burst) + 1 and stats["processed"] + stats["dropped"] + late == len(burst) + 1


def test_debug_image_is_rendered_only_while_subscribed(checkpoint, tmp_path):
    """Frames processed before anyone subscribes to debug_image render nothing; after a subscriber
    appears the images reach it. Counted by the node itself (its shutdown line)."""
    with ros_test_node("debug_viewer") as node:
        received = _record_detections(node)
        debug_stamps: list[int] = []
        publisher = node.create_publisher(Image, "image", RELIABLE)
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable")
        stamp = 7_000_000_000

        def feed_until(predicate, timeout: float) -> bool:
            nonlocal stamp
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                stamp += 1_000_000
                publisher.publish(_image(stamp))
                if spin_until(node, predicate, 0.3, [perception]):
                    return True
            return predicate()

        try:
            _wait_until_serving(node, perception, publisher)
            assert feed_until(lambda: len(received) >= 3, 60.0), perception.log()[-3000:]
            before_subscriber = len(received)
            node.create_subscription(Image, "debug_image",
                                     lambda m: debug_stamps.append(stamp_to_ns(m.header.stamp)), RELIABLE)
            assert feed_until(lambda: len(debug_stamps) >= 2, 60.0), perception.log()[-3000:]
        finally:
            _, stats = _stop(perception)
    assert stats["debug_images_rendered"] >= len(debug_stamps) >= 2
    assert stats["debug_images_rendered"] <= stats["processed"] - before_subscriber, (
        f"{stats['debug_images_rendered']:.0f} debug images rendered but only "
        f"{stats['processed'] - before_subscriber:.0f} frames were processed while subscribed")


def test_missing_camera_info_still_answers_with_a_throttled_warning(checkpoint, tmp_path):
    """No camera_info ever: every frame is answered (default intrinsics, positive depth) and the
    warning appears, at most once per THROTTLE_S seconds."""
    with ros_test_node("no_camera_info") as node:
        received = _record_detections(node)
        publisher = node.create_publisher(Image, "image", RELIABLE)
        perception = perception_process(tmp_path, checkpoint, "-p", "image_reliability:=reliable")
        try:
            _wait_until_serving(node, perception, publisher)
            start = time.monotonic()
            for k in range(4):
                stamp = 9_000_000_000 + 1_000_000 * k
                publisher.publish(_image(stamp))
                assert spin_until(node, lambda stamp=stamp: any(s == stamp for s, _ in received), 30.0,
                                  [perception]), perception.log()[-3000:]
            elapsed = time.monotonic() - start
        finally:
            log, stats = _stop(perception)
    assert stats["processed"] == 4
    warnings = log.count(NO_CAMERA_INFO_WARNING)
    assert 1 <= warnings <= 1 + int(elapsed / THROTTLE_S), (warnings, elapsed)
    detections = [d for _, msg in received for d in msg.detections]
    assert detections, "the tiny network with threshold 0 always reports objects"
    for det in detections:
        position = det.results[0].pose.pose.position
        assert np.isfinite([position.x, position.y, position.z]).all() and position.z > 0


def _frame() -> tuple[np.ndarray, CameraIntrinsics]:
    return RGB, CameraIntrinsics.from_fov(WIDTH, HEIGHT, 60.0)


def test_pipeline_close_drops_the_network(checkpoint):
    """After close nothing references the network any more, so its memory (CPU or GPU) can go."""
    pipeline = Pipeline(checkpoint, "cpu", score_threshold=0.0)
    pipeline(*_frame())
    model, parameter = weakref.ref(pipeline.model), weakref.ref(next(pipeline.model.parameters()))
    pipeline.close()
    assert model() is None and parameter() is None  # freed by reference counting, no gc pass needed
