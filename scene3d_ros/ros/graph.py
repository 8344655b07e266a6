"""The one description of the scene3d_ros ROS graph.

``launch/perception.launch.py`` (launch_ros, in a real ROS 2 install) and the ``bringup`` entry
point (plain processes, where ros2cli/launch are not installable) both build their nodes from
:func:`perception_graph`, so the two cannot drift apart. No rclpy import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scene3d_ros.paths import config_dir


@dataclass(frozen=True)
class NodeSpec:
    """One node: its console script / module, name, parameter file (config/, ``/**:`` keyed),
    parameter overrides and topic remappings (``from`` -> ``to``)."""

    executable: str
    module: str
    name: str
    params_file: str
    parameters: dict = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()

    def ros_arguments(self, namespace: str = "") -> list[str]:
        """``--ros-args ...`` for starting this node as a plain process."""
        args = ["--ros-args", "-r", f"__node:={self.name}", "--params-file", str(config_dir() / self.params_file)]
        if namespace:
            args += ["-r", f"__ns:=/{namespace.strip('/')}"]
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={value}"]
        for source, target in self.remappings:
            args += ["-r", f"{source}:={target}"]
        return args


def perception_graph(image_topic: str = "image", camera_info_topic: str = "camera_info", model: str = "",
                     device: str = "auto", shape_db: str = "", score_threshold: str | float = "") -> list[NodeSpec]:
    """perception_node and retrieval_node, wired together (relative topics, so a namespace applies).

    Empty strings keep the parameter files' values (config/perception.yaml, config/retrieval.yaml).
    """
    perception_params: dict = {"device": device}
    if str(score_threshold):
        perception_params["score_threshold"] = float(score_threshold)
    if model:
        perception_params["model_path"] = model
    retrieval_params: dict = {"shape_db": shape_db} if shape_db else {}
    if model:
        retrieval_params["model_path"] = model  # the database must have been built with this checkpoint
    return [
        NodeSpec("perception_node", "scene3d_ros.ros.perception_node", "perception_node", "perception.yaml",
                 perception_params, (("image", image_topic), ("camera_info", camera_info_topic))),
        NodeSpec("retrieval_node", "scene3d_ros.ros.retrieval_node", "retrieval_node", "retrieval.yaml",
                 retrieval_params),
    ]


LAUNCH_ARGUMENTS = {
    "image_topic": ("image", "sensor_msgs/Image topic of the camera"),
    "camera_info_topic": ("camera_info", "sensor_msgs/CameraInfo topic of the camera"),
    "model": ("", "network checkpoint (empty: the shipped model)"),
    "device": ("auto", "auto | cpu | cuda"),
    "shape_db": ("", "shape database (empty: the default one)"),
    "score_threshold": ("", "minimum detection score (empty: config/perception.yaml)"),
    "namespace": ("", "namespace of both nodes"),
}
"""Launch argument -> (default, description); shared by the launch file and ``bringup``."""
