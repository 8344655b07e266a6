"""The benchmarks still run end to end (quick settings, nothing written): the graph (camera, node,
listener), the inference-thread layouts and the network timing (CPU only, one repetition), and the
shared-core mode of the graph and pipeline benchmarks (tiny network, 160x120, one frame), and the
resolution policy's cost per variant (shipped networks and shape database, two frames).

About 30 s + 25 s on the 2-core machine with another job running (node start-up with the shipped model
dominates), plus ~15 s + ~25 s for the shared-core runs; the numbers themselves are not checked, only
that every stage produced them and the busy neighbour process is gone afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_model import save_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import common  # noqa: E402  (benchmarks/common.py)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("bench_smoke") / "tiny.pt")


def _busy_loops() -> list[int]:
    """Pids of busy-neighbour processes (common.BUSY_LOOP) still running on this machine."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"sched_setaffinity" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids


def test_busy_core_is_pinned_and_killed_even_on_error():
    core = common.busy_core_index()
    with pytest.raises(RuntimeError, match="inside"), common.busy_core(core, max_seconds=30.0) as busy:
        assert busy.poll() is None and os.sched_getaffinity(busy.pid) == {core}
        raise RuntimeError("an error inside the block")
    assert busy.poll() is not None and busy.pid not in _busy_loops()


def test_busy_core_ends_by_itself_after_its_bound():
    with common.busy_core(common.busy_core_index(), max_seconds=0.5) as busy:
        busy.wait(timeout=10.0)
    assert busy.returncode == 0


def test_threading_configurations_set_the_policy_for_a_fresh_process():
    base = {"OMP_WAIT_POLICY": "ACTIVE", "PATH": "/bin"}
    assert common.threading_env("passive", base)["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in common.threading_env("default", base)
    assert common.threading_env("default", base, node=True)["OMP_WAIT_POLICY"] == ""  # the node keeps it unset
    assert common.THREADING["one_thread"]["num_threads"] == 1
    assert common.THREADING["two_workers"]["workers"] == 2 and common.THREADING["two_workers"]["num_threads"] == 1
    with pytest.raises(ValueError, match="--configs"):
        common.parse_threading("default,spin")


def test_bench_pipeline_shared_core_records_idle_and_shared_per_configuration(tiny_checkpoint):
    before = set(_busy_loops())
    run = subprocess.run([sys.executable, "benchmarks/bench_pipeline.py", "--configs", "default,one_thread,two_workers",
                          "--frames", "1", "--reps", "1", "--size", "160x120", "--checkpoint", str(tiny_checkpoint),
                          "--viewpoint-checkpoint", "", "--max-wait", "0", "--no-write"],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    entries = [json.loads(line) for line in run.stdout.splitlines() if line.startswith('  {"config"')]
    assert [e["config"] for e in entries] == ["default", "one_thread", "two_workers"]
    default, one, two = entries
    assert default["omp_wait_policy"] is None and one["intra_op_threads"] == 1
    assert (two["workers"], two["intra_op_threads"], two["omp_wait_policy"]) == (2, 1, "PASSIVE")
    for entry in entries:
        assert entry["busy_alive_to_the_end"]
        for phase in ("idle", "shared"):
            assert entry[phase]["calls"] == 1 and 0 < entry[phase]["median_ms"] <= entry[phase]["p95_ms"]
            assert entry[phase]["ms_per_frame"] > 0
    rows = [line for line in run.stdout.splitlines() if line.startswith(("| default |", "| one_thread |",
                                                                         "| two_workers |"))]
    assert len(rows) == 3 and "| 1.0 |" in rows[0] and "| 2 x 1 |" in rows[2]  # default against itself
    assert "Load average (1/5/15 min) before: [" in run.stdout and "bench_pipeline.py --configs" in run.stdout
    assert set(_busy_loops()) <= before  # ours were killed


def test_bench_graph_shared_core_records_idle_and_shared_windows(tiny_checkpoint):
    before = set(_busy_loops())
    run = subprocess.run([sys.executable, "benchmarks/bench_graph.py", "--shared-core", "--configs", "default,two_workers",
                          "--frames", "1", "--size", "160x120", "--warmup", "1", "--seconds", "2", "--checkpoint",
                          str(tiny_checkpoint), "--max-wait", "0", "--no-write"],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    entries = [json.loads(line) for line in run.stdout.splitlines() if line.startswith('  {"config"')]
    assert [e["config"] for e in entries] == ["default", "two_workers"]
    default, two = entries
    assert "OMP_WAIT_POLICY=)" in default["serving_line"]  # left unset
    assert "(2 inference workers, each 1 intra-op threads, OMP_WAIT_POLICY=PASSIVE)" in two["serving_line"]
    for entry in entries:
        assert entry["busy_alive_to_the_end"] and entry["outputs_out_of_order"] == 0
        for window in ("idle", "shared"):
            assert entry[window]["outputs"] >= 1 and entry[window]["throughput_fps"] > 0
            assert 0 < entry[window]["latency_ms"]["p50"] <= entry[window]["latency_ms"]["p95"]
    assert "| default | unset | 0 | 1 |" in run.stdout and "| two_workers | PASSIVE | 1 | 2 |" in run.stdout
    assert "Load average (1/5/15 min) before: [" in run.stdout
    assert set(_busy_loops()) <= before  # ours were killed


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


def test_bench_policy_quick_times_every_variant_and_counts_overlaps(tmp_path):
    env = {**os.environ, "SCENE3D_BENCH_RESULTS": str(tmp_path)}
    run = subprocess.run([sys.executable, "benchmarks/bench_policy.py", "--quick", "--max-wait", "1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=400, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    record = json.loads((tmp_path / "policy_quick.json").read_text())
    assert set(record["variants"]) == {"shipped", "occlusion_aware=false", "camera_weight=0", "silhouette_check=false"}
    assert sum(record["detections_per_frame"]) >= 1
    assert all(row["median_ms_per_object"] > 0 and row["samples"] >= 1 for row in record["variants"].values())
    assert "| shipped |" in (tmp_path / "policy_quick.md").read_text()
    from bench_policy import overlapping_pairs

    boxes = [[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 30], [10, 0, 20, 10]]  # touching edges do not overlap
    assert overlapping_pairs([np.array(b, float) for b in boxes]) == 2
    # beside a busy neighbour: recorded, and the neighbour is gone afterwards
    run = subprocess.run([sys.executable, "benchmarks/bench_policy.py", "--quick", "--busy-neighbour", "--max-wait", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=400, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    record = json.loads((tmp_path / "policy_quick.json").read_text())
    assert record["busy_core"] == common.busy_core_index() and "spin loop pinned" in run.stdout
    assert not _busy_loops()
