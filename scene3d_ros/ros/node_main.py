"""The one ``main`` of every scene3d_ros node: init, spin, clean shutdown, clear start-up errors."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from scene3d_ros.ros.environment import default_to_localhost_discovery


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
