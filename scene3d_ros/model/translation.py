"""Camera-independent encoding of object translations relative to a 2D box.

A translation ``t`` (metres, optical frame) seen by a camera ``K`` in a box ``(x0, y0, x1, y1)``
(pixels; continuous coordinates where pixel ``u`` spans ``[u, u + 1)``, as
:meth:`scene3d_ros.geometry.CameraIntrinsics.project`) is encoded as ``(du, dv, log dz)``::

    (u_c, v_c) = projection of t with K
    du = (u_c - box_cx) / box_w,   dv = (v_c - box_cy) / box_h
    dz = t_z * sqrt(box_w * box_h) / sqrt(fx * fy)

``du, dv`` are where the object's centre lies in its box (0 = box centre) and ``dz`` is the
depth times the box's angular size, about the object's physical size in metres. None of the
three depends on the focal length, the principal point or the image resolution: resizing the
image, or zooming the camera, scales the box and ``K`` by the same factors. So one network
predicts translations for any camera, and :func:`decode_translation` with the camera's ``K``
turns them back into metres.

Images resized by the detector's transform need ``K`` resized with them:
:func:`resize_intrinsics` mirrors torchvision's ``resize_boxes``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scene3d_ros.geometry import CameraIntrinsics

LOG_DZ_CLIP = 10.0
"""Decoded ``log dz`` is clamped to +-this (dz in [4.5e-5, 22026] metres) so exp never overflows."""
MIN_BOX_SIZE = 1e-3
"""Box sides are clamped to at least this many pixels before dividing by them."""


def _expand_intrinsics(intrinsics: Tensor, n: int) -> Tensor:
    if intrinsics.dim() == 2:
        return intrinsics.unsqueeze(0).expand(n, 3, 3)
    if intrinsics.shape != (n, 3, 3):
        raise ValueError(f"intrinsics must be (3, 3) or ({n}, 3, 3), got {tuple(intrinsics.shape)}")
    return intrinsics


def _box_geometry(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    widths = (boxes[:, 2] - boxes[:, 0]).clamp_min(MIN_BOX_SIZE)
    heights = (boxes[:, 3] - boxes[:, 1]).clamp_min(MIN_BOX_SIZE)
    return 0.5 * (boxes[:, 0] + boxes[:, 2]), 0.5 * (boxes[:, 1] + boxes[:, 3]), widths, heights


def encode_translation(translations: Tensor, boxes: Tensor, intrinsics: Tensor) -> Tensor:
    """``(N, 3)`` (du, dv, log dz) of translations ``(N, 3)`` (metres, optical frame, z > 0) in
    boxes ``(N, 4)`` (pixels) of a camera ``intrinsics`` ``(3, 3)`` or ``(N, 3, 3)``."""
    k = _expand_intrinsics(intrinsics.to(translations), translations.shape[0])
    fx, fy, cx, cy = k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2]
    x, y, z = translations.unbind(-1)
    u = fx * x / z + cx
    v = fy * y / z + cy
    box_cx, box_cy, widths, heights = _box_geometry(boxes.to(translations))
    du = (u - box_cx) / widths
    dv = (v - box_cy) / heights
    log_dz = torch.log(z) + 0.5 * (torch.log(widths) + torch.log(heights)) - 0.5 * (torch.log(fx) + torch.log(fy))
    return torch.stack((du, dv, log_dz), dim=-1)


def decode_translation(encoded: Tensor, boxes: Tensor, intrinsics: Tensor) -> Tensor:
    """Translations ``(N, 3)`` in metres (optical frame) from (du, dv, log dz) ``(N, 3)``, the
    boxes ``(N, 4)`` they are relative to and the camera ``(3, 3)`` or ``(N, 3, 3)``."""
    k = _expand_intrinsics(intrinsics.to(encoded), encoded.shape[0])
    fx, fy, cx, cy = k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2]
    box_cx, box_cy, widths, heights = _box_geometry(boxes.to(encoded))
    du, dv, log_dz = encoded.unbind(-1)
    u = box_cx + du * widths
    v = box_cy + dv * heights
    z = torch.exp(log_dz.clamp(-LOG_DZ_CLIP, LOG_DZ_CLIP)) * torch.sqrt(fx * fy) / torch.sqrt(widths * heights)
    return torch.stack(((u - cx) / fx * z, (v - cy) / fy * z, z), dim=-1)


def resize_intrinsics(intrinsics: Tensor, original_size: tuple[int, int], new_size: tuple[int, int]) -> Tensor:
    """``K`` (3, 3) of an image resized from ``original_size`` to ``new_size`` (both (height, width)).

    Uses the same per-axis ratios ``new / original`` as torchvision's ``resize_boxes``, so boxes
    and intrinsics stay consistent: ``fx, cx`` scale with the width ratio, ``fy, cy`` with the
    height ratio (continuous pixel coordinates scale exactly under bilinear ``align_corners=False``).
    """
    ratio_h = float(new_size[0]) / float(original_size[0])
    ratio_w = float(new_size[1]) / float(original_size[1])
    scale = intrinsics.new_tensor([[ratio_w, ratio_w, ratio_w], [ratio_h, ratio_h, ratio_h], [1.0, 1.0, 1.0]])
    return intrinsics * scale


def default_intrinsics(height: int, width: int, horizontal_fov_deg: float,
                       dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """``K`` (3, 3) of a camera with square pixels, centred principal point and the given
    horizontal field of view (degrees) for an image of ``height`` x ``width`` pixels."""
    if not 0.0 < horizontal_fov_deg < 180.0 or not math.isfinite(horizontal_fov_deg):
        raise ValueError(f"horizontal field of view must be in (0, 180) degrees, got {horizontal_fov_deg}")
    k = CameraIntrinsics.from_fov(int(width), int(height), float(horizontal_fov_deg)).matrix
    return torch.as_tensor(k, dtype=dtype, device=device)
