"""train_viewpoint end to end: a short run on a tiny generated dataset writes its files and
validates (val_metrics.csv with med_err_deg), and ``--resume`` continues exactly: the same weights
as an uninterrupted run of the same total steps.

Runs the real entry point in-process on a small crop network (64 px crops, hidden width 32) and
8 generated scenes of 128x128.
"""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest
import torch
import yaml

from scene3d_ros import CATEGORIES
from scene3d_ros.cli.train_viewpoint import main
from scene3d_ros.data.crops import CropAugmentation, ObjectCropDataset, erase_rectangle, jitter_colour, paste_occluder
from scene3d_ros.data.shards import GenerateConfig, OutputConfig, generate_dataset
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.model.viewpoint import ViewpointModelConfig, library_shapes, square_boxes
from scene3d_ros.model.viewpoint_checkpoint import build_viewpoint_model, load_viewpoint_checkpoint
from scene3d_ros.world.cad_library import CadLibrary, ensure_cad_library
from scene3d_ros.world.scene_sampler import SceneConfig

STEPS = 6
RESUME_AT = 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    ensure_cad_library()
    root = tmp_path_factory.mktemp("data")
    config = GenerateConfig(scene=SceneConfig(image_sizes=((128, 128),), num_objects_range=(2, 3)),
                            output=OutputConfig(num_scenes=8, scenes_per_shard=8, seed=0))
    generate_dataset(config, root, workers=1)
    return root


@pytest.fixture(scope="module")
def config(tmp_path_factory, dataset):
    path = tmp_path_factory.mktemp("config") / "train_viewpoint.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"crop_size": 64, "hidden": 32},
        "data": {"train": [str(dataset)], "val": str(dataset), "val_scenes": 4, "batch_size": 4,
                 "num_workers": 1, "include_difficult": True, "top_k": 3},
        "optim": {"lr": 1e-3, "warmup_steps": 2, "max_steps": STEPS, "direction_weight": 1.0},
        "run": {"checkpoint_every": RESUME_AT, "log_every": 1, "eval_every": RESUME_AT, "device": "cpu",
                "deterministic": True, "num_threads": 1, "progress": False},
    }))
    return path


def state_digest(path) -> str:
    """SHA-256 of a checkpoint's model weights (names and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(load_viewpoint_checkpoint(path)["model"].items()):
        digest.update(name.encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_run_validates_and_resume_continues_exactly(config, tmp_path):
    straight = tmp_path / "straight"
    assert main(["--config", str(config), "--output", str(straight)]) == 0
    checkpoint = load_viewpoint_checkpoint(straight / "last.pt")
    assert checkpoint["step"] == STEPS and checkpoint["optimizer"] is not None
    assert (straight / "best.pt").is_file() and (straight / "curves.png").is_file()
    rows = read_csv(straight / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    assert {"loss_azimuth", "loss_direction", "total", "crops_per_s", "crops_seen"} <= set(rows[0])
    val = read_csv(straight / "val_metrics.csv")
    assert [int(r["step"]) for r in val] == [RESUME_AT, STEPS]
    assert all(0.0 <= float(r["med_err_deg"]) <= 180.0 for r in val)

    split = tmp_path / "split"
    assert main(["--config", str(config), "--output", str(split), "--set", f"run.stop_at_step={RESUME_AT}"]) == 0
    assert load_viewpoint_checkpoint(split / "last.pt")["step"] == RESUME_AT
    assert main(["--config", str(config), "--output", str(split), "--resume"]) == 0
    assert load_viewpoint_checkpoint(split / "last.pt")["step"] == STEPS
    assert state_digest(split / "last.pt") == state_digest(straight / "last.pt")
    assert [r["total"] for r in read_csv(split / "metrics.csv")] == [r["total"] for r in rows]
    assert read_csv(split / "val_metrics.csv") == val


def test_resume_refuses_a_folder_without_a_run(config, tmp_path, capsys):
    assert main(["--config", str(config), "--output", str(tmp_path / "none"), "--resume"]) == 1
    assert "nothing to resume" in capsys.readouterr().err


def test_shape_head_added_to_a_trained_stage(config, tmp_path):
    """``optim.shape_weight`` > 0 from a stage trained without a shape head: the run keeps that
    stage's weights, adds a fresh head over the library's shape classes, trains it (loss_shape),
    validates it (shape_top1) and resumes; the result builds with its head."""
    plain = tmp_path / "plain"
    assert main(["--config", str(config), "--output", str(plain), "--set", "run.stop_at_step=1"]) == 0
    shaped = tmp_path / "shaped"
    args = ["--config", str(config), "--output", str(shaped), "--set", "optim.shape_weight=1.0",
            f"run.init_weights={plain / 'last.pt'}"]
    assert main([*args, f"run.stop_at_step={RESUME_AT}"]) == 0
    assert main([*args, "--resume"]) == 0
    checkpoint = load_viewpoint_checkpoint(shaped / "last.pt")
    shapes = checkpoint["model_config"]["shapes"]
    assert list(shapes) == list(library_shapes(CadLibrary.load()))
    assert checkpoint["model"]["shape_logits.weight"].shape[0] == len(shapes)
    initial = load_viewpoint_checkpoint(plain / "last.pt")["model"]
    assert "shape_logits.weight" not in initial
    rows = read_csv(shaped / "metrics.csv")
    assert len(rows) == STEPS and all(float(r["loss_shape"]) > 0.0 for r in rows)
    val = read_csv(shaped / "val_metrics.csv")
    assert [int(r["step"]) for r in val] == [RESUME_AT, STEPS]
    assert all(0.0 <= float(r["shape_top1"]) <= 1.0 for r in val)
    model = build_viewpoint_model(shaped / "last.pt", expected_classes=CATEGORIES)
    assert model.shape_logits is not None and model.config.shapes == tuple(shapes)


def test_mask_head_added_to_a_trained_stage(config, tmp_path, capsys):
    """``model.mask_size`` with ``optim.mask_weight`` > 0 from a stage trained without a mask head:
    the run keeps that stage's weights, adds a fresh mask head, trains it (loss_mask), validates it
    (mask_iou) and builds with it; ``mask_weight`` without ``mask_size`` is refused."""
    plain = tmp_path / "plain"
    assert main(["--config", str(config), "--output", str(plain), "--set", "run.stop_at_step=1"]) == 0
    masked = tmp_path / "masked"
    assert main(["--config", str(config), "--output", str(masked), "--set", "optim.mask_weight=1.0",
                 "model.mask_size=16", f"run.init_weights={plain / 'last.pt'}", f"run.stop_at_step={RESUME_AT}"]) == 0
    checkpoint = load_viewpoint_checkpoint(masked / "last.pt")
    assert checkpoint["model_config"]["mask_size"] == 16
    initial = load_viewpoint_checkpoint(plain / "last.pt")["model"]
    assert not any(name.startswith("mask_head.") for name in initial)
    rows = read_csv(masked / "metrics.csv")
    assert len(rows) == RESUME_AT and all(float(r["loss_mask"]) > 0.0 for r in rows)
    val = read_csv(masked / "val_metrics.csv")
    assert all(0.0 <= float(r["mask_iou"]) <= 1.0 for r in val)
    assert build_viewpoint_model(masked / "last.pt", expected_classes=CATEGORIES).mask_head is not None
    assert main(["--config", str(config), "--output", str(tmp_path / "refused"), "--set", "optim.mask_weight=1.0"]) == 2
    assert "set model.mask_size" in capsys.readouterr().err
    # mask pooling added to the stage with a mask head: its weights start at zero and training moves them
    pooled = tmp_path / "pooled"
    assert main(["--config", str(config), "--output", str(pooled), "--set", "optim.mask_weight=1.0",
                 "model.mask_size=16", "model.mask_pooling=true", f"run.init_weights={masked / 'last.pt'}",
                 "run.stop_at_step=1"]) == 0
    weights = load_viewpoint_checkpoint(pooled / "last.pt")["model"]["mask_pool.weight"]
    assert weights.shape[1] == 1280 and 0.0 < float(weights.abs().max()) < 0.01  # one small step from zero
    assert build_viewpoint_model(pooled / "last.pt", expected_classes=CATEGORIES).config.mask_pooling
    # ... or takes a share of the trunk's weights on the whole-crop pool (one small step later)
    shared = tmp_path / "shared"
    assert main(["--config", str(config), "--output", str(shared), "--set", "optim.mask_weight=1.0",
                 "model.mask_size=16", "model.mask_pooling=true", "optim.mask_pooling_share=0.25",
                 f"run.init_weights={masked / 'last.pt'}", "run.stop_at_step=1"]) == 0
    before = load_viewpoint_checkpoint(masked / "last.pt")["model"]["trunk.0.weight"][:, :1280]
    after = load_viewpoint_checkpoint(shared / "last.pt")["model"]
    torch.testing.assert_close(after["mask_pool.weight"], 0.25 * before, atol=2e-4, rtol=0)
    torch.testing.assert_close(after["trunk.0.weight"][:, :1280], 0.75 * before, atol=2e-4, rtol=0)
    assert float((after["mask_pool.weight"] - 0.25 * before).abs().max()) > 0.0  # and it trained
    assert main(["--config", str(config), "--output", str(tmp_path / "refused_share"), "--set",
                 "optim.mask_pooling_share=1.5"]) == 2
    assert main(["--config", str(config), "--output", str(tmp_path / "refused_pooling"), "--set",
                 "model.mask_pooling=true"]) == 2
    assert "mask_pooling needs the mask head" in capsys.readouterr().err


def test_crop_masks_cover_the_objects_visible_pixels_and_mirror_with_the_crop(dataset):
    """Each crop's mask target holds the object's visible pixels: its mass (cells x cell area) is the
    count of the object's instance pixels inside the crop square, and a mirrored crop's mask is the
    mirror image of the plain crop's."""
    scenes = SyntheticSceneDataset(dataset)
    model = ViewpointModelConfig(crop_size=64, hidden=32, mask_size=32)
    plain = ObjectCropDataset([scenes], model, include_difficult=True)
    ids = {m.model_id for m in CadLibrary.load().models}
    mirrored = ObjectCropDataset([scenes], model, CropAugmentation(shift=0.0, scale=0.0, mirror_probability=1.0),
                                 include_difficult=True, mirror_symmetric_models=ids)
    checked = 0
    for index in range(min(len(plain), 8)):
        item, flipped = plain[index], mirrored[index]
        record = scenes.load_scene(item["scene"], parts=("instance", "meta"))
        obj = record["meta"]["objects"][item["object"]]
        square = square_boxes(torch.tensor([obj["box"]], dtype=torch.float64), model.crop_margin)[0].tolist()
        ys, xs = np.nonzero(record["instance"] == obj["instance_id"])
        inside = ((xs + 0.5 >= square[0]) & (xs + 0.5 < square[2]) & (ys + 0.5 >= square[1]) & (ys + 0.5 < square[3]))
        cell_area = ((square[2] - square[0]) / 32) ** 2
        assert float(item["mask"].sum()) * cell_area == pytest.approx(float(inside.sum()), rel=0.15)
        if flipped["mirrored"]:
            torch.testing.assert_close(flipped["mask"], item["mask"].flip(-1), atol=1e-5, rtol=0)
            checked += 1
    assert checked > 0


def test_category_weights_are_checked_and_name_each_crops_category(config, dataset, tmp_path, capsys):
    """``data.category_weights``: each crop's category (what the weights apply to) is its item's; an
    unknown category, a negative weight, or weights that leave nothing to train on are refused
    with the key named; a run with weights (and colour jitter, random erasing and occluder
    pasting) trains."""
    crops = ObjectCropDataset([SyntheticSceneDataset(dataset)], ViewpointModelConfig(crop_size=64, hidden=32),
                              include_difficult=True)
    assert crops.categories == [crops[i]["category"] for i in range(len(crops))]
    present = sorted(set(crops.categories))
    for value, message in (("{busses: 2.0}", "unknown categories"), ("{bus: -1.0}", "bus must be a finite"),
                           ("{" + ", ".join(f"{c}: 0.0" for c in present) + "}", "every training crop has weight 0")):
        assert main(["--config", str(config), "--output", str(tmp_path / "refused"),
                     "--set", f"data.category_weights={value}"]) == 2
        assert message in capsys.readouterr().err
    out = tmp_path / "weighted"
    assert main(["--config", str(config), "--output", str(out), "--set", "optim.max_steps=2", "run.eval_every=0",
                 f"data.category_weights={{{present[0]}: 3.0}}", "data.augmentation.brightness=0.2",
                 "data.augmentation.hue=0.05", "data.augmentation.erase_probability=0.5",
                 "data.augmentation.occluder_probability=0.5"]) == 0
    assert (out / "last.pt").is_file()


def test_colour_jitter_changes_only_the_crops_colours_reproducibly(dataset):
    """Colour jitter: the same geometry and labels as without it (the box and mirror draws come
    first), crops in [0, 1] that differ from the plain ones, the same crop for the same (epoch,
    index), another for another epoch; a grey crop stays grey under brightness alone; bad ranges
    are refused."""
    scenes = SyntheticSceneDataset(dataset)
    model = ViewpointModelConfig(crop_size=64, hidden=32)
    ids = {m.model_id for m in CadLibrary.load().models}
    plain = ObjectCropDataset([scenes], model, CropAugmentation(), seed=3, include_difficult=True,
                              mirror_symmetric_models=ids)
    colour = CropAugmentation(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05)
    jittered = ObjectCropDataset([scenes], model, colour, seed=3, include_difficult=True, mirror_symmetric_models=ids)
    for key in [(0, 0), (0, 1), (2, 3)]:
        a, b = plain[key], jittered[key]
        for name in ("bins", "offsets", "ray", "rotation"):
            torch.testing.assert_close(a[name], b[name])
        assert a["mirrored"] == b["mirrored"]
        assert 0.0 <= float(b["crop"].min()) and float(b["crop"].max()) <= 1.0
        assert float((a["crop"] - b["crop"]).abs().mean()) > 1e-3
        torch.testing.assert_close(jittered[key]["crop"], b["crop"], atol=0, rtol=0)
    assert not torch.equal(jittered[(0, 0)]["crop"], jittered[(1, 0)]["crop"])
    grey = torch.full((3, 8, 8), 0.5)
    out = jitter_colour(grey, np.random.default_rng(0), CropAugmentation(brightness=0.5))
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2]) and not torch.allclose(out, grey)
    for bad in ({"brightness": 1.0}, {"contrast": -0.1}, {"hue": 0.6}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            CropAugmentation(**bad)


def test_random_erasing_covers_one_rectangle_of_the_crop_and_of_its_mask(dataset, config, tmp_path, capsys):
    """Random erasing: the same labels and geometry as without it; the crop differs from the plain
    one in exactly one cell-aligned rectangle (noise), the mask target is 0 in those cells and
    unchanged elsewhere; the same item for the same key; rectangles stay inside the crop with
    about the drawn area; bad settings are refused (also through the config)."""
    scenes = SyntheticSceneDataset(dataset)
    model = ViewpointModelConfig(crop_size=64, hidden=32, mask_size=16)
    ids = {m.model_id for m in CadLibrary.load().models}
    plain = ObjectCropDataset([scenes], model, CropAugmentation(), seed=3, include_difficult=True,
                              mirror_symmetric_models=ids)
    erased = ObjectCropDataset([scenes], model, CropAugmentation(erase_probability=1.0), seed=3,
                               include_difficult=True, mirror_symmetric_models=ids)
    cell = model.crop_size // model.mask_size
    for key in [(0, 0), (0, 1), (2, 3)]:
        a, b = plain[key], erased[key]
        for name in ("bins", "offsets", "ray", "rotation"):
            torch.testing.assert_close(a[name], b[name])
        changed = (a["crop"] != b["crop"]).any(dim=0)
        rows, cols = changed.any(dim=1).nonzero()[:, 0], changed.any(dim=0).nonzero()[:, 0]
        r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        # one rectangle, aligned to the mask cells (noise may equal a pixel by chance: allow a few)
        assert r0 % cell == 0 and c0 % cell == 0 and r1 % cell == 0 and c1 % cell == 0
        assert float(changed[r0:r1, c0:c1].float().mean()) > 0.99 and not changed.sum() > (r1 - r0) * (c1 - c0)
        erased_cells = torch.zeros(model.mask_size, model.mask_size, dtype=torch.bool)
        erased_cells[r0 // cell:r1 // cell, c0 // cell:c1 // cell] = True
        assert torch.all(b["mask"][erased_cells] == 0.0)
        torch.testing.assert_close(b["mask"][~erased_cells], a["mask"][~erased_cells], atol=0, rtol=0)
        torch.testing.assert_close(erased[key]["crop"], b["crop"], atol=0, rtol=0)
    rng = np.random.default_rng(0)
    crop = torch.zeros(3, 64, 64)
    for _ in range(200):
        out, none = erase_rectangle(crop, rng, (0.1, 0.2), 64)
        area = float((out != 0).any(dim=0).float().mean())
        assert none is None and 0.05 < area < 0.3 and torch.all(crop == 0)
    for bad in ({"erase_probability": 1.5}, {"erase_area": (0.3, 0.2)}, {"erase_area": (0.0, 0.2)},
                {"erase_area": (0.1, 0.6)}):
        with pytest.raises(ValueError, match="erase"):
            CropAugmentation(**bad)
    assert main(["--config", str(config), "--output", str(tmp_path / "refused"),
                 "--set", "data.augmentation.erase_area=[0.3, 0.2]"]) == 2
    assert "erase_area" in capsys.readouterr().err


def test_occluder_pasting_covers_the_crop_with_another_objects_silhouette(dataset, config, tmp_path, capsys):
    """Occluder pasting: the same labels and geometry as without it; where the scene has another
    visible object the crop changes inside one square no larger than the drawn area allows and the
    mask target never grows (and shrinks for some objects); an object alone in its scene keeps its
    crop; the same item for the same key. ``paste_occluder`` blends by the silhouette only and the
    mask loses exactly the covered share; bad settings are refused (also through the config)."""
    scenes = SyntheticSceneDataset(dataset)
    model = ViewpointModelConfig(crop_size=64, hidden=32, mask_size=16)
    ids = {m.model_id for m in CadLibrary.load().models}
    plain = ObjectCropDataset([scenes], model, CropAugmentation(), seed=3, include_difficult=True,
                              mirror_symmetric_models=ids)
    pasted = ObjectCropDataset([scenes], model, CropAugmentation(occluder_probability=1.0, occluder_area=(0.1, 0.4)),
                               seed=3, include_difficult=True, mirror_symmetric_models=ids)
    largest = round(model.crop_size * 0.4 ** 0.5)
    shrunk, alone = 0, 0
    for index in range(len(plain)):
        key = (1, index)
        a, b = plain[key], pasted[key]
        for name in ("bins", "offsets", "ray", "rotation", "mirrored"):
            assert a[name] == b[name] if name == "mirrored" else torch.equal(a[name], b[name])
        _, j, o = plain.index[index]
        record = scenes.load_scene(j, parts=("instance", "meta"))
        others = [obj for p, obj in enumerate(record["meta"]["objects"])
                  if p != o and np.any(record["instance"] == obj["instance_id"])]
        changed = (a["crop"] != b["crop"]).any(dim=0)
        if not others:
            alone += 1
            assert torch.equal(a["crop"], b["crop"]) and torch.equal(a["mask"], b["mask"])
            continue
        assert changed.any()
        rows, cols = changed.any(dim=1).nonzero()[:, 0], changed.any(dim=0).nonzero()[:, 0]
        assert int(rows.max() - rows.min()) < largest and int(cols.max() - cols.min()) < largest
        assert torch.all(b["mask"] <= a["mask"] + 1e-6)
        shrunk += bool((b["mask"] < a["mask"] - 1e-3).any())
        torch.testing.assert_close(pasted[key]["crop"], b["crop"], atol=0, rtol=0)
    assert shrunk > 0 and alone < len(plain)
    crop, mask = torch.zeros(3, 8, 8), torch.ones(4, 4)
    visible = torch.zeros(4, 4)
    visible[:, :2] = 1.0
    for seed in range(5):
        out, left = paste_occluder(crop, torch.ones(3, 4, 4), visible, np.random.default_rng(seed), mask)
        assert float(out.sum()) == 3 * 8 and set(out.unique().tolist()) == {0.0, 1.0}
        assert float(((1.0 - left) * 4).sum()) == pytest.approx(8.0) and torch.all(crop == 0) and torch.all(mask == 1)
    with pytest.raises(ValueError, match="at most the crop"):
        paste_occluder(crop, torch.ones(3, 9, 9), torch.ones(9, 9), np.random.default_rng(0))
    for bad in ({"occluder_probability": -0.1}, {"occluder_area": (0.5, 0.2)}, {"occluder_area": (0.1, 1.5)}):
        with pytest.raises(ValueError, match="occluder"):
            CropAugmentation(**bad)
    assert main(["--config", str(config), "--output", str(tmp_path / "refused"),
                 "--set", "data.augmentation.occluder_probability=2"]) == 2
    assert "occluder_probability" in capsys.readouterr().err
