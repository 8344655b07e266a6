"""The horizontal mirror: a flipped rendering equals the rendering of the mirrored pose and camera."""

import numpy as np
import pytest
import torch
import trimesh

from scene3d_ros.geometry import (
    CameraIntrinsics,
    canonicalize_rotation,
    is_rotation_matrix,
    matrix_to_quaternion,
    symmetric_rotation_error_deg,
    viewpoint_rotation,
)
from scene3d_ros.mirror import (
    MIRROR_SYMMETRY_TOLERANCE,
    mirror_asymmetry,
    mirror_boxes,
    mirror_intrinsics,
    mirror_quaternions,
    mirror_rotations,
    mirror_target,
    mirror_translations,
)
from scene3d_ros.world.procedural_models import SUBTYPES, build_procedural_model
from scene3d_ros.world.renderer import Renderer

# an off-centre principal point and a non-square image, so cx -> W - cx is not a no-op
K = np.array([[210.0, 0.0, 140.0], [0.0, 200.0, 95.0], [0.0, 0.0, 1.0]])
WIDTH, HEIGHT = 256, 192


def _spec(category: str, subtype: str):
    return next(s for s in SUBTYPES if s.category == category and s.subtype == subtype)


@pytest.fixture(scope="module")
def car():
    return build_procedural_model(_spec("car", "sedan"), "car_sedan_01", seed=0).mesh


def _box_of(depth: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(depth > 0)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


@pytest.mark.parametrize("azimuth", [35.0, 120.0, -70.0])
def test_flipped_rendering_is_the_mirrored_pose(car, azimuth):
    renderer = Renderer()
    rotation = viewpoint_rotation(azimuth, 15.0, 5.0)
    translation = np.array([0.6, 0.3, 7.0])
    intrinsics = CameraIntrinsics.from_matrix(K, WIDTH, HEIGHT)
    depth = renderer.render_depth(car, rotation, translation, intrinsics)
    assert (depth > 0).sum() > 500  # the car is in view
    mirrored_rotation = mirror_rotations(rotation[None])[0]
    assert is_rotation_matrix(mirrored_rotation)
    mirrored = renderer.render_depth(car, mirrored_rotation, mirror_translations(translation[None])[0],
                                     CameraIntrinsics.from_matrix(mirror_intrinsics(K, WIDTH), WIDTH, HEIGHT))
    flipped = depth[:, ::-1]
    inside, other = flipped > 0, mirrored > 0
    assert (inside & other).sum() / (inside | other).sum() > 0.995
    both = inside & other
    assert np.median(np.abs(flipped[both] - mirrored[both])) < 1e-3  # the same surface, metres
    np.testing.assert_allclose(mirror_boxes(_box_of(depth)[None], WIDTH)[0], _box_of(mirrored), atol=1.0)
    # the wrong principal point (cx unchanged) misplaces the mirrored object by 2 cx - W pixels
    shifted = renderer.render_depth(car, mirrored_rotation, mirror_translations(translation[None])[0], intrinsics)
    assert ((shifted > 0) & inside).sum() / ((shifted > 0) | inside).sum() < 0.9


def test_mirror_is_an_involution_and_keeps_the_symmetry_orbit():
    rng = np.random.default_rng(3)
    rotations = np.stack([viewpoint_rotation(*rng.uniform([-180, -30, -20], [180, 60, 20])) for _ in range(20)])
    np.testing.assert_allclose(mirror_rotations(mirror_rotations(rotations)), rotations, atol=1e-12)
    twice = mirror_quaternions(mirror_quaternions(matrix_to_quaternion(rotations)))
    np.testing.assert_allclose(twice, matrix_to_quaternion(rotations), atol=1e-9)
    assert np.all(mirror_quaternions(matrix_to_quaternion(rotations))[:, 0] >= 0)
    for symmetry in ("c2", "c4", "continuous"):
        canonical = np.stack([canonicalize_rotation(r, symmetry) for r in rotations])
        mirrored = mirror_rotations(canonical, [symmetry] * len(canonical))
        # canonical already, and the same rotations modulo the symmetry as mirroring the raw ones
        np.testing.assert_allclose(np.stack([canonicalize_rotation(r, symmetry) for r in mirrored]), mirrored,
                                   atol=1e-9)
        errors = [symmetric_rotation_error_deg(m, r, symmetry) for m, r in zip(mirrored, mirror_rotations(rotations),
                                                                            strict=True)]
        assert max(errors) < 1e-5
    with pytest.raises(ValueError, match="one symmetry per rotation"):
        mirror_rotations(rotations, ["none"])


def test_mirror_target_flips_every_spatial_entry():
    image = torch.rand(3, HEIGHT, WIDTH)
    masks = torch.zeros(1, HEIGHT, WIDTH, dtype=torch.uint8)
    masks[0, 20:60, 10:50] = 1
    target = {"boxes": torch.tensor([[10.0, 20.0, 50.0, 60.0]]), "labels": torch.tensor([6]), "masks": masks,
              "K": torch.tensor(K, dtype=torch.float32),
              "quaternions": torch.tensor(matrix_to_quaternion(viewpoint_rotation(30.0, 10.0))[None], dtype=torch.float32),
              "translations": torch.tensor([[0.5, 0.2, 6.0]]), "symmetries": ["none"], "model_ids": ["car_sedan_01"]}
    flipped_image, flipped = mirror_target(image, target)
    assert torch.equal(flipped_image, image.flip(-1))
    assert torch.equal(flipped["masks"][0, 20:60, WIDTH - 50:WIDTH - 10], torch.ones(40, 40, dtype=torch.uint8))
    assert int(flipped["masks"].sum()) == int(masks.sum())
    torch.testing.assert_close(flipped["boxes"], torch.tensor([[WIDTH - 50.0, 20.0, WIDTH - 10.0, 60.0]]))
    assert float(flipped["K"][0, 2]) == pytest.approx(WIDTH - 140.0)
    torch.testing.assert_close(flipped["translations"], torch.tensor([[-0.5, 0.2, 6.0]]))
    assert flipped["model_ids"] == target["model_ids"] and flipped["labels"] is target["labels"]
    assert flipped["quaternions"].dtype == torch.float32
    # the box still encloses the flipped mask
    ys, xs = torch.nonzero(flipped["masks"][0], as_tuple=True)
    assert [int(xs.min()), int(xs.max()) + 1] == [WIDTH - 50, WIDTH - 10]


def test_mirror_asymmetry_tells_symmetric_from_lopsided_meshes(car):
    assert mirror_asymmetry(car) < MIRROR_SYMMETRY_TOLERANCE
    box = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    assert mirror_asymmetry(box) < MIRROR_SYMMETRY_TOLERANCE
    # an L: a second block on the left side only
    lopsided = trimesh.util.concatenate([box, trimesh.creation.box(extents=(0.4, 0.6, 0.4),
                                                                   transform=trimesh.transformations.translation_matrix(
                                                                       (0.3, 0.6, 0.0)))])
    assert mirror_asymmetry(lopsided) > 3.0
    sidecar = build_procedural_model(_spec("motorbike", "sidecar"), "motorbike_sidecar_01", seed=0).mesh
    assert mirror_asymmetry(sidecar) > 3.0
