"""Checkpoints: atomic round trip with identical outputs, resumable state, and clear rejections."""

import random

import numpy as np
import pytest
import torch

from scene3d_ros import CATEGORIES
from scene3d_ros.model import (
    CheckpointError,
    build_model,
    build_model_from_checkpoint,
    load_checkpoint,
    model_config_from_dict,
    save_checkpoint,
)
from scene3d_ros.model.checkpoint import CHECKPOINT_FORMAT, export_checkpoint, restore_rng_state

torch.set_num_threads(2)
CONFIG = model_config_from_dict({
    "detector": {"min_size": [128], "max_size": 160, "rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 30,
                 "box_detections_per_img": 5, "box_score_thresh": 0.0, "mask_head_layers": [32]},
    "pose": {"trunk_fc_layers": [128]},
    "descriptor": {"hidden": 64},
    "depth_encoder": {"growth_rate": 8, "block_config": [2, 2], "num_init_features": 16, "view_size_px": 32},
})
K = torch.tensor([[150.0, 0.0, 64.0], [0.0, 150.0, 64.0], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model(CONFIG).eval()
    with torch.no_grad():  # move the weights away from their init so a fresh build would differ
        for p in net.roi_heads.rotation_predictor.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3)
    save_checkpoint(path, model, CONFIG, CATEGORIES, optimizer=optimizer, scheduler=scheduler, step=42,
                    extra={"epoch": 3, "history": [1.5, 1.2]})
    return path


def test_round_trip_restores_identical_outputs(model, saved):
    assert [p.name for p in saved.parent.iterdir()] == ["model.pt"]  # no temp file left behind
    image = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(1))
    views = torch.rand(2, 32, 32)
    restored = build_model_from_checkpoint(saved, "cpu", expected_classes=CATEGORIES)
    assert not restored.training and restored.classes == CATEGORIES and restored.config == CONFIG
    with torch.no_grad():
        a, b = model([image], intrinsics=[K])[0], restored([image], intrinsics=[K])[0]
        assert torch.equal(model.depth_encoder(views), restored.depth_encoder(views))
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert restored.roi_heads.descriptor_head.tail is restored.depth_encoder.tail


def test_exported_half_precision_checkpoint_is_smaller_and_close(model, saved, tmp_path):
    exported = export_checkpoint(saved, tmp_path / "shipped.pt", extra={"card": "test"})
    assert exported.stat().st_size < 0.6 * saved.stat().st_size
    checkpoint = load_checkpoint(exported)
    assert checkpoint["optimizer"] is None and checkpoint["extra"]["card"] == "test"
    assert all(v.dtype != torch.float32 for v in checkpoint["model"].values())
    restored = build_model_from_checkpoint(exported)
    assert all(p.dtype == torch.float32 for p in restored.parameters())
    for (name, a), b in zip(model.state_dict().items(), restored.state_dict().values(), strict=True):
        if a.is_floating_point():
            torch.testing.assert_close(b, a, atol=2e-3 * (1 + float(a.abs().max())), rtol=1e-2, msg=name)


def test_checkpoint_holds_resumable_state(saved):
    checkpoint = load_checkpoint(saved, expected_classes=CATEGORIES, expected_config=CONFIG)
    assert checkpoint["format"] == CHECKPOINT_FORMAT and checkpoint["step"] == 42
    assert checkpoint["extra"] == {"epoch": 3, "history": [1.5, 1.2]}
    assert checkpoint["scheduler"]["step_size"] == 3 and "param_groups" in checkpoint["optimizer"]
    assert checkpoint["model_config"]["detector"]["min_size"] == [128]


def test_rng_state_round_trip(tmp_path, model):
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    save_checkpoint(tmp_path / "rng.pt", model, CONFIG, CATEGORIES)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(10), np.random.rand(10), random.random()
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("damage", ["truncate", "random", "empty"])
def test_corrupt_files_are_rejected(saved, tmp_path, damage):
    data = saved.read_bytes()
    bad = {"truncate": data[: len(data) // 2], "random": np.random.default_rng(0).bytes(4096), "empty": b""}[damage]
    path = tmp_path / "bad.pt"
    path.write_bytes(bad)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("payload,match", [
    ({"foo": 1}, "not a scene3d_ros checkpoint"),
    ([1, 2, 3], "not a scene3d_ros checkpoint"),
    ({"format": CHECKPOINT_FORMAT, "format_version": 99}, "format version 99"),
    ({"format": CHECKPOINT_FORMAT, "format_version": 1, "classes": [], "step": 0}, r"missing \['model_config', 'model'\]"),
])
def test_foreign_or_incomplete_payloads_are_rejected(tmp_path, payload, match):
    path = tmp_path / "foreign.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "code.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "thing": np.random.default_rng(0)}, path)
    with pytest.raises(CheckpointError, match="UnpicklingError"):
        load_checkpoint(path)


def test_mismatched_classes_and_config_are_rejected(saved):
    with pytest.raises(CheckpointError, match="classes"):
        load_checkpoint(saved, expected_classes=["car", "bus"])
    with pytest.raises(CheckpointError, match="classes"):
        build_model_from_checkpoint(saved, expected_classes=list(CATEGORIES[::-1]))
    other = model_config_from_dict({"detector": {"min_size": [128], "max_size": 160}})
    with pytest.raises(CheckpointError, match=r"pose.trunk_fc_layers: checkpoint \[128\] vs expected \[512, 512\]"):
        load_checkpoint(saved, expected_config=other)


def test_save_refuses_inconsistent_arguments(model, tmp_path):
    with pytest.raises(ValueError, match="classes"):
        save_checkpoint(tmp_path / "x.pt", model, CONFIG, ["car"])
    with pytest.raises(TypeError, match="extra"):
        save_checkpoint(tmp_path / "x.pt", model, CONFIG, CATEGORIES, extra={"rng": np.random.default_rng(0)})
    assert not list(tmp_path.iterdir())


def test_weights_that_do_not_fit_the_config_are_rejected(saved, tmp_path):
    checkpoint = load_checkpoint(saved)
    checkpoint["model_config"]["pose"]["trunk_fc_layers"] = [64]
    path = tmp_path / "edited.pt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        build_model_from_checkpoint(path)


def test_export_model_cli(saved, tmp_path, capsys):
    from scene3d_ros.cli.export_model import main

    assert main([str(saved), str(tmp_path / "m.pt")]) == 0
    assert "float16 weights" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "m.pt")["optimizer"] is None
    assert main([str(tmp_path / "missing.pt"), str(tmp_path / "n.pt")]) == 1
    assert "not found" in capsys.readouterr().err and not (tmp_path / "n.pt").exists()
