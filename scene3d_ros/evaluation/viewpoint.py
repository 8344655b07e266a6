"""Network 1's rotation, the crop viewpoint stage's and the best of its k hypotheses, side by side.

For every image and setting, the same boxes (ground-truth boxes, or network 1's detections) go
through :class:`~scene3d_ros.model.viewpoint.ViewpointStage` exactly as in the
:class:`~scene3d_ros.pipeline.Pipeline` (what perception_node publishes in ``detections_3d``), and
three :class:`~scene3d_ros.evaluation.metrics.Evaluator` s score:

* ``network``: network 1's own rotation head (the paper's method),
* ``stage2``: the stage's most probable hypothesis,
* ``best_of_k``: the hypothesis nearest to the ground truth (modulo the object's symmetry), an
  oracle: how often the truth is among the k hypotheses, what a resolution step could reach.

Translations, boxes and scores are network 1's in all three, so only the rotation rows differ.

With a stage that has a shape head and ``shape_classes`` (model id -> ``"<category>/<subtype>"``),
the share of matched objects whose most probable shape class is their model's is reported too
(``shape_head``: per setting and category), the head's own accuracy before the resolution policy.

With a stage that has a mask head and ground-truth ``masks``, the masks the resolution policy gets
are compared with the truth over each matched object's box (``box_masks``: median IoU per setting
and category of network 1's box mask, probability >= the mask threshold, and of the stage's,
probability >= 0.5, against the ground-truth mask resampled onto the same box grid).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from scene3d_ros import CATEGORIES, MASK_THRESHOLD
from scene3d_ros.evaluation.metrics import SUBSETS, Evaluator, pair_predictions
from scene3d_ros.geometry import matrix_to_quaternion, quaternion_to_matrix, symmetric_rotation_error_deg
from scene3d_ros.model.viewpoint import ViewpointStage, box_mask_grid_of, mask_ious

STAGE_MASK_THRESHOLD = 0.5
"""Probability at which a cell of the stage's mask counts as the object's (box-mask IoU report)."""

METHODS = ("network", "stage2", "best_of_k")
METHOD_TITLES = {"network": "network 1 (rotation head)", "stage2": "crop viewpoint stage (top-1)",
                 "best_of_k": "best of the stage's k hypotheses (oracle)"}
_ROWS = (("med_rot_err_deg", "MedErr (deg)", "{:.1f}"), ("acc_pi6", "Acc_pi/6", "{:.3f}"),
         ("flip_share", "Flips > 150 deg", "{:.3f}"), ("med_rot_err_matched_deg", "MedErr matched (deg)", "{:.1f}"))


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


class ViewpointComparison:
    """Accumulates the three rotations per setting; :meth:`summary` / :meth:`to_markdown` report them."""

    def __init__(self, stage: ViewpointStage, settings: Sequence[str], iou_threshold: float = 0.5,
                 mask_threshold: float = MASK_THRESHOLD, shape_classes: Mapping[str, str] | None = None) -> None:
        self.stage = stage
        self.settings = tuple(settings)
        self.shape_classes = dict(shape_classes or {})
        self.shape_hits: dict[str, dict[str, list[bool]]] = {s: {c: [] for c in CATEGORIES} for s in self.settings}
        self.mask_threshold = float(mask_threshold)
        self.mask_ious: dict[tuple[str, str], dict[str, list[float]]] = {
            (s, m): {c: [] for c in CATEGORIES} for s in self.settings for m in ("network", "stage")}
        self.evaluators = {(s, m): Evaluator(CATEGORIES, setting=s, iou_threshold=iou_threshold,
                                             mask_threshold=mask_threshold) for s in self.settings for m in METHODS}

    def add(self, setting: str, prediction: Mapping[str, Any], gt: Mapping[str, Any], image: torch.Tensor,
            intrinsics: torch.Tensor) -> dict[str, list[np.ndarray]]:
        """One image: ``prediction`` network 1's output for it in ``setting``, ``gt`` its ground truth,
        ``image`` (3, H, W) RGB in [0, 1] and ``intrinsics`` (3, 3) pixels, as the model saw them.
        Returns the stage's output per prediction as prediction entries: ``viewpoint_hypotheses``
        ((k, 4) egocentric quaternions, most probable first), ``viewpoint_scores`` ((k,)) and
        ``viewpoint_shapes`` (shape class -> probability, or None without a shape head) and, when the
        stage has a mask head, ``box_masks`` ((N, G, G): its masks replace network 1's for the
        resolution policy, as in the Pipeline)."""
        boxes = torch.as_tensor(_numpy(prediction["boxes"]), dtype=torch.float32).reshape(-1, 4)
        labels = torch.as_tensor(_numpy(prediction["labels"]), dtype=torch.int64).reshape(-1)
        hypotheses = self.stage.predict(image, boxes, labels, torch.as_tensor(_numpy(intrinsics)))
        top1 = np.stack([matrix_to_quaternion(h.rotations[0]) for h in hypotheses]) if hypotheses else \
            np.zeros((0, 4))
        best = top1.copy()
        gt_rotations = quaternion_to_matrix(_numpy(gt["quaternions"]).astype(np.float64).reshape(-1, 4))
        symmetries = list(gt.get("symmetries") or ["none"] * len(gt_rotations))
        gt_models = list(gt.get("model_ids") or [])
        gt_labels = _numpy(gt["labels"]).reshape(-1)
        for i, j in pair_predictions(prediction, gt, setting, self.evaluators[(setting, "network")].iou_threshold):
            errors = symmetric_rotation_error_deg(hypotheses[i].rotations, gt_rotations[j][None], symmetries[j])
            best[i] = matrix_to_quaternion(hypotheses[i].rotations[int(np.argmin(errors))])
            truth = self.shape_classes.get(gt_models[j]) if j < len(gt_models) else None
            if hypotheses[i].shapes and truth is not None:
                guess = max(hypotheses[i].shapes, key=hypotheses[i].shapes.get)
                self.shape_hits[setting][CATEGORIES[int(gt_labels[j]) - 1]].append(guess == truth)
            if hypotheses[i].box_mask is not None and "masks" in gt and "box_masks" in prediction:
                self._add_mask_ious(setting, CATEGORIES[int(gt_labels[j]) - 1], boxes[i], _numpy(gt["masks"])[j],
                                    _numpy(prediction["box_masks"])[i], hypotheses[i].box_mask)
        self.evaluators[(setting, "network")].add(prediction, gt)
        self.evaluators[(setting, "stage2")].add({**prediction, "quaternions": top1}, gt)
        self.evaluators[(setting, "best_of_k")].add({**prediction, "quaternions": best}, gt)
        out = {"viewpoint_hypotheses": [matrix_to_quaternion(h.rotations) for h in hypotheses],
               "viewpoint_scores": [h.scores for h in hypotheses],
               "viewpoint_shapes": [h.shapes for h in hypotheses]}
        if hypotheses and hypotheses[0].box_mask is not None:
            out["box_masks"] = np.stack([h.box_mask for h in hypotheses])
        return out

    def _add_mask_ious(self, setting: str, category: str, box: torch.Tensor, truth: np.ndarray,
                       network_mask: np.ndarray, stage_mask: np.ndarray) -> None:
        """IoU of network 1's and the stage's box masks with the ground-truth mask ``(H, W)``
        resampled onto the same ``(G, G)`` grid over ``box`` (cells >= 0.5 of the truth)."""
        grid = stage_mask.shape[-1]
        truth_grid = box_mask_grid_of(torch.as_tensor(np.asarray(truth), dtype=torch.float32), box, grid) >= 0.5
        for method, mask, threshold in (("network", network_mask, self.mask_threshold),
                                        ("stage", stage_mask, STAGE_MASK_THRESHOLD)):
            predicted = torch.as_tensor(np.asarray(mask)) >= threshold
            if predicted.shape != truth_grid.shape:
                continue
            self.mask_ious[(setting, method)][category].append(float(mask_ious(predicted[None], truth_grid[None])[0]))

    def summary(self) -> dict[str, Any]:
        """``{setting: {method: Evaluator.summary()}}`` plus the stage's k and, when measured, the
        shape head's top-1 per setting (``shape_head``: per category, mean over categories, objects)."""
        out: dict[str, Any] = {"k": self.stage.k, "settings": {
            s: {m: self.evaluators[(s, m)].summary() for m in METHODS} for s in self.settings}}
        if any(hits for per in self.shape_hits.values() for hits in per.values()):
            out["shape_head"] = {}
            for setting, per in self.shape_hits.items():
                rates = {c: (float(np.mean(h)) if h else None) for c, h in per.items()}
                defined = [r for r in rates.values() if r is not None]
                out["shape_head"][setting] = {"per_category": rates,
                                              "mean": float(np.mean(defined)) if defined else None,
                                              "objects": sum(len(h) for h in per.values())}
        if any(v for per in self.mask_ious.values() for v in per.values()):
            out["box_masks"] = {}
            for setting in self.settings:
                out["box_masks"][setting] = {}
                for method in ("network", "stage"):
                    per = self.mask_ious[(setting, method)]
                    medians = {c: (float(np.median(v)) if v else None) for c, v in per.items()}
                    defined = [m for m in medians.values() if m is not None]
                    out["box_masks"][setting][method] = {
                        "per_category": medians, "mean": float(np.mean(defined)) if defined else None,
                        "objects": sum(len(v) for v in per.values()),
                        "median_all": float(np.median([x for v in per.values() for x in v])) if defined else None}
        return out


def comparison_markdown(summary: Mapping[str, Any], title: str) -> str:
    """Tables (rows = method x metric, columns = categories + mean) of :meth:`ViewpointComparison.summary`."""
    lines = [f"# {title}", "", f"k = {summary['k']} hypotheses per object. Rotation errors modulo each "
             "model's symmetry; `mean`: over categories, `objects`: over all objects pooled (e.g. the "
             "share of objects that flip). Best-of-k is an oracle (it looks at the truth).", ""]
    setting_titles = {"gt_boxes": "ground-truth boxes", "detected": "detected boxes (matched objects; missed "
                      "objects count 180 deg in MedErr and Acc_pi/6)"}
    subset_titles = {"all": "all objects", "clean": "non-occluded, non-truncated objects"}
    for setting, methods in summary["settings"].items():
        for subset in SUBSETS:
            categories = list(methods["network"]["categories"])
            counts = methods["network"]["subsets"][subset]
            lines += [f"## {setting_titles.get(setting, setting)}, {subset_titles[subset]} "
                      f"({counts['gt_objects']} objects, {methods['network']['num_images']} images)", "",
                      "| method | metric | " + " | ".join(categories) + " | mean | objects |",
                      "|---|---|" + "---:|" * (len(categories) + 2)]
            for method in METHODS:
                data = methods[method]["subsets"][subset]
                for key, label, fmt in _ROWS:
                    cells = [("n/a" if data["per_category"][c][key] is None else fmt.format(data["per_category"][c][key]))
                             for c in categories]
                    for total in (data["mean"][key], data.get("pooled", {}).get(key)):
                        cells.append("n/a" if total is None else fmt.format(total))
                    lines.append(f"| {METHOD_TITLES[method]} | {label} | " + " | ".join(cells) + " |")
            lines.append("")
    for setting, head in summary.get("shape_head", {}).items():
        categories = list(head["per_category"])
        lines += [f"## Shape head, {setting_titles.get(setting, setting)} ({head['objects']} matched objects)", "",
                  "Share of objects whose most probable shape class (`<category>/<subtype>`) is their model's "
                  "(the head alone, before the resolution policy).", "",
                  "| | " + " | ".join(categories) + " | mean |", "|---|" + "---:|" * (len(categories) + 1),
                  "| shape head top-1 | " + " | ".join("n/a" if head["per_category"][c] is None
                                                      else f"{head['per_category'][c]:.3f}" for c in categories)
                  + f" | {'n/a' if head['mean'] is None else format(head['mean'], '.3f')} |", ""]
    for setting, methods in summary.get("box_masks", {}).items():
        categories = list(methods["network"]["per_category"])
        lines += [f"## Box masks, {setting_titles.get(setting, setting)} ({methods['network']['objects']} matched "
                  "objects)", "", "Median IoU with the ground-truth mask over each object's box (the grid the "
                  "resolution policy compares with silhouettes): network 1's mask head (probability >= the mask "
                  f"threshold) and the stage's mask head (>= {STAGE_MASK_THRESHOLD}); mean over categories and "
                  "median over objects.", "",
                  "| mask | " + " | ".join(categories) + " | mean | all objects |",
                  "|---|" + "---:|" * (len(categories) + 2)]
        for method, title in (("network", "network 1"), ("stage", "crop stage")):
            data = methods[method]
            lines.append(f"| {title} | " + " | ".join("n/a" if data["per_category"][c] is None
                                                      else f"{data['per_category'][c]:.3f}" for c in categories)
                         + " | " + " | ".join("n/a" if data[k] is None else f"{data[k]:.3f}"
                                              for k in ("mean", "median_all")) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"
