"""Throughput of synthetic data generation (scenes/s) at 256x256 and 640x480 with 1 and 2 workers.

    .venv/bin/python benchmarks/bench_generate_data.py [--reps 3] [--scenes-256 160] [--scenes-640 48]

Each configuration runs ``generate_dataset`` (the code behind ``generate_data``) into a fresh
temporary folder ``--reps`` times and reports the median. The CAD library is built once into a
private temporary folder (so a concurrent rebuild of the shared one cannot disturb the timing).
"end-to-end" includes starting the worker processes and loading the CAD library in each of
them; "steady" counts the scenes finished after the first shard over the time since it finished
(the rate a long run reaches).
Also times single-object depth maps (``render_depth``, 128x128) for the depth encoder.
Writes benchmarks/results/generate_data.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import RESULTS, machine, wait_until_quiet

from scene3d_ros.data.shards import GenerateConfig, OutputConfig, generate_dataset, read_manifest
from scene3d_ros.geometry import CameraIntrinsics, viewpoint_rotation
from scene3d_ros.paths import atomic_write_text
from scene3d_ros.world.cad_library import ensure_cad_library
from scene3d_ros.world.renderer import Renderer
from scene3d_ros.world.scene_sampler import SceneConfig


def run_once(size: tuple[int, int], scenes: int, per_shard: int, workers: int,
             mp_context: str, library_root: str) -> dict[str, float]:
    config = GenerateConfig(scene=SceneConfig(image_sizes=(size,)),
                            output=OutputConfig(num_scenes=scenes, scenes_per_shard=per_shard, seed=1234),
                            cad_library=library_root)
    stamps: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench_generate_data_") as tmp:
        start = time.perf_counter()
        generate_dataset(config, tmp, workers=workers, mp_context=mp_context,
                         progress=lambda n: stamps.append((time.perf_counter(), n)))
        total = time.perf_counter() - start
        manifest = read_manifest(tmp)
        bytes_per_scene = sum(s["bytes"] for s in manifest["shards"]) / scenes
    first_time, first_n = stamps[0]
    steady = (scenes - first_n) / max(stamps[-1][0] - first_time, 1e-9) if len(stamps) > 1 else float("nan")
    return {"end_to_end": scenes / total, "steady": steady, "seconds": total,
            "bytes_per_scene": bytes_per_scene}


def bench_depth(library, reps: int = 200) -> dict[str, float]:
    renderer = Renderer(nthreads=1)
    intrinsics = CameraIntrinsics.from_fov(128, 128, 40.0)
    rng = np.random.default_rng(0)
    models = library.models[: min(20, len(library.models))]
    times = []
    for i in range(reps):
        model = models[i % len(models)]
        mesh = library.mesh(model.model_id)
        distance = 1.6 * float(np.linalg.norm(model.extents)) / (2 * np.tan(np.radians(20.0)))
        rotation = viewpoint_rotation(rng.uniform(0, 360), rng.uniform(-10, 60), rng.uniform(-15, 15))
        t0 = time.perf_counter()
        renderer.render_depth(mesh, rotation, np.array([0.0, 0.0, distance]), intrinsics)
        times.append(time.perf_counter() - t0)
    warm = times[len(models):]  # first call per mesh builds its scene
    return {"median_ms": 1e3 * statistics.median(warm),
            "first_call_median_ms": 1e3 * statistics.median(times[:len(models)]),
            "faces_median": float(np.median([len(library.mesh(m.model_id).faces) for m in models]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scenes-256", type=int, default=160)
    parser.add_argument("--scenes-640", type=int, default=48)
    parser.add_argument("--mp-context", default="forkserver", choices=["forkserver", "spawn"])
    parser.add_argument("--no-write", action="store_true", help="print only, do not write results/")
    parser.add_argument("--max-busy", type=float, default=0.15,
                        help="before each run, wait until the cores are at most this busy (share)")
    parser.add_argument("--max-wait", type=float, default=600.0, help="seconds to wait for a quiet machine")
    args = parser.parse_args(argv)

    library_dir = tempfile.TemporaryDirectory(prefix="bench_cad_library_")
    library = ensure_cad_library(library_dir.name, progress=False)
    info = machine()
    print(f"machine: {info}", flush=True)
    rows = []
    cases = [  # (image size, scenes, scenes per shard, workers, multiprocessing context)
        ((256, 256), args.scenes_256, 20, 1, "-"),
        ((256, 256), args.scenes_256, 20, 2, "spawn"),
        ((256, 256), args.scenes_256, 20, 2, "forkserver"),
        ((640, 480), args.scenes_640, 6, 1, "-"),
        ((640, 480), args.scenes_640, 6, 2, args.mp_context),
    ]
    for size, scenes, per_shard, workers, context in cases:
        load_before = os.getloadavg()[0]
        runs, busy = [], []
        for _ in range(args.reps):
            busy.append(wait_until_quiet(args.max_busy, args.max_wait))
            mp_context = context if workers > 1 else args.mp_context
            runs.append(run_once(size, scenes, per_shard, workers, mp_context, library_dir.name))
        row = {"size": f"{size[0]}x{size[1]}", "workers": workers, "mp_context": context, "scenes": scenes,
               "scenes_per_shard": per_shard, "loadavg_1min_before": load_before,
               "cpu_busy_before_runs": [round(b, 3) for b in busy],
               "end_to_end_scenes_per_s": statistics.median(r["end_to_end"] for r in runs),
               "steady_scenes_per_s": statistics.median(r["steady"] for r in runs),
               "all_end_to_end": [round(r["end_to_end"], 2) for r in runs],
               "bytes_per_scene": statistics.median(r["bytes_per_scene"] for r in runs)}
        rows.append(row)
        print(f"{row['size']} workers={workers} {context}: "
              f"{row['end_to_end_scenes_per_s']:.1f} scenes/s end-to-end, "
              f"{row['steady_scenes_per_s']:.1f} steady, {row['bytes_per_scene'] / 1024:.0f} KiB/scene "
              f"(runs {row['all_end_to_end']}, cores busy before {row['cpu_busy_before_runs']})", flush=True)
    depth = bench_depth(library)
    print(f"render_depth 128x128: {depth}", flush=True)
    library_dir.cleanup()

    command = " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:]))
    result = {"machine": info, "mp_context": args.mp_context, "reps": args.reps,
              "library_models": len(library.models), "generate": rows, "render_depth_128": depth,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command}
    if args.no_write:
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "generate_data.json", json.dumps(result, indent=1) + "\n")
    lines = [
        "# generate_data throughput",
        "",
        f"Machine: {info['nproc']} cores, {info['cpu']}; Python {info['python']}, numpy {info['numpy']}, "
        f"open3d {info['open3d']}; {info['platform']}.",
        f"Command: `{result['command']}` ({result['date']}); CAD library of {len(library.models)} models; "
        f"median of {args.reps} runs. The machine is shared: each run waits until other processes use at "
        f"most {args.max_busy:.0%} of the cores (measured over 1 s; the largest value seen before the runs "
        "is listed; others may still start during a run).",
        "",
        "| image | workers | context | scenes | end-to-end scenes/s (runs) | steady scenes/s | KiB/scene "
        "| cores busy before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        runs = ", ".join(f"{x:.1f}" for x in row["all_end_to_end"])
        lines.append(f"| {row['size']} | {row['workers']} | {row['mp_context']} | {row['scenes']} | "
                     f"{row['end_to_end_scenes_per_s']:.1f} ({runs}) | "
                     f"{row['steady_scenes_per_s']:.1f} | "
                     f"{row['bytes_per_scene'] / 1024:.0f} | {max(row['cpu_busy_before_runs']):.0%} |")
    lines += [
        "",
        "end-to-end: scenes / wall time of `generate_dataset` including worker start-up and library loading; "
        "steady: scenes finished after the first shard / time since then. Worker start-up is ~1.5-3 s "
        "(importing open3d pulls in dash/plotly); with forkserver the first run in a process also starts "
        "the server, later runs reuse it (a `generate_data` command always pays it once).",
        "",
        f"`render_depth` (one model, 128x128, cached scene): median {depth['median_ms']:.2f} ms "
        f"(first call per mesh, building its ray-casting scene: {depth['first_call_median_ms']:.2f} ms; "
        f"median {depth['faces_median']:.0f} faces).",
        "",
    ]
    atomic_write_text(RESULTS / "generate_data.md", "\n".join(lines))
    print(f"wrote {RESULTS / 'generate_data.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
