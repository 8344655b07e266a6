"""torchvision ``RoIHeads`` with the three extra heads of network 1 (rotation, translation, descriptor).

Box and mask heads are torchvision's, unchanged (``fastrcnn_loss``, ``maskrcnn_loss``,
``maskrcnn_inference``); keypoints are not supported. The extra heads run on the
box-ROI-pooled features (``box_roi_pool`` is reused) of the positive proposals in training and
of the final detections at inference, through one shared pose trunk. Each head is switched on
by the presence of its modules (``has_rotation()``, ``has_translation()``, ``has_descriptor()``).
In training, a mask head whose parameters are all frozen (``optim.trainable`` fine-tuning other
heads) is not run: its loss would carry no gradient, and its convolutions are half of a CPU
training step.

Extra target keys (per image, training): ``quaternions`` (G, 4) egocentric canonical,
``translations`` (G, 3) metres (optical frame), ``K`` (3, 3) of the network input (the
transform resizes it with the image), optional ``symmetries`` (list of G strings) and, for the
descriptor head, ``positive_descriptors`` / ``negative_descriptors`` (G, D) from network 2.
Extra result keys (inference): ``quaternions``, ``allocentric_quaternions`` (N, 4),
``translations`` (N, 3), ``descriptors`` (N, D). Extra losses: ``loss_rotation``,
``loss_translation``, ``loss_descriptor``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import (
    RoIHeads,
    fastrcnn_loss,
    maskrcnn_inference,
    maskrcnn_loss,
)

from scene3d_ros.model.config import LossConfig
from scene3d_ros.model.pose_heads import (
    DescriptorHead,
    RotationPredictor,
    TranslationPredictor,
    descriptor_rcnn_inference,
    descriptor_rcnn_loss,
    pose_rcnn_inference,
    pose_rcnn_loss,
)


class PoseRoIHeads(RoIHeads):
    """``RoIHeads`` + pose trunk, rotation, translation and descriptor heads (each optional).

    ``pose_head`` maps ``box_roi_pool`` outputs to a feature vector shared by the three heads;
    ``loss_config`` holds their loss weights and variants.
    """

    def __init__(self, box_roi_pool: nn.Module, box_head: nn.Module, box_predictor: nn.Module,
                 fg_iou_thresh: float, bg_iou_thresh: float, batch_size_per_image: int, positive_fraction: float,
                 bbox_reg_weights: tuple[float, float, float, float] | None, score_thresh: float, nms_thresh: float,
                 detections_per_img: int, mask_roi_pool: nn.Module | None = None, mask_head: nn.Module | None = None,
                 mask_predictor: nn.Module | None = None, pose_head: nn.Module | None = None,
                 rotation_predictor: RotationPredictor | None = None,
                 translation_predictor: TranslationPredictor | None = None,
                 descriptor_head: DescriptorHead | None = None, loss_config: LossConfig | None = None) -> None:
        super().__init__(box_roi_pool, box_head, box_predictor, fg_iou_thresh, bg_iou_thresh, batch_size_per_image,
                         positive_fraction, bbox_reg_weights, score_thresh, nms_thresh, detections_per_img,
                         mask_roi_pool=mask_roi_pool, mask_head=mask_head, mask_predictor=mask_predictor)
        self.pose_head = pose_head
        self.rotation_predictor = rotation_predictor
        self.translation_predictor = translation_predictor
        self.descriptor_head = descriptor_head
        self.loss_config = loss_config or LossConfig()

    # ------------------------------------------------------------------ presence
    def has_rotation(self) -> bool:
        return self.pose_head is not None and self.rotation_predictor is not None

    def has_translation(self) -> bool:
        return self.pose_head is not None and self.translation_predictor is not None

    def has_descriptor(self) -> bool:
        return self.pose_head is not None and self.descriptor_head is not None

    def mask_trains(self) -> bool:
        """Whether the mask head has a parameter that takes gradients."""
        return any(p.requires_grad for m in (self.mask_head, self.mask_predictor) for p in m.parameters())

    def has_pose_trunk(self) -> bool:
        return self.has_rotation() or self.has_translation() or self.has_descriptor()

    def check_targets(self, targets: list[dict[str, Tensor]] | None) -> None:
        super().check_targets(targets)
        needed = []
        if self.has_rotation() or self.has_translation():
            needed += ["quaternions", "translations", "K"]
        if self.has_descriptor():
            needed += ["positive_descriptors", "negative_descriptors"]
        for i, t in enumerate(targets or []):
            missing = [key for key in needed if key not in t]
            if missing:
                raise ValueError(f"target {i} lacks {missing}, needed by the pose/descriptor heads "
                                 f"(it has {sorted(t)})")

    # ------------------------------------------------------------------ forward
    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list[tuple[int, int]],
                targets: list[dict[str, Tensor]] | None = None, intrinsics: list[Tensor] | None = None
                ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Box, mask and extra heads. ``intrinsics``: per-image ``K`` (3, 3) of the network input
        (resized), needed at inference by the translation head (training reads ``target["K"]``)."""
        if targets is not None:
            for t in targets:
                if t["boxes"].dtype not in (torch.float, torch.double, torch.half):
                    raise TypeError(f"target boxes must be of float type, got {t['boxes'].dtype}")
                if t["labels"].dtype != torch.int64:
                    raise TypeError(f"target labels must be of int64 type, got {t['labels'].dtype}")

        if self.training:
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        else:
            labels = regression_targets = matched_idxs = None

        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)

        result: list[dict[str, Tensor]] = []
        losses: dict[str, Tensor] = {}
        if self.training:
            loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
            losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
            # the mask and extra heads only look at positive proposals, like torchvision's mask head
            head_boxes, head_labels, head_matched = [], [], []
            for props, labs, idxs in zip(proposals, labels, matched_idxs, strict=True):
                pos = torch.where(labs > 0)[0]
                head_boxes.append(props[pos])
                head_labels.append(labs[pos])
                head_matched.append(idxs[pos])
        else:
            boxes, scores, det_labels = self.postprocess_detections(class_logits, box_regression, proposals, image_shapes)
            result = [{"boxes": b, "labels": lab, "scores": s}
                      for b, lab, s in zip(boxes, det_labels, scores, strict=True)]
            head_boxes, head_labels, head_matched = boxes, det_labels, None
        losses.update(self._forward_heads(features, head_boxes, head_labels, head_matched, image_shapes, targets,
                                          intrinsics, result))
        return result, losses

    def forward_with_given_boxes(self, features: dict[str, Tensor], boxes: list[Tensor], labels: list[Tensor],
                                 image_shapes: list[tuple[int, int]], intrinsics: list[Tensor]
                                 ) -> list[dict[str, Tensor]]:
        """Inference of the mask, rotation, translation and descriptor heads on boxes someone else
        supplies (ground truth, a tracker) instead of the box head's detections, as if they were
        the final detections (the same code path as :meth:`forward`).

        ``boxes``: per image ``(N_i, 4)`` x0 y0 x1 y1 in network-input pixels; ``labels``: per
        image ``(N_i,)`` 1-based class ids (they select the per-class outputs); ``image_shapes``
        and ``intrinsics`` (per-image ``K`` of the network input) as in :meth:`forward`. Returns
        per image ``boxes``, ``labels``, ``scores`` (all 1) and the heads' outputs.
        """
        if self.training:
            raise RuntimeError("forward_with_given_boxes is inference only: call eval() first")
        result = [{"boxes": b, "labels": lab, "scores": torch.ones_like(b[:, 0])}
                  for b, lab in zip(boxes, labels, strict=True)]
        self._forward_heads(features, boxes, labels, None, image_shapes, None, intrinsics, result)
        return result

    def _forward_heads(self, features: dict[str, Tensor], boxes: list[Tensor], labels: list[Tensor],
                       matched_idxs: list[Tensor] | None, image_shapes: list[tuple[int, int]],
                       targets: list[dict[str, Tensor]] | None, intrinsics: list[Tensor] | None,
                       result: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """The mask and extra heads on ``boxes`` (training: positive proposals, their losses;
        inference: the detections, written into ``result``)."""
        losses: dict[str, Tensor] = {}
        if self.has_mask() and (not self.training or self.mask_trains()):
            losses.update(self._forward_mask(features, boxes, labels, matched_idxs, image_shapes, targets, result))
        if self.has_pose_trunk():
            pose_features = self.pose_head(self.box_roi_pool(features, boxes, image_shapes))
            if self.has_rotation() or self.has_translation():
                losses.update(self._forward_pose(pose_features, boxes, labels, matched_idxs, targets, intrinsics,
                                                 result))
            if self.has_descriptor():
                losses.update(self._forward_descriptor(pose_features, boxes, matched_idxs, targets, result))
        return losses

    def _forward_mask(self, features: dict[str, Tensor], boxes: list[Tensor], labels: list[Tensor],
                      matched_idxs: list[Tensor] | None, image_shapes: list[tuple[int, int]],
                      targets: list[dict[str, Tensor]] | None, result: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        mask_logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, boxes, image_shapes)))
        if self.training:
            gt_masks = [t["masks"] for t in targets]
            gt_labels = [t["labels"] for t in targets]
            return {"loss_mask": maskrcnn_loss(mask_logits, boxes, gt_masks, gt_labels, matched_idxs)}
        for mask_prob, r in zip(maskrcnn_inference(mask_logits, labels), result, strict=True):
            r["masks"] = mask_prob
        return {}

    def _forward_pose(self, pose_features: Tensor, boxes: list[Tensor], labels: list[Tensor],
                      matched_idxs: list[Tensor] | None, targets: list[dict[str, Tensor]] | None,
                      intrinsics: list[Tensor] | None, result: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        rotation = self.rotation_predictor(pose_features) if self.has_rotation() else None
        translation = self.translation_predictor(pose_features) if self.has_translation() else None
        if self.training:
            cfg = self.loss_config
            return pose_rcnn_loss(
                rotation, translation, boxes, labels, matched_idxs,
                gt_quaternions=[t["quaternions"] for t in targets], gt_translations=[t["translations"] for t in targets],
                intrinsics=[t["K"] for t in targets], gt_symmetries=[t.get("symmetries") for t in targets],
                rotation_weight=cfg.rotation_weight, translation_weight=cfg.translation_weight,
                translation_space=cfg.translation_space, continuous_samples=cfg.continuous_symmetry_samples)
        if intrinsics is None or len(intrinsics) != len(boxes):
            raise ValueError("the pose heads need one camera matrix K (3, 3) per image at inference")
        poses = pose_rcnn_inference(rotation, translation, boxes, labels, intrinsics)
        for pose, r in zip(poses, result, strict=True):
            r.update(pose)
        return {}

    def _forward_descriptor(self, pose_features: Tensor, boxes: list[Tensor], matched_idxs: list[Tensor] | None,
                            targets: list[dict[str, Tensor]] | None, result: list[dict[str, Tensor]]
                            ) -> dict[str, Tensor]:
        descriptors = self.descriptor_head(pose_features)
        if self.training:
            loss = descriptor_rcnn_loss(descriptors, matched_idxs, [t["positive_descriptors"] for t in targets],
                                        [t["negative_descriptors"] for t in targets], self.loss_config.triplet_margin)
            return {"loss_descriptor": self.loss_config.descriptor_weight * loss}
        for d, r in zip(descriptor_rcnn_inference(descriptors, boxes), result, strict=True):
            r["descriptors"] = d
        return {}
