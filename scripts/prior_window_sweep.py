#!/usr/bin/env python3
"""Top-1 shape retrieval against the width of the pose-prior window (``max_angle_deg``).

    .venv/bin/python scripts/prior_window_sweep.py --data DIR [--checkpoint models/scene3d_default.pt]
        [--angles 10 15 20 30 45 60 90 180] [--setting gt_boxes|detected|both] [--images N]
        [--shape-db FILE] [--output models/evaluation/prior_window]

The network runs once per image and setting; its descriptors and rotations are then searched in
the shape database once per window (``RetrievalEvaluator`` per angle, exactly as ``evaluate``
does with ``evaluate.retrieval.max_angle_deg``). 180 deg admits every view of the category: no
prior. Reports the mean Top-1 and sub-type Top-1 over categories per window and variant: which
window ``retrieval_node``'s ``max_angle_deg`` should default to (its deployment is the
``detected + predicted pose prior`` column). Writes OUTPUT.md and OUTPUT.json atomically.
"""

from __future__ import annotations

import argparse
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
from scene3d_ros.retrieval.evaluation import NO_PRIOR_DEG, RetrievalEvaluator

DEFAULT_ANGLES = (10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, NO_PRIOR_DEG)


def sweep(checkpoint: Path, data: Path, angles: list[float], settings: tuple[str, ...], num_images: int | None,
          shape_db: str | None) -> dict:
    """Mean Top-1 (model and sub-type) per window and variant; see the module doc."""
    device = torch.device("cpu")
    config = EvaluateConfig()
    dataset, data_info = open_dataset("synthetic", data, "val", config)
    model = build_model_from_checkpoint(checkpoint, device, expected_classes=CATEGORIES).eval()
    digest = sha256_file(checkpoint)
    # the database and the dataset's library are opened and checked once; one evaluator per window shares them
    # the descriptor-only search (the silhouette check has its own window: scripts/silhouette_check_sweep.py)
    first = open_retrieval(RetrievalEvalConfig(enabled=True, shape_db=shape_db, max_angle_deg=angles[0],
                                               silhouette_check=False), checkpoint,
                           digest, model, dataset, device, config.iou_threshold)
    evaluators: dict[float, RetrievalEvaluator] = {angles[0]: first} | {
        angle: first.with_policy(first.policy.replace(max_angle_deg=angle)) for angle in angles[1:]}
    count = feed_predictions(model, dataset, settings, [e.add for e in evaluators.values()], num_images, "prior window sweep")
    rows = []
    for angle, evaluator in evaluators.items():
        summary = evaluator.summary()
        for variant in summary["variants"]:
            if variant["prior"] == "none" and angle != angles[-1]:
                continue  # the no-prior search does not depend on the window: report it once
            top1 = summary["splits"]["seen"]["top1"][variant["key"]]
            rows.append({"max_angle_deg": NO_PRIOR_DEG if variant["prior"] == "none" else angle,
                         "variant": variant["key"], "title": variant["title"], "prior": variant["prior"], "top1_mean": top1["mean"],
                         "subtype_top1_mean": top1.get("subtype", {}).get("mean"), "objects": top1["objects"]})
    return {"checkpoint": report_path(checkpoint), "checkpoint_sha256": digest, "data": data_info["path"],
            "images": count, "settings": list(settings), "angles_deg": angles, "rows": rows}


def to_markdown(result: dict) -> str:
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    def pair(row: dict) -> str:
        return f"{fmt(row['top1_mean'])} / {fmt(row['subtype_top1_mean'])}"

    with_prior = [r for r in result["rows"] if r["prior"] != "none"]
    titles = list(dict.fromkeys(r["title"] for r in with_prior))
    cell = {(r["max_angle_deg"], r["title"]): r for r in with_prior}
    lines = ["# Top-1 retrieval against the pose-prior window", "",
             f"Checkpoint `{result['checkpoint']}` (sha256 `{result['checkpoint_sha256'][:12]}...`), {result['images']} "
             f"images of `{result['data']}`, seen models. Command: "
             f"`{result.get('command', 'scripts/prior_window_sweep.py')}`. Cells: mean Top-1 over categories / mean "
             "sub-type Top-1. 180 deg admits every view of the category.", "",
             "| max_angle_deg | " + " | ".join(titles) + " |", "|---:|" + "---:|" * len(titles)]
    for angle in result["angles_deg"]:
        lines.append(f"| {angle:g} | " + " | ".join(pair(cell[(angle, t)]) for t in titles) + " |")
    lines.append("")
    lines += [f"{r['title']} (no window): {pair(r)}." for r in result["rows"] if r["prior"] == "none"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=default_model_path())
    parser.add_argument("--data", type=Path, required=True, help="synthetic dataset folder (generate_data output)")
    parser.add_argument("--angles", type=float, nargs="+", default=list(DEFAULT_ANGLES),
                        help="pose-prior windows to try (degrees, in (0, 180])")
    parser.add_argument("--setting", choices=(*SETTINGS, "both"), default="both")
    parser.add_argument("--images", type=int, default=None, help="only the first N images")
    parser.add_argument("--shape-db", default=None, help="shape database file (default: build_shape_db's output)")
    parser.add_argument("--output", type=Path, default=Path("models/evaluation/prior_window"),
                        help="writes OUTPUT.md and OUTPUT.json")
    args = parser.parse_args(argv)
    if args.images is not None and args.images < 1:
        parser.error("--images must be >= 1")
    angles = sorted(set(args.angles))
    if any(not 0.0 < a <= NO_PRIOR_DEG for a in angles):
        parser.error(f"--angles must lie in (0, {NO_PRIOR_DEG:g}] degrees, got {args.angles}")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    settings = SETTINGS if args.setting == "both" else (args.setting,)
    try:
        result = sweep(args.checkpoint, args.data, angles, settings, args.images, args.shape_db)
    except EvaluationInputError as exc:
        print(f"prior_window_sweep: {exc}", file=sys.stderr)
        return 1
    result["command"] = " ".join(["scripts/prior_window_sweep.py", *(sys.argv[1:] if argv is None else argv)])
    markdown = to_markdown(result)
    write_report(result, args.output.parent, args.output.name, render=lambda _summary, _title: markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
