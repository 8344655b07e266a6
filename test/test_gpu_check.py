"""scripts/gpu/check.sh, the one-call GPU check, run here on the CPU (DEVICE=cpu, tiny network, one
repetition, 2 s graph window): ``pack`` builds the carried archive, ``run`` unpacks it and runs the
CUDA tests, the model speed benchmark on the pre-rendered inputs (open3d replaced by the archive's
stand-in, as on the lent machine) and the graph benchmark, and writes the records and check.md
into $OUT. A second run with DEVICE=cuda on this machine, with rclpy unimportable, shows that
skipped CUDA tests and failing steps fail the check and that a missing ROS 2 skips the graph step
with its reason. Guards the script against drift of the benchmarks' command lines.

About 2-3 minutes on 2 busy cores (rendering the inputs and the CPU training steps dominate).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from tiny_model import save_tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "scripts" / "gpu" / "check.sh"


def run_check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CHECK), *args], env=env, capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("gpu_check")
    env = {**os.environ, "CHECK": str(root / "check"), "VENV": str(Path(sys.executable).parents[1]),
           "PY": sys.executable, "CHECKPOINT": str(save_tiny_checkpoint(root / "tiny.pt")), "REPS": "1",
           "GRAPH_SECONDS": "2", "GRAPH_WARMUP": "1", "CHECK_DIR": str(root / "unpacked")}
    packing = run_check(env, "pack")
    assert packing.returncode == 0, packing.stdout[-3000:] + packing.stderr[-3000:]
    return env


def test_pack_builds_a_small_archive_with_inputs_library_and_stand_ins(packed):
    archive = Path(packed["CHECK"]) / "check.tar.xz"
    assert archive.stat().st_size < 10 * 2**20  # the tree with the model takes ~46 of the call's 64 MiB
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"inputs.pt", "site/open3d/__init__.py", "site/trimesh/__init__.py",
            "data/cad_library/library.json"} <= names
    assert not any("__pycache__" in name for name in names)


def test_run_on_the_cpu_writes_every_record(packed, tmp_path):
    out = tmp_path / "out"
    run = run_check({**packed, "DEVICE": "cpu", "OUT": str(out)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = (out / "check.md").read_text()
    for step in ("cuda_tests", "model_speed", "graph"):
        assert f"| {step} | ok |" in summary, summary
    speed = json.loads((out / "model_speed_cpu.json").read_text())
    assert speed["machine"]["open3d"].startswith("absent")  # ran on the stand-in, from the packed inputs
    entry = speed["devices"]["cpu"]
    assert entry["inference"]["640x480"]["median_ms"] > 0 and entry["train_step"]["median_ms"] > 0
    graph = json.loads((out / "graph_cpu.json").read_text())["devices"]["cpu"]
    assert graph["throughput_fps"] > 0 and 0 < graph["latency_ms"]["p50"] <= graph["latency_ms"]["p95"]
    assert graph["overhead"]["throughput_based"] > 0
    assert 'skipped="1"' in (out / "cuda_tests.xml").read_text()  # no CUDA here
    assert "## Network speed" in summary and "## Perception graph" in summary


def test_skipped_cuda_tests_fail_the_check_and_missing_ros_skips_the_graph(packed, tmp_path):
    no_ros = tmp_path / "no_ros" / "rclpy"
    no_ros.mkdir(parents=True)
    (no_ros / "__init__.py").write_text('raise ImportError("no ROS 2 for this Python (test stand-in)")\n')
    out = tmp_path / "out"
    env = {**packed, "DEVICE": "cuda", "OUT": str(out), "PYTHONPATH": str(no_ros.parent)}
    run = run_check(env)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    summary = (out / "check.md").read_text()
    assert "| cuda_tests | FAILED: tests skipped" in summary and "| model_speed | FAILED" in summary
    assert "| graph | skipped: no ROS 2 for this Python" in summary
    assert "test stand-in" in (out / "graph_cuda_skipped.txt").read_text()


def test_run_without_the_packed_archive_says_what_to_do(tmp_path):
    run = run_check({**os.environ, "CHECK": str(tmp_path / "missing"), "OUT": str(tmp_path / "out")})
    assert run.returncode == 1 and "scripts/gpu/check.sh pack" in run.stderr
