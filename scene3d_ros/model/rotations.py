"""Torch quaternion math for the pose heads (numpy code uses :mod:`scene3d_ros.geometry`).

Same conventions as :mod:`scene3d_ros.geometry`: quaternions are ``(w, x, y, z)``, unit norm,
canonical with ``w >= 0`` (ties at ``w == 0`` broken by the first non-zero of x, y, z); the
egocentric rotation ``R`` maps object to camera **optical** frame (x right, y down, z forward).

Allocentric vs egocentric. An ROI crop shows the object as seen along the viewing ray through
its centre, not along the optical axis: a car driving across the image keeps its egocentric
rotation but its crop changes appearance. The **allocentric** rotation is the object's rotation
relative to that ray: ``R_allo = R_ray^T @ R_ego`` where ``R_ray`` is the smallest rotation
that turns the optical axis ``(0, 0, 1)`` onto the ray direction ``t / |t|``. An object at
``(0, 0, |t|)`` with rotation ``R_allo`` looks (up to a homography of the image) like the object
at ``t`` with ``R_ego = R_ray @ R_allo``. The ray through the object's projected centre
``(u_c, v_c)`` is ``K^-1 (u_c, v_c, 1)``, the direction of ``t`` itself, so only ``t`` is needed.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scene3d_ros.geometry import SYMMETRIES

_TIE_EPS = 1e-12


def canonicalize_quaternion(q: Tensor) -> Tensor:
    """Normalise ``(..., 4)`` (w, x, y, z) quaternions and flip them to ``w >= 0`` (differentiable)."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(_TIE_EPS)
    key = q[..., 0]
    for i in (1, 2, 3):  # w == 0: the sign of the first non-zero vector component decides
        key = torch.where(key.abs() < _TIE_EPS, q[..., i], key)
    return torch.where((key < 0).unsqueeze(-1), -q, q)


def quaternion_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product ``a * b`` of (w, x, y, z) quaternions (broadcast); the rotation ``R_a @ R_b``."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        dim=-1,
    )


def quaternion_conjugate(q: Tensor) -> Tensor:
    """Conjugate (the inverse rotation for unit quaternions)."""
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` from unit (w, x, y, z) quaternions ``(..., 4)``."""
    w, x, y, z = q.unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


def ray_quaternion(direction: Tensor) -> Tensor:
    """Quaternion ``(..., 4)`` of the smallest rotation turning the optical axis (0, 0, 1) onto
    ``direction`` ``(..., 3)`` (optical frame, need not be unit; must not point backwards).

    For unit vectors a, b the half-way formula gives ``q ~ (1 + a.b, a x b)``; with a = z:
    ``(1 + d_z, -d_y, d_x, 0)``.
    """
    d = direction / direction.norm(dim=-1, keepdim=True).clamp_min(_TIE_EPS)
    q = torch.stack((1.0 + d[..., 2], -d[..., 1], d[..., 0], torch.zeros_like(d[..., 0])), dim=-1)
    return q / q.norm(dim=-1, keepdim=True).clamp_min(_TIE_EPS)


def allocentric_to_egocentric(q_allocentric: Tensor, translation: Tensor) -> Tensor:
    """Egocentric (object -> optical frame) canonical quaternions ``R_ray(t) @ R_allo``.

    ``translation`` ``(..., 3)``: the object's position in the optical frame (metres; only its
    direction matters, i.e. the ray through the projected centre).
    """
    return canonicalize_quaternion(quaternion_multiply(ray_quaternion(translation), q_allocentric))


def egocentric_to_allocentric(q_egocentric: Tensor, translation: Tensor) -> Tensor:
    """Allocentric canonical quaternions ``R_ray(t)^T @ R_ego`` (inverse of :func:`allocentric_to_egocentric`)."""
    return canonicalize_quaternion(quaternion_multiply(quaternion_conjugate(ray_quaternion(translation)), q_egocentric))


def symmetry_quaternions(symmetry: str, continuous_samples: int = 36, dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> Tensor:
    """The rotations ``(G, 4)`` about the object up axis +z under which ``symmetry`` leaves the
    object unchanged (:data:`scene3d_ros.geometry.SYMMETRIES`); identity first. A continuous
    symmetry is approximated by ``continuous_samples`` evenly spaced angles."""
    orders = {"none": 1, "c2": 2, "c4": 4, "continuous": int(continuous_samples)}
    if symmetry not in SYMMETRIES:
        raise ValueError(f"unknown symmetry {symmetry!r}, expected one of {SYMMETRIES}")
    order = orders[symmetry]
    half = torch.arange(order, dtype=torch.float64) * (math.pi / order)  # half of 2*pi*k/order
    q = torch.zeros(order, 4, dtype=torch.float64)
    q[:, 0], q[:, 3] = torch.cos(half), torch.sin(half)
    return q.to(dtype=dtype, device=device)
