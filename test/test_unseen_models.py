"""Unseen models end to end: an extended CAD library's extra instances form the unseen split of ``evaluate``."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from tiny_model import save_tiny_checkpoint

from scene3d_ros.cli.build_shape_db import main as build_shape_db_main
from scene3d_ros.cli.evaluate import main
from scene3d_ros.data.shards import GenerateConfig, OutputConfig, generate_dataset
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.evaluation.runner import dataset_cad_library
from scene3d_ros.world.cad_library import LIBRARY_FILE, build_cad_library
from scene3d_ros.world.scene_sampler import SceneConfig

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """An extended library (1 extra instance per sub-type), 4 tiny scenes generated with it, a tiny
    checkpoint and a shape database of the scenes' models built from that library."""
    root = tmp_path_factory.mktemp("unseen")
    library = build_cad_library(root / "cad_library_extended", progress=False, extra_instances=1)
    config = GenerateConfig(scene=SceneConfig(image_sizes=((128, 128),), num_objects_range=(2, 4)),
                            output=OutputConfig(num_scenes=4, scenes_per_shard=4, seed=3),
                            cad_library=str(library.root))
    generate_dataset(config, root / "val", workers=1)
    dataset = SyntheticSceneDataset(root / "val", include_difficult=False)  # as evaluate reads it
    ids = [m for i in range(len(dataset)) for m in dataset[i][1]["model_ids"]]
    unseen = [m for m in ids if m in library.unseen_models]
    assert unseen and len(unseen) < len(ids)  # the seed gives objects of both seen and unseen models
    checkpoint = save_tiny_checkpoint(root / "tiny.pt")
    db = root / "shape_db.pt"
    assert build_shape_db_main([
        "--checkpoint", str(checkpoint), "--output", str(db), "--device", "cpu", "--quiet", "--set",
        "shape_db.grid.azimuths=4", "shape_db.grid.elevations=1", "shape_db.grid.inplanes=1",
        f"shape_db.models=[{','.join(sorted(set(ids)))}]", f"shape_db.cad_library={library.root}"]) == 0
    return {"root": root, "library": library, "checkpoint": checkpoint, "db": db, "ids": ids}


def _evaluate(setup, out, *overrides) -> dict:
    assert main(["--checkpoint", str(setup["checkpoint"]), "--data", str(setup["root"] / "val"), "--device", "cpu",
                 "--setting", "gt_boxes", "--output", str(out), "--set", "evaluate.workers=0",
                 "evaluate.retrieval.enabled=true", f"evaluate.retrieval.shape_db={setup['db']}", *overrides]) == 0
    return json.loads((out / "evaluation_retrieval.json").read_text())


def test_evaluate_takes_the_unseen_models_from_the_datasets_library(setup, tmp_path, capsys):
    summary = _evaluate(setup, tmp_path)
    library, ids = setup["library"], setup["ids"]
    assert summary["unseen_models"] == list(library.unseen_models)
    splits = summary["splits"]
    assert splits["unseen"]["objects"] == sum(m in library.unseen_models for m in ids) > 0
    assert splits["seen"]["objects"] == len(ids) - splits["unseen"]["objects"] > 0
    assert splits["all"]["not_in_database"] == 0
    assert 0.0 <= splits["unseen"]["top1"]["gt_boxes/gt_prior"]["overall"] <= 1.0
    assert f"the {len(library.unseen_models)} unseen models declared by the CAD library" in capsys.readouterr().err
    assert "| **overall (objects)** |" in (tmp_path / "evaluation_retrieval.md").read_text().split("## Unseen")[1]


def test_an_explicit_unseen_list_wins(setup, tmp_path):
    chosen = setup["ids"][0]
    summary = _evaluate(setup, tmp_path, f"evaluate.retrieval.unseen_models=[{chosen}]")
    assert summary["unseen_models"] == [chosen]
    assert summary["splits"]["unseen"]["objects"] == setup["ids"].count(chosen)


def test_a_missing_or_changed_library_warns_and_declares_none(setup, tmp_path, capsys):
    library = setup["library"]
    default = dataset_cad_library(None, None)  # the default library declares none
    assert default is not None and default.unseen_models == ()
    assert dataset_cad_library(str(library.root), library.checksum).unseen_models == library.unseen_models
    assert dataset_cad_library(str(library.root), "0" * 64) is None
    assert "changed since the dataset was generated" in capsys.readouterr().err
    moved = tmp_path / "moved"
    shutil.copytree(library.root, moved)
    (moved / LIBRARY_FILE).unlink()
    assert dataset_cad_library(str(moved), library.checksum) is None
    err = capsys.readouterr().err
    assert "cannot read the dataset's CAD library" in err and "evaluate.retrieval.unseen_models=[id,...]" in err
