"""Shared helpers of the benchmarks: machine description, the command line of a record, waiting
for idle cores, rendered input scenes, and the shared-core mode (threading configurations, a busy
neighbour process)."""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

RESULTS = Path(os.environ.get("SCENE3D_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
"""Where the records go: benchmarks/results, or $SCENE3D_BENCH_RESULTS (scripts/gpu/check.sh)."""


def command_line(script: str, argv: list[str] | None) -> str:
    """How a benchmark ran, for its record: ``benchmarks/<script> <arguments>`` (``argv`` None:
    this process's command-line arguments)."""
    return shlex.join([f"benchmarks/{script}", *(sys.argv[1:] if argv is None else argv)])


def machine() -> dict[str, str | int]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import open3d

        open3d_version = open3d.__version__
    except ImportError:  # a lent GPU machine runs the benchmarks on pre-rendered inputs
        open3d_version = "not installed"
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "python": platform.python_version(),
            "numpy": np.__version__, "open3d": open3d_version, "platform": platform.platform()}


def render_scenes(count: int, width: int, height: int, objects: int | None = None, seed: int = 7):
    """``count`` rendered synthetic scenes at ``width`` x ``height`` pixels (``objects`` per scene
    where they fit; None: the scene sampler's default range): a list of (RGB uint8 (H, W, 3),
    :class:`~scene3d_ros.geometry.CameraIntrinsics`)."""
    from scene3d_ros.world.annotations import generate_annotated_scene
    from scene3d_ros.world.cad_library import ensure_cad_library
    from scene3d_ros.world.renderer import Renderer
    from scene3d_ros.world.scene_sampler import SceneConfig

    library, renderer, rng = ensure_cad_library(progress=False), Renderer(), np.random.default_rng(seed)
    counts = {} if objects is None else {"num_objects_range": (objects, objects)}
    config = SceneConfig(image_sizes=((width, height),), **counts)
    scenes = [generate_annotated_scene(rng, library, config, renderer) for _ in range(count)]
    return [(s.rendered.rgb, s.scene.intrinsics) for s in scenes]


def cpu_busy_fraction(seconds: float = 1.0) -> float:
    """Share of all cores busy (any process) over ``seconds``, from /proc/stat; nan if unavailable."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def timed_ms(fn, reps: int, warmup: int = 2) -> list[float]:
    """Wall times (ms) of ``reps`` calls of ``fn`` after ``warmup`` untimed ones (CUDA work
    synchronised before each time is taken)."""
    import torch

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(1e3 * (time.perf_counter() - start))
    return times


def wait_until_quiet(max_busy: float, max_wait_s: float) -> float:
    """Wait (up to ``max_wait_s``) until other work leaves the cores idle; returns the last busy share."""
    deadline = time.monotonic() + max_wait_s
    busy = cpu_busy_fraction()
    while busy > max_busy and time.monotonic() < deadline:
        print(f"  machine busy ({busy:.0%} of the cores), waiting ...", flush=True)
        time.sleep(5.0)
        busy = cpu_busy_fraction()
    return busy




# --------------------------------------------------------------------------- shared-core mode
THREADING = {
    "default": {"omp_wait_policy": None, "num_threads": 0, "workers": 1},
    "passive": {"omp_wait_policy": "PASSIVE", "num_threads": 0, "workers": 1},
    "one_thread": {"omp_wait_policy": None, "num_threads": 1, "workers": 1},
    "two_workers": {"omp_wait_policy": "PASSIVE", "num_threads": 1, "workers": 2},
}
"""Threading configurations of the shared-core mode: ``default`` is torch as it comes (no
OMP_WAIT_POLICY, so libgomp spins a while before it sleeps; torch's default intra-op threads),
``passive`` sets ``OMP_WAIT_POLICY=PASSIVE`` (what perception_node's entry point now does),
``one_thread`` runs one intra-op thread (``num_threads=1``, no policy), ``two_workers`` runs
frames in parallel instead of one frame's operations: two threads calling the same Pipeline,
one intra-op thread each (perception_node's ``inference_workers:=2``; PASSIVE, the node's
policy). ``num_threads`` 0 keeps torch's default; ``workers`` is the number of inference threads."""

BUSY_LOOP = """
import os, sys, time
core, seconds = int(sys.argv[1]), float(sys.argv[2])
os.sched_setaffinity(0, {core})
end = time.monotonic() + seconds
while time.monotonic() < end:
    pass
"""


def parse_threading(names: str) -> list[str]:
    """The comma-separated configuration names of ``--configs``, checked against :data:`THREADING`."""
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in THREADING]
    if unknown or not chosen:
        raise ValueError(f"--configs: names among {', '.join(THREADING)}, got {names!r}")
    return chosen


def threading_env(name: str, base: dict[str, str] | None = None, node: bool = False) -> dict[str, str]:
    """The environment of a process running configuration ``name``: ``base`` (default: this
    process's) with OMP_WAIT_POLICY set or removed. OpenMP reads it when torch loads, so it only
    takes effect in a fresh process. ``node``: the process is perception_node, whose entry point
    sets PASSIVE when the variable is missing; "no policy" is then an empty value, which libgomp
    treats exactly as unset (it prints "Invalid value for environment variable OMP_WAIT_POLICY")."""
    env = dict(os.environ if base is None else base)
    policy = THREADING[name]["omp_wait_policy"]
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    elif node:
        env["OMP_WAIT_POLICY"] = ""
    else:
        env.pop("OMP_WAIT_POLICY", None)
    return env


def busy_core_index() -> int:
    """The core the busy process is pinned to: the highest one this process may run on."""
    return max(os.sched_getaffinity(0))


@contextlib.contextmanager
def busy_core(core: int, max_seconds: float) -> Iterator[subprocess.Popen]:
    """A child process spinning a pure-Python loop on core ``core`` (os.sched_setaffinity) for at
    most ``max_seconds`` seconds, the neighbour of the shared-core mode. It is killed when the block
    ends, also on an error; ``max_seconds`` bounds it even if this process dies first.
    ``python -S``: no site-packages, so it starts in milliseconds."""
    process = subprocess.Popen([sys.executable, "-S", "-c", BUSY_LOOP, str(core), str(max_seconds)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.2)  # started and pinned
        if process.poll() is not None:
            raise RuntimeError(f"the busy process ended at once: {process.stderr.read().decode(errors='replace')}")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stderr.close()


def load_average() -> list[float]:
    """os.getloadavg(): runnable processes averaged over 1, 5 and 15 minutes."""
    return [round(v, 2) for v in os.getloadavg()]
