"""Evaluation: matching, symmetry-aware pose errors, MedErr/Acc, subsets, COCO AP, retrieval, reports."""

import json

import numpy as np
import pytest
import torch

from scene3d_ros import CATEGORIES, MASK_THRESHOLD
from scene3d_ros.evaluation import (
    Evaluator,
    box_iou,
    evaluate_image,
    match_detections,
    mean_defined,
    median_or_none,
    pair_predictions,
    rotation_errors_deg,
    share_below,
    to_markdown,
    translation_errors,
    write_report,
)
from scene3d_ros.geometry import matrix_to_quaternion, rotation_about_up, viewpoint_rotation

CAR = CATEGORIES.index("car") + 1
BUS = CATEGORIES.index("bus") + 1
BOTTLE = CATEGORIES.index("bottle") + 1
SIZE = 40  # test images are SIZE x SIZE pixels

R_GT = viewpoint_rotation(30.0, 20.0, 5.0)
Q_GT = matrix_to_quaternion(R_GT)


def q_error(deg: float) -> np.ndarray:
    """Quaternion of R_GT rotated by ``deg`` about the object's front axis (+x): error = deg."""
    angle = np.radians(deg)
    c, s = np.cos(angle), np.sin(angle)
    r_x = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return matrix_to_quaternion(R_GT @ r_x)


def box_mask(box) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    x0, y0, x1, y1 = (int(v) for v in box)
    mask[y0:y1, x0:x1] = 1
    return mask


def make_gt(boxes, labels, occluded=None, truncated=None, translations=None, model_ids=None, symmetries=None, masks=True):
    n = len(labels)
    gt = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "quaternions": torch.tensor(np.tile(Q_GT, (n, 1)), dtype=torch.float32),
        "translations": torch.tensor(translations if translations is not None else [[0.0, 0.0, 10.0]] * n).reshape(n, 3),
        "model_ids": model_ids if model_ids is not None else [f"m{i}" for i in range(n)],
        "occluded": torch.tensor(occluded if occluded is not None else [False] * n, dtype=torch.bool),
        "truncated": torch.tensor(truncated if truncated is not None else [False] * n, dtype=torch.bool),
        "image_id": torch.tensor(0),
    }
    if masks:
        gt["masks"] = torch.from_numpy(np.stack([box_mask(b) for b in boxes]) if n else np.zeros((0, SIZE, SIZE), np.uint8))
    if symmetries is not None:
        gt["symmetries"] = symmetries
    return gt


def make_pred(boxes, labels, scores, errors_deg=None, translations=None, model_ids=None, masks=True):
    """Numpy predictions (the torch path is covered by the ground truth and one matching test)."""
    n = len(labels)
    errors_deg = errors_deg if errors_deg is not None else [0.0] * n
    pred = {
        "boxes": np.asarray(boxes, np.float32).reshape(n, 4),
        "labels": np.asarray(labels, np.int64),
        "scores": np.asarray(scores, np.float32),
        "quaternions": np.array([q_error(e) for e in errors_deg]).reshape(n, 4),
        "translations": np.asarray(translations if translations is not None else [[0.0, 0.0, 10.0]] * n, np.float32).reshape(n, 3),
    }
    if masks:
        pred["masks"] = (np.stack([box_mask(b) for b in boxes]).astype(np.float32) * 0.9)[:, None] if n else np.zeros((0, 1, SIZE, SIZE), np.float32)
    if model_ids is not None:
        pred["model_ids"] = model_ids
    return pred


BOX_A = [0, 0, 10, 10]
BOX_B = [20, 20, 30, 36]


# --------------------------------------------------------------------------- matching
def test_box_iou_known_values():
    iou = box_iou(np.array([BOX_A]), np.array([[0, 0, 10, 5], [5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[0.5, 1.0 / 3.0, 0.0]])


def test_higher_score_wins_and_gt_matched_once():
    gt = make_gt([BOX_A], [CAR])
    pred = make_pred([BOX_A, [0, 0, 10, 9]], [CAR, CAR], [0.3, 0.9])
    assert match_detections(pred, gt) == [(1, 0)]


def test_prediction_takes_best_iou_unmatched_gt_and_torch_input():
    gt = make_gt([BOX_A, [0, 0, 10, 8]], [CAR, CAR])
    pred = {k: torch.as_tensor(v) for k, v in make_pred([[0, 0, 10, 8], BOX_A], [CAR, CAR], [0.9, 0.8]).items()}
    assert match_detections(pred, gt) == [(0, 1), (1, 0)]


def test_iou_threshold_is_inclusive():
    gt = make_gt([BOX_A], [CAR])
    assert match_detections(make_pred([[0, 0, 10, 5]], [CAR], [0.9]), gt) == [(0, 0)]  # IoU 0.5
    assert match_detections(make_pred([[0, 0, 10, 4.9]], [CAR], [0.9]), gt) == []  # IoU 0.49
    assert match_detections(make_pred([[0, 0, 10, 5]], [CAR], [0.9]), gt, iou_threshold=0.7) == []


def test_label_must_match():
    gt = make_gt([BOX_A], [CAR])
    assert match_detections(make_pred([BOX_A], [BUS], [0.9]), gt) == []


def test_empty_inputs_match_nothing():
    assert match_detections(make_pred([], [], []), make_gt([BOX_A], [CAR])) == []
    assert match_detections(make_pred([BOX_A], [CAR], [0.9]), make_gt([], [])) == []


# --------------------------------------------------------------------------- pose errors
def test_rotation_errors_known_rotations_and_symmetry():
    flipped = matrix_to_quaternion(R_GT @ rotation_about_up(np.pi))  # 180 deg about the object's up axis
    quarter = matrix_to_quaternion(R_GT @ rotation_about_up(np.pi / 2))
    spun = matrix_to_quaternion(R_GT @ rotation_about_up(np.radians(37.0)))
    q_pred = np.stack([q_error(90.0), flipped, flipped, quarter, quarter, spun])
    q_gt = np.tile(Q_GT, (6, 1))
    errors = rotation_errors_deg(q_pred, q_gt, ["none", "c2", "none", "c4", "c2", "continuous"])
    np.testing.assert_allclose(errors, [90.0, 0.0, 180.0, 0.0, 90.0, 0.0], atol=1e-5)


def test_symmetry_from_ground_truth_dict():
    gt = make_gt([BOX_A, BOX_B], [BOTTLE, BOTTLE], symmetries=["c2", "none"])
    pred = make_pred([BOX_A, BOX_B], [BOTTLE, BOTTLE], [0.9, 0.8])
    pred["quaternions"] = np.tile(matrix_to_quaternion(R_GT @ rotation_about_up(np.pi)), (2, 1))
    results = evaluate_image(pred, gt)
    assert results[0].rotation_error_deg == pytest.approx(0.0, abs=1e-5)
    assert results[1].rotation_error_deg == pytest.approx(180.0, abs=1e-5)


def test_translation_errors_metres_and_relative():
    err, rel = translation_errors(np.array([[0.0, 0.0, 10.5], [3.0, 4.0, 5.0]]), np.array([[0.0, 0.0, 10.0], [0.0, 0.0, 5.0]]))
    np.testing.assert_allclose(err, [0.5, 5.0])
    np.testing.assert_allclose(rel, [0.05, 1.0])
    with pytest.raises(ValueError, match="non-zero"):
        translation_errors(np.zeros((1, 3)), np.zeros((1, 3)))


def test_median_and_accuracy_by_hand():
    assert median_or_none([5, 20, 40, 100]) == pytest.approx(30.0)
    assert share_below([5, 20, 40, 100], 30.0) == pytest.approx(0.5)
    assert share_below([29.9, 30.0], 30.0) == pytest.approx(0.5)  # strictly below
    assert median_or_none([]) is None and share_below([], 30.0) is None


# --------------------------------------------------------------------------- evaluator: pose
FOUR_BOXES = [[0, 0, 10, 10], [12, 0, 22, 10], [24, 0, 34, 10], [0, 20, 10, 30]]


def test_undetected_ground_truth_counts_as_failure_in_detected_setting():
    ev = Evaluator()
    gt = make_gt(FOUR_BOXES, [CAR] * 4, model_ids=["a", "b", "c", "d"])
    pred = make_pred(FOUR_BOXES[:3], [CAR] * 3, [0.9, 0.8, 0.7], errors_deg=[5, 20, 40], model_ids=["a", "x", "c"])
    ev.add(pred, gt)
    car = ev.summary()["subsets"]["all"]["per_category"]["car"]
    assert car["gt_objects"] == 4 and car["matched"] == 3
    assert car["recall"] == pytest.approx(0.75)
    assert car["med_rot_err_deg"] == pytest.approx(30.0, abs=1e-4)  # [5, 20, 40, 180]
    assert car["acc_pi6"] == pytest.approx(0.5)
    assert car["med_rot_err_matched_deg"] == pytest.approx(20.0, abs=1e-4)
    assert car["top1"] == pytest.approx(0.5)  # a right, x wrong, c right, d undetected
    assert car["acc_rel_trans_10"] == pytest.approx(0.75)  # exact translations, the missed one fails


def test_gt_boxes_setting_pairs_by_index_and_has_no_recall():
    ev = Evaluator(setting="gt_boxes")
    gt = make_gt(FOUR_BOXES, [CAR] * 4)
    pred = make_pred(FOUR_BOXES, [CAR] * 4, [1.0] * 4, errors_deg=[5, 20, 40, 100])
    ev.add(pred, gt)
    summary = ev.summary()
    car = summary["subsets"]["all"]["per_category"]["car"]
    assert car["med_rot_err_deg"] == pytest.approx(30.0, abs=1e-4)
    assert car["acc_pi6"] == pytest.approx(0.5)
    assert car["recall"] is None and summary["detection"] is None
    with pytest.raises(ValueError, match="gt_boxes"):
        ev.add(make_pred(FOUR_BOXES[:3], [CAR] * 3, [1.0] * 3), gt)


def test_translation_metrics():
    ev = Evaluator(setting="gt_boxes")
    t_gt = [[0.0, 0.0, 10.0]] * 3
    t_pred = [[0.0, 0.0, 10.5], [0.0, 0.0, 11.0], [0.0, 0.0, 12.0]]  # 0.5 m / 5 %, 1 m / 10 %, 2 m / 20 %
    ev.add(make_pred(FOUR_BOXES[:3], [CAR] * 3, [1.0] * 3, translations=t_pred), make_gt(FOUR_BOXES[:3], [CAR] * 3, translations=t_gt))
    car = ev.summary()["subsets"]["all"]["per_category"]["car"]
    assert car["med_trans_err_m"] == pytest.approx(1.0, abs=1e-5)
    assert car["med_rel_trans_err"] == pytest.approx(0.1, abs=1e-6)
    assert car["acc_rel_trans_10"] == pytest.approx(1.0 / 3.0)


def test_clean_subset_excludes_occluded_and_truncated():
    ev = Evaluator(setting="gt_boxes")
    gt = make_gt(FOUR_BOXES, [CAR] * 4, occluded=[False, True, False, False], truncated=[False, False, True, False])
    ev.add(make_pred(FOUR_BOXES, [CAR] * 4, [1.0] * 4, errors_deg=[10, 50, 60, 20]), gt)
    subsets = ev.summary()["subsets"]
    assert subsets["all"]["gt_objects"] == 4 and subsets["clean"]["gt_objects"] == 2
    assert subsets["all"]["per_category"]["car"]["acc_pi6"] == pytest.approx(0.5)
    assert subsets["clean"]["per_category"]["car"]["acc_pi6"] == pytest.approx(1.0)
    assert subsets["clean"]["per_category"]["car"]["med_rot_err_deg"] == pytest.approx(15.0, abs=1e-4)


def test_categories_without_ground_truth_are_excluded_from_the_mean():
    ev = Evaluator()
    gt = make_gt([BOX_A, BOX_B], [CAR, BOTTLE])
    ev.add(make_pred([BOX_A, BOX_B, [0, 20, 10, 30]], [CAR, BOTTLE, BUS], [0.9, 0.8, 0.7], errors_deg=[10, 40, 0]), gt)
    summary = ev.summary()
    all_ = summary["subsets"]["all"]
    assert all_["per_category"]["bus"]["med_rot_err_deg"] is None
    assert all_["mean"]["med_rot_err_deg"] == pytest.approx(25.0, abs=1e-4)  # mean of car 10 and bottle 40
    assert all_["mean"]["acc_pi6"] == pytest.approx(0.5)
    det = summary["detection"]
    assert det["per_category"]["bus"]["box_ap"] is None  # a false positive, but no ground truth
    assert det["mean"]["box_ap"] == pytest.approx(1.0)


def test_pair_predictions_pairs_as_the_evaluator_does():
    gt = make_gt(FOUR_BOXES, [CAR] * 4)
    pred = make_pred([FOUR_BOXES[2], FOUR_BOXES[0], [50, 50, 60, 60]], [CAR] * 3, [0.5, 0.9, 0.8])
    assert pair_predictions(pred, gt, "detected") == match_detections(pred, gt) == [(1, 0), (0, 2)]
    assert pair_predictions(make_pred(FOUR_BOXES, [BUS] * 4, [0.1] * 4), gt, "gt_boxes") == [(i, i) for i in range(4)]
    with pytest.raises(ValueError, match="gt_boxes setting pairs"):
        pair_predictions(pred, gt, "gt_boxes")
    with pytest.raises(ValueError, match="unknown setting"):
        pair_predictions(pred, gt, "both")
    assert mean_defined([None, 0.5, 1.0]) == pytest.approx(0.75) and mean_defined([None]) is None


def test_no_retrieved_model_counts_as_wrong():
    ev = Evaluator(setting="gt_boxes")  # None: the retrieval fell back to a cuboid
    ev.add(make_pred(FOUR_BOXES[:2], [CAR] * 2, [1.0] * 2, model_ids=[None, "m1"]), make_gt(FOUR_BOXES[:2], [CAR] * 2))
    assert ev.summary()["subsets"]["all"]["per_category"]["car"]["top1"] == pytest.approx(0.5)


def test_no_retrieval_predictions_means_top1_na():
    ev = Evaluator()
    ev.add(make_pred([BOX_A], [CAR], [0.9]), make_gt([BOX_A], [CAR]))
    assert ev.summary()["subsets"]["all"]["mean"]["top1"] is None


# --------------------------------------------------------------------------- AP
def test_perfect_predictions_give_box_and_mask_ap_one():
    ev = Evaluator()
    ev.add(make_pred([BOX_A, BOX_B], [CAR, BUS], [0.9, 0.8]), make_gt([BOX_A, BOX_B], [CAR, BUS]))
    ev.add(make_pred([BOX_B], [CAR], [0.7]), make_gt([BOX_B], [CAR]))
    det = ev.summary()["detection"]
    for metric in ("box_ap", "box_ap50", "box_ap75", "mask_ap", "mask_ap50", "mask_ap75"):
        assert det["mean"][metric] == pytest.approx(1.0), metric
        assert det["per_category"]["car"][metric] == pytest.approx(1.0), metric
    assert det["per_category"]["aeroplane"]["box_ap"] is None


def test_mask_probabilities_count_from_the_mask_threshold():
    pred = make_pred([BOX_A], [CAR], [0.9])
    pred["masks"] = pred["masks"] / 0.9 * 0.4  # probability 0.4 on the object, 0 elsewhere
    scores = {}
    for threshold in (0.35, 0.5):
        ev = Evaluator(mask_threshold=threshold)
        ev.add(pred, make_gt([BOX_A], [CAR]))
        scores[threshold] = ev.summary()["detection"]["per_category"]["car"]["mask_ap50"]
    assert scores == {0.35: pytest.approx(1.0), 0.5: pytest.approx(0.0)}
    assert Evaluator().mask_threshold == MASK_THRESHOLD
    binary = make_pred([BOX_A], [CAR], [0.9])
    binary["masks"] = (binary["masks"] > 0).astype(np.uint8)  # {0, 1} masks are used as they are
    ev = Evaluator(mask_threshold=0.9)
    ev.add(binary, make_gt([BOX_A], [CAR]))
    assert ev.summary()["detection"]["per_category"]["car"]["mask_ap50"] == pytest.approx(1.0)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="mask_threshold"):
            Evaluator(mask_threshold=bad)


def test_shifted_box_keeps_ap50_but_loses_ap75():
    ev = Evaluator()
    shifted = [2, 0, 12, 10]  # IoU 8/12 = 0.667: a match at IoU 0.50, 0.55, 0.60, 0.65 of the ten thresholds
    ev.add(make_pred([shifted], [CAR], [0.9]), make_gt([BOX_A], [CAR]))
    car = ev.summary()["detection"]["per_category"]["car"]
    assert car["box_ap50"] == pytest.approx(1.0)
    assert car["box_ap75"] == pytest.approx(0.0)
    assert car["box_ap"] == pytest.approx(0.4)


def test_false_positive_with_higher_score_lowers_ap():
    gt = make_gt([BOX_A], [CAR])
    low = Evaluator()
    low.add(make_pred([BOX_A, BOX_B], [CAR, CAR], [0.9, 0.5]), gt)
    high = Evaluator()
    high.add(make_pred([BOX_A, BOX_B], [CAR, CAR], [0.5, 0.9]), gt)
    assert low.summary()["detection"]["per_category"]["car"]["box_ap50"] == pytest.approx(1.0)
    assert high.summary()["detection"]["per_category"]["car"]["box_ap50"] == pytest.approx(0.5)  # precision 1/2 at recall 1
    assert high.summary()["detection"]["per_category"]["car"]["mask_ap50"] == pytest.approx(0.5)


def test_images_without_predictions_or_ground_truth():
    ev = Evaluator()
    ev.add(make_pred([], [], []), make_gt([], []))
    ev.add(make_pred([BOX_A], [CAR], [0.9]), make_gt([], []))  # a false positive only
    ev.add(make_pred([], [], []), make_gt([BOX_A], [CAR]))  # a miss only
    summary = ev.summary()
    car = summary["subsets"]["all"]["per_category"]["car"]
    assert car["recall"] == 0.0 and car["med_rot_err_deg"] == pytest.approx(180.0)
    assert summary["detection"]["per_category"]["car"]["box_ap"] == pytest.approx(0.0)
    assert Evaluator().summary()["detection"]["mean"]["box_ap"] is None  # nothing added at all


def test_pascal3d_like_ground_truth_without_masks_or_translations():
    ev = Evaluator()
    gt = make_gt([BOX_A], [CAR], masks=False)
    del gt["translations"]
    ev.add(make_pred([BOX_A], [CAR], [0.9]), gt)
    summary = ev.summary()
    car = summary["subsets"]["all"]["per_category"]["car"]
    assert car["med_trans_err_m"] is None and car["acc_rel_trans_10"] is None
    assert summary["detection"]["mean"]["mask_ap"] is None and summary["detection"]["mean"]["box_ap"] == pytest.approx(1.0)
    assert "Mask AP n/a" in to_markdown(summary, "p3d")


def test_labels_out_of_range_are_rejected():
    with pytest.raises(ValueError, match="1..12"):
        Evaluator().add(make_pred([BOX_A], [0], [0.9]), make_gt([BOX_A], [CAR]))


# --------------------------------------------------------------------------- reports
def test_markdown_and_json_round_trip(tmp_path, capsys):
    ev = Evaluator()
    ev.add(make_pred([BOX_A], [CAR], [0.9], errors_deg=[12.0], model_ids=["m0"]), make_gt([BOX_A], [CAR], occluded=[True]))
    summary = ev.summary()
    assert capsys.readouterr().out == ""  # pycocotools' prints are swallowed
    text = to_markdown(summary, "Synthetic val")
    assert text.startswith("# Synthetic val")
    for name in CATEGORIES:
        assert name in text
    assert "| mean |" in text and "n/a" in text and "12.0" in text
    assert "Non-occluded" in text and "Box AP" in text
    md_path, json_path = write_report(summary, tmp_path / "reports", "val")
    assert json.loads(json_path.read_text()) == summary
    assert md_path.read_text() == to_markdown(summary, "val")
