"""demo: the main job on embedded defaults: camera images -> semantic 3D scenes.

Default (the ROS graph): starts the synthetic camera, perception_node and retrieval_node as
separate processes talking over DDS (localhost only, a random ROS_DOMAIN_ID), records the
outputs of ``--frames`` processed frames in this process, and writes per frame:

  frame_XXX_overlay.png   input | instance segmentation (the perception node's debug image) |
                          the retrieved CAD models posed in 3D, seen from the camera | and from a
                          second viewpoint (the style of the paper's qualitative figure)
  frame_XXX.glb           the 3D scene (glTF; camera at the origin looking down -z, y up)
  frame_XXX.json          objects (category, score, pose in the optical frame, size, model), the
                          ground truth, per-object errors, end-to-end latency

and prints a summary (objects per frame, rotation/translation error against the synthetic
camera's ground truth, retrieval hits, latency from the image stamp to detections_3d / objects).

``--images [FOLDER]`` replaces the synthetic camera with the image-folder camera: the images of
FOLDER (with its ``intrinsics.yaml``, else ``--hfov``) or, without FOLDER, the real calibrated
sample photos that ship with scikit-image (no ground truth then, so no errors are printed).

``--image FILE`` runs the same pipeline without ROS on one image file (a photo of your own, with
an assumed horizontal field of view ``--hfov``) and writes the same picture, GLB and JSON.

The shape database of the network is built on first use when missing (~1 min on 2 CPU cores).

    demo [--output output/demo] [--frames 4] [--seed 0] [--rate-hz 2] [--size 640x480]
         [--checkpoint PATH] [--shape-db PATH] [--device auto] [--score-threshold 0.5]
    demo --images [FOLDER] [--hfov 60] [--frames 4] [...]
    demo --image photo.jpg [--hfov 60] [--output output/demo] [...]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from scene3d_ros.geometry import CameraIntrinsics, quaternion_to_matrix, symmetric_rotation_error_deg
from scene3d_ros.image_source import photos_in_folder
from scene3d_ros.paths import atomic_write_bytes, atomic_write_text, default_model_path
from scene3d_ros.pipeline import DetectedObject
from scene3d_ros.retrieval import ShapeDatabaseError, default_shape_db_path
from scene3d_ros.scene_view import posed_meshes, render_views, scene_glb
from scene3d_ros.visualization import draw_objects, side_by_side
from scene3d_ros.world.cad_library import CadLibrary, CadLibraryError, ensure_cad_library
from scene3d_ros.world.renderer import Renderer

PANEL_TITLES = ("input", "instance segmentation", "3D: camera view", "3D: second view")


# --------------------------------------------------------------------------- outputs
def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _titled(image: np.ndarray, title: str) -> np.ndarray:
    from PIL import ImageDraw

    picture = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(picture)
    draw.rectangle([0, 0, 8 + 6 * len(title), 14], fill=(0, 0, 0))
    draw.text((4, 2), title, fill=(255, 255, 255))
    return np.asarray(picture)


def object_record(obj: DetectedObject) -> dict:
    """JSON form of one object (optical frame, metres; quaternion w, x, y, z)."""
    return {"category": obj.category, "score": round(float(obj.score), 4),
            "quaternion": np.round(obj.quaternion, 6).tolist(), "translation": np.round(obj.translation, 4).tolist(),
            "size": np.round(obj.size, 4).tolist(), "model_id": obj.model_id, "fallback": obj.fallback,
            "model_quaternion": None if obj.model_quaternion is None else np.round(obj.model_quaternion, 6).tolist(),
            "retrieval_distance": None if obj.retrieval_distance is None else round(float(obj.retrieval_distance), 4)}


def write_frame(output: Path, name: str, rgb: np.ndarray, segmentation: np.ndarray, objects: list[DetectedObject],
                intrinsics: CameraIntrinsics, library: CadLibrary, renderer: Renderer, record: dict) -> Path:
    """``<name>_overlay.png``, ``<name>.glb`` and ``<name>.json`` (``record`` + the objects); returns the PNG."""
    meshes = posed_meshes(objects, library)
    camera_view, side_view = render_views(meshes, intrinsics, renderer)
    panels = [_titled(p, t) for p, t in zip((rgb, segmentation, camera_view, side_view), PANEL_TITLES, strict=True)]
    overlay = output / f"{name}_overlay.png"
    atomic_write_bytes(overlay, _png(side_by_side(panels)))
    atomic_write_bytes(output / f"{name}.glb", scene_glb(meshes))
    record = {"frame": "camera optical frame (x right, y down, z forward), metres", "intrinsics":
              intrinsics.matrix.tolist(), "width": intrinsics.width, "height": intrinsics.height,
              "objects": [object_record(o) for o in objects]} | record
    atomic_write_text(output / f"{name}.json", json.dumps(record, indent=1) + "\n")
    return overlay


def match_to_ground_truth(objects: list[DetectedObject], truth: list[dict], library: CadLibrary) -> list[dict]:
    """Greedy 3D matching (same category, nearest centres first, within 50 % of the true distance)
    and the matched pairs' errors: symmetry-aware rotation (degrees), translation (metres),
    whether the retrieved model is the true one."""
    candidates = []
    for i, obj in enumerate(objects):
        for j, gt in enumerate(truth):
            if obj.category == gt["category"]:
                distance = float(np.linalg.norm(obj.translation - gt["translation"]))
                if distance <= 0.5 * float(np.linalg.norm(gt["translation"])):
                    candidates.append((distance, i, j))
    used_pred, used_gt, pairs = set(), set(), []
    for distance, i, j in sorted(candidates):
        if i in used_pred or j in used_gt:
            continue
        used_pred.add(i)
        used_gt.add(j)
        gt = truth[j]
        symmetry = library.get(gt["model_id"]).symmetry
        rotation = float(symmetric_rotation_error_deg(quaternion_to_matrix(objects[i].quaternion),
                                                      quaternion_to_matrix(gt["quaternion"]), symmetry))
        pairs.append({"object": i, "ground_truth": j, "category": gt["category"], "rotation_error_deg": round(rotation, 2),
                      "translation_error_m": round(distance, 4), "model_correct": objects[i].model_id == gt["model_id"]})
    return pairs


def _summary_line(values: list[float], unit: str) -> str:
    if not values:
        return "n/a"
    return f"median {np.median(values):.1f} {unit} (p95 {np.percentile(values, 95):.1f}, n={len(values)})"


# --------------------------------------------------------------------------- shape database
def ensure_shape_db(checkpoint: Path, shape_db: Path | None, device: str) -> Path:
    """The shape database for ``checkpoint``: ``shape_db`` when given, else the default file for the
    shipped model (or ``shape_db_<sha12>.pt`` next to it for another checkpoint), built when missing
    or stale (``build_shape_db --if-needed``)."""
    if shape_db is not None:
        return shape_db
    from scene3d_ros.cli.build_shape_db import main as build_shape_db_main
    from scene3d_ros.data.shards import sha256_file

    path = default_shape_db_path()
    if checkpoint.resolve() != default_model_path().resolve():
        path = path.with_name(f"shape_db_{sha256_file(checkpoint)[:12]}.pt")
    code = build_shape_db_main(["--checkpoint", str(checkpoint), "--output", str(path), "--if-needed",
                                "--device", device, "--quiet"])
    if code != 0:
        raise ShapeDatabaseError(f"could not build the shape database {path} (build_shape_db exit code {code})")
    return path


# --------------------------------------------------------------------------- offline: one image
def run_image(image_path: Path, output: Path, hfov_deg: float, checkpoint: Path, shape_db: Path, device: str,
              score_threshold: float) -> dict:
    """The pipeline (network + retrieval) on one image file, without ROS; returns the frame record."""
    from scene3d_ros.pipeline import Pipeline
    from scene3d_ros.retrieval import ShapeDatabase

    library = ensure_cad_library()
    rgb = np.asarray(Image.open(image_path).convert("RGB"))
    intrinsics = CameraIntrinsics.from_fov(rgb.shape[1], rgb.shape[0], hfov_deg)
    db = ShapeDatabase.load(shape_db, expected_library_checksum=library.checksum)
    pipeline = Pipeline(checkpoint, device, score_threshold, library=library, shape_db=db)
    start = time.perf_counter()
    objects = pipeline(rgb, intrinsics)
    seconds = time.perf_counter() - start
    output.mkdir(parents=True, exist_ok=True)
    record = {"image": str(image_path), "assumed_hfov_deg": hfov_deg, "pipeline_ms": round(1e3 * seconds, 1)}
    overlay = write_frame(output, image_path.stem, rgb, draw_objects(rgb, objects, intrinsics), objects, intrinsics,
                          library, Renderer(), record)
    pipeline.close()
    names = ", ".join(f"{o.category} ({o.model_id or 'cuboid'})" for o in objects) or "-"
    print(f"{image_path}: {len(objects)} objects in {1e3 * seconds:.0f} ms: {names}")
    print(f"wrote {overlay}, {output / image_path.stem}.glb and .json")
    return record | {"objects": [object_record(o) for o in objects]}


# --------------------------------------------------------------------------- the ROS graph
def run_graph(output: Path, frames: int, seed: int, rate_hz: float, size: tuple[int, int], checkpoint: Path,
              shape_db: Path, device: str, score_threshold: float, timeout_s: float,
              images: str | None = None, hfov_deg: float = 60.0) -> dict:
    """Start camera -> perception -> retrieval, record ``frames`` processed frames, write them; returns the summary.

    The camera is the synthetic camera (with ground truth), or with ``images`` the image-folder
    camera on that folder (``""``: the sample photos; no ground truth).
    """
    from scene3d_ros.ros.conversions import image_msg_to_rgb, intrinsics_from_camera_info
    from scene3d_ros.ros.environment import use_localhost_ros_environment
    from scene3d_ros.ros.graph import NodeSpec, perception_graph
    from scene3d_ros.ros.graph_recorder import FRAME_KINDS, ground_truth_from_msg, objects_from_msg, record_graph

    library = ensure_cad_library()
    env = use_localhost_ros_environment()  # this process (the recorder) and the nodes share one private graph
    specs = perception_graph(model=str(checkpoint), device=device, shape_db=str(shape_db),
                             score_threshold=score_threshold)
    if images is None:
        camera = NodeSpec("synthetic_camera", "scene3d_ros.ros.synthetic_camera", "synthetic_camera",
                          "synthetic_camera.yaml", {"rate_hz": rate_hz, "seed": seed, "width": size[0], "height": size[1]})
        source, kinds = f"the synthetic camera publishes {size[0]}x{size[1]}", FRAME_KINDS
    else:
        parameters = {"rate_hz": rate_hz, "hfov_deg": hfov_deg} | ({"folder": str(Path(images).resolve())} if images else {})
        camera = NodeSpec("image_folder_camera", "scene3d_ros.ros.image_folder_camera", "image_folder_camera",
                          "image_folder_camera.yaml", parameters)
        source = f"the image-folder camera publishes {images or 'the sample photos'}"
        kinds = tuple(kind for kind in FRAME_KINDS if kind != "ground_truth")
    print(f"demo: ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']} (localhost only); starting perception_node and "
          f"retrieval_node ({checkpoint.name}, {shape_db.name}); {source} at {rate_hz} Hz once they are ready",
          flush=True)
    output.mkdir(parents=True, exist_ok=True)
    recorded, published = record_graph(specs, camera, env, frames, timeout_s, output, kinds)

    renderer = Renderer()
    summary: dict = {"frames": [], "checkpoint": str(checkpoint), "shape_db": str(shape_db),
                     "camera_frames_seen": published}
    for k, frame in enumerate(recorded):
        rgb = image_msg_to_rgb(frame.messages["image"])
        intrinsics = intrinsics_from_camera_info(frame.messages["camera_info"])
        objects = objects_from_msg(frame.messages["objects"])
        truth = ground_truth_from_msg(frame.messages["ground_truth"]) if "ground_truth" in frame.messages else []
        pairs = match_to_ground_truth(objects, truth, library)
        record = {"stamp_ns": frame.stamp_ns, "latency_ms": {"detections_3d": round(frame.latency_ms("detections_3d"), 1),
                                                               "objects": round(frame.latency_ms("objects"), 1)},
                  "ground_truth": [{"category": t["category"], "model_id": t["model_id"],
                                    "quaternion": np.round(t["quaternion"], 6).tolist(),
                                    "translation": np.round(t["translation"], 4).tolist()} for t in truth],
                  "matches": pairs}
        write_frame(output, f"frame_{k:03d}", rgb, image_msg_to_rgb(frame.messages["debug_image"]), objects,
                    intrinsics, library, renderer, record)
        summary["frames"].append({"frame": k, "objects": len(objects), "ground_truth": len(truth),
                                  "matched": len(pairs), "detections_3d": record["latency_ms"]["detections_3d"],
                                  "objects_ms": record["latency_ms"]["objects"],
                                  "rotation_error_deg": [p["rotation_error_deg"] for p in pairs],
                                  "translation_error_m": [p["translation_error_m"] for p in pairs],
                                  "models_correct": sum(p["model_correct"] for p in pairs)})
    atomic_write_text(output / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def print_graph_summary(summary: dict, output: Path) -> None:
    print(f"{'frame':>5} {'objects':>7} {'truth':>5} {'matched':>7} {'rotation errors (deg)':>24} "
          f"{'latency to detections_3d / objects (ms)':>40}")
    for f in summary["frames"]:
        errors = ", ".join(f"{e:.0f}" for e in f["rotation_error_deg"]) or "-"
        print(f"{f['frame']:>5} {f['objects']:>7} {f['ground_truth']:>5} {f['matched']:>7} {errors:>24} "
              f"{f['detections_3d']:>33.0f} / {f['objects_ms']:.0f}")
    frames = summary["frames"]
    rotation = [e for f in frames for e in f["rotation_error_deg"]]
    translation = [e for f in frames for e in f["translation_error_m"]]
    matched = sum(f["matched"] for f in frames)
    print(f"objects per frame: {np.mean([f['objects'] for f in frames]):.1f} "
          f"(ground truth {np.mean([f['ground_truth'] for f in frames]):.1f}); matched {matched}")
    print(f"rotation error: {_summary_line(rotation, 'deg')}; translation error: {_summary_line(translation, 'm')}")
    print(f"retrieved the true CAD model for {sum(f['models_correct'] for f in frames)} of {matched} matched objects")
    print(f"latency image stamp -> detections_3d: {_summary_line([f['detections_3d'] for f in frames], 'ms')}")
    print(f"wrote {len(frames)} frames to {output}/ (frame_000_overlay.png, frame_000.glb, frame_000.json, "
          "summary.json)")


# --------------------------------------------------------------------------- command line
def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x480, got {text!r}") from None
    if not (16 <= width <= 4096 and 16 <= height <= 4096):
        raise argparse.ArgumentTypeError(f"image size {text} outside 16..4096 pixels")
    return width, height


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("output/demo"), help="output folder (default output/demo)")
    parser.add_argument("--image", type=Path, default=None, help="run on this image file without ROS")
    parser.add_argument("--images", nargs="?", const="", default=None, metavar="FOLDER",
                        help="graph: the image-folder camera on FOLDER (intrinsics.yaml or --hfov); "
                             "without FOLDER the real sample photos")
    parser.add_argument("--hfov", type=float, default=60.0,
                        help="--image/--images: horizontal field of view, degrees, without intrinsics.yaml")
    parser.add_argument("--frames", type=int, default=4, help="graph: processed frames to record (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="graph: synthetic camera seed (default 0)")
    parser.add_argument("--rate-hz", type=float, default=2.0, help="graph: camera rate (default 2)")
    parser.add_argument("--size", type=_size, default=(640, 480), help="graph: camera image size (default 640x480)")
    parser.add_argument("--checkpoint", type=Path, default=None, help=f"network (default {default_model_path()})")
    parser.add_argument("--shape-db", type=Path, default=None,
                        help="shape database (default: the one of the network, built when missing)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--score-threshold", type=float, default=0.5, help="minimum detection score (default 0.5)")
    parser.add_argument("--timeout", type=float, default=600.0, help="graph: give up after this many seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.frames < 1 or not 0.0 < args.rate_hz <= 100.0 or not 1.0 < args.hfov < 179.0:
        parser.error("--frames must be >= 1, --rate-hz in (0, 100] and --hfov in (1, 179)")
    if not 0.0 <= args.score_threshold <= 1.0:
        parser.error("--score-threshold must lie in [0, 1]")
    from scene3d_ros.model import CheckpointError

    checkpoint = args.checkpoint or default_model_path()
    try:
        if not checkpoint.is_file():
            raise CheckpointError(f"no network at {checkpoint}")
        if args.image is not None and not args.image.is_file():
            raise FileNotFoundError(f"no image file {args.image}")
        if args.images:
            photos_in_folder(args.images, args.hfov)  # a clear error now rather than a node failing to start
        shape_db = ensure_shape_db(checkpoint, args.shape_db, args.device)
        if args.image is not None:
            run_image(args.image, args.output, args.hfov, checkpoint, shape_db, args.device, args.score_threshold)
            return 0
        summary = run_graph(args.output, args.frames, args.seed, args.rate_hz, args.size, checkpoint, shape_db,
                            args.device, args.score_threshold, args.timeout, args.images, args.hfov)
    except (CheckpointError, ShapeDatabaseError, CadLibraryError, OSError, ValueError, RuntimeError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    print_graph_summary(summary, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
