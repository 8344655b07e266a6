#!/usr/bin/env python3
"""How alike every CAD model looks from a view and from that view turned 180 deg in azimuth.

    .venv/bin/python scripts/front_back_ambiguity.py [--library DIR] [--models ID ...]
        [--viewpoints 36] [--seed 0] [--size 96] [--samples 4000] [--marking-seeds 0 1 2 3]
        [--output models/evaluation/front_back/front_back_ambiguity]

Per model (see :mod:`scene3d_ros.world.front_back` for the definitions):

* the declared symmetry about +z (``library.json``);
* **half turn**: the geometric asymmetry ratio of the mesh turned 180 deg about +z (about 1 =
  c2-symmetric; below ``C2_TOLERANCE`` = ``MIRROR_SYMMETRY_TOLERANCE`` = 2.0 a candidate for a
  declared ``"c2"``), and **front/back mirror**, the ratio for x -> -x; the **deviation** of the
  half-turned surface from the surface (largest and 99th percentile over surface samples, as a
  fraction of the largest extent; the library's tests accept a declared symmetry below
  ``DECLARED_SYMMETRY_DEVIATION`` = 0.01 for the largest);
* **rendered**, over ``--viewpoints`` viewpoints drawn (``--seed``) from the scene sampler's
  distribution (azimuth 0-360, elevation -10..60, in-plane +-15 deg), ``--size`` px normalised
  depth views of (az, el, ip) against (az + 180, el, ip): the median silhouette IoU, the share of
  viewpoints whose IoU is at least 0.9, and the median mean absolute view-map difference (radius
  units) over the union of the silhouettes and over their overlap;
* **appearance**, the same viewpoint pairs rendered in RGB (``--size`` px, one uniform grey
  material, a fixed light and background, framed as the depth views): the median over viewpoints
  of the mean absolute RGB difference (grey levels, 0-255) over the overlap of the silhouettes,
  and the share of viewpoints above ``DISTINCT_RGB_DIFFERENCE`` = 5 grey levels, **before**
  semantic surface markings (none painted) and **after** (the model's scheme, ``scheme_for``;
  the per-viewpoint difference averaged over ``--marking-seeds``).

Then per category: how many models lie within the c2 tolerance, and the medians. Writes
OUTPUT.md and OUTPUT.json (atomically), with the machine's load average at the start and the end
of the run and its wall time (the appearance renders share the CPU with whatever else runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from scene3d_ros import CATEGORIES
from scene3d_ros.evaluation import write_report
from scene3d_ros.paths import report_path
from scene3d_ros.world.cad_library import CadLibrary, ensure_cad_library
from scene3d_ros.world.front_back import (
    APPEARANCE_BACKGROUND,
    APPEARANCE_GREY,
    APPEARANCE_LIGHT,
    C2_TOLERANCE,
    DECLARED_SYMMETRY_DEVIATION,
    DISTINCT_RGB_DIFFERENCE,
    MARKING_SEEDS,
    FlipAppearanceComparison,
    compare_flipped_appearance,
    compare_flipped_views,
    front_back_asymmetry,
    front_back_mirror_asymmetry,
    half_turn_deviation,
    sample_viewpoints,
)
from scene3d_ros.world.markings import scheme_for
from scene3d_ros.world.renderer import Renderer
from scene3d_ros.world.scene_sampler import SceneConfig

SIMILAR_IOU = 0.9
"""Silhouette IoU from which a view and its 180 deg turn count as near-identical silhouettes."""
MOST_AMBIGUOUS = 20
"""Rows of the report's list of the least front/back-distinct models."""


def _median(values: np.ndarray) -> float | None:
    """Median ignoring NaN; None when nothing is defined (JSON has no NaN)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else None


def measure_model(library: CadLibrary, model_id: str, viewpoints: np.ndarray, size_px: int, samples: int,
                  renderer: Renderer, marking_seeds: tuple[int, ...] = MARKING_SEEDS) -> dict[str, Any]:
    """One report row: identity, declared symmetry, geometric scores, rendered depth medians and the
    appearance (RGB) difference before/after surface markings of ``model_id``."""
    model = library.get(model_id)
    mesh = library.mesh(model_id)
    half_turn = front_back_asymmetry(mesh, samples)
    views = compare_flipped_views(mesh, viewpoints, size_px, renderer)
    scheme = scheme_for(model.category, model.symmetry)
    looks = compare_flipped_appearance(mesh, viewpoints, scheme, size_px, marking_seeds, renderer)
    return {
        "model_id": model_id, "category": model.category, "subtype": model.subtype, "source": model.source,
        "declared_symmetry": model.symmetry,
        "half_turn_asymmetry": half_turn,
        "front_back_mirror_asymmetry": front_back_mirror_asymmetry(mesh, samples),
        "within_c2_tolerance": bool(half_turn < C2_TOLERANCE),
        "half_turn_deviation_max": half_turn_deviation(mesh),
        "half_turn_deviation_p99": half_turn_deviation(mesh, percentile=99.0),
        "median_iou": _median(views.iou),
        "share_iou_similar": float(np.mean(views.iou >= SIMILAR_IOU)),
        "median_depth_difference": _median(views.depth_difference),
        "median_overlap_depth_difference": _median(views.overlap_depth_difference),
        "marking_scheme": scheme,
        "median_rgb_difference_before": _median(looks.before),
        "median_rgb_difference_after": _median(looks.after),
        "share_rgb_distinct_before": _share(looks.before),
        "share_rgb_distinct_after": _share(looks.after),
    }


def _share(differences: np.ndarray) -> float | None:
    """Share of viewpoints above ``DISTINCT_RGB_DIFFERENCE``; None when none is defined (JSON has no NaN)."""
    share = FlipAppearanceComparison.share_distinct(differences)
    return None if np.isnan(share) else share


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-category summary (``scene3d_ros.CATEGORIES`` order, then ``all``) of the model rows."""
    groups = [(c, [r for r in rows if r["category"] == c]) for c in CATEGORIES] + [("all", rows)]
    summary = []
    for category, members in groups:
        if not members:
            continue

        def median_of(key: str, members: list[dict[str, Any]] = members) -> float | None:
            return _median(np.array([np.nan if r[key] is None else r[key] for r in members], dtype=np.float64))

        summary.append({
            "category": category, "models": len(members),
            "declared_symmetric": sum(r["declared_symmetry"] != "none" for r in members),
            "within_c2_tolerance": sum(r["within_c2_tolerance"] for r in members),
            "c2_candidates": sum(r["within_c2_tolerance"] and r["declared_symmetry"] == "none" for r in members),
            "exactly_c2": sum(r["half_turn_deviation_max"] < DECLARED_SYMMETRY_DEVIATION for r in members),
            "with_markings": sum(bool(r["marking_scheme"]) for r in members),
            **{f"median_{key}": median_of(key) for key in (
                "half_turn_asymmetry", "front_back_mirror_asymmetry", "half_turn_deviation_p99", "median_iou",
                "share_iou_similar", "median_depth_difference", "median_overlap_depth_difference",
                "median_rgb_difference_before", "median_rgb_difference_after",
                "share_rgb_distinct_before", "share_rgb_distinct_after")},
        })
    return summary


def _loadavg() -> list[float]:
    """The machine's load average over 1, 5 and 15 minutes (``/proc/loadavg``)."""
    return [round(x, 2) for x in os.getloadavg()]


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(result: dict[str, Any]) -> str:
    """The report: header (command, library, settings, machine), category summaries (geometry and depth;
    appearance before/after markings), least distinct models (by depth, by appearance), all rows."""
    settings = result["settings"]
    lines = [
        "# Front/back ambiguity of the CAD library",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Library `{result['library']}` (checksum `{result['library_checksum'][:12]}`, {len(result['models'])} "
        f"models). {settings['viewpoints']} viewpoints (seed {settings['seed']}) from the scene sampler's "
        f"distribution (azimuth {settings['azimuth_deg_range']}, elevation {settings['elevation_deg_range']}, "
        f"in-plane {settings['inplane_deg_range']} deg), {settings['size_px']} px normalised depth views "
        f"(`object_depth_view`), {settings['samples']} surface samples per geometric score.",
        "",
        "- **half turn**: geometric asymmetry ratio of the mesh vs itself turned 180 deg about +z "
        f"(~1 = c2-symmetric; within the c2 tolerance below {C2_TOLERANCE:g}, the left/right mirror tolerance).",
        "- **f/b mirror**: the same ratio for the front/back mirror x -> -x.",
        "- **dev max / dev p99**: distance of the half-turned surface samples from the surface, largest and 99th "
        "percentile, as a fraction of the largest extent; **exactly c2**: dev max below "
        f"{DECLARED_SYMMETRY_DEVIATION:g}, what the library's tests require of a declared symmetry. The ratio "
        "is relative to the sampling noise, which grows with the surface: it is loose for large objects.",
        "- **IoU**: median over viewpoints of the silhouette IoU of view (az, el, ip) vs (az + 180, el, ip); "
        f"**IoU>={SIMILAR_IOU:g}**: share of viewpoints with near-identical silhouettes.",
        "- **depth diff**: median over viewpoints of the mean |view-map difference| (radius units) over the "
        "union of the two silhouettes (background counts as 1.5); **overlap diff**: over their overlap only.",
        f"- **RGB before / after**: median over viewpoints of the mean |RGB difference| (grey levels, 0-255, "
        f"mean of the channels) of view (az, el, ip) vs (az + 180, el, ip) over the overlap of their silhouettes, "
        f"{settings['size_px']} px renders framed as the depth views, every part albedo {APPEARANCE_GREY:g} grey, "
        f"no texture noise, the default light (camera frame), background grey {APPEARANCE_BACKGROUND}; **before**: "
        "no surface markings; **after**: the model's marking scheme (`scheme_for(category, symmetry)`; none for "
        "declared symmetries and for categories without one, so after = before there), the per-viewpoint "
        f"difference averaged over marking seeds {settings['marking_seeds']}. **>{DISTINCT_RGB_DIFFERENCE:g} "
        f"before / after**: share of viewpoints whose difference exceeds {DISTINCT_RGB_DIFFERENCE:g} grey levels "
        "(`DISTINCT_RGB_DIFFERENCE`, ~2 % of the range: a lamp or windscreen over ~5 % of the overlap).",
        "",
        f"Machine: {result['machine']['cpus']} CPUs, load average (1, 5, 15 min) "
        f"{result['machine']['loadavg_start']} at the start and {result['machine']['loadavg_end']} at the end, "
        f"wall time {result['machine']['wall_s']:.0f} s (renderer on 1 thread, niceness {result['machine']['niceness']}).",
        "",
        "## Per category (medians over models)",
        "",
        "| category | models | declared symmetric | within c2 tol. | c2 candidates (declared none) | exactly c2 "
        "| half turn | f/b mirror | dev p99 | IoU | IoU>=0.9 | depth diff | overlap diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["categories"]:
        lines.append(
            f"| {s['category']} | {s['models']} | {s['declared_symmetric']} | {s['within_c2_tolerance']} "
            f"| {s['c2_candidates']} | {s['exactly_c2']} | {_cell(s['median_half_turn_asymmetry'])} "
            f"| {_cell(s['median_front_back_mirror_asymmetry'])} | {_cell(s['median_half_turn_deviation_p99'], 4)} "
            f"| {_cell(s['median_median_iou'], 3)} "
            f"| {_cell(s['median_share_iou_similar'])} | {_cell(s['median_median_depth_difference'], 3)} "
            f"| {_cell(s['median_median_overlap_depth_difference'], 3)} |")
    lines += ["", "## Appearance before / after surface markings, per category (medians over models)", "",
              f"| category | models | with markings | RGB before | RGB after | >{DISTINCT_RGB_DIFFERENCE:g} before "
              f"| >{DISTINCT_RGB_DIFFERENCE:g} after |",
              "|---|---|---|---|---|---|---|"]
    for s in result["categories"]:
        lines.append(
            f"| {s['category']} | {s['models']} | {s['with_markings']} | {_cell(s['median_median_rgb_difference_before'])} "
            f"| {_cell(s['median_median_rgb_difference_after'])} | {_cell(s['median_share_rgb_distinct_before'])} "
            f"| {_cell(s['median_share_rgb_distinct_after'])} |")
    candidates = [r["model_id"] for r in result["models"]
                  if r["within_c2_tolerance"] and r["declared_symmetry"] == "none"]
    lines += ["", f"**c2 candidates** (declared `none`, half turn < {C2_TOLERANCE:g}): "
              + (", ".join(f"`{m}`" for m in candidates) if candidates else "none"), ""]
    ranked = sorted((r for r in result["models"] if r["declared_symmetry"] == "none"),
                    key=lambda r: r["median_depth_difference"])
    lines += [f"## The {MOST_AMBIGUOUS} least front/back-distinct models declared `none` (by depth diff)", "",
              "| model | half turn | f/b mirror | dev max | dev p99 | IoU | IoU>=0.9 | depth diff | overlap diff |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in ranked[:MOST_AMBIGUOUS]:
        lines.append(f"| {r['model_id']} | {_cell(r['half_turn_asymmetry'])} | {_cell(r['front_back_mirror_asymmetry'])} "
                     f"| {_cell(r['half_turn_deviation_max'], 4)} | {_cell(r['half_turn_deviation_p99'], 4)} "
                     f"| {_cell(r['median_iou'], 3)} | {_cell(r['share_iou_similar'])} "
                     f"| {_cell(r['median_depth_difference'], 3)} | {_cell(r['median_overlap_depth_difference'], 3)} |")
    looks = sorted((r for r in result["models"] if r["declared_symmetry"] == "none"
                    and r["median_rgb_difference_after"] is not None),
                   key=lambda r: r["median_rgb_difference_after"])
    lines += ["", f"## The {MOST_AMBIGUOUS} least front/back-distinct models declared `none` in appearance "
              "(by RGB after)", "",
              f"| model | markings | RGB before | RGB after | >{DISTINCT_RGB_DIFFERENCE:g} before "
              f"| >{DISTINCT_RGB_DIFFERENCE:g} after |",
              "|---|---|---|---|---|---|"]
    for r in looks[:MOST_AMBIGUOUS]:
        lines.append(f"| {r['model_id']} | {r['marking_scheme'] or '-'} | {_cell(r['median_rgb_difference_before'])} "
                     f"| {_cell(r['median_rgb_difference_after'])} | {_cell(r['share_rgb_distinct_before'])} "
                     f"| {_cell(r['share_rgb_distinct_after'])} |")
    lines += ["", "## Every model", "",
              "| model | declared | half turn | within c2 tol. | f/b mirror | dev max | dev p99 | IoU | IoU>=0.9 "
              f"| depth diff | overlap diff | markings | RGB before | RGB after | >{DISTINCT_RGB_DIFFERENCE:g} before "
              f"| >{DISTINCT_RGB_DIFFERENCE:g} after |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["models"]:
        lines.append(f"| {r['model_id']} | {r['declared_symmetry']} | {_cell(r['half_turn_asymmetry'])} "
                     f"| {_cell(r['within_c2_tolerance'])} | {_cell(r['front_back_mirror_asymmetry'])} "
                     f"| {_cell(r['half_turn_deviation_max'], 4)} | {_cell(r['half_turn_deviation_p99'], 4)} "
                     f"| {_cell(r['median_iou'], 3)} | {_cell(r['share_iou_similar'])} "
                     f"| {_cell(r['median_depth_difference'], 3)} | {_cell(r['median_overlap_depth_difference'], 3)} "
                     f"| {r['marking_scheme'] or '-'} | {_cell(r['median_rgb_difference_before'])} "
                     f"| {_cell(r['median_rgb_difference_after'])} | {_cell(r['share_rgb_distinct_before'])} "
                     f"| {_cell(r['share_rgb_distinct_after'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", type=Path, default=None, help="CAD library folder (default: the default one)")
    parser.add_argument("--models", nargs="+", default=None, help="model ids to measure (default: all)")
    parser.add_argument("--viewpoints", type=int, default=36, help="viewpoints per model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the viewpoint sample")
    parser.add_argument("--size", type=int, default=96, help="depth view side, pixels")
    parser.add_argument("--samples", type=int, default=4000, help="surface samples per geometric score")
    parser.add_argument("--marking-seeds", type=int, nargs="+", default=list(MARKING_SEEDS),
                        help="marking seeds the appearance 'after' measure averages over")
    parser.add_argument("--output", type=Path, default=Path("models/evaluation/front_back/front_back_ambiguity"),
                        help="writes OUTPUT.md and OUTPUT.json")
    args = parser.parse_args(argv)

    library = ensure_cad_library(args.library, progress=True)
    model_ids = args.models or [m.model_id for m in library.models]
    for model_id in model_ids:
        library.get(model_id)  # KeyError naming the unknown id before any work
    config = SceneConfig()
    viewpoints = sample_viewpoints(args.viewpoints, args.seed, config)
    marking_seeds = tuple(args.marking_seeds)
    renderer = Renderer(nthreads=1)  # leave the other cores to whatever else runs
    loadavg_start, started = _loadavg(), time.monotonic()
    rows = [measure_model(library, m, viewpoints, args.size, args.samples, renderer, marking_seeds)
            for m in tqdm(model_ids, desc="front/back", unit="model")]
    machine = {"cpus": os.cpu_count(), "niceness": os.nice(0), "loadavg_start": loadavg_start, "loadavg_end": _loadavg(),
               "wall_s": round(time.monotonic() - started, 1)}
    result = {
        "command": " ".join([".venv/bin/python scripts/front_back_ambiguity.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "library": report_path(library.root), "library_checksum": library.checksum,
        "settings": {"viewpoints": args.viewpoints, "seed": args.seed, "size_px": args.size, "samples": args.samples,
                     "azimuth_deg_range": list(config.azimuth_deg_range),
                     "elevation_deg_range": list(config.elevation_deg_range),
                     "inplane_deg_range": list(config.inplane_deg_range),
                     "c2_tolerance": C2_TOLERANCE, "similar_iou": SIMILAR_IOU,
                     "declared_symmetry_deviation": DECLARED_SYMMETRY_DEVIATION,
                     "marking_seeds": list(marking_seeds), "appearance_grey": APPEARANCE_GREY,
                     "appearance_background": APPEARANCE_BACKGROUND,
                     "appearance_light_direction": list(APPEARANCE_LIGHT.direction),
                     "distinct_rgb_difference": DISTINCT_RGB_DIFFERENCE},
        "machine": machine,
        "categories": summarise(rows),
        "models": rows,
    }
    md_path, json_path = write_report(result, args.output.parent, args.output.name,
                                      render=lambda summary, _title: to_markdown(summary))
    print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
