"""bringup: start the perception graph as plain processes (where ``ros2 launch`` is unavailable).

    bringup [--image-topic image] [--camera-info-topic camera_info] [--model PATH] [--device auto]
            [--shape-db PATH] [--score-threshold S] [--namespace NS] [--params-file MY.yaml]
            [--synthetic-camera [--rate-hz 5]] [--rviz]

Takes the arguments of launch/perception.launch.py (``--name value`` for ``name:=value``; the
true/false ones also as bare flags) and builds the graph from scene3d_ros.ros.graph, as the launch
file does, with the same parameter files and remappings. Every process gets localhost-only
discovery, and a random ROS_DOMAIN_ID unless one is set. Ctrl-C (SIGINT/SIGTERM) stops all nodes
cleanly.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from scene3d_ros.ros.environment import localhost_ros_environment
from scene3d_ros.ros.graph import (
    LAUNCH_ARGUMENTS,
    RVIZ_MISSING,
    NodeSpec,
    graph_from_arguments,
    rviz_config,
    rviz_executable,
)


def start_graph(specs: list[NodeSpec], namespace: str = "", env: dict[str, str] | None = None,
                stdout: list | None = None) -> list[subprocess.Popen]:
    """One child process per node spec (``python -m module --ros-args ...``); ``stdout``: one open
    file per spec receiving that node's output (stdout and stderr), else the terminal's."""
    return [subprocess.Popen([sys.executable, "-m", spec.module, *spec.ros_arguments(namespace)], env=env,
                             stdout=stdout[k] if stdout else None, stderr=subprocess.STDOUT if stdout else None)
            for k, spec in enumerate(specs)]


def stop_graph(processes: list[subprocess.Popen], timeout: float = 10.0) -> None:
    """SIGINT to every node, then SIGKILL to those still running after ``timeout`` seconds."""
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for proc in processes:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bringup", description=__doc__.split("\n\n")[0])
    for name, (default, text) in LAUNCH_ARGUMENTS.items():
        flag = "--" + name.replace("_", "-")
        if default in ("true", "false"):  # --synthetic-camera alone means --synthetic-camera true
            parser.add_argument(flag, nargs="?", const="true", default=default, help=f"{text} (default: {default})")
        else:
            parser.add_argument(flag, default=default, help=f"{text} (default: {default!r})")
    args = parser.parse_args(argv)
    try:
        graph = graph_from_arguments({name: getattr(args, name) for name in LAUNCH_ARGUMENTS})
    except ValueError as exc:
        parser.error(str(exc))
    specs = graph.nodes
    domain = os.environ.get("ROS_DOMAIN_ID")
    env = localhost_ros_environment(domain_id=int(domain) if domain else None)
    print(f"bringup: ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, nodes: {', '.join(s.name for s in specs)}", flush=True)
    processes = start_graph(specs, graph.namespace, env)
    viewers = []  # RViz2: stopped with the graph, but closing its window does not stop the graph
    if graph.rviz:
        rviz = rviz_executable()
        if rviz:
            viewers.append(subprocess.Popen([rviz, "-d", str(rviz_config())], env=env))
        else:
            print(f"bringup: {RVIZ_MISSING}", flush=True)
    stop = {"requested": False}

    def request_stop(signum, frame):  # noqa: ARG001
        stop["requested"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    code = 0
    try:
        while not stop["requested"]:
            failed = [(s.name, p.returncode) for s, p in zip(specs, processes, strict=True) if p.poll() is not None]
            if failed:
                print(f"bringup: node(s) exited: {failed}; stopping the graph", file=sys.stderr)
                code = 1
                break
            time.sleep(0.2)
    finally:
        stop_graph(processes + viewers)
    return code


if __name__ == "__main__":
    sys.exit(main())
