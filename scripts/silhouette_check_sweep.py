#!/usr/bin/env python3
"""Tune the silhouette check of shape retrieval: Top-1 and the chosen view's rotation per setting.

    .venv/bin/python scripts/silhouette_check_sweep.py --data DIR [--checkpoint models/scene3d_default.pt]
        [--weights 10 20 40] [--angle-weights 5 10 20] [--windows 60 90] [--candidates 64]
        [--setting gt_boxes|detected|both] [--images N] [--shape-db FILE]
        [--output models/evaluation/silhouette_check_sweep]

The silhouette check of the resolution policy (:class:`scene3d_ros.retrieval.ResolutionPolicy`) re-scores the pose-prior
candidates with ``squared descriptor distance - weight x IoU + angle_weight x angle / 180``. Its
weights are in descriptor-distance units, so they belong to one trained network: tune them on a
split that the reported evaluation does not use (the shipped defaults were tuned on
``generate_data --set output.seed=2 output.num_scenes=300``; ``evaluate`` reports on seed 1).

The network runs once per image and setting; every combination of ``weight`` x
``angle_weight`` x ``window`` (the predicted-prior window, degrees) then searches the shape
database with a :class:`RetrievalEvaluator` exactly as ``evaluate`` does with
``evaluate.retrieval.silhouette_*``. Reported per combination and setting: mean Top-1 and
sub-type Top-1 of the predicted-prior + silhouette variant (seen models) and the mean MedErr /
Acc_pi/6 of the chosen views' rotations, next to the descriptor-only search (30 deg window) and the
network's own rotation. Writes OUTPUT.md and OUTPUT.json atomically.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

from scene3d_ros import CATEGORIES
from scene3d_ros.data.shards import sha256_file
from scene3d_ros.evaluation import SETTINGS, write_report
from scene3d_ros.evaluation.runner import (
    EvaluateConfig,
    EvaluationInputError,
    RetrievalEvalConfig,
    feed_predictions,
    open_dataset,
    open_retrieval,
)
from scene3d_ros.model import build_model_from_checkpoint
from scene3d_ros.paths import default_model_path, report_path
from scene3d_ros.retrieval import ResolutionPolicy
from scene3d_ros.retrieval.evaluation import NO_PRIOR_DEG


def sweep(checkpoint: Path, data: Path, weights: list[float], angle_weights: list[float], windows: list[float],
          candidates: int, settings: tuple[str, ...], num_images: int | None, shape_db: str | None) -> dict:
    """Top-1 and rotation per combination and setting; see the module doc."""
    device = torch.device("cpu")
    config = EvaluateConfig()
    dataset, data_info = open_dataset("synthetic", data, "val", config)
    model = build_model_from_checkpoint(checkpoint, device, expected_classes=CATEGORIES).eval()
    digest = sha256_file(checkpoint)
    combos = list(itertools.product(weights, angle_weights, windows))
    weight, angle_weight, window = combos[0]
    first = open_retrieval(RetrievalEvalConfig(enabled=True, shape_db=shape_db, silhouette_weight=weight,
                                               silhouette_angle_weight=angle_weight, silhouette_candidates=candidates,
                                               silhouette_max_angle_deg=window),
                           checkpoint, digest, model, dataset, device, config.iou_threshold)
    if not first.policy.silhouette_check:
        raise EvaluationInputError("the silhouette check cannot run with this network or shape database")
    evaluators = {combos[0]: first} | {
        combo: first.with_policy(first.policy.replace(silhouette_weight=combo[0], silhouette_angle_weight=combo[1],
                                                      silhouette_max_angle_deg=combo[2]))
        for combo in combos[1:]}
    count = feed_predictions(model, dataset, settings, [e.add for e in evaluators.values()], num_images, "silhouette check sweep")
    rows, baseline = [], {}
    for (weight, angle_weight, window), evaluator in evaluators.items():
        summary = evaluator.summary()
        for setting in settings:
            top1 = summary["splits"]["seen"]["top1"]
            checked, plain = top1[f"{setting}/predicted_prior+silhouette"], top1[f"{setting}/predicted_prior"]
            pose = summary["pose_refinement"][setting]
            baseline.setdefault(setting, {
                "top1_mean": plain["mean"], "subtype_top1_mean": plain.get("subtype", {}).get("mean"),
                "medErr_mean_deg": pose["network"]["mean_median_deg"], "acc_mean": pose["network"]["mean_acc_pi_6"],
                "objects": pose["network"]["objects"]})
            rows.append({"setting": setting, "weight": weight, "angle_weight": angle_weight, "window_deg": window,
                         "top1_mean": checked["mean"], "subtype_top1_mean": checked.get("subtype", {}).get("mean"),
                         "medErr_mean_deg": pose["silhouette_check"]["mean_median_deg"],
                         "acc_mean": pose["silhouette_check"]["mean_acc_pi_6"]})
    return {"checkpoint": report_path(checkpoint), "checkpoint_sha256": digest, "data": data_info["path"],
            "images": count, "settings": list(settings), "candidates": candidates,
            "descriptor_only_window_deg": first.policy.max_angle_deg, "baseline": baseline, "rows": rows}


def to_markdown(result: dict) -> str:
    def fmt(value: float | None, digits: int = 3) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    lines = ["# Silhouette check: weights against Top-1 and rotation", "",
             f"Checkpoint `{result['checkpoint']}` (sha256 `{result['checkpoint_sha256'][:12]}...`), {result['images']} "
             f"images of `{result['data']}`, seen models, {result['candidates']} candidates. Command: "
             f"`{result.get('command', 'scripts/silhouette_check_sweep.py')}`. Top-1 cells: mean over categories of "
             "Top-1 / sub-type Top-1 (predicted pose prior); rotation cells: mean over categories of MedErr (deg) / "
             "Acc_pi/6.", ""]
    for setting in result["settings"]:
        base = result["baseline"][setting]
        lines += [f"## Setting `{setting}` ({base['objects']} paired objects)", "",
                  f"Without the check: descriptor-only Top-1 {fmt(base['top1_mean'])} / "
                  f"{fmt(base['subtype_top1_mean'])} ({result['descriptor_only_window_deg']:g} deg window); the "
                  f"network's rotation {fmt(base['medErr_mean_deg'], 1)} / {fmt(base['acc_mean'])}.", "",
                  "| weight | angle_weight | window (deg) | Top-1 / sub-type | rotation MedErr / Acc_pi/6 |",
                  "|---:|---:|---:|---:|---:|"]
        for row in (r for r in result["rows"] if r["setting"] == setting):
            lines.append(f"| {row['weight']:g} | {row['angle_weight']:g} | {row['window_deg']:g} | "
                         f"{fmt(row['top1_mean'])} / {fmt(row['subtype_top1_mean'])} | "
                         f"{fmt(row['medErr_mean_deg'], 1)} / {fmt(row['acc_mean'])} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=default_model_path())
    parser.add_argument("--data", type=Path, required=True, help="synthetic dataset folder (generate_data output)")
    parser.add_argument("--weights", type=float, nargs="+", default=[10.0, 20.0, 40.0])
    parser.add_argument("--angle-weights", type=float, nargs="+", default=[5.0, 10.0, 20.0])
    parser.add_argument("--windows", type=float, nargs="+", default=[60.0, 90.0],
                        help="predicted-prior windows of the check (degrees, in (0, 180])")
    parser.add_argument("--candidates", type=int, default=64)
    parser.add_argument("--setting", choices=(*SETTINGS, "both"), default="gt_boxes")
    parser.add_argument("--images", type=int, default=None, help="only the first N images")
    parser.add_argument("--shape-db", default=None, help="shape database file (default: build_shape_db's output)")
    parser.add_argument("--output", type=Path, default=Path("models/evaluation/silhouette_check_sweep"),
                        help="writes OUTPUT.md and OUTPUT.json")
    args = parser.parse_args(argv)
    if args.images is not None and args.images < 1:
        parser.error("--images must be >= 1")
    if any(not 0.0 < w <= NO_PRIOR_DEG for w in args.windows):
        parser.error(f"--windows must lie in (0, {NO_PRIOR_DEG:g}] degrees, got {args.windows}")
    try:
        for weight, angle_weight in itertools.product(args.weights, args.angle_weights):
            ResolutionPolicy(silhouette_weight=weight, silhouette_angle_weight=angle_weight,
                             silhouette_candidates=args.candidates)
    except ValueError as exc:
        parser.error(str(exc))
    torch.set_num_threads(min(2, torch.get_num_threads()))
    settings = SETTINGS if args.setting == "both" else (args.setting,)
    try:
        result = sweep(args.checkpoint, args.data, args.weights, args.angle_weights, args.windows, args.candidates,
                       settings, args.images, args.shape_db)
    except EvaluationInputError as exc:
        print(f"silhouette_check_sweep: {exc}", file=sys.stderr)
        return 1
    result["command"] = " ".join(["scripts/silhouette_check_sweep.py", *(sys.argv[1:] if argv is None else argv)])
    markdown = to_markdown(result)
    write_report(result, args.output.parent, args.output.name, render=lambda _summary, _title: markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
