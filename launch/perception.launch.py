"""ros2 launch scene3d_ros perception.launch.py [image_topic:=...] [camera_info_topic:=...]
[model:=...] [device:=auto|cpu|cuda] [shape_db:=...] [score_threshold:=...] [namespace:=...]
[params_file:=my_params.yaml] [synthetic_camera:=true [rate_hz:=5.0]] [rviz:=true]

Starts perception_node and retrieval_node (and the synthetic camera, and RViz2) from
scene3d_ros.ros.graph, the same description and arguments the `bringup` entry point uses where
ros2 launch is not available.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from scene3d_ros.ros.graph import LAUNCH_ARGUMENTS, RVIZ_MISSING, graph_from_arguments, rviz_config, rviz_executable


def _actions(context):
    graph = graph_from_arguments({name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS})
    actions = [Node(package="scene3d_ros", executable=spec.executable, name=spec.name, namespace=graph.namespace,
                    parameters=[*spec.params_files(), spec.parameters], remappings=list(spec.remappings),
                    output="screen")
               for spec in graph.nodes]
    if graph.rviz:
        if rviz_executable():
            actions.append(Node(package="rviz2", executable="rviz2", name="rviz2",
                                arguments=["-d", str(rviz_config())], output="screen"))
        else:
            actions.append(LogInfo(msg=RVIZ_MISSING))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in LAUNCH_ARGUMENTS.items()]
        + [OpaqueFunction(function=_actions)])
