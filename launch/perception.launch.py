"""ros2 launch scene3d_ros perception.launch.py [image_topic:=...] [camera_info_topic:=...]
[model:=...] [device:=auto|cpu|cuda] [shape_db:=...] [score_threshold:=...] [namespace:=...]

Starts perception_node and retrieval_node from scene3d_ros.ros.graph, the same description the
`bringup` entry point uses where ros2 launch is not available.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from scene3d_ros.paths import config_dir
from scene3d_ros.ros.graph import LAUNCH_ARGUMENTS, perception_graph


def _nodes(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    specs = perception_graph(value["image_topic"], value["camera_info_topic"], value["model"], value["device"],
                             value["shape_db"], value["score_threshold"])
    return [Node(package="scene3d_ros", executable=spec.executable, name=spec.name, namespace=value["namespace"],
                 parameters=[str(config_dir() / spec.params_file), spec.parameters],
                 remappings=list(spec.remappings), output="screen")
            for spec in specs]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in LAUNCH_ARGUMENTS.items()]
        + [OpaqueFunction(function=_nodes)])
