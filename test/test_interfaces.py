"""Checks of the vision_msgs / tf2_msgs interfaces this package talks in.

On machines without an apt ROS 2 these packages are built from the copies in
``interfaces/`` (see ``interfaces/README.md``); on a real ROS 2 install the
distro's packages are used. Either way the definitions must be the upstream
vision_msgs 4.x / tf2_msgs ones, field for field, so that they interoperate on
the wire. Nothing here creates a context, node or DDS participant: message
construction and (de)serialisation need no ``rclpy.init()``.
"""

import importlib
import json
import math
import pathlib

import pytest

pytest.importorskip('rclpy', reason='ROS 2 rclpy is not importable')

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

# Loading message type support imports lark, which imports the deprecated
# sre_parse / sre_constants modules (Python >= 3.11): keep exactly those
# warnings from failing runs with -W error, hiding nothing else.
pytestmark = pytest.mark.filterwarnings(
    "ignore:module 'sre_(parse|constants)' is deprecated:DeprecationWarning")

_BUILD_HINT = ('build the vendored interfaces first: '
               'bash scripts/build_msgs_into_venv.sh .venv interfaces/vision_msgs '
               '(and interfaces/tf2_msgs)')

# The complete message list of vision_msgs 4.x (Humble/Jazzy/Kilted).
VISION_MSGS = (
    'BoundingBox2D', 'BoundingBox2DArray', 'BoundingBox3D', 'BoundingBox3DArray',
    'Classification', 'Detection2D', 'Detection2DArray', 'Detection3D',
    'Detection3DArray', 'LabelInfo', 'ObjectHypothesis', 'ObjectHypothesisWithPose',
    'Point2D', 'Pose2D', 'VisionClass', 'VisionInfo',
)

# Field name -> rosidl type, in declaration order, as in upstream vision_msgs 4.x.
EXPECTED_FIELDS = {
    'Detection3D': [
        ('header', 'std_msgs/Header'),
        ('results', 'sequence<vision_msgs/ObjectHypothesisWithPose>'),
        ('bbox', 'vision_msgs/BoundingBox3D'),
        ('id', 'string'),
    ],
    'Detection2D': [
        ('header', 'std_msgs/Header'),
        ('results', 'sequence<vision_msgs/ObjectHypothesisWithPose>'),
        ('bbox', 'vision_msgs/BoundingBox2D'),
        ('id', 'string'),
    ],
    'ObjectHypothesisWithPose': [
        ('hypothesis', 'vision_msgs/ObjectHypothesis'),
        ('pose', 'geometry_msgs/PoseWithCovariance'),
    ],
    'ObjectHypothesis': [
        ('class_id', 'string'),
        ('score', 'double'),
    ],
    'BoundingBox3D': [
        ('center', 'geometry_msgs/Pose'),
        ('size', 'geometry_msgs/Vector3'),
    ],
    'BoundingBox2D': [
        ('center', 'vision_msgs/Pose2D'),
        ('size_x', 'double'),
        ('size_y', 'double'),
    ],
    'Pose2D': [
        ('position', 'vision_msgs/Point2D'),
        ('theta', 'double'),
    ],
    'Point2D': [
        ('x', 'double'),
        ('y', 'double'),
    ],
    'Detection3DArray': [
        ('header', 'std_msgs/Header'),
        ('detections', 'sequence<vision_msgs/Detection3D>'),
    ],
    'Detection2DArray': [
        ('header', 'std_msgs/Header'),
        ('detections', 'sequence<vision_msgs/Detection2D>'),
    ],
    'LabelInfo': [
        ('header', 'std_msgs/Header'),
        ('class_map', 'sequence<vision_msgs/VisionClass>'),
        ('threshold', 'float'),
    ],
    'VisionClass': [
        ('class_id', 'uint16'),
        ('class_name', 'string'),
    ],
}

# RIHS01 type hashes of the upstream definitions, read from upstream-generated
# type-description code (ROS 2 Jazzy builds). Equal hashes mean the types
# interoperate with a stock ROS 2 install on the wire.
UPSTREAM_TYPE_HASHES = {
    ('tf2_msgs', 'TFMessage'):
        'RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087',
    ('tf2_msgs', 'TF2Error'):
        'RIHS01_db2485e7d6a0ec75bf087e058ee45df682acc3a621ca7780503d10aac141809a',
    ('vision_msgs', 'Detection3DArray'):
        'RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018',
    ('vision_msgs', 'Detection3D'):
        'RIHS01_ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b',
    ('vision_msgs', 'Detection2DArray'):
        'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968',
    ('vision_msgs', 'Detection2D'):
        'RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea',
    ('vision_msgs', 'LabelInfo'):
        'RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783',
    ('vision_msgs', 'VisionInfo'):
        'RIHS01_95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284',
}


def _import(pkg, name):
    try:
        module = importlib.import_module(f'{pkg}.msg')
    except ImportError as exc:  # pragma: no cover - environment problem
        pytest.fail(f'cannot import {pkg}.msg ({exc}); {_BUILD_HINT}')
    assert hasattr(module, name), f'{pkg}.msg has no {name}; {_BUILD_HINT}'
    return getattr(module, name)


@pytest.mark.parametrize('name', VISION_MSGS)
def test_every_vision_msgs_message_imports(name):
    cls = _import('vision_msgs', name)
    msg = cls()  # default construction works
    assert isinstance(msg, cls)


def test_tf2_msgs_imports():
    tf_message = _import('tf2_msgs', 'TFMessage')
    assert list(tf_message.get_fields_and_field_types().items()) == [
        ('transforms', 'sequence<geometry_msgs/TransformStamped>')]
    tf2_error = _import('tf2_msgs', 'TF2Error')
    assert list(tf2_error.get_fields_and_field_types().items()) == [
        ('error', 'uint8'), ('error_string', 'string')]
    assert (tf2_error.NO_ERROR, tf2_error.LOOKUP_ERROR, tf2_error.CONNECTIVITY_ERROR,
            tf2_error.EXTRAPOLATION_ERROR, tf2_error.INVALID_ARGUMENT_ERROR,
            tf2_error.TIMEOUT_ERROR, tf2_error.TRANSFORM_ERROR) == (0, 1, 2, 3, 4, 5, 6)


@pytest.mark.parametrize('name', sorted(EXPECTED_FIELDS))
def test_vision_msgs_fields_match_upstream_4x(name):
    cls = _import('vision_msgs', name)
    assert list(cls.get_fields_and_field_types().items()) == EXPECTED_FIELDS[name]


def _share_dir(pkg):
    """<prefix>/share/<pkg> of the install the imported package comes from."""
    module = importlib.import_module(pkg)
    here = pathlib.Path(module.__file__).resolve().parent
    for parent in here.parents:  # <prefix>/lib/pythonX.Y/{site,dist}-packages/<pkg>
        candidate = parent / 'share' / pkg
        if (candidate / 'package.xml').is_file():
            return candidate
    return None


@pytest.mark.parametrize('pkg,name', sorted(UPSTREAM_TYPE_HASHES))
def test_type_hash_matches_upstream(pkg, name):
    _import(pkg, name)
    share = _share_dir(pkg)
    json_path = None if share is None else share / 'msg' / f'{name}.json'
    if json_path is None or not json_path.is_file():
        pytest.skip(f'no type description JSON for {pkg}/{name} in this install')
    data = json.loads(json_path.read_text())
    hashes = {h['type_name']: h['hash_string'] for h in data['type_hashes']}
    assert hashes[f'{pkg}/msg/{name}'] == UPSTREAM_TYPE_HASHES[(pkg, name)]


def _fill_header(header, sec, nanosec, frame_id):
    header.stamp.sec = sec
    header.stamp.nanosec = nanosec
    header.frame_id = frame_id


def test_detection3d_array_round_trip():
    Detection3DArray = _import('vision_msgs', 'Detection3DArray')
    Detection3D = _import('vision_msgs', 'Detection3D')
    ObjectHypothesisWithPose = _import('vision_msgs', 'ObjectHypothesisWithPose')

    msg = Detection3DArray()
    _fill_header(msg.header, 1712345678, 123456789, 'camera_color_optical_frame')
    for i in range(3):
        det = Detection3D()
        _fill_header(det.header, 1712345678, 123456789, 'camera_color_optical_frame')
        det.id = f'track_{i}'
        det.bbox.center.position.x = 0.1 * i
        det.bbox.center.position.y = -0.25
        det.bbox.center.position.z = 1.5 + i
        det.bbox.center.orientation.z = math.sin(0.3 * i / 2)
        det.bbox.center.orientation.w = math.cos(0.3 * i / 2)
        det.bbox.size.x, det.bbox.size.y, det.bbox.size.z = 0.2, 0.3 + i, 0.4
        for j, (label, score) in enumerate((('mug', 0.9), ('bowl', 0.07))):
            hyp = ObjectHypothesisWithPose()
            hyp.hypothesis.class_id = label
            hyp.hypothesis.score = score - 0.01 * i
            hyp.pose.pose.position.x = 0.1 * i + j
            hyp.pose.pose.orientation.w = 1.0
            hyp.pose.covariance[0] = 0.01 * (i + 1)
            hyp.pose.covariance[35] = 0.5
            det.results.append(hyp)
        msg.detections.append(det)

    data = serialize_message(msg)
    assert isinstance(data, bytes) and len(data) > 0
    out = deserialize_message(data, Detection3DArray)

    assert out == msg  # generated __eq__ compares every field recursively
    assert out.header.frame_id == 'camera_color_optical_frame'
    assert out.header.stamp.sec == 1712345678 and out.header.stamp.nanosec == 123456789
    assert [d.id for d in out.detections] == ['track_0', 'track_1', 'track_2']
    det = out.detections[2]
    assert det.bbox.center.position.z == pytest.approx(3.5)
    assert (det.bbox.size.x, det.bbox.size.y, det.bbox.size.z) == pytest.approx((0.2, 2.3, 0.4))
    assert [h.hypothesis.class_id for h in det.results] == ['mug', 'bowl']
    assert det.results[0].hypothesis.score == pytest.approx(0.88)
    assert det.results[1].pose.pose.position.x == pytest.approx(1.2)
    assert det.results[0].pose.covariance[0] == pytest.approx(0.03)
    assert len(det.results[0].pose.covariance) == 36


def test_tf_message_round_trip():
    TFMessage = _import('tf2_msgs', 'TFMessage')
    from geometry_msgs.msg import TransformStamped

    msg = TFMessage()
    for i, (parent, child) in enumerate((('world', 'camera_link'),
                                         ('camera_link', 'camera_color_optical_frame'))):
        t = TransformStamped()
        _fill_header(t.header, 100 + i, 500 * i, parent)
        t.child_frame_id = child
        t.transform.translation.x = 0.5 * (i + 1)
        t.transform.translation.y = -1.0
        t.transform.translation.z = 0.25
        t.transform.rotation.x = -0.5
        t.transform.rotation.y = 0.5
        t.transform.rotation.z = -0.5
        t.transform.rotation.w = 0.5
        msg.transforms.append(t)

    out = deserialize_message(serialize_message(msg), TFMessage)

    assert out == msg
    assert [t.header.frame_id for t in out.transforms] == ['world', 'camera_link']
    assert [t.child_frame_id for t in out.transforms] == [
        'camera_link', 'camera_color_optical_frame']
    assert out.transforms[1].header.stamp.sec == 101
    assert out.transforms[1].header.stamp.nanosec == 500
    assert out.transforms[1].transform.translation.x == pytest.approx(1.0)
    q = out.transforms[0].transform.rotation
    assert (q.x, q.y, q.z, q.w) == pytest.approx((-0.5, 0.5, -0.5, 0.5))
