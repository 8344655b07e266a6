"""scripts/training_trend.py: the two-stage fit against a hand computation."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_two_stage_fit_matches_the_hand_computation():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "training_trend.py")], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line for line in out.splitlines()
            if line.startswith("| ") and "stages" not in line}
    # stages 4 and 5: 54,592 and 94,592 images, 50.2 and 41.7 deg
    slope = (41.7 - 50.2) / math.log2(94_592 / 54_592)
    needed = 94_592 * 2 ** ((20.0 - 41.7) / slope)
    cells = [c.strip() for c in rows[("4, 5", "MedErr (deg)")].strip("|").split("|")]
    assert cells[2] == f"{slope:+.3g}"
    assert cells[3] == f"{needed / 1e3:,.0f}k"
    assert ("2, 3, 4, 5", "mask AP50") not in rows  # stage 2 has no mask AP50: no duplicate of the 3-5 fit
    assert len(rows) == 8
