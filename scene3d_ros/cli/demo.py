"""demo: the main job on embedded defaults.

Renders sample scenes from the shipped CAD library with the synthetic world, runs the shipped
network on each (models/scene3d_default.pt; skipped with a notice when absent or --no-model)
and writes, per scene, the RGB image, instance masks, depth, an overview picture
(RGB | ground truth: boxes and pose axes | prediction: masks, boxes and pose axes | depth), the
ground truth and the predictions as JSON, and prints each scene's rotation/translation errors
against the ground truth.

    demo [--output output/demo] [--num-scenes 4] [--seed 0] [--checkpoint PATH] [--no-model]
         [--config F] [--set scene.image_sizes=[[640,480]]]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from scene3d_ros.config import ConfigError, add_config_arguments, dataclass_from_dict, load_config
from scene3d_ros.evaluation import match_detections, rotation_errors_deg, translation_errors
from scene3d_ros.model import CheckpointError
from scene3d_ros.paths import atomic_write_bytes, atomic_write_text, default_model_path, packaged_config_file
from scene3d_ros.pipeline import DetectedObject, Pipeline
from scene3d_ros.visualization import (
    colourise_depth,
    colourise_instances,
    draw_detections,
    draw_objects,
    side_by_side,
)
from scene3d_ros.world.annotations import generate_annotated_scene
from scene3d_ros.world.cad_library import CadLibraryError, ensure_cad_library
from scene3d_ros.world.renderer import Renderer
from scene3d_ros.world.scene_sampler import SceneConfig


def _png(image: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _errors(objects: list[DetectedObject], annotations) -> dict:
    """Match predictions to ground truth (same class, box IoU >= 0.5) and measure pose errors."""
    if not objects or not annotations:
        return {"matched": 0, "rotation_deg": [], "translation_m": []}
    pred = {"boxes": np.array([o.box for o in objects]), "labels": np.array([o.label for o in objects]),
            "scores": np.array([o.score for o in objects])}
    gt = {"boxes": np.array([a.box for a in annotations], dtype=np.float64),
          "labels": np.array([a.label for a in annotations])}
    pairs = match_detections(pred, gt)
    if not pairs:
        return {"matched": 0, "rotation_deg": [], "translation_m": []}
    p, g = (list(x) for x in zip(*pairs, strict=True))
    rotation = rotation_errors_deg(np.array([objects[i].quaternion for i in p]),
                                   np.array([annotations[j].quaternion for j in g]),
                                   [annotations[j].symmetry for j in g])
    translation, _ = translation_errors(np.array([objects[i].translation for i in p]),
                                        np.array([annotations[j].translation for j in g]))
    return {"matched": len(pairs), "rotation_deg": [round(float(e), 1) for e in rotation],
            "translation_m": [round(float(e), 3) for e in translation]}


def run_demo(output: Path, num_scenes: int, seed: int, scene_config: SceneConfig, cad_library: str | None,
             pipeline: Pipeline | None = None) -> dict:
    """Render ``num_scenes`` scenes into ``output`` (and run ``pipeline`` on them); returns a summary."""
    library = ensure_cad_library(cad_library)
    renderer = Renderer()
    rng = np.random.default_rng(seed)
    output.mkdir(parents=True, exist_ok=True)
    summary = {"scenes": [], "cad_library": str(library.root), "cad_library_checksum": library.checksum}
    start = time.perf_counter()
    for i in tqdm(range(num_scenes), desc="rendering scenes", unit="scene"):
        frame = generate_annotated_scene(rng, library, scene_config, renderer)
        rgb, intrinsics = frame.rendered.rgb, frame.scene.intrinsics
        annotations = frame.annotations
        boxes_view = draw_detections(
            rgb, [a.box for a in annotations], [a.category for a in annotations],
            [a.quaternion for a in annotations], [a.translation for a in annotations], intrinsics,
            [0.5 * max(library.get(a.model_id).extents) for a in annotations])
        stem = output / f"scene_{i:03d}"
        instances_view = colourise_instances(frame.rendered.instance)
        depth_view = colourise_depth(frame.rendered.depth)
        panels = [rgb, boxes_view]
        scene_summary = {"scene": i, "objects": [a.category for a in annotations]}
        if pipeline is not None:
            t0 = time.perf_counter()
            objects = pipeline(rgb, intrinsics)
            scene_summary["inference_ms"] = round(1e3 * (time.perf_counter() - t0), 1)
            scene_summary["detections"] = [o.category for o in objects]
            scene_summary.update(_errors(objects, annotations))
            panels.append(draw_objects(rgb, objects, intrinsics))
            atomic_write_text(f"{stem}_predictions.json", json.dumps([
                {"category": o.category, "score": round(o.score, 4), "box": o.box.round(1).tolist(),
                 "quaternion": o.quaternion.round(6).tolist(), "translation": o.translation.round(4).tolist(),
                 "size": o.size.round(3).tolist()} for o in objects], indent=1))
        else:
            panels.append(instances_view)
        panels.append(depth_view)
        atomic_write_bytes(f"{stem}_rgb.png", _png(rgb))
        atomic_write_bytes(f"{stem}_instances.png", _png(instances_view))
        atomic_write_bytes(f"{stem}_depth.png", _png(depth_view))
        atomic_write_bytes(f"{stem}_overview.png", _png(side_by_side(panels)))
        record = {"intrinsics": intrinsics.matrix.tolist(), "width": intrinsics.width, "height": intrinsics.height,
                  "frame": "camera optical frame (x right, y down, z forward), metres",
                  "objects": [a.to_dict() for a in annotations]}
        atomic_write_text(f"{stem}_ground_truth.json", json.dumps(record, indent=1))
        summary["scenes"].append(scene_summary)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    atomic_write_text(output / "summary.json", json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, packaged_config_file("generate_data.yaml"))
    parser.add_argument("--output", type=Path, default=Path("output/demo"), help="output folder (default output/demo)")
    parser.add_argument("--num-scenes", type=int, default=4, help="scenes to render (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--checkpoint", type=Path, default=None, help=f"network (default {default_model_path()})")
    parser.add_argument("--no-model", action="store_true", help="render scenes only, do not run the network")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    if args.num_scenes < 1:
        parser.error("--num-scenes must be >= 1")
    try:
        config = load_config(args.config, args.overrides)
        scene_config = dataclass_from_dict(SceneConfig, config.get("scene"), "scene")
        pipeline = None
        checkpoint = args.checkpoint or default_model_path()
        if args.no_model:
            pass
        elif checkpoint.exists():
            pipeline = Pipeline(checkpoint, args.device, library=ensure_cad_library(config.get("cad_library")))
        else:
            print(f"demo: no network at {checkpoint}: rendering scenes only", file=sys.stderr)
        summary = run_demo(args.output, args.num_scenes, args.seed, scene_config, config.get("cad_library"), pipeline)
    except (ConfigError, CadLibraryError, CheckpointError, ValueError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    for scene in summary["scenes"]:
        line = f"scene {scene['scene']:3d}: {len(scene['objects'])} objects: {', '.join(scene['objects'])}"
        if "detections" in scene:
            line += (f"\n           {len(scene['detections'])} detected, {scene['matched']} matched; rotation error "
                     f"{scene['rotation_deg']} deg; translation error {scene['translation_m']} m; "
                     f"{scene['inference_ms']} ms")
        print(line)
    errors = [e for s in summary["scenes"] for e in s.get("rotation_deg", [])]
    if errors:
        print(f"median rotation error over {len(errors)} matched objects: {np.median(errors):.1f} deg")
    print(f"wrote {len(summary['scenes'])} scenes to {args.output}/ in {summary['seconds']} s "
          f"(overview: {args.output}/scene_000_overview.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
