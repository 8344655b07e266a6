"""Shape database and pose-prior retrieval: build (CLI), store/load checks, search semantics and backends."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_model import TINY_MODEL

from scene3d_ros.cli.build_shape_db import main as build_shape_db_main
from scene3d_ros.data.shards import sha256_file
from scene3d_ros.geometry import matrix_to_quaternion, symmetric_rotation_error_deg, viewpoint_rotation
from scene3d_ros.model import build_model, model_config_from_dict, save_checkpoint
from scene3d_ros.model.rotations import canonicalize_quaternion
from scene3d_ros.retrieval import FALLBACK_CUBOID, ShapeDatabase, ShapeDatabaseError, ViewGrid, manifest_path
from scene3d_ros.world.cad_library import ensure_cad_library

torch.set_num_threads(2)
MODELS = ["bottle_beer_01", "bottle_square_spirits_01", "car_sedan_01", "car_van_01", "chair_swivel_01",
          "chair_folding_01"]
GRID = ["shape_db.grid.azimuths=4", "shape_db.grid.elevations=2", "shape_db.grid.inplanes=2"]


def _quat(azimuth: float, elevation: float = 0.0, inplane: float = 0.0) -> np.ndarray:
    return matrix_to_quaternion(viewpoint_rotation(azimuth, elevation, inplane)).astype(np.float32)


def _db(descriptors, quaternions, models, categories=None, symmetries=None) -> ShapeDatabase:
    """A hand-made database: view i has descriptor i, rotation i and model ``models[i]``."""
    names = sorted(set(models))
    categories = categories or {m: "car" for m in names}
    symmetries = symmetries or {}
    return ShapeDatabase(torch.as_tensor(np.asarray(descriptors, dtype=np.float32)),
                         torch.tensor([names.index(m) for m in models]),
                         torch.as_tensor(np.asarray(quaternions, dtype=np.float32)), names,
                         [categories[m] for m in names], [symmetries.get(m, "none") for m in names],
                         library_checksum="lib", checkpoint_sha256="ckpt")


# --------------------------------------------------------------------------- built with the CLI
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("shape_db")
    torch.manual_seed(0)
    config = model_config_from_dict(TINY_MODEL)
    checkpoint = root / "tiny.pt"
    save_checkpoint(checkpoint, build_model(config, load_backbone_weights=False), config,
                    build_model(config, load_backbone_weights=False).classes, rng_state=False)
    library = ensure_cad_library(progress=False)
    output = root / "db" / "shape_db.pt"
    code = build_shape_db_main(["--checkpoint", str(checkpoint), "--output", str(output), "--device", "cpu",
                                "--quiet", "--set", *GRID, f"shape_db.models=[{','.join(MODELS)}]",
                                f"shape_db.cad_library={library.root}"])
    assert code == 0
    return {"checkpoint": checkpoint, "output": output, "library": library}


def test_cli_writes_a_database_and_manifest_that_load(built: dict) -> None:
    library, output = built["library"], built["output"]
    db = ShapeDatabase.load(output, expected_library_checksum=library.checksum,
                            expected_checkpoint_sha256=sha256_file(built["checkpoint"]))
    assert sorted(db.model_ids) == sorted(MODELS)
    assert db.dim == TINY_MODEL["descriptor"]["dim"] and db.view_size_px == 32
    per_model = np.bincount(db.model_index.numpy(), minlength=len(db.model_ids))
    for model_id, count in zip(db.model_ids, per_model, strict=True):
        # the continuous bottle keeps azimuth 0 only: its other azimuths would be identical views
        assert count == (2 * 2 if library.get(model_id).symmetry == "continuous" else 4 * 2 * 2), model_id
    assert torch.all(db.view_quaternions[:, 0] >= 0)
    manifest = json.loads(manifest_path(output).read_text())
    assert manifest["num_views"] == len(db) == int(per_model.sum())
    assert manifest["library_checksum"] == library.checksum
    assert manifest["checkpoint_sha256"] == sha256_file(built["checkpoint"])
    assert manifest["grid"]["azimuths"] == 4 and manifest["views_per_category"]["car"] == 32


def test_stored_descriptor_with_its_rotation_returns_its_model(built: dict) -> None:
    db = ShapeDatabase.load(built["output"])
    views = torch.tensor([0, 5, len(db) // 2, len(db) - 1])
    for backend in ("torch", "faiss"):
        results = db.search(db.descriptors[views], db.view_quaternions[views], backend=backend)
        for view, result in zip(views.tolist(), results, strict=True):
            assert result.model_id == db.model_ids[int(db.model_index[view])]
            assert result.distance == pytest.approx(0.0, abs=1e-4)
            assert result.view_angle_deg < 0.5 and result.widened_to_deg is None and result.fallback is None


def test_load_refuses_other_library_other_checkpoint_and_corrupt_files(built: dict, tmp_path: Path) -> None:
    output = built["output"]
    with pytest.raises(ShapeDatabaseError, match="another CAD library.*build_shape_db --checkpoint"):
        ShapeDatabase.load(output, expected_library_checksum="0" * 64)
    with pytest.raises(ShapeDatabaseError, match="another checkpoint.*build_shape_db --checkpoint"):
        ShapeDatabase.load(output, expected_checkpoint_sha256="0" * 64)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(output.read_bytes()[: output.stat().st_size // 2])
    with pytest.raises(ShapeDatabaseError, match="corrupt or truncated"):
        ShapeDatabase.load(truncated)
    with pytest.raises(ShapeDatabaseError, match="no shape database"):
        ShapeDatabase.load(tmp_path / "missing.pt")
    payload = torch.load(output, weights_only=True)
    payload["descriptors"][0, 0] = float("nan")
    torch.save(payload, tmp_path / "nan.pt")
    with pytest.raises(ShapeDatabaseError, match="finite"):
        ShapeDatabase.load(tmp_path / "nan.pt")
    payload = torch.load(output, weights_only=True)
    payload["model_index"] = payload["model_index"][:-1]
    torch.save(payload, tmp_path / "short.pt")
    with pytest.raises(ShapeDatabaseError, match="model_index"):
        ShapeDatabase.load(tmp_path / "short.pt")


def test_cli_rejects_a_bad_config(built: dict, tmp_path: Path) -> None:
    assert build_shape_db_main(["--checkpoint", str(built["checkpoint"]), "--output", str(tmp_path / "x.pt"),
                                "--set", "shape_db.grid.azimuth=4"]) == 2
    assert build_shape_db_main(["--checkpoint", str(built["checkpoint"]), "--output", str(tmp_path / "x.pt"),
                                "--set", "shape_db.categories=[spaceship]"]) == 2
    assert build_shape_db_main(["--checkpoint", str(tmp_path / "missing.pt"), "--output",
                                str(tmp_path / "x.pt")]) == 1


# --------------------------------------------------------------------------- search semantics
def test_pose_prior_excludes_views_beyond_the_angle() -> None:
    query = np.ones(8, dtype=np.float32)
    # the exact descriptor match sits at azimuth 0, the query's rotation is near azimuth 90
    db = _db([query, query + 1.0], [_quat(0), _quat(90)], ["car_far", "car_near"])
    near = db.search(query[None], _quat(95)[None], max_angle_deg=30.0)[0]
    assert near.model_id == "car_near" and near.view_index == 1
    assert near.view_angle_deg == pytest.approx(5.0, abs=0.1)
    assert near.distance == pytest.approx(8.0, rel=1e-5)
    anywhere = db.search(query[None], _quat(95)[None], max_angle_deg=180.0)[0]
    assert anywhere.model_id == "car_far" and anywhere.distance == pytest.approx(0.0)
    # 3x3 matrices give the same answer as quaternions
    as_matrix = db.search(query[None], viewpoint_rotation(95, 0, 0)[None], max_angle_deg=30.0)[0]
    assert as_matrix == near


def test_widening_is_reported() -> None:
    db = _db([[0.0], [2.0], [1.0]], [_quat(0), _quat(10), _quat(20)], ["car_a", "car_b", "car_c"])
    result = db.search(np.zeros((1, 1)), _quat(125)[None], max_angle_deg=30.0)[0]
    # 30 -> 60 -> 120: the first window holding a view; car_a (the nearest descriptor) is 125 degrees away
    assert result.widened_to_deg == 120.0 and result.model_id == "car_c"
    assert result.view_angle_deg == pytest.approx(105.0, abs=0.1)
    assert db.search(np.zeros((1, 1)), _quat(15)[None])[0].widened_to_deg is None


def test_category_filter_and_cuboid_fallback() -> None:
    db = _db([[0.0, 0.0], [5.0, 0.0]], [_quat(0), _quat(0)], ["car_a", "chair_a"],
             categories={"car_a": "car", "chair_a": "chair"})
    query, rotation = np.zeros((3, 2)), np.repeat(_quat(0)[None], 3, axis=0)
    car, chair, bus = db.search(query, rotation, ["car", "chair", "bus"])
    assert car.model_id == "car_a" and car.fallback is None
    assert chair.model_id == "chair_a" and chair.category == "chair" and chair.distance == pytest.approx(25.0)
    assert bus.model_id is None and bus.fallback == FALLBACK_CUBOID and bus.category == "bus"
    any_category = db.search(query[:1], rotation[:1], [None])[0]
    assert any_category.model_id == "car_a"
    too_far = db.search(query[1:2], rotation[1:2], ["chair"], max_distance=10.0)[0]
    assert too_far.model_id is None and too_far.fallback == FALLBACK_CUBOID and too_far.distance == pytest.approx(25.0)
    for backend in ("torch", "faiss"):
        assert db.search(query, rotation, ["car", "chair", "bus"], backend=backend) == [car, chair, bus]


def test_continuous_symmetry_angle_matches_geometry() -> None:
    # a bottle stored at azimuth 0 only is still within reach of a query at azimuth 137
    db = _db([[0.0]], [_quat(0, 20, 5)], ["bottle_a"], categories={"bottle_a": "bottle"},
             symmetries={"bottle_a": "continuous"})
    query = viewpoint_rotation(137, 32, -4)
    result = db.search(np.zeros((1, 1)), query[None], max_angle_deg=30.0)[0]
    expected = symmetric_rotation_error_deg(query, viewpoint_rotation(0, 20, 5), "continuous")
    assert result.widened_to_deg is None
    assert result.view_angle_deg == pytest.approx(float(expected), abs=0.05)


def test_torch_and_faiss_agree_on_random_data() -> None:
    pytest.importorskip("faiss")
    generator = torch.Generator().manual_seed(1)
    views, dim, models = 3000, 32, 40
    categories = {f"m{i:02d}": ("car", "chair", "bottle")[i % 3] for i in range(models)}
    symmetries = {m: "continuous" for m, c in categories.items() if c == "bottle"}
    names = sorted(categories)
    model_of_view = [names[i] for i in torch.randint(0, models, (views,), generator=generator)]
    db = _db(torch.randn(views, dim, generator=generator).numpy(),
             canonicalize_quaternion(torch.randn(views, 4, generator=generator)).numpy(), model_of_view,
             categories, symmetries)
    queries = torch.randn(60, dim, generator=generator)
    rotations = canonicalize_quaternion(torch.randn(60, 4, generator=generator))
    query_categories = [None, "car", "chair", "bottle", "bus"] * 12
    a = db.search(queries, rotations, query_categories, max_angle_deg=15.0, backend="torch")
    b = db.search(queries, rotations, query_categories, max_angle_deg=15.0, backend="faiss")
    assert any(r.widened_to_deg for r in a) and any(r.widened_to_deg is None and r.model_id for r in a)
    for x, y in zip(a, b, strict=True):
        assert (x.model_id, x.view_index, x.widened_to_deg, x.fallback) == (y.model_id, y.view_index,
                                                                           y.widened_to_deg, y.fallback)
        if math.isfinite(x.distance):
            assert x.distance == pytest.approx(y.distance, rel=1e-4)
            assert x.view_angle_deg == pytest.approx(y.view_angle_deg, abs=1e-3)
            assert x.view_angle_deg <= (x.widened_to_deg or 15.0) + 1e-3


def test_save_load_round_trip_float16(tmp_path: Path) -> None:
    db = _db(np.arange(6, dtype=np.float32).reshape(3, 2), [_quat(0), _quat(45), _quat(90)], ["a", "b", "c"])
    db.descriptors = db.descriptors.half()
    db.save(tmp_path / "db.pt")
    loaded = ShapeDatabase.load(tmp_path / "db.pt", expected_library_checksum="lib", expected_checkpoint_sha256="ckpt")
    assert loaded.descriptors.dtype == torch.float16 and loaded.model_ids == ["a", "b", "c"]
    query = np.array([[2.0, 3.0]])
    assert loaded.search(query, _quat(40)[None]) == db.search(query, _quat(40)[None])


def test_grid_viewpoints() -> None:
    grid = ViewGrid(azimuths=4, elevations=3, elevation_deg_range=(0.0, 40.0), inplanes=1)
    assert grid.viewpoints().shape == (12, 3) and grid.viewpoints("continuous").shape == (3, 3)
    assert sorted(set(grid.viewpoints()[:, 0])) == [0.0, 90.0, 180.0, 270.0]
    assert sorted(set(grid.viewpoints()[:, 1])) == [0.0, 20.0, 40.0] and set(grid.viewpoints()[:, 2]) == {0.0}
    with pytest.raises(ValueError):
        ViewGrid(azimuths=0)


# --------------------------------------------------------------------------- silhouettes and candidates
def test_cli_database_stores_view_silhouettes(built: dict) -> None:
    db = ShapeDatabase.load(built["output"])
    assert db.silhouettes is not None and db.silhouettes.dtype == torch.uint8
    assert tuple(db.silhouettes.shape) == (len(db), 28, 28)
    # every view shows its model: the tight box is filled to its edges, some cells are background
    filled = db.silhouettes.float() / 255.0
    assert bool((filled.amax(dim=(1, 2)) > 0.9).all())
    assert bool((filled[:, 0, :].amax(dim=1) > 0.3).all()) and bool((filled[:, :, 0].amax(dim=1) > 0.3).all())
    assert json.loads(manifest_path(built["output"]).read_text())["silhouette_grid"] == 28


def test_candidates_are_the_nearest_allowed_views_and_silhouettes_need_a_database_with_them() -> None:
    db = _db([[0.0], [1.0], [3.0], [0.5]], [_quat(0), _quat(10), _quat(20), _quat(120)], ["car_a", "car_b", "car_a",
                                                                                           "car_b"])
    found = db.candidates(np.zeros((1, 1)), _quat(5)[None], ["car"], max_angle_deg=30.0, k=4)
    assert found.index.tolist() == [[0, 1, 2, -1]] and found.distance[0, :3].tolist() == [0.0, 1.0, 9.0]
    assert math.isinf(float(found.distance[0, 3])) and math.isnan(float(found.angle_deg[0, 3]))
    assert found.angle_deg[0, :3].tolist() == pytest.approx([5.0, 5.0, 15.0], abs=1e-3)
    assert found.index.tolist() == db.candidates(np.zeros((1, 1)), _quat(5)[None], ["car"], 30.0, 4,
                                                 backend="faiss").index.tolist() if _has_faiss() else True
    with pytest.raises(ValueError, match="no view silhouettes.*build_shape_db"):
        db.view_silhouettes(found.index)
    assert db.silhouette_grid is None
    with pytest.raises(ValueError, match="silhouettes must be"):
        ShapeDatabase(torch.zeros((2, 1)), torch.tensor([0, 1]), torch.tensor(np.stack([_quat(0), _quat(10)])), ["a", "b"],
                      ["car", "car"], ["none", "none"], silhouettes=torch.zeros((2, 28, 14), dtype=torch.uint8))


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def test_result_rotation_of_a_continuous_model_follows_the_query_azimuth() -> None:
    db = _db([[0.0]], [_quat(0, 20, 0)], ["bottle_a"], categories={"bottle_a": "bottle"},
             symmetries={"bottle_a": "continuous"})
    result = db.search(np.zeros((1, 1)), _quat(70, 25, 0)[None], max_angle_deg=30.0)[0]
    assert result.view_angle_deg == pytest.approx(5.0, abs=0.2)
    # the returned rotation is the view turned about the model's axis: 5 degrees from the query, not 70
    returned = np.array(result.rotation)
    from scene3d_ros.geometry import quaternion_to_matrix as q2m

    error = symmetric_rotation_error_deg(q2m(returned)[None], viewpoint_rotation(70, 25, 0)[None], "none")
    assert float(error[0]) == pytest.approx(5.0, abs=0.2)
    assert symmetric_rotation_error_deg(q2m(returned)[None], viewpoint_rotation(0, 20, 0)[None], "continuous")[0] \
        == pytest.approx(0.0, abs=1e-3)
