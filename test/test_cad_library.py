"""CAD library: sub-types, determinism, canonical frames, sizes, symmetries, validation, CLI, extended libraries."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from scene3d_ros import CATEGORIES
from scene3d_ros.cli.build_cad_library import main as cli_main
from scene3d_ros.geometry import SYMMETRIES, rotation_about_up
from scene3d_ros.world.cad_library import (
    CATEGORY_SIZES,
    LIBRARY_FILE,
    MAX_FACES,
    CadLibrary,
    CadLibraryError,
    build_cad_library,
    category_size,
    check_cad_library,
    ensure_cad_library,
)
from scene3d_ros.world.procedural_models import INSTANCES_PER_SUBTYPE, SUBTYPES, box, finalize

SHIPPED_TRAINING_MANIFEST = Path(__file__).resolve().parents[1] / "models" / "training" / "train_dataset_manifest.json"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> CadLibrary:
    return build_cad_library(tmp_path_factory.mktemp("cad") / "library", seed=0, progress=False)


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> CadLibrary:
    """The default library plus one extra procedural instance per sub-type (the unseen models)."""
    return build_cad_library(tmp_path_factory.mktemp("cad") / "extended", seed=0, progress=False, extra_instances=1)


@pytest.fixture(params=["default", "extended"])
def any_library(request: pytest.FixtureRequest) -> CadLibrary:
    """The quality checks run on the default library and on the extended one (its extra models)."""
    return request.getfixturevalue("library" if request.param == "default" else "extended")


def _copy_library(library: CadLibrary, dest: Path) -> Path:
    shutil.copytree(library.root, dest)
    return dest


def _mesh_bytes(library: CadLibrary) -> dict[str, bytes]:
    return {m.model_id: library.mesh_path(m.model_id).read_bytes() for m in library.models}


# --------------------------------------------------------------------------- contents
def test_every_category_has_six_subtypes_and_twelve_models(library: CadLibrary) -> None:
    assert library.categories == CATEGORIES
    for category in CATEGORIES:
        models = library.by_category(category)
        procedural = [m for m in models if m.source == "procedural"]
        assert len({m.subtype for m in procedural}) >= 6, category
        assert len(procedural) >= 12, category
        assert all(m.category == category for m in models)
    assert len(library.models) >= 150


def test_model_ids_unique_sorted_and_filesystem_safe(library: CadLibrary) -> None:
    ids = [m.model_id for m in library.models]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert "chair_swivel_01" in ids and "car_pybullet_racecar" in ids
    for m in library.models:
        assert m.model_id.replace("_", "").isalnum() and m.model_id.islower()
        assert m.mesh_file == f"meshes/{m.category}/{m.model_id}.obj"
        assert m.symmetry in SYMMETRIES


def test_real_pybullet_models_join_their_categories(library: CadLibrary) -> None:
    real = {m.model_id: m for m in library.models if m.source == "pybullet_data"}
    assert set(real) == {"bicycle_pybullet_bike", "car_pybullet_racecar", "diningtable_pybullet_table",
                         "diningtable_pybullet_table_square"}
    assert real["bicycle_pybullet_bike"].category == "bicycle"
    assert "CC BY-SA 3.0" in real["bicycle_pybullet_bike"].license
    assert "zlib" in real["car_pybullet_racecar"].license and real["car_pybullet_racecar"].category == "car"
    assert real["diningtable_pybullet_table"].symmetry == "c2"
    assert real["diningtable_pybullet_table_square"].symmetry == "c4"
    assert all(m.license.startswith("Apache-2.0") for m in library.models if m.source == "procedural")


# --------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_files(library: CadLibrary, tmp_path: Path) -> None:
    again = build_cad_library(tmp_path / "again", seed=0, progress=False)
    assert again.checksum == library.checksum
    assert _mesh_bytes(again) == _mesh_bytes(library)
    assert (again.root / LIBRARY_FILE).read_bytes() == (library.root / LIBRARY_FILE).read_bytes()


def test_ensure_reuses_repairs_and_follows_the_seed(library: CadLibrary, tmp_path: Path) -> None:
    root = _copy_library(library, tmp_path / "lib")
    index_stat = (root / LIBRARY_FILE).stat()
    kept = ensure_cad_library(root, seed=0, progress=False)
    assert kept.checksum == library.checksum
    assert (root / LIBRARY_FILE).stat().st_ino == index_stat.st_ino  # not rebuilt

    damaged = root / library.get("car_sedan_01").mesh_file
    damaged.write_bytes(damaged.read_bytes()[:-100])
    repaired = ensure_cad_library(root, seed=0, progress=False)
    assert repaired.checksum == library.checksum
    assert damaged.read_bytes() == library.mesh_path("car_sedan_01").read_bytes()

    other = ensure_cad_library(root, seed=1, progress=False)
    assert other.seed == 1 and other.checksum != library.checksum
    assert [m.model_id for m in other.models] == [m.model_id for m in library.models]  # ids are stable
    for m in library.models:
        same = other.mesh_path(m.model_id).read_bytes() == library.mesh_path(m.model_id).read_bytes()
        assert same == (m.source == "pybullet_data"), m.model_id
    assert not list(tmp_path.glob(".lib.building-*")) and not list(tmp_path.glob(".lib.old-*"))


# --------------------------------------------------------------------------- geometry
def _component_volumes(mesh: trimesh.Trimesh) -> np.ndarray:
    """Signed volume of each vertex-connected part (positive = outward winding)."""
    faces = mesh.faces
    edges = np.concatenate([faces[:, :2], faces[:, 1:]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(mesh.vertices),) * 2)
    count, labels = connected_components(graph, directed=False)
    tri = mesh.vertices[faces]
    volumes = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0
    return np.bincount(labels[faces[:, 0]], volumes, minlength=count)


def test_meshes_centred_light_outward_and_realistic(any_library: CadLibrary) -> None:
    for m in any_library.models:
        mesh = any_library.mesh(m.model_id)
        assert len(mesh.faces) == any_library.num_faces(m.model_id) <= MAX_FACES, m.model_id
        assert np.abs(mesh.bounds.mean(axis=0)).max() < 1e-3, m.model_id  # bounding-box centre at origin
        np.testing.assert_allclose(mesh.extents, m.extents, atol=1e-5, err_msg=m.model_id)
        _, lo, hi = CATEGORY_SIZES[m.category]
        assert lo <= category_size(m.extents, m.category) <= hi, (m.model_id, m.extents)
        if m.source == "procedural":
            assert mesh.is_winding_consistent, m.model_id
            assert (_component_volumes(mesh) > -1e-9).all(), f"{m.model_id} has a part with inward normals"


def test_component_volume_check_can_fail() -> None:
    inverted = box((1.0, 1.0, 1.0))
    inverted.invert()
    mesh = finalize([box((1.0, 1.0, 1.0)), inverted.apply_translation((3.0, 0.0, 0.0))])
    assert (_component_volumes(mesh) < 0).sum() == 1


def test_front_is_plus_x(any_library: CadLibrary) -> None:
    # chairs and sofas: the backrest (the highest part) is at -x
    for m in any_library.by_category("chair") + any_library.by_category("sofa"):
        v = any_library.mesh(m.model_id).vertices
        top = v[v[:, 2] > v[:, 2].max() - 0.05 * m.extents[2]]
        assert top[:, 0].mean() < -0.2 * m.extents[0], m.model_id
    # aeroplanes: wings span y, the tail fin (the highest part) is at the rear
    for m in any_library.by_category("aeroplane"):
        v = any_library.mesh(m.model_id).vertices
        top = v[v[:, 2] > v[:, 2].max() - 0.05 * m.extents[2]]
        assert top[:, 0].mean() < -0.3 * m.extents[0], m.model_id
        assert m.extents[1] > 0.5 * m.extents[0], m.model_id
    # vehicles are longer along x than wide (even a motorbike with its sidecar)
    for category in ("car", "bus", "train", "bicycle", "motorbike"):
        for m in any_library.by_category(category):
            assert m.extents[0] > 1.2 * m.extents[1], m.model_id
    # sofas and rectangular tables are long along y
    for m in any_library.by_category("sofa") + any_library.by_category("diningtable"):
        assert m.extents[1] >= 0.99 * m.extents[0], m.model_id


def _depth_spread(mesh: trimesh.Trimesh) -> tuple[float, float]:
    """Median depth of the upper half seen orthographically from +x and from -x, each relative to
    its nearest hit (metres): a flat screen seen from the front gives ~0."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(mesh.vertices.astype(np.float32)),
                        o3d.core.Tensor(mesh.faces.astype(np.uint32)))
    lo, hi = mesh.bounds
    ys, zs = np.meshgrid(np.linspace(lo[1], hi[1], 42)[1:-1], np.linspace(0.0, hi[2], 22)[1:-1])
    medians = []
    for x0, dx in ((hi[0] + 1.0, -1.0), (lo[0] - 1.0, 1.0)):
        n = ys.size
        zero = np.zeros(n)
        rays = np.stack([np.full(n, x0), ys.ravel(), zs.ravel(), np.full(n, dx), zero, zero], axis=1)
        t = scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))["t_hit"].numpy()
        t = t[np.isfinite(t)]
        assert len(t) > 0.5 * n
        medians.append(float(np.median(t - t.min())))
    return medians[0], medians[1]


def test_tvmonitor_screen_faces_plus_x(any_library: CadLibrary) -> None:
    for m in any_library.by_category("tvmonitor"):
        front, back = _depth_spread(any_library.mesh(m.model_id))
        assert front + 0.01 < back, (m.model_id, front, back)
    # the check can fail: the same monitor turned round
    mesh = any_library.mesh("tvmonitor_flat_pedestal_01")
    mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi, [0.0, 0.0, 1.0]))
    front, back = _depth_spread(mesh)
    assert not front + 0.01 < back


def _symmetry_deviation(mesh: trimesh.Trimesh, angles_rad: list[float]) -> float:
    """Largest distance from the mesh surface of surface samples rotated about +z, as a fraction of
    the largest extent."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(mesh.vertices.astype(np.float32)),
                        o3d.core.Tensor(mesh.faces.astype(np.uint32)))
    points, _ = trimesh.sample.sample_surface(mesh, 2000, seed=0)
    worst = 0.0
    for angle in angles_rad:
        rotated = points @ rotation_about_up(angle).T
        distance = scene.compute_distance(o3d.core.Tensor(rotated.astype(np.float32))).numpy()
        worst = max(worst, float(distance.max()))
    return worst / float(mesh.extents.max())


_GROUP_ANGLES = {"c2": [np.pi], "c4": [np.pi / 2.0],
                 "continuous": list(np.radians([13.0, 47.0, 101.0, 199.0]))}
_NEXT_LARGER = {"none": "c2", "c2": "c4", "c4": "continuous"}


def test_declared_symmetries_hold_and_are_the_largest(any_library: CadLibrary) -> None:
    for m in any_library.models:
        mesh = any_library.mesh(m.model_id)
        if m.symmetry != "none":
            assert _symmetry_deviation(mesh, _GROUP_ANGLES[m.symmetry]) < 0.01, m.model_id
        if m.symmetry in _NEXT_LARGER:  # a larger symmetry group must not hold (declarations are honest)
            assert _symmetry_deviation(mesh, _GROUP_ANGLES[_NEXT_LARGER[m.symmetry]]) > 0.01, m.model_id


# --------------------------------------------------------------------------- API and validation
def test_queries_mesh_cache_and_uri(library: CadLibrary) -> None:
    model = library.get("chair_swivel_01")
    assert model.category == "chair" and model.subtype == "swivel" and model.symmetry == "none"
    assert model in library.by_category("chair")
    with pytest.raises(KeyError, match="no_such_model"):
        library.get("no_such_model")
    with pytest.raises(ValueError, match="chairs"):
        library.by_category("chairs")
    mesh = library.mesh("chair_swivel_01")
    mesh.apply_translation((5.0, 0.0, 0.0))  # callers get a copy: the cache stays intact
    assert np.abs(library.mesh("chair_swivel_01").bounds.mean(axis=0)).max() < 1e-3
    uri = library.mesh_uri("chair_swivel_01")
    assert uri.startswith("file:///") and uri.endswith("/meshes/chair/chair_swivel_01.obj")
    assert Path(uri[len("file://"):]).is_file()
    assert library.checksum == hashlib.sha256((library.root / LIBRARY_FILE).read_bytes()).hexdigest()
    index = json.loads((library.root / LIBRARY_FILE).read_text())
    assert {"format_version", "generator_version", "seed", "models"} <= set(index)
    assert {"mesh_sha256", "num_faces"} <= set(index["models"][0])
    assert CadLibrary.load(library.root).checksum == library.checksum


def _corrupt(root: Path, mutate) -> None:
    index = root / LIBRARY_FILE
    data = json.loads(index.read_text())
    mutate(data)
    index.write_text(json.dumps(data))


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / LIBRARY_FILE).write_text((root / LIBRARY_FILE).read_text()[:500]),
     "not valid JSON"),
    (lambda root: _corrupt(root, lambda d: d["models"][0].update(category="spaceship")), "unknown category"),
    (lambda root: _corrupt(root, lambda d: d["models"][3].update(symmetry="c3")), "unknown symmetry"),
    (lambda root: _corrupt(root, lambda d: d["models"][1].pop("extents")), "missing field 'extents'"),
    (lambda root: _corrupt(root, lambda d: d.update(format_version=99)), "format_version"),
    (lambda root: _corrupt(root, lambda d: d["models"][2].update(mesh_file="../../etc/passwd")),
     "inside the library"),
    (lambda root: next((root / "meshes" / "boat").glob("*.obj")).unlink(), "missing"),
    (lambda root: (root / LIBRARY_FILE).unlink(), "missing"),
])
def test_load_rejects_a_corrupt_library(library: CadLibrary, tmp_path: Path, damage, message: str) -> None:
    root = _copy_library(library, tmp_path / "lib")
    damage(root)
    with pytest.raises(CadLibraryError, match=message) as info:
        CadLibrary.load(root)
    assert "build_cad_library" in str(info.value)


def test_cli_summary_and_errors(library: CadLibrary, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _copy_library(library, tmp_path / "lib")
    assert cli_main(["--output", str(root), "--quiet"]) == 0  # up to date: kept, not rebuilt
    out = capsys.readouterr().out
    assert library.checksum in out
    for category in CATEGORIES:
        assert category in out
    not_a_library = tmp_path / "photos"
    not_a_library.mkdir()
    (not_a_library / "holiday.jpg").write_bytes(b"jpeg")
    assert cli_main(["--output", str(not_a_library), "--force", "--quiet"]) == 1
    assert "not a CAD library" in capsys.readouterr().err
    assert (not_a_library / "holiday.jpg").exists()


# --------------------------------------------------------------------------- extended libraries (unseen models)
def test_default_library_is_the_shipped_networks(library: CadLibrary) -> None:
    index = json.loads((library.root / LIBRARY_FILE).read_text())
    assert "extra_instances" not in index and "unseen_models" not in index
    assert library.extra_instances == 0 and library.unseen_models == ()
    if SHIPPED_TRAINING_MANIFEST.is_file():  # the library the shipped network was trained on
        manifest = json.loads(SHIPPED_TRAINING_MANIFEST.read_text())
        assert library.checksum == manifest["identity"]["cad_library_checksum"]


def test_extended_library_is_the_default_plus_extra_instances(library: CadLibrary, extended: CadLibrary) -> None:
    default_ids = {m.model_id for m in library.models}
    extra_ids = {m.model_id for m in extended.models} - default_ids
    assert default_ids < {m.model_id for m in extended.models}
    assert extra_ids == {f"{s.category}_{s.subtype}_{INSTANCES_PER_SUBTYPE + 1:02d}" for s in SUBTYPES}
    assert extended.unseen_models == tuple(sorted(extra_ids)) and extended.extra_instances == 1
    # the seen models are the very same: entries and mesh bytes
    default_records = json.loads((library.root / LIBRARY_FILE).read_text())["models"]
    extended_records = {r["model_id"]: r for r in json.loads((extended.root / LIBRARY_FILE).read_text())["models"]}
    assert all(extended_records[r["model_id"]] == r for r in default_records)
    for m in library.models:
        assert extended.get(m.model_id) == m
        assert extended.mesh_path(m.model_id).read_bytes() == library.mesh_path(m.model_id).read_bytes(), m.model_id
    # the extra models are new shapes of their sub-types
    spec = {(s.category, s.subtype): s for s in SUBTYPES}
    for model_id in extra_ids:
        m = extended.get(model_id)
        assert m.source == "procedural" and m.symmetry == spec[(m.category, m.subtype)].symmetry
        extra_bytes = extended.mesh_path(model_id).read_bytes().split(b"\n", 1)[1]  # past the header naming the id
        for k in range(1, INSTANCES_PER_SUBTYPE + 1):
            seen = library.mesh_path(f"{m.category}_{m.subtype}_{k:02d}").read_bytes().split(b"\n", 1)[1]
            assert extra_bytes != seen, model_id


def test_extended_library_check_ensure_and_cli(extended: CadLibrary, tmp_path: Path, monkeypatch,
                                               capsys: pytest.CaptureFixture) -> None:
    root = _copy_library(extended, tmp_path / "ext")
    assert check_cad_library(root).checksum == extended.checksum  # any number of extra instances
    with pytest.raises(CadLibraryError, match="1 extra instances per sub-type, wanted 0") as info:
        check_cad_library(root, extra_instances=0)
    assert f"build_cad_library --output {root} --extra-instances 1 --force" in str(info.value)
    index_stat = (root / LIBRARY_FILE).stat()
    assert ensure_cad_library(root, progress=False).checksum == extended.checksum  # generate_data, build_shape_db
    assert (root / LIBRARY_FILE).stat().st_ino == index_stat.st_ino  # kept, not rebuilt
    damaged = root / extended.get(extended.unseen_models[0]).mesh_file
    damaged.write_bytes(damaged.read_bytes()[:-100])
    repaired = ensure_cad_library(root, progress=False)  # rebuilt as the extended library it was
    assert repaired.checksum == extended.checksum and repaired.unseen_models == extended.unseen_models

    assert cli_main(["--output", str(root), "--extra-instances", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "up to date: kept" in out and f"unseen models: {len(SUBTYPES)}" in out and extended.checksum in out
    # the default library's folder never becomes an extended library
    monkeypatch.setenv("SCENE3D_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as info:
        cli_main(["--extra-instances", "1"])
    assert info.value.code == 2 and "--extra-instances needs --output" in capsys.readouterr().err
    with pytest.raises(ValueError, match="must not replace the default library"):
        build_cad_library(tmp_path / "data" / "cad_library", extra_instances=1)
    assert not (tmp_path / "data" / "cad_library").exists()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(unseen_models=["car_sedan_99"]), "not models of the library"),
    (lambda d: d.update(unseen_models="car_sedan_03"), "must be a list of model ids"),
    (lambda d: d.update(extra_instances=-1), "must be an integer >= 0"),
])
def test_load_rejects_bad_unseen_models(extended: CadLibrary, tmp_path: Path, mutate, message: str) -> None:
    root = _copy_library(extended, tmp_path / "ext")
    _corrupt(root, mutate)
    with pytest.raises(CadLibraryError, match=message):
        CadLibrary.load(root)
