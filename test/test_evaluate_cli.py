"""The ``evaluate`` entry point and ``Scene3DNet.predict_with_boxes`` (the ground-truth-boxes setting)."""

import json

import numpy as np
import pytest
import torch
from test_pascal3d import write_pascal3d_fixture

from scene3d_ros import CATEGORIES
from scene3d_ros.cli.evaluate import main
from scene3d_ros.data.shards import GenerateConfig, OutputConfig, generate_dataset, sha256_file
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.evaluation.runner import ground_truth
from scene3d_ros.model import build_model, model_config_from_dict, save_checkpoint
from scene3d_ros.world.scene_sampler import SceneConfig

torch.set_num_threads(2)
CONFIG = model_config_from_dict({
    "detector": {"min_size": [128], "max_size": 160, "rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 30,
                 "box_detections_per_img": 5, "box_score_thresh": 0.0, "mask_head_layers": [32]},
    "pose": {"trunk_fc_layers": [128]},
    "descriptor": {"hidden": 64},
    "depth_encoder": {"growth_rate": 8, "block_config": [2, 2], "num_init_features": 16, "view_size_px": 32},
})
K = torch.tensor([[150.0, 0.0, 64.0], [0.0, 150.0, 48.0], [0.0, 0.0, 1.0]])
NUM_SCENES = 5
SEED = 3  # these 5 scenes hold difficult and symmetric objects


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(CONFIG, load_backbone_weights=False).eval()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model, CONFIG, CATEGORIES, step=3)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 5-scene 128 x 128 synthetic dataset in ``<root>/val``."""
    root = tmp_path_factory.mktemp("data")
    config = GenerateConfig(scene=SceneConfig(image_sizes=((128, 128),), num_objects_range=(1, 4)),
                            output=OutputConfig(num_scenes=NUM_SCENES, scenes_per_shard=NUM_SCENES, seed=SEED))
    generate_dataset(config, root / "val", workers=1)
    return root


@pytest.fixture(scope="module")
def report(checkpoint, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    code = main(["--checkpoint", str(checkpoint), "--data", str(data), "--setting", "both", "--device", "cpu",
                 "--output", str(out), "--set", "evaluate.workers=0", "evaluate.batch_size=2"])
    return code, out


# --------------------------------------------------------------------------- predict_with_boxes
def test_predict_with_boxes_gives_one_unit_pose_per_given_box(model):
    images = [torch.rand(3, 96, 128), torch.rand(3, 128, 128), torch.rand(3, 128, 128)]
    boxes = [torch.tensor([[10.0, 12.0, 60.0, 70.0], [70.0, 5.0, 127.0, 90.0], [0.0, 0.0, 128.0, 96.0]]),
             torch.tensor([[30.5, 40.25, 31.5, 41.75]]), torch.zeros(0, 4)]
    labels = [torch.tensor([1, 12, 5]), torch.tensor([3]), torch.zeros(0, dtype=torch.int64)]
    with torch.inference_mode():
        out = model.predict_with_boxes(images, boxes, labels, intrinsics=[K, K, K])
    assert len(out) == 3
    for det, image, given, lab in zip(out, images, boxes, labels, strict=True):
        n = given.shape[0]
        np.testing.assert_allclose(det["boxes"].numpy(), given.numpy(), atol=1e-3)  # resize round trip
        assert det["labels"].tolist() == lab.tolist() and det["scores"].tolist() == [1.0] * n
        assert det["masks"].shape == (n, 1, *image.shape[-2:])
        assert det["box_masks"].shape == (n, 28, 28)
        assert bool(((det["box_masks"] >= 0) & (det["box_masks"] <= 1)).all())
        assert det["quaternions"].shape == (n, 4) and det["allocentric_quaternions"].shape == (n, 4)
        assert det["translations"].shape == (n, 3) and det["descriptors"].shape == (n, 500)
        np.testing.assert_allclose(det["quaternions"].norm(dim=1).numpy(), 1.0, atol=1e-5)
        assert torch.all(det["quaternions"][:, 0] >= 0) and torch.all(det["allocentric_quaternions"][:, 0] >= 0)
        assert torch.isfinite(det["translations"]).all() and torch.all(det["translations"][:, 2] > 0)


def test_predict_with_boxes_on_the_detections_reproduces_the_forward_pass(model):
    """Same heads, same code path: fed the detector's own boxes and labels, the outputs match."""
    image = torch.rand(3, 96, 128)  # resized by 4/3 into the network input
    with torch.inference_mode():
        detected = model([image], intrinsics=[K])[0]
        again = model.predict_with_boxes([image], [detected["boxes"]], [detected["labels"]], [K])[0]
    assert detected["boxes"].shape[0] > 0
    for key in ("boxes", "quaternions", "allocentric_quaternions", "translations", "descriptors", "masks", "box_masks"):
        np.testing.assert_allclose(again[key].numpy(), detected[key].numpy(), atol=1e-3, err_msg=key)


def test_predict_with_boxes_rejects_bad_input(model):
    image = torch.rand(3, 128, 128)
    box = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
    with pytest.raises(ValueError, match="box sets"):
        model.predict_with_boxes([image], [box, box], [torch.tensor([1])])
    with pytest.raises(ValueError, match="class ids"):
        model.predict_with_boxes([image], [box], [torch.tensor([0])])
    with pytest.raises(ValueError, match="positive width"):
        model.predict_with_boxes([image], [torch.tensor([[10.0, 10.0, 10.0, 50.0]])], [torch.tensor([1])])
    model.train()
    try:
        with pytest.raises(RuntimeError, match="eval"):
            model.predict_with_boxes([image], [box], [torch.tensor([1])])
    finally:
        model.eval()


# --------------------------------------------------------------------------- the CLI
def test_reports_for_both_settings(report, checkpoint, data, capsys):
    code, out = report
    assert code == 0
    dataset = SyntheticSceneDataset(data / "val", include_difficult=False)
    num_objects = sum(len(dataset[i][1]["labels"]) for i in range(len(dataset)))
    with_difficult = SyntheticSceneDataset(data / "val", include_difficult=True)
    assert 0 < num_objects < sum(len(with_difficult[i][1]["labels"]) for i in range(NUM_SCENES))  # config default
    assert any(s != "none" for i in range(NUM_SCENES) for s in dataset[i][1]["symmetries"])
    assert set(ground_truth(dataset[0][1])) == {"boxes", "labels", "masks", "quaternions", "translations",
                                                "model_ids", "occluded", "truncated", "symmetries"}
    for setting in ("detected", "gt_boxes"):
        summary = json.loads((out / f"evaluation_{setting}.json").read_text())
        assert {"setting", "categories", "num_images", "subsets", "detection", "run"} <= set(summary)
        assert summary["setting"] == setting and summary["categories"] == list(CATEGORIES)
        assert summary["num_images"] == NUM_SCENES
        assert set(summary["subsets"]["all"]["per_category"]) == set(CATEGORIES)
        assert summary["subsets"]["all"]["gt_objects"] == num_objects
        run = summary["run"]
        assert run["checkpoint_sha256"] == sha256_file(checkpoint)
        assert run["dataset"]["seed"] == SEED and run["dataset"]["path"] == str((data / "val").resolve())
        assert run["symmetry_aware"] is True and run["include_difficult"] is False
        header = next(line for line in (out / f"evaluation_{setting}.md").read_text().splitlines()
                      if line.startswith("| metric |"))
        assert header.split("|")[2:-1] == [f" {c} " for c in CATEGORIES] + [" mean "]  # 12 categories + mean
    gt_boxes = json.loads((out / "evaluation_gt_boxes.json").read_text())
    all_objects = gt_boxes["subsets"]["all"]
    assert all_objects["matched"] == num_objects  # every ground-truth object got a prediction
    assert sum(row["gt_objects"] for row in all_objects["per_category"].values()) == num_objects
    assert all_objects["mean"]["med_rot_err_deg"] is not None and all_objects["mean"]["top1"] is None
    assert gt_boxes["detection"] is None
    detected = json.loads((out / "evaluation_detected.json").read_text())
    assert detected["detection"]["mean"]["box_ap"] is not None
    combined = (out / "evaluation.md").read_text()
    for needle in (str(checkpoint.resolve()), sha256_file(checkpoint), f"dataset manifest seed: {SEED}",
                   f"images: {NUM_SCENES}", "device: cpu", "wall time:", "symmetry-aware rotation errors: yes", "## Evaluation with detected boxes",
                   "## Evaluation with ground-truth boxes"):
        assert needle in combined


def test_mask_threshold_sweep_matches_evaluate(data, tmp_path):
    """scripts/mask_threshold_sweep.py: per threshold the mask AP ``evaluate`` reports with that
    ``evaluate.mask_threshold`` (the shipped model, so the masks are real ones)."""
    from repo_scripts import load_script

    from scene3d_ros.paths import default_model_path

    sweep = load_script("mask_threshold_sweep")
    out = tmp_path / "sweep"
    shipped = default_model_path()
    assert sweep.main(["--checkpoint", str(shipped), "--data", str(data / "val"), "--thresholds", "0.9", "0.35",
                       "--output", str(out)]) == 0
    rows = {r["mask_threshold"]: r for r in json.loads(out.with_suffix(".json").read_text())["rows"]}
    assert list(rows) == [0.35, 0.9]
    for threshold in rows:
        folder = tmp_path / f"evaluate_{threshold}"
        assert main(["--checkpoint", str(shipped), "--data", str(data), "--setting", "detected", "--device", "cpu",
                     "--output", str(folder), "--set", "evaluate.workers=0", "evaluate.retrieval.enabled=false",
                     f"evaluate.mask_threshold={threshold}"]) == 0
        assert f"mask threshold: {threshold:g}" in (folder / "evaluation.md").read_text()
        detection = json.loads((folder / "evaluation_detected.json").read_text())["detection"]
        for metric in ("mask_ap", "mask_ap50", "mask_ap75"):
            assert rows[threshold][metric] == pytest.approx(detection["mean"][metric]), (threshold, metric)
        assert rows[threshold]["mask_ap50_per_category"] == pytest.approx(
            {c: v["mask_ap50"] for c, v in detection["per_category"].items()})
    assert rows[0.35]["mask_ap"] > rows[0.9]["mask_ap"]  # 0.9 keeps only the head's surest pixels
    assert "| 0.35 |" in out.with_suffix(".md").read_text()
    with pytest.raises(SystemExit):  # argparse: thresholds lie in (0, 1)
        sweep.main(["--data", str(data / "val"), "--thresholds", "1.0"])


def test_max_images_and_single_setting(checkpoint, data, tmp_path, capsys):
    code = main(["--checkpoint", str(checkpoint), "--data", str(data / "val"), "--setting", "gt_boxes",
                 "--max-images", "2", "--device", "cpu", "--output", str(tmp_path), "--set", "evaluate.workers=0"])
    assert code == 0
    assert json.loads((tmp_path / "evaluation_gt_boxes.json").read_text())["num_images"] == 2
    assert not (tmp_path / "evaluation_detected.json").exists()
    assert "| metric | aeroplane |" in capsys.readouterr().out  # the table goes to stdout


def test_pascal3d_layout_without_masks_translations_or_intrinsics(checkpoint, tmp_path):
    root = write_pascal3d_fixture(tmp_path)  # val: 2 usable images, 3 non-difficult objects (pascal + imagenet)
    out = tmp_path / "out"
    code = main(["--checkpoint", str(checkpoint), "--data", str(root.parent), "--dataset", "pascal3d", "--split", "val",
                 "--device", "cpu", "--output", str(out), "--set", "evaluate.workers=0",
                 "evaluate.pascal3d_sources=[pascal,imagenet]"])
    assert code == 0
    gt_boxes = json.loads((out / "evaluation_gt_boxes.json").read_text())
    assert gt_boxes["num_images"] == 2 and gt_boxes["subsets"]["all"]["gt_objects"] == 3
    assert gt_boxes["subsets"]["all"]["mean"]["med_rot_err_deg"] is not None
    assert gt_boxes["subsets"]["all"]["mean"]["med_trans_err_m"] is None  # Pascal3D+ has no metric translation
    assert gt_boxes["run"]["dataset"] == {"kind": "pascal3d", "path": str(root.resolve()), "split": "val", "seed": None}
    detected = json.loads((out / "evaluation_detected.json").read_text())
    assert detected["detection"]["mask_ap_available"] is False and detected["detection"]["mean"]["box_ap"] is not None
    assert "dataset manifest seed: n/a" in (out / "evaluation.md").read_text()


def test_bad_checkpoint_exits_1_with_a_clear_message(data, tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    assert main(["--checkpoint", str(missing), "--data", str(data), "--output", str(tmp_path)]) == 1
    assert f"checkpoint not found: {missing}" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    assert main(["--checkpoint", str(corrupt), "--data", str(data), "--output", str(tmp_path)]) == 1
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "evaluation.md").exists()


def test_missing_data_dir_exits_1_and_says_how_to_create_it(checkpoint, tmp_path, capsys):
    missing = tmp_path / "no_data"
    assert main(["--checkpoint", str(checkpoint), "--data", str(missing), "--output", str(tmp_path)]) == 1
    assert "generate_data --output" in capsys.readouterr().err
    assert main(["--checkpoint", str(checkpoint), "--data", str(missing), "--dataset", "pascal3d",
                 "--output", str(tmp_path)]) == 1
    assert "Pascal3D+ folder not found" in capsys.readouterr().err


def test_bad_config_override_exits_2(checkpoint, data, tmp_path, capsys):
    assert main(["--checkpoint", str(checkpoint), "--data", str(data), "--set", "evaluate.batch_sise=4"]) == 2
    assert "batch_sise" in capsys.readouterr().err
    assert main(["--checkpoint", str(checkpoint), "--data", str(data), "--set", "evaluate.retrieval.enabled=maybe"]) == 2
    assert "enabled must be auto, true or false" in capsys.readouterr().err
    assert main(["--checkpoint", str(checkpoint), "--data", str(data), "--set",
                 "evaluate.retrieval.max_angle_deg=200"]) == 2
    assert "max_angle_deg must be in (0, 180]" in capsys.readouterr().err


def test_reports_name_paths_inside_the_working_directory_relative_to_it(tmp_path, monkeypatch):
    from scene3d_ros.paths import report_path

    inside, outside = tmp_path / "repo", tmp_path / "elsewhere"
    (inside / "models").mkdir(parents=True)
    outside.mkdir()
    monkeypatch.chdir(inside)
    assert report_path(inside / "models" / "net.pt") == "models/net.pt"
    assert report_path("models/../models/net.pt") == "models/net.pt"
    assert report_path(outside / "data") == str((outside / "data").resolve())


def test_viewpoint_stage_report_side_by_side(checkpoint, data, tmp_path, capsys):
    from scene3d_ros.model.viewpoint import ViewpointModelConfig, ViewpointNet
    from scene3d_ros.model.viewpoint_checkpoint import save_viewpoint_checkpoint

    stage = tmp_path / "viewpoint.pt"
    save_viewpoint_checkpoint(stage, ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=16), len(CATEGORIES)),
                              CATEGORIES)
    out = tmp_path / "out"
    code = main(["--checkpoint", str(checkpoint), "--data", str(data / "val"), "--setting", "both", "--device", "cpu",
                 "--output", str(out), "--viewpoint", str(stage), "--viewpoint-k", "3", "--set", "evaluate.workers=0"])
    assert code == 0
    report = json.loads((out / "evaluation_viewpoint.json").read_text())
    assert report["k"] == 3 and set(report["settings"]) == {"gt_boxes", "detected"}
    network = report["settings"]["gt_boxes"]["network"]["subsets"]["all"]["mean"]
    plain = json.loads((out / "evaluation_gt_boxes.json").read_text())["subsets"]["all"]["mean"]
    assert network["med_rot_err_deg"] == plain["med_rot_err_deg"]  # the same network-1 numbers as the main table
    assert "crop viewpoint stage (top-1)" in (out / "evaluation.md").read_text()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["--checkpoint", str(checkpoint), "--data", str(data / "val"), "--device", "cpu", "--output",
                 str(tmp_path / "o2"), "--viewpoint", str(bad)]) == 1
    assert "--viewpoint" in capsys.readouterr().err
