"""Helpers for tests that run real ROS 2 nodes in other processes and listen over real DDS.

The environment (localhost discovery, a random domain id, the localhost Fast DDS profile) is set
by conftest.py for this process and inherited by every node started here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


class NodeProcess:
    """A node entry point (``python -m module``) running in a child process, logging to a file."""

    def __init__(self, module: str, log_dir: Path, ros_args: list[str] | None = None, name: str | None = None):
        self.name = name or module.rsplit(".", 1)[-1]
        self.log_path = Path(log_dir) / f"{self.name}.log"
        cmd = [sys.executable, "-m", module]
        if ros_args:
            cmd += ["--ros-args", *ros_args]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ))

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0, signum: int = signal.SIGINT) -> int:
        """``signum`` (SIGINT or SIGTERM: a clean node shutdown), then SIGKILL after ``timeout`` seconds (longer than the
        10 s perception_node gives a frame still in inference when it stops, so a slow frame on a
        loaded machine does not turn into a kill)."""
        if self.alive():
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGUSR1)  # the node prints its threads' stacks to the log
                deadline = time.monotonic() + 5.0
                while "most recent call first" not in self.log() and time.monotonic() < deadline:
                    time.sleep(0.05)  # polling the log for the stacks (faulthandler's header line)
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


def run_until_exit(module: str, log_dir: Path, ros_args: list[str], timeout: float = 60.0) -> tuple[int, str]:
    """Start node ``module``, wait for it to exit by itself (e.g. a start-up error), return (exit code, log)."""
    node = NodeProcess(module, log_dir, ros_args)
    try:
        node.process.wait(timeout)
    finally:
        node.stop()
    return node.process.returncode, node.log()


def perception_process(log_dir: Path, checkpoint, *ros_args: str, name: str | None = None) -> NodeProcess:
    """perception_node on the CPU serving ``checkpoint`` with score_threshold 0 (so an untrained
    network still reports objects); ``ros_args`` add or override parameters (``-p name:=value``)."""
    return NodeProcess("scene3d_ros.ros.perception_node", log_dir, [
        "-p", f"model_path:={checkpoint}", "-p", "device:=cpu", "-p", "score_threshold:=0.0", *ros_args], name=name)


def spin_until(node, predicate: Callable[[], bool], timeout: float, processes: list[NodeProcess] = ()) -> bool:
    """Spin ``node`` until ``predicate()`` holds or ``timeout`` seconds pass; fail fast if a child dies."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if predicate():
                return True
            for proc in processes:
                if not proc.alive():
                    raise AssertionError(f"{proc.name} exited with {proc.process.returncode}:\n{proc.log()[-4000:]}")
            executor.spin_once(timeout_sec=0.05)
        return predicate()
    finally:
        executor.remove_node(node)
        executor.shutdown()


@contextlib.contextmanager
def ros_test_node(name: str):
    """An rclpy node in its own context, shut down afterwards."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(name, context=context)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
