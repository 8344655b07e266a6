"""demo: the main job on embedded defaults.

At this stage of the project it renders sample scenes from the shipped CAD library with the
synthetic world and writes, per scene, the RGB image, instance masks, depth, an overview picture
(RGB | ground-truth boxes and pose axes | instances | depth) and the ground truth as JSON.

    demo [--output output/demo] [--num-scenes 4] [--seed 0] [--config F] [--set scene.image_sizes=[[640,480]]]
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
from scene3d_ros.paths import atomic_write_bytes, atomic_write_text, config_dir
from scene3d_ros.visualization import colourise_depth, colourise_instances, draw_detections, side_by_side
from scene3d_ros.world.annotations import generate_annotated_scene
from scene3d_ros.world.cad_library import CadLibraryError, ensure_cad_library
from scene3d_ros.world.renderer import Renderer
from scene3d_ros.world.scene_sampler import SceneConfig


def _png(image: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def run_demo(output: Path, num_scenes: int, seed: int, scene_config: SceneConfig, cad_library: str | None) -> dict:
    """Render ``num_scenes`` scenes into ``output``; returns a summary dict."""
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
        atomic_write_bytes(f"{stem}_rgb.png", _png(rgb))
        atomic_write_bytes(f"{stem}_instances.png", _png(colourise_instances(frame.rendered.instance)))
        atomic_write_bytes(f"{stem}_depth.png", _png(colourise_depth(frame.rendered.depth)))
        atomic_write_bytes(f"{stem}_overview.png", _png(side_by_side(
            [rgb, boxes_view, colourise_instances(frame.rendered.instance), colourise_depth(frame.rendered.depth)])))
        record = {"intrinsics": intrinsics.matrix.tolist(), "width": intrinsics.width, "height": intrinsics.height,
                  "frame": "camera optical frame (x right, y down, z forward), metres",
                  "objects": [a.to_dict() for a in annotations]}
        atomic_write_text(f"{stem}_ground_truth.json", json.dumps(record, indent=1))
        summary["scenes"].append({"scene": i, "objects": [a.category for a in annotations]})
    summary["seconds"] = round(time.perf_counter() - start, 2)
    atomic_write_text(output / "summary.json", json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, config_dir() / "generate_data.yaml")
    parser.add_argument("--output", type=Path, default=Path("output/demo"), help="output folder (default output/demo)")
    parser.add_argument("--num-scenes", type=int, default=4, help="scenes to render (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.num_scenes < 1:
        parser.error("--num-scenes must be >= 1")
    try:
        config = load_config(args.config, args.overrides)
        scene_config = dataclass_from_dict(SceneConfig, config.get("scene"), "scene")
        summary = run_demo(args.output, args.num_scenes, args.seed, scene_config, config.get("cad_library"))
    except (ConfigError, CadLibraryError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    for scene in summary["scenes"]:
        print(f"scene {scene['scene']:3d}: {len(scene['objects'])} objects: {', '.join(scene['objects'])}")
    print(f"wrote {len(summary['scenes'])} scenes to {args.output}/ in {summary['seconds']} s "
          f"(overview: {args.output}/scene_000_overview.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
