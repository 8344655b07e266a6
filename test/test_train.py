"""train: a short run writes its files and learns, --resume continues exactly, bad inputs fail clearly.

Runs the real entry point in-process on a tiny model (MobileNetV2-FPN at 128 px with few
proposals, a small depth encoder, 32 px views) and a tiny generated dataset (8 scenes, 128x128).
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import torch
import yaml
from tiny_model import TINY_MODEL

from scene3d_ros.cli.train import main
from scene3d_ros.data.shards import GenerateConfig, OutputConfig, generate_dataset
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.data.triplet_views import TripletViewDataset
from scene3d_ros.mirror import MIRROR_SYMMETRY_TOLERANCE, mirror_asymmetry
from scene3d_ros.model.checkpoint import build_model_from_checkpoint, load_checkpoint
from scene3d_ros.model.rotations import egocentric_to_allocentric, quaternion_to_matrix
from scene3d_ros.training.detector import load_train_config
from scene3d_ros.training.optim import OptimConfig, lr_factor
from scene3d_ros.training.sampler import ResumableSampler
from scene3d_ros.world.cad_library import ensure_cad_library
from scene3d_ros.world.depth_views import BACKGROUND, object_depth_view
from scene3d_ros.world.scene_sampler import SceneConfig

STEPS = 20
RESUME_AT = 10  # 8 scenes / batch 2 = 4 batches per epoch: step 10 is in the middle of epoch 2


@pytest.fixture(scope="module")
def library():
    return ensure_cad_library()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, library):
    root = tmp_path_factory.mktemp("data")
    config = GenerateConfig(scene=SceneConfig(image_sizes=((128, 128),), num_objects_range=(1, 3)),
                            output=OutputConfig(num_scenes=8, scenes_per_shard=8, seed=0))
    generate_dataset(config, root, workers=1)
    return root


def write_config(path, dataset, **run):
    config = {
        "model": TINY_MODEL,
        "data": {"train": str(dataset), "val": str(dataset), "batch_size": 2, "num_workers": 1},
        "optim": {"optimizer": "adamw", "lr": 3e-4, "warmup_steps": 2, "max_steps": STEPS, "grad_clip": 10.0},
        "run": {"checkpoint_every": RESUME_AT, "keep_checkpoints": 2, "log_every": 1, "eval_every": STEPS,
                "eval_batches": 1, "deterministic": True, "num_threads": 1, "progress": False, **run},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, dataset):
    """STEPS steps in one go."""
    tmp = tmp_path_factory.mktemp("straight")
    config = write_config(tmp / "train.yaml", dataset)
    assert main(["--config", str(config), "--output", str(tmp / "run")]) == 0
    return tmp / "run", config


# --------------------------------------------------------------------------- the run
def test_short_run_writes_its_files_and_the_loss_goes_down(straight_run):
    run, _ = straight_run
    checkpoint = load_checkpoint(run / "last.pt")
    assert checkpoint["step"] == STEPS and checkpoint["optimizer"] is not None
    assert checkpoint["extra"]["epoch"] == STEPS // 4 and checkpoint["extra"]["batch_in_epoch"] == 0
    assert sorted(p.name for p in run.glob("step_*.pt")) == ["step_000010.pt", "step_000020.pt"]
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert build_model_from_checkpoint(run / "last.pt").config.depth_encoder.view_size_px == 32
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["depth_encoder"]["view_size_px"] == 32

    rows = read_csv(run / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    for key in ("lr", "loss_classifier", "loss_mask", "loss_rotation", "loss_translation", "loss_descriptor",
                "total", "seconds_per_step", "images_per_s"):
        assert key in rows[0], key
    assert float(rows[0]["lr"]) < float(rows[2]["lr"])  # warm-up
    totals = [float(r["total"]) for r in rows]
    first, last = np.mean(totals[:5]), np.mean(totals[-5:])
    assert last < 0.75 * first, f"the loss did not go down: {first:.3f} -> {last:.3f}"
    val = read_csv(run / "val_metrics.csv")
    assert [int(r["step"]) for r in val] == [STEPS] and float(val[0]["total"]) > 0


def test_resume_continues_exactly(straight_run, tmp_path):
    reference, config = straight_run
    run = tmp_path / "run"
    assert main(["--config", str(config), "--output", str(run), "--set", f"run.stop_at_step={RESUME_AT}"]) == 0
    stopped = load_checkpoint(run / "last.pt")
    assert stopped["step"] == RESUME_AT
    assert (stopped["extra"]["epoch"], stopped["extra"]["batch_in_epoch"]) == (2, 2)
    with (run / "metrics.csv").open("a") as f:  # rows logged after the last checkpoint, before a crash
        f.write(f"{RESUME_AT + 1},2,0.1,1,1,1,1,1,1,1,1,9,1,1\n")

    assert main(["--config", str(config), "--output", str(run), "--resume"]) == 0
    straight, resumed = load_checkpoint(reference / "last.pt"), load_checkpoint(run / "last.pt")
    assert resumed["step"] == STEPS
    for key, value in straight["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=0, atol=1e-6, msg=key)
    rows, reference_rows = read_csv(run / "metrics.csv"), read_csv(reference / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    for row, expected in zip(rows, reference_rows, strict=True):
        assert row["total"] == expected["total"] and row["lr"] == expected["lr"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_after_the_step_with_a_checkpoint_that_resumes_exactly(straight_run, tmp_path, signum):
    """SIGTERM (kill, a scheduler's preemption) or SIGINT mid-run: the step in progress finishes,
    last.pt is written at that step, the DataLoader workers go with the process, the exit code is
    128 + the signal; --resume then ends where an uninterrupted run ends."""
    reference, config = straight_run
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "scene3d_ros.cli.train", "--config", str(config), "--output",
                                str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 120
        while not ((run / "metrics.csv").is_file() and len(read_csv(run / "metrics.csv")) >= 2):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate(timeout=30)
            time.sleep(0.02)
        workers = psutil.Process(process.pid).children(recursive=True)
        assert workers  # the DataLoader's
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signum, err
    step = load_checkpoint(run / "last.pt")["step"]
    assert 2 <= step < STEPS, "the signal should land mid-run"
    assert f"stopped by {signal.Signals(signum).name} at step {step}" in err and "--resume" in err
    assert "Traceback" not in err
    assert [int(r["step"]) for r in read_csv(run / "metrics.csv")] == list(range(1, step + 1))
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"DataLoader workers left running: {alive}"

    assert main(["--config", str(config), "--output", str(run), "--resume"]) == 0
    straight, resumed = load_checkpoint(reference / "last.pt"), load_checkpoint(run / "last.pt")
    assert resumed["step"] == STEPS
    for key, value in straight["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=0, atol=1e-6, msg=key)


# --------------------------------------------------------------------------- bad input
def test_corrupt_checkpoint_on_resume_exits_1_with_a_clear_message(straight_run, tmp_path, capsys):
    reference, config = straight_run
    run = tmp_path / "run"
    run.mkdir()
    data = (reference / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 3])
    assert main(["--config", str(config), "--output", str(run), "--resume"]) == 1
    err = capsys.readouterr().err
    assert "cannot read checkpoint" in err and str(run / "last.pt") in err and "Traceback" not in err


def test_missing_dataset_names_the_folder_and_how_to_generate_it(straight_run, tmp_path, capsys):
    _, config = straight_run
    missing = tmp_path / "nowhere"
    assert main(["--config", str(config), "--output", str(tmp_path / "run"), "--set", f"data.train={missing}"]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and f"generate_data --output {missing}" in err


def test_existing_run_needs_resume_and_bad_config_is_rejected(straight_run, capsys):
    reference, config = straight_run
    assert main(["--config", str(config), "--output", str(reference)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["--config", str(config), "--set", "optim.lr_typo=1"]) == 2
    assert "lr_typo" in capsys.readouterr().err


def test_default_config_loads():
    config, model_config = load_train_config()
    assert config.optim.max_steps > 0 and model_config.descriptor.enabled


# --------------------------------------------------------------------------- pieces
def test_triplet_views_are_the_allocentric_views_of_own_and_other_models(dataset, library):
    scenes = SyntheticSceneDataset(dataset)
    views = TripletViewDataset(scenes, library.root, 32, same_category_probability=1.0, seed=3)
    _, target = views[(0, 1)]
    n = len(target["model_ids"])
    assert target["positive_views"].shape == target["negative_views"].shape == (n, 1, 32, 32)
    record = scenes.load_scene(1)["meta"]["objects"]
    assert target["symmetries"] == [o["symmetry"] for o in record]
    rotations = quaternion_to_matrix(egocentric_to_allocentric(target["quaternions"].double(),
                                                               target["translations"].double())).numpy()
    for i, (own, other) in enumerate(zip(target["model_ids"], target["negative_model_ids"], strict=True)):
        assert other != own and library.get(other).category == library.get(own).category
        np.testing.assert_allclose(target["positive_views"][i, 0].numpy(),
                                   object_depth_view(library.mesh(own), rotations[i], 32), atol=1e-6)
        np.testing.assert_allclose(target["negative_views"][i, 0].numpy(),
                                   object_depth_view(library.mesh(other), rotations[i], 32), atol=1e-6)
    # seeded by (epoch, index) only
    assert views[(0, 1)][1]["negative_model_ids"] == target["negative_model_ids"]
    anywhere = TripletViewDataset(scenes, library.root, 32, same_category_probability=0.0, seed=3)
    negatives = [anywhere[(epoch, 1)][1]["negative_model_ids"] for epoch in range(6)]
    assert len({tuple(ids) for ids in negatives}) > 1


def test_mirrored_items_show_the_mirror_image_in_mirrored_poses(dataset, library):
    scenes = SyntheticSceneDataset(dataset)
    plain = TripletViewDataset(scenes, library.root, 32, seed=3)
    always = TripletViewDataset(scenes, library.root, 32, seed=3, mirror_probability=1.0)
    outcomes = []
    for index in range(len(scenes)):
        image, target = plain[(0, index)]
        flipped_image, flipped = always[(0, index)]
        assert target["mirrored"] is False
        symmetric = all(mirror_asymmetry(library.mesh(m)) < MIRROR_SYMMETRY_TOLERANCE for m in target["model_ids"])
        assert flipped["mirrored"] is symmetric
        outcomes.append(symmetric)
        assert flipped["negative_model_ids"] == target["negative_model_ids"]  # the mirror has its own random stream
        if not symmetric:
            assert torch.equal(flipped_image, image)
            continue
        assert torch.equal(flipped_image, image.flip(-1)) and torch.equal(flipped["masks"], target["masks"].flip(-1))
        width = image.shape[-1]
        torch.testing.assert_close(flipped["boxes"][:, [2, 0]], width - target["boxes"][:, [0, 2]])
        torch.testing.assert_close(flipped["translations"][:, 0], -target["translations"][:, 0])
        rotations = quaternion_to_matrix(egocentric_to_allocentric(flipped["quaternions"].double(),
                                                                   flipped["translations"].double())).numpy()
        for i, own in enumerate(flipped["model_ids"]):
            np.testing.assert_allclose(flipped["positive_views"][i, 0].numpy(),
                                       object_depth_view(library.mesh(own), rotations[i], 32), atol=1e-6)
            # the object's view in the mirrored pose is the mirror image of its view (the model is symmetric)
            mirrored_view = flipped["positive_views"][i, 0] < BACKGROUND
            own_view = target["positive_views"][i, 0].flip(-1) < BACKGROUND
            assert (mirrored_view & own_view).sum() / (mirrored_view | own_view).sum() > 0.9
    assert any(outcomes)  # the tiny dataset has scenes of mirror-symmetric models only
    never = TripletViewDataset(scenes, library.root, 32, seed=3, mirror_probability=0.5)
    drawn = [never[(epoch, i)][1]["mirrored"] for epoch in range(4) for i in range(len(scenes)) if outcomes[i]]
    assert 0 < sum(drawn) < len(drawn)
    with pytest.raises(ValueError, match="mirror_probability"):
        TripletViewDataset(scenes, library.root, 32, mirror_probability=1.5)


def test_sampler_resumes_mid_epoch_and_splits_between_ranks(dataset):
    scenes = SyntheticSceneDataset(dataset)
    full = ResumableSampler(scenes, seed=5)
    full.set_position(3)
    keys = list(full)
    assert sorted(i for _, i in keys) == list(range(8)) and {e for e, _ in keys} == {3}
    tail = ResumableSampler(scenes, seed=5)
    tail.set_position(3, start=6)
    assert list(tail) == keys[6:] and len(tail) == 2
    ranks = [ResumableSampler(scenes, num_replicas=2, rank=r, seed=5) for r in (0, 1)]
    for r in ranks:
        r.set_position(3)
    assert sorted(i for r in ranks for _, i in r) == list(range(8))


def test_weighted_sampler_draws_by_weight_resumes_and_splits_between_ranks():
    """Weighted epochs: as long as plain ones, zero-weight items never drawn, a 4x item about 4x as
    often (1,000 items, 40,000 draws), the same draws from the same seed and epoch, mid-epoch
    resumes continue them, and the ranks deal one epoch's draws out between them."""
    items = list(range(1000))
    weights = [0.0 if i < 100 else 4.0 if i < 200 else 1.0 for i in items]
    sampler = ResumableSampler(items, seed=5, weights=weights)
    counts = np.zeros(1000)
    for epoch in range(40):
        sampler.set_position(epoch)
        keys = list(sampler)
        assert len(keys) == 1000 and {e for e, _ in keys} == {epoch}
        np.add.at(counts, [i for _, i in keys], 1)
    assert counts[:100].sum() == 0
    assert counts[100:200].mean() / counts[200:].mean() == pytest.approx(4.0, rel=0.1)
    sampler.set_position(7)
    keys = list(sampler)
    again = ResumableSampler(items, seed=5, weights=weights)
    again.set_position(7, start=600)
    assert list(again) == keys[600:] and len(again) == 400
    other = ResumableSampler(items, seed=6, weights=weights)
    other.set_position(7)
    assert list(other) != keys
    ranks = [ResumableSampler(items, num_replicas=2, rank=r, seed=5, weights=weights) for r in (0, 1)]
    for r in ranks:
        r.set_position(7)
    assert sorted(i for r in ranks for _, i in r) == sorted(i for _, i in keys)
    for bad in ([1.0] * 999, [0.0] * 1000, [1.0] * 999 + [float("nan")], [1.0] * 999 + [-1.0]):
        with pytest.raises(ValueError, match="weights"):
            ResumableSampler(items, weights=bad)


def test_learning_rate_schedule_hand_values():
    cosine = OptimConfig(warmup_steps=10, warmup_factor=0.1, schedule="cosine", min_lr_factor=0.0, max_steps=110)
    assert lr_factor(0, cosine) == pytest.approx(0.1)
    assert lr_factor(5, cosine) == pytest.approx(0.55)
    assert lr_factor(10, cosine) == pytest.approx(1.0)
    assert lr_factor(60, cosine) == pytest.approx(0.5)
    assert lr_factor(110, cosine) == pytest.approx(0.0, abs=1e-12)
    step = OptimConfig(warmup_steps=0, schedule="step", step_milestones=(20, 40), step_gamma=0.1)
    assert [lr_factor(s, step) for s in (0, 19, 20, 40)] == pytest.approx([1.0, 1.0, 0.1, 0.01])


def test_copied_run_folder_resumes_from_an_explicit_checkpoint(straight_run, tmp_path):
    """``--resume PATH`` starts from any checkpoint, e.g. an older step file."""
    reference, config = straight_run
    shutil.copy(reference / "step_000010.pt", tmp_path / "older.pt")
    run = tmp_path / "run"
    assert main(["--config", str(config), "--output", str(run), "--resume", str(tmp_path / "older.pt"),
                 "--set", f"run.stop_at_step={RESUME_AT + 1}", "data.num_workers=0"]) == 0
    assert load_checkpoint(run / "last.pt")["step"] == RESUME_AT + 1
    assert [int(r["step"]) for r in read_csv(run / "metrics.csv")] == [RESUME_AT + 1]


def test_trainable_prefixes_fine_tune_some_heads_and_leave_the_rest_as_loaded(straight_run, tmp_path, capsys):
    """optim.trainable: only the named parameters move; the frozen ones, batch-norm statistics
    included, stay exactly as loaded; the descriptor head's layers shared with network 2 train
    with it. A prefix naming no parameter is refused with the names there are."""
    reference, config = straight_run
    run = tmp_path / "run"
    heads = ["roi_heads.mask_predictor", "roi_heads.descriptor_head"]
    assert main(["--config", str(config), "--output", str(run), "--set", f"run.init_weights={reference / 'last.pt'}",
                 f"optim.trainable=[{','.join(heads)}]", "run.stop_at_step=2", "data.num_workers=0"]) == 0
    start = load_checkpoint(reference / "last.pt")["model"]
    after = load_checkpoint(run / "last.pt")["model"]
    model = build_model_from_checkpoint(reference / "last.pt", torch.device("cpu"))
    in_head = {id(q) for q in model.roi_heads.descriptor_head.parameters()}
    shared = {f"depth_encoder.{n}" for n, q in model.depth_encoder.named_parameters() if id(q) in in_head}
    assert shared  # the last layers are one module (the paper's weight sharing)
    moved = {k for k in start if start[k].is_floating_point() and not torch.equal(start[k], after[k])}
    assert moved and all(k.startswith(tuple(heads)) or k in shared for k in moved), sorted(moved)
    assert any(k.startswith("roi_heads.mask_predictor") for k in moved)
    assert any(k in shared for k in moved)
    assert "loss_mask" in read_csv(run / "metrics.csv")[0]
    # a frozen mask head is not run: no loss_mask, the mask layers stay as loaded
    frozen_mask = tmp_path / "frozen_mask"
    assert main(["--config", str(config), "--output", str(frozen_mask), "--set",
                 f"run.init_weights={reference / 'last.pt'}", "optim.trainable=[roi_heads.rotation_predictor]",
                 "run.stop_at_step=1", "run.log_every=1", "data.num_workers=0"]) == 0
    row = read_csv(frozen_mask / "metrics.csv")[0]
    assert "loss_mask" not in row and "loss_rotation" in row and "loss_classifier" in row
    after = load_checkpoint(frozen_mask / "last.pt")["model"]
    moved = {k for k in start if start[k].is_floating_point() and not torch.equal(start[k], after[k])}
    assert moved and all(k.startswith("roi_heads.rotation_predictor") for k in moved), sorted(moved)
    assert main(["--config", str(config), "--output", str(tmp_path / "bad"), "--set",
                 "optim.trainable=[roi_heads.nonexistent]", "run.stop_at_step=1", "data.num_workers=0"]) != 0
    err = capsys.readouterr().err
    assert "roi_heads.nonexistent" in err and "roi_heads.mask_head" in err and "Traceback" not in err


def test_init_weights_starts_a_fresh_run_from_fitting_layers_only(straight_run, tmp_path, capsys):
    """run.init_weights: the weights of a checkpoint start a new run (step 1, new schedule); other
    loss weights are fine, layers of another size are refused with a clear message."""
    reference, config = straight_run
    run = tmp_path / "run"
    assert main(["--config", str(config), "--output", str(run), "--set", f"run.init_weights={reference / 'last.pt'}",
                 "model.loss.rotation_weight=3.0", "run.stop_at_step=1", "data.num_workers=0"]) == 0
    start = load_checkpoint(reference / "last.pt")["model"]
    after = load_checkpoint(run / "last.pt")
    assert after["step"] == 1
    # one small optimizer step away from the initial weights (norm statistics aside)
    moved = max(float((after["model"][k].float() - start[k].float()).abs().max())
                for k in start if start[k].is_floating_point() and "running_" not in k)
    assert 0 < moved < 0.01
    assert main(["--config", str(config), "--output", str(tmp_path / "bad"), "--set",
                 f"run.init_weights={reference / 'last.pt'}", f"model.descriptor.hidden={2 * TINY_MODEL['descriptor']['hidden']}",
                 "run.stop_at_step=1", "data.num_workers=0"]) == 1
    err = capsys.readouterr().err
    assert "layers do not fit" in err and "Traceback" not in err
