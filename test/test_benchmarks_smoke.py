"""The benchmarks still run end to end (quick settings, nothing written): the graph (camera, node,
listener), the inference-thread layouts and the network timing (CPU only, one repetition).

About 30 s + 25 s on the 2-core machine with another job running (node start-up with the shipped model
dominates); the numbers themselves are not checked, only that every stage produced them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_graph_quick_runs_and_reports_every_figure():
    run = subprocess.run([sys.executable, "benchmarks/bench_graph.py", "--quick", "--no-write", "--devices", "cpu"],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    entries = [json.loads(line) for line in run.stdout.splitlines() if line.startswith('  {"name"')]
    assert len(entries) == 1, run.stdout[-3000:]
    entry = entries[0]
    assert entry["pipeline"]["calls"] >= 1 and entry["pipeline"]["mean_ms"] > 0
    assert entry["outputs"] >= 1 and entry["throughput_fps"] > 0
    assert 0 < entry["latency_ms"]["p50"] <= entry["latency_ms"]["p95"]
    assert entry["node"]["processed"] >= entry["outputs"] and entry["node"]["processing_ms"] > 0
    assert entry["overhead"]["throughput_based"] > 0 and entry["overhead"]["processing_based"] > 0
    soak = entry["soak"]
    assert soak["samples"] >= 2 and 0 < soak["rss_mib"]["start"] <= soak["rss_mib"]["max"]
    assert "| CPU" in run.stdout and "Targets:" in run.stdout


def test_bench_inference_thread_runs_every_layout():
    run = subprocess.run([sys.executable, "benchmarks/bench_inference_thread.py", "--reps", "1", "--no-write",
                          "--max-wait", "5"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for layout in ("worker_only", "main_only", "worker_after_main"):
        assert f"| {layout} |" in run.stdout
    assert "worker_after_main / worker_only (medians):" in run.stdout


def test_bench_model_times_only_the_devices_asked_for():
    run = subprocess.run([sys.executable, "benchmarks/bench_model.py", "--devices", "cpu", "--reps", "1",
                          "--no-write", "--max-wait", "1"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout[run.stdout.index("{\n"):])
    assert list(result["devices"]) == ["cpu"]
    entry = result["devices"]["cpu"]
    assert entry["inference"]["640x480"]["median_ms"] > 0 and entry["train_step"]["median_ms"] > 0
    assert entry["train_step_pose_heads"]["median_ms"] > 0


def test_bench_model_refuses_unknown_devices_before_any_work():
    run = subprocess.run([sys.executable, "benchmarks/bench_model.py", "--devices", "cpu,tpu", "--no-write"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--devices: cpu and/or cuda" in run.stderr
