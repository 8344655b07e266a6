"""The graph description: launch file and bringup share it (arguments included); the RViz2
configuration names what the graph publishes; bringup runs the whole graph over DDS.

synthetic camera -> perception_node -> retrieval_node (all started by `bringup` as separate
processes) -> this process: objects and markers carry the camera image's header.
"""

from __future__ import annotations

import json
import re
import runpy
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest
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
from scene3d_ros.ros.graph import (
    LAUNCH_ARGUMENTS,
    RVIZ_CONFIG,
    RVIZ_MISSING,
    graph_from_arguments,
    rviz_executable,
)

ROOT = Path(__file__).resolve().parents[1]


def _run_launch_file(monkeypatch, arguments: dict[str, str]) -> tuple[list, list]:
    """launch/perception.launch.py run against stand-ins for launch and launch_ros (not installable
    here): its declared arguments and the actions it builds for ``arguments`` (name -> value, as
    ``name:=value`` on the command line), each as (kind, keyword arguments)."""
    def recorder(kind):
        return lambda *args, **kwargs: (kind, {**kwargs, **({"args": args} if args else {})})

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    modules = {"launch": {"LaunchDescription": lambda actions: actions},
               "launch.actions": {"DeclareLaunchArgument": recorder("argument"), "LogInfo": recorder("log"),
                                  "OpaqueFunction": recorder("opaque")},
               "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
               "launch_ros": {}, "launch_ros.actions": {"Node": recorder("node")}}
    for name, attributes in modules.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attributes))
    description = runpy.run_path(str(ROOT / "launch" / "perception.launch.py"))["generate_launch_description"]()
    declared = [kwargs for kind, kwargs in description if kind == "argument"]
    (opaque,) = [kwargs for kind, kwargs in description if kind == "opaque"]
    context = {a["args"][0]: a["default_value"] for a in declared} | arguments
    return declared, opaque["function"](context)


def test_launch_file_declares_the_shared_arguments_and_builds_the_shared_graph(monkeypatch, tmp_path):
    declared, actions = _run_launch_file(monkeypatch, {})
    assert [(a["args"][0], a["default_value"]) for a in declared] == [(n, d) for n, (d, _) in LAUNCH_ARGUMENTS.items()]
    assert [(kind, a["executable"]) for kind, a in actions] == [("node", "perception_node"), ("node", "retrieval_node")]
    perception = actions[0][1]
    assert perception["parameters"] == [str(ROOT / "config" / "perception.yaml"), {"publish_tf": False}]
    assert perception["remappings"] == [("image", "image"), ("camera_info", "camera_info")]
    assert actions[1][1]["remappings"] == [("camera_info", "camera_info")]  # retrieval_node's translation fit

    mine = tmp_path / "mine.yaml"
    mine.write_text("/**:\n  ros__parameters:\n    max_detections: 2\n")
    _, actions = _run_launch_file(monkeypatch, {
        "synthetic_camera": "true", "rate_hz": "2", "params_file": str(mine), "image_topic": "/cam/image_raw",
        "namespace": "robot1", "score_threshold": "0.3", "rviz": "true"})
    nodes = {a["name"]: a for kind, a in actions if kind == "node"}
    assert set(nodes) == {"perception_node", "retrieval_node", "synthetic_camera"} | (
        {"rviz2"} if rviz_executable() else set())
    assert nodes["perception_node"]["parameters"] == [str(ROOT / "config" / "perception.yaml"), str(mine),
                                                      {"publish_tf": False, "score_threshold": 0.3}]
    assert nodes["synthetic_camera"]["parameters"][1:] == [str(mine), {"rate_hz": 2.0}]
    assert ("image", "/cam/image_raw") in nodes["synthetic_camera"]["remappings"]
    assert all(nodes[n]["namespace"] == "robot1" for n in ("perception_node", "retrieval_node", "synthetic_camera"))
    if rviz_executable():
        assert nodes["rviz2"]["arguments"] == ["-d", str(ROOT / "config" / RVIZ_CONFIG)]
    else:  # says so instead of failing
        assert ("log", {"msg": RVIZ_MISSING}) in actions


def test_launch_arguments_parse_into_the_graph_and_bad_values_are_named(tmp_path):
    graph = graph_from_arguments({})
    assert [s.name for s in graph.nodes] == ["perception_node", "retrieval_node"] and not graph.rviz
    # empty arguments keep the parameter files' values; retrieval_node publishes the object frames
    assert graph.nodes[0].parameters == {"publish_tf": False}
    mine = tmp_path / "mine.yaml"
    mine.write_text("/**:\n  ros__parameters:\n    max_detections: 2\n")
    graph = graph_from_arguments({"synthetic_camera": "True", "rviz": "true", "params_file": str(mine),
                                  "device": "cpu", "namespace": "robot1"})
    assert [s.name for s in graph.nodes] == ["perception_node", "retrieval_node", "synthetic_camera"]
    assert graph.rviz and graph.namespace == "robot1"
    args = graph.nodes[0].ros_arguments(graph.namespace)  # the package's file, the user's, then the overrides
    files = [args[i + 1] for i, a in enumerate(args) if a == "--params-file"]
    assert files == [str(ROOT / "config" / "perception.yaml"), str(mine)]
    assert args.index(str(mine)) < args.index("device:=cpu")
    for bad, message in (({"rviz": "yes"}, "rviz must be true or false, got 'yes'"),
                         ({"params_file": str(tmp_path / "none.yaml")}, "none.yaml' is not a file"),
                         ({"score_threshold": "high"}, "score_threshold must be a number, got 'high'"),
                         ({"rate_hz": "fast", "synthetic_camera": "true"}, "rate_hz must be a number"),
                         ({"image": "x"}, "unknown launch argument")):
        with pytest.raises(ValueError, match=re.escape(message)):
            graph_from_arguments(bad)


def test_parameter_files_are_wildcard_keyed_and_name_declared_parameters():
    for spec in graph_from_arguments({"synthetic_camera": "true", "rate_hz": "5", "score_threshold": "0.5",
                                      "device": "cpu", "model": "m.pt", "shape_db": "db.pt"}).nodes:
        config = yaml.safe_load((ROOT / "config" / spec.params_file).read_text())
        assert list(config) == ["/**"], f"{spec.params_file} must be keyed /** (renamed/namespaced nodes)"
        source = (ROOT / (spec.module.replace(".", "/") + ".py")).read_text()
        declared = set(re.findall(r'declare\("([a-z0-9_]+)"', source))
        unknown = set(config["/**"]["ros__parameters"]) - declared
        assert not unknown, f"{spec.params_file} sets undeclared parameters {unknown}"
        assert set(spec.parameters) <= declared


def _publishes_object_frames(spec, user_file: Path | None = None) -> bool:
    """Whether ``spec``'s node publishes object TF frames: it has a /tf publisher and its
    ``publish_tf`` (the graph's override, else the user's file, else the package's, else the
    declared default) is true. The synthetic camera's frames are ground truth (gt_*), not objects."""
    source = (ROOT / (spec.module.replace(".", "/") + ".py")).read_text()
    if spec.name == "synthetic_camera" or not re.search(r'create_publisher\(TFMessage, "/tf"', source):
        return False
    value = re.search(r'declare\("publish_tf", (True|False)', source).group(1) == "True"
    for path in (ROOT / "config" / spec.params_file, user_file):
        if path is not None:
            value = yaml.safe_load(path.read_text())["/**"]["ros__parameters"].get("publish_tf", value)
    return bool(spec.parameters.get("publish_tf", value))


def test_the_graph_has_exactly_one_publisher_of_object_frames(tmp_path):
    """One final pose, one TF tree: retrieval_node publishes the object frames (those of
    ``objects``); perception_node's are off in the graph, even when a user's file turns them on."""
    mine = tmp_path / "mine.yaml"
    mine.write_text("/**:\n  ros__parameters:\n    publish_tf: true\n")
    for arguments, user_file in (({}, None), ({"synthetic_camera": "true"}, None),
                                 ({"params_file": str(mine)}, mine)):
        nodes = graph_from_arguments(arguments).nodes
        assert [s.name for s in nodes if _publishes_object_frames(s, user_file)] == ["retrieval_node"]


def _rviz_topics() -> dict[str, str]:
    """Display class -> topic of every display in config/scene3d.rviz that subscribes to one."""
    config = yaml.safe_load((ROOT / "config" / RVIZ_CONFIG).read_text())
    return {d["Class"]: d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"] if "Topic" in d}


def test_rviz_config_shows_what_the_graph_publishes_in_the_camera_frame():
    config = yaml.safe_load((ROOT / "config" / RVIZ_CONFIG).read_text())
    displays = {d["Class"] for d in config["Visualization Manager"]["Displays"]}
    assert {"rviz_default_plugins/Image", "rviz_default_plugins/MarkerArray", "rviz_default_plugins/TF"} <= displays
    topics = _rviz_topics()
    assert topics == {"rviz_default_plugins/Image": "/debug_image", "rviz_default_plugins/MarkerArray": "/markers"}
    published = set()
    for spec in graph_from_arguments({"synthetic_camera": "true"}).nodes:
        source = (ROOT / (spec.module.replace(".", "/") + ".py")).read_text()
        published |= {"/" + t.lstrip("/") for t in re.findall(r'create_publisher\(\w+, "([a-z0-9_/]+)"', source)}
    assert set(topics.values()) <= published, set(topics.values()) - published
    camera = yaml.safe_load((ROOT / "config" / "synthetic_camera.yaml").read_text())["/**"]["ros__parameters"]
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == camera["frame_id"]


def test_bringup_runs_camera_perception_retrieval_end_to_end(tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    db = build_tiny_shape_db(tmp_path / "db.pt", checkpoint, ["car_sedan_01", "chair_swivel_01", "bus_city_01"])
    log = (tmp_path / "bringup.log").open("wb")
    mine = tmp_path / "mine.yaml"  # the user's parameter file, layered over the package's
    mine.write_text("/**:\n  ros__parameters:\n    max_detections: 2\n")
    proc = subprocess.Popen([sys.executable, "-m", "scene3d_ros.cli.bringup", "--synthetic-camera", "--rate-hz", "4",
                             "--model", str(checkpoint), "--shape-db", str(db), "--device", "cpu", "--score-threshold", "0.0",
                             "--namespace", "robot1", "--params-file", str(mine), "--rviz"],
                            stdout=log, stderr=subprocess.STDOUT)
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

            def object_tf(stamp):  # the camera's ground-truth frames (gt_*) share the stamp
                return [t for t in tf.get(stamp, []) if not t.child_frame_id.startswith("gt_")]

            def done():
                return [s for s in objects if s in images and s in markers and s in detections and s in descriptors
                        and object_tf(s) and objects[s].detections]

            ok = spin_until(node, lambda: len(done()) >= 2 or proc.poll() is not None, 150.0)
            assert ok and proc.poll() is None, (tmp_path / "bringup.log").read_text()[-4000:]
            graph_topics = {name for name, _ in node.get_topic_names_and_types()}
            assert {"/robot1" + t for t in _rviz_topics().values()} <= graph_topics, graph_topics
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        log.close()
    output = (tmp_path / "bringup.log").read_text()
    assert code == 0, output[-4000:]
    assert "Traceback" not in output
    assert (RVIZ_MISSING in output) == (rviz_executable() is None), output[-4000:]
    for stamp in done():
        assert objects[stamp].header.frame_id == images[stamp].header.frame_id
        n = len(detections[stamp].detections)
        assert len(objects[stamp].detections) == n and descriptors[stamp].height == n  # one descriptor row each
        assert n <= 2  # max_detections from the user's file (the tiny network reports 5 at threshold 0)
        object_frames = {t.child_frame_id: t for t in object_tf(stamp)}
        assert set(object_frames) == {f"{d.results[0].hypothesis.class_id}_{k}"
                                      for k, d in enumerate(detections[stamp].detections)}
        assert all(t.header.frame_id == images[stamp].header.frame_id for t in object_frames.values())
        assert len(object_tf(stamp)) == n  # one frame per object: one publisher (perception_node's are off)
        for det in objects[stamp].detections:  # the frames are the final poses of objects
            pose, transform = det.results[0].pose.pose, object_frames[json.loads(det.id)["name"]].transform
            assert (transform.translation.x, transform.translation.y, transform.translation.z) == \
                (pose.position.x, pose.position.y, pose.position.z)
            assert transform.rotation == pose.orientation
        for det in objects[stamp].detections:
            info = json.loads(det.id)
            assert det.results[0].hypothesis.class_id in CATEGORIES
            assert info["model_id"] is None or Path(info["mesh_uri"].removeprefix("file://")).is_file()
        assert markers[stamp].markers[0].action == Marker.DELETEALL
        meshes = [m.mesh_resource for m in markers[stamp].markers if m.type == Marker.MESH_RESOURCE]
        assert all(Path(uri.removeprefix("file://")).is_file() for uri in meshes)
        retrieved = sum(json.loads(det.id)["model_id"] is not None for det in objects[stamp].detections)
        assert len(meshes) == retrieved  # one mesh marker per retrieved model, cubes for the fallbacks
