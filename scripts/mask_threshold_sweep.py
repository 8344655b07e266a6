#!/usr/bin/env python3
"""Mask AP against the probability at which the mask head's output is binarised.

    .venv/bin/python scripts/mask_threshold_sweep.py --data DIR [--checkpoint models/scene3d_default.pt]
        [--thresholds 0.2 0.25 0.3 0.35 0.4 0.45 0.5] [--images N]
        [--output models/evaluation/mask_threshold]

The network runs once per image (detected boxes, as ``evaluate``'s detection and segmentation
table); its mask probabilities are binarised at each threshold and scored by one
:class:`~scene3d_ros.evaluation.Evaluator` per threshold (COCO mask AP, pycocotools). Mask R-CNN's
head is trained on ground-truth masks resampled into its 28x28 grid, so thin parts (bicycle
frames, chair legs) get soft targets and soft outputs, which 0.5 cuts away. Tune on a split other
than the one the model card reports (``scene3d_ros.MASK_THRESHOLD`` is the chosen default).
Writes OUTPUT.md and OUTPUT.json atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from scene3d_ros import CATEGORIES, MASK_THRESHOLD
from scene3d_ros.data.shards import sha256_file
from scene3d_ros.evaluation import Evaluator, write_report
from scene3d_ros.evaluation.runner import EvaluateConfig, EvaluationInputError, feed_predictions, open_dataset
from scene3d_ros.model import build_model_from_checkpoint
from scene3d_ros.paths import default_model_path, report_path

DEFAULT_THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
METRICS = ("mask_ap", "mask_ap50", "mask_ap75")


def sweep(checkpoint: Path, data: Path, thresholds: list[float], num_images: int | None) -> dict:
    """Per threshold: mean mask AP / AP50 / AP75 over categories and AP50 per category."""
    config = EvaluateConfig()
    dataset, data_info = open_dataset("synthetic", data, "val", config)
    model = build_model_from_checkpoint(checkpoint, torch.device("cpu"), expected_classes=CATEGORIES).eval()
    evaluators = {t: Evaluator(CATEGORIES, "detected", config.iou_threshold, mask_threshold=t) for t in thresholds}
    count = feed_predictions(model, dataset, ("detected",), [lambda _s, p, g, e=e: e.add(p, g) for e in evaluators.values()],
                             num_images, "mask threshold sweep")
    rows = []
    for threshold, evaluator in evaluators.items():
        detection = evaluator.summary()["detection"]
        rows.append({"mask_threshold": threshold, **{m: detection["mean"][m] for m in METRICS},
                     "mask_ap50_per_category": {c: detection["per_category"][c]["mask_ap50"] for c in CATEGORIES}})
    return {"checkpoint": report_path(checkpoint), "checkpoint_sha256": sha256_file(checkpoint),
            "data": data_info["path"], "seed": data_info["seed"], "images": count, "thresholds": thresholds,
            "default_mask_threshold": MASK_THRESHOLD, "rows": rows}


def to_markdown(result: dict) -> str:
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    best = max(result["rows"], key=lambda r: r["mask_ap50"] or 0.0)
    lines = ["# Mask AP against the mask threshold", "",
             f"Checkpoint `{result['checkpoint']}` (sha256 `{result['checkpoint_sha256'][:12]}...`), {result['images']} "
             f"images of `{result['data']}` (seed {result['seed']}), detected boxes, all objects; means over "
             f"categories. Command: `{result.get('command', 'scripts/mask_threshold_sweep.py')}`. "
             f"`scene3d_ros.MASK_THRESHOLD` when this ran: {result['default_mask_threshold']:g}.", "",
             "| mask threshold | mask AP | mask AP50 | mask AP75 | " + " | ".join(CATEGORIES) + " |",
             "|---:|---:|---:|---:|" + "---:|" * len(CATEGORIES)]
    for row in result["rows"]:
        per_category = " | ".join(fmt(row["mask_ap50_per_category"][c]) for c in CATEGORIES)
        lines.append(f"| {row['mask_threshold']:g} | {fmt(row['mask_ap'])} | {fmt(row['mask_ap50'])} | "
                     f"{fmt(row['mask_ap75'])} | {per_category} |")
    lines += ["", f"Per-category columns: mask AP50. Highest mean mask AP50: threshold {best['mask_threshold']:g}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=default_model_path())
    parser.add_argument("--data", type=Path, required=True, help="synthetic dataset folder (generate_data output)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(DEFAULT_THRESHOLDS),
                        help="mask probabilities to try, each in (0, 1)")
    parser.add_argument("--images", type=int, default=None, help="only the first N images")
    parser.add_argument("--output", type=Path, default=Path("models/evaluation/mask_threshold"),
                        help="writes OUTPUT.md and OUTPUT.json")
    args = parser.parse_args(argv)
    if args.images is not None and args.images < 1:
        parser.error("--images must be >= 1")
    thresholds = sorted(set(args.thresholds))
    if any(not 0.0 < t < 1.0 for t in thresholds):
        parser.error(f"--thresholds must lie in (0, 1), got {args.thresholds}")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        result = sweep(args.checkpoint, args.data, thresholds, args.images)
    except EvaluationInputError as exc:
        print(f"mask_threshold_sweep: {exc}", file=sys.stderr)
        return 1
    result["command"] = " ".join(["scripts/mask_threshold_sweep.py", *(sys.argv[1:] if argv is None else argv)])
    markdown = to_markdown(result)
    write_report(result, args.output.parent, args.output.name, render=lambda _summary, _title: markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
