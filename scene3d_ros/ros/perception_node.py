"""perception_node: camera images in, posed and classified objects out.

Subscribes ``image`` (sensor_msgs/Image) and ``camera_info``; publishes, each with the input
image's header (stamp and frame_id):
  detections_2d   vision_msgs/Detection2DArray (box, class_id = category, score)
  detections_3d   vision_msgs/Detection3DArray (pose in the optical frame, metres; bbox.size =
                  the 3D box along the object's x front / y left / z up axes)
  descriptors     sensor_msgs/Image 32FC1, one row per detection in the same order
  masks           sensor_msgs/Image mono8, 28 rows per detection in the same order (height 28 N,
                  width 28): each object's mask probability x 255 over its box, what the retrieval
                  node's silhouette check compares with the shape database's view silhouettes
  hypotheses      sensor_msgs/Image 32FC1, only with the crop viewpoint stage: one row per detection
                  in the same order, its k rotation hypotheses (w, x, y, z, probability) x k,
                  egocentric (object -> optical frame), most probable first, for the retrieval
                  node's resolution policy
  shape_classes   vision_msgs/Detection2DArray, only with a crop viewpoint stage that has a shape head:
                  per detection in the same order, its box and the probability of each shape class
                  (class_id "<category>/<subtype>", score) of its category, most probable first
  debug_image     sensor_msgs/Image rgb8 (masks, boxes, pose axes), rendered only while subscribed
  /tf             one frame ``<tf_prefix><category>_<k>`` per object under the image's frame_id
                  (none for an image without frame_id), with the network's pose: for running this
                  node alone (``publish_tf``); the launched graph switches it off, and retrieval_node
                  publishes the frames of the final poses

Poses follow the optical-frame convention of the image's frame (REP 103): an empty frame_id, or
one that does not name an optical frame (often the camera body frame), is warned about once.

Image callbacks only hand the still-serialized message to a keep-latest slot; an inference
thread deserializes the newest frame and runs the network (a frame is never processed twice;
frames arriving during inference replace each other, count as dropped and are never
deserialized). The network is loaded and run on that thread only (see
``_start_inference_threads``), unless ``inference_workers`` asks for several: each worker then
takes the newest frame when it is free and runs the same network on it (frames in parallel
instead of one frame's operations in parallel), and a result that another worker's newer frame
overtook is dropped, counted and logged, never published out of order
(:class:`~scene3d_ros.frame_queue.PublishOrder`). Bad input (encodings, sizes, intrinsics) is logged, throttled, and
the node keeps serving. A publisher whose QoS the image or camera_info subscription cannot match
(DDS then delivers nothing) is reported with a warning that names the fix. At shutdown the node
logs its counters (frames processed, mean processing time, received, dropped, debug images
rendered, results dropped as late); :func:`parse_shutdown_stats` reads them back.
"""

from __future__ import annotations

if __name__ == "__main__":  # python -m scene3d_ros.ros.perception_node: before the imports below load torch
    from scene3d_ros.ros.node_main import use_passive_openmp

    use_passive_openmp()

import os
import re
import sys
import threading
import time
from functools import partial

import numpy as np
import torch
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, SetParametersResult
from rclpy.event_handler import QoSRequestedIncompatibleQoSInfo, SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import QoSPolicyKind, QoSProfile, ReliabilityPolicy, qos_policy_name_from_kind
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection2DArray, Detection3DArray

from scene3d_ros import MASK_THRESHOLD
from scene3d_ros.frame_queue import LatestFrameQueue, PublishOrder
from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.model import CheckpointError
from scene3d_ros.model.viewpoint import HYPOTHESIS_SEPARATION_DEG
from scene3d_ros.pipeline import DetectedObject, Pipeline
from scene3d_ros.ros.conversions import (
    ImageConversionError,
    detection2d_msg,
    detection3d_msg,
    frame_convention_problem,
    image_msg_to_rgb,
    intrinsics_from_camera_info,
    rgb8_image_msg,
    stamp_to_ns,
    transform_stamped_msg,
)
from scene3d_ros.ros.node_main import TF_QOS, declare_described, run_node
from scene3d_ros.ros.wire_formats import box_masks_msg, descriptors_msg, hypotheses_msg, shape_classes_msg
from scene3d_ros.visualization import draw_objects
from scene3d_ros.world.cad_library import CadLibraryError

THROTTLE_S = 5.0
RELEASED_LOG = "released the network"
"""Logged by the inference thread when it has stopped and dropped the network (GPU memory freed)."""
STOP_TIMEOUT_S = 10.0
"""How long a stopping node waits for its inference threads to finish their current frames (s)."""
MAX_INFERENCE_WORKERS = 8
CPU_INFERENCE_WORKERS = 2
"""Workers of ``inference_workers: 0`` on the CPU: two frames in flight, one intra-op thread each on
2 cores, met both of issue 18's shared-core targets where no single-frame setting did
(benchmarks/results/pipeline_shared_core.md, graph_shared_core.md, 2026-12-07)."""


def resolve_inference_workers(requested: int, device: str) -> int:
    """The inference worker count for ``requested`` (0 = automatic: :data:`CPU_INFERENCE_WORKERS` on
    the CPU, 1 on CUDA, where one stream keeps the GPU busy) and the ``device`` parameter
    (auto / cpu / cuda). ValueError outside 0..MAX_INFERENCE_WORKERS."""
    if not 0 <= requested <= MAX_INFERENCE_WORKERS:  # the declared range holds for parameters set by ROS
        raise ValueError(f"inference_workers must be in 0..{MAX_INFERENCE_WORKERS}, got {requested}")
    if requested:
        return requested
    on_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return 1 if on_cuda else CPU_INFERENCE_WORKERS


# The counters the node logs when it stops (see PerceptionNode.destroy_node); parse_shutdown_stats reads them back.
_SHUTDOWN_STATS = re.compile(
    r"processed (?P<processed>\d+) frames \(mean (?P<processing_ms>[\d.]+) ms each\b[^;)]*"
    r"(?:; network (?P<inference_ms>[\d.]+) ms)?\); received "
    r"(?P<received>\d+), dropped (?P<dropped>\d+); debug images rendered (?P<debug_images_rendered>\d+)"
    r"(?:; late results dropped (?P<late>\d+))?")


def parse_shutdown_stats(log: str) -> dict[str, float] | None:
    """The counters of the last shutdown line in a perception_node log, None if there is none.

    Keys: ``processed`` (frames published), ``processing_ms`` (mean per processed frame, from taking
    it off the queue to the last publish: conversion + network + messages, milliseconds),
    ``inference_ms`` (of that, the mean time in the network call; absent in older logs),
    ``received`` (images offered to the keep-latest queue), ``dropped`` (replaced before inference
    took them), ``debug_images_rendered``, ``late`` (results of several inference workers dropped
    because a newer frame's result was published first; absent in older logs).
    """
    matches = list(_SHUTDOWN_STATS.finditer(log))
    if not matches:
        return None
    return {key: float(value) for key, value in matches[-1].groupdict().items() if value is not None}


def _viewpoint_checkpoint(parameter: str) -> str | None:
    """The Pipeline's ``viewpoint_checkpoint`` of the ``viewpoint_model_path`` parameter: empty ->
    None (the shipped stage when there is one), ``none`` -> "" (no stage), else the path."""
    value = parameter.strip()
    if not value:
        return None
    return "" if value.lower() == "none" else value


class PerceptionNode(Node):
    """Thin adapter: parameters -> Pipeline -> messages."""

    def __init__(self) -> None:
        super().__init__("perception_node")
        p = self._declare_parameters()
        if p["image_reliability"] not in ("best_effort", "reliable"):
            raise ValueError(f"image_reliability must be best_effort or reliable, not '{p['image_reliability']}'")
        self._image_reliability = p["image_reliability"]
        self._tf_prefix = p["tf_prefix"]
        self._default_hfov = p["default_hfov_deg"]
        self._publish_tf = p["publish_tf"]
        self._running = True
        self._pipeline = self._start_inference_threads(p)
        self._descriptor_dim = int(self._pipeline.model.config.descriptor.dim)
        self.add_on_set_parameters_callback(self._on_parameters)

        reliability = (ReliabilityPolicy.RELIABLE if p["image_reliability"] == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        input_qos = QoSProfile(depth=p["qos_depth"], reliability=reliability)
        output_qos = QoSProfile(depth=p["qos_depth"], reliability=ReliabilityPolicy.RELIABLE)
        self._pub_2d = (self.create_publisher(Detection2DArray, "detections_2d", output_qos)
                        if p["publish_detections_2d"] else None)
        self._pub_3d = self.create_publisher(Detection3DArray, "detections_3d", output_qos)
        self._pub_desc = self.create_publisher(Image, "descriptors", output_qos) if p["publish_descriptors"] else None
        self._pub_masks = (self.create_publisher(Image, "masks", output_qos)
                           if p["publish_masks"] and self._pipeline.model.roi_heads.has_mask() else None)
        stage = self._pipeline.viewpoint_stage
        self._hypotheses_k = stage.k if stage is not None else 0  # hypotheses per object
        self._pub_hypotheses = (self.create_publisher(Image, "hypotheses", output_qos)
                                if p["publish_hypotheses"] and stage is not None else None)
        self._pub_shape_classes = (self.create_publisher(Detection2DArray, "shape_classes", output_qos)
                                   if p["publish_hypotheses"] and stage is not None
                                   and stage.model.shape_logits is not None else None)
        self._pub_debug = self.create_publisher(Image, "debug_image", output_qos)
        self._pub_tf = self.create_publisher(TFMessage, "/tf", TF_QOS)
        self._camera_info: CameraInfo | None = None
        self._last_errors: dict[str, float] = {}
        self._frames: LatestFrameQueue = LatestFrameQueue()
        self._order = PublishOrder()  # the inference workers publish in time order
        self._processed = 0
        self._processing_s = 0.0  # wall time spent on processed frames, seconds
        self._inference_s = 0.0  # of that, in the network call
        self.debug_images_rendered = 0
        self._checked_frames: set[str] = set()  # image frame_ids already checked (each warned about once)
        self._resized_sizes: set[tuple[int, int, int, int]] = set()  # (camera_info, image) sizes warned about
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, input_qos,
                                 event_callbacks=self._incompatible_qos_warning("camera_info"))
        # raw: frames replaced before inference takes them are never deserialized
        self.create_subscription(Image, "image", self._frames.put, input_qos, raw=True,
                                 event_callbacks=self._incompatible_qos_warning("image"))
        self._serving.set()
        workers = f"{len(self._workers)} inference workers, each " if len(self._workers) > 1 else ""
        self.get_logger().info(f"serving {self._pipeline.checkpoint} on {self._pipeline.device} "
                               f"({workers}{self._pipeline.intra_op_threads} intra-op threads, "
                               f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}); image QoS "
                               f"{p['image_reliability']}, depth {p['qos_depth']}")

    # ----------------------------------------------------------------------- parameters
    def _declare_parameters(self) -> dict:
        declare = partial(declare_described, self)

        unit = [FloatingPointRange(from_value=0.0, to_value=1.0)]
        return {
            "model_path": declare("model_path", "", "Network checkpoint (empty: the shipped default model).",
                                  read_only=True),
            "viewpoint_model_path": declare("viewpoint_model_path", "", "Crop viewpoint stage checkpoint, run after "
                                            "the network on every detection; its best hypothesis is the published "
                                            "rotation (empty: the shipped stage when there is one; 'none': off).",
                                            read_only=True),
            "viewpoint_hypotheses": declare("viewpoint_hypotheses", 5, "Rotation hypotheses per object of the crop "
                                            "viewpoint stage.", integer_range=[IntegerRange(from_value=1, to_value=20)],
                                            read_only=True),
            "viewpoint_mirror_average": declare("viewpoint_mirror_average", True, "Also run the crop viewpoint "
                                                "stage on each crop's mirror image and average the two (twice "
                                                "the stage's compute, fewer front/back flips).", read_only=True),
            "viewpoint_hypothesis_separation_deg": declare("viewpoint_hypothesis_separation_deg",
                                                           HYPOTHESIS_SEPARATION_DEG, "Least angle between two "
                                                           "rotation hypotheses of the crop viewpoint stage, "
                                                           "degrees (0: the k most probable bins, however close).",
                                                           floating_point_range=[FloatingPointRange(
                                                               from_value=0.0, to_value=180.0)], read_only=True),
            "device": declare("device", "auto", "auto (CUDA when available) | cpu | cuda.", read_only=True),
            "score_threshold": declare("score_threshold", 0.5, "Minimum detection score (changeable at run time).",
                                       floating_point_range=unit),
            "mask_threshold": declare("mask_threshold", MASK_THRESHOLD, "Mask probability at which a pixel counts as "
                                      "the object's (debug_image overlay; changeable at run time).",
                                      floating_point_range=[FloatingPointRange(from_value=0.05, to_value=0.95)]),
            "max_detections": declare("max_detections", 20, "At most this many objects per image (run time).",
                                      integer_range=[IntegerRange(from_value=1, to_value=100)]),
            "num_threads": declare("num_threads", 0, "torch intra-op CPU threads of each inference thread (0: "
                                   "torch's default, one per physical core, shared out among the inference "
                                   "workers).", integer_range=[IntegerRange(from_value=0, to_value=256)],
                                   read_only=True),
            "inference_workers": declare("inference_workers", 0, "Inference threads, each running the network on "
                                         "its own frame (frames in parallel); results overtaken by a newer frame's "
                                         "are dropped, never published out of order. 0: automatic (2 on the CPU, "
                                         "1 on CUDA).",
                                         integer_range=[IntegerRange(from_value=0, to_value=MAX_INFERENCE_WORKERS)],
                                         read_only=True),
            "input_size": declare("input_size", 0, "Shorter image side the network runs at, pixels (0: model default).",
                                  integer_range=[IntegerRange(from_value=0, to_value=1600)], read_only=True),
            "image_reliability": declare("image_reliability", "best_effort",
                                         "QoS reliability of the image/camera_info subscriptions: best_effort "
                                         "(matches every publisher) | reliable.", read_only=True),
            "qos_depth": declare("qos_depth", 2, "QoS history depth of subscriptions and publishers.",
                                 integer_range=[IntegerRange(from_value=1, to_value=100)], read_only=True),
            "default_hfov_deg": declare("default_hfov_deg", 60.0, "Horizontal field of view assumed while no valid "
                                        "camera_info has arrived (degrees; a throttled warning says so).",
                                        floating_point_range=[FloatingPointRange(from_value=1.0, to_value=179.0)]),
            "publish_tf": declare("publish_tf", True, "Publish one TF frame per object on /tf (the network's pose; "
                                  "off when retrieval_node publishes the final poses' frames)."),
            "publish_detections_2d": declare("publish_detections_2d", True, "Publish detections_2d.", read_only=True),
            "publish_descriptors": declare("publish_descriptors", True,
                                           "Publish descriptors (the retrieval node needs them).", read_only=True),
            "publish_masks": declare("publish_masks", True, "Publish masks, each object's mask over its box (the "
                                     "retrieval node's silhouette check needs them).", read_only=True),
            "publish_hypotheses": declare("publish_hypotheses", True, "Publish hypotheses, each object's rotation "
                                          "hypotheses with their probabilities, and shape_classes, its shape class "
                                          "probabilities (only with the crop viewpoint stage, shape_classes only "
                                          "when it has a shape head; the retrieval node's resolution policy scores "
                                          "them).", read_only=True),
            "tf_prefix": declare("tf_prefix", "", "Prefix of the object TF frame names."),
        }

    def _on_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == "score_threshold":
                self._pipeline.score_threshold = float(param.value)
            elif param.name == "mask_threshold":
                self._pipeline.mask_threshold = float(param.value)
            elif param.name == "max_detections":
                self._pipeline.max_detections = int(param.value)
            elif param.name == "default_hfov_deg":
                self._default_hfov = float(param.value)
            elif param.name == "publish_tf":
                self._publish_tf = bool(param.value)
            elif param.name == "tf_prefix":
                self._tf_prefix = str(param.value)
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------------- input
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _intrinsics(self, width: int, height: int) -> CameraIntrinsics:
        info = self._camera_info
        if info is None:
            self.get_logger().warning(f"no camera_info received yet: assuming a {self._default_hfov:.0f} deg "
                                      "horizontal field of view (translations will be wrong)",
                                      throttle_duration_sec=THROTTLE_S)
            return CameraIntrinsics.from_fov(width, height, self._default_hfov)
        intrinsics = intrinsics_from_camera_info(info)  # ValueError on NaN/zero K
        if (intrinsics.width, intrinsics.height) == (width, height):
            return intrinsics
        resized = intrinsics.for_image_size(width, height)  # ValueError when the aspect ratios differ
        sizes = (intrinsics.width, intrinsics.height, width, height)
        if sizes not in self._resized_sizes:  # warned about once per pair of sizes
            self._resized_sizes.add(sizes)
            self.get_logger().warning(
                f"camera_info is for {intrinsics.width}x{intrinsics.height} images but the image is {width}x{height}: "
                f"scaling K by {width / intrinsics.width:.4g} x {height / intrinsics.height:.4g} (publish the "
                f"camera_info of the image's resolution to silence this)")
        return resized

    def _incompatible_qos_warning(self, topic: str) -> SubscriptionEventCallbacks:
        """Event callbacks that log a warning naming the fix when a publisher on ``topic`` offers QoS
        this subscription cannot match (DDS then delivers nothing from it, silently otherwise)."""
        def warn(event: QoSRequestedIncompatibleQoSInfo) -> None:
            policy = qos_policy_name_from_kind(event.last_policy_kind)
            hint = ""
            if event.last_policy_kind == QoSPolicyKind.RELIABILITY and self._image_reliability == "reliable":
                hint = " (it publishes best effort): set image_reliability:=best_effort, which matches every publisher"
            self.get_logger().warning(
                f"incompatible QoS on '{self.resolve_topic_name(topic)}': a publisher's {policy} policy does not "
                f"match this subscription (image_reliability {self._image_reliability}); no messages will be "
                f"received from it{hint} [{event.total_count} incompatible publisher(s) so far]")

        return SubscriptionEventCallbacks(incompatible_qos=warn)

    def _throttled_error(self, text: str) -> None:
        """Log ``text`` as an error at most once per THROTTLE_S seconds per distinct message, so one
        bad input does not flood the log and different problems never hide each other."""
        now = time.monotonic()
        if now - self._last_errors.get(text, -1e9) >= THROTTLE_S:
            self._last_errors[text] = now
            self.get_logger().error(text)

    # ----------------------------------------------------------------------- inference threads
    def _start_inference_threads(self, p: dict) -> Pipeline:
        """Load the network on the first inference thread, start the others, and return it once warmed up.

        With one worker every torch call of this node happens on that one thread: once another
        thread (here the executor's) has run a parallel CPU op, OpenMP keeps a second thread team
        and inference on the worker ran 1.45x slower (benchmarks/results/inference_thread.md). With
        ``inference_workers`` N > 1 all N threads call the same Pipeline (safe: a call keeps no
        state on it), each with ``num_threads`` intra-op threads (0: torch's default divided by N,
        at least 1). The first thread releases the network once all have stopped. Loading errors
        are raised here.
        """
        loaded, outcome = threading.Event(), {}
        self._serving = threading.Event()  # set when the subscriptions exist
        count = resolve_inference_workers(int(p["inference_workers"]), p["device"])

        def serve(pipeline: Pipeline, warm_up: bool) -> None:
            if warm_up:  # this thread's first call, before frames wait for it
                pipeline.warm_up()
            while self._running and not self._serving.wait(0.2):
                pass
            self._inference_loop(pipeline)

        def first() -> None:
            try:
                threads = p["num_threads"] or (0 if count == 1 else max(1, torch.get_num_threads() // count))
                pipeline = Pipeline(p["model_path"] or None, p["device"], p["score_threshold"],
                                    max_detections=p["max_detections"], input_size=p["input_size"] or None,
                                    mask_threshold=p["mask_threshold"], num_threads=threads,
                                    viewpoint_checkpoint=_viewpoint_checkpoint(p["viewpoint_model_path"]),
                                    viewpoint_k=p["viewpoint_hypotheses"],
                                    viewpoint_mirror_average=p["viewpoint_mirror_average"],
                                    viewpoint_separation_deg=p["viewpoint_hypothesis_separation_deg"])
                pipeline.warm_up()
                outcome["pipeline"] = pipeline
            except Exception as exc:  # re-raised by the constructor (bad or missing checkpoint, device)
                outcome["error"] = exc
            loaded.set()
            if "pipeline" in outcome:
                try:
                    serve(outcome["pipeline"], warm_up=False)
                finally:  # released here, on the thread that loaded it, once every worker is done
                    for worker in self._workers[1:]:
                        if worker.ident is not None:
                            worker.join()
                    outcome["pipeline"].close()
                    self.get_logger().info(RELEASED_LOG)

        self._workers = [threading.Thread(target=first, name="inference", daemon=True)]
        self._workers[0].start()
        loaded.wait()
        if "error" in outcome:
            self._running = False
            raise outcome["error"]
        for k in range(1, count):
            worker = threading.Thread(target=serve, args=(outcome["pipeline"], True), name=f"inference-{k}",
                                      daemon=True)
            self._workers.append(worker)
            worker.start()
        return outcome["pipeline"]

    def _inference_loop(self, pipeline: Pipeline) -> None:
        """One inference worker: take the newest frame, run the network, publish in time order."""
        while self._running:
            taken = self._frames.get_numbered(timeout=0.2)
            if taken is None:
                continue
            sequence, serialized = taken
            start = time.perf_counter()
            msg = deserialize_message(serialized, Image)
            try:
                rgb = image_msg_to_rgb(msg)
                intrinsics = self._intrinsics(rgb.shape[1], rgb.shape[0])
                network_start = time.perf_counter()
                objects = pipeline(rgb, intrinsics)
                network_s = time.perf_counter() - network_start
            except ImageConversionError as exc:
                self._throttled_error(f"dropping image: {exc}")
                continue
            except ValueError as exc:
                self._throttled_error(f"dropping image: bad camera_info: {exc}")
                continue
            if not self._running:
                break
            try:
                messages = self._messages(msg.header, rgb, intrinsics, objects)
                with self._order.publishing(sequence, stamp_to_ns(msg.header.stamp)) as admitted:
                    if admitted:  # the order's lock is held: one frame's messages go out together
                        self._check_frame(msg.header.frame_id)
                        for publisher, message in messages:
                            publisher.publish(message)
                        self.debug_images_rendered += int(any(pub is self._pub_debug for pub, _ in messages))
                        self._processed += 1
                        self._processing_s += time.perf_counter() - start
                        self._inference_s += network_s
            except Exception as exc:  # the context may shut down under us while stopping
                if not self._running:
                    break
                self.get_logger().error(f"publishing failed: {exc}", throttle_duration_sec=THROTTLE_S)
                continue
            if not admitted:
                stamp = msg.header.stamp
                self.get_logger().info(f"dropped the result of the image stamped {stamp.sec}.{stamp.nanosec:09d}: "
                                       "another inference worker published a newer frame's result first "
                                       f"({self._order.late} so far)", throttle_duration_sec=THROTTLE_S)

    def _check_frame(self, frame_id: str) -> None:
        """Warn once per image frame_id that is empty or does not look like an optical frame."""
        if frame_id in self._checked_frames or len(self._checked_frames) >= 64:
            return
        self._checked_frames.add(frame_id)
        problem = frame_convention_problem(frame_id)
        if problem:
            self.get_logger().warning(problem)

    def _messages(self, msg_header, rgb: np.ndarray, intrinsics: CameraIntrinsics,
                  objects: list[DetectedObject]) -> list[tuple]:
        """(publisher, message) of every output of one frame, in publishing order; the debug image
        is rendered only while someone subscribes to it."""
        names = [f"{o.category}_{k}" for k, o in enumerate(objects)]
        out: list[tuple] = []
        if self._pub_2d is not None:
            out.append((self._pub_2d, Detection2DArray(header=msg_header, detections=[
                detection2d_msg(msg_header, o.box, o.category, o.score, name)
                for o, name in zip(objects, names, strict=True)])))
        out.append((self._pub_3d, Detection3DArray(header=msg_header, detections=[
            detection3d_msg(msg_header, o.category, o.score, o.quaternion, o.translation, o.size, name)
            for o, name in zip(objects, names, strict=True)])))
        if self._pub_desc is not None:
            out.append((self._pub_desc, descriptors_msg(msg_header, np.array([o.descriptor for o in objects], np.float32)
                                                        .reshape(len(objects), self._descriptor_dim))))
        if self._pub_masks is not None:
            out.append((self._pub_masks, box_masks_msg(msg_header, np.array([o.box_mask for o in objects], np.float32))))
        if self._pub_hypotheses is not None:
            k = self._hypotheses_k
            out.append((self._pub_hypotheses, hypotheses_msg(
                msg_header, np.array([o.hypotheses for o in objects], np.float64).reshape(len(objects), k, 4),
                np.array([o.hypothesis_scores for o in objects], np.float64).reshape(len(objects), k))))
        if self._pub_shape_classes is not None:
            out.append((self._pub_shape_classes, shape_classes_msg(
                msg_header, np.array([o.box for o in objects], np.float64).reshape(len(objects), 4),
                [o.shape_probabilities or {} for o in objects], names)))
        if self._publish_tf and objects and msg_header.frame_id:
            out.append((self._pub_tf, TFMessage(transforms=[
                transform_stamped_msg(msg_header, self._tf_prefix + name, o.quaternion, o.translation)
                for o, name in zip(objects, names, strict=True)])))
        if self._pub_debug.get_subscription_count() > 0:
            out.append((self._pub_debug, rgb8_image_msg(draw_objects(rgb, objects, intrinsics), msg_header)))
        return out

    def destroy_node(self) -> None:
        if not hasattr(self, "_frames"):  # the constructor failed (the start-up error is logged by run_node)
            self._running = False
            super().destroy_node()
            return
        self._running = False
        self._frames.close()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for worker in self._workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        busy = [w.name for w in self._workers if w.is_alive()]
        if busy:
            self.get_logger().warning(f"inference threads {', '.join(busy)} still busy after {STOP_TIMEOUT_S:g} s; "
                                      "the network is released when their current frames are done")
        stats = self._frames.stats
        mean_ms = 1e3 * self._processing_s / max(self._processed, 1)
        network_ms = 1e3 * self._inference_s / max(self._processed, 1)
        self.get_logger().info(f"processed {self._processed} frames (mean {mean_ms:.1f} ms each: conversion, "
                               f"inference, publishing; network {network_ms:.1f} ms); received {stats.offered}, "
                               f"dropped {stats.dropped}; "
                               f"debug images rendered {self.debug_images_rendered}; "
                               f"late results dropped {self._order.late}")
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionNode, "perception_node", (CheckpointError, CadLibraryError, ValueError), args)


if __name__ == "__main__":
    sys.exit(main())
