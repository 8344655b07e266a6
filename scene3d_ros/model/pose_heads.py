"""The three extra ROI heads of network 1: rotation, translation and shape descriptor.

Layout (Mesh R-CNN style: modules, then ``*_loss`` and ``*_inference`` free functions)::

    box_roi_pool(features, boxes) -> (N, 256, 7, 7)
      -> pose trunk (FastRCNNConvFCHead: convs, then FCs; shared by the three heads) -> (N, F)
         -> RotationPredictor     (N, 4 * C) or (N, 4)   allocentric quaternion (raw)
         -> TranslationPredictor  (N, 3 * C) or (N, 3)   (du, dv, log dz), see model.translation
         -> DescriptorHead        Linear(F, H)-ReLU -> SharedDescriptorTail -> (N, D)

``C`` = number of classes including background; per-class outputs are selected by label like
torchvision's box regression. The rotation head predicts the **allocentric** rotation (what an
ROI crop shows) and inference turns it into the egocentric one with the ray through the
predicted projected centre (:mod:`scene3d_ros.model.rotations`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from scene3d_ros.model.losses import rotation_loss, symmetry_codes, translation_loss, triplet_loss
from scene3d_ros.model.rotations import allocentric_to_egocentric, canonicalize_quaternion, egocentric_to_allocentric
from scene3d_ros.model.translation import decode_translation, encode_translation


# --------------------------------------------------------------------------- modules
class _ClassLinear(nn.Module):
    """Linear layer with ``dim`` outputs per class (or ``dim`` in all when class-agnostic)."""

    def __init__(self, in_channels: int, num_classes: int, dim: int, class_agnostic: bool) -> None:
        super().__init__()
        self.dim = dim
        self.class_agnostic = class_agnostic
        self.fc = nn.Linear(in_channels, dim * (1 if class_agnostic else num_classes))
        nn.init.normal_(self.fc.weight, std=0.001)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


def select_class_outputs(x: Tensor, labels: Tensor, dim: int) -> Tensor:
    """Rows ``(N, dim)`` of per-class outputs ``(N, dim * C)`` for each row's class ``labels``
    ``(N,)``; class-agnostic outputs ``(N, dim)`` pass unchanged."""
    if x.shape[1] == dim:
        return x
    return x.reshape(x.shape[0], x.shape[1] // dim, dim)[torch.arange(x.shape[0], device=x.device), labels]


class RotationPredictor(_ClassLinear):
    """Raw allocentric quaternion(s) (w, x, y, z); the bias starts at the identity rotation so the
    first normalisations are well conditioned."""

    def __init__(self, in_channels: int, num_classes: int, class_agnostic: bool = False) -> None:
        super().__init__(in_channels, num_classes, 4, class_agnostic)
        with torch.no_grad():
            self.fc.bias.view(-1, 4)[:, 0] = 1.0


class TranslationPredictor(_ClassLinear):
    """Encoded translation(s) (du, dv, log dz) relative to the ROI box (:mod:`scene3d_ros.model.translation`)."""

    def __init__(self, in_channels: int, num_classes: int, class_agnostic: bool = False) -> None:
        super().__init__(in_channels, num_classes, 3, class_agnostic)


class SharedDescriptorTail(nn.Sequential):
    """Last layers shared by network 1's descriptor head and network 2 (the depth encoder):
    Linear(hidden, hidden)-ReLU-Linear(hidden, dim), optionally L2-normalised. One instance is
    given to both networks, so they embed into one space."""

    def __init__(self, hidden: int = 1024, dim: int = 500, l2_normalize: bool = False) -> None:
        super().__init__(nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))
        self.l2_normalize = l2_normalize

    def forward(self, x: Tensor) -> Tensor:
        x = super().forward(x)
        return F.normalize(x, dim=-1) if self.l2_normalize else x


class DescriptorHead(nn.Module):
    """Pose-trunk features ``(N, in_channels)`` -> Linear(in_channels, hidden)-ReLU -> shared tail -> ``(N, dim)``."""

    def __init__(self, in_channels: int, tail: SharedDescriptorTail) -> None:
        super().__init__()
        hidden = tail[0].in_features
        self.fc = nn.Linear(in_channels, hidden)
        self.tail = tail

    def forward(self, x: Tensor) -> Tensor:
        return self.tail(F.relu(self.fc(x)))


# --------------------------------------------------------------------------- training targets
def pose_targets(gt_quaternions: Tensor, gt_translations: Tensor, boxes: Tensor, intrinsics: Tensor
                 ) -> tuple[Tensor, Tensor]:
    """Targets of one image's ROIs: allocentric canonical quaternions ``(N, 4)`` (from the
    egocentric ground truth and the ray through the ground-truth translation) and encoded
    translations ``(N, 3)`` relative to the ROI boxes ``(N, 4)`` (pixels of the network input,
    whose camera is ``intrinsics`` (3, 3)). Inputs are the matched ground truth per ROI."""
    q_allo = egocentric_to_allocentric(canonicalize_quaternion(gt_quaternions), gt_translations)
    return q_allo, encode_translation(gt_translations, boxes, intrinsics)


# --------------------------------------------------------------------------- losses
def pose_rcnn_loss(rotation_regression: Tensor | None, translation_regression: Tensor | None,
                   proposals: list[Tensor], labels: list[Tensor], matched_idxs: list[Tensor],
                   gt_quaternions: list[Tensor], gt_translations: list[Tensor], intrinsics: list[Tensor],
                   gt_symmetries: list[list[str] | None], rotation_weight: float = 1.0,
                   translation_weight: float = 0.1, translation_space: str = "normalized",
                   continuous_samples: int = 36) -> dict[str, Tensor]:
    """``loss_rotation`` and ``loss_translation`` (the two weighted terms of L_pose, averaged over
    the positive ROIs) for the heads that are present (``None`` = head off).

    Per image: ``proposals`` (positive ROI boxes, network-input pixels), their class ``labels``
    and ``matched_idxs`` into the ground truth; ``gt_quaternions`` (egocentric, canonical),
    ``gt_translations`` (metres, optical frame), the resized camera ``intrinsics`` (3, 3) and the
    per-object ``gt_symmetries`` (``None`` = no symmetry).
    """
    labels_cat = torch.cat(labels)
    q_targets, t_targets, t_metric, boxes, cams, symmetry = [], [], [], [], [], []
    for props, idxs, q_gt, t_gt, k, sym in zip(proposals, matched_idxs, gt_quaternions, gt_translations,
                                               intrinsics, gt_symmetries, strict=True):
        if idxs.numel() == 0:
            continue
        q_allo, t_enc = pose_targets(q_gt[idxs], t_gt[idxs], props, k)
        q_targets.append(q_allo)
        t_targets.append(t_enc)
        t_metric.append(t_gt[idxs])
        boxes.append(props)
        cams.append(k.to(props).expand(props.shape[0], 3, 3))
        symmetry.append(symmetry_codes(sym, q_gt.shape[0], q_gt.device)[idxs])

    losses: dict[str, Tensor] = {}
    if rotation_regression is not None:
        if q_targets:
            q_pred = F.normalize(select_class_outputs(rotation_regression, labels_cat, 4), dim=-1)
            per_object = rotation_loss(q_pred, torch.cat(q_targets).to(q_pred), torch.cat(symmetry), continuous_samples)
            losses["loss_rotation"] = rotation_weight * per_object.mean()
        else:
            losses["loss_rotation"] = rotation_regression.sum() * 0
    if translation_regression is not None:
        if t_targets:
            t_pred = select_class_outputs(translation_regression, labels_cat, 3)
            if translation_space == "metric":
                t_pred = decode_translation(t_pred, torch.cat(boxes), torch.cat(cams))
                target = torch.cat(t_metric).to(t_pred)
            else:
                target = torch.cat(t_targets).to(t_pred)
            losses["loss_translation"] = translation_weight * translation_loss(t_pred, target).mean()
        else:
            losses["loss_translation"] = translation_regression.sum() * 0
    return losses


def descriptor_rcnn_loss(descriptors: Tensor, matched_idxs: list[Tensor], positive_descriptors: list[Tensor],
                         negative_descriptors: list[Tensor], margin: float = 1.0) -> Tensor:
    """Triplet loss of the positive ROIs' descriptors ``(N, D)`` against network 2's descriptors of
    their matched ground-truth objects' positive and negative views (per image ``(G_i, D)``)."""
    positives = [p[idxs] for p, idxs in zip(positive_descriptors, matched_idxs, strict=True)]
    negatives = [n[idxs] for n, idxs in zip(negative_descriptors, matched_idxs, strict=True)]
    if descriptors.shape[0] == 0:
        return descriptors.sum() * 0 + sum(p.sum() * 0 for p in positive_descriptors + negative_descriptors)
    return triplet_loss(descriptors, torch.cat(positives).to(descriptors), torch.cat(negatives).to(descriptors), margin)


# --------------------------------------------------------------------------- inference
def pose_rcnn_inference(rotation_regression: Tensor | None, translation_regression: Tensor | None,
                        boxes: list[Tensor], labels: list[Tensor], intrinsics: list[Tensor]
                        ) -> list[dict[str, Tensor]]:
    """Per image: ``translations`` (N, 3) metres (optical frame), ``allocentric_quaternions`` and
    ``quaternions`` (egocentric, object -> optical frame), both (N, 4) unit with ``w >= 0``.

    ``boxes`` are the detections in network-input pixels and ``intrinsics`` the matching (resized)
    cameras. Without a translation head the ray through the box centre stands in for the ray
    through the projected object centre (and no ``translations`` are returned).
    """
    boxes_per_image = [b.shape[0] for b in boxes]
    labels_cat = torch.cat(labels)
    boxes_cat = torch.cat(boxes)
    cams = torch.cat([k.to(b).expand(b.shape[0], 3, 3) for k, b in zip(intrinsics, boxes, strict=True)])
    out: dict[str, Tensor] = {}
    if translation_regression is not None:
        encoded = select_class_outputs(translation_regression, labels_cat, 3)
        translations = decode_translation(encoded, boxes_cat, cams)
        out["translations"] = translations
    else:
        translations = decode_translation(boxes_cat.new_zeros(boxes_cat.shape[0], 3), boxes_cat, cams)
    if rotation_regression is not None:
        q_allo = canonicalize_quaternion(select_class_outputs(rotation_regression, labels_cat, 4))
        out["allocentric_quaternions"] = q_allo
        out["quaternions"] = allocentric_to_egocentric(q_allo, translations)
    split = {key: value.split(boxes_per_image) for key, value in out.items()}
    return [{key: split[key][i] for key in split} for i in range(len(boxes))]


def descriptor_rcnn_inference(descriptors: Tensor, boxes: list[Tensor]) -> list[Tensor]:
    """Per image ``(N_i, D)`` descriptors of the detections."""
    return list(descriptors.split([b.shape[0] for b in boxes]))

