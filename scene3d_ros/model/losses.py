"""The paper's per-object losses: L_pose and the descriptor triplet loss (tensor-level functions).

    L_pose  = ||q - q_gt||^2 + 0.1 ||t - t_gt||^2          (weights from LossConfig)
    L_dtr   = max(0, ||d - s+||^2 - ||d - s-||^2 + m)       (m = 1)

Rotation term: ``q`` and ``-q`` are the same rotation, so the distance is taken to the nearer of
``q_gt`` and ``-q_gt``: ``min(||q - q_gt||^2, ||q + q_gt||^2) = 2 - 2 |<q, q_gt>|`` for unit
quaternions. For canonical quaternions (``w >= 0``) this equals the paper's ``||q - q_gt||^2``
except near ``w ~ 0`` (rotations of ~180 degrees from the identity), where the canonical form
flips sign and the plain distance would jump to ~4 between two nearly equal rotations; the
training loss is therefore continuous and the head need not learn that jump. An object symmetric about its up axis (
:data:`scene3d_ros.geometry.SYMMETRIES`) looks the same in ``R_gt`` and ``R_gt @ Rz(a)`` for every
``a`` in its symmetry group, so its rotation loss is the minimum over the group of
``||q - canonical(q_gt * q_z(a))||^2``; a continuous symmetry is approximated by
``continuous_samples`` angles (36 = every 10 degrees: the sampled minimum exceeds the exact one
by at most ``2 - 2 cos(2.5 deg)`` ~ 0.002 in quaternion distance).

Translation term: by default on the normalised (du, dv, log dz) encoding of
:mod:`scene3d_ros.model.translation`, whose scale is the same for a 0.3 m bottle 1 m away and a
70 m aeroplane 200 m away; in metres the far, large objects would dominate the sum (an error of
1 % of 200 m is 4 m^2 squared, against 1e-4 m^2 for the bottle).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from scene3d_ros.geometry import SYMMETRIES
from scene3d_ros.model.rotations import canonicalize_quaternion, quaternion_multiply, symmetry_quaternions


def symmetry_codes(symmetries: Sequence[str] | None, n: int, device: torch.device | str | None = None) -> Tensor:
    """int64 ``(n,)`` indices into :data:`SYMMETRIES` (``None`` = all ``"none"``)."""
    if symmetries is None:
        return torch.zeros(n, dtype=torch.int64, device=device)
    if len(symmetries) != n:
        raise ValueError(f"got {len(symmetries)} symmetries for {n} objects")
    unknown = sorted({s for s in symmetries if s not in SYMMETRIES})
    if unknown:
        raise ValueError(f"unknown symmetries {unknown}, expected values in {SYMMETRIES}")
    return torch.tensor([SYMMETRIES.index(s) for s in symmetries], dtype=torch.int64, device=device)


def rotation_loss(q_pred: Tensor, q_gt: Tensor, symmetry: Tensor | None = None,
                  continuous_samples: int = 36) -> Tensor:
    """Per-object ``(N,)`` squared distance ``min(||q_pred -+ q_gt||^2)`` between unit quaternions
    ``(N, 4)`` (sign-invariant, see the module doc), minimised over each object's symmetry group.

    ``symmetry``: int64 ``(N,)`` indices into :data:`SYMMETRIES` (:func:`symmetry_codes`), ``None``
    for no symmetry. ``q_pred`` must already be unit length (the heads normalise); ``q_gt`` is
    normalised after applying each symmetry rotation.
    """
    if symmetry is None:
        return _sign_invariant_distance(q_pred, canonicalize_quaternion(q_gt))
    losses = q_pred.new_zeros(q_pred.shape[0])
    for code, name in enumerate(SYMMETRIES):
        sel = torch.where(symmetry == code)[0]
        if sel.numel() == 0:
            continue
        group = symmetry_quaternions(name, continuous_samples, dtype=q_gt.dtype, device=q_gt.device)  # (G, 4)
        candidates = canonicalize_quaternion(quaternion_multiply(q_gt[sel, None, :], group[None]))  # (n, G, 4)
        distances = _sign_invariant_distance(q_pred[sel, None, :], candidates)  # (n, G)
        losses = losses.index_put((sel,), distances.min(dim=1).values)
    return losses


def _sign_invariant_distance(q: Tensor, q_gt: Tensor) -> Tensor:
    """``min(||q - q_gt||^2, ||q + q_gt||^2)`` over the last dimension (broadcasting)."""
    return torch.minimum(((q - q_gt) ** 2).sum(-1), ((q + q_gt) ** 2).sum(-1))


def translation_loss(t_pred: Tensor, t_gt: Tensor) -> Tensor:
    """Per-object ``(N,)`` squared Euclidean distance (in whatever space both are given)."""
    return ((t_pred - t_gt) ** 2).sum(-1)


def pose_loss(q_pred: Tensor, q_gt: Tensor, t_pred: Tensor, t_gt: Tensor, symmetry: Tensor | None = None,
              rotation_weight: float = 1.0, translation_weight: float = 0.1,
              continuous_samples: int = 36) -> Tensor:
    """L_pose averaged over the N objects: ``mean(w_q ||q - q_gt||^2 + w_t ||t - t_gt||^2)``.

    Zero-size inputs give ``0 * sum`` (a graph-connected zero), like torchvision's empty batches.
    """
    if q_pred.shape[0] == 0:
        return q_pred.sum() * 0 + t_pred.sum() * 0
    per_object = (rotation_weight * rotation_loss(q_pred, q_gt, symmetry, continuous_samples)
                  + translation_weight * translation_loss(t_pred, t_gt))
    return per_object.mean()


def triplet_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0) -> Tensor:
    """Mean hinge triplet loss ``max(0, ||a - p||^2 - ||a - n||^2 + margin)`` over ``(N, D)`` rows.

    ``anchor``: network 1's descriptors; ``positive``: network 2's descriptors of the depth view of
    the object's own CAD model in its ground-truth allocentric pose; ``negative``: of a random
    model with a different shape in the same pose. Empty input gives a graph-connected zero.
    """
    if anchor.shape[0] == 0:
        return anchor.sum() * 0 + positive.sum() * 0 + negative.sum() * 0
    d_pos = ((anchor - positive) ** 2).sum(-1)
    d_neg = ((anchor - negative) ** 2).sum(-1)
    return torch.clamp(d_pos - d_neg + margin, min=0.0).mean()
