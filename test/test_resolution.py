"""The resolution policy: candidate scoring, flips, fallback, the final egocentric rotation, one
set of defaults, and the only place that maps a database view back to an egocentric rotation."""

from __future__ import annotations

import ast
import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from scene3d_ros.geometry import matrix_to_quaternion, viewpoint_rotation
from scene3d_ros.model.rotations import allocentric_to_egocentric, canonicalize_quaternion
from scene3d_ros.retrieval import FALLBACK_CUBOID, ObjectQuery, ResolutionPolicy, ShapeDatabase
from scene3d_ros.retrieval.resolution import occlusion_weights, soft_iou

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(2)


def _quat(azimuth: float, elevation: float = 0.0, inplane: float = 0.0) -> np.ndarray:
    return matrix_to_quaternion(viewpoint_rotation(azimuth, elevation, inplane)).astype(np.float64)


def _silhouette(rows: slice, cols: slice, grid: int = 28) -> np.ndarray:
    out = np.zeros((grid, grid), dtype=np.uint8)
    out[rows, cols] = 255
    return out


def _db(descriptors, quaternions, models, silhouettes=None, symmetries=None) -> ShapeDatabase:
    """View i has descriptor i, rotation i, model ``models[i]`` (all cars) and silhouette i."""
    names = sorted(set(models))
    symmetries = symmetries or {}
    return ShapeDatabase(torch.as_tensor(np.asarray(descriptors, dtype=np.float32)),
                         torch.tensor([names.index(m) for m in models]),
                         torch.as_tensor(np.asarray(quaternions, dtype=np.float32)), names, ["car"] * len(names),
                         [symmetries.get(m, "none") for m in names],
                         silhouettes=None if silhouettes is None else torch.as_tensor(np.stack(silhouettes)))


WIDE, TALL = _silhouette(slice(8, 20), slice(0, 28)), _silhouette(slice(0, 28), slice(8, 20))
MASK_WIDE = WIDE.astype(np.float32) / 255.0


def _query(azimuth: float = 5.0, mask=MASK_WIDE, translation=(0.0, 0.0, 5.0), **kw) -> ObjectQuery:
    return ObjectQuery("car", np.zeros(4, np.float32), _quat(azimuth)[None], translation=np.asarray(translation),
                       mask=mask, **kw)


def test_the_silhouette_picks_the_view_whose_outline_fits_the_mask() -> None:
    # view 0 (tall outline) is the nearer descriptor; view 1 (wide outline) is 1.0 farther
    db = _db([np.full(4, 0.5), np.full(4, 1.0)], [_quat(0), _quat(10)], ["car_tall", "car_wide"], [TALL, WIDE])
    plain = ResolutionPolicy(silhouette_check=False).resolve(db, [_query()])[0]
    assert plain.model_id == "car_tall" and plain.silhouette_iou is None and plain.confidence is None
    assert not plain.checked
    checked = ResolutionPolicy(max_angle_deg=30.0, silhouette_max_angle_deg=30.0).resolve(db, [_query()])[0]
    assert checked.checked and checked.model_id == "car_wide" and checked.view_index == 1
    assert checked.silhouette_iou == pytest.approx(1.0) and checked.confidence == pytest.approx(1.0)
    assert checked.distance == pytest.approx(4.0) and checked.view_quaternion == pytest.approx(tuple(_quat(10)), abs=1e-6)
    # no weight on the silhouette: the nearest descriptor again; a steep angle weight: the nearer view
    ignore = ResolutionPolicy(silhouette_weight=0.0, silhouette_angle_weight=0.0)
    assert ignore.resolve(db, [_query()])[0].model_id == "car_tall"
    far = _db([np.full(4, 0.5), np.full(4, 1.0)], [_quat(0), _quat(30)], ["car_tall", "car_wide"], [TALL, WIDE])
    steep = ResolutionPolicy(silhouette_weight=1.0, silhouette_angle_weight=200.0, silhouette_max_angle_deg=40.0)
    assert steep.resolve(far, [_query(0.0)])[0].model_id == "car_tall"
    # an object without a mask, or a database without silhouettes: the descriptor-only rule
    assert ResolutionPolicy().resolve(db, [_query(mask=None)])[0].model_id == "car_tall"
    assert ResolutionPolicy().resolve(_db([np.full(4, 0.5)], [_quat(0)], ["car_tall"]), [_query()])[0].checked is False


def test_the_final_rotation_is_the_chosen_view_in_the_camera_and_the_hypothesis_without_the_check() -> None:
    db = _db([np.full(4, 1.0)], [_quat(40, 10)], ["car_a"], [WIDE])
    translation = np.array([2.0, -1.0, 6.0])  # off the optical axis: egocentric differs from allocentric
    result = ResolutionPolicy().resolve(db, [_query(30.0, translation=translation)])[0]
    expected = allocentric_to_egocentric(torch.tensor(_quat(40, 10))[None], torch.tensor(translation)[None])[0]
    np.testing.assert_allclose(result.quaternion, expected.numpy(), atol=1e-6)
    assert result.quaternion[0] >= 0.0 and abs(np.linalg.norm(result.quaternion) - 1.0) < 1e-9
    plain = ResolutionPolicy(silhouette_check=False).resolve(db, [_query(30.0, translation=translation)])[0]
    hypothesis = allocentric_to_egocentric(torch.tensor(_quat(30.0))[None], torch.tensor(translation)[None])[0]
    np.testing.assert_allclose(plain.quaternion, hypothesis.numpy(), atol=1e-9)
    # a query built from an egocentric pose (a detections_3d message) resolves the same
    ego = ObjectQuery.from_egocentric("car", np.zeros(4), hypothesis.numpy(), translation, MASK_WIDE)
    np.testing.assert_allclose(ResolutionPolicy().resolve(db, [ego])[0].quaternion, result.quaternion, atol=1e-6)


def test_a_flip_hypothesis_that_fits_the_mask_better_wins() -> None:
    """The object is seen from azimuth 180 but the network says 0: only the flipped hypothesis's
    window holds the view whose silhouette fits, and with flips on it wins."""
    db = _db([np.full(4, 0.5), np.full(4, 0.5)], [_quat(0), _quat(180)], ["car_a", "car_a"], [TALL, WIDE])
    policy = ResolutionPolicy(silhouette_max_angle_deg=30.0)
    assert policy.resolve(db, [_query(0.0)])[0].view_index == 0  # without flips: the only view in the window
    flipped = policy.replace(azimuth_flips=True).resolve(db, [_query(0.0)])[0]
    assert flipped.view_index == 1 and flipped.flipped and flipped.hypothesis == 0
    np.testing.assert_allclose(flipped.view_quaternion, _quat(180), atol=1e-6)
    # the flip is the object turned 180 deg about its up axis: same elevation and in-plane angle
    turned = canonicalize_quaternion(torch.tensor(_quat(20, 15, 5))[None]).numpy()
    flip_of = ResolutionPolicy(azimuth_flips=True, silhouette_max_angle_deg=5.0)
    target = _db([np.full(4, 0.0)], [_quat(200, 15, 5)], ["car_a"], [WIDE])
    result = flip_of.resolve(target, [ObjectQuery("car", np.zeros(4), turned, mask=MASK_WIDE)])[0]
    assert result.flipped and result.view_angle_deg == pytest.approx(0.0, abs=0.1) and result.widened_to_deg is None


def test_hypothesis_probabilities_weigh_in_and_the_best_hypothesis_wins() -> None:
    db = _db([np.full(4, 0.5), np.full(4, 0.6)], [_quat(0), _quat(120)], ["car_a", "car_b"], [WIDE, WIDE])
    two = np.stack([_quat(0), _quat(120)])
    likely_second = ObjectQuery("car", np.zeros(4), two, probabilities=[0.01, 0.99], mask=MASK_WIDE)
    policy = ResolutionPolicy(silhouette_max_angle_deg=30.0)
    result = policy.resolve(db, [likely_second])[0]
    assert result.hypothesis == 1 and result.model_id == "car_b"
    assert result.confidence == pytest.approx(0.99 * result.silhouette_iou)
    assert policy.replace(hypothesis_weight=0.0).resolve(db, [likely_second])[0].hypothesis == 0  # distance decides
    with pytest.raises(ValueError, match="probability"):
        ObjectQuery("car", np.zeros(4), two, probabilities=[0.5, 1.5])
    with pytest.raises(ValueError, match="unit quaternions"):
        ObjectQuery("car", np.zeros(4), np.zeros((1, 4)))


class _ShapeClasses:
    """``shapes`` for resolve(): a model id's shape class is its name without the instance number."""

    def shape_key(self, model_id: str) -> str:
        return "car/" + model_id.split("_")[1]


def test_shape_probabilities_choose_among_models_the_descriptor_finds_about_equally_close() -> None:
    db = _db([np.full(4, 0.5), np.full(4, 0.6), np.full(4, 0.55)], [_quat(0), _quat(0), _quat(0)],
             ["car_sedan_01", "car_pickup_01", "car_van_01"], [WIDE, WIDE, WIDE])
    says_pickup = _query(0.0, shape_probabilities={"car/sedan": 0.1, "car/pickup": 0.9})
    policy = ResolutionPolicy(silhouette_max_angle_deg=30.0, shape_weight=0.0)
    assert policy.resolve(db, [says_pickup], shapes=_ShapeClasses())[0].model_id == "car_sedan_01"  # weight 0
    shaped = policy.replace(shape_weight=1.0)
    assert shaped.resolve(db, [says_pickup], shapes=_ShapeClasses())[0].model_id == "car_pickup_01"
    # an unlisted class (van) counts as the uniform share 1/2: it beats a class at 0.1, not one at 0.9
    says_sedan_unlikely = _query(0.0, shape_probabilities={"car/sedan": 0.1, "car/pickup": 0.1})
    assert shaped.resolve(db, [says_sedan_unlikely], shapes=_ShapeClasses())[0].model_id == "car_van_01"
    # without shape probabilities, or without a way to name a model's class: the descriptor decides
    assert shaped.resolve(db, [_query(0.0)], shapes=_ShapeClasses())[0].model_id == "car_sedan_01"
    assert shaped.resolve(db, [says_pickup])[0].model_id == "car_sedan_01"
    with pytest.raises(ValueError, match="shape probabilities"):
        _query(0.0, shape_probabilities={"car/sedan": 1.5})
    with pytest.raises(ValueError, match="shape_weight"):
        ResolutionPolicy(shape_weight=-1.0)


def test_occlusion_aware_scoring_does_not_count_the_part_an_occluder_hides() -> None:
    """Car A (box x 0-28) shows only its left half: car B (box x 14-42, mask full) hides the rest.
    A's mask fits a half-car outline best, so the plain check picks that farther view; occlusion
    aware, the cells B's mask claims do not count and the nearer full-car view fits as well, so it
    wins. B is not occluded (nothing of A lies in its box) and resolves alike either way."""
    half = _silhouette(slice(8, 20), slice(0, 14))
    db = _db([np.full(4, 0.5), np.full(4, 1.0)], [_quat(0), _quat(5)], ["car_full", "car_half"], [WIDE, half])
    mask_a = half.astype(np.float32) / 255.0
    a = _query(mask=mask_a, box=np.array([0.0, 0.0, 28.0, 28.0]))
    b = _query(mask=np.ones((28, 28), np.float32), box=np.array([14.0, 0.0, 42.0, 28.0]))
    policy = ResolutionPolicy(silhouette_max_angle_deg=30.0, occlusion_aware=False)
    assert [r.model_id for r in policy.resolve(db, [a, b])][0] == "car_half"
    aware = policy.replace(occlusion_aware=True).resolve(db, [a, b])
    assert aware[0].model_id == "car_full" and aware[0].silhouette_iou == pytest.approx(1.0)
    assert aware[1] == policy.resolve(db, [a, b])[1]
    assert aware[0] != policy.replace(occlusion_aware=True).resolve(db, [a])[0]  # alone: nothing hides A
    weights = occlusion_weights([a, b, _query(box=None)], 28)
    np.testing.assert_allclose(weights[0][:, :14], 1.0, atol=1e-5)
    np.testing.assert_allclose(weights[0][:, 14:], 0.0, atol=1e-5)
    np.testing.assert_allclose(weights[1], 1.0, atol=1e-5)
    assert np.all(weights[2] == 1.0)
    # the weighted IoU: cells of weight 0 count for neither the intersection nor the union
    full, left = torch.from_numpy(WIDE / 255.0)[None, None], torch.from_numpy(mask_a)[None]
    assert float(soft_iou(left, full)) == pytest.approx(0.5)
    assert float(soft_iou(left, full, torch.from_numpy(weights[0])[None])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="occlusion_aware"):
        ResolutionPolicy(occlusion_aware=1)


def test_cuboid_fallback_keeps_the_hypothesis_rotation() -> None:
    db = _db([np.full(4, 3.0)], [_quat(0)], ["car_a"], [WIDE])
    translation = np.array([1.0, 0.5, 4.0])
    too_far = ResolutionPolicy(max_distance=1.0).resolve(db, [_query(10.0, translation=translation)])[0]
    assert too_far.fallback == FALLBACK_CUBOID and too_far.model_id is None and too_far.confidence == 0.0
    hypothesis = allocentric_to_egocentric(torch.tensor(_quat(10.0))[None], torch.tensor(translation)[None])[0]
    np.testing.assert_allclose(too_far.quaternion, hypothesis.numpy(), atol=1e-9)
    no_model = ResolutionPolicy().resolve(db, [ObjectQuery("chair", np.zeros(4), _quat(0)[None], mask=MASK_WIDE)])[0]
    assert no_model.fallback == FALLBACK_CUBOID and no_model.view_index == -1 and math.isinf(no_model.distance)
    assert ResolutionPolicy().resolve(db, []) == []


def test_bad_parameters_and_masks_are_refused() -> None:
    for bad in ({"silhouette_weight": -1.0}, {"silhouette_angle_weight": float("inf")}, {"silhouette_candidates": 0},
                {"silhouette_candidates": 2.5}, {"max_angle_deg": 0.0}, {"silhouette_max_angle_deg": 181.0},
                {"max_distance": -1.0}, {"azimuth_flips": 1}):
        with pytest.raises(ValueError):
            ResolutionPolicy(**bad)
    db = _db([np.zeros(4)], [_quat(0)], ["car_a"], [WIDE])
    with pytest.raises(ValueError, match="28x28"):
        ResolutionPolicy().resolve(db, [_query(mask=np.zeros((14, 14)))])
    with pytest.raises(ValueError, match="finite"):
        ResolutionPolicy().resolve(db, [_query(mask=np.full((28, 28), np.nan))])


def test_the_policy_agrees_across_search_backends() -> None:
    pytest.importorskip("faiss")
    generator = torch.Generator().manual_seed(2)
    views, dim, models = 1500, 16, 30
    names = [f"m{i:02d}" for i in range(models)]
    model_of_view = [names[i] for i in torch.randint(0, models, (views,), generator=generator)]
    silhouettes = list(((torch.rand(views, 28, 28, generator=generator) > 0.5).to(torch.uint8) * 255).numpy())
    db = _db(torch.randn(views, dim, generator=generator).numpy(),
             canonicalize_quaternion(torch.randn(views, 4, generator=generator)).numpy(), model_of_view, silhouettes,
             {m: "continuous" for m in names[::3]})
    rotations = canonicalize_quaternion(torch.randn(30, 4, generator=generator, dtype=torch.float64)).numpy()
    queries = [ObjectQuery("car", torch.randn(dim, generator=generator).numpy(), rotations[i][None],
                           mask=torch.rand(28, 28, generator=generator).numpy()) for i in range(30)]
    for policy in (ResolutionPolicy(silhouette_weight=2000.0, silhouette_candidates=16, silhouette_max_angle_deg=60.0),
                   ResolutionPolicy(silhouette_weight=2000.0, silhouette_candidates=16, silhouette_max_angle_deg=180.0,
                                    azimuth_flips=True)):
        a, b = policy.resolve(db, queries), policy.resolve(db, queries, backend="faiss")
        plain = policy.replace(silhouette_check=False).resolve(db, queries)
        assert sum(x.view_index != p.view_index for x, p in zip(a, plain, strict=True)) > 5  # the check matters
        for x, y in zip(a, b, strict=True):
            assert (x.model_id, x.view_index, x.flipped) == (y.model_id, y.view_index, y.flipped)
            assert x.quaternion == pytest.approx(y.quaternion, abs=1e-5)


# --------------------------------------------------------------------------- one policy, one set of defaults
def test_the_policy_is_the_only_place_that_maps_a_view_to_an_egocentric_rotation() -> None:
    """Pipeline, retrieval_node and the evaluation resolve through ResolutionPolicy and none of
    them converts rotations itself (their old code paths are gone)."""
    callers = {"scene3d_ros/pipeline.py", "scene3d_ros/ros/retrieval_node.py", "scene3d_ros/retrieval/evaluation.py",
               "scene3d_ros/evaluation/runner.py"}
    for path in sorted((ROOT / "scene3d_ros").rglob("*.py")):
        names = {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, (ast.Name, ast.Attribute))}
        relative = str(path.relative_to(ROOT))
        if "allocentric_to_egocentric" in names:
            assert relative in {"scene3d_ros/retrieval/resolution.py", "scene3d_ros/model/rotations.py",
                                "scene3d_ros/model/pose_heads.py"}, f"{relative} maps rotations itself"
        assert "view_rotations" not in names or relative in {"scene3d_ros/retrieval/resolution.py",
                                                             "scene3d_ros/retrieval/shape_database.py"}, relative
        if relative in callers - {"scene3d_ros/evaluation/runner.py"}:
            assert "resolve" in names and ".search(" not in path.read_text(), relative


def test_configs_and_node_parameters_use_the_policy_defaults() -> None:
    defaults = dataclasses.asdict(ResolutionPolicy())
    node = yaml.safe_load((ROOT / "config" / "retrieval.yaml").read_text())["/**"]["ros__parameters"]
    evaluate = yaml.safe_load((ROOT / "config" / "evaluate.yaml").read_text())["evaluate"]["retrieval"]
    for config in (node, evaluate):
        shared = set(config) & set(defaults)
        assert {"max_angle_deg", "silhouette_check", "silhouette_weight", "silhouette_angle_weight",
                "silhouette_candidates", "silhouette_max_angle_deg"} <= shared
        for name in shared:
            assert config[name] == (defaults[name] if defaults[name] is not None else 0.0), name
    assert node["max_distance"] == 0.0 and defaults["max_distance"] is None  # 0 = never, the policy's None
    source = (ROOT / "scene3d_ros" / "ros" / "retrieval_node.py").read_text()
    for name in defaults:  # the node declares every policy parameter with the policy's default
        assert re.search(rf'declare\("{name}", default\.{name}\b', source), name
    from scene3d_ros.evaluation.runner import RetrievalEvalConfig

    assert RetrievalEvalConfig().policy() == ResolutionPolicy()


def test_final_rotation_hypothesis_publishes_the_winning_hypothesis_not_the_view() -> None:
    """The view (azimuth 40) is chosen either way; with final_rotation=hypothesis the published
    rotation is the hypothesis (azimuth 30) in the camera, and the flip when the flip won."""
    db = _db([np.full(4, 1.0)], [_quat(40, 10)], ["car_a"], [WIDE])
    translation = np.array([2.0, -1.0, 6.0])
    policy = ResolutionPolicy(final_rotation="hypothesis")
    result = policy.resolve(db, [_query(30.0, translation=translation)])[0]
    assert result.view_index == 0
    expected = allocentric_to_egocentric(torch.tensor(_quat(30.0))[None], torch.tensor(translation)[None])[0]
    np.testing.assert_allclose(result.quaternion, expected.numpy(), atol=1e-9)
    flips = _db([np.full(4, 0.5), np.full(4, 0.5)], [_quat(0), _quat(178)], ["car_a", "car_a"], [TALL, WIDE])
    flipped = policy.replace(azimuth_flips=True, silhouette_max_angle_deg=30.0).resolve(flips, [_query(0.0)])[0]
    assert flipped.flipped
    np.testing.assert_allclose(np.abs(flipped.quaternion), np.abs(_quat(180.0)), atol=1e-6)
    with pytest.raises(ValueError, match="final_rotation"):
        ResolutionPolicy(final_rotation="grid")
    # auto: the view for an object with one hypothesis, the winning hypothesis with several
    auto = ResolutionPolicy(final_rotation="auto", fit_translation=False)
    one = auto.resolve(db, [_query(30.0, translation=translation)])[0]
    np.testing.assert_allclose(one.quaternion, ResolutionPolicy(final_rotation="view").resolve(
        db, [_query(30.0, translation=translation)])[0].quaternion, atol=1e-9)
    two = ObjectQuery("car", np.zeros(4, np.float32), np.stack([_quat(30.0), _quat(120.0)]), np.array([0.9, 0.1]),
                      translation=translation, mask=MASK_WIDE)
    np.testing.assert_allclose(auto.resolve(db, [two])[0].quaternion, expected.numpy(), atol=1e-9)


# --------------------------------------------------------------------------- camera scoring
def _l_shaped_car():
    """A front/back-asymmetric mesh (object frame: +x front, +z up, metres): a long low body and a
    tall cabin at the back, so the object turned 180 deg about its up axis shows another outline."""
    import trimesh

    body = trimesh.creation.box(extents=(2.0, 0.8, 0.5))
    cabin = trimesh.creation.box(extents=(0.6, 0.8, 0.9))
    cabin.apply_translation((-0.7, 0.0, 0.7))
    mesh = trimesh.util.concatenate([body, cabin])
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    return mesh


def _rendered_object(rotation: np.ndarray, translation: np.ndarray):
    """The scene's camera, the object's tight box (pixel edges) and its 28 x 28 box mask, as Mask
    R-CNN's mask targets are cut (roi_align, 2 x 2 samples per cell) from the rendered instance map."""
    from torchvision.ops import roi_align

    from scene3d_ros.geometry import CameraIntrinsics
    from scene3d_ros.world.renderer import Renderer, RenderObject

    camera = CameraIntrinsics.from_fov(320, 240, 60.0)
    mesh = _l_shaped_car()
    instance = Renderer(nthreads=1).render([RenderObject(mesh, rotation, translation)], camera, amodal=False).instance
    rows, cols = np.nonzero(instance == 0)
    box = np.array([cols.min(), rows.min(), cols.max() + 1.0, rows.max() + 1.0])
    mask = roi_align(torch.from_numpy((instance == 0).astype(np.float32))[None, None],
                     [torch.tensor(box, dtype=torch.float32)[None]], (28, 28), 1.0, 2, False)[0, 0].numpy()
    return mesh, camera, box, mask


def _soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.minimum(a, b).sum() / np.maximum(a, b).sum())


TURN = np.diag([-1.0, -1.0, 1.0])  # 180 deg about the object's up axis (+z)


def test_the_camera_silhouette_of_the_true_pose_matches_the_rendered_mask_better_than_the_turned_pose() -> None:
    from scene3d_ros.geometry import CameraIntrinsics, viewpoint_rotation
    from scene3d_ros.retrieval.resolution import camera_silhouette

    for azimuth, elevation, translation in ((80.0, 10.0, (0.4, -0.3, 6.0)), (250.0, 25.0, (-1.5, 0.8, 5.0))):
        rotation = viewpoint_rotation(azimuth, elevation, 5.0)
        mesh, camera, box, mask = _rendered_object(rotation, np.array(translation))
        true = camera_silhouette(mesh, rotation, np.array(translation), box, camera, 28)
        turned = camera_silhouette(mesh, rotation @ TURN, np.array(translation), box, camera, 28)
        assert true.shape == (28, 28) and true.dtype == np.float32 and 0.0 <= true.min() and true.max() <= 1.0
        assert _soft_iou(mask, true) > 0.93, _soft_iou(mask, true)
        assert _soft_iou(mask, turned) < _soft_iou(mask, true) - 0.1, (_soft_iou(mask, turned), _soft_iou(mask, true))
        # the same camera and pose rendered farther away fills less of the box
        farther = camera_silhouette(mesh, rotation, 1.3 * np.array(translation), box, camera, 28)
        assert _soft_iou(mask, farther) < _soft_iou(mask, true) - 0.1
    with pytest.raises(ValueError, match="x1 > x0"):
        camera_silhouette(mesh, rotation, np.array(translation), np.array([10.0, 10.0, 10.0, 20.0]),
                          CameraIntrinsics.from_fov(320, 240, 60.0), 28)


class _OneMeshLibrary:
    """A CAD-library stand-in for ModelPoints: every model id is the L-shaped car."""

    def __init__(self, mesh) -> None:
        self._mesh = mesh

    def mesh(self, model_id: str):
        return self._mesh.copy()


def test_camera_scoring_picks_the_true_hypothesis_over_a_more_probable_flipped_one() -> None:
    from scene3d_ros.geometry import viewpoint_rotation
    from scene3d_ros.model.rotations import egocentric_to_allocentric
    from scene3d_ros.retrieval.translation import ModelPoints

    rotation, translation = viewpoint_rotation(70.0, 15.0, 0.0), np.array([0.6, -0.2, 6.0])
    mesh, camera, box, mask = _rendered_object(rotation, translation)
    true_ego = matrix_to_quaternion(rotation)
    flip_ego = matrix_to_quaternion(rotation @ TURN)
    allo = egocentric_to_allocentric(torch.tensor(np.stack([flip_ego, true_ego])), torch.tensor(translation)[None]
                                     .expand(2, 3)).numpy()
    # two views of the one model, at both hypotheses, with the same descriptor and the same (box-normalised)
    # silhouette: the database's views cannot tell them apart, the camera can
    db = _db([np.zeros(4), np.zeros(4)], allo, ["car_l", "car_l"], [WIDE, WIDE])
    shapes = ModelPoints(_OneMeshLibrary(mesh))
    query = ObjectQuery.from_egocentric("car", np.zeros(4), np.stack([flip_ego, true_ego]), translation * 1.15, mask,
                                        intrinsics=camera, probabilities=np.array([0.6, 0.4]), box=box)
    views_only = ResolutionPolicy(camera_weight=0.0)
    views = views_only.resolve(db, [query], shapes=shapes)[0]
    assert views.hypothesis == 0 and not views.camera_scored  # the more probable (flipped) one
    camera_policy = ResolutionPolicy(camera_weight=20.0)
    result = camera_policy.resolve(db, [query], shapes=shapes)[0]
    assert result.hypothesis == 1 and not result.flipped and result.model_id == "car_l" and result.camera_scored
    assert result.silhouette_iou > 0.9 and result.confidence == pytest.approx(0.4 * result.silhouette_iou)
    # the final pose: the true rotation, at the translation fitted to the box (the query's was 15 % too far)
    np.testing.assert_allclose(result.translation, translation, rtol=0.03)
    assert np.degrees(2.0 * np.arccos(min(1.0, abs(float(np.dot(result.quaternion, true_ego)))))) < 1.0
    # azimuth flips: the flip of the more probable hypothesis is the truth, and it wins
    only_flip = ObjectQuery.from_egocentric("car", np.zeros(4), flip_ego, translation, mask, intrinsics=camera, box=box)
    flipped = camera_policy.replace(azimuth_flips=True).resolve(db, [only_flip], shapes=shapes)[0]
    assert flipped.flipped and flipped.hypothesis == 0
    # without a camera, a box or meshes, and for one rotation without flips: the database's views score
    for fallback, shapes_i in ((dataclasses.replace(query, intrinsics=None), shapes),
                               (dataclasses.replace(query, box=None), shapes), (query, shapes.__call__), (query, None)):
        a = camera_policy.resolve(db, [fallback], shapes=shapes_i)[0]
        assert a == views_only.resolve(db, [fallback], shapes=shapes_i)[0] and not a.camera_scored
    assert camera_policy.resolve(db, [only_flip], shapes=shapes) == views_only.resolve(db, [only_flip], shapes=shapes)


def test_camera_scoring_parameters_are_checked() -> None:
    for bad in ({"camera_weight": -1.0}, {"camera_weight": float("nan")}, {"camera_models": 0},
                {"camera_models": 1.5}, {"camera_models": True}):
        with pytest.raises(ValueError):
            ResolutionPolicy(**bad)
    assert ResolutionPolicy(camera_weight=0.0, camera_models=2).camera_models == 2
