"""scripts/frozen_feature_heads.py: jittered boxes, the box-shape inputs and symmetry-aware anchor
distances on hand-made cases; the cache against the network's own inference path; ``fit`` end to end."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from repo_scripts import load_script
from torchvision.ops import box_iou

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "frozen_feature_heads.py"


@pytest.fixture(scope="module")
def script():
    return load_script("frozen_feature_heads")


def test_jittered_boxes_stay_inside_the_image_and_overlap_their_box(script):
    boxes = torch.tensor([[10.0, 20.0, 60.0, 50.0], [0.0, 0.0, 30.0, 90.0], [100.0, 5.0, 160.0, 45.0]])
    generator = torch.Generator().manual_seed(0)
    moved = 0
    for _ in range(50):
        out = script.jittered_boxes(boxes, (100, 160), generator)
        assert out.shape == boxes.shape
        assert (out[:, 0::2] >= 0).all() and (out[:, 0::2] <= 160).all()
        assert (out[:, 1::2] >= 0).all() and (out[:, 1::2] <= 100).all()
        assert (box_iou(out, boxes).diagonal() >= script.MIN_JITTER_IOU - 1e-6).all()
        moved += int((out != boxes).any(dim=1).sum())
    assert moved > 100  # most copies really move


def test_box_shape_is_the_log_aspect_ratio(script):
    shape = script.box_shape(torch.tensor([[0.0, 0.0, 40.0, 10.0], [5.0, 5.0, 15.0, 45.0], [0.0, 0.0, 8.0, 8.0]]))
    a = math.log(4.0)
    torch.testing.assert_close(shape, torch.tensor([[a, a * a, a], [-a, a * a, a], [0.0, 0.0, 0.0]]))


def test_anchor_distance_is_symmetry_aware(script):
    from scene3d_ros.geometry import SYMMETRIES

    half_turn_z = torch.tensor([0.0, 0.0, 0.0, 1.0])  # 180 deg about the up axis
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0])
    anchors = torch.stack([identity, torch.tensor([math.cos(0.25), math.sin(0.25), 0.0, 0.0])])
    q = half_turn_z.repeat(2, 1)
    codes = torch.tensor([SYMMETRIES.index("none"), SYMMETRIES.index("c2")])
    d = script.anchor_distances(q, codes, anchors)
    assert d[0, 0] == pytest.approx(1.0, abs=1e-6)  # no symmetry: a half turn is as far as it gets
    assert d[1, 0] == pytest.approx(0.0, abs=1e-6)  # c2: the half turn is the identity
    assert d[1].argmin() == 0


def test_cache_reproduces_the_network_and_fit_runs(tmp_path: Path, script):
    from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
    from scene3d_ros.model import build_model_from_checkpoint
    from scene3d_ros.model.pose_heads import select_class_outputs
    from scene3d_ros.model.rotations import canonicalize_quaternion
    from scene3d_ros.paths import default_model_path

    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "scene3d_ros.cli.generate_data", "--output", str(data), "--workers", "1",
                    "--set", "output.num_scenes=3", "output.scenes_per_shard=3", "output.seed=7"],
                   cwd=ROOT, check=True, capture_output=True, timeout=240)
    cache_path = tmp_path / "cache.pt"
    run = subprocess.run([sys.executable, str(SCRIPT), "extract", "--data", str(data), "--images", "3", "--jitter", "1",
                          "--output", str(cache_path)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    cache = torch.load(cache_path, weights_only=True)
    dataset = SyntheticSceneDataset(data)
    targets = [dataset[i][1] for i in range(3)]
    objects = sum(len(t["labels"]) for t in targets)
    assert cache["features"].shape == (2 * objects, 256, 7, 7) and cache["features"].dtype == torch.float16
    for key, width in (("q_allo", 4), ("t_enc", 3), ("boxes", 4), ("positive", 500), ("negative", 500)):
        assert cache[key].shape == (2 * objects, width), key

    # the shipped heads on the cached ground-truth-box features give the network's own answer
    model = build_model_from_checkpoint(default_model_path())
    heads = model.roi_heads
    with torch.no_grad():
        images = [dataset[i][0] for i in range(3)]
        direct = model.predict_with_boxes(images, [t["boxes"] for t in targets], [t["labels"] for t in targets],
                                          [t["K"] for t in targets])
        expected = torch.cat([d["allocentric_quaternions"] for d in direct])
        first = []  # the cache holds per image its ground-truth boxes, then their jittered copies
        start = 0
        for t in targets:
            first.append(torch.arange(start, start + len(t["labels"])))
            start += 2 * len(t["labels"])
        rows = torch.cat(first)
        z = heads.pose_head(cache["features"][rows].float())
        cached = canonicalize_quaternion(select_class_outputs(heads.rotation_predictor(z), cache["labels"][rows], 4))
    assert torch.equal(cache["labels"][rows], torch.cat([t["labels"] for t in targets]))
    dots = (cached * expected).sum(-1).abs()
    assert (dots > 0.999).all(), dots  # within ~5 deg: fp16 features

    for head in ("quaternion", "anchors"):
        run = subprocess.run([sys.executable, str(SCRIPT), "fit", "--train", str(cache_path), "--val", str(cache_path),
                              "--head", head, "--epochs", "2", "--batch", "8", "--anchors", "16", "--box-geometry"],
                             cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        epochs = [line for line in run.stdout.splitlines() if line.startswith("epoch ")]
        assert len(epochs) == 2 and "held-out MedErr" in epochs[-1]
