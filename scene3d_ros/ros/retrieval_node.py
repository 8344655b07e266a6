"""retrieval_node: replaces detected objects by CAD models from the shape database.

Joins ``detections_3d`` (vision_msgs/Detection3DArray), ``descriptors`` (sensor_msgs/Image
32FC1, one row per detection, same order) and, with ``silhouette_check`` (default), ``masks``
(sensor_msgs/Image mono8, 28 rows per detection: each object's mask over its box) by header stamp
in a bounded cache, and resolves every object with the resolution policy
(:class:`scene3d_ros.retrieval.ResolutionPolicy`, the one ``Pipeline`` and the evaluation call;
its parameters are this node's, same names and defaults): the shape database is searched with
the object's descriptor, category and rotation (the pose prior), and with the silhouette check
the ``silhouette_candidates`` nearest views within ``silhouette_max_angle_deg`` are re-scored with
how well their silhouette fits the mask; the object's orientation becomes the policy's final
rotation (with the check, that of the chosen view: the pose in which the model fits the image).

Translation: with ``fit_translation`` (default), ``detections_2d`` (vision_msgs/Detection2DArray,
the same detections in the same order: each object's 2D box) is joined too, while it has a
publisher, and the latest ``camera_info`` (sensor_msgs/CameraInfo, the camera perception_node
used) is kept: the policy moves each object along (and across) its viewing ray until the retrieved
model, in the final rotation, projects onto its box (:mod:`scene3d_ros.retrieval.translation`).
Without a camera_info yet (or without boxes) the fit is skipped for that frame, with a throttled
warning, and the objects keep their ``detections_3d`` translation; nothing waits for camera_info.

Rotation hypotheses: with ``use_hypotheses`` (default), the ``hypotheses`` topic (sensor_msgs/Image
32FC1, :func:`~scene3d_ros.ros.wire_formats.hypotheses_msg`: per detection the crop viewpoint
stage's k egocentric rotations with their probabilities) is joined too, **while it has a
publisher** (perception_node creates it only when its stage runs and ``publish_hypotheses`` is
on): a frame then waits for its hypotheses as for its masks, and each object is resolved with all
k of them. With no publisher on that topic (perception without the stage, or
``use_hypotheses:=false``) nothing waits: each object has one hypothesis, its ``detections_3d``
rotation, with probability 1; frames held for hypotheses (or boxes) whose publisher goes away are
resolved without them within :data:`PUBLISHER_RECHECK_S`. Hypotheses that arrive before the rest
of their frame are kept with it; a frame whose hypotheses never come is forgotten with the oldest
(bounded cache, ``cache_size``), with a warning.

Shape classes: with ``use_hypotheses`` the ``shape_classes`` topic (vision_msgs/Detection2DArray,
:func:`~scene3d_ros.ros.wire_formats.shape_classes_msg`: per detection the stage's shape head's
probability of each shape class of its category) is joined the same way, while it has a publisher
(a stage with a shape head); the policy's ``shape_weight`` then weighs each candidate model's class.

Publishes with the input header:

  objects   vision_msgs/Detection3DArray: the input detections, bbox.size = the retrieved model's
            extents (or the input size for cuboids), orientation = the policy's final rotation
            (the chosen view's with the silhouette check, else the input's), position = the
            policy's final translation (fitted to the box, else the input's), and ``id`` = a JSON
            object {"name": "<category>_<k>", "model_id": "<id>" | null, "mesh_uri": "file://..." |
            null, "fallback": null | "cuboid", "distance": <squared L2>, "silhouette_iou": <0..1> |
            null, "confidence": <0..1> | null} (machine-readable)
  markers   visualization_msgs/MarkerArray: DELETEALL first, then per object a MESH_RESOURCE
            marker (file:// URI into the CAD library) or a CUBE of the box size, and a text label
  /tf       one frame ``<tf_prefix><category>_<k>`` per object under the image's frame_id (none when
            it is empty), ``publish_tf``

``objects``, the markers and the TF frames carry the same final pose per object: in the launched
graph this node publishes the object frames (perception_node's are switched off there).

The policy's parameters (windows, weights, ``max_distance``, ``azimuth_flips``, ``fit_translation``,
``camera_weight``, ``camera_models``) can be changed at run time.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from functools import partial

from geometry_msgs.msg import Point
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, SetParametersResult
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection2DArray, Detection3DArray
from visualization_msgs.msg import Marker, MarkerArray

from scene3d_ros.data.shards import sha256_file
from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.paths import default_model_path
from scene3d_ros.retrieval import (
    FALLBACK_CUBOID,
    ObjectQuery,
    ResolutionPolicy,
    ShapeDatabase,
    ShapeDatabaseError,
    default_shape_db_path,
)
from scene3d_ros.retrieval.translation import ModelPoints
from scene3d_ros.ros.conversions import (
    boxes_from_detection2d_msg,
    intrinsics_from_camera_info,
    point_xyz,
    pose_transform_msg,
    quaternion_wxyz,
    stamp_to_ns,
)
from scene3d_ros.ros.node_main import TF_QOS, declare_described, run_node
from scene3d_ros.ros.wire_formats import (
    box_masks_from_msg,
    descriptors_from_msg,
    hypotheses_from_msg,
    shape_classes_from_msg,
)
from scene3d_ros.visualization import instance_colour
from scene3d_ros.world.cad_library import CadLibrary, CadLibraryError

POLICY_PARAMETERS = ("max_angle_deg", "silhouette_max_angle_deg", "silhouette_weight", "silhouette_angle_weight",
                     "silhouette_candidates", "hypothesis_weight", "azimuth_flips", "max_distance", "final_rotation",
                     "fit_translation", "camera_weight", "camera_models", "shape_weight", "occlusion_aware")
"""The node parameters that are :class:`ResolutionPolicy` fields, changeable at run time."""
PUBLISHER_RECHECK_S = 0.5
"""How often frames held for an optional topic (hypotheses, detections_2d) are re-checked for a publisher
that has gone (seconds)."""
OPTIONAL_KIND_SWITCH = {"hypotheses": "use_hypotheses:=false", "shape_classes": "use_hypotheses:=false",
                        "detections_2d": "fit_translation:=false"}
"""The joined-while-published kinds and the parameter setting that resolves without them."""
THROTTLE_S = 10.0


class RetrievalNode(Node):
    """Thin adapter: stamp join -> ResolutionPolicy.resolve -> messages."""

    def __init__(self) -> None:
        super().__init__("retrieval_node")

        declare = partial(declare_described, self)

        db_path = declare("shape_db", "", "Shape database file (empty: the default built by build_shape_db).",
                          read_only=True)
        library_path = declare("cad_library", "", "CAD library folder (empty: the default library).", read_only=True)
        model_path = declare("model_path", "", "Checkpoint of the perception node; the database must have been built "
                             "with it (empty: checked against the shipped model when shape_db is empty too).",
                             read_only=True)
        angle = [FloatingPointRange(from_value=1.0, to_value=180.0)]
        weight = [FloatingPointRange(from_value=0.0, to_value=1e6)]
        default = ResolutionPolicy()
        self._policy = ResolutionPolicy(
            max_angle_deg=declare("max_angle_deg", default.max_angle_deg, "Pose prior without the silhouette "
                                  "check: only views this close to the predicted rotation (degrees; widened when "
                                  "none is).", floating_point_range=angle),
            silhouette_check=declare("silhouette_check", default.silhouette_check, "Join the masks topic and "
                                     "re-score the candidate views by how well their silhouette fits each object's "
                                     "mask.", read_only=True),
            silhouette_max_angle_deg=declare("silhouette_max_angle_deg", default.silhouette_max_angle_deg,
                                             "Silhouette check: pose window around the predicted rotation (degrees).",
                                             floating_point_range=angle),
            silhouette_weight=declare("silhouette_weight", default.silhouette_weight, "Silhouette check: weight of "
                                      "the mask/silhouette IoU (squared descriptor distance units).",
                                      floating_point_range=weight),
            silhouette_angle_weight=declare("silhouette_angle_weight", default.silhouette_angle_weight,
                                            "Silhouette check: weight per 180 deg between a view and the predicted "
                                            "rotation (squared descriptor distance units).", floating_point_range=weight),
            silhouette_candidates=declare("silhouette_candidates", default.silhouette_candidates,
                                          "Silhouette check: nearest views re-scored.",
                                          integer_range=[IntegerRange(from_value=1, to_value=4096)]),
            hypothesis_weight=declare("hypothesis_weight", default.hypothesis_weight, "Weight per nat of a "
                                      "rotation hypothesis's log-probability (squared descriptor distance units; "
                                      "k > 1 hypotheses per object come on the hypotheses topic).",
                                      floating_point_range=weight),
            azimuth_flips=declare("azimuth_flips", default.azimuth_flips, "Also score each rotation's 180 deg "
                                  "azimuth flip (the object turned about its up axis)."),
            max_distance=declare("max_distance", default.max_distance or 0.0, "Cuboid fallback when the best "
                                 "descriptor distance exceeds this (0: never).",
                                 floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1e9)]) or None,
            final_rotation=declare("final_rotation", default.final_rotation, "With the silhouette check, the "
                                   "published rotation: view (the chosen database view's) | hypothesis (the winning "
                                   "rotation hypothesis's, finer than the view grid) | auto (view for an object with "
                                   "one hypothesis, hypothesis with several)."),
            fit_translation=declare("fit_translation", default.fit_translation, "Move each object along (and "
                                    "across) its viewing ray until the retrieved model, in the final rotation, "
                                    "projects onto its 2D box (joins detections_2d while published and uses the "
                                    "latest camera_info; without one the detections_3d translation is kept)."),
            camera_weight=declare("camera_weight", default.camera_weight, "Silhouette check: weight of the IoU "
                                  "between each object's mask and a candidate model rendered in its rotation "
                                  "hypothesis with camera_info's K over the object's detections_2d box (squared "
                                  "descriptor distance units; 0: no rendering; without a camera_info or box: none).",
                                  floating_point_range=weight),
            camera_models=declare("camera_models", default.camera_models, "Silhouette check with camera_weight > 0: "
                                  "models rendered per hypothesis (those with the best candidate views).",
                                  integer_range=[IntegerRange(from_value=1, to_value=1000)]),
            shape_weight=declare("shape_weight", default.shape_weight, "Weight per nat of the log-probability "
                                 "of a candidate model's shape class (category/subtype) given by the crop viewpoint "
                                 "stage's shape head on the shapes topic (squared descriptor distance units; 0: the "
                                 "descriptor alone chooses the model).", floating_point_range=weight),
            occlusion_aware=declare("occlusion_aware", default.occlusion_aware, "Silhouette check: leave the "
                                    "cells of an object's box that another object's mask claims out of its "
                                    "silhouette IoUs (an occluded object is not penalised for what its occluder "
                                    "hides; needs the detections_2d boxes)."))
        self._publish_tf = declare("publish_tf", True, "Publish one TF frame per object (the final pose) on /tf.")
        self._tf_prefix = declare("tf_prefix", "", "Prefix of the object TF frame names.")
        use_hypotheses = declare("use_hypotheses", True, "Join the hypotheses topic (the crop viewpoint stage's k "
                                 "rotation hypotheses per object) and the shape_classes topic (its shape head's "
                                 "class probabilities) while each has a publisher; without hypotheses, each object's "
                                 "detections_3d rotation is its only hypothesis; without shape classes, the "
                                 "descriptor alone chooses the model.", read_only=True)
        self._cache_size = declare("cache_size", 30, "Frames kept while waiting for the other topic.",
                                   integer_range=[IntegerRange(from_value=1, to_value=1000)])
        qos_depth = declare("qos_depth", 10, "QoS history depth.", integer_range=[IntegerRange(from_value=1,
                                                                                               to_value=100)])
        self._library = CadLibrary.load(library_path or None)
        checkpoint = model_path or (None if db_path else str(default_model_path()))
        self._db = ShapeDatabase.load(db_path or default_shape_db_path(),
                                      expected_library_checksum=self._library.checksum,
                                      expected_checkpoint_sha256=sha256_file(checkpoint) if checkpoint else None)
        qos = QoSProfile(depth=qos_depth, reliability=ReliabilityPolicy.RELIABLE)
        self._use_masks = self._policy.silhouette_check
        if self._use_masks and self._db.silhouettes is None:
            raise ShapeDatabaseError("the shape database holds no view silhouettes, which the silhouette check needs: "
                                     "rebuild it with build_shape_db, or set silhouette_check:=false")
        self._kinds = ("detections", "descriptors") + (("masks",) if self._use_masks else ())  # always joined
        self._pending: OrderedDict[tuple[int, str], dict] = OrderedDict()
        self.create_subscription(Detection3DArray, "detections_3d", lambda m: self._on_message("detections", m), qos)
        self.create_subscription(Image, "descriptors", lambda m: self._on_message("descriptors", m), qos)
        if self._use_masks:
            self.create_subscription(Image, "masks", lambda m: self._on_message("masks", m), qos)
        self._stage_topics: dict[str, str] = {}  # the crop viewpoint stage's topics when joined: kind -> name
        if use_hypotheses:
            for kind, msg_type in (("hypotheses", Image), ("shape_classes", Detection2DArray)):
                subscription = self.create_subscription(msg_type, kind,
                                                        lambda m, kind=kind: self._on_message(kind, m), qos)
                self._stage_topics[kind] = subscription.topic_name
        # the boxes and the camera of the translation fit (subscribed always: fit_translation changes at run time)
        self._boxes_topic = self.create_subscription(
            Detection2DArray, "detections_2d", lambda m: self._on_message("detections_2d", m), qos).topic_name
        self._camera_info: CameraInfo | None = None  # the latest, as perception_node uses it
        self._camera: CameraIntrinsics | None = None  # its intrinsics (None: none yet, or a bad one)
        self._warned_frames: set[tuple[str, str]] = set()  # (camera_info, detections) frame_ids warned about
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                 QoSProfile(depth=qos_depth, reliability=ReliabilityPolicy.BEST_EFFORT))
        self._shapes = ModelPoints(self._library)  # the retrieved models' points for the fit, loaded once each
        # frames held for an optional topic whose publisher has gone (a restarted perception_node without the stage)
        self.create_timer(PUBLISHER_RECHECK_S, self._flush_unpublished)
        self.add_on_set_parameters_callback(self._on_parameters)
        self._pub_objects = self.create_publisher(Detection3DArray, "objects", qos)
        self._pub_markers = self.create_publisher(MarkerArray, "markers", qos)
        self._pub_tf = self.create_publisher(TFMessage, "/tf", TF_QOS)
        check = (f"silhouette check on (window {self._policy.silhouette_max_angle_deg:g} deg)" if self._use_masks
                 else "silhouette check off")
        hypotheses = "rotation hypotheses joined while published" if use_hypotheses else "rotation hypotheses off"
        fit = "translation fitted to the 2D boxes" if self._policy.fit_translation else "translation fit off"
        self.get_logger().info(f"retrieving from {len(self._db)} views of {len(self._db.model_ids)} models; {check}; "
                               f"{hypotheses}; {fit}")

    def _on_parameters(self, params) -> SetParametersResult:
        """Apply run-time changes of the policy's parameters (ranges are checked by ROS)."""
        for param in params:
            if param.name == "publish_tf":
                self._publish_tf = bool(param.value)
            elif param.name == "tf_prefix":
                self._tf_prefix = str(param.value)
        changes = {p.name: p.value for p in params if p.name in POLICY_PARAMETERS}
        if "max_distance" in changes:
            changes["max_distance"] = float(changes["max_distance"]) or None
        try:
            self._policy = self._policy.replace(**changes)
        except (TypeError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _optional_topics(self) -> dict[str, str]:
        """The kinds joined now while their topic has a publisher (kind -> topic name): hypotheses and
        shape_classes (``use_hypotheses``) and detections_2d (``fit_translation``)."""
        topics = dict(self._stage_topics)
        if self._policy.fit_translation:
            topics["detections_2d"] = self._boxes_topic
        return topics

    def _awaited_optional(self) -> set[str]:
        """The optional kinds a frame waits for now: joined, and someone publishes them."""
        return {kind for kind, topic in self._optional_topics().items() if self.count_publishers(topic) > 0}

    def _on_message(self, kind: str, msg) -> None:
        if kind == "detections_2d" and not self._policy.fit_translation:
            return  # not joined while the fit is off
        key = (stamp_to_ns(msg.header.stamp), msg.header.frame_id)
        entry = self._pending.setdefault(key, {})
        entry[kind] = msg
        if all(k in entry for k in self._kinds) and self._awaited_optional() <= entry.keys():
            self._resolve_frame(key)
        while len(self._pending) > self._cache_size:  # bounded: forget the oldest unmatched frame
            _, forgotten = self._pending.popitem(last=False)
            if self._use_masks and "masks" not in forgotten and {"detections", "descriptors"} <= forgotten.keys():
                self.get_logger().warning(
                    "frames with detections and descriptors but no masks are being dropped: is perception_node "
                    "publishing masks (publish_masks)? Set silhouette_check:=false to retrieve without them.",
                    throttle_duration_sec=10.0)
            elif all(k in forgotten for k in self._kinds):
                missing = [(kind, topic) for kind, topic in self._optional_topics().items() if kind not in forgotten]
                if missing:
                    kind, topic = missing[0]
                    self.get_logger().warning(
                        f"frames waiting for their {kind} are being dropped: {topic} has a publisher but its "
                        "messages do not arrive (QoS, or a publisher that does not publish them). Set "
                        f"{OPTIONAL_KIND_SWITCH[kind]} to resolve without them.", throttle_duration_sec=THROTTLE_S)

    def _flush_unpublished(self) -> None:
        """Resolve the frames that have all they need but an optional topic nobody publishes any longer."""
        if not self._pending:
            return
        awaited = self._awaited_optional()
        for key in [key for key, entry in self._pending.items()
                    if all(k in entry for k in self._kinds) and awaited <= entry.keys()]:
            self._resolve_frame(key)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        """Keep the latest camera_info and its intrinsics (a bad one is logged and not used)."""
        self._camera_info, self._camera = msg, None
        try:
            self._camera = intrinsics_from_camera_info(msg)
        except ValueError as exc:
            self.get_logger().error(f"bad camera_info (frame '{msg.header.frame_id}'): {exc}; translations are not "
                                    "fitted until a good one arrives", throttle_duration_sec=THROTTLE_S)

    def _fit_inputs(self, detections: Detection3DArray,
                    boxes: Detection2DArray | None) -> tuple[list, CameraIntrinsics | None]:
        """The 2D boxes (N, 4) or None per object, and the camera, for the translation fit of this
        frame: both None (with a throttled warning) when the fit is off or cannot run."""
        dets = detections.detections
        if not self._policy.fit_translation or not dets:
            return [None] * len(dets), None
        if boxes is None:
            self.get_logger().warning(
                f"no detections_2d for this frame ({self._boxes_topic} has no publisher: is perception_node's "
                "publish_detections_2d on?): translations are not fitted, the detections_3d ones are kept",
                throttle_duration_sec=THROTTLE_S)
            return [None] * len(dets), None
        rows = boxes_from_detection2d_msg(boxes, [d.results[0].hypothesis.class_id for d in dets])
        if self._camera is None:
            state = "a bad one" if self._camera_info is not None else "none"
            self.get_logger().warning(f"no usable camera_info ({state} so far): translations are not fitted, the "
                                      "detections_3d ones are kept", throttle_duration_sec=THROTTLE_S)
            return [None] * len(dets), None
        frames = (self._camera_info.header.frame_id, detections.header.frame_id)
        if frames[0] != frames[1] and frames not in self._warned_frames and len(self._warned_frames) < 64:
            self._warned_frames.add(frames)
            self.get_logger().warning(f"camera_info is for frame '{frames[0]}' but the detections are in "
                                      f"'{frames[1]}': fitting with it (perception_node used it too)")
        return list(rows), self._camera

    def _resolve_frame(self, key: tuple[int, str]) -> None:
        """Take frame ``key`` out of the cache and publish its objects (a bad frame is logged and skipped)."""
        entry = self._pending.pop(key)
        try:
            self._retrieve(entry["detections"], entry["descriptors"], entry.get("masks"), entry.get("hypotheses"),
                           entry.get("detections_2d"), entry.get("shape_classes"))
        except ValueError as exc:
            self.get_logger().error(f"skipping frame {key[0]}: {exc}", throttle_duration_sec=5.0)

    def _retrieve(self, detections: Detection3DArray, descriptors: Image, masks: Image | None = None,
                  hypotheses: Image | None = None, boxes: Detection2DArray | None = None,
                  shape_classes: Detection2DArray | None = None) -> None:
        dets = detections.detections
        results = []
        if dets:
            rows = descriptors_from_msg(descriptors, len(dets))
            box_masks = [None] * len(dets) if masks is None else \
                box_masks_from_msg(masks, len(dets), self._db.silhouette_grid)
            if hypotheses is None:  # one hypothesis per object: its detections_3d rotation, probability 1
                rotations = [quaternion_wxyz(d.results[0].pose.pose.orientation) for d in dets]
                probabilities = [None] * len(dets)
            else:  # the crop viewpoint stage's k egocentric hypotheses (k, 4) and probabilities (k,)
                rotations, probabilities = hypotheses_from_msg(hypotheses, len(dets))
            box_rows, camera = self._fit_inputs(detections, boxes)
            categories = [d.results[0].hypothesis.class_id for d in dets]
            shapes = [None] * len(dets) if shape_classes is None else shape_classes_from_msg(shape_classes, categories)
            queries = [ObjectQuery.from_egocentric(category, row, rotation,
                                                   point_xyz(d.results[0].pose.pose.position), mask,
                                                   intrinsics=camera, probabilities=p, box=box,
                                                   shape_probabilities=shape)
                       for d, category, row, mask, rotation, p, box, shape in zip(
                           dets, categories, rows, box_masks, rotations, probabilities, box_rows, shapes, strict=True)]
            results = self._policy.resolve(self._db, queries, shapes=self._shapes)
            for det, result in zip(dets, results, strict=True):  # the final pose: the policy's rotation and position
                for pose in (det.results[0].pose.pose, det.bbox.center):
                    pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z = result.quaternion
                    pose.position.x, pose.position.y, pose.position.z = result.translation
        out = Detection3DArray(header=detections.header)
        frames = TFMessage()
        markers = MarkerArray(markers=[Marker(header=detections.header, action=Marker.DELETEALL)])
        for k, (det, result) in enumerate(zip(dets, results, strict=True)):
            name = det.id or f"{det.results[0].hypothesis.class_id}_{k}"
            model_id = result.model_id if result.fallback != FALLBACK_CUBOID else None
            uri = self._library.mesh_uri(model_id) if model_id else None
            if model_id:
                det.bbox.size.x, det.bbox.size.y, det.bbox.size.z = (float(v) for v in self._library.get(model_id).extents)
            det.id = json.dumps({"name": name, "model_id": model_id, "mesh_uri": uri, "fallback": result.fallback,
                                 "distance": float(result.distance), "silhouette_iou": result.silhouette_iou,
                                 "confidence": result.confidence})
            out.detections.append(det)
            markers.markers.extend(self._markers(detections.header, k, det, model_id, uri, name))
            frames.transforms.append(pose_transform_msg(detections.header, self._tf_prefix + name,
                                                        det.results[0].pose.pose))
        self._pub_objects.publish(out)
        self._pub_markers.publish(markers)
        if self._publish_tf and frames.transforms and detections.header.frame_id:
            self._pub_tf.publish(frames)

    @staticmethod
    def _markers(msg_header, k: int, det, model_id: str | None, uri: str | None, name: str) -> list[Marker]:
        r, g, b = (c / 255.0 for c in instance_colour(k))
        body = Marker(header=msg_header, ns="scene3d_objects", id=k, action=Marker.ADD,
                      pose=det.results[0].pose.pose, color=ColorRGBA(r=r, g=g, b=b, a=0.8))
        if model_id:
            body.type, body.mesh_resource = Marker.MESH_RESOURCE, uri
            body.scale.x = body.scale.y = body.scale.z = 1.0
        else:
            body.type = Marker.CUBE
            body.scale.x, body.scale.y, body.scale.z = det.bbox.size.x, det.bbox.size.y, det.bbox.size.z
        label = Marker(header=msg_header, ns="scene3d_labels", id=k, action=Marker.ADD, type=Marker.TEXT_VIEW_FACING,
                       text=f"{name}: {model_id or 'cuboid'}", color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0))
        centre = det.results[0].pose.pose.position
        label.pose.position = Point(x=centre.x, y=centre.y - 0.6 * det.bbox.size.z, z=centre.z)  # above (y down)
        label.pose.orientation.w = 1.0
        label.scale.z = max(0.05, 0.15 * det.bbox.size.z)
        return [body, label]


def main(args: list[str] | None = None) -> int:
    return run_node(RetrievalNode, "retrieval_node", (ShapeDatabaseError, CadLibraryError, OSError), args)


if __name__ == "__main__":
    sys.exit(main())
