"""The wire formats between perception_node and retrieval_node: how a matrix rides in a
sensor_msgs/Image, each with its encoder and its decoder (no rclpy import: messages only).

* **Descriptors** (``descriptors`` topic): one object descriptor per row, in detection order, as
  a ``32FC1`` image of height N (detections) and width D (descriptor dimension), little-endian
  float32 without row padding (the decoder also reads big-endian data and honours nothing else).
* **Box masks** (``masks`` topic): each object's mask probabilities over its box, a G x G grid
  (G = :data:`~scene3d_ros.world.depth_views.SILHOUETTE_GRID`, the mask head's resolution),
  quantised to ``round(255 p)``, stacked in detection order as a ``mono8`` image of height G N and
  width G (an image without detections: height 0).

Both carry the header of the image they were computed from, which is how the retrieval node joins
them with ``detections_3d``. Decoders raise ValueError naming the mismatch.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from scene3d_ros.world.depth_views import SILHOUETTE_GRID

DESCRIPTOR_ENCODING = "32FC1"
MASK_ENCODING = "mono8"


def descriptors_msg(msg_header: Header, descriptors: np.ndarray) -> Image:
    """``32FC1`` image of ``descriptors`` (N, D), one per row in detection order."""
    rows = np.ascontiguousarray(descriptors, dtype="<f4")
    if rows.ndim != 2:
        raise ValueError(f"descriptors must be (N, D), got shape {rows.shape}")
    height, width = rows.shape
    return Image(header=msg_header, height=height, width=width, encoding=DESCRIPTOR_ENCODING, is_bigendian=0,
                 step=4 * width, data=rows.tobytes())


def descriptors_from_msg(msg: Image, rows: int) -> np.ndarray:
    """(rows, D) float32 from a :func:`descriptors_msg` image expected to hold ``rows`` descriptors."""
    if msg.encoding != DESCRIPTOR_ENCODING:
        raise ValueError(f"descriptors must be {DESCRIPTOR_ENCODING}, got {msg.encoding!r}")
    if msg.height != rows:
        raise ValueError(f"descriptors hold {msg.height} rows for {rows} detections")
    if msg.step != 4 * msg.width or len(msg.data) != msg.step * msg.height:
        raise ValueError(f"descriptor image of {msg.width}x{msg.height} has step {msg.step} and {len(msg.data)} bytes")
    dtype = ">f4" if msg.is_bigendian else "<f4"
    return np.frombuffer(bytes(msg.data), dtype=dtype).reshape(rows, msg.width).astype(np.float32)


def box_masks_msg(msg_header: Header, masks: np.ndarray) -> Image:
    """``mono8`` image of box masks ``(N, G, G)`` (probabilities, clipped to [0, 1]) stacked in
    detection order: height ``G * N``, width ``G`` (no masks at all, e.g. an empty list: G =
    :data:`SILHOUETTE_GRID`)."""
    masks = np.asarray(masks, dtype=np.float64)
    if masks.size == 0 and masks.ndim != 3:
        masks = masks.reshape(0, SILHOUETTE_GRID, SILHOUETTE_GRID)
    if masks.ndim != 3 or masks.shape[1] != masks.shape[2]:
        raise ValueError(f"box masks must be (N, G, G), got shape {masks.shape}")
    grid = masks.shape[2]
    rows = np.rint(255.0 * np.clip(masks, 0.0, 1.0)).astype(np.uint8).reshape(-1, grid)
    return Image(header=msg_header, height=rows.shape[0], width=grid, encoding=MASK_ENCODING, is_bigendian=0,
                 step=grid, data=rows.tobytes())


def box_masks_from_msg(msg: Image, count: int, grid: int = SILHOUETTE_GRID) -> np.ndarray:
    """(count, grid, grid) float32 in [0, 1] from a :func:`box_masks_msg` image expected to hold
    ``count`` masks of ``grid`` x ``grid`` (the shape database's silhouettes)."""
    if msg.encoding != MASK_ENCODING:
        raise ValueError(f"masks must be {MASK_ENCODING}, got {msg.encoding!r}")
    if msg.width != grid or msg.height != count * grid:
        raise ValueError(f"masks are {msg.width}x{msg.height}, expected {grid}x{count * grid} for {count} detections "
                         f"of {grid}x{grid} (the shape database's silhouettes)")
    if msg.step != msg.width or len(msg.data) != msg.step * msg.height:
        raise ValueError(f"mask image of {msg.width}x{msg.height} has step {msg.step} and {len(msg.data)} bytes")
    return np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(count, grid, grid).astype(np.float32) / 255.0
