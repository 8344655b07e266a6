"""The wire formats between perception_node and retrieval_node: how a matrix rides in a
sensor_msgs/Image (and the shape classes in a vision_msgs/Detection2DArray), each with its
encoder and its decoder (no rclpy import: messages only).

* **Descriptors** (``descriptors`` topic): one object descriptor per row, in detection order, as
  a ``32FC1`` image of height N (detections) and width D (descriptor dimension), little-endian
  float32 without row padding (the decoder also reads big-endian data and honours nothing else).
* **Box masks** (``masks`` topic): each object's mask probabilities over its box, a G x G grid
  (G = :data:`~scene3d_ros.world.depth_views.SILHOUETTE_GRID`, the mask head's resolution),
  quantised to ``round(255 p)``, stacked in detection order as a ``mono8`` image of height G N and
  width G (an image without detections: height 0).
* **Rotation hypotheses** (``hypotheses`` topic, with the crop viewpoint stage): one row per
  detection, in detection order, as a ``32FC1`` image of height N and width 5 k: the object's k
  hypotheses, most probable first, each ``(w, x, y, z, probability)``: an egocentric unit
  quaternion (object -> camera optical frame) and its probability in [0, 1]; k is the same for
  every row (an image without detections: height 0, width 5 k or 0). Little-endian float32 without
  row padding (the decoder also reads big-endian data).

* **Shape classes** (``shape_classes`` topic, with a crop viewpoint stage that has a shape head):
  a vision_msgs/Detection2DArray with one Detection2D per detection, in detection order: its box
  (as in ``detections_2d``), its id, and one result per shape class of the detection's category,
  ``class_id`` ``"<category>/<subtype>"`` and ``score`` its probability, most probable first.

All carry the header of the image they were computed from, which is how the retrieval node joins
them with ``detections_3d``. Decoders raise ValueError naming the mismatch.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, ObjectHypothesisWithPose

from scene3d_ros.ros.conversions import detection2d_msg
from scene3d_ros.world.depth_views import SILHOUETTE_GRID

DESCRIPTOR_ENCODING = "32FC1"
MASK_ENCODING = "mono8"
HYPOTHESIS_ENCODING = "32FC1"
HYPOTHESIS_FIELDS = 5
"""Floats per hypothesis in a ``hypotheses`` row: w, x, y, z, probability."""
UNIT_TOLERANCE = 1e-3
"""How far from 1 a decoded hypothesis quaternion's norm may be (float32 rounding is ~1e-7)."""


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


def hypotheses_msg(msg_header: Header, quaternions: np.ndarray, probabilities: np.ndarray) -> Image:
    """``32FC1`` image of each detection's rotation hypotheses: ``quaternions`` (N, k, 4) egocentric
    (w, x, y, z), object -> camera optical frame, most probable first, and their ``probabilities``
    (N, k), one row ``(w, x, y, z, p) x k`` per detection in detection order."""
    q = np.asarray(quaternions, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    if q.size == 0 and p.size == 0 and q.ndim != 3:  # no detections, e.g. empty lists
        q, p = q.reshape(0, 0, 4), p.reshape(0, 0)
    if q.ndim != 3 or q.shape[2] != 4:
        raise ValueError(f"hypothesis quaternions must be (N, k, 4), got shape {q.shape}")
    if p.shape != q.shape[:2]:
        raise ValueError(f"hypothesis probabilities must be (N, k) = {q.shape[:2]}, got shape {p.shape}")
    rows = np.ascontiguousarray(np.concatenate([q, p[..., None]], axis=2).reshape(len(q), HYPOTHESIS_FIELDS * q.shape[1]), dtype="<f4")
    height, width = rows.shape
    return Image(header=msg_header, height=height, width=width, encoding=HYPOTHESIS_ENCODING, is_bigendian=0,
                 step=4 * width, data=rows.tobytes())


def hypotheses_from_msg(msg: Image, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """From a :func:`hypotheses_msg` image expected to hold ``rows`` detections: the quaternions
    (rows, k, 4) float64 (egocentric w, x, y, z, object -> optical frame) and their probabilities
    (rows, k). Raises ValueError naming the first bad value: a non-finite number, a quaternion
    whose norm is not 1 (within :data:`UNIT_TOLERANCE`), a probability outside [0, 1]."""
    if msg.encoding != HYPOTHESIS_ENCODING:
        raise ValueError(f"hypotheses must be {HYPOTHESIS_ENCODING}, got {msg.encoding!r}")
    if msg.height != rows:
        raise ValueError(f"hypotheses hold {msg.height} rows for {rows} detections")
    if msg.width % HYPOTHESIS_FIELDS or (rows and not msg.width):
        raise ValueError(f"hypothesis rows are {msg.width} floats wide, expected a positive multiple "
                         "of 5 (w, x, y, z, probability per hypothesis)")
    if msg.step != 4 * msg.width or len(msg.data) != msg.step * msg.height:
        raise ValueError(f"hypothesis image of {msg.width}x{msg.height} has step {msg.step} and {len(msg.data)} bytes")
    dtype = ">f4" if msg.is_bigendian else "<f4"
    values = np.frombuffer(bytes(msg.data), dtype=dtype).astype(np.float64)
    values = values.reshape(rows, msg.width // HYPOTHESIS_FIELDS, HYPOTHESIS_FIELDS)
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        i, h, f = bad[0]
        raise ValueError(f"hypothesis {h} of detection {i} has a non-finite value {values[i, h, f]} "
                         f"(field {'wxyzp'[f]})")
    quaternions, probabilities = values[..., :4], values[..., 4]
    norms = np.linalg.norm(quaternions, axis=2)
    bad = np.argwhere(np.abs(norms - 1.0) > UNIT_TOLERANCE)
    if len(bad):
        i, h = bad[0]
        raise ValueError(f"hypothesis {h} of detection {i} is not a unit quaternion: {quaternions[i, h].tolist()} "
                         f"has norm {norms[i, h]:.6g}")
    bad = np.argwhere((probabilities < 0.0) | (probabilities > 1.0))
    if len(bad):
        i, h = bad[0]
        raise ValueError(f"hypothesis {h} of detection {i} has probability {probabilities[i, h]:.6g}, "
                         "expected one in [0, 1]")
    return quaternions, probabilities


def shape_classes_msg(msg_header: Header, boxes: np.ndarray, shapes: list[dict[str, float]],
                      object_ids: list[str]) -> Detection2DArray:
    """Detection2DArray of each detection's shape class probabilities (``shapes``: one
    ``{"<category>/<subtype>": p}`` per detection), with its box ``(N, 4)`` (x0 y0 x1 y1, pixel
    edges) and id, in detection order; results most probable first."""
    if len(boxes) != len(shapes) or len(shapes) != len(object_ids):
        raise ValueError(f"{len(boxes)} boxes, {len(shapes)} shape distributions and {len(object_ids)} ids: "
                         "expected one of each per detection")
    detections = []
    for box, probabilities, object_id in zip(boxes, shapes, object_ids, strict=True):
        det = detection2d_msg(msg_header, box, "", 0.0, object_id)  # the box as detections_2d carries it
        det.results.clear()
        for name, p in sorted(probabilities.items(), key=lambda item: -item[1]):
            result = ObjectHypothesisWithPose()
            result.hypothesis.class_id, result.hypothesis.score = str(name), float(p)
            det.results.append(result)
        detections.append(det)
    return Detection2DArray(header=msg_header, detections=detections)


def shape_classes_from_msg(msg: Detection2DArray, categories: list[str]) -> list[dict[str, float]]:
    """The shape class probabilities of a :func:`shape_classes_msg` message, checked against the
    ``categories`` of the frame's detections in the same order (e.g. its detections_3d): one
    ``{"<category>/<subtype>": p}`` per detection. Raises ValueError naming the first mismatch: a
    different number of detections, a class of another category, a probability outside [0, 1]."""
    dets = msg.detections
    if len(dets) != len(categories):
        raise ValueError(f"shape classes hold {len(dets)} detections for {len(categories)} 3D detections")
    out = []
    for k, (det, category) in enumerate(zip(dets, categories, strict=True)):
        probabilities = {}
        for result in det.results:
            name, p = result.hypothesis.class_id, float(result.hypothesis.score)
            if not name.startswith(f"{category}/"):
                raise ValueError(f"shape classes of detection {k} include {name!r}, not a class of its category "
                                 f"{category!r}: not the same detections in the same order")
            if not 0.0 <= p <= 1.0 + UNIT_TOLERANCE:
                raise ValueError(f"shape class {name!r} of detection {k} has probability {p}, expected one in [0, 1]")
            probabilities[name] = min(p, 1.0)
        out.append(probabilities)
    return out
