"""scripts/gpu/stage.sh, the two device calls of a GPU training stage, run here on a tiny budget:
a bundle holding only the CAD library (this environment has open3d and trimesh), then prepare
(unpack, import check, data generation in the background) and train (wait, train from the
shipped weights until the call's deadline stops it, export, the model in parts). Guards the
script against drift of the CLIs it calls."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import torch

from scene3d_ros.model.checkpoint import load_checkpoint
from scene3d_ros.paths import default_model_path
from scene3d_ros.world.cad_library import ensure_cad_library

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "scripts" / "gpu" / "stage.sh"


def run_stage(phase: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(STAGE), phase], env=env, capture_output=True, text=True, timeout=600,
                          check=False)


def test_prepare_then_train_hands_back_a_model_trained_from_the_shipped_weights(tmp_path):
    library = ensure_cad_library()
    bundle = tmp_path / "bundle.tar.xz"
    with tarfile.open(bundle, "w:xz", preset=0) as tar:
        for name in ("site", "lib"):
            (tmp_path / name).mkdir()
            tar.add(tmp_path / name, arcname=name)
        tar.add(library.root, arcname="cad_library")
    s3d, out = tmp_path / "s3d", tmp_path / "out"
    env = {**os.environ, "S3D": str(s3d), "OUT": str(out), "BUNDLE": str(bundle), "PY": sys.executable,
           "SCENES": "4", "VAL_SCENES": "2", "WORKERS": "1", "BATCH": "2", "TRAIN_MINUTES": "10",
           "SEC_PER_STEP": "0.5", "CALL_SECONDS": "90", "TRAIN_SET": "data.num_workers=0 run.eval_every=0"}

    prepared = run_stage("prepare", env)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    assert "CAD library: 152 models" in prepared.stdout and "generating 4 scenes" in prepared.stdout
    trained = run_stage("train", env)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    # 1,200 steps planned; the deadline (90 s after the phase began, less 45 s for packing) stopped it
    assert "1200 steps planned" in trained.stdout and "stopped at the deadline" in trained.stdout

    parts = sorted(out.glob("model.part-*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    model = tmp_path / "model.pt"
    model.write_bytes(b"".join(p.read_bytes() for p in parts))
    assert hashlib.sha256(model.read_bytes()).hexdigest() in trained.stdout
    exported, shipped = load_checkpoint(model), load_checkpoint(default_model_path())
    assert 1 <= exported["step"] < 1200
    assert f"stopped at the deadline, at step {exported['step']}" in trained.stdout
    key = "roi_heads.rotation_predictor.fc.weight"
    assert not torch.equal(exported["model"][key], shipped["model"][key])
    with tarfile.open(out / "run.tar.gz") as tar:
        assert {"config.yaml", "metrics.csv", "curves.png", "run.log", "gen.log"} <= set(tar.getnames())
