"""Quaternion canonicalisation, rotation round trips, symmetry-aware errors, the pinhole camera."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from scene3d_ros.geometry import (
    CameraIntrinsics,
    camera_direction_in_object,
    canonical_quaternion,
    canonicalize_rotation,
    geodesic_angle_deg,
    matrix_to_quaternion,
    quaternion_to_matrix,
    rotation_about_up,
    rotation_to_viewpoint,
    symmetric_rotation_error_deg,
    viewpoint_rotation,
)

RNG = np.random.default_rng(7)
RANDOM_ROTATIONS = Rotation.random(200, random_state=3).as_matrix()


def test_canonical_quaternion_has_nonnegative_w_and_unit_norm():
    q = RNG.normal(size=(500, 4))
    c = canonical_quaternion(q)
    assert np.all(c[:, 0] >= 0)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0)
    # same rotation as the input
    np.testing.assert_allclose(quaternion_to_matrix(c), quaternion_to_matrix(q / np.linalg.norm(q, axis=1, keepdims=True)), atol=1e-12)


def test_canonical_quaternion_is_unique_for_q_and_minus_q_including_w_zero():
    q = np.array([[0.0, -0.6, 0.8, 0.0], [0.0, 0.0, 0.0, -1.0], [0.5, 0.5, -0.5, 0.5]])
    np.testing.assert_allclose(canonical_quaternion(q), canonical_quaternion(-q))
    assert canonical_quaternion(q)[0, 1] > 0 and canonical_quaternion(q)[1, 3] > 0


@pytest.mark.parametrize("bad", [[0, 0, 0, 0], [np.nan, 0, 0, 1], [1, 0, 0]])
def test_canonical_quaternion_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        canonical_quaternion(np.array(bad, dtype=float))


def test_matrix_quaternion_round_trip():
    q = matrix_to_quaternion(RANDOM_ROTATIONS)
    assert q.shape == (200, 4) and np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(quaternion_to_matrix(q), RANDOM_ROTATIONS, atol=1e-10)
    # scalar-first order: a rotation of 90 deg about z is (cos 45, 0, 0, sin 45)
    np.testing.assert_allclose(matrix_to_quaternion(rotation_about_up(np.pi / 2)), [np.sqrt(0.5), 0, 0, np.sqrt(0.5)])


def test_geodesic_angle_matches_scipy_magnitude():
    a, b = RANDOM_ROTATIONS[:100], RANDOM_ROTATIONS[100:]
    expected = np.degrees(Rotation.from_matrix(np.swapaxes(a, 1, 2) @ b).magnitude())
    np.testing.assert_allclose(geodesic_angle_deg(a, b), expected, atol=1e-6)


def test_frontal_view_sees_the_objects_front_upright():
    r = viewpoint_rotation(0, 0, 0)
    # object front (+x) points at the camera (-z_cam), object up (+z) is image up (-y_cam),
    # object left (+y) appears on the image right (+x_cam)
    np.testing.assert_allclose(r @ [1, 0, 0], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(r @ [0, 0, 1], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(r @ [0, 1, 0], [1, 0, 0], atol=1e-12)


def test_viewpoint_directions():
    # azimuth 90: the camera sits on the object's left side; elevation 90: straight above
    np.testing.assert_allclose(camera_direction_in_object(viewpoint_rotation(90, 0)), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(camera_direction_in_object(viewpoint_rotation(0, 30)),
                               [np.cos(np.radians(30)), 0, np.sin(np.radians(30))], atol=1e-12)


def test_viewpoint_round_trip():
    for az, el, ip in RNG.uniform([0, -80, -170], [360, 80, 170], size=(100, 3)):
        out = rotation_to_viewpoint(viewpoint_rotation(az, el, ip))
        np.testing.assert_allclose(out, [az, el, ip], atol=1e-6)


@pytest.mark.parametrize("symmetry,order", [("c2", 2), ("c4", 4)])
def test_discrete_symmetry_error_is_zero_for_equivalent_rotations(symmetry, order):
    r = RANDOM_ROTATIONS[:50]
    for k in range(order):
        equivalent = r @ rotation_about_up(2 * np.pi * k / order)
        np.testing.assert_allclose(symmetric_rotation_error_deg(r, equivalent, symmetry), 0.0, atol=1e-5)
    # ... but not for a rotation the symmetry does not contain
    off = r @ rotation_about_up(np.pi / order)
    np.testing.assert_allclose(symmetric_rotation_error_deg(r, off, symmetry), 180.0 / order, atol=1e-5)
    np.testing.assert_allclose(symmetric_rotation_error_deg(r, off, "none"), 180.0 / order, atol=1e-5)


def test_continuous_symmetry_error_ignores_spin_about_up_only():
    r = RANDOM_ROTATIONS[:50]
    spun = r @ rotation_about_up(RNG.uniform(0, 2 * np.pi, size=50))
    np.testing.assert_allclose(symmetric_rotation_error_deg(r, spun, "continuous"), 0.0, atol=1e-5)
    tilted = r @ Rotation.from_euler("x", 20, degrees=True).as_matrix()
    np.testing.assert_allclose(symmetric_rotation_error_deg(r, tilted, "continuous"), 20.0, atol=1e-5)


def test_symmetric_error_never_exceeds_plain_error():
    a, b = RANDOM_ROTATIONS[:100], RANDOM_ROTATIONS[100:]
    plain = geodesic_angle_deg(a, b)
    for symmetry in ("c2", "c4", "continuous"):
        assert np.all(symmetric_rotation_error_deg(a, b, symmetry) <= plain + 1e-9)


@pytest.mark.parametrize("symmetry", ["none", "c2", "c4", "continuous"])
def test_canonicalize_rotation_is_idempotent_and_equivalent(symmetry):
    for r in RANDOM_ROTATIONS[:40]:
        c = canonicalize_rotation(r, symmetry)
        np.testing.assert_allclose(canonicalize_rotation(c, symmetry), c, atol=1e-9)
        assert symmetric_rotation_error_deg(c, r, symmetry) < 1e-4
        # every equivalent rotation has the same representative
        if symmetry != "none":
            angle = {"c2": np.pi, "c4": np.pi / 2, "continuous": 1.234}[symmetry]
            np.testing.assert_allclose(canonicalize_rotation(r @ rotation_about_up(angle), symmetry), c, atol=1e-6)


def test_canonicalize_folds_azimuth():
    az, el, ip = rotation_to_viewpoint(canonicalize_rotation(viewpoint_rotation(200, 15, 5), "c2"))
    np.testing.assert_allclose([az, el, ip], [20, 15, 5], atol=1e-9)
    az, _, _ = rotation_to_viewpoint(canonicalize_rotation(viewpoint_rotation(200, 15, 5), "continuous"))
    assert az == pytest.approx(0.0, abs=1e-9)


def test_camera_projection_round_trip_and_centre():
    cam = CameraIntrinsics(500.0, 480.0, 320.5, 239.5, 640, 480)
    pts = RNG.uniform([-1, -1, 0.5], [1, 1, 5], size=(50, 3))
    uv = cam.project(pts)
    np.testing.assert_allclose(cam.backproject(uv, pts[:, 2]), pts, atol=1e-12)
    np.testing.assert_allclose(cam.project([[0, 0, 2.0]]), [[320.5, 239.5]])
    np.testing.assert_allclose(cam.matrix @ pts[0] / pts[0, 2], [*uv[0], 1.0])


def test_camera_scaling_keeps_normalised_coordinates():
    cam = CameraIntrinsics.from_fov(640, 480, 60.0)
    half = cam.scaled(0.5)
    assert (half.width, half.height) == (320, 240)
    p = np.array([[0.3, -0.2, 3.0]])
    np.testing.assert_allclose(half.project(p), cam.project(p) * 0.5)


def test_intrinsics_for_another_image_size_scale_k_when_only_resized_and_refuse_other_aspect_ratios():
    """camera_info for another resolution: a resize (same aspect ratio, up to integer rounding) scales
    K per axis so every point projects to the same relative image position; another aspect ratio (a
    crop, another camera) is refused with an error naming both sizes."""
    cam = CameraIntrinsics(1000.0, 990.0, 641.0, 359.0, 1280, 720)
    assert cam.for_image_size(1280, 720) is cam
    small = cam.for_image_size(640, 360)
    assert (small.width, small.height) == (640, 360)
    np.testing.assert_allclose(small.matrix, np.diag([0.5, 0.5, 1.0]) @ cam.matrix)
    p = np.array([[0.3, -0.2, 3.0]])
    np.testing.assert_allclose(small.project(p), cam.project(p) * 0.5)
    kitti = CameraIntrinsics(721.5, 721.5, 609.6, 172.9, 1241, 376).for_image_size(620, 188)  # 0.08 % apart
    assert (kitti.width, kitti.height) == (620, 188)
    assert kitti.fx == pytest.approx(721.5 * 620 / 1241) and kitti.fy == pytest.approx(721.5 * 188 / 376)
    with pytest.raises(ValueError, match=r"1280x720 images .* the image is 640x480"):
        cam.for_image_size(640, 480)
    with pytest.raises(ValueError, match="positive"):
        cam.for_image_size(0, 360)


@pytest.mark.parametrize("kwargs", [dict(fx=np.nan), dict(fx=0.0), dict(fy=-1.0), dict(cx=np.inf), dict(width=0)])
def test_camera_rejects_bad_intrinsics(kwargs):
    good = dict(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)
    with pytest.raises(ValueError):
        CameraIntrinsics(**{**good, **kwargs})
