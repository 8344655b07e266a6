"""scripts/model_diagnostics.py: the mask oracle and the vertical-axis share on hand-made cases,
and the script end to end on a tiny generated split with the shipped model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from repo_scripts import load_script
from scipy.spatial.transform import Rotation

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "model_diagnostics.py"


@pytest.fixture(scope="module")
def diagnostics():
    return load_script("model_diagnostics")


def test_mask_oracle_keeps_a_box_shaped_mask_and_loses_thin_lines(diagnostics):
    masks = torch.zeros((2, 120, 160), dtype=torch.uint8)
    masks[0, 20:80, 30:130] = 1                      # fills its box: survives 28x28 exactly
    masks[1, 10:110, 10:150] = 0
    masks[1, 10:110, 10:150:10] = 1                  # 1-px vertical lines every 10 px across a 140-px box
    boxes = torch.tensor([[30.0, 20.0, 130.0, 80.0], [10.0, 10.0, 150.0, 110.0]])
    oracle = diagnostics.mask_oracle(masks, boxes, (120, 160))
    assert oracle.shape == (2, 120, 160) and oracle.dtype == torch.bool
    assert diagnostics.mask_iou(oracle[0], masks[0].bool()) > 0.95
    assert diagnostics.mask_iou(oracle[1], masks[1].bool()) < 0.5


def test_vertical_axis_share_separates_azimuth_from_tilt_errors(diagnostics):
    gt = Rotation.from_euler("xyz", [10, 20, 30], degrees=True)
    about_z = gt * Rotation.from_euler("z", 90, degrees=True)   # object-frame turn about +z
    about_x = gt * Rotation.from_euler("x", 90, degrees=True)
    q_gt = np.repeat(gt.as_quat(scalar_first=True)[None], 3, axis=0)
    q_pred = np.stack([about_z.as_quat(scalar_first=True), about_x.as_quat(scalar_first=True),
                       gt.as_quat(scalar_first=True)])
    np.testing.assert_allclose(diagnostics.vertical_axis_share(q_pred, q_gt), [1.0, 0.0, 0.0], atol=1e-9)


def test_retrieval_hits_score_the_model_and_its_subtype(diagnostics):
    from scene3d_ros.retrieval import ShapeDatabase
    from scene3d_ros.world.cad_library import ensure_cad_library

    library = ensure_cad_library(progress=False)
    ids = ["car_sedan_01", "car_sedan_02", "car_suv_01"]
    identity = np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    db = ShapeDatabase(torch.eye(3), torch.arange(3), torch.tensor(np.repeat(identity, 3, axis=0)), ids,
                       ["car"] * 3, ["none"] * 3, library_checksum=library.checksum, checkpoint_sha256="x")
    # every query is truly car_sedan_01; the descriptors point at sedan_01, its twin sedan_02, and the SUV
    hits = diagnostics.retrieval_hits(db, library, torch.eye(3), torch.tensor(np.repeat(identity, 3, axis=0)),
                                      ["car_sedan_01"] * 3, ["car"] * 3)
    assert hits == [(True, True), (False, True), (False, False)]
    # with the silhouette check a mask that fits only the SUV's silhouette outweighs the descriptors
    db.silhouettes = torch.zeros((3, 28, 28), dtype=torch.uint8)
    db.silhouettes[2, 5:20, :] = 255
    db._device_cache.clear()  # the database was searched before it had silhouettes
    mask = (db.silhouettes[2].float() / 255.0)[None].repeat(3, 1, 1)
    checked = diagnostics.retrieval_hits(db, library, torch.eye(3), torch.tensor(np.repeat(identity, 3, axis=0)),
                                         ["car_suv_01"] * 3, ["car"] * 3, mask)
    assert checked == [(True, True)] * 3


def test_script_writes_a_report_for_the_shipped_model(tmp_path: Path):
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "scene3d_ros.cli.generate_data", "--output", str(data), "--workers", "1",
                    "--set", "output.num_scenes=4", "output.scenes_per_shard=4", "output.seed=5"],
                   cwd=ROOT, check=True, capture_output=True, timeout=240)
    from tiny_model import build_tiny_shape_db

    from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
    from scene3d_ros.paths import default_model_path

    dataset = SyntheticSceneDataset(data)
    model_ids = sorted({m for i in range(3) for m in dataset[i][1]["model_ids"]})
    db = build_tiny_shape_db(tmp_path / "db.pt", default_model_path(), model_ids, azimuths=4, elevations=1)
    out = tmp_path / "diag"
    run = subprocess.run([sys.executable, str(SCRIPT), "--data", str(data), "--images", "3", "--output", str(out),
                          "--shape-db", str(db)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["images"] == 3 and result["per_category"]
    assert result["shape_db"] == {"views": 4 * len(model_ids) - 3 * _continuous(model_ids), "models": len(model_ids)}
    for row in result["per_category"].values():
        assert row["objects"] == sum(row["rotation_histogram"]) >= 1
        assert 0.0 <= row["mask_iou_predicted_median"] <= 1.0 and 0.0 <= row["mask_iou_oracle28_median"] <= 1.0
        for key in ("rotation_median_mirror_image_deg", "rotation_median_mirror_mean_deg"):
            assert 0.0 <= row[key] <= 180.0
        for key in ("rotation_acc_pi6", "rotation_acc_pi6_mirror_image", "rotation_acc_pi6_mirror_mean"):
            assert 0.0 <= row[key] <= 1.0
        retrieval = row["retrieval"]  # every object has its model in the database
        assert retrieval["objects"] == row["objects"]
        assert 0.0 <= retrieval["rgb_top1"] <= retrieval["rgb_subtype_top1"] <= 1.0
        assert 0.0 <= retrieval["own_view_top1"] <= retrieval["own_view_subtype_top1"] <= 1.0
        assert 0.0 <= retrieval["rgb_checked_top1"] <= retrieval["rgb_checked_subtype_top1"] <= 1.0
        assert 0.0 <= retrieval["own_view_checked_top1"] <= retrieval["own_view_checked_subtype_top1"] <= 1.0
    markdown = out.with_suffix(".md").read_text()
    assert markdown.startswith("# Model diagnostics") and "## Retrieval: RGB descriptor vs network 2" in markdown
    assert "| RGB + silhouette check | oracle + ground-truth mask + silhouette check |" in markdown
    assert "## Rotation on the mirror image" in markdown and "| **mean** |" in markdown


def _continuous(model_ids):
    """How many of ``model_ids`` are continuously symmetric (one azimuth in a database grid)."""
    from scene3d_ros.world.cad_library import ensure_cad_library

    library = ensure_cad_library(progress=False)
    return sum(library.get(m).symmetry == "continuous" for m in model_ids)
