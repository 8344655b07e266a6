"""sensor_msgs/Image -> RGB for every supported encoding, row padding, endianness and bad headers."""

import numpy as np
import pytest
from sensor_msgs.msg import Image

from scene3d_ros.ros.conversions import (
    ImageConversionError,
    frame_convention_problem,
    header,
    image_msg_to_rgb,
    rgb8_image_msg,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def _msg(array: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    height, width = array.shape[:2]
    if array.dtype == np.uint16:
        array = array.astype(">u2" if bigendian else "<u2")
    rows = array.reshape(height, -1).view(np.uint8)
    if pad:
        rows = np.hstack([rows, np.full((height, pad), 0xAB, np.uint8)])
    return Image(height=height, width=width, encoding=encoding, is_bigendian=int(bigendian),
                 step=rows.shape[1], data=rows.tobytes())


@pytest.mark.parametrize("pad", [0, 3])
def test_colour_encodings(pad):
    np.testing.assert_array_equal(image_msg_to_rgb(_msg(RGB, "rgb8", pad)), RGB)
    np.testing.assert_array_equal(image_msg_to_rgb(_msg(RGB[:, :, ::-1].copy(), "bgr8", pad)), RGB)
    alpha = np.full((5, 7, 1), 9, np.uint8)
    np.testing.assert_array_equal(image_msg_to_rgb(_msg(np.concatenate([RGB, alpha], 2), "rgba8", pad)), RGB)
    bgra = np.concatenate([RGB[:, :, ::-1], alpha], 2)
    np.testing.assert_array_equal(image_msg_to_rgb(_msg(bgra, "bgra8", pad)), RGB)


@pytest.mark.parametrize("bigendian", [False, True])
def test_grey_encodings(bigendian):
    grey = RGB[:, :, 0].copy()
    out = image_msg_to_rgb(_msg(grey, "mono8", pad=1))
    assert out.shape == (5, 7, 3) and np.all(out == grey[:, :, None])
    grey16 = RNG.integers(0, 65536, size=(5, 7), dtype=np.uint16)
    for encoding in ("mono16", "16UC1"):
        out = image_msg_to_rgb(_msg(grey16, encoding, pad=2, bigendian=bigendian))
        np.testing.assert_array_equal(out[:, :, 1], (grey16 >> 8).astype(np.uint8))


def test_round_trip_with_publisher_conversion():
    msg = rgb8_image_msg(RGB, header(123, "cam"))
    np.testing.assert_array_equal(image_msg_to_rgb(msg), RGB)


@pytest.mark.parametrize("change,match", [
    (dict(encoding="yuv422"), "unsupported image encoding 'yuv422'"),
    (dict(encoding="32FC1"), "unsupported"),
    (dict(width=0), "empty image"),
    (dict(step=20), "step 20 is shorter"),
    (dict(height=6), "step \\* height"),
    (dict(width=100000, height=100000, step=300000), "exceeds the limit"),
])
def test_bad_headers_are_rejected_with_specific_messages(change, match):
    msg = _msg(RGB, "rgb8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageConversionError, match=match):
        image_msg_to_rgb(msg)


def test_truncated_data_is_rejected():
    msg = _msg(RGB, "rgb8")
    msg.data = msg.data[:-1]
    with pytest.raises(ImageConversionError, match="data holds"):
        image_msg_to_rgb(msg)


@pytest.mark.parametrize("frame_id, problem", [
    ("camera_color_optical_frame", None),
    ("cam_Optical", None),
    ("", "empty frame_id"),
    ("camera_link", "does not name an optical frame"),
])
def test_frame_convention_problem_flags_empty_and_body_frames(frame_id, problem):
    text = frame_convention_problem(frame_id)
    assert (text is None) if problem is None else (problem in text)
