"""image_folder_camera: publishes the images of a folder (or the real sample photos) as a camera.

Topics (both messages of one frame share one header: stamp and ``frame_id``):
  image         sensor_msgs/Image, rgb8
  camera_info   sensor_msgs/CameraInfo: the folder's ``intrinsics.yaml`` or a ``hfov_deg`` guess
                (see scene3d_ros.image_source)

Parameters: ``folder`` ("" = the sample photos: a real, calibrated stereo pair of a motorbike),
``rate_hz``, ``frame_id``, ``hfov_deg``, ``loop`` (start again after the last image, else stop),
``qos_depth``. Unreadable files are skipped with a warning naming them; a folder without a
readable image stops the node at start-up with that message.
"""

from __future__ import annotations

import sys
from functools import partial

from rcl_interfaces.msg import FloatingPointRange, IntegerRange
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from scene3d_ros.image_source import ImageSourceError, photos_in_folder, sample_photos
from scene3d_ros.ros.conversions import camera_info_msg, header, rgb8_image_msg
from scene3d_ros.ros.node_main import declare_described, run_node


class ImageFolderCamera(Node):
    """Publishes the images of a folder in name order at a fixed rate."""

    def __init__(self) -> None:
        super().__init__("image_folder_camera")
        p = self._declare_parameters()
        if p["folder"]:
            self._photos, skipped = photos_in_folder(p["folder"], p["hfov_deg"])
            for reason in skipped:
                self.get_logger().warning(f"skipping {reason}")
        else:
            self._photos = sample_photos()
        self._frame_id, self._loop, self._sent = p["frame_id"], p["loop"], 0
        qos = QoSProfile(depth=p["qos_depth"], reliability=ReliabilityPolicy.RELIABLE)
        self._image_pub = self.create_publisher(Image, "image", qos)
        self._info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        self._timer = self.create_timer(1.0 / p["rate_hz"], self._publish_frame)
        calibrated = sum(photo.calibrated for photo in self._photos)
        self.get_logger().info(f"publishing {len(self._photos)} images from {p['folder'] or 'the sample photos'} "
                               f"at {p['rate_hz']} Hz in frame '{self._frame_id}' ({calibrated} calibrated, "
                               f"{len(self._photos) - calibrated} with a {p['hfov_deg']} deg field of view)")

    def _declare_parameters(self) -> dict:
        declare = partial(declare_described, self)

        return {
            "folder": declare("folder", "", "Folder of .png/.jpg images, optional intrinsics.yaml (fx, fy, cx, cy); "
                                            "empty: the real sample photos."),
            "rate_hz": declare("rate_hz", 2.0, "Frames per second.",
                               floating_point_range=[FloatingPointRange(from_value=0.1, to_value=60.0)]),
            "frame_id": declare("frame_id", "camera_optical_frame", "frame_id of every header (optical frame)."),
            "hfov_deg": declare("hfov_deg", 60.0, "Horizontal field of view assumed without intrinsics.yaml (deg).",
                                floating_point_range=[FloatingPointRange(from_value=1.0, to_value=179.0)]),
            "loop": declare("loop", True, "Start again after the last image (else stop publishing)."),
            "qos_depth": declare("qos_depth", 5, "History depth of the publishers (reliable, keep last).",
                                 integer_range=[IntegerRange(from_value=1, to_value=100)]),
        }

    def _publish_frame(self) -> None:
        if not self._loop and self._sent >= len(self._photos):
            return
        photo = self._photos[self._sent % len(self._photos)]
        self._sent += 1
        try:
            rgb = photo.read_rgb()
        except ImageSourceError as exc:  # removed or rewritten since start-up
            self.get_logger().error(f"skipping frame: {exc}", throttle_duration_sec=5.0)
            return
        msg_header = header(self.get_clock().now().nanoseconds, self._frame_id)
        self._image_pub.publish(rgb8_image_msg(rgb, msg_header))
        self._info_pub.publish(camera_info_msg(photo.intrinsics, msg_header))


def main(args: list[str] | None = None) -> int:
    return run_node(ImageFolderCamera, "image_folder_camera", (ImageSourceError,), args)


if __name__ == "__main__":
    sys.exit(main())
