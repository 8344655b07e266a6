"""Pascal3D+-style evaluation: detection matching, pose errors, box/mask AP, retrieval Top-1, reports.

Inputs are per-image dicts in torchvision style (torch tensors or numpy arrays):

* prediction: ``boxes`` (N, 4) x0 y0 x1 y1 pixels, ``labels`` (N,) 1-based ``CATEGORIES`` index,
  ``scores`` (N,), ``masks`` (N, 1, H, W) probabilities (optional), ``quaternions`` (N, 4) (w, x, y, z)
  object -> optical camera, ``translations`` (N, 3) metres (optical frame), ``model_ids`` list[str | None]
  (optional, the retrieved CAD models; None = none, e.g. a cuboid fallback).
* ground truth: ``boxes``, ``labels``, ``masks`` (N, H, W) uint8 (optional), ``quaternions``,
  ``translations`` (optional: Pascal3D+ has none), ``model_ids``, ``occluded``/``truncated`` (N,) bool
  (absent = False), ``symmetries`` list[str] (absent = all ``"none"``).

Two settings (the Pascal3D+ protocol):

* ``"detected"``: predictions come from the detector. Each image's predictions are matched greedily to
  the ground truth (:func:`match_detections`, box IoU >= 0.5, same label). A ground-truth object that
  no prediction matches is a **failure**: rotation error 180 deg (it enters MedErr and Acc_pi/6), its
  retrieval is wrong and it fails Acc at 10 % relative translation. Translation medians use matched
  objects only (a missed object has no finite worst translation error); "MedErr matched" is the
  rotation median over matched objects only.
* ``"gt_boxes"``: the network was run on the ground-truth boxes, so prediction ``i`` belongs to
  ground-truth object ``i`` (the counts must be equal) and every object has a prediction. Box/mask AP
  and recall are not computed (they would be trivially perfect).

Top-1 retrieval: the share of ground-truth objects (with a model id) whose paired prediction's
retrieved model id equals the ground-truth CAD model id; the pose-prior / no-prior / seen / unseen
variants of it are :mod:`scene3d_ros.retrieval.evaluation`.

Every rotation error is :func:`scene3d_ros.geometry.symmetric_rotation_error_deg`. The ``"clean"``
subset keeps objects that are neither occluded nor truncated. Box and mask AP (COCO definition via
pycocotools: AP averaged over IoU 0.50:0.95, AP50, AP75, all areas, at most 100 detections per image)
are computed over all objects only: a false positive cannot be assigned to a subset.
Means are means over the categories where the metric is defined (categories without ground truth
are "n/a" and excluded).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scene3d_ros import CATEGORIES, MASK_THRESHOLD
from scene3d_ros.geometry import SYMMETRIES, quaternion_to_matrix, symmetric_rotation_error_deg
from scene3d_ros.paths import atomic_write_text

SETTINGS = ("detected", "gt_boxes")
SUBSETS = ("all", "clean")
ACC_ROTATION_THRESHOLD_DEG = 30.0
"""Acc_pi/6: a rotation error strictly below pi/6 = 30 degrees is a success."""
ACC_RELATIVE_TRANSLATION_THRESHOLD = 0.10
"""Acc at 10 %: ||t - t_gt|| / ||t_gt|| strictly below 0.10 is a success."""
UNDETECTED_ROTATION_ERROR_DEG = 180.0
"""Rotation error given to a ground-truth object that no detection matched (detected setting)."""

FLIP_THRESHOLD_DEG = 150.0
"""A rotation error above this is a flip (front/back, upside down) rather than an imprecise rotation."""

POSE_METRICS = (
    "recall",
    "med_rot_err_deg",
    "acc_pi6",
    "med_rot_err_matched_deg",
    "flip_share",
    "med_trans_err_m",
    "med_rel_trans_err",
    "acc_rel_trans_10",
    "top1",
)
DETECTION_METRICS = ("box_ap", "box_ap50", "box_ap75", "mask_ap", "mask_ap50", "mask_ap75")


# --------------------------------------------------------------------------- input conversion
def _to_numpy(value: Any) -> np.ndarray:
    """numpy view of a torch tensor (any device) or array-like."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


@dataclass(frozen=True)
class _Objects:
    """One image's predictions or ground truth as numpy arrays (None = key absent)."""

    labels: np.ndarray  # (N,) int64
    boxes: np.ndarray | None  # (N, 4) float64 pixels
    scores: np.ndarray | None  # (N,) float64
    masks: np.ndarray | None  # (N, H, W) bool
    quaternions: np.ndarray | None  # (N, 4) float64 (w, x, y, z)
    translations: np.ndarray | None  # (N, 3) float64 metres
    model_ids: list[str | None] | None
    occluded: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool
    symmetries: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _convert(objects: Mapping[str, Any], what: str, mask_threshold: float = MASK_THRESHOLD) -> _Objects:
    """Convert a prediction or ground-truth dict once; checks shapes and names the bad key.
    Mask probabilities count as the object's at ``mask_threshold`` and above (bool and {0, 1} masks unchanged
    for any threshold in (0, 1])."""
    if "labels" not in objects:
        raise ValueError(f"{what} needs 'labels', got keys {sorted(objects)}")
    labels = _to_numpy(objects["labels"]).astype(np.int64).reshape(-1)
    n = labels.shape[0]

    def array(key: str, width: int | None, dtype: type) -> np.ndarray | None:
        if key not in objects or objects[key] is None:
            return None
        value = _to_numpy(objects[key]).astype(dtype)
        shape = (n,) if width is None else (n, width)
        if value.size == 0 and n == 0:
            return value.reshape(shape)
        if value.shape != shape:
            raise ValueError(f"{what}['{key}'] must have shape {shape} for {n} objects, got {value.shape}")
        return value

    masks = None
    if objects.get("masks") is not None:
        raw = _to_numpy(objects["masks"])
        if raw.ndim == 4 and raw.shape[1] == 1:  # (N, 1, H, W) mask-head output
            raw = raw[:, 0]
        if raw.ndim != 3 or raw.shape[0] != n:
            raise ValueError(f"{what}['masks'] must be (N, H, W) or (N, 1, H, W) for {n} objects, got {raw.shape}")
        masks = raw >= mask_threshold if raw.dtype.kind == "f" else raw.astype(bool)

    model_ids = None
    if objects.get("model_ids") is not None:  # None entries: no model (e.g. a retrieval's cuboid fallback)
        model_ids = [None if m is None else str(m) for m in objects["model_ids"]]
        if len(model_ids) != n:
            raise ValueError(f"{what}['model_ids'] has {len(model_ids)} entries for {n} objects")

    symmetries = [str(s) for s in objects["symmetries"]] if objects.get("symmetries") is not None else ["none"] * n
    if len(symmetries) != n:
        raise ValueError(f"{what}['symmetries'] has {len(symmetries)} entries for {n} objects")
    for s in symmetries:
        if s not in SYMMETRIES:
            raise ValueError(f"{what}['symmetries'] contains {s!r}, expected one of {SYMMETRIES}")

    occluded = array("occluded", None, bool)
    truncated = array("truncated", None, bool)
    return _Objects(
        labels=labels,
        boxes=array("boxes", 4, np.float64),
        scores=array("scores", None, np.float64),
        masks=masks,
        quaternions=array("quaternions", 4, np.float64),
        translations=array("translations", 3, np.float64),
        model_ids=model_ids,
        occluded=np.zeros(n, bool) if occluded is None else occluded,
        truncated=np.zeros(n, bool) if truncated is None else truncated,
        symmetries=symmetries,
    )


def _check_labels(objects: _Objects, num_categories: int, what: str) -> None:
    bad = objects.labels[(objects.labels < 1) | (objects.labels > num_categories)]
    if bad.size:
        raise ValueError(f"{what} labels must be 1-based category indices in 1..{num_categories}, got {bad.tolist()}")


# --------------------------------------------------------------------------- matching
def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``(A, B)`` of x0 y0 x1 y1 boxes (pixel edges, area = width * height)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = width * height
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _greedy_match(pred: _Objects, gt: _Objects, iou_threshold: float) -> list[tuple[int, int]]:
    if pred.boxes is None or pred.scores is None:
        raise ValueError("predictions need 'boxes' and 'scores' for matching to the ground truth")
    if len(gt) and gt.boxes is None:
        raise ValueError("ground truth needs 'boxes' for matching")
    if len(pred) == 0 or len(gt) == 0:
        return []
    iou = box_iou(pred.boxes, gt.boxes)
    taken = np.zeros(len(gt), dtype=bool)
    matches: list[tuple[int, int]] = []
    for i in np.argsort(-pred.scores, kind="stable"):
        candidates = (gt.labels == pred.labels[i]) & ~taken & (iou[i] >= iou_threshold)
        if not candidates.any():
            continue
        j = int(np.argmax(np.where(candidates, iou[i], -1.0)))
        taken[j] = True
        matches.append((int(i), j))
    return matches


def match_detections(pred: Mapping[str, Any], gt: Mapping[str, Any], iou_threshold: float = 0.5) -> list[tuple[int, int]]:
    """Pascal VOC-style greedy matching of one image's predictions to its ground truth.

    Predictions are visited by descending score (ties: lower index first); each takes the unmatched
    ground-truth object of the **same label** with the highest box IoU, provided IoU >= ``iou_threshold``.
    Every ground-truth object is matched at most once. Returns ``(pred_index, gt_index)`` pairs in
    the order they were made.
    """
    return _greedy_match(_convert(pred, "prediction"), _convert(gt, "ground truth"), iou_threshold)


# --------------------------------------------------------------------------- pose errors
def rotation_errors_deg(q_pred: np.ndarray, q_gt: np.ndarray, symmetries: Sequence[str] | None = None) -> np.ndarray:
    """Symmetry-aware rotation errors (degrees, [0, 180]) of paired (w, x, y, z) quaternions ``(N, 4)``.

    ``symmetries`` (one per pair, default all ``"none"``) is the ground-truth object's symmetry.
    """
    q_pred = np.asarray(_to_numpy(q_pred), dtype=np.float64).reshape(-1, 4)
    q_gt = np.asarray(_to_numpy(q_gt), dtype=np.float64).reshape(-1, 4)
    if q_pred.shape != q_gt.shape:
        raise ValueError(f"quaternion arrays must pair up, got {q_pred.shape} and {q_gt.shape}")
    symmetries = ["none"] * len(q_gt) if symmetries is None else list(symmetries)
    if len(symmetries) != len(q_gt):
        raise ValueError(f"got {len(symmetries)} symmetries for {len(q_gt)} quaternion pairs")
    errors = np.zeros(len(q_gt))
    if len(q_gt) == 0:
        return errors
    r_pred, r_gt = quaternion_to_matrix(q_pred), quaternion_to_matrix(q_gt)
    for symmetry in set(symmetries):
        idx = np.array([s == symmetry for s in symmetries])
        errors[idx] = symmetric_rotation_error_deg(r_pred[idx], r_gt[idx], symmetry)
    return errors


def translation_errors(t_pred: np.ndarray, t_gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paired translation errors: ``||t - t_gt||`` in metres and ``||t - t_gt|| / ||t_gt||`` (unitless)."""
    t_pred = np.asarray(_to_numpy(t_pred), dtype=np.float64).reshape(-1, 3)
    t_gt = np.asarray(_to_numpy(t_gt), dtype=np.float64).reshape(-1, 3)
    if t_pred.shape != t_gt.shape:
        raise ValueError(f"translation arrays must pair up, got {t_pred.shape} and {t_gt.shape}")
    distance = np.linalg.norm(t_gt, axis=1)
    if np.any(distance <= 0):
        raise ValueError(f"ground-truth translations must be non-zero (metres), got {t_gt[distance <= 0].tolist()}")
    error = np.linalg.norm(t_pred - t_gt, axis=1)
    return error, error / distance


def median_or_none(values: Sequence[float] | np.ndarray) -> float | None:
    """Median of ``values``, or None when there are none."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.median(values)) if values.size else None


def share_below(values: Sequence[float] | np.ndarray, threshold: float) -> float | None:
    """Share of ``values`` strictly below ``threshold`` (e.g. Acc_pi/6 with 30 deg), or None when empty."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.mean(values < threshold)) if values.size else None


@dataclass(frozen=True)
class ObjectResult:
    """The outcome for one ground-truth object.

    ``rotation_error_deg`` and the translation errors are None when no prediction was paired with the
    object (the summary then counts it as a failure, see the module doc) or the values are missing.
    """

    label: int
    clean: bool
    matched: bool
    rotation_error_deg: float | None
    translation_error_m: float | None
    relative_translation_error: float | None
    has_gt_translation: bool
    gt_model_id: str | None
    predicted_model_id: str | None


def _pair(pred: _Objects, gt: _Objects, setting: str, iou_threshold: float) -> list[tuple[int, int]]:
    if setting == "detected":
        return _greedy_match(pred, gt, iou_threshold)
    if setting == "gt_boxes":
        if len(pred) != len(gt):
            raise ValueError(
                f"gt_boxes setting pairs prediction i with ground-truth object i, got {len(pred)} predictions "
                f"for {len(gt)} ground-truth objects"
            )
        return [(i, i) for i in range(len(gt))]
    raise ValueError(f"unknown setting {setting!r}, expected one of {SETTINGS}")


def pair_predictions(pred: Mapping[str, Any], gt: Mapping[str, Any], setting: str = "detected",
                     iou_threshold: float = 0.5) -> list[tuple[int, int]]:
    """``(pred_index, gt_index)`` pairs of one image exactly as the :class:`Evaluator` makes them:
    :func:`match_detections` in the ``"detected"`` setting, ``(i, i)`` for every object in the
    ``"gt_boxes"`` setting (the counts must be equal). Reads only ``labels``, ``boxes``, ``scores``."""
    p = _convert({k: pred[k] for k in ("labels", "boxes", "scores") if k in pred}, "prediction")
    g = _convert({k: gt[k] for k in ("labels", "boxes") if k in gt}, "ground truth")
    return _pair(p, g, setting, iou_threshold)


def _object_results(pred: _Objects, gt: _Objects, pairs: list[tuple[int, int]]) -> list[ObjectResult]:
    if len(gt) and gt.quaternions is None:
        raise ValueError("ground truth needs 'quaternions'")
    if pairs and pred.quaternions is None:
        raise ValueError("predictions need 'quaternions'")
    pred_of_gt = {j: i for i, j in pairs}
    p_idx = np.array([i for i, _ in pairs], dtype=np.int64)
    g_idx = np.array([j for _, j in pairs], dtype=np.int64)
    rotation: dict[int, float] = {}
    translation: dict[int, tuple[float, float]] = {}
    if pairs:
        errs = rotation_errors_deg(pred.quaternions[p_idx], gt.quaternions[g_idx], [gt.symmetries[j] for j in g_idx])
        rotation = {int(j): float(e) for j, e in zip(g_idx, errs, strict=True)}
        if pred.translations is not None and gt.translations is not None:
            abs_err, rel_err = translation_errors(pred.translations[p_idx], gt.translations[g_idx])
            translation = {int(j): (float(a), float(r)) for j, a, r in zip(g_idx, abs_err, rel_err, strict=True)}
    results = []
    for j in range(len(gt)):
        i = pred_of_gt.get(j)
        t_err = translation.get(j)
        results.append(
            ObjectResult(
                label=int(gt.labels[j]),
                clean=not (bool(gt.occluded[j]) or bool(gt.truncated[j])),
                matched=i is not None,
                rotation_error_deg=rotation.get(j),
                translation_error_m=None if t_err is None else t_err[0],
                relative_translation_error=None if t_err is None else t_err[1],
                has_gt_translation=gt.translations is not None,
                gt_model_id=gt.model_ids[j] if gt.model_ids is not None else None,
                predicted_model_id=pred.model_ids[i] if (i is not None and pred.model_ids is not None) else None,
            )
        )
    return results


def evaluate_image(
    pred: Mapping[str, Any], gt: Mapping[str, Any], setting: str = "detected", iou_threshold: float = 0.5
) -> list[ObjectResult]:
    """Per ground-truth object outcome of one image (see the module doc for the two settings)."""
    p, g = _convert(pred, "prediction"), _convert(gt, "ground truth")
    return _object_results(p, g, _pair(p, g, setting, iou_threshold))


def pose_metrics(objects: Sequence[ObjectResult], setting: str = "detected", with_retrieval: bool = True) -> dict[str, float | None]:
    """Pose and retrieval metrics over ``objects`` (one category and subset); None = undefined.

    ``recall`` (detected setting only), ``med_rot_err_deg`` and ``acc_pi6`` over all objects with
    missed ones at 180 deg, ``med_rot_err_matched_deg`` and ``flip_share`` (errors above
    :data:`FLIP_THRESHOLD_DEG`) over matched objects, ``med_trans_err_m``
    (metres) and ``med_rel_trans_err`` over matched objects with translations, ``acc_rel_trans_10``
    over objects with ground-truth translation (missed ones fail), ``top1`` over objects with a
    ground-truth model id (missed ones and missing predicted ids are wrong; None unless
    ``with_retrieval``).
    """
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}, expected one of {SETTINGS}")
    matched_rot = [o.rotation_error_deg for o in objects if o.rotation_error_deg is not None]
    all_rot = [UNDETECTED_ROTATION_ERROR_DEG if o.rotation_error_deg is None else o.rotation_error_deg for o in objects]
    trans = [o.translation_error_m for o in objects if o.translation_error_m is not None]
    rel = [o.relative_translation_error for o in objects if o.relative_translation_error is not None]
    rel_all = [
        math.inf if o.relative_translation_error is None else o.relative_translation_error
        for o in objects
        if o.has_gt_translation
    ]
    top1 = None
    if with_retrieval:
        retrievable = [o for o in objects if o.gt_model_id]
        if retrievable:
            top1 = float(np.mean([o.predicted_model_id == o.gt_model_id for o in retrievable]))
    return {
        "recall": float(np.mean([o.matched for o in objects])) if (objects and setting == "detected") else None,
        "med_rot_err_deg": median_or_none(all_rot),
        "acc_pi6": share_below(all_rot, ACC_ROTATION_THRESHOLD_DEG),
        "med_rot_err_matched_deg": median_or_none(matched_rot),
        "flip_share": None if not matched_rot else float(np.mean(np.asarray(matched_rot) > FLIP_THRESHOLD_DEG)),
        "med_trans_err_m": median_or_none(trans),
        "med_rel_trans_err": median_or_none(rel),
        "acc_rel_trans_10": share_below(rel_all, ACC_RELATIVE_TRANSLATION_THRESHOLD),
        "top1": top1,
    }


def mean_defined(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None (a metric's mean over the categories where it is
    defined), or None when none is."""
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


# --------------------------------------------------------------------------- COCO AP
@dataclass(frozen=True)
class _CocoImage:
    """What AP needs from one image: boxes as COCO xywh, RLE masks (None when unavailable)."""

    height: int
    width: int
    gt_labels: np.ndarray
    gt_boxes: np.ndarray
    gt_rles: list[dict] | None
    dt_labels: np.ndarray
    dt_boxes: np.ndarray
    dt_scores: np.ndarray
    dt_rles: list[dict] | None


def _encode_masks(masks: np.ndarray) -> list[dict]:
    """pycocotools RLEs of binary masks ``(N, H, W)``."""
    from pycocotools import mask as mask_util

    if masks.shape[0] == 0:
        return []
    return mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))


def _xywh(boxes: np.ndarray | None) -> np.ndarray:
    if boxes is None or boxes.size == 0:
        return np.zeros((0, 4))
    return np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)


def _coco_image(pred: _Objects, gt: _Objects) -> tuple[_CocoImage, bool]:
    """COCO view of one image and whether it has every mask that mask AP needs."""
    shapes = {m.shape[1:] for m in (pred.masks, gt.masks) if m is not None}
    if len(shapes) > 1:
        raise ValueError(f"prediction and ground-truth masks differ in image size (H, W): {sorted(shapes)}")
    height, width = shapes.pop() if shapes else (0, 0)
    masks_ok = (len(gt) == 0 or gt.masks is not None) and (len(pred) == 0 or pred.masks is not None)
    image = _CocoImage(
        height=int(height),
        width=int(width),
        gt_labels=gt.labels,
        gt_boxes=_xywh(gt.boxes),
        gt_rles=_encode_masks(gt.masks) if (masks_ok and gt.masks is not None) else ([] if masks_ok else None),
        dt_labels=pred.labels,
        dt_boxes=_xywh(pred.boxes),
        dt_scores=pred.scores if pred.scores is not None else np.zeros(0),
        dt_rles=_encode_masks(pred.masks) if (masks_ok and pred.masks is not None) else ([] if masks_ok else None),
    )
    return image, masks_ok


def _coco_datasets(images: Sequence[_CocoImage], num_categories: int, iou_type: str) -> tuple[dict, dict]:
    """In-memory COCO ground-truth and detection datasets (fresh dicts: COCOeval edits them)."""
    from pycocotools import mask as mask_util

    coco_images = [{"id": k + 1, "height": im.height, "width": im.width} for k, im in enumerate(images)]
    categories = [{"id": c, "name": str(c)} for c in range(1, num_categories + 1)]
    gts: list[dict] = []
    dts: list[dict] = []
    for k, im in enumerate(images):
        for n in range(len(im.gt_labels)):
            ann = {"id": len(gts) + 1, "image_id": k + 1, "category_id": int(im.gt_labels[n]), "iscrowd": 0,
                   "bbox": [float(v) for v in im.gt_boxes[n]], "area": float(im.gt_boxes[n, 2] * im.gt_boxes[n, 3])}
            if iou_type == "segm":
                ann["segmentation"] = im.gt_rles[n]
                ann["area"] = float(mask_util.area(im.gt_rles[n]))
            gts.append(ann)
        for n in range(len(im.dt_labels)):
            ann = {"id": len(dts) + 1, "image_id": k + 1, "category_id": int(im.dt_labels[n]), "iscrowd": 0,
                   "score": float(im.dt_scores[n]), "bbox": [float(v) for v in im.dt_boxes[n]],
                   "area": float(im.dt_boxes[n, 2] * im.dt_boxes[n, 3])}
            if iou_type == "segm":
                ann["segmentation"] = im.dt_rles[n]
                ann["area"] = float(mask_util.area(im.dt_rles[n]))
            dts.append(ann)
    gt_dataset = {"images": coco_images, "categories": categories, "annotations": gts}
    dt_dataset = {"images": [dict(i) for i in coco_images], "categories": [dict(c) for c in categories], "annotations": dts}
    return gt_dataset, dt_dataset


def coco_average_precision(images: Sequence[_CocoImage], num_categories: int, iou_type: str) -> dict[int, dict[str, float]]:
    """COCO AP, AP50, AP75 per 1-based category id with ground truth (pycocotools, no output printed).

    ``iou_type`` is ``"bbox"`` or ``"segm"``. Categories without ground truth are left out.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_dataset, dt_dataset = _coco_datasets(images, num_categories, iou_type)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt, coco_dt = COCO(), COCO()
        coco_gt.dataset, coco_dt.dataset = gt_dataset, dt_dataset
        coco_gt.createIndex()
        coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType=iou_type)
        evaluator.params.imgIds = [im["id"] for im in gt_dataset["images"]]
        evaluator.params.catIds = list(range(1, num_categories + 1))
        evaluator.params.areaRng = [[0.0, 1e10]]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.params.maxDets = [100]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"]  # (IoU thresholds, recall thresholds, categories, 1, 1); -1 = no GT
    iou_thresholds = evaluator.params.iouThrs
    at50 = int(np.argmin(np.abs(iou_thresholds - 0.5)))
    at75 = int(np.argmin(np.abs(iou_thresholds - 0.75)))
    with_gt = {int(ann["category_id"]) for ann in gt_dataset["annotations"]}
    result: dict[int, dict[str, float]] = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        if category_id not in with_gt:
            continue
        p = precision[:, :, k, 0, 0]
        result[category_id] = {"ap": float(p.mean()), "ap50": float(p[at50].mean()), "ap75": float(p[at75].mean())}
    return result


# --------------------------------------------------------------------------- accumulator
class Evaluator:
    """Accumulates per-image predictions and ground truth; :meth:`summary` gives the metrics.

    ``setting`` is ``"detected"`` (detector output, matched at ``iou_threshold``) or ``"gt_boxes"``
    (prediction i was made for ground-truth box i). Predicted mask probabilities are binarised at
    ``mask_threshold``; masks are stored as RLEs, not as arrays.
    """

    def __init__(self, categories: Sequence[str] = CATEGORIES, setting: str = "detected", iou_threshold: float = 0.5,
                 mask_threshold: float = MASK_THRESHOLD):
        if setting not in SETTINGS:
            raise ValueError(f"unknown setting {setting!r}, expected one of {SETTINGS}")
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if not 0.0 < mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be in (0, 1), got {mask_threshold}")
        self.mask_threshold = float(mask_threshold)
        self.categories = tuple(categories)
        self.setting = setting
        self.iou_threshold = float(iou_threshold)
        self.objects: list[ObjectResult] = []
        self._coco_images: list[_CocoImage] = []
        self._masks_complete = True
        self._with_retrieval = False
        self.num_images = 0

    def add(self, pred: Mapping[str, Any], gt: Mapping[str, Any]) -> list[ObjectResult]:
        """Add one image; returns its per ground-truth object results."""
        p, g = _convert(pred, "prediction", self.mask_threshold), _convert(gt, "ground truth")
        _check_labels(p, len(self.categories), "prediction")
        _check_labels(g, len(self.categories), "ground truth")
        results = _object_results(p, g, _pair(p, g, self.setting, self.iou_threshold))
        if self.setting == "detected":
            image, masks_ok = _coco_image(p, g)
            self._masks_complete &= masks_ok
            self._coco_images.append(image)
        self._with_retrieval |= p.model_ids is not None
        self.objects.extend(results)
        self.num_images += 1
        return results

    def _detection_summary(self) -> dict[str, Any]:
        per_category = {name: dict.fromkeys(DETECTION_METRICS) for name in self.categories}
        iou_types = [("box", "bbox")] + ([("mask", "segm")] if self._masks_complete else [])
        for prefix, iou_type in iou_types:
            ap = coco_average_precision(self._coco_images, len(self.categories), iou_type)
            for category_id, values in ap.items():
                row = per_category[self.categories[category_id - 1]]
                row[f"{prefix}_ap"], row[f"{prefix}_ap50"], row[f"{prefix}_ap75"] = values["ap"], values["ap50"], values["ap75"]
        mean = {m: mean_defined([per_category[c][m] for c in self.categories]) for m in DETECTION_METRICS}
        return {"per_category": per_category, "mean": mean, "mask_ap_available": self._masks_complete}

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable metrics: per subset, per category and mean (None = "n/a"), plus counts."""
        subsets: dict[str, Any] = {}
        for subset in SUBSETS:
            chosen = [o for o in self.objects if subset == "all" or o.clean]
            per_category: dict[str, dict[str, Any]] = {}
            for k, name in enumerate(self.categories, start=1):
                objs = [o for o in chosen if o.label == k]
                row: dict[str, Any] = {"gt_objects": len(objs), "matched": sum(o.matched for o in objs)}
                row.update(pose_metrics(objs, self.setting, self._with_retrieval) if objs else dict.fromkeys(POSE_METRICS))
                per_category[name] = row
            subsets[subset] = {
                "per_category": per_category,
                "mean": {m: mean_defined([per_category[c][m] for c in self.categories]) for m in POSE_METRICS},
                "pooled": (pose_metrics(chosen, self.setting, self._with_retrieval) if chosen
                           else dict.fromkeys(POSE_METRICS)),
                "gt_objects": len(chosen),
                "matched": sum(o.matched for o in chosen),
            }
        return {
            "setting": self.setting,
            "iou_threshold": self.iou_threshold,
            "categories": list(self.categories),
            "num_images": self.num_images,
            "undetected_rule": _undetected_rule(self.setting),
            "subsets": subsets,
            "detection": self._detection_summary() if self.setting == "detected" else None,
        }


def _undetected_rule(setting: str) -> str:
    if setting == "gt_boxes":
        return "Prediction i was made for ground-truth box i, so every ground-truth object has a prediction"
    return (
        "A ground-truth object without a matching detection (IoU >= threshold, same label) "
        "counts as a failure: rotation error 180 deg in MedErr and Acc_pi/6, wrong retrieval in Top-1, "
        "failed Acc at 10% translation; translation medians and 'MedErr matched' use matched objects only"
    )


# --------------------------------------------------------------------------- reports
_ROWS = (
    # (key, label, format)
    ("recall", "Recall (IoU 0.5)", "{:.3f}"),
    ("med_rot_err_deg", "MedErr (deg)", "{:.1f}"),
    ("acc_pi6", "Acc_pi/6", "{:.3f}"),
    ("med_rot_err_matched_deg", "MedErr matched (deg)", "{:.1f}"),
    ("flip_share", "Flips > 150 deg (matched)", "{:.3f}"),
    ("med_trans_err_m", "Med t err (m)", "{:.3f}"),
    ("med_rel_trans_err", "Med rel t err", "{:.3f}"),
    ("acc_rel_trans_10", "Acc rel t < 10%", "{:.3f}"),
    ("top1", "Top-1 retrieval", "{:.3f}"),
)
_DETECTION_ROWS = (
    ("box_ap", "Box AP", "{:.3f}"),
    ("box_ap50", "Box AP50", "{:.3f}"),
    ("box_ap75", "Box AP75", "{:.3f}"),
    ("mask_ap", "Mask AP", "{:.3f}"),
    ("mask_ap50", "Mask AP50", "{:.3f}"),
    ("mask_ap75", "Mask AP75", "{:.3f}"),
)


def _cell(value: Any, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def _table(categories: Sequence[str], rows: list[tuple[str, list[str]]]) -> list[str]:
    lines = ["| metric | " + " | ".join(categories) + " | mean |", "|---|" + "---:|" * (len(categories) + 1)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return lines


def to_markdown(summary: Mapping[str, Any], title: str) -> str:
    """Paper-style Markdown tables (rows = metrics, columns = categories + mean) from :meth:`Evaluator.summary`."""
    categories = list(summary["categories"])
    setting = "detected boxes" if summary["setting"] == "detected" else "ground-truth boxes"
    lines = [f"# {title}", "", f"Setting: {setting}, {summary['num_images']} images. {summary['undetected_rule']}.", ""]
    subset_titles = {"all": "All objects", "clean": "Non-occluded, non-truncated objects"}
    for subset in SUBSETS:
        data = summary["subsets"][subset]
        per = data["per_category"]
        rows = [("GT objects (mean col: total)", [str(per[c]["gt_objects"]) for c in categories] + [str(data["gt_objects"])])]
        for key, label, fmt in _ROWS:
            if key == "recall" and summary["setting"] != "detected":
                continue
            rows.append((label, [_cell(per[c][key], fmt) for c in categories] + [_cell(data["mean"][key], fmt)]))
        lines += [f"## {subset_titles[subset]}", ""] + _table(categories, rows) + [""]
    detection = summary.get("detection")
    if detection is not None:
        rows = []
        for key, label, fmt in _DETECTION_ROWS:
            rows.append((label, [_cell(detection["per_category"][c][key], fmt) for c in categories] + [_cell(detection["mean"][key], fmt)]))
        lines += ["## Detection and segmentation (COCO AP, all objects)", ""] + _table(categories, rows)
        if not detection["mask_ap_available"]:
            lines += ["", "Mask AP n/a: some images lack predicted or ground-truth masks."]
        lines.append("")
    lines.append("n/a: undefined (no ground-truth objects of that category, or no data for the metric); "
                 "means are over categories where the metric is defined.")
    return "\n".join(lines) + "\n"


def write_report(summary: Mapping[str, Any], out_dir: str | Path, name: str, title: str | None = None,
                 render: Callable[[Mapping[str, Any], str], str] = to_markdown) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.md`` (``render(summary, title)``, title default ``name``; default
    renderer :func:`to_markdown`) and ``<out_dir>/<name>.json`` atomically; returns both paths."""
    out_dir = Path(out_dir)
    md_path, json_path = out_dir / f"{name}.md", out_dir / f"{name}.json"
    atomic_write_text(json_path, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    atomic_write_text(md_path, render(summary, title or name))
    return md_path, json_path
