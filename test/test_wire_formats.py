"""The wire formats between perception_node and retrieval_node: each encoder's message decodes
back to its input, and a decoder names what does not fit."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from scene3d_ros.ros.conversions import boxes_from_detection2d_msg, detection2d_msg, header
from scene3d_ros.ros.wire_formats import (
    box_masks_from_msg,
    box_masks_msg,
    descriptors_from_msg,
    descriptors_msg,
    hypotheses_from_msg,
    hypotheses_msg,
    shape_classes_from_msg,
    shape_classes_msg,
)

HEADER = header(1_500_000_000, "cam_optical")


def test_descriptor_rows_round_trip_and_mismatches_are_named():
    rows = np.random.default_rng(0).normal(size=(3, 500)).astype(np.float32)
    msg = descriptors_msg(HEADER, rows)
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == ("32FC1", 3, 500, 2000, 0)
    assert msg.header == HEADER
    np.testing.assert_array_equal(descriptors_from_msg(msg, 3), rows)
    big = Image(header=HEADER, height=3, width=500, encoding="32FC1", is_bigendian=1, step=2000,
                data=rows.astype(">f4").tobytes())  # another machine's byte order
    np.testing.assert_array_equal(descriptors_from_msg(big, 3), rows)
    assert descriptors_from_msg(descriptors_msg(HEADER, np.zeros((0, 500))), 0).shape == (0, 500)
    with pytest.raises(ValueError, match="hold 3 rows for 2 detections"):
        descriptors_from_msg(msg, 2)
    with pytest.raises(ValueError, match="must be 32FC1"):
        descriptors_from_msg(box_masks_msg(HEADER, np.zeros((3, 28, 28))), 3)
    msg.step = 2004  # row padding is not part of the format
    with pytest.raises(ValueError, match="step 2004"):
        descriptors_from_msg(msg, 3)


def test_box_masks_round_trip_to_255_levels_and_mismatches_are_named():
    masks = np.random.default_rng(1).uniform(-0.1, 1.1, size=(2, 28, 28))  # clipped to [0, 1]
    msg = box_masks_msg(HEADER, masks)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("mono8", 56, 28, 28) and msg.header == HEADER
    decoded = box_masks_from_msg(msg, 2, 28)
    assert decoded.dtype == np.float32 and decoded.shape == (2, 28, 28)
    np.testing.assert_allclose(decoded, np.clip(masks, 0.0, 1.0), atol=0.5 / 255 + 1e-6)
    empty = box_masks_msg(HEADER, [])  # an image without detections
    assert (empty.height, empty.width) == (0, 28) and box_masks_from_msg(empty, 0, 28).shape == (0, 28, 28)
    with pytest.raises(ValueError, match="masks are 28x56, expected 28x84 for 3 detections"):
        box_masks_from_msg(msg, 3, 28)
    with pytest.raises(ValueError, match="masks are 14x14, expected 28x28"):
        box_masks_from_msg(box_masks_msg(HEADER, np.zeros((1, 14, 14))), 1, 28)
    with pytest.raises(ValueError, match="must be mono8"):
        box_masks_from_msg(descriptors_msg(HEADER, np.zeros((56, 28))), 2, 28)
    with pytest.raises(ValueError, match=r"\(N, G, G\)"):
        box_masks_msg(HEADER, np.zeros((2, 28, 14)))


def _unit_quaternions(shape: tuple[int, ...], seed: int = 2) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=shape + (4,))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return q * np.where(q[..., :1] < 0, -1.0, 1.0)  # w >= 0


def _hypothesis_image(values: np.ndarray) -> Image:
    """A hypotheses image of raw rows (N, 5 k), as another publisher might send it."""
    rows = np.ascontiguousarray(values, dtype="<f4")
    return Image(header=HEADER, height=rows.shape[0], width=rows.shape[1], encoding="32FC1", is_bigendian=0,
                 step=4 * rows.shape[1], data=rows.tobytes())


def test_hypotheses_round_trip_in_detection_order():
    q = _unit_quaternions((2, 3))
    p = np.array([[0.5, 0.3, 0.2], [1.0, 1e-9, 0.0]])
    msg = hypotheses_msg(HEADER, q, p)
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == ("32FC1", 2, 15, 60, 0)
    assert msg.header == HEADER
    rows = np.frombuffer(bytes(msg.data), "<f4").reshape(2, 3, 5)  # (w, x, y, z, probability) x k per detection
    np.testing.assert_array_equal(rows[1, 0], np.array([*q[1, 0], 1.0], np.float32))
    quaternions, probabilities = hypotheses_from_msg(msg, 2)
    assert quaternions.shape == (2, 3, 4) and probabilities.shape == (2, 3)
    np.testing.assert_allclose(quaternions, q, atol=1e-7)
    np.testing.assert_allclose(probabilities, p, rtol=1e-7, atol=0)
    big = _hypothesis_image(rows.reshape(2, 15))
    big.is_bigendian, big.data = 1, rows.astype(">f4").tobytes()  # another machine's byte order
    np.testing.assert_array_equal(hypotheses_from_msg(big, 2)[0], quaternions)
    empty = hypotheses_msg(HEADER, [], [])  # an image without detections
    assert (empty.height, empty.width) == (0, 0)
    assert [a.shape for a in hypotheses_from_msg(empty, 0)] == [(0, 0, 4), (0, 0)]
    assert [a.shape for a in hypotheses_from_msg(hypotheses_msg(HEADER, np.zeros((0, 5, 4)), np.zeros((0, 5))), 0)] \
        == [(0, 5, 4), (0, 5)]


def test_hypothesis_decoder_names_the_bad_value():
    q = _unit_quaternions((2, 3))
    good = np.concatenate([q, np.full((2, 3, 1), 0.25)], axis=2)
    with pytest.raises(ValueError, match="hypotheses hold 2 rows for 3 detections"):
        hypotheses_from_msg(hypotheses_msg(HEADER, q, good[..., 4]), 3)
    with pytest.raises(ValueError, match="must be 32FC1, got 'mono8'"):
        hypotheses_from_msg(box_masks_msg(HEADER, np.zeros((1, 28, 28))), 28)
    with pytest.raises(ValueError, match="14 floats wide, expected a positive multiple of 5"):
        hypotheses_from_msg(_hypothesis_image(good.reshape(2, 15)[:, :14]), 2)
    with pytest.raises(ValueError, match="0 floats wide"):
        hypotheses_from_msg(_hypothesis_image(np.zeros((2, 0))), 2)
    padded = hypotheses_msg(HEADER, q, good[..., 4])
    padded.step = 64  # row padding is not part of the format
    with pytest.raises(ValueError, match="step 64"):
        hypotheses_from_msg(padded, 2)
    cases = [
        ((1, 2, 1), np.nan, r"hypothesis 2 of detection 1 has a non-finite value nan \(field x\)"),
        ((0, 1, 4), np.inf, r"hypothesis 1 of detection 0 has a non-finite value inf \(field p\)"),
        ((1, 0, 0), 2.0, r"hypothesis 0 of detection 1 is not a unit quaternion: .* has norm"),
        ((0, 2, 4), 1.5, r"hypothesis 2 of detection 0 has probability 1.5, expected one in \[0, 1\]"),
        ((1, 1, 4), -0.1, r"hypothesis 1 of detection 1 has probability -0.1, expected one in \[0, 1\]"),
    ]
    for (i, h, f), value, message in cases:
        bad = good.copy()
        bad[i, h, f] = value
        with pytest.raises(ValueError, match=message):
            hypotheses_from_msg(_hypothesis_image(bad.reshape(2, 15)), 2)
    with pytest.raises(ValueError, match=r"\(N, k, 4\)"):
        hypotheses_msg(HEADER, np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"probabilities must be \(N, k\) = \(2, 3\), got shape \(2, 2\)"):
        hypotheses_msg(HEADER, q, np.zeros((2, 2)))


def test_detection2d_boxes_round_trip_and_mismatches_are_named():
    """detections_2d carries each box as centre and size; retrieval_node reads back x0 y0 x1 y1
    (the translation fit's boxes) after checking they are the frame's detections, in order."""
    boxes = np.array([[10.25, 20.5, 60.0, 90.75], [0.0, 0.0, 159.5, 119.25]])
    msg = Detection2DArray(header=HEADER, detections=[detection2d_msg(HEADER, box, category, 0.9, f"{category}_{k}")
                                                      for k, (box, category) in enumerate(zip(boxes, ["car", "boat"], strict=True))])
    assert msg.detections[0].bbox.size_x == pytest.approx(49.75) and msg.detections[0].id == "car_0"
    np.testing.assert_allclose(boxes_from_detection2d_msg(msg, ["car", "boat"]), boxes, atol=1e-12)
    assert boxes_from_detection2d_msg(Detection2DArray(header=HEADER), []).shape == (0, 4)
    with pytest.raises(ValueError, match="holds 2 detections for 3 3D detections"):
        boxes_from_detection2d_msg(msg, ["car", "boat", "bus"])
    with pytest.raises(ValueError, match="detection 1 is 'boat' but the 3D detection 1 is 'bus'"):
        boxes_from_detection2d_msg(msg, ["car", "bus"])
    msg.detections[1].bbox.size_y = float("nan")
    with pytest.raises(ValueError, match="detection 1 has a bad box"):
        boxes_from_detection2d_msg(msg, ["car", "boat"])


def test_shape_classes_round_trip_and_mismatches_are_named():
    boxes = np.array([[10.0, 20.0, 60.0, 90.0], [0.0, 0.0, 40.0, 30.0]])
    shapes = [{"car/sedan": 0.2, "car/pickup": 0.7, "car/hatchback": 0.1}, {"boat/canoe": 1.0}]
    msg = shape_classes_msg(HEADER, boxes, shapes, ["car_0", "boat_1"])
    assert msg.header == HEADER and [d.id for d in msg.detections] == ["car_0", "boat_1"]
    assert [r.hypothesis.class_id for r in msg.detections[0].results] == ["car/pickup", "car/sedan", "car/hatchback"]
    assert boxes_from_detection2d_msg(msg, ["car/pickup", "boat/canoe"]).tolist() == boxes.tolist()
    back = shape_classes_from_msg(msg, ["car", "boat"])
    assert back == [pytest.approx(s) for s in shapes]
    assert shape_classes_from_msg(shape_classes_msg(HEADER, np.zeros((0, 4)), [], []), []) == []
    with pytest.raises(ValueError, match="hold 2 detections for 1"):
        shape_classes_from_msg(msg, ["car"])
    with pytest.raises(ValueError, match="'boat/canoe', not a class of its category 'bus'"):
        shape_classes_from_msg(msg, ["car", "bus"])
    msg.detections[0].results[1].hypothesis.score = 1.5
    with pytest.raises(ValueError, match="'car/sedan' of detection 0 has probability 1.5"):
        shape_classes_from_msg(msg, ["car", "boat"])
    with pytest.raises(ValueError, match="one of each per detection"):
        shape_classes_msg(HEADER, boxes, shapes[:1], ["car_0"])
