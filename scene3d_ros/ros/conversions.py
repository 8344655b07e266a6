"""Conversions between scene3d_ros values (numpy, geometry) and ROS messages.

Frames: poses are in the camera optical frame (REP 103: x right, y down, z forward), metres.
Quaternions in scene3d_ros are (w, x, y, z); geometry_msgs/Quaternion has named fields, so the
order question ends here. No rclpy import: messages only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Transform, TransformStamped, Vector3
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import BoundingBox3D, Detection2D, Detection2DArray, Detection3D, ObjectHypothesisWithPose

from scene3d_ros.geometry import CameraIntrinsics, canonical_quaternion


def header(stamp_ns: int, frame_id: str) -> Header:
    """std_msgs/Header from a time in integer nanoseconds."""
    return Header(stamp=Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)),
                  frame_id=frame_id)


def frame_convention_problem(frame_id: str) -> str | None:
    """Why poses published in the image frame ``frame_id`` may be misread, or ``None``.

    Detections and TF frames are expressed in the image's frame with the optical convention
    (REP 103: x right, y down, z forward). An empty frame_id cannot parent TF frames; a name
    without "optical" is often the camera's body frame (x forward), where these poses are rotated.
    """
    if not frame_id:
        return ("the image header has an empty frame_id: detections carry no frame and no TF frames are "
                "published (tf2 rejects an empty parent); set the camera driver's frame_id to its optical frame")
    if "optical" not in frame_id.lower():
        return (f"image frame_id '{frame_id}' does not name an optical frame: poses are published in it with the "
                "optical convention (REP 103: x right, y down, z forward), which is wrong if it is the camera's "
                "body frame (x forward); publish the images in the optical frame (e.g. camera_optical_frame)")
    return None


def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (the key used to join topics by stamp)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class ImageConversionError(ValueError):
    """A sensor_msgs/Image that cannot be turned into an RGB array; the message says why."""


# encoding -> (channels, bytes per channel, channel order as it should be read for RGB)
IMAGE_ENCODINGS: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "rgb8": (3, 1, (0, 1, 2)),
    "bgr8": (3, 1, (2, 1, 0)),
    "rgba8": (4, 1, (0, 1, 2)),
    "bgra8": (4, 1, (2, 1, 0)),
    "mono8": (1, 1, (0, 0, 0)),
    "8UC1": (1, 1, (0, 0, 0)),
    "mono16": (1, 2, (0, 0, 0)),
    "16UC1": (1, 2, (0, 0, 0)),
}
MAX_IMAGE_PIXELS = 8192 * 8192


def image_msg_to_rgb(msg: Image, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """HxWx3 uint8 RGB copy of a sensor_msgs/Image, honouring ``step`` (row padding) and endianness.

    Supported encodings: rgb8, bgr8, rgba8, bgra8 (alpha dropped), mono8/8UC1 (grey replicated)
    and mono16/16UC1 (the high byte: value >> 8). Anything else, or a header inconsistent with the
    data (zero or huge size, ``step`` shorter than a row, ``len(data) != step * height``), raises
    :class:`ImageConversionError` naming the problem.
    """
    encoding = msg.encoding
    if encoding not in IMAGE_ENCODINGS:
        raise ImageConversionError(f"unsupported image encoding {encoding!r}; supported: {sorted(IMAGE_ENCODINGS)}")
    channels, depth, order = IMAGE_ENCODINGS[encoding]
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    if width == 0 or height == 0:
        raise ImageConversionError(f"empty image: {width}x{height}")
    if width * height > max_pixels:
        raise ImageConversionError(f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels")
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is shorter than a row of {width} {encoding} pixels ({row_bytes} bytes)")
    data = np.frombuffer(msg.data, dtype=np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data.view(np.uint8)
    if data.size != step * height:
        raise ImageConversionError(f"data holds {data.size} bytes but step * height = {step} * {height} = "
                                   f"{step * height}")
    rows = data.reshape(height, step)[:, :row_bytes]
    if depth == 2:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        pixels = (rows.copy().view(dtype).reshape(height, width, channels) >> 8).astype(np.uint8)
    else:
        pixels = rows.reshape(height, width, channels)
    return np.ascontiguousarray(pixels[:, :, list(order)])


def rgb8_image_msg(rgb: np.ndarray, msg_header: Header) -> Image:
    """sensor_msgs/Image (rgb8, no row padding) from an HxWx3 uint8 array."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    return Image(header=msg_header, height=height, width=width, encoding="rgb8", is_bigendian=0,
                 step=width * 3, data=rgb.tobytes())


def camera_info_msg(intrinsics: CameraIntrinsics, msg_header: Header) -> CameraInfo:
    """sensor_msgs/CameraInfo for an undistorted pinhole camera (D = 0, R = I, P = [K | 0])."""
    k = intrinsics.matrix
    p = np.hstack([k, np.zeros((3, 1))])
    return CameraInfo(header=msg_header, height=intrinsics.height, width=intrinsics.width,
                      distortion_model="plumb_bob", d=[0.0] * 5, k=k.reshape(-1).tolist(),
                      r=np.eye(3).reshape(-1).tolist(), p=p.reshape(-1).tolist())


def intrinsics_from_camera_info(msg: CameraInfo) -> CameraIntrinsics:
    """CameraIntrinsics from CameraInfo's K; ValueError naming the problem for NaN/zero/odd values."""
    k = np.asarray(msg.k, dtype=np.float64)
    if k.shape != (9,):
        raise ValueError(f"camera_info K must have 9 entries, got {k.shape}")
    if msg.width == 0 or msg.height == 0:
        raise ValueError(f"camera_info image size must be positive, got {msg.width}x{msg.height}")
    return CameraIntrinsics.from_matrix(k.reshape(3, 3), msg.width, msg.height)


def pose_msg(quaternion_wxyz: Sequence[float], translation_m: Sequence[float]) -> Pose:
    """geometry_msgs/Pose from a (w, x, y, z) quaternion (canonicalised, w >= 0) and metres."""
    w, x, y, z = canonical_quaternion(np.asarray(quaternion_wxyz, dtype=np.float64))
    tx, ty, tz = (float(v) for v in translation_m)
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = tx, ty, tz
    pose.orientation = Quaternion(w=float(w), x=float(x), y=float(y), z=float(z))
    return pose


def quaternion_wxyz(msg: Quaternion) -> np.ndarray:
    """(w, x, y, z) array from geometry_msgs/Quaternion."""
    return np.array([msg.w, msg.x, msg.y, msg.z], dtype=np.float64)


def point_xyz(msg: Point) -> np.ndarray:
    """(x, y, z) array (metres) from geometry_msgs/Point."""
    return np.array([msg.x, msg.y, msg.z], dtype=np.float64)


def detection3d_msg(msg_header: Header, class_id: str, score: float, quaternion: Sequence[float],
                    translation_m: Sequence[float], size_m: Sequence[float], object_id: str = "") -> Detection3D:
    """vision_msgs/Detection3D: one hypothesis (class_id, score, pose) and the oriented 3D box.

    ``size_m`` is the box size along the object's own x (front), y (left), z (up) axes, metres;
    the box is centred on the pose, whose orientation is the object's.
    """
    pose = pose_msg(quaternion, translation_m)
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = class_id
    hypothesis.hypothesis.score = float(score)
    hypothesis.pose.pose = pose
    sx, sy, sz = (float(v) for v in size_m)
    return Detection3D(header=msg_header, results=[hypothesis],
                       bbox=BoundingBox3D(center=pose, size=Vector3(x=sx, y=sy, z=sz)), id=object_id)


def detection2d_msg(msg_header: Header, box: Sequence[float], class_id: str, score: float,
                    object_id: str = "") -> Detection2D:
    """vision_msgs/Detection2D: ``box`` (x0 y0 x1 y1, pixel edges) as centre and size, and one
    hypothesis (class_id, score). :func:`boxes_from_detection2d_msg` reads the boxes back."""
    x0, y0, x1, y1 = (float(v) for v in box)
    det = Detection2D(header=msg_header, id=object_id)
    det.bbox.center.position.x, det.bbox.center.position.y = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    det.bbox.size_x, det.bbox.size_y = x1 - x0, y1 - y0
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = class_id, float(score)
    det.results.append(hypothesis)
    return det


def boxes_from_detection2d_msg(msg: Detection2DArray, class_ids: Sequence[str]) -> np.ndarray:
    """The boxes (N, 4) x0 y0 x1 y1 (pixel edges) of a Detection2DArray written by
    :func:`detection2d_msg`, checked against the ``class_ids`` of the same detections in the same
    order (e.g. those of the frame's detections_3d); ValueError naming the mismatch, a negative
    size or a non-finite value."""
    dets = msg.detections
    if len(dets) != len(class_ids):
        raise ValueError(f"detections_2d holds {len(dets)} detections for {len(class_ids)} 3D detections")
    boxes = np.zeros((len(dets), 4), dtype=np.float64)
    for k, (det, class_id) in enumerate(zip(dets, class_ids, strict=True)):
        got = det.results[0].hypothesis.class_id if det.results else None
        if got != class_id:
            raise ValueError(f"detections_2d detection {k} is {got!r} but the 3D detection {k} is {class_id!r}: "
                             "not the same detections in the same order")
        cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
        w, h = det.bbox.size_x, det.bbox.size_y
        if not np.all(np.isfinite([cx, cy, w, h])) or w < 0.0 or h < 0.0:
            raise ValueError(f"detections_2d detection {k} has a bad box: centre ({cx}, {cy}), size {w} x {h} "
                             "(expected finite values and sizes >= 0 pixels)")
        boxes[k] = (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
    return boxes


def transform_stamped_msg(msg_header: Header, child_frame_id: str, quaternion: Sequence[float],
                          translation_m: Sequence[float]) -> TransformStamped:
    """TF transform of an object frame (child) in the image's frame (header.frame_id)."""
    return pose_transform_msg(msg_header, child_frame_id, pose_msg(quaternion, translation_m))


def pose_transform_msg(msg_header: Header, child_frame_id: str, pose: Pose) -> TransformStamped:
    """TF transform of an object frame (child) at exactly ``pose`` (metres, in header.frame_id):
    the same numbers as the message that carries the pose."""
    transform = Transform(translation=Vector3(x=pose.position.x, y=pose.position.y, z=pose.position.z),
                          rotation=Quaternion(w=pose.orientation.w, x=pose.orientation.x, y=pose.orientation.y,
                                              z=pose.orientation.z))
    return TransformStamped(header=msg_header, child_frame_id=child_frame_id, transform=transform)
