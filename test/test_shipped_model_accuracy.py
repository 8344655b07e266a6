"""Accuracy guard of the shipped network (models/scene3d_default.pt) on a small fixed held-out set.

The first ``NUM_SCENES`` scenes of the held-out synthetic split (``generate_data`` with the
packaged config/generate_data.yaml and ``output.seed=1``: scene i depends only on (seed, i), so
these are exactly the first 30 of the 500-scene split the model card reports on; 256x256, 112
objects) are rendered here and evaluated with the project's evaluation code
(:func:`scene3d_ros.evaluation.runner.evaluate`, settings ``gt_boxes`` and ``detected``), on the CPU.

This guards **network 1 alone** (the model called directly, as ``evaluate`` does): neither the
crop viewpoint stage that ``Pipeline`` runs when models/viewpoint_default.pt exists nor the
retrieval's silhouette check is involved.

Measured 2026-12-07 with the shipped model in the marked world (``scene.surface_markings``, the
default since that day; seed 1, 30 scenes): with ground-truth boxes, over all 112 objects, MedErr
41.7 deg and Acc_pi/6 0.375; detected, box AP50 0.717 (category mean). The same scenes without
markings (2026-12-06) gave 40.8 / 0.393 / 0.732, and the nearby seeds 3 and 4 (unmarked) gave
MedErr 43.6 / 40.0 deg, Acc_pi/6 0.337 / 0.431, box AP50 0.765 / 0.786: a different sample of
scenes moves them from seed 1's by up to 2.8 deg / 0.056 / 0.054. The scenes here are fixed, so
the run-to-run noise is only floating point; the margins below (5 deg, 0.07, 0.06) let through
that seed-to-seed spread and fail on a real regression (e.g. +8 deg MedErr). The lower bounds on
MedErr and AP catch the opposite surprise: a much better number means the model or the metric
changed, so re-measure and update the recorded values here and in models/MODEL_CARD.md.
Whole-split values (500 scenes, marked world): MedErr 42.5 deg, Acc_pi/6 0.40, box AP50 0.73
(unmarked, models/MODEL_CARD.md: 42 / 0.40 / 0.74).

About 62 s measured on the 2-core machine at load average 5.6 (48 s of CPU time in all), so well
under a minute on idle cores: rendering ~2 s, then 30 images through the network twice.
"""

from __future__ import annotations

import pytest
import torch

from scene3d_ros.config import dataclass_from_dict, load_config
from scene3d_ros.data.shards import GenerateConfig, generate_dataset
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.evaluation import pose_metrics
from scene3d_ros.evaluation.runner import EvaluateConfig, evaluate
from scene3d_ros.model import build_model_from_checkpoint
from scene3d_ros.paths import default_model_path, packaged_config_file

SEED = 1
NUM_SCENES = 30
MEDERR_DEG = 41.7  # gt_boxes, all objects
ACC_PI6 = 0.375  # gt_boxes, all objects
BOX_AP50 = 0.717  # detected, mean over categories
MEDERR_MARGIN_DEG = 5.0
MEDERR_BETTER_DEG = 10.0
ACC_MARGIN = 0.07
AP50_MARGIN = 0.06
AP50_BETTER = 0.12


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict[str, float]:
    """MedErr (deg) and Acc_pi/6 with ground-truth boxes over all objects, box AP50 detected."""
    raw = load_config(packaged_config_file("generate_data.yaml"),
                      [f"output.num_scenes={NUM_SCENES}", f"output.seed={SEED}"])
    config = dataclass_from_dict(GenerateConfig, raw, "generate_data")
    data = tmp_path_factory.mktemp("held_out")
    generate_dataset(config, data, workers=1, progress=None)
    dataset = SyntheticSceneDataset(data)
    model = build_model_from_checkpoint(default_model_path(), torch.device("cpu"))
    evaluators, symmetry_aware = evaluate(model, dataset, ("gt_boxes", "detected"), torch.device("cpu"),
                                          EvaluateConfig(batch_size=2, workers=0))
    assert symmetry_aware
    gt_boxes = pose_metrics(evaluators["gt_boxes"].objects, "gt_boxes")
    return {"objects": len(evaluators["gt_boxes"].objects), "mederr_deg": gt_boxes["med_rot_err_deg"],
            "acc_pi6": gt_boxes["acc_pi6"],
            "box_ap50": evaluators["detected"].summary()["detection"]["mean"]["box_ap50"]}


def test_the_held_out_sample_is_the_recorded_one(measured):
    assert measured["objects"] == 112, measured


def test_rotation_with_ground_truth_boxes_stays_near_its_recorded_values(measured):
    assert MEDERR_DEG - MEDERR_BETTER_DEG <= measured["mederr_deg"] <= MEDERR_DEG + MEDERR_MARGIN_DEG, measured
    assert measured["acc_pi6"] >= ACC_PI6 - ACC_MARGIN, measured


def test_detection_box_ap50_stays_near_its_recorded_value(measured):
    assert BOX_AP50 - AP50_MARGIN <= measured["box_ap50"] <= BOX_AP50 + AP50_BETTER, measured
