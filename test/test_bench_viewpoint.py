"""benchmarks/bench_viewpoint.py runs end to end in a tiny configuration and writes its record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_viewpoint_smoke(tmp_path) -> None:
    name = str(tmp_path / "viewpoint_speed")
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_viewpoint.py"), "--reps", "1", "--train-steps",
                    "1", "--workers", "0", "--train-scenes", "3", "--no-wait", "--name", name],
                   check=True, cwd=ROOT, timeout=600)
    record = json.loads((tmp_path / "viewpoint_speed.json").read_text())
    assert record["inference"]["ms_5_objects"] > 0 and record["training"]["crops_per_s_end_to_end"] > 0
    assert record["inference"]["single_pass_ms_5_objects"] > 0
    text = (tmp_path / "viewpoint_speed.md").read_text()
    assert "| inference, 640x480 frame, 5 objects (the default) |" in text and "one pass (`mirror_average` off)" in text
