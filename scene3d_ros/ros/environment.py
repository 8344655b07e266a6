"""Environment for processes that start ROS: keep DDS on this machine and out of other graphs.

Used by every launcher in the project (tests, demo, benchmarks, local bringup) before any
``rclpy.init``. Importing this module does not import rclpy.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

from scene3d_ros.paths import config_dir

FASTDDS_PROFILE_NAME = "fastdds_localhost.xml"
# Domain ids 1..101 keep the DDS port range valid (ROS_DOMAIN_ID <= 101 on Linux) and avoid 0,
# the default every other ROS process on a machine uses.
_DOMAIN_ID_RANGE = (1, 101)


def random_domain_id(rng: random.Random | None = None) -> int:
    """A random ROS_DOMAIN_ID in [1, 101], so parallel runs do not see each other."""
    return (rng or random.SystemRandom()).randint(*_DOMAIN_ID_RANGE)


def localhost_ros_environment(base: Mapping[str, str] | None = None, domain_id: int | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) made safe for starting ROS processes.

    Sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_DOMAIN_ID (random unless given), the
    Fast DDS RMW and the project's Fast DDS profile (large shared-memory segments, UDP on
    127.0.0.1 only). Children started with this environment share one private, local graph.
    """
    env = dict(os.environ if base is None else base)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_STATIC_PEERS", None)
    env["ROS_DOMAIN_ID"] = str(random_domain_id() if domain_id is None else int(domain_id))
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(config_dir() / FASTDDS_PROFILE_NAME)
    return env


def use_localhost_ros_environment(domain_id: int | None = None) -> dict[str, str]:
    """Apply :func:`localhost_ros_environment` to this process (call before ``rclpy.init``)."""
    env = localhost_ros_environment(domain_id=domain_id)
    os.environ.update(env)
    return env


def default_to_localhost_discovery() -> None:
    """For node entry points: restrict discovery to localhost unless the user chose a range.

    A robot user who wants the graph across machines exports ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET.
    """
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
