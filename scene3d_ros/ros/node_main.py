"""The one ``main`` of every scene3d_ros node (init, spin, clean shutdown, clear start-up errors)
and the one way they declare parameters (with descriptions and ranges)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from scene3d_ros.ros.environment import default_to_localhost_discovery


def declare_described(node: Node, name: str, default, description: str, **descriptor_fields):
    """Declare ``node``'s parameter ``name`` with its description and any other ParameterDescriptor
    fields (``read_only``, ``floating_point_range``, ``integer_range``); return its value."""
    return node.declare_parameter(name, default, ParameterDescriptor(description=description, **descriptor_fields)).value


def run_node(factory: Callable[[], Node], name: str, startup_errors: tuple[type[Exception], ...],
             args: list[str] | None = None) -> int:
    """Spin the node ``factory()`` builds until Ctrl-C or shutdown; returns the exit code.

    Exceptions in ``startup_errors`` (bad parameters, missing model or database) are logged as one
    fatal line naming the problem and give exit code 1 instead of a traceback.
    """
    default_to_localhost_discovery()
    rclpy.init(args=args if args is not None else sys.argv)
    node, code = None, 0
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except startup_errors as exc:
        rclpy.logging.get_logger(name).fatal(f"cannot start: {exc}")
        code = 1
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code
