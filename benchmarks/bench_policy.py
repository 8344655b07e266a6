"""Cost of the resolution policy per object, as the nodes run it, on real detections.

    .venv/bin/python benchmarks/bench_policy.py [--frames 8] [--objects 5] [--size 640x480] [--reps 5]
        [--threads 2] [--max-wait 120] [--quick]

Inputs: ``--frames`` rendered synthetic scenes of ``--objects`` objects each (fewer where they do
not fit). The shipped pipeline (network 1, the crop viewpoint stage: k = 5 hypotheses, mask-head box
masks, shape probabilities) runs once per frame, untimed, at the perception node's score threshold;
its detections are kept. Then, per policy variant, :meth:`~scene3d_ros.pipeline.Pipeline.retrieve`
(the queries as the nodes build them and :meth:`~scene3d_ros.retrieval.ResolutionPolicy.resolve`
against the shipped shape database, on the CPU) is timed on each frame's detections; the variants
take turns, frame by frame, ``--reps`` times after one untimed warm-up pass, so a change in the machine's load reaches them alike.
Reported per variant: the median over frames and reps of the milliseconds per frame and per object
(frame time / its detections), and the ratio of each variant's median per object to the shipped
defaults'.

Variants: ``shipped`` (the policy's defaults: silhouette check, camera term, translation fit, shape
term, occlusion-aware); ``occlusion_aware=false``; ``camera_weight=0`` (no rendering in the camera);
``silhouette_check=false`` (descriptor, hypotheses and shape term only). Writes
benchmarks/results/policy.md and .json (``--quick``: policy_quick.*, 2 frames, 1 rep) with the load
average before and after. ``--busy-neighbour``: the timed passes run beside a pure-Python spin loop
pinned to one core (:func:`common.busy_core`, as a robot's other processes share its cores);
writes policy_shared_core.* instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
from common import (
    RESULTS,
    busy_core,
    busy_core_index,
    command_line,
    load_average,
    machine,
    render_scenes,
    wait_until_quiet,
)

from scene3d_ros.config import load_yaml
from scene3d_ros.paths import atomic_write_text, config_dir, default_model_path, report_path
from scene3d_ros.pipeline import Pipeline
from scene3d_ros.retrieval import ResolutionPolicy, ShapeDatabase, default_shape_db_path
from scene3d_ros.retrieval.resolution import box_overlaps
from scene3d_ros.world.cad_library import ensure_cad_library

VARIANTS = {
    "shipped": {},
    "occlusion_aware=false": {"occlusion_aware": False},
    "camera_weight=0": {"camera_weight": 0.0},
    "silhouette_check=false": {"silhouette_check": False},
}


def overlapping_pairs(boxes: list[np.ndarray]) -> int:
    """Pairs of boxes (x0 y0 x1 y1) that overlap: the objects the occlusion-aware IoU resamples."""
    if len(boxes) < 2:
        return 0
    return int(box_overlaps(torch.tensor(np.stack(boxes), dtype=torch.float64)).triu(diagonal=1).sum())


def run(frames: list, pipeline: Pipeline, shape_db: ShapeDatabase, reps: int
        ) -> tuple[dict[str, list[float]], dict[str, list[float]], list]:
    """Per variant, milliseconds per frame and per object over frames x reps; each frame's detections.
    ``pipeline`` comes without a shape database (its calls run the networks only, untimed) and
    retrieves from ``shape_db``."""
    base = pipeline.policy
    policies = {name: base.replace(**changes) for name, changes in VARIANTS.items()}
    detections = [pipeline(rgb, intrinsics) for rgb, intrinsics in frames]
    pipeline.shape_db = shape_db
    per_frame: dict[str, list[float]] = {name: [] for name in VARIANTS}
    per_object: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for rep in range(reps + 1):  # pass 0: warm-up (renderer, lazy set-up), not recorded
        for (_rgb, intrinsics), objects in zip(frames, detections, strict=True):
            if not objects:
                continue
            for name, policy in policies.items():
                pipeline.policy = policy
                start = time.perf_counter()
                pipeline.retrieve(objects, intrinsics)
                ms = 1e3 * (time.perf_counter() - start)
                if rep == 0:
                    continue
                per_frame[name].append(ms)
                per_object[name].append(ms / len(objects))
    pipeline.policy = base
    return per_frame, per_object, detections


def to_markdown(record: dict) -> str:
    shipped = record["variants"]["shipped"]["median_ms_per_object"]
    lines = [f"# Resolution policy cost per object (`{record['command']}`)", "",
             f"CPU: {record['machine']['cpu']}, {record['threads']} torch threads; {record['frames']} rendered "
             f"{record['size']} scenes of {record['objects']} objects; detections per frame "
             f"{record['detections_per_frame']} (score threshold {record['score_threshold']}), overlapping box pairs "
             f"per frame {record['overlapping_pairs_per_frame']}; reps {record['reps']}; shape database "
             f"{record['shape_db']} ({record['shape_db_views']} views); load average before "
             f"{record['load_before'][0]:.2f}, after {record['load_after'][0]:.2f} (1 min); busy share of the cores "
             f"before {record['cores_busy_before']}"
             + (f"; timed beside a spin loop pinned to core {record['busy_core']}" if "busy_core" in record else "")
             + ".", "",
             "| policy variant | median ms per object | median ms per frame | vs shipped |", "|---|---:|---:|---:|"]
    for name, row in record["variants"].items():
        lines.append(f"| {name} | {row['median_ms_per_object']:.1f} | {row['median_ms_per_frame']:.1f} | "
                     f"{row['median_ms_per_object'] / shipped:.2f} |")
    lines += ["", "Timed: `Pipeline.retrieve` (queries + `ResolutionPolicy.resolve`), what `retrieval_node` runs per "
              "frame; the networks are not in these numbers (benchmarks/results/viewpoint_speed.md, graph.md)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=None, help="rendered scenes (default 8, quick 2)")
    parser.add_argument("--objects", type=int, default=5, help="objects per scene where they fit")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT pixels")
    parser.add_argument("--reps", type=int, default=None, help="passes over the frames (default 5, quick 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for quiet cores")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 frames, 1 rep, policy_quick.*")
    parser.add_argument("--busy-neighbour", action="store_true",
                        help="time beside a spin loop pinned to one core; writes policy_shared_core.*")
    args = parser.parse_args(argv)
    frames_n = args.frames or (2 if args.quick else 8)
    reps = args.reps or (1 if args.quick else 5)
    if frames_n < 1 or reps < 1 or args.objects < 1:
        parser.error("--frames, --reps and --objects must be >= 1")
    width, height = (int(v) for v in args.size.lower().split("x"))
    torch.set_num_threads(args.threads)
    params = load_yaml(config_dir() / "perception.yaml")["/**"]["ros__parameters"]
    library = ensure_cad_library(progress=False)
    db_path = default_shape_db_path()
    shape_db = ShapeDatabase.load(db_path, expected_library_checksum=library.checksum)
    pipeline = Pipeline(default_model_path(), "cpu", float(params["score_threshold"]), library=library,
                        max_detections=int(params["max_detections"]), num_threads=args.threads,
                        policy=ResolutionPolicy())
    print(f"rendering {frames_n} frames at {args.size} ...", flush=True)
    frames = render_scenes(frames_n, width, height, args.objects)
    record: dict = {"command": command_line("bench_policy.py", argv), "machine": machine(), "torch": torch.__version__,
                    "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                    "checkpoint": report_path(pipeline.checkpoint), "shape_db": report_path(db_path),
                    "shape_db_views": len(shape_db.descriptors), "score_threshold": pipeline.score_threshold,
                    "size": args.size, "frames": frames_n, "objects": args.objects, "reps": reps}
    record["cores_busy_before"] = round(wait_until_quiet(0.15, args.max_wait), 2)
    record["load_before"] = load_average()
    if args.busy_neighbour:
        record["busy_core"] = busy_core_index()
        with busy_core(record["busy_core"], max_seconds=1800.0):
            per_frame, per_object, detections = run(frames, pipeline, shape_db, reps)
    else:
        per_frame, per_object, detections = run(frames, pipeline, shape_db, reps)
    record["load_after"] = load_average()
    record["overlapping_pairs_per_frame"] = [overlapping_pairs([o.box for o in objects]) for objects in detections]
    record["detections_per_frame"] = [len(objects) for objects in detections]
    record["variants"] = {name: {"median_ms_per_frame": statistics.median(per_frame[name]),
                                 "median_ms_per_object": statistics.median(per_object[name]),
                                 "samples": len(per_frame[name])}
                          for name in VARIANTS if per_frame[name]}
    if not record["variants"]:
        print("no detections in any frame: nothing to time", flush=True)
        return 1
    name = "policy_quick" if args.quick else "policy_shared_core" if args.busy_neighbour else "policy"
    atomic_write_text(RESULTS / f"{name}.json", json.dumps(record, indent=1) + "\n")
    atomic_write_text(RESULTS / f"{name}.md", to_markdown(record))
    print(to_markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
