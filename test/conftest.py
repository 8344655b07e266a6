"""Test-wide setup: every ROS participant started by the tests stays on this machine.

The environment is applied when pytest imports this file, before any test calls rclpy.init,
and it is inherited by the node processes the tests start: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST,
a random ROS_DOMAIN_ID per test session, and the project's localhost Fast DDS profile.
"""

from __future__ import annotations

from scene3d_ros.ros.environment import use_localhost_ros_environment

use_localhost_ros_environment()
