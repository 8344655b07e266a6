"""bringup: start the perception graph as plain processes (where ``ros2 launch`` is unavailable).

    bringup [--image-topic image] [--camera-info-topic camera_info] [--model PATH] [--device auto]
            [--shape-db PATH] [--score-threshold S] [--namespace NS] [--synthetic-camera [--rate-hz 5]]

Builds the nodes from scene3d_ros.ros.graph, the description launch/perception.launch.py uses,
with the same parameter files and remappings. Every process gets localhost-only discovery, and
a random ROS_DOMAIN_ID unless one is set. Ctrl-C (SIGINT/SIGTERM) stops all nodes cleanly.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from scene3d_ros.ros.environment import localhost_ros_environment
from scene3d_ros.ros.graph import LAUNCH_ARGUMENTS, NodeSpec, perception_graph


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
        parser.add_argument("--" + name.replace("_", "-"), default=default, help=f"{text} (default: {default!r})")
    parser.add_argument("--synthetic-camera", action="store_true", help="also start the synthetic camera")
    parser.add_argument("--rate-hz", type=float, default=5.0, help="synthetic camera rate (default 5)")
    args = parser.parse_args(argv)
    specs = perception_graph(args.image_topic, args.camera_info_topic, args.model, args.device, args.shape_db,
                             args.score_threshold)
    if args.synthetic_camera:
        specs.append(NodeSpec("synthetic_camera", "scene3d_ros.ros.synthetic_camera", "synthetic_camera",
                              "synthetic_camera.yaml", {"rate_hz": args.rate_hz},
                              (("image", args.image_topic), ("camera_info", args.camera_info_topic))))
    domain = os.environ.get("ROS_DOMAIN_ID")
    env = localhost_ros_environment(domain_id=int(domain) if domain else None)
    print(f"bringup: ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, nodes: {', '.join(s.name for s in specs)}", flush=True)
    processes = start_graph(specs, args.namespace, env)
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
        stop_graph(processes)
    return code


if __name__ == "__main__":
    sys.exit(main())
