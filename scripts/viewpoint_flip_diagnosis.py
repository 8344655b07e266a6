#!/usr/bin/env python3
"""Where the crop viewpoint stage's front/back flips come from: per split, category, box size and
condition (clean, occluded, truncated), with and without test-time mirror averaging, on
ground-truth crops (no augmentation).

A flip is a top-1 rotation error above 150 deg (as in ``evaluate``). Running it on a training split
as well as on held-out splits tells under-fitting (flips on the scenes it trained on too) from
over-fitting (flips only on new scenes).

    .venv/bin/python scripts/viewpoint_flip_diagnosis.py --viewpoint models/viewpoint_default.pt \\
        --split train=DATA/train_s20m --split heldout=DATA/heldout_s1m --max-crops 2000 --output OUT

Writes ``OUT/flip_diagnosis.md`` and ``OUT/flip_diagnosis.json`` (atomically).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from scene3d_ros import CATEGORIES
from scene3d_ros.data.crops import ObjectCropDataset, collate_crops
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.evaluation.metrics import ACC_ROTATION_THRESHOLD_DEG, FLIP_THRESHOLD_DEG
from scene3d_ros.geometry import symmetric_rotation_error_deg
from scene3d_ros.model.viewpoint import mirror_averaged_outputs, top_k_hypotheses
from scene3d_ros.model.viewpoint_checkpoint import build_viewpoint_model
from scene3d_ros.paths import atomic_write_text

SIZE_BANDS = ((0, 48), (48, 96), (96, 10_000))
"""Longer ground-truth box side, pixels."""
VEHICLES = ("aeroplane", "bicycle", "boat", "bus", "car", "motorbike", "train")
MODES = ("plain", "mirror_average")
CONDITIONS = {"clean": (False, False), "occluded only": (True, False), "truncated only": (False, True),
              "occluded and truncated": (True, True)}
"""Condition name -> (occluded, truncated) as annotated by the world."""


def crop_errors(model, split: Path, max_crops: int, k: int) -> list[dict]:
    """Per GT crop of ``split``: category, box side (px), occluded, truncated, clean (neither) and
    the top-1 / best-of-``k`` errors (deg) of both modes."""
    scenes = SyntheticSceneDataset(split)
    crops = ObjectCropDataset([scenes], model.config)
    subset = Subset(crops, range(min(len(crops), max_crops)))
    rows, metas = [], {}
    loader = DataLoader(subset, batch_size=64, collate_fn=collate_crops, num_workers=1)
    with torch.inference_mode():
        for batch in tqdm(loader, desc=split.name, unit="batch"):
            outputs = {"plain": model(batch["crop"], batch["label"], batch["ray"])[:2],
                       "mirror_average": mirror_averaged_outputs(model, batch["crop"], batch["label"], batch["ray"])[:2]}
            for i in range(len(batch["crop"])):
                scene = int(batch["scene"][i])
                if scene not in metas:  # each scene's meta is read once, not once per object
                    metas[scene] = scenes.load_scene(scene, parts=("meta",))["meta"]
                box = metas[scene]["objects"][int(batch["object"][i])]["box"]
                truth = batch["rotation"][i].numpy().astype(np.float64)[None]
                row = {"category": batch["category"][i], "side_px": float(max(box[2] - box[0], box[3] - box[1])),
                       "occluded": bool(batch["occluded"][i]), "truncated": bool(batch["truncated"][i])}
                row["clean"] = not (row["occluded"] or row["truncated"])
                for mode, (logits, offsets) in outputs.items():
                    hypotheses = top_k_hypotheses(logits[i], offsets[i], batch["symmetry"][i], model.config.bins, k)
                    errors = symmetric_rotation_error_deg(hypotheses.rotations, truth, batch["symmetry"][i])
                    row[f"{mode}_top1"], row[f"{mode}_best"] = float(errors[0]), float(np.min(errors))
                rows.append(row)
    return rows


def summarise(rows: list[dict], mode: str) -> dict:
    """Flip share, Acc_pi/6, median error, best-of-k Acc_pi/6 of ``rows`` in ``mode``."""
    top1 = np.array([r[f"{mode}_top1"] for r in rows])
    best = np.array([r[f"{mode}_best"] for r in rows])
    if len(top1) == 0:
        return {"objects": 0}
    return {"objects": len(top1), "flips": float(np.mean(top1 > FLIP_THRESHOLD_DEG)),
            "acc_pi6": float(np.mean(top1 < ACC_ROTATION_THRESHOLD_DEG)), "median_deg": float(np.median(top1)),
            "best_of_k_acc_pi6": float(np.mean(best < ACC_ROTATION_THRESHOLD_DEG))}


def report(splits: dict[str, list[dict]]) -> dict:
    out = {}
    for name, rows in splits.items():
        per = {"all": {m: summarise(rows, m) for m in MODES}}
        for category in CATEGORIES:
            per[category] = {m: summarise([r for r in rows if r["category"] == category], m) for m in MODES}
        bands = {}
        for lo, hi in SIZE_BANDS:
            chosen = [r for r in rows if lo <= r["side_px"] < hi and r["category"] in VEHICLES and r["clean"]]
            bands[f"{lo}-{hi}"] = {m: summarise(chosen, m) for m in MODES}
        conditions = {c: {m: summarise([r for r in rows if (r["occluded"], r["truncated"]) == flags], m) for m in MODES}
                      for c, flags in CONDITIONS.items()}
        out[name] = {"by_category": per, "clean_vehicles_by_box_side_px": bands, "by_condition": conditions}
    return out


def markdown(summary: dict, args: argparse.Namespace, header: str) -> str:
    lines = [f"# Front/back flips of the crop viewpoint stage\n\n{header}\n",
             f"Checkpoint `{args.viewpoint}`, k = {args.k}, first {args.max_crops} ground-truth crops per split "
             "(no augmentation). Flip: top-1 error > 150 deg. Cells: flips / Acc_pi/6 "
             "(plain -> mirror-averaged).\n"]
    names = list(summary)
    lines.append("| category | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for category in ("all", *CATEGORIES):
        cells = []
        for name in names:
            plain, mirror = (summary[name]["by_category"][category][m] for m in MODES)
            cells.append(f"{plain['flips']:.2f} / {plain['acc_pi6']:.2f} -> {mirror['flips']:.2f} / {mirror['acc_pi6']:.2f}"
                         if plain["objects"] else "")
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    lines.append("\nClean (neither occluded nor truncated) vehicles by the longer box side (pixels), mirror-averaged: "
                 "objects, flips, Acc_pi/6\n")
    lines.append("| box side | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for band in summary[names[0]]["clean_vehicles_by_box_side_px"]:
        cells = []
        for name in names:
            s = summary[name]["clean_vehicles_by_box_side_px"][band]["mirror_average"]
            cells.append(f"{s['objects']}, {s['flips']:.2f}, {s['acc_pi6']:.2f}" if s["objects"] else "")
        lines.append(f"| {band} | " + " | ".join(cells) + " |")
    lines.append("\nBy condition (all categories), mirror-averaged: objects, flips, Acc_pi/6\n")
    lines.append("| condition | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for condition in CONDITIONS:
        cells = []
        for name in names:
            s = summary[name]["by_condition"][condition]["mirror_average"]
            cells.append(f"{s['objects']}, {s['flips']:.3f}, {s['acc_pi6']:.2f}" if s["objects"] else "")
        lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewpoint", required=True, help="crop viewpoint stage checkpoint")
    parser.add_argument("--split", action="append", required=True, metavar="NAME=DIR",
                        help="a generate_data folder and the name it gets in the report (repeatable)")
    parser.add_argument("--max-crops", type=int, default=2000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = build_viewpoint_model(args.viewpoint, "cpu", expected_classes=CATEGORIES)
    splits = {}
    for spec in args.split:
        name, _, folder = spec.partition("=")
        if not folder:
            parser.error(f"--split wants NAME=DIR, got {spec!r}")
        splits[name] = crop_errors(model, Path(folder), args.max_crops, args.k)
    summary = report(splits)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    header = (f"Date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.processor() or platform.machine()}, "
              f"torch {torch.__version__}, {args.threads} threads; load average at the end {' '.join(load)}; "
              "splits: " + ", ".join(f"{s.partition('=')[0]} = `{Path(s.partition('=')[2]).name}`" for s in args.split))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "flip_diagnosis.json", json.dumps({"args": vars(args), "summary": summary}, indent=1))
    atomic_write_text(out / "flip_diagnosis.md", markdown(summary, args, header))
    print((out / "flip_diagnosis.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
