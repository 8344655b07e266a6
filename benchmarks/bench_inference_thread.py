"""Why perception_node runs every torch call on its inference thread: CPU inference per thread layout.

    .venv/bin/python benchmarks/bench_inference_thread.py [--reps 3] [--no-write]

Times ``Pipeline`` (shipped model, node thresholds) on 6 rendered 640x480 scenes, ``--reps``
passes each, median per call, in three layouts, each in a fresh process:
  worker_only        built, warmed up and run on one worker thread (what the node does)
  main_only          everything on the main thread
  worker_after_main  built and warmed up on the main thread, run on a worker thread (what the
                     node did before: OpenMP then keeps a second thread team)
Writes benchmarks/results/inference_thread.md and .json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time

from common import RESULTS, machine, wait_until_quiet

from scene3d_ros.paths import atomic_write_text

LAYOUTS = ("worker_only", "main_only", "worker_after_main")


def run_layout(layout: str, reps: int) -> dict:
    """Median and mean milliseconds per call for ``layout`` (in this process)."""
    import numpy as np

    from scene3d_ros.pipeline import Pipeline
    from scene3d_ros.world.annotations import generate_annotated_scene
    from scene3d_ros.world.cad_library import ensure_cad_library
    from scene3d_ros.world.renderer import Renderer
    from scene3d_ros.world.scene_sampler import SceneConfig

    library, renderer = ensure_cad_library(progress=False), Renderer()
    scenes = [generate_annotated_scene(np.random.default_rng(seed), library, SceneConfig(image_sizes=((640, 480),)),
                                       renderer) for seed in range(6)]
    state: dict = {}

    def build() -> None:
        state["pipeline"] = Pipeline(None, "cpu", 0.5, library=library)
        state["pipeline"].warm_up()

    def measure() -> None:
        times = []
        for _ in range(reps):
            for scene in scenes:
                start = time.perf_counter()
                state["pipeline"](scene.rendered.rgb, scene.scene.intrinsics)
                times.append(1e3 * (time.perf_counter() - start))
        state["times"] = times

    def on_worker(fn) -> None:
        worker = threading.Thread(target=fn)
        worker.start()
        worker.join()

    if layout == "worker_only":
        on_worker(lambda: (build(), measure()))
    elif layout == "main_only":
        build()
        measure()
    else:
        build()
        on_worker(measure)
    return {"median_ms": round(statistics.median(state["times"]), 1), "mean_ms": round(statistics.fmean(state["times"]), 1),
            "calls": len(state["times"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--layout", choices=LAYOUTS, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for idle cores first")
    args = parser.parse_args()
    if args.layout:
        print(json.dumps(run_layout(args.layout, args.reps)))
        return 0
    busy = wait_until_quiet(0.15, args.max_wait)
    results = {}
    for layout in LAYOUTS:
        out = subprocess.run([sys.executable, __file__, "--layout", layout, "--reps", str(args.reps)],
                             check=True, capture_output=True, text=True).stdout
        results[layout] = json.loads(out.strip().splitlines()[-1])
        print(layout, results[layout], flush=True)
    ratio = round(results["worker_after_main"]["median_ms"] / results["worker_only"]["median_ms"], 2)
    record = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cores_busy_before": round(busy, 2),
              "reps": args.reps, "layouts": results, "worker_after_main_over_worker_only": ratio}
    lines = ["# CPU inference per thread layout (why perception_node keeps torch on one thread)", "",
             f"Machine: {record['machine']['nproc']} cores, {record['machine']['cpu']}. Command: "
             f"`.venv/bin/python benchmarks/bench_inference_thread.py --reps {args.reps}` ({record['date']}); "
             f"cores busy before: {busy:.0%}. Shipped model, 6 rendered 640x480 scenes, score threshold 0.5.", "",
             "| layout | median (ms) | mean (ms) | calls |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {r['median_ms']} | {r['mean_ms']} | {r['calls']} |" for name, r in results.items()]
    lines += ["", f"worker_after_main / worker_only (medians): {ratio}", ""]
    print("\n".join(lines))
    if not args.no_write:
        atomic_write_text(RESULTS / "inference_thread.json", json.dumps(record, indent=1) + "\n")
        atomic_write_text(RESULTS / "inference_thread.md", "\n".join(lines))
        print(f"wrote {RESULTS / 'inference_thread.md'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
