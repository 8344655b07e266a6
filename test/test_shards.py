"""Shard format, deterministic multi-process generation, resume, the CLI and the torch dataset."""

import json

import numpy as np
import pytest

from scene3d_ros import CATEGORIES
from scene3d_ros.cli.generate_data import main as generate_data_main
from scene3d_ros.data import shards
from scene3d_ros.data.shards import (
    MANIFEST_NAME,
    DatasetBusyError,
    DatasetMismatchError,
    GenerateConfig,
    OutputConfig,
    decode_png,
    encode_png,
    generate_dataset,
    read_manifest,
    sha256_file,
    shard_name,
    write_npz,
)
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.world.cad_library import ensure_cad_library
from scene3d_ros.world.scene_sampler import SceneConfig

SCENE = SceneConfig(image_sizes=((96, 80),), num_objects_range=(1, 3))


def _config(seed=0, num_scenes=6, per_shard=2):
    output = OutputConfig(num_scenes=num_scenes, scenes_per_shard=per_shard, seed=seed)
    return GenerateConfig(scene=SCENE, output=output)


def _shas(root):
    return {s["file"]: s["sha256"] for s in read_manifest(root)["shards"]}


@pytest.fixture(scope="module", autouse=True)
def library():
    return ensure_cad_library()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The 3-shard dataset generated in-process (1 worker)."""
    root = tmp_path_factory.mktemp("ref")
    summary = generate_dataset(_config(), root, workers=1)
    assert summary.generated == [0, 1, 2] and summary.kept == []
    return root


def test_png_round_trip():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    ids = rng.integers(0, 65536, size=(5, 7)).astype(np.uint16)
    assert np.array_equal(decode_png(encode_png(rgb)), rgb)
    out = decode_png(np.frombuffer(encode_png(ids), dtype=np.uint8))
    assert out.dtype == np.uint16 and np.array_equal(out, ids)
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4), np.float32))


def test_npz_writer_is_deterministic_and_numpy_readable(tmp_path):
    entries = {"a": np.arange(10, dtype=np.float16), "b": np.frombuffer(b"png-bytes", dtype=np.uint8)}
    data = write_npz(entries, stored=["b"])
    assert data == write_npz(entries, stored=["b"])
    (tmp_path / "x.npz").write_bytes(data)
    with np.load(tmp_path / "x.npz") as npz:
        assert sorted(npz.files) == ["a", "b"]
        assert np.array_equal(npz["a"], entries["a"]) and npz["b"].tobytes() == b"png-bytes"


def test_manifest_lists_every_shard_with_checksums(reference):
    manifest = read_manifest(reference)
    assert manifest["complete"] and manifest["num_scenes"] == 6 and manifest["seed"] == 0
    assert [s["file"] for s in manifest["shards"]] == [shard_name(k) for k in range(3)]
    assert all(sha256_file(reference / s["file"]) == s["sha256"] for s in manifest["shards"])
    assert len({s["sha256"] for s in manifest["shards"]}) == 3  # every scene has its own random stream
    scenes = [SyntheticSceneDataset(reference).load_scene(i)["meta"] for i in range(6)]
    assert [m["scene_index"] for m in scenes] == list(range(6))
    assert len({json.dumps(m["scene"], sort_keys=True) for m in scenes}) == 6
    assert manifest["code_version"]["package"]
    assert manifest["identity"]["cad_library_checksum"] == ensure_cad_library().checksum
    assert not list(reference.glob(".*.tmp"))


def test_worker_count_does_not_change_the_bytes_and_seed_does(reference, tmp_path):
    generate_dataset(_config(), tmp_path / "two", workers=2)
    assert _shas(tmp_path / "two") == _shas(reference)
    for k in range(3):
        assert (tmp_path / "two" / shard_name(k)).read_bytes() == (reference / shard_name(k)).read_bytes()
    generate_dataset(_config(seed=1), tmp_path / "other", workers=1)
    other = _shas(tmp_path / "other")
    assert all(other[name] != sha for name, sha in _shas(reference).items())


def test_resume_regenerates_exactly_the_missing_or_broken_shards(reference, tmp_path):
    root = tmp_path / "resume"
    root.mkdir()
    for k in range(3):
        (root / shard_name(k)).write_bytes((reference / shard_name(k)).read_bytes())
    (root / MANIFEST_NAME).write_bytes((reference / MANIFEST_NAME).read_bytes())
    # lose shard 1, leave a killed writer's temporary file and corrupt shard 2
    (root / shard_name(1)).unlink()
    (root / f".{shard_name(1)}.abc123.tmp").write_bytes(b"partial")
    (root / shard_name(2)).write_bytes((reference / shard_name(2)).read_bytes()[:1000])
    summary = generate_dataset(_config(), root, workers=1)
    assert summary.generated == [1, 2] and summary.kept == [0]
    assert _shas(root) == _shas(reference)
    assert not list(root.glob(".*.tmp"))
    # nothing left to do on a complete dataset
    again = generate_dataset(_config(), root, workers=1)
    assert again.generated == [] and again.kept == [0, 1, 2]


def test_unlisted_but_valid_shard_is_adopted(reference, tmp_path):
    """A run killed after writing a shard but before updating the manifest loses nothing."""
    root = tmp_path / "adopt"
    root.mkdir()
    (root / shard_name(0)).write_bytes((reference / shard_name(0)).read_bytes())
    summary = generate_dataset(_config(), root, workers=1)
    assert summary.kept == [0] and summary.generated == [1, 2]
    assert _shas(root) == _shas(reference)


def test_mismatching_dataset_is_refused_unless_forced(reference, tmp_path, capsys):
    root = tmp_path / "mismatch"
    generate_dataset(_config(num_scenes=2), root, workers=1)
    with pytest.raises(DatasetMismatchError, match="seed"):
        generate_dataset(_config(num_scenes=2, seed=7), root, workers=1)
    code = generate_data_main(["--output", str(root), "--set", "output.seed=7", "output.num_scenes=2",
                               "output.scenes_per_shard=2", "scene.image_sizes=[[96,80]]",
                               "scene.num_objects_range=[1,3]"])
    assert code == 2 and "different configuration" in capsys.readouterr().err
    summary = generate_dataset(_config(num_scenes=2, seed=7), root, workers=1, force=True)
    assert summary.generated == [0] and read_manifest(root)["seed"] == 7


def test_concurrent_run_into_the_same_folder_is_refused(tmp_path):
    with shards._exclusive(tmp_path):
        with pytest.raises(DatasetBusyError):
            generate_dataset(_config(num_scenes=1), tmp_path, workers=1)
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_cli_generates_a_loadable_dataset(tmp_path):
    root = tmp_path / "cli"
    code = generate_data_main(["--output", str(root), "--workers", "1", "--set", "output.num_scenes=3",
                               "output.scenes_per_shard=2", "scene.image_sizes=[[64,48]]", "output.seed=3"])
    assert code == 0
    manifest = read_manifest(root)
    assert [s["num_scenes"] for s in manifest["shards"]] == [2, 1]
    assert manifest["config"]["scene"]["image_sizes"] == [[64, 48]]
    assert len(SyntheticSceneDataset(root)) == 3


def test_dataset_returns_consistent_torch_targets(reference):
    import torch

    dataset = SyntheticSceneDataset(reference, with_depth=True)
    assert len(dataset) == 6
    for index in range(len(dataset)):
        image, target = dataset[index]
        raw = dataset.load_scene(index)
        n = len(raw["meta"]["objects"])
        assert image.dtype == torch.float32 and image.shape == (3, 80, 96)
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert target["boxes"].shape == (n, 4) and target["boxes"].dtype == torch.float32
        assert target["labels"].dtype == torch.int64 and target["labels"].shape == (n,)
        assert target["masks"].shape == (n, 80, 96) and target["masks"].dtype == torch.uint8
        assert target["quaternions"].shape == (n, 4) and target["translations"].shape == (n, 3)
        assert target["K"].shape == (3, 3) and target["depth"].shape == (80, 96)
        for key in ("occluded", "truncated", "difficult"):
            assert target[key].dtype == torch.bool and target[key].shape == (n,)
        assert int(target["image_id"]) == index and len(target["model_ids"]) == n
        assert torch.all(target["quaternions"][:, 0] >= 0)
        for i, obj in enumerate(raw["meta"]["objects"]):
            assert CATEGORIES[int(target["labels"][i]) - 1] == obj["category"]
            assert target["symmetries"][i] == obj["symmetry"] in ("none", "c2", "c4", "continuous")
            mask = target["masks"][i].bool()
            ys, xs = torch.nonzero(mask, as_tuple=True)
            box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
            assert box == target["boxes"][i].int().tolist()
        assert torch.all((target["depth"] > 0) == torch.from_numpy(raw["instance"] >= 0))
        assert raw["rgb"].dtype == np.uint8 and raw["instance"].dtype == np.int32
        assert json.dumps(raw["meta"])  # plain JSON
    with pytest.raises(IndexError):
        dataset[len(dataset)]
