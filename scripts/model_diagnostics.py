#!/usr/bin/env python3
"""Where a checkpoint's rotation and mask errors come from, on a synthetic split, ground-truth boxes.

    .venv/bin/python scripts/model_diagnostics.py [--checkpoint models/scene3d_default.pt]
        [--data DIR] [--images 150] [--output models/evaluation/diagnostics]

Per category:

* **rotation**: the symmetry-aware error histogram (degrees) and, for errors above 60 deg, how
  much of the error is a turn about the object's vertical axis: the mean ``|axis . z|`` of the
  relative rotation ``R_gt^T R_pred`` (object frame, +z up; 1 = pure azimuth error, ~0.5 for
  random axes). Symmetric objects (bottles, tables) are ambiguous about z by construction.
  Next to it, the rotation the network gives for the **mirror image** (the flipped image with
  mirrored boxes and camera, its rotation mirrored back: :mod:`scene3d_ros.mirror`), and the mean
  of the two rotations (test-time flip augmentation): an error as low on the mirror image says the
  network treats mirrored scenes as in-distribution (what flip augmentation in training needs).
* **masks**: the median IoU of the predicted mask (binarised at ``scene3d_ros.MASK_THRESHOLD``) with the ground truth, next
  to an oracle: the ground-truth mask resampled to the mask head's 28x28 grid in its box
  (torchvision's ``roi_align``) and pasted back (``paste_masks_in_image``): what a perfect 28x28
  head could reach. A large gap means the head is under-trained, a low oracle that the
  resolution limits. Also the median of the predicted mask probability over each object's
  true-mask pixels (1 = confident and right).
* **retrieval** (when the shape database of the checkpoint is there): Top-1 and sub-type Top-1
  with the ground-truth pose prior (``evaluate``'s Table 2 setting) for the RGB descriptor of
  network 1, next to an oracle query: network 2's descriptor of the object's own depth view in
  its exact ground-truth pose (what the triplet loss pulls the RGB descriptor towards). The
  oracle is what a perfectly trained descriptor head would retrieve from this database and its
  view grid: a low oracle means network 2 or the grid limits retrieval, a large gap that the
  descriptor head does. Both also with the silhouette check (``retrieval_node``'s default
  weights, same window): the RGB query with the predicted ``box_masks``, the oracle with the
  ground-truth mask resampled into its box (perfect descriptor and perfect mask).

Writes OUTPUT.md and OUTPUT.json (atomically). The network runs on the CPU.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.ops import roi_align
from tqdm import tqdm

from scene3d_ros import CATEGORIES, MASK_THRESHOLD
from scene3d_ros.data.shards import default_output_dir, sha256_file
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.evaluation import rotation_errors_deg, write_report
from scene3d_ros.geometry import quaternion_to_matrix
from scene3d_ros.mirror import mirror_quaternions, mirror_target
from scene3d_ros.model import build_model_from_checkpoint
from scene3d_ros.paths import default_model_path, report_path
from scene3d_ros.retrieval import ObjectQuery, ResolutionPolicy
from scene3d_ros.retrieval.evaluation import ground_truth_allocentric
from scene3d_ros.retrieval.shape_database import ShapeDatabase, ShapeDatabaseError, default_shape_db_path
from scene3d_ros.world.cad_library import CadLibrary
from scene3d_ros.world.depth_views import object_depth_view

MASK_GRID = 28
ERROR_BINS_DEG = (0, 30, 60, 90, 120, 150, 180.01)
LARGE_ERROR_DEG = 60.0
PRIOR_WINDOW_DEG = ResolutionPolicy.max_angle_deg


def box_masks(masks: torch.Tensor, boxes: torch.Tensor, grid: int = MASK_GRID) -> torch.Tensor:
    """Masks ``(N, H, W)`` resampled to ``grid`` x ``grid`` over their boxes ``(N, 4)`` (pixels,
    x0 y0 x1 y1), as Mask R-CNN's mask targets: ``(N, grid, grid)`` float in [0, 1]."""
    rois = torch.cat([torch.arange(len(boxes), dtype=torch.float32)[:, None], boxes.float()], dim=1)
    # roi_align reads image k for roi k: the masks are stacked as a batch of one-channel images
    return roi_align(masks.float()[:, None], rois, (grid, grid), spatial_scale=1.0, sampling_ratio=2,
                     aligned=False)[:, 0]


def mask_oracle(masks: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int], grid: int = MASK_GRID) -> torch.Tensor:
    """Ground-truth masks ``(N, H, W)`` resampled to ``grid`` x ``grid`` in their boxes ``(N, 4)``
    (pixels, x0 y0 x1 y1) and pasted back into the image: ``(N, H, W)`` bool."""
    if len(boxes) == 0:
        return torch.zeros((0, *size), dtype=torch.bool)
    return paste_masks_in_image(box_masks(masks, boxes, grid)[:, None], boxes.float(), size)[:, 0] >= 0.5


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = int((a | b).sum())
    return float((a & b).sum()) / union if union else 1.0


def vertical_axis_share(q_pred: np.ndarray, q_gt: np.ndarray) -> np.ndarray:
    """``|axis . z|`` of the relative rotations ``R_gt^T R_pred`` (object frame) of (w, x, y, z)
    quaternion pairs ``(N, 4)``; 0 where the relative rotation is the identity."""
    r_pred = Rotation.from_quat(np.asarray(q_pred, dtype=np.float64), scalar_first=True)
    r_gt = Rotation.from_quat(np.asarray(q_gt, dtype=np.float64), scalar_first=True)
    rotvec = (r_gt.inv() * r_pred).as_rotvec()
    norm = np.linalg.norm(rotvec, axis=1)
    return np.where(norm > 0, np.abs(rotvec[:, 2]) / np.maximum(norm, 1e-12), 0.0)


def retrieval_hits(database: ShapeDatabase, library: CadLibrary, descriptors: torch.Tensor,
                   rotations: torch.Tensor, model_ids: list[str], categories: list[str],
                   masks: torch.Tensor | None = None) -> list[tuple[bool, bool]]:
    """(model hit, sub-type hit) per object: ``descriptors`` (N, D) searched among the views of the
    object's category within :data:`PRIOR_WINDOW_DEG` of ``rotations`` (N, 4) (allocentric); with
    ``masks`` (N, 28, 28) the resolution policy's silhouette check (default weights, same window)
    re-scores the candidates."""
    policy = ResolutionPolicy(max_angle_deg=PRIOR_WINDOW_DEG, silhouette_max_angle_deg=PRIOR_WINDOW_DEG,
                              silhouette_check=masks is not None)
    queries = [ObjectQuery(category, descriptors[i].numpy(), rotations[i].double().numpy()[None],
                           mask=None if masks is None else masks[i].numpy()) for i, category in enumerate(categories)]
    results = policy.resolve(database, queries)
    hits = []
    for result, truth in zip(results, model_ids, strict=True):
        same_subtype = result.model_id is not None and library.get(result.model_id).subtype == library.get(truth).subtype
        hits.append((result.model_id == truth, same_subtype))
    return hits


def diagnose(checkpoint: Path, data: Path, num_images: int, shape_db: Path | None = None) -> dict:
    """Per-category rotation, mask and (with a matching shape database) retrieval diagnostics."""
    dataset = SyntheticSceneDataset(data)
    model = build_model_from_checkpoint(checkpoint, torch.device("cpu")).eval()
    errors, z_share = defaultdict(list), defaultdict(list)
    mirrored_errors, mirror_mean_errors = defaultdict(list), defaultdict(list)
    pred_iou, oracle_iou, on_mask = defaultdict(list), defaultdict(list), defaultdict(list)
    rgb_hits, view_hits = defaultdict(list), defaultdict(list)
    rgb_checked_hits, view_checked_hits = defaultdict(list), defaultdict(list)
    database, library, retrieval_note = None, None, None
    library_root = dataset.manifest.get("config", {}).get("cad_library")
    try:
        library = CadLibrary.load(library_root)
        database = ShapeDatabase.load(shape_db or default_shape_db_path(), expected_library_checksum=library.checksum,
                                      expected_checkpoint_sha256=sha256_file(checkpoint))
    except (ShapeDatabaseError, OSError, ValueError) as exc:
        retrieval_note = f"no retrieval diagnostics: {exc}".replace("\n", " ")
        print(f"model_diagnostics: {retrieval_note}", file=sys.stderr)
    view_size = model.config.depth_encoder.view_size_px
    count = min(num_images, len(dataset))
    with torch.inference_mode():
        for index in tqdm(range(count), unit="img", desc="diagnostics"):
            image, target = dataset[index]
            if len(target["labels"]) == 0:
                continue
            prediction = model.predict_with_boxes([image], [target["boxes"]], [target["labels"]], [target["K"]])[0]
            err = rotation_errors_deg(prediction["quaternions"], target["quaternions"], target.get("symmetries"))
            share = vertical_axis_share(prediction["quaternions"].numpy(), target["quaternions"].numpy())
            flipped_image, flipped = mirror_target(image, target)
            on_flipped = model.predict_with_boxes([flipped_image], [flipped["boxes"]], [flipped["labels"]],
                                                  [flipped["K"]])[0]
            q_mirrored = mirror_quaternions(on_flipped["quaternions"].double().numpy())
            q_mean = np.stack([Rotation.from_quat(np.stack([q, p]), scalar_first=True).mean().as_quat(scalar_first=True)
                               for q, p in zip(q_mirrored, prediction["quaternions"].double().numpy(), strict=True)])
            err_mirrored = rotation_errors_deg(q_mirrored, target["quaternions"], target.get("symmetries"))
            err_mean = rotation_errors_deg(q_mean, target["quaternions"], target.get("symmetries"))
            oracle = mask_oracle(target["masks"], target["boxes"], tuple(image.shape[-2:]))
            predicted = prediction["masks"][:, 0] >= MASK_THRESHOLD
            for k, label in enumerate(target["labels"].tolist()):
                category = CATEGORIES[label - 1]
                errors[category].append(float(err[k]))
                mirrored_errors[category].append(float(err_mirrored[k]))
                mirror_mean_errors[category].append(float(err_mean[k]))
                if err[k] > LARGE_ERROR_DEG:
                    z_share[category].append(float(share[k]))
                truth = target["masks"][k].bool()
                pred_iou[category].append(mask_iou(predicted[k], truth))
                if truth.any():
                    on_mask[category].append(float(prediction["masks"][k, 0][truth].mean()))
                oracle_iou[category].append(mask_iou(oracle[k], truth))
            if database is not None and target.get("model_ids"):
                ids = list(target["model_ids"])
                names = [CATEGORIES[label - 1] for label in target["labels"].tolist()]
                allocentric = ground_truth_allocentric(target)
                views = np.stack([object_depth_view(library.mesh(m), quaternion_to_matrix(q.numpy().astype(np.float64)),
                                                    view_size) for m, q in zip(ids, allocentric, strict=True)])
                own = model.depth_encoder(torch.from_numpy(views)).float()
                checked = database.silhouettes is not None
                truth_masks = box_masks(target["masks"], target["boxes"]) if checked else None
                columns = [retrieval_hits(database, library, prediction["descriptors"], allocentric, ids, names),
                           retrieval_hits(database, library, own, allocentric, ids, names)]
                if checked:
                    columns += [retrieval_hits(database, library, prediction["descriptors"], allocentric, ids, names,
                                               prediction["box_masks"]),
                                retrieval_hits(database, library, own, allocentric, ids, names, truth_masks)]
                for k, name in enumerate(names):
                    rgb_hits[name].append(columns[0][k])
                    view_hits[name].append(columns[1][k])
                    if checked:
                        rgb_checked_hits[name].append(columns[2][k])
                        view_checked_hits[name].append(columns[3][k])
    per_category = {}
    for category in CATEGORIES:
        if not errors[category]:
            continue
        histogram = np.histogram(errors[category], bins=ERROR_BINS_DEG)[0]
        per_category[category] = {
            "objects": len(errors[category]),
            "rotation_median_deg": round(float(np.median(errors[category])), 1),
            "rotation_histogram": [int(h) for h in histogram],
            "rotation_acc_pi6": round(float(np.mean(np.array(errors[category]) < 30.0)), 3),
            "rotation_median_mirror_image_deg": round(float(np.median(mirrored_errors[category])), 1),
            "rotation_acc_pi6_mirror_image": round(float(np.mean(np.array(mirrored_errors[category]) < 30.0)), 3),
            "rotation_median_mirror_mean_deg": round(float(np.median(mirror_mean_errors[category])), 1),
            "rotation_acc_pi6_mirror_mean": round(float(np.mean(np.array(mirror_mean_errors[category]) < 30.0)), 3),
            "large_errors": len(z_share[category]),
            "large_error_vertical_axis_share": (round(float(np.mean(z_share[category])), 2)
                                                if z_share[category] else None),
            "mask_iou_predicted_median": round(float(np.median(pred_iou[category])), 2),
            "mask_iou_oracle28_median": round(float(np.median(oracle_iou[category])), 2),
            "mask_probability_on_truth_median": (round(float(np.median(on_mask[category])), 2)
                                                 if on_mask[category] else None),
        }
        if rgb_hits[category]:
            rgb, view = np.array(rgb_hits[category]), np.array(view_hits[category])
            per_category[category]["retrieval"] = {
                "objects": len(rgb), "rgb_top1": round(float(rgb[:, 0].mean()), 3),
                "rgb_subtype_top1": round(float(rgb[:, 1].mean()), 3),
                "own_view_top1": round(float(view[:, 0].mean()), 3),
                "own_view_subtype_top1": round(float(view[:, 1].mean()), 3)}
            if rgb_checked_hits[category]:
                rgb_c, view_c = np.array(rgb_checked_hits[category]), np.array(view_checked_hits[category])
                per_category[category]["retrieval"] |= {
                    "rgb_checked_top1": round(float(rgb_c[:, 0].mean()), 3),
                    "rgb_checked_subtype_top1": round(float(rgb_c[:, 1].mean()), 3),
                    "own_view_checked_top1": round(float(view_c[:, 0].mean()), 3),
                    "own_view_checked_subtype_top1": round(float(view_c[:, 1].mean()), 3)}
    return {"checkpoint": report_path(checkpoint), "data": report_path(data), "images": count,
            "error_bins_deg": [0, 30, 60, 90, 120, 150, 180], "large_error_deg": LARGE_ERROR_DEG,
            "per_category": per_category, "retrieval_prior_window_deg": PRIOR_WINDOW_DEG,
            "retrieval_note": retrieval_note,
            "shape_db": None if database is None else {"views": len(database), "models": len(database.model_ids)}}


def to_markdown(result: dict) -> str:
    bins = result["error_bins_deg"]
    labels = [f"{a}-{b}" for a, b in zip(bins[:-1], bins[1:], strict=True)]
    lines = ["# Model diagnostics (ground-truth boxes)", "",
             f"Checkpoint `{Path(result['checkpoint']).name}`, {result['images']} images of "
             f"`{result['data']}`. Command: `{result.get('command', 'scripts/model_diagnostics.py')}` "
             "(see its docstring).", "",
             "| category | objects | rotation MedErr (deg) | errors per bin " + " / ".join(labels)
             + f" deg | errors > {result['large_error_deg']:.0f} deg: mean vertical-axis share "
             "| mask IoU predicted (median) | mask IoU 28x28 oracle (median) "
             "| predicted mask probability on the true mask (median) |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    for category, row in result["per_category"].items():
        share = row["large_error_vertical_axis_share"]
        lines.append(f"| {category} | {row['objects']} | {row['rotation_median_deg']} | "
                     f"{' / '.join(str(h) for h in row['rotation_histogram'])} | "
                     f"{'-' if share is None else share} ({row['large_errors']}) | "
                     f"{row['mask_iou_predicted_median']} | {row['mask_iou_oracle28_median']} | "
                     f"{row['mask_probability_on_truth_median']} |")
    lines += ["", "Vertical-axis share: 1 = the error is a pure turn about the object's +z (azimuth), "
              "about 0.5 for random axes.", "",
              "## Rotation on the mirror image", "",
              "The network's rotation for the flipped image (mirrored boxes and camera), mirrored back, and the mean "
              "of that and the rotation for the image itself (test-time flip augmentation). Cells: MedErr (deg) / "
              "Acc_pi/6; mean row: over categories.", "",
              "| category | image | mirror image | mean of both |", "|---|---:|---:|---:|"]
    keys = (("rotation_median_deg", "rotation_acc_pi6"),
            ("rotation_median_mirror_image_deg", "rotation_acc_pi6_mirror_image"),
            ("rotation_median_mirror_mean_deg", "rotation_acc_pi6_mirror_mean"))
    for category, row in result["per_category"].items():
        lines.append(f"| {category} | " + " | ".join(f"{row[m]} / {row[a]}" for m, a in keys) + " |")
    rows_all = list(result["per_category"].values())
    lines += ["| **mean** | " + " | ".join(f"{np.mean([r[m] for r in rows_all]):.1f} / {np.mean([r[a] for r in rows_all]):.3f}"
                                         for m, a in keys) + " |", ""]
    rows = {c: r["retrieval"] for c, r in result["per_category"].items() if "retrieval" in r}
    if rows:
        db = result["shape_db"]
        lines += ["## Retrieval: RGB descriptor vs network 2's own view (oracle)", "",
                  f"Ground-truth boxes and ground-truth pose prior ({result['retrieval_prior_window_deg']:g} deg), "
                  f"shape database of this checkpoint ({db['views']} views of {db['models']} models). Cells: Top-1 / "
                  "sub-type Top-1. Oracle query: network 2's descriptor of the object's own depth view in its exact "
                  "ground-truth pose. Silhouette check: retrieval_node's default weights in the same window, with the "
                  "predicted box masks (RGB) or the ground-truth mask in its box (oracle).", ""]
        columns = [("RGB descriptor (network 1)", "rgb"), ("own depth view (network 2, oracle)", "own_view")]
        if all("rgb_checked_top1" in r for r in rows.values()):
            columns += [("RGB + silhouette check", "rgb_checked"),
                        ("oracle + ground-truth mask + silhouette check", "own_view_checked")]
        lines += ["| category | objects | " + " | ".join(title for title, _ in columns) + " |",
                  "|---|---:|" + "---:|" * len(columns)]
        for category, r in rows.items():
            lines.append(f"| {category} | {r['objects']} | "
                         + " | ".join(f"{r[f'{key}_top1']} / {r[f'{key}_subtype_top1']}" for _, key in columns) + " |")
        mean = {f"{key}{level}": round(float(np.mean([r[f"{key}{level}"] for r in rows.values()])), 3)
                for _, key in columns for level in ("_top1", "_subtype_top1")}
        lines += ["| **mean (categories)** | | "
                  + " | ".join(f"{mean[f'{key}_top1']} / {mean[f'{key}_subtype_top1']}" for _, key in columns)
                  + " |", ""]
    elif result.get("retrieval_note"):
        lines += [f"Retrieval: {result['retrieval_note']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=default_model_path())
    parser.add_argument("--data", type=Path, default=None,
                        help="synthetic dataset folder (default: generate_data's default folder)")
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--shape-db", type=Path, default=None,
                        help="shape database of the checkpoint (default: build_shape_db's output)")
    parser.add_argument("--output", type=Path, default=Path("models/evaluation/diagnostics"),
                        help="writes OUTPUT.md and OUTPUT.json")
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error("--images must be >= 1")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    result = diagnose(args.checkpoint, args.data or default_output_dir(), args.images, args.shape_db)
    result["command"] = " ".join(["scripts/model_diagnostics.py", *(sys.argv[1:] if argv is None else argv)])
    markdown = to_markdown(result)
    write_report(result, args.output.parent, args.output.name, render=lambda _summary, _title: markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
