"""Evaluation: the Pascal3D+-protocol metrics and reports (:mod:`scene3d_ros.evaluation.metrics`,
re-exported here) and what runs a checkpoint over a dataset into them
(:mod:`scene3d_ros.evaluation.runner`: the ``evaluate`` config, datasets, retrieval evaluator,
the prediction loop). The retrieval metrics are :mod:`scene3d_ros.retrieval.evaluation`.
"""

from scene3d_ros.evaluation.metrics import (
    ACC_RELATIVE_TRANSLATION_THRESHOLD,
    ACC_ROTATION_THRESHOLD_DEG,
    DETECTION_METRICS,
    FLIP_THRESHOLD_DEG,
    POSE_METRICS,
    SETTINGS,
    SUBSETS,
    UNDETECTED_ROTATION_ERROR_DEG,
    Evaluator,
    ObjectResult,
    box_iou,
    coco_average_precision,
    evaluate_image,
    match_detections,
    mean_defined,
    median_or_none,
    pair_predictions,
    pose_metrics,
    rotation_errors_deg,
    share_below,
    to_markdown,
    translation_errors,
    write_report,
)

__all__ = [
    "ACC_RELATIVE_TRANSLATION_THRESHOLD", "ACC_ROTATION_THRESHOLD_DEG", "DETECTION_METRICS", "FLIP_THRESHOLD_DEG", "POSE_METRICS", "SETTINGS",
    "SUBSETS", "UNDETECTED_ROTATION_ERROR_DEG", "Evaluator", "ObjectResult", "box_iou", "coco_average_precision",
    "evaluate_image", "match_detections", "mean_defined", "median_or_none", "pair_predictions", "pose_metrics",
    "rotation_errors_deg", "share_below", "to_markdown", "translation_errors", "write_report",
]
