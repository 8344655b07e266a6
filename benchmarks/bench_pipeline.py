"""Per-frame pipeline time on idle cores and beside a busy core, per threading configuration.

    .venv/bin/python benchmarks/bench_pipeline.py [--configs default,passive,one_thread,two_workers] [--frames 6]
        [--reps 3] [--size 640x480] [--checkpoint PATH] [--viewpoint-checkpoint PATH] [--max-wait 120]
        [--name pipeline_shared_core] [--no-write]

``Pipeline`` (the shipped model unless ``--checkpoint``; perception_node's score_threshold,
max_detections and input_size from config/perception.yaml) on ``--frames`` rendered scenes,
called from worker threads as perception_node calls it. Each threading configuration
(benchmarks/common.py ``THREADING``: ``default`` = no OMP_WAIT_POLICY and torch's default
intra-op threads, today's behaviour of a plain ``Pipeline``; ``passive`` = OMP_WAIT_POLICY=PASSIVE;
``one_thread`` = ``num_threads=1``; ``two_workers`` = two threads taking the frames in turn from
one list and calling the same Pipeline, one intra-op thread each, as perception_node's
``inference_workers:=2``) runs in its own process, because OpenMP reads its policy when torch
loads. In that process, after a warm-up pass: ``--reps`` passes over the frames on idle cores,
then ``--reps`` passes while a busy neighbour (a pure-Python spin loop in a child process pinned
to one core, bounded in time, killed at the end) takes one core. Per phase: milliseconds per
frame as throughput (the pass's wall time / frames; what a camera faster than the network gets,
and what the ratios compare) and per call (median and p95; with several workers each call runs
beside another, so a call takes longer than a frame's share of the wall time). The record names
the machine load (os.getloadavg before and after), the exact command and each process's threads
and policy.

Writes benchmarks/results/<name>.md and .json (default pipeline_shared_core). The issue-18 target:
beside one busy core at most 1.6x the default configuration's idle time per frame, and idle
time within 5 % of the default configuration's.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
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

from scene3d_ros.paths import atomic_write_text, default_model_path, report_path

TARGET_SHARED_OVER_IDLE = 1.6
TARGET_IDLE_LOSS = 0.05


def percentile(values: list[float], q: float) -> float:
    """``q``-th percentile of ``values`` (ms), rounded to 0.1."""
    return round(float(np.percentile(values, q)), 1)


def save_frames(path: Path, count: int, width: int, height: int) -> None:
    """``count`` rendered scenes (:func:`common.render_scenes`) saved to ``path`` (.npz: rgb uint8
    (N, H, W, 3), K (N, 3, 3) pixels)."""
    frames = render_scenes(count, width, height)
    np.savez(path, rgb=np.stack([rgb for rgb, _ in frames]), K=np.stack([k.matrix for _, k in frames]))


def run_config(name: str, frames_path: Path, reps: int, checkpoint: Path, viewpoint_checkpoint: str | None,
               busy_seconds: float) -> dict:
    """This process's part: configuration ``name`` idle, then beside the busy core (see the module doc)."""
    from scene3d_ros.config import load_yaml
    from scene3d_ros.geometry import CameraIntrinsics
    from scene3d_ros.paths import config_dir
    from scene3d_ros.pipeline import Pipeline

    params = load_yaml(config_dir() / "perception.yaml")["/**"]["ros__parameters"]
    data = np.load(frames_path)
    frames = [(rgb, CameraIntrinsics.from_matrix(k, rgb.shape[1], rgb.shape[0])) for rgb, k in zip(data["rgb"], data["K"],
                                                                                                  strict=True)]
    workers = THREADING[name]["workers"]
    result: dict = {"config": name, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "workers": workers}
    others = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="inference") if workers > 1 else None

    def timed_pass(pipeline: Pipeline, passes: int) -> tuple[list[float], list[int], float]:
        """``passes`` rounds over the frames, shared out among ``workers`` threads (this one and the
        pool's): per-call times (ms), detections per call, wall time per frame (ms)."""
        jobs = [frame for _ in range(passes) for frame in frames]
        taken, lock, times, counts = iter(range(len(jobs))), threading.Lock(), [], []

        def consume() -> None:
            while True:
                with lock:
                    i = next(taken, None)
                if i is None:
                    return
                start = time.perf_counter()
                objects = pipeline(*jobs[i])
                times.append(1e3 * (time.perf_counter() - start))
                counts.append(len(objects))

        start = time.perf_counter()
        futures = [others.submit(consume) for _ in range(workers - 1)] if others else []
        consume()
        for future in futures:
            future.result()
        return times, counts, 1e3 * (time.perf_counter() - start) / len(jobs)

    def work() -> None:
        pipeline = Pipeline(checkpoint, "cpu", float(params["score_threshold"]),
                            max_detections=int(params["max_detections"]), input_size=int(params["input_size"]) or None,
                            num_threads=THREADING[name]["num_threads"], viewpoint_checkpoint=viewpoint_checkpoint)
        result["intra_op_threads"] = pipeline.intra_op_threads
        result["viewpoint_stage"] = pipeline.viewpoint_stage is not None
        timed_pass(pipeline, 1)  # warm-up, on every worker thread
        idle, detections, idle_per_frame = timed_pass(pipeline, reps)
        with busy_core(busy_core_index(), busy_seconds) as busy:
            shared, _, shared_per_frame = timed_pass(pipeline, reps)
            result["busy_alive_to_the_end"] = busy.poll() is None
        pipeline.close()
        result["mean_detections"] = round(statistics.fmean(detections), 1)
        for phase, times, per_frame in (("idle", idle, idle_per_frame), ("shared", shared, shared_per_frame)):
            result[phase] = {"calls": len(times), "ms_per_frame": round(per_frame, 1),
                             "median_ms": round(statistics.median(times), 1), "p95_ms": percentile(times, 95),
                             "mean_ms": round(statistics.fmean(times), 1)}

    outcome: dict = {}

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised on the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=guarded, name="inference")
    worker.start()
    worker.join()
    if others:
        others.shutdown()
    if "error" in outcome:
        raise outcome["error"]
    return result


def summarize(results: dict[str, dict]) -> dict:
    """Ratios of throughput time per frame: against the default configuration's idle time (when it
    ran) and shared/idle per configuration."""
    base = results.get("default", {}).get("idle", {}).get("ms_per_frame")
    summary = {}
    for name, r in results.items():
        row = {"shared_over_own_idle": round(r["shared"]["ms_per_frame"] / r["idle"]["ms_per_frame"], 2)}
        if base:
            row["shared_over_default_idle"] = round(r["shared"]["ms_per_frame"] / base, 2)
            row["idle_over_default_idle"] = round(r["idle"]["ms_per_frame"] / base, 2)
        summary[name] = row
    return summary


def markdown(record: dict) -> str:
    m = record["machine"]
    lines = ["# Pipeline per frame on idle cores and beside one busy core, per threading configuration", "",
             f"Machine: {m['nproc']} cores, {m['cpu']}. Command: `{record['command']}` ({record['date']}). "
             f"Load average (1/5/15 min) before: {record['load_before']}, after: {record['load_after']}; cores busy "
             f"before: {record['cores_busy_before']:.0%}.",
             f"Model: {record['checkpoint']}. {record['frames']} rendered {record['size']} scenes x {record['reps']} "
             f"passes per phase, after a warm-up pass; busy neighbour: a pure-Python spin loop pinned to core "
             f"{record['busy_core']}. Each configuration in its own process.", "",
             "| config | OMP_WAIT_POLICY | workers x intra-op threads | idle ms/frame; per call median / p95 (ms) | "
             "shared ms/frame; per call median / p95 (ms) | shared / own idle | shared / default idle | "
             "idle / default idle |", "|---|---|---|---|---|---|---|---|"]
    for name, r in record["configs"].items():
        s = record["summary"][name]
        policy = r["omp_wait_policy"] if r["omp_wait_policy"] else "unset"
        idle, shared = r["idle"], r["shared"]
        lines.append(f"| {name} | {policy} | {r.get('workers', 1)} x {r['intra_op_threads']} | {idle['ms_per_frame']}; "
                     f"{idle['median_ms']} / {idle['p95_ms']} | {shared['ms_per_frame']}; {shared['median_ms']} / "
                     f"{shared['p95_ms']} | {s['shared_over_own_idle']} | {s.get('shared_over_default_idle', 'n/a')} | "
                     f"{s.get('idle_over_default_idle', 'n/a')} |")
    lines += ["", f"Targets (issue 18): beside one busy core at most {TARGET_SHARED_OVER_IDLE}x the default "
              f"configuration's idle time per frame; idle time within {TARGET_IDLE_LOSS:.0%} of it. Ratios compare "
              "ms/frame: a pass's wall time over its frames (throughput; with one worker about the mean per call).",
              "Busy process alive through every shared phase: "
              f"{all(r.get('busy_alive_to_the_end') for r in record['configs'].values())}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="default,passive,one_thread,two_workers", help="threading configurations, in order")
    parser.add_argument("--frames", type=int, default=6, help="distinct rendered scenes")
    parser.add_argument("--reps", type=int, default=3, help="passes over the frames per phase")
    parser.add_argument("--size", default="640x480", help="image size WIDTHxHEIGHT (pixels)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="model (default: the shipped model)")
    parser.add_argument("--viewpoint-checkpoint", default=None,
                        help="crop viewpoint stage (default: Pipeline's; '' for network 1 alone)")
    parser.add_argument("--busy-seconds", type=float, default=900.0, help="upper bound of the busy process's life (s)")
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for idle cores first")
    parser.add_argument("--name", default="pipeline_shared_core", help="results file stem under benchmarks/results")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # CONFIG:FRAMES_NPZ, one configuration
    args = parser.parse_args(argv)
    checkpoint = args.checkpoint or default_model_path()
    if args.child:
        name, frames_path = args.child.split(":", 1)
        print(json.dumps(run_config(name, Path(frames_path), args.reps, checkpoint, args.viewpoint_checkpoint,
                                    args.busy_seconds)), flush=True)
        return 0
    try:
        configs = parse_threading(args.configs)
    except ValueError as exc:
        parser.error(str(exc))
    width, height = (int(v) for v in args.size.lower().split("x"))
    record: dict = {"command": command_line("bench_pipeline.py", argv), "machine": machine(),
                    "checkpoint": report_path(checkpoint), "size": args.size, "frames": args.frames, "reps": args.reps,
                    "busy_core": busy_core_index(), "configs": {}}
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        frames_path = Path(tmp) / "frames.npz"
        print(f"rendering {args.frames} frames at {width}x{height} ...", flush=True)
        save_frames(frames_path, args.frames, width, height)
        record["cores_busy_before"] = round(wait_until_quiet(0.15, args.max_wait), 2)
        record["load_before"] = load_average()
        record["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
        for name in configs:
            command = [sys.executable, __file__, "--child", f"{name}:{frames_path}", "--reps", str(args.reps),
                       "--checkpoint", str(checkpoint), "--busy-seconds", str(args.busy_seconds)]
            if args.viewpoint_checkpoint is not None:
                command += ["--viewpoint-checkpoint", args.viewpoint_checkpoint]
            run = subprocess.run(command, env=threading_env(name), capture_output=True, text=True, check=False)
            if run.returncode != 0:
                print(run.stdout[-3000:] + run.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"configuration {name} failed (exit code {run.returncode})")
            record["configs"][name] = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"  {json.dumps(record['configs'][name])}", flush=True)
        record["load_after"] = load_average()
    record["summary"] = summarize(record["configs"])
    text = markdown(record)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        atomic_write_text(RESULTS / f"{args.name}.json", json.dumps(record, indent=1) + "\n")
        atomic_write_text(RESULTS / f"{args.name}.md", text)
        print(f"wrote {RESULTS / args.name}.md and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
