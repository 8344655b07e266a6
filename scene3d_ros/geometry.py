"""Rotations, quaternions, symmetry-aware rotation error and the pinhole camera.

Conventions used throughout scene3d_ros:

* Quaternions are ``(w, x, y, z)`` (scalar first), unit norm, canonicalised to ``w >= 0``
  (q and -q are the same rotation). scipy's ``Rotation`` is scalar-last; convert only here.
* A pose ``(R, t)`` maps object coordinates to camera coordinates: ``p_cam = R @ p_obj + t``.
  Camera coordinates are the **optical frame** (REP 103): x right, y down, z forward, metres.
* The canonical **object frame** (REP 103 body convention): +x = the object's front, +y = its
  left, +z = up; origin at the centre of the object's axis-aligned bounding box; metres.
* Symmetries are rotations about the object's up axis (+z): ``"none"``, ``"c2"`` (180 deg),
  ``"c4"`` (90 deg) or ``"continuous"`` (any angle, e.g. bottles and round tables).
* Viewpoints (azimuth, elevation, in-plane, degrees): azimuth 0 looks at the object's front,
  azimuth grows as the camera moves counter-clockwise around +z seen from above (so azimuth
  90 shows the object's left side); elevation > 0 puts the camera above the object; in-plane
  rotates the image clockwise about the optical axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

SYMMETRIES = ("none", "c2", "c4", "continuous")
_SYMMETRY_ORDER = {"none": 1, "c2": 2, "c4": 4}


# --------------------------------------------------------------------------- quaternions
def canonical_quaternion(q: np.ndarray) -> np.ndarray:
    """Normalise quaternion(s) ``(..., 4)`` in (w, x, y, z) order and flip them to ``w >= 0``.

    Ties at ``w == 0`` are broken by making the first non-zero of (x, y, z) positive, so the
    result is unique for every rotation.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1] != 4:
        raise ValueError(f"quaternion must have 4 components (w, x, y, z), got shape {q.shape}")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if not np.all(np.isfinite(q)) or np.any(norm < 1e-12):
        raise ValueError(f"quaternion must be finite and non-zero, got {q}")
    q = q / norm
    key = q[..., 0].copy()
    # w == 0: the sign of the first non-zero vector component decides
    for i in (1, 2, 3):
        undecided = np.abs(key) < 1e-12
        if not np.any(undecided):
            break
        key = np.where(undecided, q[..., i], key)
    return np.where((key < 0)[..., None], -q, q)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix/matrices ``(..., 3, 3)`` from (w, x, y, z) quaternion(s) ``(..., 4)``."""
    q = np.asarray(q, dtype=np.float64)
    xyzw = np.concatenate([q[..., 1:], q[..., :1]], axis=-1)
    return Rotation.from_quat(xyzw.reshape(-1, 4)).as_matrix().reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Canonical (w >= 0) quaternion(s) ``(..., 4)`` from rotation matrix/matrices ``(..., 3, 3)``."""
    rotation = np.asarray(rotation, dtype=np.float64)
    xyzw = Rotation.from_matrix(rotation.reshape(-1, 3, 3)).as_quat()
    wxyz = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=-1)
    return canonical_quaternion(wxyz).reshape(rotation.shape[:-2] + (4,))


def is_rotation_matrix(rotation: np.ndarray, atol: float = 1e-6) -> bool:
    """True when ``rotation`` is a proper 3x3 rotation (orthonormal, det +1)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    return (
        rotation.shape == (3, 3)
        and bool(np.all(np.isfinite(rotation)))
        and np.allclose(rotation @ rotation.T, np.eye(3), atol=atol)
        and abs(np.linalg.det(rotation) - 1.0) < atol
    )


# --------------------------------------------------------------------------- rotation error
def geodesic_angle_deg(r_a: np.ndarray, r_b: np.ndarray) -> np.ndarray:
    """Geodesic angle between rotation matrices (broadcast over ``(..., 3, 3)``), degrees in [0, 180]."""
    r_a = np.asarray(r_a, dtype=np.float64)
    r_b = np.asarray(r_b, dtype=np.float64)
    trace = np.einsum("...ji,...ji->...", r_a, r_b)  # trace(r_a^T r_b)
    return np.degrees(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))


def rotation_about_up(angle_rad: np.ndarray) -> np.ndarray:
    """Rotation(s) about the object up axis +z by ``angle_rad`` radians, shape ``(..., 3, 3)``."""
    angle_rad = np.asarray(angle_rad, dtype=np.float64)
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    out = np.zeros(angle_rad.shape + (3, 3))
    out[..., 0, 0], out[..., 0, 1] = c, -s
    out[..., 1, 0], out[..., 1, 1] = s, c
    out[..., 2, 2] = 1.0
    return out


def _check_symmetry(symmetry: str) -> None:
    if symmetry not in SYMMETRIES:
        raise ValueError(f"unknown symmetry {symmetry!r}, expected one of {SYMMETRIES}")


def _best_up_angle(r_target: np.ndarray, r_obj: np.ndarray, symmetry: str) -> np.ndarray:
    """Angle(s) about +z, allowed by ``symmetry``, that bring ``r_obj @ Rz`` closest to ``r_target``.

    Maximises trace(r_target^T r_obj Rz(a)) = A cos a + B sin a + C over the symmetry group.
    """
    m = np.einsum("...ji,...jk->...ik", r_target, r_obj)  # r_target^T r_obj
    a_coef = m[..., 0, 0] + m[..., 1, 1]
    b_coef = m[..., 0, 1] - m[..., 1, 0]
    if symmetry == "continuous":
        return np.arctan2(b_coef, a_coef)
    order = _SYMMETRY_ORDER[symmetry]
    angles = 2.0 * np.pi * np.arange(order) / order
    score = a_coef[..., None] * np.cos(angles) + b_coef[..., None] * np.sin(angles)
    return angles[np.argmax(score, axis=-1)]


def symmetric_rotation_error_deg(r_pred: np.ndarray, r_gt: np.ndarray, symmetry: str = "none") -> np.ndarray:
    """Rotation error in degrees that ignores the object's symmetry about its up axis.

    ``min over g in G of geodesic(r_pred, r_gt @ g)``; the one error every metric uses.
    """
    _check_symmetry(symmetry)
    r_pred = np.asarray(r_pred, dtype=np.float64)
    r_gt = np.asarray(r_gt, dtype=np.float64)
    if symmetry == "none":
        return geodesic_angle_deg(r_pred, r_gt)
    best = _best_up_angle(r_pred, r_gt, symmetry)
    return geodesic_angle_deg(r_pred, r_gt @ rotation_about_up(best))


def canonicalize_rotation(rotation: np.ndarray, symmetry: str) -> np.ndarray:
    """Unique representative of a 3x3 ``rotation`` (object -> camera) modulo the object's symmetry.

    A symmetry about the up axis only shifts the viewpoint azimuth, so the representative keeps
    elevation and in-plane rotation and folds the azimuth into [-180/n, 180/n) degrees for an
    n-fold symmetry, or sets it to 0 for a continuous one. Idempotent; a copy for ``"none"``.
    """
    _check_symmetry(symmetry)
    rotation = np.asarray(rotation, dtype=np.float64)
    if symmetry == "none":
        return rotation.copy()
    azimuth, elevation, inplane = rotation_to_viewpoint(rotation)
    if symmetry == "continuous":
        azimuth = 0.0
    else:
        period = 360.0 / _SYMMETRY_ORDER[symmetry]
        azimuth = (azimuth + period / 2.0) % period - period / 2.0
    return viewpoint_rotation(azimuth, elevation, inplane)


# --------------------------------------------------------------------------- viewpoints
# Object frame axes expressed in the camera optical frame for the frontal view: the camera looks
# along -x_obj (at the front), object left (+y) appears on the image right (+x_cam), object up (+z)
# is image up (-y_cam).
_FRONTAL = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])


def viewpoint_rotation(azimuth_deg: float | np.ndarray, elevation_deg: float | np.ndarray,
                       inplane_deg: float | np.ndarray = 0.0) -> np.ndarray:
    """Object -> camera rotation for a camera at the given viewpoint (degrees; see module doc):
    ``(3, 3)``, or ``(..., 3, 3)`` for arrays of angles (broadcast together).

    The camera sits on a sphere around the object and looks at its origin; ``inplane_deg``
    rotates the image clockwise about the optical axis (+z_cam).
    """
    # Spin the object by -azimuth about its up axis, look at its front, then raise the camera
    # by `elevation` (a rotation of the scene about x_cam) and roll it by `inplane`.
    azimuth, elevation, inplane = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                                        for a in (azimuth_deg, elevation_deg, inplane_deg)))
    r_az = rotation_about_up(np.radians(-azimuth))
    c, s = np.cos(np.radians(elevation)), np.sin(np.radians(elevation))
    r_el = np.zeros(elevation.shape + (3, 3))
    r_el[..., 0, 0] = 1.0
    r_el[..., 1, 1], r_el[..., 1, 2], r_el[..., 2, 1], r_el[..., 2, 2] = c, -s, s, c
    c, s = np.cos(np.radians(inplane)), np.sin(np.radians(inplane))
    r_ip = np.zeros(inplane.shape + (3, 3))
    r_ip[..., 0, 0], r_ip[..., 0, 1], r_ip[..., 1, 0], r_ip[..., 1, 1] = c, -s, s, c
    r_ip[..., 2, 2] = 1.0
    return r_ip @ r_el @ _FRONTAL @ r_az


def camera_direction_in_object(rotation: np.ndarray) -> np.ndarray:
    """Unit vector from the object origin towards the camera, in object coordinates."""
    rotation = np.asarray(rotation, dtype=np.float64)
    return -np.swapaxes(rotation, -1, -2)[..., :, 2]


def rotation_to_viewpoint(rotation: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`viewpoint_rotation`: (azimuth in [0, 360), elevation, in-plane) degrees."""
    rotation = np.asarray(rotation, dtype=np.float64)
    view_dir = camera_direction_in_object(rotation)  # (cos el cos az, cos el sin az, sin el)
    azimuth = np.degrees(np.arctan2(view_dir[1], view_dir[0])) % 360.0
    elevation = np.degrees(np.arcsin(np.clip(view_dir[2], -1.0, 1.0)))
    no_roll = viewpoint_rotation(azimuth, elevation, 0.0)
    r_ip = rotation @ no_roll.T  # rotation about z_cam
    inplane = np.degrees(np.arctan2(r_ip[1, 0], r_ip[0, 0]))
    return float(azimuth), float(elevation), float(inplane)


# --------------------------------------------------------------------------- pinhole camera
ASPECT_RATIO_TOLERANCE = 0.01
"""Relative aspect-ratio difference up to which an image counts as a resize of the intrinsics' image
(integer sizes: 1241x376 -> 620x188 differ by 0.08 %)."""


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels for an image of ``width`` x ``height``.

    Pixel (u, v) has its centre at (u + 0.5, v + 0.5) in the continuous image coordinates that
    ``project`` returns (the ROS/OpenCV convention treats integer coordinates as centres; we keep
    the 0.5 shift explicit and consistent with open3d's ``create_rays_pinhole``).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(v) for v in values):
            raise ValueError(f"camera intrinsics must be finite, got fx={self.fx} fy={self.fy} cx={self.cx} cy={self.cy}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be > 0 pixels, got fx={self.fx} fy={self.fy}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    @classmethod
    def from_matrix(cls, k: np.ndarray, width: int, height: int) -> CameraIntrinsics:
        """From a 3x3 camera matrix K (pixels)."""
        k = np.asarray(k, dtype=np.float64).reshape(3, 3)
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), int(width), int(height))

    @classmethod
    def from_fov(cls, width: int, height: int, horizontal_fov_deg: float) -> CameraIntrinsics:
        """Square pixels, principal point at the image centre, given horizontal field of view."""
        f = 0.5 * width / np.tan(np.radians(horizontal_fov_deg) / 2.0)
        return cls(f, f, width / 2.0, height / 2.0, int(width), int(height))

    @property
    def matrix(self) -> np.ndarray:
        """3x3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Project optical-frame points ``(N, 3)`` (metres, z > 0) to pixel coordinates ``(N, 2)``."""
        p = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
        z = p[:, 2]
        return np.stack([self.fx * p[:, 0] / z + self.cx, self.fy * p[:, 1] / z + self.cy], axis=1)

    def backproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Optical-frame points ``(N, 3)`` from pixel coordinates ``(N, 2)`` and z-depths (metres)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        z = np.asarray(depth, dtype=np.float64).reshape(-1)
        x = (uv[:, 0] - self.cx) / self.fx * z
        y = (uv[:, 1] - self.cy) / self.fy * z
        return np.stack([x, y, z], axis=1)

    def scaled(self, scale_x: float, scale_y: float | None = None) -> CameraIntrinsics:
        """Intrinsics of the same camera after resizing the image by the given factors."""
        scale_y = scale_x if scale_y is None else scale_y
        return CameraIntrinsics(
            self.fx * scale_x, self.fy * scale_y, self.cx * scale_x, self.cy * scale_y,
            max(1, round(self.width * scale_x)), max(1, round(self.height * scale_y)),
        )

    def for_image_size(self, width: int, height: int) -> CameraIntrinsics:
        """These intrinsics for a ``width`` x ``height`` image of the same camera, resized (a driver
        publishing camera_info for another resolution): K scaled per axis. ValueError naming both
        sizes when their aspect ratios differ by more than ``ASPECT_RATIO_TOLERANCE`` (a crop, or
        another camera's intrinsics: no scaling of K is right then)."""
        if (int(width), int(height)) == (self.width, self.height):
            return self
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        scale_x, scale_y = width / self.width, height / self.height
        if abs(scale_x / scale_y - 1.0) > ASPECT_RATIO_TOLERANCE:
            raise ValueError(f"the intrinsics are for {self.width}x{self.height} images (aspect ratio "
                             f"{self.width / self.height:.3f}) but the image is {width}x{height} (aspect ratio "
                             f"{width / height:.3f}): not a resize of the same camera, so K cannot be scaled")
        return self.scaled(scale_x, scale_y)
