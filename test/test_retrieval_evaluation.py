"""Top-1 shape retrieval evaluation: hand-made databases and objects, then the ``evaluate`` report."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
import trimesh
from repo_scripts import load_script
from tiny_model import build_tiny_shape_db, save_tiny_checkpoint

from scene3d_ros import CATEGORIES
from scene3d_ros.cli.evaluate import main
from scene3d_ros.data.shards import GenerateConfig, OutputConfig, generate_dataset
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.evaluation import Evaluator
from scene3d_ros.geometry import matrix_to_quaternion, viewpoint_rotation
from scene3d_ros.model.rotations import allocentric_to_egocentric
from scene3d_ros.retrieval import ResolutionPolicy, ShapeDatabase
from scene3d_ros.retrieval.evaluation import RetrievalEvaluator, ground_truth_allocentric, to_markdown
from scene3d_ros.retrieval.shape_metrics import MeshComparison, shape_agreement
from scene3d_ros.world.scene_sampler import SceneConfig

torch.set_num_threads(2)
CAR, CHAIR = CATEGORIES.index("car") + 1, CATEGORIES.index("chair") + 1
ON_AXIS = [0.0, 0.0, 5.0]  # metres: on the optical axis allocentric == egocentric
BOXES = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]]


def _quat(azimuth: float) -> np.ndarray:
    return matrix_to_quaternion(viewpoint_rotation(azimuth, 0.0, 0.0)).astype(np.float32)


def _onehot(k: int, dim: int = 6) -> np.ndarray:
    return np.eye(dim, dtype=np.float32)[k]


def _database(views: list[tuple[str, str, np.ndarray, float]]) -> ShapeDatabase:
    """Views (model id, category, descriptor, azimuth deg); one model per distinct id."""
    names = list(dict.fromkeys(v[0] for v in views))
    category = {v[0]: v[1] for v in views}
    return ShapeDatabase(torch.tensor(np.stack([v[2] for v in views])), torch.tensor([names.index(v[0]) for v in views]),
                         torch.tensor(np.stack([_quat(v[3]) for v in views])), names, [category[m] for m in names],
                         ["none"] * len(names), library_checksum="lib", checkpoint_sha256="ckpt")


# four models, each one frontal view with its own one-hot descriptor
PLAIN = ResolutionPolicy(silhouette_check=False)
"""The policy without the silhouette check (the hand-made databases hold no silhouettes)."""
DB = _database([("car_a", "car", _onehot(0), 0.0), ("car_b", "car", _onehot(1), 0.0),
                ("chair_a", "chair", _onehot(2), 0.0), ("chair_b", "chair", _onehot(3), 0.0)])


def _gt(model_ids, labels, azimuths=None, translations=None):
    n = len(labels)
    azimuths = azimuths or [0.0] * n
    return {"boxes": torch.tensor(BOXES[:n], dtype=torch.float32), "labels": torch.tensor(labels),
            "quaternions": torch.tensor(np.stack([_quat(a) for a in azimuths])),
            "translations": torch.tensor(translations or [ON_AXIS] * n, dtype=torch.float32),
            "model_ids": list(model_ids)}


def _pred(descriptors, labels, azimuths=None, boxes=None, scores=None):
    n = len(labels)
    azimuths = azimuths or [0.0] * n
    return {"boxes": torch.tensor(boxes if boxes is not None else BOXES[:n], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64), "scores": torch.tensor(scores or [1.0] * n),
            "descriptors": torch.tensor(np.stack(descriptors) if n else np.zeros((0, 6), np.float32)),
            "allocentric_quaternions": torch.tensor(np.stack([_quat(a) for a in azimuths]) if n
                                                    else np.zeros((0, 4), np.float32))}


def _top1(summary, variant, split="all"):
    return summary["splits"][split]["top1"][variant]


# --------------------------------------------------------------------------- Top-1 by hand
def test_descriptors_equal_to_the_database_give_top1_one_and_shuffled_ids_zero():
    queries = [_onehot(0), _onehot(1), _onehot(2)]
    right = RetrievalEvaluator(DB, PLAIN)
    right.add("gt_boxes", _pred(queries, [CAR, CAR, CHAIR]), _gt(["car_a", "car_b", "chair_a"], [CAR, CAR, CHAIR]))
    wrong = RetrievalEvaluator(DB, PLAIN)  # ground-truth ids shuffled within each category
    wrong.add("gt_boxes", _pred(queries, [CAR, CAR, CHAIR]), _gt(["car_b", "car_a", "chair_b"], [CAR, CAR, CHAIR]))
    for evaluator, expected in ((right, 1.0), (wrong, 0.0)):
        summary = evaluator.summary()
        assert [v["key"] for v in summary["variants"]] == ["gt_boxes/gt_prior", "gt_boxes/predicted_prior",
                                                           "gt_boxes/no_prior"]
        for variant in summary["variants"]:
            top1 = _top1(summary, variant["key"])
            assert top1["per_category"]["car"] == top1["per_category"]["chair"] == expected
            assert top1["mean"] == top1["overall"] == expected and top1["objects"] == 3
            assert top1["per_category"]["bus"] is None  # no object: n/a, left out of the mean


def test_per_category_mean_and_overall_by_hand():
    evaluator = RetrievalEvaluator(DB, PLAIN)
    # cars: the first right, the second retrieves car_b (wrong); chairs: right; one more car right
    evaluator.add("gt_boxes", _pred([_onehot(0), _onehot(1), _onehot(2)], [CAR, CAR, CHAIR]),
                  _gt(["car_a", "car_a", "chair_a"], [CAR, CAR, CHAIR]))
    evaluator.add("gt_boxes", _pred([_onehot(1)], [CAR]), _gt(["car_b"], [CAR]))
    top1 = _top1(evaluator.summary(), "gt_boxes/no_prior")
    assert top1["per_category"]["car"] == pytest.approx(2 / 3) and top1["per_category"]["chair"] == 1.0
    assert top1["mean"] == pytest.approx((2 / 3 + 1.0) / 2)  # over categories
    assert top1["overall"] == pytest.approx(3 / 4)  # over objects
    assert evaluator.summary()["num_images"] == {"gt_boxes": 2}


def test_subtype_top1_counts_the_sibling_instance_of_the_same_subtype():
    subtypes = {"car_a": "sedan", "car_b": "sedan", "chair_a": "swivel", "chair_b": "office"}
    # car_a retrieves its sibling car_b (model wrong, sub-type right); chair_a retrieves chair_b (both wrong);
    # chair_b retrieves itself (both right)
    queries, labels = [_onehot(1), _onehot(3), _onehot(3)], [CAR, CHAIR, CHAIR]
    gt = _gt(["car_a", "chair_a", "chair_b"], labels)
    with_subtypes, without = RetrievalEvaluator(DB, PLAIN, subtypes=subtypes), RetrievalEvaluator(DB, PLAIN)
    for evaluator in (with_subtypes, without):
        evaluator.add("gt_boxes", _pred(queries, labels), gt)
    top1 = _top1(with_subtypes.summary(), "gt_boxes/no_prior")
    assert top1["per_category"]["car"] == 0.0 and top1["per_category"]["chair"] == 0.5
    assert top1["subtype"]["per_category"]["car"] == 1.0 and top1["subtype"]["per_category"]["chair"] == 0.5
    assert top1["subtype"]["mean"] == pytest.approx(0.75) and top1["subtype"]["overall"] == pytest.approx(2 / 3)
    markdown = to_markdown(with_subtypes.summary())
    assert markdown.count("**Shape-level Top-1** (the retrieved model") == 1  # seen split only: no unseen objects
    assert markdown.index("**Shape-level Top-1**") < markdown.index("Instance Top-1 (the paper's: the")  # the headline first
    assert "subtype" not in _top1(without.summary(), "gt_boxes/no_prior")
    assert without.summary()["subtype_definition"] is None and "Shape-level" not in to_markdown(without.summary())


class _BoxLibrary:
    """A stand-in CAD library of axis-aligned box meshes (model id -> extents, metres)."""

    def __init__(self, extents: dict[str, tuple[float, float, float]]) -> None:
        self.extents = extents

    def mesh(self, model_id: str) -> trimesh.Trimesh:
        return trimesh.creation.box(extents=self.extents[model_id])

    def get(self, model_id: str):
        return types.SimpleNamespace(extents=np.asarray(self.extents[model_id]))


def test_shape_agreement_of_point_sets_and_meshes():
    true = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    shifted = shape_agreement(true + [0.0, 0.02, 0.0], true, tau_m=0.03)
    assert shifted.chamfer_l1_m == pytest.approx(0.02) and shifted.fscore == 1.0
    assert shape_agreement(true + [0.0, 0.05, 0.0], true, tau_m=0.03).fscore == 0.0
    half = shape_agreement(np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]), true, tau_m=0.03)  # precision 1/2, recall 1/2
    assert half.fscore == pytest.approx(0.5) and half.chamfer_l1_m == pytest.approx(0.5 * ((0.0 + 4.0) / 2 + (0.0 + 1.0) / 2))
    shapes = MeshComparison(_BoxLibrary({"car_a": (4.0, 2.0, 1.5), "car_b": (4.0, 2.0, 1.5), "car_c": (2.0, 2.0, 3.0)}))
    assert shapes.compare("car_a", "car_a").chamfer_l1_m == 0.0 and shapes.compare("car_a", "car_a").fscore == 1.0
    assert shapes.compare("car_a", "car_b") == shapes.compare("car_a", "car_a")  # the same shape under another id
    other = shapes.compare("car_c", "car_a")
    assert other.fscore < 0.5 and other.chamfer_l1_m > 0.2 and other.tau_m == pytest.approx(0.03 * 4.0)
    with pytest.raises(ValueError, match="tau"):
        shape_agreement(true, true, 0.0)


def test_geometry_and_the_shape_target_in_the_summary():
    shapes = MeshComparison(_BoxLibrary({"car_a": (4.0, 2.0, 1.5), "car_b": (2.0, 2.0, 3.0), "chair_a": (0.5, 0.5, 1.0),
                                         "chair_b": (0.6, 0.5, 1.0)}))
    evaluator = RetrievalEvaluator(DB, PLAIN, subtypes={"car_a": "a", "car_b": "b", "chair_a": "x", "chair_b": "y"},
                                   shapes=shapes)
    # car_a retrieves itself, car_b retrieves car_a, chair_a is missed (no prediction pairs with it)
    evaluator.add("gt_boxes", _pred([_onehot(0), _onehot(0)], [CAR, CAR]), _gt(["car_a", "car_b"], [CAR, CAR]))
    evaluator.add("detected", _pred([], []), _gt(["chair_a"], [CHAIR]))
    summary = evaluator.summary()
    geometry = _top1(summary, "gt_boxes/no_prior")["geometry"]
    wrong = shapes.compare("car_a", "car_b")
    assert geometry["fscore"]["per_category"]["car"] == pytest.approx((1.0 + wrong.fscore) / 2)
    assert geometry["chamfer_l1_m"]["per_category"]["car"] == pytest.approx(wrong.chamfer_l1_m / 2)
    detected = summary["splits"]["all"]["top1"]["detected/predicted_prior"]["geometry"]
    assert detected["fscore"]["per_category"]["chair"] == 0.0 and detected["chamfer_l1_m"]["objects"] == 0
    assert summary["shape_target"]["variant"] == "gt_boxes/predicted_prior" and summary["shape_target"]["min"] == 0.65
    assert summary["shape_target"]["value"] == pytest.approx(0.5) and summary["shape_target"]["met"] is False
    markdown = to_markdown(summary)
    assert "F-score@tau of the retrieved mesh" in markdown and "Chamfer-L1 (metres)" in markdown
    assert "mean shape-level Top-1 >= 0.65" in markdown and "0.500, not met" in markdown


def test_detected_setting_matches_like_the_pose_evaluation_and_counts_misses_as_wrong():
    evaluator = RetrievalEvaluator(DB, PLAIN)
    gt = _gt(["car_a", "car_b", "chair_a"], [CAR, CAR, CHAIR])
    # prediction 0 matches car_a (right), prediction 1 is a false positive far away, car_b and the chair are missed
    pred = _pred([_onehot(0), _onehot(3)], [CAR, CHAIR], boxes=[BOXES[0], [200, 200, 210, 210]], scores=[0.9, 0.8])
    model_ids = evaluator.add("detected", pred, gt)
    assert model_ids == ["car_a", "chair_b"]  # one per prediction, false positive included
    summary = evaluator.summary()
    assert [v["key"] for v in summary["variants"]] == ["detected/predicted_prior", "detected/no_prior"]
    for key in ("detected/predicted_prior", "detected/no_prior"):
        top1 = _top1(summary, key)
        assert top1["per_category"]["car"] == 0.5 and top1["per_category"]["chair"] == 0.0
        assert top1["overall"] == pytest.approx(1 / 3)
    # the pose Evaluator fed these ids computes the same Top-1
    pose = Evaluator(setting="detected")
    pose.add({**pred, "quaternions": pred["allocentric_quaternions"], "model_ids": model_ids}, gt)
    assert pose.summary()["subsets"]["all"]["per_category"]["car"]["top1"] == 0.5


# --------------------------------------------------------------------------- the pose prior
def test_pose_prior_excludes_views_beyond_the_angle_and_uses_the_allocentric_ground_truth():
    """car_a is seen from the front (azimuth 0), car_b at azimuth 40; the descriptor is car_b's.

    The object (truly car_a) sits 40 deg right of the optical axis with allocentric azimuth 0, so
    its egocentric rotation looks like azimuth 40: only the allocentric conversion keeps car_b out."""
    db = _database([("car_a", "car", _onehot(0), 0.0), ("car_b", "car", _onehot(1), 40.0)])
    t = [4.0, 0.0, 4.0 / np.tan(np.radians(40.0))]
    q_ego = allocentric_to_egocentric(torch.tensor(_quat(0.0)).double()[None], torch.tensor([t]).double())[0]
    gt = {**_gt(["car_a"], [CAR], translations=[t]), "quaternions": q_ego.float()[None]}
    np.testing.assert_allclose(ground_truth_allocentric(gt)[0].numpy(), _quat(0.0), atol=1e-5)
    pred = _pred([_onehot(1)], [CAR], azimuths=[40.0])  # the predicted pose points at car_b's view
    results = {}
    for max_angle in (30.0, 45.0):
        evaluator = RetrievalEvaluator(db, PLAIN.replace(max_angle_deg=max_angle))
        evaluator.add("gt_boxes", pred, gt)
        results[max_angle] = {k: v["overall"] for k, v in evaluator.summary()["splits"]["all"]["top1"].items()}
    assert results[30.0] == {"gt_boxes/gt_prior": 1.0, "gt_boxes/predicted_prior": 0.0, "gt_boxes/no_prior": 0.0}
    assert results[45.0]["gt_boxes/gt_prior"] == 0.0  # car_b's view now lies within the window and is nearer
    # without a translation (Pascal3D+) the quaternion is taken as allocentric
    np.testing.assert_allclose(ground_truth_allocentric({"quaternions": q_ego[None]})[0].numpy(), q_ego.numpy(),
                               atol=1e-6)


# --------------------------------------------------------------------------- seen / unseen, report
def test_seen_and_unseen_split_and_missing_models():
    evaluator = RetrievalEvaluator(DB, PLAIN, unseen_models=["car_b", "never_there"])
    evaluator.add("gt_boxes", _pred([_onehot(0), _onehot(1), _onehot(0)], [CAR, CAR, CAR]),
                  _gt(["car_a", "car_b", "car_z"], [CAR, CAR, CAR]))
    summary = evaluator.summary()
    splits = summary["splits"]
    assert (splits["all"]["objects"], splits["seen"]["objects"], splits["unseen"]["objects"]) == (3, 2, 1)
    assert splits["seen"]["top1"]["gt_boxes/gt_prior"]["overall"] == 0.5  # car_z is not in the database
    assert splits["unseen"]["top1"]["gt_boxes/gt_prior"]["overall"] == 1.0
    assert splits["all"]["not_in_database"] == 1 and summary["unseen_models"] == ["car_b", "never_there"]
    assert summary["target"] == {"variant": "gt_boxes/gt_prior", "split": "seen", "metric": "mean", "min": 0.6,
                                 "value": 0.5, "met": False}
    markdown = to_markdown(summary)
    assert "## Seen models" in markdown and "## Unseen models" in markdown
    assert "| car | 1 | 1.000 | 1.000 | 1.000 |" in markdown  # the unseen table
    assert "1 of 3 objects have a ground-truth model that is not in the shape database" in markdown
    assert "0.500, not met" in markdown

    only_seen = RetrievalEvaluator(DB, PLAIN)
    only_seen.add("gt_boxes", _pred([_onehot(0)], [CAR]), _gt(["car_a"], [CAR]))
    text = to_markdown(only_seen.summary())
    assert "Unseen: no objects of unseen models in this split (no unseen models listed)." in text
    assert only_seen.summary()["splits"]["unseen"]["top1"]["gt_boxes/gt_prior"]["overall"] is None
    assert "1.000, met" in text


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="max_angle_deg"):
        RetrievalEvaluator(DB, PLAIN.replace(max_angle_deg=0.0))
    evaluator = RetrievalEvaluator(DB, PLAIN)
    with pytest.raises(ValueError, match="unknown setting"):
        evaluator.add("both", _pred([_onehot(0)], [CAR]), _gt(["car_a"], [CAR]))
    pred = _pred([_onehot(0)], [CAR])
    del pred["descriptors"]
    with pytest.raises(ValueError, match="descriptors"):
        evaluator.add("gt_boxes", pred, _gt(["car_a"], [CAR]))


# --------------------------------------------------------------------------- the evaluate command
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny checkpoint, 3 synthetic scenes and a shape database of the scenes' models (plus one)."""
    root = tmp_path_factory.mktemp("retrieval_eval")
    checkpoint = save_tiny_checkpoint(root / "tiny.pt")
    config = GenerateConfig(scene=SceneConfig(image_sizes=((128, 128),), num_objects_range=(1, 3)),
                            output=OutputConfig(num_scenes=3, scenes_per_shard=3, seed=5))
    generate_dataset(config, root / "val", workers=1)
    dataset = SyntheticSceneDataset(root / "val")
    model_ids = sorted({m for i in range(len(dataset)) for m in dataset[i][1]["model_ids"]})
    db = build_tiny_shape_db(root / "db.pt", checkpoint, [*model_ids, "car_sedan_01"], azimuths=4, elevations=1)
    return {"root": root, "checkpoint": checkpoint, "db": db, "model_ids": model_ids, "dataset": dataset}


def _run(setup, out, *overrides, extra=()):
    return main(["--checkpoint", str(setup["checkpoint"]), "--data", str(setup["root"] / "val"), "--device", "cpu",
                 "--output", str(out), *extra, "--set", "evaluate.workers=0", *overrides])


def test_evaluate_reports_top1_for_seen_and_unseen_models(setup, tmp_path, capsys):
    unseen = setup["model_ids"][0]
    assert _run(setup, tmp_path, "evaluate.retrieval.enabled=true", f"evaluate.retrieval.shape_db={setup['db']}",
                f"evaluate.retrieval.unseen_models=[{unseen}]") == 0
    summary = json.loads((tmp_path / "evaluation_retrieval.json").read_text())
    assert [v["key"] for v in summary["variants"]] == ["gt_boxes/gt_prior", "gt_boxes/predicted_prior",
                                                       "gt_boxes/no_prior", "detected/predicted_prior",
                                                       "detected/no_prior", "gt_boxes/gt_prior+silhouette",
                                                       "gt_boxes/predicted_prior+silhouette",
                                                       "detected/predicted_prior+silhouette"]
    assert summary["silhouette_check"] == {"weight": 20.0, "angle_weight": 5.0, "candidates": 64,
                                           "max_angle_deg": 90.0, "camera_weight": 20.0, "camera_models": 4}
    # the shipped policy's cost per object is measured on every object it resolved
    assert summary["policy_objects"] > 0 and summary["policy_ms_per_object"] > 0.0
    # the final translation (fitted to the retrieved model's projection) is scored next to the network's
    assert summary["policy"]["fit_translation"] is True
    for setting, methods in summary["translation"].items():
        assert methods["network"]["objects"] == methods["final"]["objects"] > 0, setting
        assert 0.0 <= methods["final"]["overall_within_10"] <= 1.0 and methods["final"]["overall_median_rel"] >= 0.0
    assert "## Translation" in (tmp_path / "evaluation_retrieval.md").read_text()
    dataset = setup["dataset"]
    ids = [m for i in range(len(dataset)) for m in dataset[i][1]["model_ids"]]
    splits = summary["splits"]
    assert splits["all"]["objects"] == len(ids) and splits["unseen"]["objects"] == ids.count(unseen)
    assert splits["seen"]["objects"] + splits["unseen"]["objects"] == len(ids)
    assert splits["all"]["not_in_database"] == 0 and summary["database"]["path"] == str(setup["db"].resolve())
    assert summary["run"]["checkpoint"] == str(setup["checkpoint"].resolve())
    for split in ("all", "seen", "unseen"):
        for top1 in splits[split]["top1"].values():
            assert 0.0 <= top1["overall"] <= 1.0
            assert top1["overall"] <= top1["subtype"]["overall"] <= 1.0  # the dataset's library gives sub-types
    # the per-setting tables' Top-1 rows are the predicted-pose-prior retrievals with the silhouette
    # check (what retrieval_node publishes)
    for setting in ("gt_boxes", "detected"):
        pose = json.loads((tmp_path / f"evaluation_{setting}.json").read_text())
        per_category = pose["subsets"]["all"]["per_category"]
        expected = splits["all"]["top1"][f"{setting}/predicted_prior+silhouette"]["per_category"]
        assert {c: per_category[c]["top1"] for c in CATEGORIES} == pytest.approx(expected)
        # the check's rotation is scored next to the network's on the same paired objects
        refinement = summary["pose_refinement"][setting]
        assert refinement["network"]["objects"] == refinement["silhouette_check"]["objects"]
        for method in refinement.values():
            if method["objects"]:  # the tiny network may detect nothing
                assert 0.0 <= method["mean_median_deg"] <= 180.0 and 0.0 <= method["mean_acc_pi_6"] <= 1.0
    gt_boxes = summary["pose_refinement"]["gt_boxes"]["network"]
    assert gt_boxes["objects"] == len(ids)  # every ground-truth box is paired with itself
    combined = (tmp_path / "evaluation.md").read_text()
    for needle in ("## Top-1 shape retrieval", "### Seen models", "### Unseen models (never seen in training)",
                   "| category | objects | GT boxes + GT pose prior |", "| **mean (categories)** |",
                   "### Rotation from the silhouette check", "| category | objects | MedErr network (deg) |"):
        assert needle in combined
    assert "evaluation_retrieval.md/.json" in capsys.readouterr().err


def test_missing_or_mismatched_database_says_how_to_build_it(setup, tmp_path, capsys):
    missing = tmp_path / "none" / "shape_db.pt"
    args = (f"evaluate.retrieval.shape_db={missing}",)
    fast = ("--setting", "gt_boxes", "--max-images", "1")
    # requested: exit 1 before the network runs
    assert _run(setup, tmp_path / "a", "evaluate.retrieval.enabled=true", *args, extra=fast) == 1
    err = capsys.readouterr().err
    assert f"no shape database at {missing}" in err
    assert f"build_shape_db --checkpoint {setup['checkpoint']} --output {missing}" in err
    assert not (tmp_path / "a" / "evaluation.md").exists()
    # auto (the default): a warning, the rest of the evaluation, and the reason in the report
    assert _run(setup, tmp_path / "b", *args, extra=fast) == 0
    assert "warning: skipping the Top-1 retrieval evaluation" in capsys.readouterr().err
    combined = (tmp_path / "b" / "evaluation.md").read_text()
    assert "## Top-1 shape retrieval\n\nSkipped: no shape database at" in combined and "build_shape_db" in combined
    assert not (tmp_path / "b" / "evaluation_retrieval.json").exists()
    # a database of another checkpoint
    other = save_tiny_checkpoint(tmp_path / "other.pt", score_threshold=None)
    code = main(["--checkpoint", str(other), "--data", str(setup["root"] / "val"), "--device", "cpu", "--output",
                 str(tmp_path / "c"), *fast, "--set", "evaluate.workers=0", "evaluate.retrieval.enabled=true",
                 f"evaluate.retrieval.shape_db={setup['db']}"])
    assert code == 1
    err = capsys.readouterr().err
    assert "was built with another checkpoint" in err and f"build_shape_db --checkpoint {other}" in err
    # off: no section at all
    assert _run(setup, tmp_path / "d", "evaluate.retrieval.enabled=false", *args, extra=fast) == 0
    assert "Top-1 shape retrieval" not in (tmp_path / "d" / "evaluation.md").read_text()


def test_prior_window_sweep_matches_evaluate_and_180_deg_is_no_prior(setup, tmp_path):
    """scripts/prior_window_sweep.py: the same Top-1 as ``evaluate`` at the same window, and a
    180-deg window (every view admitted) equal to the no-prior search."""
    sweep = load_script("prior_window_sweep")
    out = tmp_path / "sweep"
    assert sweep.main(["--checkpoint", str(setup["checkpoint"]), "--data", str(setup["root"] / "val"),
                       "--shape-db", str(setup["db"]), "--angles", "30", "180", "--output", str(out)]) == 0
    rows = {(r["max_angle_deg"], r["variant"]): r for r in json.loads(out.with_suffix(".json").read_text())["rows"]}
    for prior, no_prior in (("gt_boxes/gt_prior", "gt_boxes/no_prior"), ("gt_boxes/predicted_prior", "gt_boxes/no_prior"),
                            ("detected/predicted_prior", "detected/no_prior")):
        assert rows[(180.0, prior)]["top1_mean"] == rows[(180.0, no_prior)]["top1_mean"]
        assert rows[(180.0, prior)]["subtype_top1_mean"] == rows[(180.0, no_prior)]["subtype_top1_mean"]
    assert _run(setup, tmp_path / "eval", "evaluate.retrieval.enabled=true", f"evaluate.retrieval.shape_db={setup['db']}",
                "evaluate.retrieval.max_angle_deg=30") == 0
    summary = json.loads((tmp_path / "eval" / "evaluation_retrieval.json").read_text())
    for key in ("gt_boxes/gt_prior", "gt_boxes/predicted_prior", "detected/predicted_prior"):
        assert rows[(30.0, key)]["top1_mean"] == pytest.approx(summary["splits"]["seen"]["top1"][key]["mean"])
    assert "| 30 |" in out.with_suffix(".md").read_text()


def test_silhouette_check_sweep_matches_evaluate(setup, tmp_path):
    """scripts/silhouette_check_sweep.py: per weight combination the same Top-1 and rotation as
    ``evaluate`` with those weights; the baseline is the descriptor-only search."""
    sweep = load_script("silhouette_check_sweep")
    out = tmp_path / "sweep"
    assert sweep.main(["--checkpoint", str(setup["checkpoint"]), "--data", str(setup["root"] / "val"),
                       "--shape-db", str(setup["db"]), "--weights", "0", "50", "--angle-weights", "5",
                       "--windows", "90", "--output", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    rows = {r["weight"]: r for r in result["rows"]}
    assert sorted(rows) == [0.0, 50.0] and all(r["setting"] == "gt_boxes" for r in rows.values())
    assert _run(setup, tmp_path / "eval", "evaluate.retrieval.enabled=true", f"evaluate.retrieval.shape_db={setup['db']}",
                "evaluate.retrieval.silhouette_weight=50", "evaluate.retrieval.silhouette_angle_weight=5",
                "evaluate.retrieval.silhouette_max_angle_deg=90",
                extra=("--viewpoint", "")) == 0  # the sweep scores network 1's one hypothesis
    summary = json.loads((tmp_path / "eval" / "evaluation_retrieval.json").read_text())
    checked = summary["splits"]["seen"]["top1"]["gt_boxes/predicted_prior+silhouette"]
    assert rows[50.0]["top1_mean"] == pytest.approx(checked["mean"])
    refinement = summary["pose_refinement"]["gt_boxes"]
    assert rows[50.0]["medErr_mean_deg"] == pytest.approx(refinement["silhouette_check"]["mean_median_deg"])
    baseline = result["baseline"]["gt_boxes"]
    assert baseline["top1_mean"] == pytest.approx(summary["splits"]["seen"]["top1"]["gt_boxes/predicted_prior"]["mean"])
    assert baseline["medErr_mean_deg"] == pytest.approx(refinement["network"]["mean_median_deg"])
    assert "| 50 | 5 | 90 |" in out.with_suffix(".md").read_text()


# --------------------------------------------------------------------------- the silhouette check
def test_silhouette_variants_and_the_rotation_of_the_chosen_view_by_hand():
    wide, tall = np.zeros((28, 28), np.uint8), np.zeros((28, 28), np.uint8)
    wide[8:20, :], tall[:, 8:20] = 255, 255
    # car_a (tall outline, azimuth 0) is the nearer descriptor; car_b (wide outline) sits at azimuth 60
    db = _database([("car_a", "car", _onehot(0), 0.0), ("car_b", "car", _onehot(0) + 0.5 * _onehot(1), 60.0)])
    db.silhouettes = torch.tensor(np.stack([tall, wide]))
    evaluator = RetrievalEvaluator(db, ResolutionPolicy(silhouette_weight=2.0, silhouette_angle_weight=0.0))
    # the network says azimuth 20 (ground truth 60, car_b); its mask is the wide outline
    prediction = {**_pred([_onehot(0)], [CAR], azimuths=[20.0]),
                  "box_masks": torch.tensor(wide[None] / 255.0, dtype=torch.float32),
                  "quaternions": torch.tensor(_quat(20.0)[None]), "translations": torch.tensor([ON_AXIS])}
    returned = evaluator.add("gt_boxes", prediction, _gt(["car_b"], [CAR], azimuths=[60.0]))
    assert returned == ["car_b"]  # the silhouette-checked model, as retrieval_node publishes it
    summary = evaluator.summary()
    assert _top1(summary, "gt_boxes/predicted_prior")["overall"] == 0.0  # descriptor alone: car_a
    assert _top1(summary, "gt_boxes/predicted_prior+silhouette")["overall"] == 1.0
    assert _top1(summary, "gt_boxes/gt_prior+silhouette")["overall"] == 1.0
    refinement = summary["pose_refinement"]["gt_boxes"]
    assert refinement["network"]["per_category"]["car"]["median_deg"] == pytest.approx(40.0, abs=1e-3)
    assert refinement["silhouette_check"]["per_category"]["car"]["median_deg"] == pytest.approx(0.0, abs=1e-3)
    assert refinement["network"]["mean_acc_pi_6"] == 0.0 and refinement["silhouette_check"]["mean_acc_pi_6"] == 1.0
    assert refinement["network"]["flips"] == 0.0 and refinement["silhouette_check"]["flips"] == 0.0
    markdown = to_markdown(summary)
    assert "## Rotation from the silhouette check" in markdown and "| car | 1 | 40.0 | 0.0 | 0.000 | 1.000 |" in markdown
    assert "Flips: network 0.000, policy 0.000." in markdown
    # without masks in the predictions the check cannot run, and says so
    with pytest.raises(ValueError, match="box_masks"):
        evaluator.add("gt_boxes", _pred([_onehot(0)], [CAR]), _gt(["car_b"], [CAR]))
    with pytest.raises(ValueError, match="view silhouettes"):
        RetrievalEvaluator(DB, ResolutionPolicy())


def test_pose_refinement_counts_flips_over_150_degrees():
    """A rotation turned 180 deg about the object's up axis is a flip (> 150 deg); 40 deg off is not."""
    wide = np.zeros((28, 28), np.uint8)
    wide[8:20, :] = 255
    db = _database([("car_a", "car", _onehot(0), 60.0), ("car_b", "car", _onehot(1), 240.0)])
    db.silhouettes = torch.tensor(np.stack([wide, wide]))
    evaluator = RetrievalEvaluator(db, ResolutionPolicy(final_rotation="view", silhouette_angle_weight=0.0))
    prediction = {**_pred([_onehot(1), _onehot(0)], [CAR, CAR], azimuths=[240.0, 20.0]),
                  "box_masks": torch.tensor(np.stack([wide, wide]) / 255.0, dtype=torch.float32),
                  "quaternions": torch.tensor(np.stack([_quat(240.0), _quat(20.0)])),
                  "translations": torch.tensor([ON_AXIS, ON_AXIS])}
    evaluator.add("gt_boxes", prediction, _gt(["car_a", "car_a"], [CAR, CAR], azimuths=[60.0, 60.0]))
    refinement = evaluator.summary()["pose_refinement"]["gt_boxes"]
    assert refinement["network"]["flips"] == pytest.approx(0.5)  # 180 and 40 deg off
    assert refinement["silhouette_check"]["flips"] == pytest.approx(0.5)  # car_b's view at 240, car_a's at 60


def test_the_crop_viewpoint_stage_hypotheses_steer_the_predicted_prior():
    """car_a is seen from the front, car_b from azimuth 90; the descriptor lies half-way. Network 1's
    rotation (azimuth 90) points at car_b's view; the stage's hypotheses, when the prediction carries
    them, replace it: their best (azimuth 0, probability 0.7) points at car_a's."""
    db = _database([("car_a", "car", _onehot(0), 0.0), ("car_b", "car", _onehot(1), 90.0)])
    descriptor = (_onehot(0) + _onehot(1)) / 2
    pred = _pred([descriptor], [CAR], azimuths=[90.0], scores=[1.0])
    pred["translations"] = torch.tensor([ON_AXIS], dtype=torch.float32)
    gt = _gt(["car_a"], [CAR])
    plain = RetrievalEvaluator(db, PLAIN.replace(max_angle_deg=30.0))
    assert plain.add("gt_boxes", pred, gt) == ["car_b"]
    staged = RetrievalEvaluator(db, PLAIN.replace(max_angle_deg=30.0))
    with_stage = {**pred, "viewpoint_hypotheses": [np.stack([_quat(0.0), _quat(90.0)])],
                  "viewpoint_scores": [np.array([0.7, 0.2])]}
    assert staged.add("gt_boxes", with_stage, gt) == ["car_a"]
