"""Shared helpers of the benchmarks: machine description, the command line of a record, waiting
for idle cores."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def command_line(script: str, argv: list[str] | None) -> str:
    """How a benchmark ran, for its record: ``benchmarks/<script> <arguments>`` (``argv`` None:
    this process's command-line arguments)."""
    return " ".join([f"benchmarks/{script}", *(sys.argv[1:] if argv is None else argv)])


def machine() -> dict[str, str | int]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import open3d

    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "python": platform.python_version(),
            "numpy": np.__version__, "open3d": open3d.__version__, "platform": platform.platform()}


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


def wait_until_quiet(max_busy: float, max_wait_s: float) -> float:
    """Wait (up to ``max_wait_s``) until other work leaves the cores idle; returns the last busy share."""
    deadline = time.monotonic() + max_wait_s
    busy = cpu_busy_fraction()
    while busy > max_busy and time.monotonic() < deadline:
        print(f"  machine busy ({busy:.0%} of the cores), waiting ...", flush=True)
        time.sleep(5.0)
        busy = cpu_busy_fraction()
    return busy


