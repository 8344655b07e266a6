"""Tests for the real Pascal3D+ layout loader (scene3d_ros.data.pascal3d).

A tiny Pascal3D+ release is written into tmp_path with the real folder layout and the real .mat
field names (scipy.io.savemat struct arrays). The key test projects CAD points with an independent
copy of the Pascal3D+ toolkit's project_3d.m and with our rotation + translation + pinhole camera.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from scene3d_ros import CATEGORIES
from scene3d_ros.data.pascal3d import (
    PASCAL3D_CAD_TO_CANONICAL,
    Pascal3DDataset,
    pascal3d_translation,
    pascal3d_viewpoint_to_rotation,
    pascal3d_virtual_camera,
)
from scene3d_ros.geometry import (
    camera_direction_in_object,
    is_rotation_matrix,
    quaternion_to_matrix,
    rotation_to_viewpoint,
    viewpoint_rotation,
)


# --------------------------------------------------------------------------- the toolkit, independently
def toolkit_project_3d(x3d, a_deg, e_deg, d, f, theta_deg, principal, viewport):
    """Pascal3D+ toolkit project_3d.m, transcribed line by line: (N, 3) CAD points -> (N, 2) MATLAB pixels."""
    a, e, theta = np.radians(a_deg), np.radians(e_deg), np.radians(theta_deg)
    C = np.array([d * np.cos(e) * np.sin(a), -d * np.cos(e) * np.cos(a), d * np.sin(e)]).reshape(3, 1)
    a = -a
    e = -(np.pi / 2 - e)
    Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    Rx = np.array([[1, 0, 0], [0, np.cos(e), -np.sin(e)], [0, np.sin(e), np.cos(e)]])
    R = Rx @ Rz
    M = viewport
    P = np.array([[M * f, 0, 0], [0, M * f, 0], [0, 0, -1]]) @ np.hstack([R, -R @ C])
    x = P @ np.vstack([x3d.T, np.ones(len(x3d))])
    x = x[:2] / x[2]
    R2d = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    x = (R2d @ x).T
    x[:, 1] = -x[:, 1]
    return x + np.asarray(principal)


# --------------------------------------------------------------------------- fixture writer
def _struct_array(items: list[dict]) -> np.ndarray:
    """1xN MATLAB struct array (savemat writes numpy record arrays as struct arrays)."""
    fields = list(items[0])
    arr = np.empty((1, len(items)), dtype=[(name, object) for name in fields])
    for i, item in enumerate(items):
        for name in fields:
            arr[0, i][name] = item[name]
    return arr


def _viewpoint(azimuth, elevation, theta, distance, px, py, focal=1.0, viewport=3000.0) -> dict:
    return {
        "azimuth_coarse": float(round(azimuth / 15) * 15 % 360), "elevation_coarse": float(round(elevation)),
        "azimuth": float(azimuth), "elevation": float(elevation), "distance": float(distance),
        "focal": float(focal), "px": float(px), "py": float(py), "theta": float(theta),
        "error": 0.5, "interval_azimuth": 1.0, "interval_elevation": 1.0, "num_anchor": 6.0,
        "viewport": float(viewport),
    }


def _coarse_viewpoint(azimuth_coarse, elevation_coarse) -> dict:
    # what the toolkit leaves when too few anchors were clicked: coarse angles, distance 0
    return {"azimuth_coarse": float(azimuth_coarse), "elevation_coarse": float(elevation_coarse),
            "distance": 0.0, "theta": 0.0}


def _object(cls, bbox, viewpoint, cad_index=1, occluded=0, truncated=0, difficult=0) -> dict:
    return {
        "class": cls, "view": "Frontal", "bbox": np.asarray(bbox, dtype=np.float64),
        "occluded": occluded, "truncated": truncated, "difficult": difficult,
        "cad_index": cad_index, "viewpoint": viewpoint if viewpoint is not None else np.zeros((0, 0)),
    }


def _write_record(path: Path, filename: str, width: int, height: int, objects: list[dict], database: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "filename": filename,
        "size": {"width": width, "height": height, "depth": 3},
        "imgsize": np.array([width, height, 3], dtype=np.float64),
        "database": database,
        "objects": _struct_array(objects),
        "segmented": 0,
    }
    scipy.io.savemat(str(path), {"record": record})


def _write_image(path: Path, width: int, height: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


CAR_VP = dict(azimuth=30.0, elevation=10.0, theta=5.0, distance=6.0, px=33.0, py=25.0)
BUS_VP = dict(azimuth=200.0, elevation=5.0, theta=-3.0, distance=9.0, px=20.0, py=20.0)


def write_pascal3d_fixture(tmp_path: Path, voc_under: str = "PASCAL") -> Path:
    """A 4-image Pascal3D+ release1.1 in the real layout; returns the release folder.

    val: 2008_000001 (car, difficult car, person; plus bus_pascal file with the bus and an
    unannotated copy of the car), 2008_000002 (coarse viewpoint only), 2008_000005 listed but
    without annotation, n02814533_1 (ImageNet, truncated car). train: 2008_000004.
    """
    root = tmp_path / "PASCAL3D+_release1.1"
    ann, img = root / "Annotations", root / "Images"
    car = _object("car", [10, 12, 30, 40], _viewpoint(**CAR_VP), cad_index=2, occluded=1)
    difficult_car = _object("car", [40, 5, 60, 20], _viewpoint(120.0, 20.0, 0.0, 8.0, 50.0, 12.0), difficult=1)
    person = _object("person", [1, 1, 5, 9], None)
    bus = _object("bus", [20, 20, 64, 48], _viewpoint(**BUS_VP), cad_index=4, truncated=1)
    car_unannotated = _object("car", [10, 12, 30, 40], None, cad_index=2)
    _write_record(ann / "car_pascal" / "2008_000001.mat", "2008_000001.jpg", 64, 48,
                  [car, difficult_car, person, bus], "PASCAL VOC 2012")
    _write_record(ann / "bus_pascal" / "2008_000001.mat", "2008_000001.jpg", 64, 48,
                  [car_unannotated, bus], "PASCAL VOC 2012")
    _write_record(ann / "car_pascal" / "2008_000002.mat", "2008_000002.jpg", 32, 32,
                  [_object("car", [2, 2, 20, 20], _coarse_viewpoint(90, 15))], "PASCAL VOC 2012")
    _write_record(ann / "car_pascal" / "2008_000004.mat", "2008_000004.jpg", 32, 32,
                  [_object("car", [3, 3, 9, 9], _viewpoint(10.0, 0.0, 0.0, 5.0, 6.0, 6.0), cad_index=7)],
                  "PASCAL VOC 2012")
    _write_record(ann / "car_imagenet" / "n02814533_1.mat", "n02814533_1.JPEG", 40, 30,
                  [_object("car", [5, 6, 40, 30], _viewpoint(300.0, -5.0, 12.0, 4.0, 21.0, 16.0, focal=1.0),
                           cad_index=10, truncated=1)], "ImageNet")

    for name, size, seed in (("car_pascal/2008_000001.jpg", (64, 48), 1), ("bus_pascal/2008_000001.jpg", (64, 48), 1),
                             ("car_pascal/2008_000002.jpg", (32, 32), 2), ("car_pascal/2008_000004.jpg", (32, 32), 4),
                             ("car_imagenet/n02814533_1.JPEG", (40, 30), 3)):
        _write_image(img / name, *size, seed=seed)

    voc = root / voc_under / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main" if voc_under else \
        root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main"
    voc.mkdir(parents=True)
    (voc / "car_val.txt").write_text("2008_000001  1\n2008_000002  1\n2008_000003 -1\n2008_000005  1\n")
    (voc / "car_train.txt").write_text("2008_000004  1\n2008_000001 -1\n")
    (voc / "bus_val.txt").write_text("2008_000001  1\n2008_000002 -1\n")
    (voc / "bus_train.txt").write_text("2008_000004 -1\n")
    sets = root / "Image_sets"
    sets.mkdir()
    (sets / "car_imagenet_val.txt").write_text("n02814533_1\n")
    (sets / "car_imagenet_train.txt").write_text("")
    (root / "CAD").mkdir()
    return root


@pytest.fixture
def pascal_root(tmp_path: Path) -> Path:
    return write_pascal3d_fixture(tmp_path)


# --------------------------------------------------------------------------- loading
def test_records_load_merge_categories_and_sources(pascal_root: Path) -> None:
    ds = Pascal3DDataset(pascal_root, split="val", sources=("pascal", "imagenet"))
    assert [(r.source, r.image_id) for r in ds] == [("pascal", "2008_000001"), ("imagenet", "n02814533_1")]
    voc = ds[0]
    assert (voc.width, voc.height) == (64, 48)
    # one record per image; categories in CATEGORIES order, each read from its own folder's file
    assert voc.image_path == pascal_root / "Images" / "bus_pascal" / "2008_000001.jpg"
    assert [o.category for o in voc.objects] == ["bus", "car"]
    assert ds[1].image_path.name == "n02814533_1.JPEG"
    with pytest.raises(IndexError):
        ds[2]


def test_boxes_flags_and_cad_ids(pascal_root: Path) -> None:
    ds = Pascal3DDataset(pascal_root, sources=("pascal", "imagenet"))
    bus, car = ds[0].objects
    assert car.bbox == (9.0, 11.0, 30.0, 40.0)  # [10 12 30 40] 1-based inclusive -> 0-based edges
    assert bus.bbox == (19.0, 19.0, 64.0, 48.0)  # a box up to the last pixel ends at the image edge
    assert (car.occluded, car.truncated, car.difficult) == (True, False, False)
    assert (bus.occluded, bus.truncated) == (False, True)
    assert (car.cad_index, car.model_id, car.label) == (2, "car_pascal3d_02", CATEGORIES.index("car") + 1)
    assert (bus.cad_index, bus.model_id, bus.label) == (4, "bus_pascal3d_04", CATEGORIES.index("bus") + 1)
    assert (car.azimuth, car.elevation, car.theta, car.distance) == (30.0, 10.0, 5.0, 6.0)
    assert (car.px, car.py, car.focal, car.viewport) == (33.0, 25.0, 1.0, 3000.0)
    imagenet_car = ds[1].objects[0]
    assert imagenet_car.model_id == "car_pascal3d_10" and imagenet_car.truncated


def test_skipped_objects_and_images_are_counted(pascal_root: Path) -> None:
    ds = Pascal3DDataset(pascal_root, split="val", sources=("pascal", "imagenet"))
    assert ds.skipped_objects == Counter(
        {"class_not_in_categories": 1, "difficult": 1, "in_other_category_file": 2, "coarse_viewpoint_only": 1}
    )
    assert ds.skipped_images == Counter({"missing_annotation_file": 1, "no_usable_objects": 1})

    with_difficult = Pascal3DDataset(pascal_root, include_difficult=True)
    assert [o.difficult for o in with_difficult[0].objects] == [False, False, True]

    cars_only = Pascal3DDataset(pascal_root, categories=("car",))
    assert [o.category for o in cars_only[0].objects] == ["car"]
    assert cars_only.skipped_objects["class_not_in_categories"] == 2  # person and the bus


def test_no_own_category_file_is_counted(pascal_root: Path) -> None:
    (pascal_root / "Annotations" / "bus_pascal" / "2008_000001.mat").unlink()
    ds = Pascal3DDataset(pascal_root)
    assert [o.category for o in ds[0].objects] == ["car"]
    assert ds.skipped_objects["no_own_category_file"] == 1
    assert ds.skipped_images["missing_annotation_file"] == 2


def test_train_split_and_fallback_without_split_files(pascal_root: Path) -> None:
    train = Pascal3DDataset(pascal_root, split="train", sources=("pascal", "imagenet"))
    assert [r.image_id for r in train] == ["2008_000004"]

    for path in (pascal_root / "PASCAL").rglob("car_val.txt"):
        path.unlink()
    with pytest.warns(UserWarning, match="using all"):
        ds = Pascal3DDataset(pascal_root, split="val", categories=("car",))
    assert [r.image_id for r in ds] == ["2008_000001", "2008_000004"]


def test_voc_split_files_directly_under_root_and_parent_folder(tmp_path: Path) -> None:
    root = write_pascal3d_fixture(tmp_path, voc_under="")
    assert not (root / "PASCAL").exists()
    ds = Pascal3DDataset(tmp_path)  # the folder that contains PASCAL3D+_release1.1
    assert ds.root == root
    assert [r.image_id for r in ds] == ["2008_000001"]


def test_missing_root_gives_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Annotations"):
        Pascal3DDataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty.*Annotations"):
        Pascal3DDataset(tmp_path / "empty")


def test_missing_annotation_folders_are_reported(pascal_root: Path) -> None:
    ds = Pascal3DDataset(pascal_root, categories=("bus", "car"), sources=("pascal", "imagenet"))
    assert ds.missing_annotation_folders == (pascal_root / "Annotations" / "bus_imagenet",)
    with pytest.raises(FileNotFoundError, match="bus_imagenet"):
        Pascal3DDataset(pascal_root, categories=("bus",), sources=("imagenet",))


def test_bad_arguments_are_rejected(pascal_root: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        Pascal3DDataset(pascal_root, split="test")
    with pytest.raises(ValueError, match="categories"):
        Pascal3DDataset(pascal_root, categories=("person",))
    with pytest.raises(ValueError, match="sources"):
        Pascal3DDataset(pascal_root, sources=("sun",))


def test_to_torch_detection_target(pascal_root: Path) -> None:
    import torch

    ds = Pascal3DDataset(pascal_root, sources=("pascal", "imagenet"))
    image, target = ds.to_torch(0)
    assert image.shape == (3, 48, 64) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert set(target) == {
        "boxes", "labels", "quaternions", "model_ids", "occluded", "truncated", "difficult", "image_id"
    }  # no masks: Pascal3D+ has none
    assert torch.equal(target["boxes"], torch.tensor([[19.0, 19.0, 64.0, 48.0], [9.0, 11.0, 30.0, 40.0]]))
    assert target["labels"].tolist() == [5, 6] and target["labels"].dtype == torch.int64
    assert target["quaternions"].shape == (2, 4) and target["quaternions"].dtype == torch.float32
    assert target["model_ids"] == ["bus_pascal3d_04", "car_pascal3d_02"]
    assert target["occluded"].tolist() == [False, True] and target["truncated"].tolist() == [True, False]
    assert target["difficult"].tolist() == [False, False]
    assert target["image_id"].item() == 0
    image, target = ds.to_torch(1)
    assert image.shape == (3, 30, 40) and target["image_id"].item() == 1


def test_to_torch_rejects_image_of_wrong_size(pascal_root: Path) -> None:
    _write_image(pascal_root / "Images" / "bus_pascal" / "2008_000001.jpg", 50, 48, seed=0)
    ds = Pascal3DDataset(pascal_root)
    with pytest.raises(ValueError, match="50x48"):
        ds.to_torch(0)


# --------------------------------------------------------------------------- conventions
def test_zero_viewpoint_is_the_frontal_canonical_view() -> None:
    """azimuth = elevation = theta = 0: the camera, level with the object, looks at its front;
    the object's left (+y) is on the image right, its up (+z) is image up."""
    r = pascal3d_viewpoint_to_rotation(0.0, 0.0, 0.0)
    assert is_rotation_matrix(r)
    np.testing.assert_allclose(camera_direction_in_object(r), [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(r @ [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(r @ [0.0, 0.0, 1.0], [0.0, -1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(r, viewpoint_rotation(0.0, 0.0, 0.0), atol=1e-12)
    # Pascal CAD front is -y, its left +x (camera at azimuth 90 sits on the CAD +x side)
    np.testing.assert_allclose(PASCAL3D_CAD_TO_CANONICAL @ [0.0, -1.0, 0.0], [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(PASCAL3D_CAD_TO_CANONICAL @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    r90 = pascal3d_viewpoint_to_rotation(90.0, 0.0, 0.0)
    np.testing.assert_allclose(camera_direction_in_object(r90), [0.0, 1.0, 0.0], atol=1e-12)  # sees the left


VIEWPOINTS = [
    (0.0, 0.0, 0.0), (30.0, 10.0, 5.0), (90.0, 0.0, 0.0), (200.0, -15.0, -30.0),
    (359.0, 60.0, 170.0), (123.4, 45.6, -78.9), (271.0, -70.0, 45.0),
]


@pytest.mark.parametrize("azimuth,elevation,theta", VIEWPOINTS)
def test_projection_matches_the_toolkit(azimuth: float, elevation: float, theta: float) -> None:
    """Same pixels from the toolkit's project_3d and from R, t and the virtual pinhole camera."""
    rng = np.random.default_rng(int(azimuth * 10 + elevation))
    points_cad = rng.uniform(-1.0, 1.0, size=(50, 3))
    distance, principal = 4.0 + rng.uniform(0.0, 6.0), rng.uniform(0.0, 500.0, size=2)
    focal, viewport = (1.0, 3000.0) if azimuth < 180 else (0.8, 2000.0)
    expected_matlab = toolkit_project_3d(points_cad, azimuth, elevation, distance, focal, theta, principal, viewport)

    rotation = pascal3d_viewpoint_to_rotation(azimuth, elevation, theta)
    camera = pascal3d_virtual_camera(principal[0], principal[1], 640, 480, focal=focal, viewport=viewport)
    points_obj = points_cad @ PASCAL3D_CAD_TO_CANONICAL.T
    for scale in (1.0, 0.37):  # a metre-per-CAD-unit scale scales the object and t together
        points_cam = (scale * points_obj) @ rotation.T + pascal3d_translation(distance, scale)
        assert np.all(points_cam[:, 2] > 0.0)
        uv = camera.project(points_cam)
        np.testing.assert_allclose(uv, expected_matlab - 0.5, atol=1e-6)  # MATLAB 1-based -> ours


@pytest.mark.parametrize("azimuth,elevation,theta", VIEWPOINTS)
def test_viewpoint_relation_and_quaternions(azimuth: float, elevation: float, theta: float) -> None:
    rotation = pascal3d_viewpoint_to_rotation(azimuth, elevation, theta)
    assert is_rotation_matrix(rotation)
    np.testing.assert_allclose(rotation, viewpoint_rotation(azimuth, elevation, -theta), atol=1e-12)
    az, el, ip = rotation_to_viewpoint(rotation)
    assert abs((az - azimuth + 180.0) % 360.0 - 180.0) < 1e-6
    assert el == pytest.approx(elevation, abs=1e-6)
    assert abs((ip + theta + 180.0) % 360.0 - 180.0) < 1e-6


def test_loaded_quaternions_are_canonical_and_round_trip(pascal_root: Path) -> None:
    ds = Pascal3DDataset(pascal_root, sources=("pascal", "imagenet"), include_difficult=True)
    objects = [o for record in ds for o in record.objects]
    assert len(objects) == 4
    for obj in objects:
        assert obj.quaternion[0] >= 0.0
        assert np.linalg.norm(obj.quaternion) == pytest.approx(1.0)
        np.testing.assert_allclose(quaternion_to_matrix(obj.quaternion), obj.rotation, atol=1e-9)
        np.testing.assert_allclose(
            obj.rotation, pascal3d_viewpoint_to_rotation(obj.azimuth, obj.elevation, obj.theta), atol=1e-12
        )
    # the object's own virtual camera puts the CAD origin on its annotated principal point
    car = ds[0].objects[1]
    assert car.category == "car"
    origin_uv = car.virtual_camera(64, 48).project(car.translation()[None])[0]
    np.testing.assert_allclose(origin_uv, [car.px - 0.5, car.py - 0.5])


def test_translation_rejects_coarse_or_bad_values() -> None:
    np.testing.assert_allclose(pascal3d_translation(6.0), [0.0, 0.0, 6.0])
    np.testing.assert_allclose(pascal3d_translation(6.0, metres_per_cad_unit=0.5), [0.0, 0.0, 3.0])
    with pytest.raises(ValueError, match="coarse"):
        pascal3d_translation(0.0)
    with pytest.raises(ValueError, match="metres_per_cad_unit"):
        pascal3d_translation(5.0, metres_per_cad_unit=-1.0)
    with pytest.raises(ValueError, match="finite"):
        pascal3d_viewpoint_to_rotation(float("nan"), 0.0, 0.0)
