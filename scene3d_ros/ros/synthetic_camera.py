"""synthetic_camera: publishes rendered Pascal3D-like scenes as a camera would, with ground truth.

Topics (all messages of one frame share one header: stamp and ``frame_id``):
  image                          sensor_msgs/Image, rgb8
  camera_info                    sensor_msgs/CameraInfo (pinhole, no distortion)
  ground_truth/detections_3d     vision_msgs/Detection3DArray: class_id = category, score 1,
                                 pose = object pose in the optical frame (metres), bbox.size = the
                                 model's extents along its own x/y/z, id = CAD model id
  /tf                            tf2_msgs/TFMessage: one frame ``<gt_frame_prefix><category>_<k>``
                                 per object under ``frame_id``

The next frame is rendered right after a frame is published, so the timer only stamps and sends.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import partial

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray

from scene3d_ros.config import ConfigError, dataclass_from_dict, load_config
from scene3d_ros.paths import config_dir
from scene3d_ros.ros.conversions import (
    camera_info_msg,
    detection3d_msg,
    header,
    rgb8_image_msg,
    transform_stamped_msg,
)
from scene3d_ros.ros.node_main import TF_QOS, declare_described, run_node
from scene3d_ros.world.annotations import AnnotatedScene, generate_annotated_scene
from scene3d_ros.world.cad_library import CadLibrary, CadLibraryError
from scene3d_ros.world.renderer import Renderer
from scene3d_ros.world.scene_sampler import SceneConfig


class SyntheticCamera(Node):
    """Renders random scenes from the CAD library and publishes them with their ground truth."""

    def __init__(self) -> None:
        super().__init__("synthetic_camera")
        p = self._declare_parameters()
        scene_config = load_config(p["scene_config"] or config_dir() / "generate_data.yaml").get("scene", {})
        self._scene_config: SceneConfig = dataclass_from_dict(SceneConfig, scene_config, "scene")
        if p["width"] > 0 and p["height"] > 0:
            self._scene_config = replace(self._scene_config, image_sizes=((p["width"], p["height"]),))
        self._library = CadLibrary.load(p["cad_library"] or None)
        self._renderer = Renderer()
        self._rng = np.random.default_rng(p["seed"])
        self._frame_id = p["frame_id"]
        self._prefix = p["gt_frame_prefix"]
        self._max_frames = p["num_frames"]
        self._sent = 0

        qos = QoSProfile(depth=p["qos_depth"], reliability=ReliabilityPolicy.RELIABLE)
        self._image_pub = self.create_publisher(Image, "image", qos)
        self._info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        self._gt_pub = self.create_publisher(Detection3DArray, "ground_truth/detections_3d", qos)
        self._tf_pub = self.create_publisher(TFMessage, "/tf", TF_QOS)
        self._next = self._render_next()
        self._timer = self.create_timer(1.0 / p["rate_hz"], self._publish_frame)
        self.get_logger().info(
            f"publishing {self._library.checksum[:8]} library scenes at {p['rate_hz']} Hz in frame "
            f"'{self._frame_id}' ({len(self._library.models)} CAD models)")

    def _declare_parameters(self) -> dict:
        declare = partial(declare_described, self)

        return {
            "rate_hz": declare("rate_hz", 5.0, "Frames per second.",
                               floating_point_range=[FloatingPointRange(from_value=0.1, to_value=60.0)]),
            "frame_id": declare("frame_id", "camera_optical_frame", "frame_id of every header (optical frame)."),
            "width": declare("width", 0, "Image width in pixels (0: from the scene config).",
                             integer_range=[IntegerRange(from_value=0, to_value=4096)]),
            "height": declare("height", 0, "Image height in pixels (0: from the scene config).",
                              integer_range=[IntegerRange(from_value=0, to_value=4096)]),
            "seed": declare("seed", 0, "Random seed of the scene sequence.",
                            integer_range=[IntegerRange(from_value=0, to_value=2**31 - 1)]),
            "scene_config": declare("scene_config", "", "YAML file with a `scene` section (default: the package's generate_data.yaml)."),
            "cad_library": declare("cad_library", "", "CAD library folder (default: the built default library)."),
            "gt_frame_prefix": declare("gt_frame_prefix", "gt_", "Prefix of the ground-truth TF frames."),
            "num_frames": declare("num_frames", 0, "Stop publishing after this many frames (0: never).",
                                  integer_range=[IntegerRange(from_value=0, to_value=2**31 - 1)]),
            "qos_depth": declare("qos_depth", 5, "History depth of the publishers (reliable, keep last).",
                                 integer_range=[IntegerRange(from_value=1, to_value=100)]),
        }

    def _render_next(self) -> AnnotatedScene:
        return generate_annotated_scene(self._rng, self._library, self._scene_config, self._renderer)

    def _publish_frame(self) -> None:
        if self._max_frames and self._sent >= self._max_frames:
            return
        frame = self._next
        msg_header = header(self.get_clock().now().nanoseconds, self._frame_id)
        self._image_pub.publish(rgb8_image_msg(frame.rendered.rgb, msg_header))
        self._info_pub.publish(camera_info_msg(frame.scene.intrinsics, msg_header))
        detections = Detection3DArray(header=msg_header)
        transforms = TFMessage()
        for k, obj in enumerate(frame.annotations):
            model = self._library.get(obj.model_id)
            detections.detections.append(detection3d_msg(
                msg_header, obj.category, 1.0, obj.quaternion, obj.translation, model.extents, obj.model_id))
            transforms.transforms.append(transform_stamped_msg(
                msg_header, f"{self._prefix}{obj.category}_{k}", obj.quaternion, obj.translation))
        self._gt_pub.publish(detections)
        if transforms.transforms:
            self._tf_pub.publish(transforms)
        self._sent += 1
        self._next = self._render_next()


def main(args: list[str] | None = None) -> int:
    return run_node(SyntheticCamera, "synthetic_camera", (CadLibraryError, ConfigError), args)


if __name__ == "__main__":
    sys.exit(main())
