"""benchmarks/bench_cpu_path.py: its output comparison tells a changed result from the same one, and
its --quick mode runs end to end on a tiny network and writes a record whose exact variants keep
the outputs. Nothing is timed against a bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_model import save_tiny_checkpoint

from scene3d_ros.geometry import matrix_to_quaternion
from scene3d_ros.pipeline import DetectedObject

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_cpu_path  # noqa: E402  (benchmarks/bench_cpu_path.py)


def _object(category: str = "car", box=(10.0, 20.0, 60.0, 80.0), score: float = 0.9, yaw_deg: float = 0.0
            ) -> DetectedObject:
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    q = matrix_to_quaternion(np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]))
    return DetectedObject(category=category, label=1, score=score, box=np.array(box), mask=None, quaternion=q,
                          translation=np.array([0.0, 0.0, 5.0]), size=np.ones(3), network_quaternion=q)


def test_compare_outputs_tells_changed_results_from_the_same():
    reference = [[_object(), _object("bus", (100.0, 100.0, 200.0, 180.0), 0.7)]]
    same = bench_cpu_path.compare_outputs(reference, [[_object("bus", (100.2, 100.0, 200.0, 180.0), 0.71),
                                                       _object(yaw_deg=0.5)]])  # other order, small changes
    assert same["same"] and same["reason"] is None and 0.49 < same["max_rotation_deg"] < 0.51
    turned = bench_cpu_path.compare_outputs(reference, [[_object(yaw_deg=2.0), reference[0][1]]])
    assert not turned["same"] and "rotation changed by 2.00 deg" in turned["reason"]
    dropped = bench_cpu_path.compare_outputs(reference, [[_object()]])
    assert not dropped["same"] and "1 detections, baseline 2" in dropped["reason"]
    relabelled = bench_cpu_path.compare_outputs(reference, [[_object(), _object("train", (100.0, 100.0, 200.0, 180.0))]])
    assert not relabelled["same"] and "no bus" in relabelled["reason"]
    moved = bench_cpu_path.compare_outputs(reference, [[_object(box=(20.0, 20.0, 70.0, 80.0)), reference[0][1]]])
    assert not moved["same"] and "box moved" in moved["reason"]
    rescored = bench_cpu_path.compare_outputs(reference, [[_object(score=0.8), reference[0][1]]])
    assert not rescored["same"] and "score changed" in rescored["reason"]


def test_unknown_variants_are_refused():
    assert bench_cpu_path.parse_variants("fast_path") == ["baseline", "fast_path"]
    with pytest.raises(ValueError, match="--variants"):
        bench_cpu_path.parse_variants("baseline,tensorrt")


def test_quick_mode_records_flops_peak_and_the_ab(tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    env = {**os.environ, "SCENE3D_BENCH_RESULTS": str(tmp_path)}
    run = subprocess.run([sys.executable, "benchmarks/bench_cpu_path.py", "--quick", "--checkpoint", str(checkpoint),
                          "--score-threshold", "0", "--max-wait", "0", "--name", "cpu_path_smoke"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    record = json.loads((tmp_path / "cpu_path_smoke.json").read_text())
    flops = record["flops"]
    assert flops["mean_detections"] >= 1 and flops["mean_total_gflop"] > 0
    assert flops["mean_families"]["backbone"] > 0 and flops["mean_families"]["mask_head"] > 0
    assert flops["mean_families"]["viewpoint_stage"] > 0  # the shipped stage runs on the tiny network's boxes
    assert abs(flops["mean_other_gflop"]) < 1e-6 * flops["mean_total_gflop"] + 1e-9  # the families cover it all
    assert all(p["median_gflops"] > 0 for p in record["matmul_peak"]) and record["achieved"]["whole_gflops"] > 0
    variants = record["variants"]
    assert list(variants) == ["baseline", "channels_last", "fold_bn", "fast_path", "int8_heads"]
    for name in ("baseline", "channels_last", "fold_bn", "fast_path"):  # exact techniques: the same outputs
        assert variants[name]["outputs"]["same"], (name, variants[name]["outputs"])
        assert variants[name]["timing"]["median_ms"] > 0 and variants[name]["timing"]["cpu_ms"] > 0
    assert variants["fold_bn"]["info"]["folded_batch_norms"] > 0
    assert "outputs" in variants["int8_heads"]  # run and compared, whatever the verdict
    text = (tmp_path / "cpu_path_smoke.md").read_text()
    assert "| fast_path |" in text and "## FLOPs per frame" in text and "Load average (1/5/15 min) before: [" in text
