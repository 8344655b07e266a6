"""The wire formats between perception_node and retrieval_node: each encoder's message decodes
back to its input, and a decoder names what does not fit."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import Image

from scene3d_ros.ros.conversions import header
from scene3d_ros.ros.wire_formats import box_masks_from_msg, box_masks_msg, descriptors_from_msg, descriptors_msg

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
