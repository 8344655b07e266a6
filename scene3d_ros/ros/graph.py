"""The one description of the scene3d_ros ROS graph.

``launch/perception.launch.py`` (launch_ros, in a real ROS 2 install) and the ``bringup`` entry
point (plain processes, where ros2cli/launch are not installable) both take the arguments of
:data:`LAUNCH_ARGUMENTS` and build their graph with :func:`graph_from_arguments`, so the two
cannot drift apart. No rclpy import here.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scene3d_ros.paths import config_dir

RVIZ_CONFIG = "scene3d.rviz"
"""The RViz2 configuration in config/: debug_image, the retrieval node's markers and TF, fixed frame
``camera_optical_frame`` (the synthetic camera's frame_id)."""
RVIZ_MISSING = ("rviz:=true, but rviz2 is not installed (apt install ros-$ROS_DISTRO-rviz2); "
                "the graph runs without it")


@dataclass(frozen=True)
class NodeSpec:
    """One node: its console script / module, name, parameter file (config/, ``/**:`` keyed),
    parameter overrides, topic remappings (``from`` -> ``to``) and a user's parameter file
    layered over the package's (``user_params_file``, absolute; empty: none)."""

    executable: str
    module: str
    name: str
    params_file: str
    parameters: dict = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    user_params_file: str = ""

    def params_files(self) -> list[str]:
        """The package's parameter file, then the user's: a later file overrides an earlier one, and
        ``parameters`` override both."""
        return [str(config_dir() / self.params_file)] + ([self.user_params_file] if self.user_params_file else [])

    def ros_arguments(self, namespace: str = "") -> list[str]:
        """``--ros-args ...`` for starting this node as a plain process."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        for params_file in self.params_files():
            args += ["--params-file", params_file]
        if namespace:
            args += ["-r", f"__ns:=/{namespace.strip('/')}"]
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={value}"]
        for source, target in self.remappings:
            args += ["-r", f"{source}:={target}"]
        return args


def _number(name: str, value: str | float) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def perception_graph(image_topic: str = "image", camera_info_topic: str = "camera_info", model: str = "",
                     device: str = "", shape_db: str = "", score_threshold: str | float = "",
                     params_file: str = "") -> list[NodeSpec]:
    """perception_node and retrieval_node, wired together (relative topics, so a namespace applies).

    Empty strings keep the parameter files' values (config/perception.yaml, config/retrieval.yaml,
    then ``params_file``, the user's own file, when given). One final pose per object, one TF
    tree: retrieval_node publishes the object frames (of ``objects``), so perception_node's own
    (the network's pose, for running it alone) are switched off here, whatever the files say.
    """
    perception_params: dict = {"device": device} if device else {}
    perception_params["publish_tf"] = False  # retrieval_node publishes the final poses' frames
    if str(score_threshold):
        perception_params["score_threshold"] = _number("score_threshold", score_threshold)
    if model:
        perception_params["model_path"] = model
    retrieval_params: dict = {"shape_db": shape_db} if shape_db else {}
    if model:
        retrieval_params["model_path"] = model  # the database must have been built with this checkpoint
    return [
        NodeSpec("perception_node", "scene3d_ros.ros.perception_node", "perception_node", "perception.yaml",
                 perception_params, (("image", image_topic), ("camera_info", camera_info_topic)), params_file),
        NodeSpec("retrieval_node", "scene3d_ros.ros.retrieval_node", "retrieval_node", "retrieval.yaml",
                 retrieval_params, (("camera_info", camera_info_topic),), params_file),  # for the translation fit
    ]


def synthetic_camera_node(image_topic: str = "image", camera_info_topic: str = "camera_info",
                          rate_hz: str | float = "", params_file: str = "") -> NodeSpec:
    """The synthetic camera publishing on the topics perception_node listens to (``rate_hz`` empty:
    the parameter files' rate)."""
    parameters = {"rate_hz": _number("rate_hz", rate_hz)} if str(rate_hz) else {}
    return NodeSpec("synthetic_camera", "scene3d_ros.ros.synthetic_camera", "synthetic_camera", "synthetic_camera.yaml",
                    parameters, (("image", image_topic), ("camera_info", camera_info_topic)), params_file)


LAUNCH_ARGUMENTS = {
    "image_topic": ("image", "sensor_msgs/Image topic of the camera"),
    "camera_info_topic": ("camera_info", "sensor_msgs/CameraInfo topic of the camera"),
    "model": ("", "network checkpoint (empty: the shipped model)"),
    "device": ("", "auto | cpu | cuda (empty: the parameter files' value, auto)"),
    "shape_db": ("", "shape database (empty: the default one)"),
    "score_threshold": ("", "minimum detection score (empty: the parameter files' value)"),
    "namespace": ("", "namespace of every node"),
    "params_file": ("", "your own ROS 2 parameter file (YAML, keyed /** or by node name), layered over the "
                        "package's config/*.yaml for every node; the other arguments override both"),
    "synthetic_camera": ("false", "true: also start the synthetic camera, publishing on image_topic and "
                                  "camera_info_topic (see the graph work without a camera)"),
    "rate_hz": ("", "the synthetic camera's rate in Hz (empty: the parameter files' value, 5)"),
    "rviz": ("false", f"true: also start RViz2 with config/{RVIZ_CONFIG} (says so when rviz2 is not installed)"),
}
"""Launch argument -> (default, description); shared by the launch file and ``bringup``."""

_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class Graph:
    """What the launch arguments ask for: the nodes, their namespace, and whether RViz2 starts."""

    nodes: list[NodeSpec]
    namespace: str = ""
    rviz: bool = False


def graph_from_arguments(values: Mapping[str, str]) -> Graph:
    """The graph that launch arguments describe, from their string values (as ``ros2 launch`` and
    ``bringup`` pass them; an absent one takes its default). ValueError naming a bad value."""
    unknown = set(values) - set(LAUNCH_ARGUMENTS)
    if unknown:
        raise ValueError(f"unknown launch argument(s) {sorted(unknown)}; known: {', '.join(LAUNCH_ARGUMENTS)}")
    v = {name: str(values.get(name, default)).strip() for name, (default, _) in LAUNCH_ARGUMENTS.items()}
    flags = {}
    for name in ("synthetic_camera", "rviz"):
        if v[name].lower() not in _BOOLEANS:
            raise ValueError(f"{name} must be true or false, got {v[name]!r}")
        flags[name] = _BOOLEANS[v[name].lower()]
    params_file = ""
    if v["params_file"]:
        path = Path(v["params_file"]).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"params_file {v['params_file']!r} is not a file")
        params_file = str(path)
    nodes = perception_graph(v["image_topic"], v["camera_info_topic"], v["model"], v["device"], v["shape_db"],
                             v["score_threshold"], params_file)
    if flags["synthetic_camera"]:
        nodes.append(synthetic_camera_node(v["image_topic"], v["camera_info_topic"], v["rate_hz"], params_file))
    return Graph(nodes, v["namespace"], flags["rviz"])


def rviz_config() -> Path:
    """config/scene3d.rviz of the package."""
    return config_dir() / RVIZ_CONFIG


def rviz_executable() -> str | None:
    """The rviz2 program (on PATH, else in the ament index), None when RViz2 is not installed."""
    found = shutil.which("rviz2")
    if found:
        return found
    try:
        from ament_index_python.packages import get_package_prefix

        candidate = Path(get_package_prefix("rviz2")) / "lib" / "rviz2" / "rviz2"
    except Exception:  # no ament index, or no rviz2 in it
        return None
    return str(candidate) if candidate.is_file() else None
