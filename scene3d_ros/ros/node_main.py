"""The one ``main`` of every scene3d_ros node (init, spin, clean shutdown, clear start-up errors)
and the one way they declare parameters (with descriptions and ranges)."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
from collections.abc import Callable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from scene3d_ros.ros.environment import default_to_localhost_discovery

TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
"""QoS of every scene3d_ros publisher on /tf (tf2's own: reliable, a deep history for bursts of frames)."""


def declare_described(node: Node, name: str, default, description: str, **descriptor_fields):
    """Declare ``node``'s parameter ``name`` with its description and any other ParameterDescriptor
    fields (``read_only``, ``floating_point_range``, ``integer_range``); return its value."""
    return node.declare_parameter(name, default, ParameterDescriptor(description=description, **descriptor_fields)).value


def use_passive_openmp() -> None:
    """Make torch's OpenMP threads sleep instead of spin while they wait (``OMP_WAIT_POLICY=PASSIVE``),
    unless the user set a policy. OpenMP reads it once, when torch loads it: call before torch is
    imported. Spinning threads stall every parallel region when another process holds a core: a
    640x480 frame took 124 ms on 2 idle cores but 579 ms beside one busy core, ~207 ms with
    PASSIVE (at ~170 ms idle), measured on the 2-core build machine.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def perception_node_main() -> int:
    """The ``perception_node`` console script: the OpenMP policy first, then the node (whose module
    imports torch). ``python -m scene3d_ros.ros.perception_node`` does the same at its top."""
    use_passive_openmp()
    from scene3d_ros.ros.perception_node import main

    return main()


SPIN_PERIOD_S = 0.1
"""How often the spinning main thread looks at the stop request (seconds)."""


def run_node(factory: Callable[[], Node], name: str, startup_errors: tuple[type[Exception], ...],
             args: list[str] | None = None) -> int:
    """Spin the node ``factory()`` builds until SIGINT (Ctrl-C), SIGTERM or shutdown; returns the exit code.

    Exceptions in ``startup_errors`` (bad parameters, missing model or database) are logged as one
    fatal line naming the problem and give exit code 1 instead of a traceback. ``kill -USR1 <pid>``
    prints every thread's Python stack to stderr (to see where a node that does not respond is).

    Stopping is ordered: SIGINT/SIGTERM only ask the spin loop to end; then the node is destroyed
    (perception_node joins its inference threads, so nothing publishes any more) and only then is
    the ROS context shut down. rclpy's own signal handlers would shut the context down first, under
    a worker thread that may be publishing at that moment.
    """
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    default_to_localhost_discovery()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    rclpy.init(args=args if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    node, code = None, 0
    try:
        node = factory()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
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
