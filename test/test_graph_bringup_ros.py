"""The graph description: launch file and bringup share it; bringup runs the whole graph over DDS.

synthetic camera -> perception_node -> retrieval_node (all started by `bringup` as separate
processes) -> this process: objects and markers carry the camera image's header.
"""

from __future__ import annotations

import ast
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import ros_test_node, spin_until
from sensor_msgs.msg import Image
from tf2_msgs.msg import TFMessage
from tiny_model import build_tiny_shape_db, save_tiny_checkpoint
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import Marker, MarkerArray

from scene3d_ros import CATEGORIES
from scene3d_ros.ros.conversions import stamp_to_ns
from scene3d_ros.ros.graph import LAUNCH_ARGUMENTS, perception_graph

ROOT = Path(__file__).resolve().parents[1]


def test_launch_file_builds_its_nodes_from_the_shared_description():
    tree = ast.parse((ROOT / "launch" / "perception.launch.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "scene3d_ros.ros.graph" for alias in node.names}
    assert {"perception_graph", "LAUNCH_ARGUMENTS"} <= imported
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert "perception_graph" in called
    bringup = ast.parse((ROOT / "scene3d_ros" / "cli" / "bringup.py").read_text())
    assert "perception_graph" in {n.func.id for n in ast.walk(bringup)
                                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def test_parameter_files_are_wildcard_keyed_and_name_declared_parameters():
    for spec in perception_graph():
        config = yaml.safe_load((ROOT / "config" / spec.params_file).read_text())
        assert list(config) == ["/**"], f"{spec.params_file} must be keyed /** (renamed/namespaced nodes)"
        source = (ROOT / (spec.module.replace(".", "/") + ".py")).read_text()
        declared = set(re.findall(r'declare\("([a-z0-9_]+)"', source))
        unknown = set(config["/**"]["ros__parameters"]) - declared
        assert not unknown, f"{spec.params_file} sets undeclared parameters {unknown}"
        assert set(spec.parameters) <= declared
    assert set(LAUNCH_ARGUMENTS) == {"image_topic", "camera_info_topic", "model", "device", "shape_db",
                                     "score_threshold", "namespace"}


def test_bringup_runs_camera_perception_retrieval_end_to_end(tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    db = build_tiny_shape_db(tmp_path / "db.pt", checkpoint, ["car_sedan_01", "chair_swivel_01", "bus_city_01"])
    log = (tmp_path / "bringup.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "scene3d_ros.cli.bringup", "--synthetic-camera", "--rate-hz", "4",
                             "--model", str(checkpoint), "--shape-db", str(db), "--device", "cpu", "--score-threshold", "0.0",
                             "--namespace", "robot1"], stdout=log, stderr=subprocess.STDOUT)
    images, objects, markers, detections, descriptors, tf = {}, {}, {}, {}, {}, {}

    def on_tf(msg):
        for t in msg.transforms:
            tf.setdefault(stamp_to_ns(t.header.stamp), []).append(t)

    try:
        with ros_test_node("bringup_listener") as node:
            node.create_subscription(Image, "/robot1/image", lambda m: images.__setitem__(stamp_to_ns(m.header.stamp), m), 10)
            node.create_subscription(Detection3DArray, "/robot1/objects", lambda m: objects.__setitem__(stamp_to_ns(m.header.stamp), m), 10)
            node.create_subscription(MarkerArray, "/robot1/markers", lambda m: markers.__setitem__(stamp_to_ns(m.markers[0].header.stamp), m), 10)
            node.create_subscription(Detection3DArray, "/robot1/detections_3d", lambda m: detections.__setitem__(stamp_to_ns(m.header.stamp), m), 10)
            node.create_subscription(Image, "/robot1/descriptors", lambda m: descriptors.__setitem__(stamp_to_ns(m.header.stamp), m), 10)
            node.create_subscription(TFMessage, "/tf", on_tf, QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))

            def perception_tf(stamp):  # the camera's ground-truth frames (gt_*) share the stamp
                return [t for t in tf.get(stamp, []) if not t.child_frame_id.startswith("gt_")]

            def done():
                return [s for s in objects if s in images and s in markers and s in detections and s in descriptors
                        and perception_tf(s) and objects[s].detections]

            ok = spin_until(node, lambda: len(done()) >= 2 or proc.poll() is not None, 150.0)
            assert ok and proc.poll() is None, (tmp_path / "bringup.log").read_text()[-4000:]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        log.close()
    output = (tmp_path / "bringup.log").read_text()
    assert code == 0, output[-4000:]
    assert "Traceback" not in output
    for stamp in done():
        assert objects[stamp].header.frame_id == images[stamp].header.frame_id
        n = len(detections[stamp].detections)
        assert len(objects[stamp].detections) == n and descriptors[stamp].height == n  # one descriptor row each
        object_frames = {t.child_frame_id: t for t in perception_tf(stamp)}
        assert set(object_frames) == {f"{d.results[0].hypothesis.class_id}_{k}"
                                      for k, d in enumerate(detections[stamp].detections)}
        assert all(t.header.frame_id == images[stamp].header.frame_id for t in object_frames.values())
        for det in objects[stamp].detections:
            info = json.loads(det.id)
            assert det.results[0].hypothesis.class_id in CATEGORIES
            assert info["model_id"] is None or Path(info["mesh_uri"].removeprefix("file://")).is_file()
        assert markers[stamp].markers[0].action == Marker.DELETEALL
        meshes = [m.mesh_resource for m in markers[stamp].markers if m.type == Marker.MESH_RESOURCE]
        assert all(Path(uri.removeprefix("file://")).is_file() for uri in meshes)
        retrieved = sum(json.loads(det.id)["model_id"] is not None for det in objects[stamp].detections)
        assert len(meshes) == retrieved  # one mesh marker per retrieved model, cubes for the fallbacks
