"""GraphRecorder: a node that collects, per camera frame, what the perception graph published.

Subscribes (relative topics, reliable): ``image``, ``camera_info``, ``ground_truth/detections_3d``
(from the synthetic camera), ``debug_image``, ``detections_3d`` and ``objects``, and joins them by
header stamp. Each message's arrival is timed with the wall clock, so the latency of a frame is
``arrival - header stamp`` (the camera stamps with the same machine's clock). Used by ``demo``
and the graph benchmarks; holds at most ``max_frames_kept`` frames.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Detection3DArray

from scene3d_ros.pipeline import DetectedObject
from scene3d_ros.ros.conversions import quaternion_wxyz, stamp_to_ns

TOPICS = {
    "image": Image, "camera_info": CameraInfo, "ground_truth": Detection3DArray, "debug_image": Image,
    "detections_3d": Detection3DArray, "objects": Detection3DArray,
}
TOPIC_NAMES = {"ground_truth": "ground_truth/detections_3d"}


@dataclass
class RecordedFrame:
    """Messages of one camera frame (by kind, see :data:`TOPICS`) and their arrival times (ns)."""

    stamp_ns: int
    messages: dict = field(default_factory=dict)
    arrival_ns: dict = field(default_factory=dict)

    def has(self, *kinds: str) -> bool:
        return all(k in self.messages for k in kinds)

    def latency_ms(self, kind: str) -> float:
        """Wall-clock time from the frame's stamp to the arrival of ``kind``, milliseconds."""
        return (self.arrival_ns[kind] - self.stamp_ns) / 1e6


class GraphRecorder(Node):
    """Records the graph's outputs per frame (see the module doc)."""

    def __init__(self, name: str = "scene3d_graph_recorder", max_frames_kept: int = 64) -> None:
        super().__init__(name)
        self._max_frames = max_frames_kept
        self.frames: OrderedDict[int, RecordedFrame] = OrderedDict()
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        for kind, msg_type in TOPICS.items():
            self.create_subscription(msg_type, TOPIC_NAMES.get(kind, kind),
                                     lambda msg, kind=kind: self._on_message(kind, msg), qos)

    def _on_message(self, kind: str, msg) -> None:
        now = time.time_ns()
        stamp = stamp_to_ns(msg.header.stamp)
        frame = self.frames.get(stamp)
        if frame is None:
            frame = self.frames[stamp] = RecordedFrame(stamp)
            while len(self.frames) > self._max_frames:
                self.frames.popitem(last=False)
        frame.messages[kind] = msg
        frame.arrival_ns[kind] = now

    def complete_frames(self, *kinds: str) -> list[RecordedFrame]:
        """Frames holding every one of ``kinds``, oldest first."""
        return [f for f in self.frames.values() if f.has(*kinds)]


FRAME_KINDS = ("image", "camera_info", "ground_truth", "debug_image", "detections_3d", "objects")


def record_graph(specs: list, camera, env: dict[str, str], frames: int, timeout_s: float,
                 log_dir: Path, kinds: tuple[str, ...] = FRAME_KINDS) -> tuple[list[RecordedFrame], int]:
    """Start the nodes ``specs``, wait until they serve, then start ``camera`` and record ``frames``
    complete frames (every one of ``kinds``, default :data:`FRAME_KINDS`); stop everything.

    Each node's output goes to ``log_dir/<name>.log``. Returns the recorded frames (oldest first)
    and how many camera frames were seen. Raises RuntimeError when a node exits early and
    TimeoutError after ``timeout_s`` seconds, both naming the logs.
    """
    from scene3d_ros.cli.bringup import start_graph, stop_graph

    names = [spec.name for spec in (*specs, camera)]
    logs = [open(Path(log_dir) / f"{name}.log", "w") for name in names]  # noqa: SIM115
    processes, node = [], None
    rclpy.init()
    try:
        node = GraphRecorder(max_frames_kept=4 * frames + 16)
        processes = start_graph(specs, env=env, stdout=logs[:len(specs)])
        deadline = time.monotonic() + timeout_s

        def wait(condition, what: str) -> None:
            while not condition():
                rclpy.spin_once(node, timeout_sec=0.1)
                dead = [n for n, p in zip(names, processes, strict=False) if p.poll() is not None]
                if dead:
                    raise RuntimeError(f"{', '.join(dead)} exited while waiting for {what}; see {log_dir}/*.log")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no {what} within {timeout_s:.0f} s; see the node logs in {log_dir}/")

        wait(lambda: node.count_publishers("detections_3d") > 0 and node.count_publishers("objects") > 0,
             "ready perception and retrieval nodes")
        processes += start_graph([camera], env=env, stdout=logs[len(specs):])
        wait(lambda: len(node.complete_frames(*kinds)) >= frames, f"{frames} processed frames")
        return node.complete_frames(*kinds)[:frames], len(node.frames)
    finally:
        stop_graph(processes)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for log in logs:
            log.close()


def objects_from_msg(msg: Detection3DArray) -> list[DetectedObject]:
    """The retrieval node's ``objects`` as pipeline objects (no 2D box, mask or descriptor).

    Reads the documented JSON ``id`` of each detection (``model_id``, ``fallback``, ``distance``);
    ``size`` is ``bbox.size`` (metres along the object's x/y/z).
    """
    objects = []
    for det in msg.detections:
        hypothesis = det.results[0]
        info = json.loads(det.id) if det.id.startswith("{") else {}
        pose = hypothesis.pose.pose
        objects.append(DetectedObject(
            category=hypothesis.hypothesis.class_id, label=0, score=float(hypothesis.hypothesis.score),
            box=np.zeros(4), mask=None, quaternion=quaternion_wxyz(pose.orientation),
            translation=np.array([pose.position.x, pose.position.y, pose.position.z]),
            size=np.array([det.bbox.size.x, det.bbox.size.y, det.bbox.size.z]),
            model_id=info.get("model_id"), fallback=info.get("fallback"), retrieval_distance=info.get("distance")))
    return objects


def ground_truth_from_msg(msg: Detection3DArray) -> list[dict]:
    """The synthetic camera's ground truth: per object category, model id, quaternion, translation."""
    return [{"category": d.results[0].hypothesis.class_id, "model_id": d.id,
             "quaternion": quaternion_wxyz(d.results[0].pose.pose.orientation),
             "translation": np.array([d.results[0].pose.pose.position.x, d.results[0].pose.pose.position.y,
                                      d.results[0].pose.pose.position.z])} for d in msg.detections]

