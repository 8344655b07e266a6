"""End-to-end speed and memory of the perception graph: camera -> perception_node -> subscriber, over DDS.

    scripts/in_netns.sh .venv/bin/python benchmarks/bench_graph.py [--quick] [--seconds 60] [--soak-seconds 600]
        [--rate 30] [--size 640x480] [--checkpoint PATH] [--max-wait 300] [--no-write]

This process is the camera and the listener: it renders ``--frames`` synthetic scenes once, then
publishes them in turn at ``--rate`` Hz (sensor_msgs/Image rgb8 + camera_info, SensorDataQoS,
header stamp = the ROS clock, i.e. wall time, at publishing) and subscribes to detections_3d.
perception_node runs as its own process, started from the graph description the launch file uses
(scene3d_ros.ros.graph, config/perception.yaml: score_threshold 0.5, best-effort images), serving
the shipped model (models/scene3d_default.pt) unless ``--checkpoint`` says otherwise.

Per device (the CPU, and CUDA when torch sees a GPU):
- Bare pipeline: ``Pipeline`` in this process on the same frames, the node not running yet, called
  from a worker thread like the node's inference thread: mean and median milliseconds per call
  (after a warm-up pass over the frames).
- Latency: receive time of each detections_3d message minus its header stamp (the image's),
  milliseconds, p50/p95 over the ``--seconds`` window that follows a warm-up of ``--warmup`` s.
- Throughput: detections_3d messages per second over the same window. The keep-latest queue
  always holds a newer frame when inference ends (30 Hz camera, slower network), so
  1000/throughput is the node's time per frame as users see it.
- Node overhead, two ratios against the bare pipeline's mean: (a) throughput-based, 1000/throughput
  over the pipeline mean (everything: conversion, publishing, hand-over, and sharing the cores with
  the camera process; the target, <= 1.15, is judged on this one), and (b) processing-based, the
  node's own mean per-frame time from taking a frame off its queue to its last publish (logged at
  shutdown, over the whole run) over the pipeline mean.
- Soak: the camera keeps publishing ``--soak-seconds`` more; the node's resident memory (VmRSS)
  is sampled every ``--rss-interval`` s from the start of streaming: start/end/max RSS (MiB) and
  the least-squares slope over the soak samples (MiB/min), plus the soak's throughput.

Targets (issue 6): CPU throughput >= 4 FPS at 640x480, overhead <= 1.15. ``--quick`` is a smoke
run (3 s window, 3 s soak, 2 frames) that writes graph_quick.md/.json instead of graph.md/.json.
Run it inside scripts/in_netns.sh: DDS stays on this machine (localhost discovery, random domain).

Shared-core mode (``--shared-core [--configs default,passive,one_thread,two_workers]``, CPU only, no
soak): per threading configuration (benchmarks/common.py ``THREADING``) one perception_node process
with that OMP_WAIT_POLICY (``default``: none; the node's entry point would otherwise set PASSIVE, so
it gets an empty value, which libgomp treats as unset) and ``num_threads`` and ``inference_workers``
parameters; it streams a
``--warmup`` s warm-up, then an idle ``--seconds`` window, then a busy neighbour (a pure-Python spin
loop in a child process pinned to one core, bounded in time, killed at the end) starts, and after
``--warmup`` s more a shared ``--seconds`` window: throughput (FPS) and latency p50/p95 of both
windows of the same run. Writes graph_shared_core.md/.json (``--name`` to change), with the load
average before and after. Issue-18 targets: beside one busy core at most 1.6x the default
configuration's idle time per frame (1000/FPS), idle throughput within 5 % of the default's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from common import (
    RESULTS,
    THREADING,
    busy_core,
    busy_core_index,
    command_line,
    load_average,
    machine,
    parse_threading,
    render_scenes,
    threading_env,
    wait_until_quiet,
)

from scene3d_ros.cli.bringup import start_graph, stop_graph
from scene3d_ros.config import load_yaml
from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.paths import atomic_write_text, config_dir, default_model_path, report_path
from scene3d_ros.pipeline import Pipeline
from scene3d_ros.ros.environment import use_localhost_ros_environment
from scene3d_ros.ros.graph import perception_graph
from scene3d_ros.ros.perception_node import parse_shutdown_stats

T = TypeVar("T")
TARGET_CPU_FPS = 4.0
TARGET_OVERHEAD = 1.15
TARGET_SHARED_OVER_IDLE = 1.6
TARGET_IDLE_LOSS = 0.05


@dataclass
class Frame:
    """One camera frame: RGB uint8 (H, W, 3) and its intrinsics (pixels)."""

    rgb: np.ndarray
    intrinsics: CameraIntrinsics


def render_frames(count: int, width: int, height: int) -> list[Frame]:
    """``count`` synthetic scenes (RGB + intrinsics) at ``width`` x ``height`` pixels."""
    return [Frame(rgb, intrinsics) for rgb, intrinsics in render_scenes(count, width, height)]


def load_frames(path: Path, count: int, width: int, height: int) -> list[Frame]:
    """The first ``count`` frames of ``width`` x ``height`` from inputs saved by
    ``bench_model.py --save-inputs`` (rendered elsewhere: no open3d needed here)."""
    pairs = torch.load(path, weights_only=False)["frames"].get(f"{width}x{height}", [])
    if len(pairs) < count:
        raise SystemExit(f"{path} holds {len(pairs)} frames of {width}x{height}, {count} asked for")
    return [Frame(np.asarray(rgb), CameraIntrinsics.from_matrix(k, width, height)) for rgb, k in pairs[:count]]


def node_parameters() -> dict:
    """The perception_node parameters the graph ships with (config/perception.yaml)."""
    return load_yaml(config_dir() / "perception.yaml")["/**"]["ros__parameters"]


def in_thread(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` run in a fresh thread (its exception re-raised here), as the node runs
    the network in its inference thread."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="inference")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def bench_pipeline(frames: list[Frame], checkpoint: Path, device: str, passes: int) -> dict:
    """Milliseconds per ``Pipeline`` call on ``frames`` (``passes`` rounds), with the node's thresholds.

    Called through :func:`in_thread`, as the node calls the network. The first pass over the frames
    is a warm-up (not timed): first calls at a new image size are slower.
    """
    params = node_parameters()
    pipeline = Pipeline(checkpoint, device, float(params["score_threshold"]),
                        max_detections=int(params["max_detections"]), input_size=int(params["input_size"]) or None)
    for frame in frames:
        pipeline(frame.rgb, frame.intrinsics)
    times, detections = [], []
    for _ in range(passes):
        for frame in frames:
            start = time.perf_counter()
            objects = pipeline(frame.rgb, frame.intrinsics)
            times.append(1e3 * (time.perf_counter() - start))
            detections.append(len(objects))
    pipeline.close()
    return {"calls": len(times), "mean_ms": round(statistics.fmean(times), 1),
            "median_ms": round(statistics.median(times), 1), "mean_detections": round(statistics.fmean(detections), 1)}


def rss_mib(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (VmRSS from /proc), nan when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


@dataclass
class Stream:
    """What the camera/listener node saw. Times are wall-clock nanoseconds (the ROS system clock)."""

    published: list[int] = field(default_factory=list)  # header stamps of the images sent
    outputs: list[tuple[int, int]] = field(default_factory=list)  # (header stamp, receive time) of detections_3d
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds since streaming began, MiB)

    def window(self, start_ns: int, end_ns: int) -> list[tuple[int, int]]:
        """Outputs received in [start_ns, end_ns)."""
        return [(s, r) for s, r in self.outputs if start_ns <= r < end_ns]


class CameraFeed:
    """This process's side of the graph: a camera publishing ``frames`` (image + camera_info,
    sensor-data QoS, messages built once, only the stamp changes) and a listener on
    ``detections_3d`` recording into :attr:`stream`, on a ROS context of its own."""

    def __init__(self, frames: list[Frame]) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image
        from vision_msgs.msg import Detection3DArray

        from scene3d_ros.ros.conversions import camera_info_msg, header, rgb8_image_msg, stamp_to_ns

        self._stamp_to_ns = stamp_to_ns
        self.stream = Stream()
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("bench_graph_camera", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.images = [rgb8_image_msg(f.rgb, header(0, "camera_optical_frame")) for f in frames]
        self.infos = [camera_info_msg(f.intrinsics, header(0, "camera_optical_frame")) for f in frames]
        self.image_pub = self.node.create_publisher(Image, "image", qos_profile_sensor_data)
        self.info_pub = self.node.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.node.create_subscription(
            Detection3DArray, "detections_3d",
            lambda m: self.stream.outputs.append((stamp_to_ns(m.header.stamp), time.time_ns())),
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))

    def wait_until_serving(self, process: subprocess.Popen, log_path: Path, timeout_s: float = 300.0) -> None:
        """Spin until perception_node logs "serving" and subscribes to the images."""
        deadline = time.monotonic() + timeout_s
        while self.image_pub.get_subscription_count() == 0 or "serving" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"perception_node did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            self.executor.spin_once(timeout_sec=0.1)

    def send(self) -> None:
        """Publish the next frame (camera_info first) stamped now."""
        k = len(self.stream.published) % len(self.images)
        stamp = self.node.get_clock().now().to_msg()
        self.images[k].header.stamp = self.infos[k].header.stamp = stamp
        self.info_pub.publish(self.infos[k])
        self.image_pub.publish(self.images[k])
        self.stream.published.append(self._stamp_to_ns(stamp))

    def spin_until(self, end_ns: int, process: subprocess.Popen, log_path: Path) -> None:
        """Spin (timers send, the listener records) until wall time ``end_ns``; fail if the node dies."""
        while time.time_ns() < end_ns:
            if process.poll() is not None:
                raise RuntimeError(f"perception_node died:\n{log_path.read_text(errors='replace')[-3000:]}")
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def run_graph(frames: list[Frame], checkpoint: Path, device: str, rate_hz: float, warmup_s: float,
              seconds: float, soak_s: float, rss_interval_s: float, log_path: Path) -> tuple[Stream, dict, dict]:
    """Start perception_node, stream ``frames`` at ``rate_hz`` for warm-up + window + soak, stop it.

    Returns what was seen, the phase boundaries (ns) and the node's shutdown counters.
    """
    feed = CameraFeed(frames)
    stream = feed.stream
    spec = perception_graph(model=str(checkpoint), device=device)[0]
    with log_path.open("wb") as log:
        process = start_graph([spec], stdout=[log])[0]
        try:
            feed.wait_until_serving(process, log_path)

            def sample_rss() -> None:
                stream.rss.append((time.monotonic() - began, rss_mib(process.pid)))

            began = time.monotonic()
            start_ns = time.time_ns()
            phases = {"warmup_end": start_ns + int(warmup_s * 1e9), "window_end": start_ns + int((warmup_s + seconds) * 1e9),
                      "soak_end": start_ns + int((warmup_s + seconds + soak_s) * 1e9)}
            sample_rss()
            feed.node.create_timer(1.0 / rate_hz, feed.send)
            feed.node.create_timer(rss_interval_s, sample_rss)
            feed.spin_until(phases["soak_end"], process, log_path)
            sample_rss()
            end = time.monotonic() + 1.0  # the frame in flight
            while time.monotonic() < end:
                feed.executor.spin_once(timeout_sec=0.05)
        finally:
            stop_graph([process], timeout=20.0)
            feed.close()
    stats = parse_shutdown_stats(log_path.read_text(errors="replace"))
    if stats is None:
        raise RuntimeError(f"no shutdown counters in the node's log:\n{log_path.read_text(errors='replace')[-3000:]}")
    return stream, phases, stats


def run_graph_shared(frames: list[Frame], checkpoint: Path, config: str, rate_hz: float, warmup_s: float,
                     seconds: float, log_path: Path, busy_seconds: float) -> dict:
    """One threading configuration in the shared-core mode: perception_node (CPU) with ``config``'s
    OMP_WAIT_POLICY, ``num_threads`` and ``inference_workers``; ``rate_hz`` camera; warm-up, idle window, busy neighbour on
    one core, settling ``warmup_s``, shared window. Returns FPS and latency p50/p95 (ms) per window."""
    feed = CameraFeed(frames)
    spec = perception_graph(model=str(checkpoint), device="cpu")[0]
    spec = replace(spec, parameters={**spec.parameters, "num_threads": THREADING[config]["num_threads"],
                                     "inference_workers": THREADING[config]["workers"]})
    windows: dict[str, tuple[int, int]] = {}
    busy_alive = False
    with log_path.open("wb") as log:
        process = start_graph([spec], env=threading_env(config, node=True), stdout=[log])[0]
        try:
            feed.wait_until_serving(process, log_path)
            feed.node.create_timer(1.0 / rate_hz, feed.send)
            start = time.time_ns() + int(warmup_s * 1e9)
            windows["idle"] = (start, start + int(seconds * 1e9))
            feed.spin_until(windows["idle"][1], process, log_path)
            with busy_core(busy_core_index(), busy_seconds) as busy:
                start = time.time_ns() + int(warmup_s * 1e9)
                windows["shared"] = (start, start + int(seconds * 1e9))
                feed.spin_until(windows["shared"][1], process, log_path)
                busy_alive = busy.poll() is None
        finally:
            stop_graph([process], timeout=20.0)
            feed.close()
    log_text = log_path.read_text(errors="replace")
    serving = next((line for line in log_text.splitlines() if "serving" in line), "")
    stats = parse_shutdown_stats(log_text) or {}
    stamps = [s for s, _ in feed.stream.outputs]
    entry: dict = {"config": config, "omp_wait_policy": THREADING[config]["omp_wait_policy"],
                   "num_threads": THREADING[config]["num_threads"], "workers": THREADING[config]["workers"],
                   "serving_line": serving.strip()[-200:], "busy_alive_to_the_end": busy_alive,
                   "late_results_dropped": int(stats.get("late", 0)),  # several workers: overtaken results
                   "outputs_out_of_order": sum(b < a for a, b in zip(stamps, stamps[1:], strict=False))}
    for name, (begin, end) in windows.items():
        window = feed.stream.window(begin, end)
        latencies = [(r - s) / 1e6 for s, r in window]
        fps = len(window) / seconds
        entry[name] = {"outputs": len(window), "throughput_fps": round(fps, 2),
                       "ms_per_frame": round(1e3 / fps, 1) if fps else float("nan"),
                       "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)}}
    return entry


def summarize_shared(configs: dict[str, dict]) -> dict[str, dict]:
    """Per configuration: shared over own idle time per frame, and against the default's idle time
    per frame and throughput (when the default ran)."""
    base = configs.get("default", {}).get("idle", {})
    out = {}
    for name, entry in configs.items():
        idle, shared = entry["idle"]["ms_per_frame"], entry["shared"]["ms_per_frame"]
        row = {"shared_over_own_idle": round(shared / idle, 2)}
        if base.get("ms_per_frame"):
            row["shared_over_default_idle"] = round(shared / base["ms_per_frame"], 2)
            row["idle_fps_over_default"] = round(entry["idle"]["throughput_fps"] / base["throughput_fps"], 3)
        out[name] = row
    return out


def markdown_shared(result: dict, args) -> str:
    lines = ["# Perception graph on idle cores and beside one busy core, per threading configuration", "",
             f"Machine: {result['machine']['nproc']} cores, {result['machine']['cpu']}; torch {torch.__version__}. "
             f"Command: `scripts/in_netns.sh .venv/bin/python {args.command}` ({result['date']}). Load average "
             f"(1/5/15 min) before: {result['load_before']}, after: {result['load_after']}; cores busy before: "
             f"{result['cores_busy_before']:.0%}.",
             f"Model: {result['checkpoint']}. Camera (this process): {args.frames} pre-rendered {args.size} scenes at "
             f"{args.rate:g} Hz; perception_node on the CPU, one process per configuration. Per configuration: "
             f"{args.warmup:g} s warm-up, {args.seconds:g} s idle window, then a pure-Python spin loop pinned to core "
             f"{result['busy_core']}, {args.warmup:g} s settling, {args.seconds:g} s shared window.", "",
             "| config | OMP_WAIT_POLICY | num_threads | inference_workers | idle FPS | idle latency p50 / p95 (ms) | "
             "shared FPS | shared latency p50 / p95 (ms) | shared / own idle (ms per frame) | shared / default idle | "
             "idle FPS / default |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in result["configs"].items():
        s = result["summary"][name]
        lines.append(f"| {name} | {e['omp_wait_policy'] or 'unset'} | {e['num_threads']} | {e.get('workers', 1)} | "
                     f"{e['idle']['throughput_fps']} | "
                     f"{e['idle']['latency_ms']['p50']} / {e['idle']['latency_ms']['p95']} | "
                     f"{e['shared']['throughput_fps']} | {e['shared']['latency_ms']['p50']} / "
                     f"{e['shared']['latency_ms']['p95']} | {s['shared_over_own_idle']} | "
                     f"{s.get('shared_over_default_idle', 'n/a')} | {s.get('idle_fps_over_default', 'n/a')} |")
    lines += ["", f"Targets (issue 18): beside one busy core at most {TARGET_SHARED_OVER_IDLE}x the default "
              f"configuration's idle time per frame (1000 / FPS); idle throughput within {TARGET_IDLE_LOSS:.0%} of "
              "the default's. Latency = detections_3d receive time minus the image header stamp.",
              "Busy process alive through every shared window: "
              f"{all(e['busy_alive_to_the_end'] for e in result['configs'].values())}. Late results dropped (whole "
              "run; several inference workers) / outputs out of stamp order: "
              + ", ".join(f"{n}: {e.get('late_results_dropped', 0)} / {e.get('outputs_out_of_order', 0)}"
                          for n, e in result["configs"].items()) + ". Serving lines: "
              + "; ".join(f"{n}: `{e['serving_line']}`" for n, e in result["configs"].items()), ""]
    return "\n".join(lines)


def main_shared(args, frames: list[Frame], checkpoint: Path) -> int:
    """The shared-core mode (see the module doc)."""
    busy = wait_until_quiet(0.15, args.max_wait)
    result = {"machine": machine(), "cores_busy_before": round(busy, 2), "load_before": load_average(),
              "checkpoint": report_path(checkpoint), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "busy_core": busy_core_index(),
              "settings": {k: getattr(args, k) for k in ("size", "rate", "frames", "warmup", "seconds")},
              "configs": {}}
    busy_seconds = 4 * (args.warmup + args.seconds) + 120.0
    for config in args.configs:
        print(f"{config}: {args.warmup:g} s warm-up + {args.seconds:g} s idle + {args.warmup:g} s + {args.seconds:g} s "
              "beside a busy core ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench_graph_") as tmp:
            entry = run_graph_shared(frames, checkpoint, config, args.rate, args.warmup, args.seconds,
                                     Path(tmp) / "perception_node.log", busy_seconds)
        result["configs"][config] = entry
        print(f"  {json.dumps(entry)}", flush=True)
    result["load_after"] = load_average()
    result["summary"] = summarize_shared(result["configs"])
    text = markdown_shared(result, args)
    print(text)
    if not args.no_write:
        stem = args.name or "graph_shared_core"
        RESULTS.mkdir(parents=True, exist_ok=True)
        atomic_write_text(RESULTS / f"{stem}.json", json.dumps(result, indent=1) + "\n")
        atomic_write_text(RESULTS / f"{stem}.md", text)
        print(f"wrote {RESULTS / stem}.md and .json")
    return 0


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def _slope_mib_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, MiB per minute (nan with fewer than 2)."""
    if len(samples) < 2:
        return float("nan")
    t, m = np.array(samples).T
    return round(float(np.polyfit(t / 60.0, m, 1)[0]), 2)


def summarize(stream: Stream, phases: dict, stats: dict, pipeline: dict, args) -> dict:
    window = stream.window(phases["warmup_end"], phases["window_end"])
    latencies = [(r - s) / 1e6 for s, r in window]
    throughput = len(window) / args.seconds
    sent = [s for s in stream.published if phases["warmup_end"] <= s < phases["window_end"]]
    ms_per_output = 1e3 / throughput if throughput else float("nan")
    entry = {
        "pipeline": pipeline,
        "published_hz": round(len(sent) / args.seconds, 1),
        "outputs": len(window), "throughput_fps": round(throughput, 2),
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95),
                       "max": round(max(latencies), 1) if latencies else float("nan")},
        "node": {"processed": int(stats["processed"]), "received": int(stats["received"]),
                 "dropped": int(stats["dropped"]), "processing_ms": stats["processing_ms"],
                 "network_ms": stats.get("inference_ms", float("nan"))},
        "overhead": {"throughput_based": round(ms_per_output / pipeline["mean_ms"], 3),
                     "processing_based": round(stats["processing_ms"] / pipeline["mean_ms"], 3)},
    }
    if args.soak_seconds > 0:
        soak_start_s = args.warmup + args.seconds
        soak = [(t, m) for t, m in stream.rss if t >= soak_start_s and np.isfinite(m)]
        rss = [m for _, m in stream.rss if np.isfinite(m)]
        entry["soak"] = {
            "seconds": args.soak_seconds, "samples": len(stream.rss),
            "throughput_fps": round(len(stream.window(phases["window_end"], phases["soak_end"])) / args.soak_seconds, 2),
            "rss_mib": {"start": round(rss[0], 1), "end": round(rss[-1], 1), "max": round(max(rss), 1)},
            "rss_slope_mib_per_min": _slope_mib_per_min(soak),
            "rss_series": [[round(t, 1), round(m, 1)] for t, m in stream.rss if np.isfinite(m)]}  # (s, MiB)
    return entry


def markdown(result: dict, args) -> str:
    lines = ["# Perception graph: end-to-end latency, throughput, overhead, memory", "",
             f"Machine: {result['machine']['nproc']} cores, {result['machine']['cpu']}; torch {torch.__version__}, "
             f"{result['torch_threads']} CPU threads. Command: `scripts/in_netns.sh .venv/bin/python "
             f"{args.command}` ({result['date']}); cores busy before: "
             f"{result['cores_busy_before']:.0%}.",
             f"Model: {result['checkpoint']}. Camera: {args.frames} pre-rendered {args.size} scenes published in turn "
             f"at {args.rate:g} Hz (best effort); node parameters from config/perception.yaml. Window: "
             f"{args.seconds:g} s after a {args.warmup:g} s warm-up; soak {args.soak_seconds:g} s more.", "",
             "| device | pipeline mean / median (ms) | throughput (FPS) | latency p50 / p95 (ms) | node ms/frame "
             "(1000/FPS; own processing; of which network) | overhead (throughput; processing) | frames received / dropped |",
             "|---|---|---|---|---|---|---|"]
    for entry in result["devices"].values():
        p, n, o = entry["pipeline"], entry["node"], entry["overhead"]
        per_frame = 1e3 / entry["throughput_fps"] if entry["throughput_fps"] else float("nan")
        lines.append(f"| {entry['name']} | {p['mean_ms']} / {p['median_ms']} | {entry['throughput_fps']} | "
                     f"{entry['latency_ms']['p50']} / {entry['latency_ms']['p95']} | {per_frame:.1f}; "
                     f"{n['processing_ms']}; {n['network_ms']} | {o['throughput_based']}; {o['processing_based']} | "
                     f"{n['received']} / {n['dropped']} |")
    if any("soak" in e for e in result["devices"].values()):
        lines += ["", "| device | soak (s) | throughput (FPS) | node RSS start / end / max (MiB) | RSS slope (MiB/min) |",
                  "|---|---|---|---|---|"]
        for entry in result["devices"].values():
            if "soak" in entry:
                s = entry["soak"]
                lines.append(f"| {entry['name']} | {s['seconds']:g} | {s['throughput_fps']} | {s['rss_mib']['start']} "
                             f"/ {s['rss_mib']['end']} / {s['rss_mib']['max']} | {s['rss_slope_mib_per_min']} |")
    cpu = result["devices"].get("cpu")
    if cpu:
        lines += ["", f"Targets: CPU throughput >= {TARGET_CPU_FPS:g} FPS: "
                  f"{'met' if cpu['throughput_fps'] >= TARGET_CPU_FPS else 'NOT met'} ({cpu['throughput_fps']}); "
                  f"node overhead <= {TARGET_OVERHEAD} (throughput-based): "
                  f"{'met' if cpu['overhead']['throughput_based'] <= TARGET_OVERHEAD else 'NOT met'} "
                  f"({cpu['overhead']['throughput_based']})."]
    lines += ["", "Latency = detections_3d receive time minus the image header stamp (same clock). Throughput-based "
              "overhead = (1000 / throughput) / pipeline mean: what the graph delivers against the bare network on "
              "the same frames, including sharing the cores with the camera process. Processing-based = the node's "
              "mean time from taking a frame to its last publish (over the whole run) / pipeline mean. RSS slope: "
              "least squares over the soak's samples.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s window, 3 s soak, 2 frames")
    parser.add_argument("--checkpoint", type=Path, default=None, help="model (default: the shipped model)")
    parser.add_argument("--size", default="640x480", help="image size WIDTHxHEIGHT (pixels)")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate (Hz)")
    parser.add_argument("--frames", type=int, default=None, help="distinct pre-rendered frames (default 8, quick 2)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of streaming ignored (default 10, quick 1)")
    parser.add_argument("--seconds", type=float, default=None, help="latency/throughput window (default 60, quick 3)")
    parser.add_argument("--soak-seconds", type=float, default=None, help="soak after the window (default 600, quick 3; "
                        "0: none)")
    parser.add_argument("--rss-interval", type=float, default=None, help="RSS sampling period (s; default 5, quick 1)")
    parser.add_argument("--devices", default="auto", help="auto (cpu, plus cuda when available) | cpu | cuda")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--name", default=None,
                        help="results file stem under benchmarks/results (default graph, quick: graph_quick)")
    parser.add_argument("--max-wait", type=float, default=None, help="seconds to wait for idle cores first "
                        "(default 300, quick 0)")
    parser.add_argument("--inputs", type=Path, default=None, help="take the frames from inputs saved by "
                        "bench_model.py --save-inputs (4 per size) instead of rendering them")
    parser.add_argument("--shared-core", action="store_true",
                        help="idle vs beside one busy core, per threading configuration (CPU; see the module doc)")
    parser.add_argument("--configs", default="default,passive,one_thread,two_workers",
                        help="threading configurations of --shared-core, in order")
    args = parser.parse_args(argv)
    args.command = command_line("bench_graph.py", argv)
    quick = {"frames": 2, "warmup": 1.0, "seconds": 3.0, "soak_seconds": 3.0, "rss_interval": 1.0, "max_wait": 0.0}
    full = {"frames": 8, "warmup": 10.0, "seconds": 60.0, "soak_seconds": 600.0, "rss_interval": 5.0, "max_wait": 300.0}
    if args.shared_core:
        full = {**full, "warmup": 5.0, "seconds": 30.0, "soak_seconds": 0.0}
        try:
            args.configs = parse_threading(args.configs)
        except ValueError as exc:
            parser.error(str(exc))
        if args.devices not in ("auto", "cpu"):
            parser.error("--shared-core times the CPU only")
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    width, height = (int(v) for v in args.size.lower().split("x"))
    checkpoint = args.checkpoint or default_model_path()
    devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []), "cpu": ["cpu"],
               "cuda": ["cuda"]}[args.devices]

    use_localhost_ros_environment()  # this process and the node: localhost discovery, a random domain
    if not os.environ.get("SCENE3D_IN_NETNS"):
        print("note: not inside scripts/in_netns.sh (discovery still stays on localhost)", file=sys.stderr)
    if args.inputs:
        frames = load_frames(args.inputs, args.frames, width, height)
    else:
        print(f"rendering {args.frames} frames at {width}x{height} ...", flush=True)
        frames = render_frames(args.frames, width, height)
    if args.shared_core:
        return main_shared(args, frames, checkpoint)
    busy = wait_until_quiet(0.15, args.max_wait)
    result = {"machine": machine(), "torch_threads": torch.get_num_threads(), "cores_busy_before": round(busy, 2),
              "checkpoint": report_path(checkpoint), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "settings": {k: getattr(args, k) for k in ("size", "rate", "frames", "warmup", "seconds",
                                                         "soak_seconds", "rss_interval")},
              "devices": {}}
    for device in devices:
        name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({result['machine']['cpu']})"
        print(f"{device}: bare pipeline on the same frames ...", flush=True)
        pipeline = in_thread(bench_pipeline, frames, checkpoint, device, passes=1 if args.quick else 5)
        print(f"  {pipeline}", flush=True)
        print(f"{device}: graph, {args.warmup:g} s warm-up + {args.seconds:g} s window + {args.soak_seconds:g} s soak "
              "...", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench_graph_") as tmp:
            stream, phases, stats = run_graph(frames, checkpoint, device, args.rate, args.warmup, args.seconds,
                                              args.soak_seconds, args.rss_interval, Path(tmp) / "perception_node.log")
        entry = {"name": name, **summarize(stream, phases, stats, pipeline, args)}
        result["devices"][device] = entry
        print(f"  {json.dumps(entry)}", flush=True)
    text = markdown(result, args)
    print(text)
    if not args.no_write:
        stem = args.name or ("graph_quick" if args.quick else "graph")
        RESULTS.mkdir(parents=True, exist_ok=True)
        atomic_write_text(RESULTS / f"{stem}.json", json.dumps(result, indent=1) + "\n")
        atomic_write_text(RESULTS / f"{stem}.md", text)
        print(f"wrote {RESULTS / stem}.md and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
