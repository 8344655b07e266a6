"""Pose-prior retrieval speed and memory: torch vs FAISS backends on random shape databases.

    .venv/bin/python benchmarks/bench_retrieval.py [--quick] [--threads 2] [--max-wait 120] [--silhouette-check]

Databases of 1k, 10k, 100k and 1M views (``--quick``: 1k and 10k) with random D=500 float32
descriptors, random unit view quaternions (allocentric, w >= 0) and 100 models of 12 categories
(none symmetric). Queries: random descriptors and rotations, no category, ``max_angle_deg=30``
(the pose prior keeps ~0.75 % of the views). Per backend and size: latency per query for one
batched call (``--batch`` queries) and for single-query calls (median over ``--reps``), first
call (index build, device copies) excluded; database size (MiB) and the process peak RSS.
Target of the issue: <= 2 ms per pose-restricted query at 100k views on CPU. Writes
benchmarks/results/retrieval.md and .json (``--quick``: retrieval_quick.md/.json).

``--silhouette-check``: the resolution policy as ``retrieval_node`` runs it by default instead
(:class:`~scene3d_ros.retrieval.ResolutionPolicy` with its default silhouette check: 64
candidates, window 90 deg; random 28x28 view silhouettes and query masks, one hypothesis per
object) on 1k, 10k and 100k views; writes retrieval_silhouette.md/.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch
from common import RESULTS, machine, wait_until_quiet

from scene3d_ros import CATEGORIES
from scene3d_ros.model.rotations import canonicalize_quaternion
from scene3d_ros.paths import atomic_write_text
from scene3d_ros.retrieval import ObjectQuery, ResolutionPolicy, ShapeDatabase

SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)
CHECK_SIZES = (1_000, 10_000, 100_000)
DIM = 500
MODELS = 100
MAX_ANGLE_DEG = ResolutionPolicy.max_angle_deg
CHECK_MAX_ANGLE_DEG = ResolutionPolicy.silhouette_max_angle_deg
GRID = 28


def random_database(views: int, dim: int = DIM, seed: int = 0, silhouettes: bool = False) -> ShapeDatabase:
    """A database of random descriptors/rotations (allocentric quaternions, w >= 0), with random
    view silhouettes when asked."""
    generator = torch.Generator().manual_seed(seed)
    descriptors = torch.randn(views, dim, generator=generator)
    quaternions = canonicalize_quaternion(torch.randn(views, 4, generator=generator))
    model_index = torch.randint(0, MODELS, (views,), generator=generator)
    model_ids = [f"model_{i:03d}" for i in range(MODELS)]
    categories = [CATEGORIES[i % len(CATEGORIES)] for i in range(MODELS)]
    views_silhouettes = ((torch.rand(views, GRID, GRID, generator=generator) > 0.5).to(torch.uint8) * 255
                         if silhouettes else None)
    return ShapeDatabase(descriptors, model_index, quaternions, model_ids, categories, ["none"] * MODELS,
                         library_checksum="random", checkpoint_sha256="random", silhouettes=views_silhouettes)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_size(views: int, backend: str, batch: int, reps: int, check: bool = False) -> dict:
    db = random_database(views, silhouettes=check)
    generator = torch.Generator().manual_seed(1)
    queries = torch.randn(batch, DIM, generator=generator)
    rotations = canonicalize_quaternion(torch.randn(batch, 4, generator=generator))
    masks = torch.rand(batch, GRID, GRID, generator=generator) if check else None
    window = CHECK_MAX_ANGLE_DEG if check else MAX_ANGLE_DEG

    def search(rows: slice):
        if not check:
            return db.search(queries[rows], rotations[rows], max_angle_deg=window, backend=backend)
        objects = [ObjectQuery(None, queries[i].numpy(), rotations[i].double().numpy()[None], mask=masks[i].numpy())
                   for i in range(rows.start, rows.stop)]
        return ResolutionPolicy().resolve(db, objects, backend=backend)

    search(slice(0, 1))  # warm-up, index build
    start = time.perf_counter()
    results = search(slice(0, batch))
    batched_ms = 1e3 * (time.perf_counter() - start) / batch
    singles = []
    for i in range(min(reps, batch)):
        start = time.perf_counter()
        search(slice(i, i + 1))
        singles.append(1e3 * (time.perf_counter() - start))
    db_mib = (db.descriptors.nbytes + db.view_quaternions.nbytes + db.model_index.nbytes
              + (db.silhouettes.nbytes if check else 0)) / 2**20
    return {"views": views, "backend": backend, "batch": batch, "batched_ms_per_query": batched_ms,
            "single_ms_per_query": statistics.median(singles), "database_mib": db_mib,
            "peak_rss_mib": _peak_rss_mib(),
            "widened": sum(r.widened_to_deg is not None for r in results)}


def to_markdown(rows: list[dict], info: dict) -> str:
    search = (f"silhouette check (64 candidates, random 28x28 silhouettes and masks), max_angle "
              f"{CHECK_MAX_ANGLE_DEG} deg" if info.get("silhouette_check") else f"max_angle {MAX_ANGLE_DEG} deg")
    lines = ["# Pose-prior retrieval speed" + (" with the silhouette check" if info.get("silhouette_check") else ""), "",
             f"- machine: {info['machine']['cpu']} ({info['machine']['nproc']} cores), torch threads "
             f"{info['threads']}, busy share of the cores before the run {info['busy_before']:.0%}",
             f"- D={DIM} float32 random descriptors, random rotations, {search}, no category",
             "- target: <= 2 ms per pose-restricted query at 100k views on CPU", "",
             "| views | backend | batch | ms/query (batched) | ms/query (single) | DB MiB | peak RSS MiB |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['views']:,} | {r['backend']} | {r['batch']} | {r['batched_ms_per_query']:.3f} | "
                     f"{r['single_ms_per_query']:.3f} | {r['database_mib']:.1f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k views only")
    parser.add_argument("--threads", type=int, default=2, help="torch and FAISS threads")
    parser.add_argument("--batch", type=int, default=256, help="queries per batched call")
    parser.add_argument("--reps", type=int, default=20, help="single-query calls per measurement")
    parser.add_argument("--backends", nargs="+", default=["torch", "faiss"], choices=["torch", "faiss"])
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for idle cores")
    parser.add_argument("--silhouette-check", action="store_true",
                        help="with the silhouette check (retrieval_node's default search), up to 100k views")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if "faiss" in args.backends:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    busy = wait_until_quiet(0.25, args.max_wait)
    rows = []
    sizes = QUICK_SIZES if args.quick else CHECK_SIZES if args.silhouette_check else SIZES
    for views in sizes:
        for backend in args.backends:
            batch = args.batch if views <= 100_000 else max(1, args.batch // 4)
            row = bench_size(views, backend, batch, args.reps, args.silhouette_check)
            print(f"{views:>9,} {backend:<6} batched {row['batched_ms_per_query']:8.3f} ms/query, "
                  f"single {row['single_ms_per_query']:8.3f} ms, DB {row['database_mib']:.1f} MiB, "
                  f"peak RSS {row['peak_rss_mib']:.0f} MiB", flush=True)
            rows.append(row)
    info = {"machine": machine(), "threads": args.threads, "busy_before": busy, "quick": args.quick,
            "silhouette_check": args.silhouette_check}
    name = ("retrieval_quick" if args.quick else "retrieval") + ("_silhouette" if args.silhouette_check else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{name}.json", json.dumps({"info": info, "rows": rows}, indent=1) + "\n")
    atomic_write_text(RESULTS / f"{name}.md", to_markdown(rows, info))
    print(f"written to {RESULTS / name}.md/.json")


if __name__ == "__main__":
    main()
