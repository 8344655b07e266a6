"""The main job: `demo` on the real ROS graph and on one image file; the 3D scene pictures and GLB."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from PIL import Image
from tiny_model import build_tiny_shape_db, save_tiny_checkpoint

from scene3d_ros.cli.demo import main, match_to_ground_truth
from scene3d_ros.geometry import CameraIntrinsics, matrix_to_quaternion, viewpoint_rotation
from scene3d_ros.image_source import sample_photos
from scene3d_ros.pipeline import DetectedObject
from scene3d_ros.scene_view import OPTICAL_TO_GLTF, VIEW_BACKGROUND, orbit_camera, posed_meshes, render_views, scene_glb
from scene3d_ros.world.cad_library import ensure_cad_library
from scene3d_ros.world.renderer import Renderer

MODELS = ["car_sedan_01", "chair_swivel_01", "bus_city_01"]
ROTATION_BOUND_DEG = 75.0
"""Median rotation error bound for the shipped model on matched detections (models/MODEL_CARD.md:
MedErr of matched detections 60.5 deg on the held-out split; 43-54 deg in demo runs).
A constant or broken rotation output gives ~80-125 deg (uniform random rotations: 126 deg)."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    checkpoint = save_tiny_checkpoint(root / "tiny.pt")
    return checkpoint, build_tiny_shape_db(root / "shape_db.pt", checkpoint, MODELS)


def _object(category, model_id, quaternion, translation, size=(1.0, 0.5, 0.5)):
    return DetectedObject(category=category, label=1, score=0.9, box=np.zeros(4), mask=None,
                          quaternion=np.asarray(quaternion, float), translation=np.asarray(translation, float),
                          size=np.asarray(size, float), model_id=model_id)


# --------------------------------------------------------------------------- scene views
def test_orbit_camera_looks_at_the_scene_centre_from_above():
    centre = np.array([0.3, 0.2, 4.0])
    axes, eye = orbit_camera(centre, azimuth_deg=45.0, elevation_deg=30.0)
    assert np.allclose(axes.T @ axes, np.eye(3), atol=1e-9) and np.linalg.det(axes) == pytest.approx(1.0)
    in_view = axes.T @ (centre - eye)
    assert np.allclose(in_view[:2], 0.0, atol=1e-9) and in_view[2] > 0  # centre straight ahead
    assert eye[1] < centre[1]  # raised: y points down in the optical frame


def test_scene_pictures_and_glb_show_the_posed_models():
    library = ensure_cad_library(progress=False)
    rotation = viewpoint_rotation(30.0, 15.0)
    objects = [_object("car", "car_sedan_01", matrix_to_quaternion(rotation), [-0.6, 0.2, 5.0]),
               _object("chair", None, [1.0, 0.0, 0.0, 0.0], [0.8, 0.0, 4.0], size=(0.5, 0.4, 0.9))]
    meshes = posed_meshes(objects, library)
    assert not meshes[0].cuboid and meshes[1].cuboid
    assert np.allclose(meshes[1].mesh.extents, [0.5, 0.4, 0.9])
    intrinsics = CameraIntrinsics.from_fov(160, 120, 60.0)
    camera_view, side_view = render_views(meshes, intrinsics, Renderer())
    for view in (camera_view, side_view):
        assert view.shape == (120, 160, 3)
        assert (np.abs(view.astype(int) - VIEW_BACKGROUND).sum(-1) > 30).mean() > 0.01  # something drawn
    assert not np.array_equal(camera_view, side_view)
    scene = trimesh.load(trimesh.util.wrap_as_stream(scene_glb(meshes)), file_type="glb")
    assert set(scene.graph.nodes_geometry) == {"camera", "car_0", "chair_1"}
    transform, _ = scene.graph["car_0"]
    assert np.allclose(transform[:3, :3], OPTICAL_TO_GLTF @ rotation, atol=1e-6)
    assert np.allclose(transform[:3, 3], OPTICAL_TO_GLTF @ np.array([-0.6, 0.2, 5.0]), atol=1e-6)
    empty = trimesh.load(trimesh.util.wrap_as_stream(scene_glb([])), file_type="glb")  # a frame without objects
    assert set(empty.graph.nodes_geometry) == {"camera"}
    assert empty.geometry["camera"].vertices[:, 2].min() < -0.09  # the camera looks down glTF -z


def test_match_to_ground_truth_pairs_same_category_nearest_centres():
    library = ensure_cad_library(progress=False)
    turned = matrix_to_quaternion(viewpoint_rotation(90.0, 0.0))
    front = matrix_to_quaternion(viewpoint_rotation(0.0, 0.0))
    objects = [_object("car", "car_sedan_01", turned, [0.0, 0.0, 5.2]),
               _object("car", "car_sedan_02", front, [3.0, 0.0, 5.0]),   # too far from any car
               _object("chair", "chair_swivel_01", front, [0.0, 0.0, 5.0])]  # no chair in the truth
    truth = [{"category": "car", "model_id": "car_sedan_01", "quaternion": front, "translation": np.array([0, 0, 5.0])}]
    pairs = match_to_ground_truth(objects, truth, library)
    assert len(pairs) == 1 and pairs[0]["object"] == 0 and pairs[0]["model_correct"]
    assert pairs[0]["rotation_error_deg"] == pytest.approx(90.0, abs=0.01)
    assert pairs[0]["translation_error_m"] == pytest.approx(0.2)


# --------------------------------------------------------------------------- demo --image (no ROS)
def test_demo_on_one_image_writes_picture_scene_and_objects(tiny, tmp_path, capsys):
    checkpoint, db = tiny
    image = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    assert main(["--image", str(image), "--checkpoint", str(checkpoint), "--shape-db", str(db), "--device", "cpu",
                 "--score-threshold", "0", "--output", str(out)]) == 0
    assert "objects in" in capsys.readouterr().out
    record = json.loads((out / "photo.json").read_text())
    assert record["width"] == 160 and record["assumed_hfov_deg"] == 60.0 and record["objects"]
    for obj in record["objects"]:
        assert obj["quaternion"][0] >= 0 and obj["translation"][2] > 0
        assert obj["model_id"] in MODELS or obj["fallback"] == "cuboid"
    overlay = np.asarray(Image.open(out / "photo_overlay.png"))
    assert overlay.shape[0] == 120 and overlay.shape[1] >= 4 * 160
    scene = trimesh.load(out / "photo.glb")
    assert len(scene.graph.nodes_geometry) == len(record["objects"]) + 1  # + the camera


def test_demo_reports_bad_inputs_clearly(tiny, tmp_path, capsys):
    checkpoint, _ = tiny
    assert main(["--image", str(tmp_path / "missing.png"), "--checkpoint", str(checkpoint)]) == 1
    assert "no image file" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt_db.pt"
    corrupt.write_bytes(b"not a database")
    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    assert main(["--image", str(image), "--checkpoint", str(checkpoint), "--shape-db", str(corrupt)]) == 1
    assert "build_shape_db" in capsys.readouterr().err  # says how to rebuild
    bad_checkpoint = tmp_path / "bad.pt"
    bad_checkpoint.write_bytes(b"not a checkpoint")
    assert main(["--image", str(image), "--checkpoint", str(bad_checkpoint), "--shape-db", str(tiny[1])]) == 1
    assert "cannot read checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--size", "10x10000"])


# --------------------------------------------------------------------------- demo on the ROS graph
def test_demo_runs_the_ros_graph_and_writes_each_frame(tiny, tmp_path, capsys):
    checkpoint, db = tiny
    out = tmp_path / "graph"
    assert main(["--frames", "2", "--size", "160x120", "--rate-hz", "4", "--checkpoint", str(checkpoint),
                 "--shape-db", str(db), "--device", "cpu", "--score-threshold", "0", "--output", str(out),
                 "--timeout", "240"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "latency image stamp -> detections_3d" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["frames"]) == 2
    stamps = set()
    for k in range(2):
        record = json.loads((out / f"frame_{k:03d}.json").read_text())
        stamps.add(record["stamp_ns"])
        assert record["ground_truth"] and record["width"] == 160
        assert 0 < record["latency_ms"]["detections_3d"] <= record["latency_ms"]["objects"] < 240e3
        overlay = np.asarray(Image.open(out / f"frame_{k:03d}_overlay.png"))
        assert overlay.shape[0] == 120 and overlay.shape[1] >= 4 * 160
        assert len(trimesh.load(out / f"frame_{k:03d}.glb").graph.nodes_geometry) == len(record["objects"]) + 1
    assert len(stamps) == 2  # two different camera frames
    for log in ("perception_node.log", "retrieval_node.log", "synthetic_camera.log"):
        assert (out / log).is_file()


def test_demo_runs_the_graph_on_an_image_folder(tiny, tmp_path, capsys):
    """--images FOLDER: the image-folder camera replaces the synthetic one (its intrinsics.yaml
    reaches the pipeline through camera_info; no ground truth)."""
    checkpoint, db = tiny
    photos = tmp_path / "photos"
    photos.mkdir()
    rgb = sample_photos()[0].read_rgb()[::4, ::4]  # the real sample photo, 186x125
    Image.fromarray(rgb).save(photos / "motorbike.png")
    (photos / "intrinsics.yaml").write_text("fx: 248.7\nfy: 248.7\ncx: 77.8\ncy: 63.7\n")
    out = tmp_path / "out"
    assert main(["--images", str(photos), "--frames", "2", "--rate-hz", "4", "--checkpoint", str(checkpoint),
                 "--shape-db", str(db), "--device", "cpu", "--score-threshold", "0", "--output", str(out),
                 "--timeout", "240"]) == 0, capsys.readouterr().err
    assert "image-folder camera" in capsys.readouterr().out
    for k in range(2):
        record = json.loads((out / f"frame_{k:03d}.json").read_text())
        assert record["ground_truth"] == [] and record["matches"] == []
        assert (record["width"], record["height"]) == rgb.shape[1::-1]
        assert record["intrinsics"][0][0] == pytest.approx(248.7)
        assert (out / f"frame_{k:03d}_overlay.png").is_file()
    assert main(["--images", str(tmp_path / "nowhere"), "--checkpoint", str(checkpoint), "--shape-db", str(db)]) == 1
    assert "no image folder" in capsys.readouterr().err


def test_demo_with_the_shipped_model_recovers_poses_within_bounds(tmp_path, capsys):
    """The end-to-end check with the real network: camera -> perception -> retrieval over DDS,
    poses compared with the synthetic camera's ground truth (bounds well inside what a broken
    network, e.g. one with swapped axes or a wrong intrinsics scaling, would give). Which camera
    frames get recorded depends on DDS discovery timing, hence six frames and loose bounds."""
    out = tmp_path / "shipped"
    frames = 6
    code = main(["--frames", str(frames), "--rate-hz", "2", "--device", "cpu", "--seed", "0",
                 "--output", str(out), "--timeout", "500"])
    printed = capsys.readouterr()
    assert code == 0, printed.err[-3000:]
    rotation, relative_translation = [], []
    for k in range(frames):
        record = json.loads((out / f"frame_{k:03d}.json").read_text())
        for match in record["matches"]:
            truth = record["ground_truth"][match["ground_truth"]]
            rotation.append(match["rotation_error_deg"])
            relative_translation.append(match["translation_error_m"] / np.linalg.norm(truth["translation"]))
        for obj in record["objects"]:
            assert obj["model_id"] is None or obj["fallback"] is None
    assert len(rotation) >= frames, f"too few objects found and matched:\n{printed.out}"
    assert np.median(relative_translation) < 0.3, printed.out
    assert np.median(rotation) < ROTATION_BOUND_DEG, printed.out
