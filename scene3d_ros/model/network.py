"""Scene3DNet: torchvision Mask R-CNN + pose/descriptor ROI heads (network 1) + depth encoder (network 2).

Training::

    model = build_model(load_model_config())
    model.train()
    losses = model(images, targets)          # dict of loss_* tensors (torchvision's + 3 extra)

``images``: list of float (3, H, W) in [0, 1]. ``targets``: the synthetic dataset's dicts
(``boxes``, ``labels``, ``masks``, ``quaternions``, ``translations``, ``K``, optional
``symmetries``) plus, for the descriptor head, ``positive_views`` / ``negative_views``
(G, S, S) depth views (:func:`scene3d_ros.world.depth_views.triplet_depth_views`), which network 2
embeds inside the forward pass so the triplet loss trains both networks.

Inference::

    model.eval()
    detections = model(images, intrinsics=[K, ...])   # K: (3, 3) pixels of each input image

Each detection dict holds torchvision's ``boxes`` (original image pixels), ``labels``,
``scores``, ``masks`` plus ``quaternions`` (N, 4; object -> camera optical frame, w >= 0),
``allocentric_quaternions`` (N, 4; relative to the viewing ray, the rotation depth views use),
``translations`` (N, 3; metres, optical frame), ``descriptors`` (N, D) and ``box_masks`` (N, 28, 28;
the mask head's probabilities over each box, before they are pasted into the image: what shape
retrieval compares with depth-view silhouettes). Without
``intrinsics`` a camera with ``config.default_hfov_deg`` horizontal field of view is assumed
(and logged): translations are then only as right as that guess.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, RPNHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign

from scene3d_ros import CATEGORIES
from scene3d_ros.model.backbone import build_backbone, feature_map_names, num_feature_maps
from scene3d_ros.model.config import ModelConfig
from scene3d_ros.model.depth_encoder import DepthEncoder
from scene3d_ros.model.pose_heads import DescriptorHead, RotationPredictor, SharedDescriptorTail, TranslationPredictor
from scene3d_ros.model.roi_heads import PoseRoIHeads
from scene3d_ros.model.translation import default_intrinsics, resize_intrinsics

LOGGER = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BOX_ROI_SIZE = 7
MASK_ROI_SIZE = 14


class IntrinsicsTransform(GeneralizedRCNNTransform):
    """torchvision's detection transform that also resizes camera matrices with the images.

    ``target["K"]`` (training) and the per-image ``intrinsics`` (inference) are scaled by the
    same per-axis factors as the boxes (:func:`scene3d_ros.model.translation.resize_intrinsics`).
    ``postprocess`` maps boxes and masks back to the original images; translations are metric
    and rotations and descriptors are size-independent, so they pass unchanged.
    """

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None
               ) -> tuple[Tensor, dict[str, Tensor] | None]:
        height, width = image.shape[-2:]
        image, target = super().resize(image, target)
        if target is not None and "K" in target:
            target["K"] = resize_intrinsics(target["K"], (height, width), tuple(image.shape[-2:]))
        return image, target

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None,
                intrinsics: list[Tensor] | None = None
                ) -> tuple[ImageList, list[dict[str, Tensor]] | None, list[Tensor] | None]:
        original_sizes = [tuple(img.shape[-2:]) for img in images]
        image_list, targets = super().forward(images, targets)
        if intrinsics is not None:
            intrinsics = [resize_intrinsics(k, orig, new)
                          for k, orig, new in zip(intrinsics, original_sizes, image_list.image_sizes, strict=True)]
        return image_list, targets, intrinsics


def _anchor_generator(config: ModelConfig, levels: int) -> AnchorGenerator:
    sizes = config.detector.anchor_sizes
    if sizes is None:
        if config.backbone.name.startswith("mobilenet"):
            sizes = ((32, 64, 128, 256),) * levels
        else:
            sizes = tuple((32 * 2**i,) for i in range(levels))
    if len(sizes) != levels:
        raise ValueError(f"detector.anchor_sizes has {len(sizes)} levels but the backbone returns {levels} feature maps")
    return AnchorGenerator(sizes, (config.detector.aspect_ratios,) * levels)


class Scene3DNet(MaskRCNN):
    """Network 1 (Mask R-CNN with rotation, translation and descriptor ROI heads) and network 2
    (``depth_encoder``, sharing its last layers with the descriptor head); see the module doc.

    ``classes``: category names; detector label ``k`` is ``classes[k - 1]``, 0 = background.
    """

    def __init__(self, backbone: nn.Module, config: ModelConfig, classes: Sequence[str] = CATEGORIES) -> None:
        det = config.detector
        classes = tuple(str(c) for c in classes)
        if not classes or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be distinct names, got {classes}")
        num_classes = len(classes) + 1
        levels = num_feature_maps(backbone)
        names = feature_map_names(backbone)
        channels = backbone.out_channels
        anchors = _anchor_generator(config, levels)
        super().__init__(
            backbone, num_classes=None,
            min_size=det.min_size, max_size=det.max_size, image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD),
            rpn_anchor_generator=anchors, rpn_head=RPNHead(channels, anchors.num_anchors_per_location()[0]),
            rpn_pre_nms_top_n_train=det.rpn_pre_nms_top_n_train, rpn_pre_nms_top_n_test=det.rpn_pre_nms_top_n_test,
            rpn_post_nms_top_n_train=det.rpn_post_nms_top_n_train,
            rpn_post_nms_top_n_test=det.rpn_post_nms_top_n_test,
            rpn_batch_size_per_image=det.rpn_batch_size_per_image,
            box_roi_pool=MultiScaleRoIAlign(names, BOX_ROI_SIZE, sampling_ratio=2),
            box_head=FastRCNNConvFCHead((channels, BOX_ROI_SIZE, BOX_ROI_SIZE), [], list(det.box_head_fc_layers)),
            box_predictor=FastRCNNPredictor(det.box_head_fc_layers[-1], num_classes),
            box_score_thresh=det.box_score_thresh, box_nms_thresh=det.box_nms_thresh,
            box_detections_per_img=det.box_detections_per_img,
            box_batch_size_per_image=det.box_batch_size_per_image, box_positive_fraction=det.box_positive_fraction,
            mask_roi_pool=MultiScaleRoIAlign(names, MASK_ROI_SIZE, sampling_ratio=2),
            mask_head=MaskRCNNHeads(channels, det.mask_head_layers, 1),
            mask_predictor=MaskRCNNPredictor(det.mask_head_layers[-1], 256, num_classes),
        )
        self.config = config
        self.classes = classes

        pose, desc = config.pose, config.descriptor
        want_trunk = pose.rotation or pose.translation or desc.enabled
        pose_head = (FastRCNNConvFCHead((channels, BOX_ROI_SIZE, BOX_ROI_SIZE), list(pose.trunk_conv_layers),
                                        list(pose.trunk_fc_layers)) if want_trunk else None)
        features = pose.trunk_fc_layers[-1]
        tail = SharedDescriptorTail(desc.hidden, desc.dim, desc.l2_normalize) if desc.enabled else None
        heads = self.roi_heads
        self.roi_heads = PoseRoIHeads(
            heads.box_roi_pool, heads.box_head, heads.box_predictor,
            fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=det.box_batch_size_per_image,
            positive_fraction=det.box_positive_fraction, bbox_reg_weights=None,
            score_thresh=det.box_score_thresh, nms_thresh=det.box_nms_thresh,
            detections_per_img=det.box_detections_per_img,
            mask_roi_pool=heads.mask_roi_pool if det.mask else None,
            mask_head=heads.mask_head if det.mask else None,
            mask_predictor=heads.mask_predictor if det.mask else None,
            pose_head=pose_head,
            rotation_predictor=(RotationPredictor(features, num_classes, pose.class_agnostic_rotation)
                                if pose.rotation else None),
            translation_predictor=(TranslationPredictor(features, num_classes, pose.class_agnostic_translation)
                                   if pose.translation else None),
            descriptor_head=DescriptorHead(features, tail) if desc.enabled else None,
            loss_config=config.loss,
        )
        enc = config.depth_encoder
        self.depth_encoder = (DepthEncoder(tail, enc.growth_rate, enc.block_config, enc.num_init_features, enc.bn_size)
                              if desc.enabled else None)
        self.transform = IntrinsicsTransform(det.min_size, det.max_size, list(IMAGENET_MEAN), list(IMAGENET_STD))
        self._warned_default_intrinsics = False

    @property
    def num_classes(self) -> int:
        """Detector classes including background."""
        return len(self.classes) + 1

    # ------------------------------------------------------------------ forward
    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None,
                intrinsics: Sequence[Tensor] | None = None) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training: the loss dict. Inference: one detection dict per image (see the module doc).

        ``intrinsics``: per-image ``K`` (3, 3) in pixels of the given images. Training reads
        ``target["K"]`` (``intrinsics`` only fills targets without one); inference without it
        assumes ``config.default_hfov_deg``.
        """
        if self.training:
            if targets is None:
                raise ValueError("targets are needed in training mode")
            targets = self._prepare_targets(images, targets, intrinsics)
            intrinsics = None
        else:
            intrinsics = self._inference_intrinsics(images, intrinsics)
        original_image_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]

        image_list, targets, intrinsics = self.transform(images, targets, intrinsics)
        for i, target in enumerate(targets or []):
            degenerate = target["boxes"][:, 2:] <= target["boxes"][:, :2]
            if degenerate.any():
                box = target["boxes"][torch.where(degenerate.any(dim=1))[0][0]].tolist()
                raise ValueError(f"all boxes need a positive width and height; target {i} has {box}")

        features = self.backbone(image_list.tensors)
        proposals, proposal_losses = self.rpn(image_list, features, targets)
        detections, detector_losses = self.roi_heads(features, proposals, image_list.image_sizes, targets, intrinsics)
        if self.training:
            return {**detector_losses, **proposal_losses}
        return self.transform.postprocess(_with_box_masks(detections), image_list.image_sizes, original_image_sizes)

    def predict_with_boxes(self, images: list[Tensor], boxes: Sequence[Tensor], labels: Sequence[Tensor],
                           intrinsics: Sequence[Tensor] | None = None) -> list[dict[str, Tensor]]:
        """Inference on given boxes instead of detections (the paper's "ground-truth boxes" setting).

        ``boxes``: per image ``(N_i, 4)`` x0 y0 x1 y1 in pixels of the given image (positive width
        and height); ``labels``: per image ``(N_i,)`` 1-based class ids (``classes[k - 1]``), which
        select the per-class mask, rotation and translation outputs. ``intrinsics`` as in
        :meth:`forward`. The boxes are resized into the network input like torchvision's transform
        resizes targets, the mask and pose/descriptor heads run on them as if they were the final
        detections (the same code path as :meth:`forward`), and the results are mapped back.

        Returns one dict per image in the layout of :meth:`forward`, row ``j`` for box ``j``:
        ``boxes`` (the given ones, after the resize round trip), ``labels`` (the given ones),
        ``scores`` (all 1), ``masks``, ``quaternions``, ``allocentric_quaternions``,
        ``translations`` (metres), ``descriptors``, ``box_masks`` (each only when its head exists).
        """
        if self.training:
            raise RuntimeError("predict_with_boxes is inference only: call model.eval() first")
        if not len(boxes) == len(labels) == len(images):
            raise ValueError(f"got {len(boxes)} box sets and {len(labels)} label sets for {len(images)} images")
        device = images[0].device if images else None
        given: list[dict[str, Tensor]] = []
        for i, (b, lab) in enumerate(zip(boxes, labels, strict=True)):
            b = torch.as_tensor(b, dtype=torch.float32, device=device)
            lab = torch.as_tensor(lab, dtype=torch.int64, device=device)
            if b.dim() != 2 or b.shape[1] != 4 or lab.shape != (b.shape[0],):
                raise ValueError(f"image {i}: boxes must be (N, 4) and labels (N,), got {tuple(b.shape)} and "
                                 f"{tuple(lab.shape)}")
            if ((lab < 1) | (lab >= self.num_classes)).any():
                raise ValueError(f"image {i}: labels must be class ids in 1..{self.num_classes - 1}, "
                                 f"got {lab.tolist()}")
            if (b[:, 2:] <= b[:, :2]).any():
                raise ValueError(f"image {i}: every box needs a positive width and height, got {b.tolist()}")
            given.append({"boxes": b, "labels": lab})

        intrinsics = self._inference_intrinsics(images, intrinsics)
        original_image_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        image_list, resized, intrinsics = self.transform(images, given, intrinsics)
        features = self.backbone(image_list.tensors)
        image_shapes = image_list.image_sizes
        result = self.roi_heads.forward_with_given_boxes(features, [t["boxes"] for t in resized],
                                                         [t["labels"] for t in resized], image_shapes, intrinsics)
        return self.transform.postprocess(_with_box_masks(result), image_shapes, original_image_sizes)

    # ------------------------------------------------------------------ inference settings
    def set_detection_limits(self, score_threshold: float, max_detections: int) -> None:
        """Keep, per image, at most ``max_detections`` (>= 1) detections scoring above
        ``score_threshold`` (a finite number, exclusive, as torchvision's post-processing; scores
        lie in [0, 1], so 1 or more keeps none): the mask, pose and descriptor heads and the mask
        pasting then run on those only. ``config.detector`` holds the values it was built with."""
        if not math.isfinite(float(score_threshold)):
            raise ValueError(f"score_threshold must be a finite number, got {score_threshold}")
        if int(max_detections) < 1:
            raise ValueError(f"max_detections must be >= 1, got {max_detections}")
        self.roi_heads.score_thresh = float(score_threshold)
        self.roi_heads.detections_per_img = int(max_detections)

    def set_input_size(self, min_size: int) -> None:
        """Resize every image so its shorter side is ``min_size`` pixels (the longer one capped at
        ``config.detector.max_size``) before the network sees it, instead of the last of
        ``config.detector.min_size`` (the sizes it was trained at)."""
        if int(min_size) < 1:
            raise ValueError(f"input size must be >= 1 pixel, got {min_size}")
        self.transform.min_size = (int(min_size),)

    def _prepare_targets(self, images: list[Tensor], targets: list[dict[str, Tensor]],
                         intrinsics: Sequence[Tensor] | None) -> list[dict[str, Tensor]]:
        """Shallow copies of ``targets`` with ``K`` filled from ``intrinsics`` where missing and
        network 2's descriptors of the positive/negative depth views added."""
        if len(targets) != len(images):
            raise ValueError(f"got {len(targets)} targets for {len(images)} images")
        for target in targets:
            boxes = target["boxes"]
            if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4:
                raise ValueError(f"target boxes must be a (N, 4) tensor, got {getattr(boxes, 'shape', type(boxes))}")
        out = [dict(t) for t in targets]
        if intrinsics is not None:
            for t, k in zip(out, intrinsics, strict=True):
                t.setdefault("K", torch.as_tensor(k, dtype=torch.float32, device=t["boxes"].device))
        if self.roi_heads.has_descriptor() and not all("positive_descriptors" in t for t in out):
            missing = [i for i, t in enumerate(out) if "positive_views" not in t or "negative_views" not in t]
            if missing:
                raise ValueError(f"targets {missing} lack positive_views/negative_views, needed by the descriptor "
                                 "head (scene3d_ros.world.depth_views.triplet_depth_views), or set descriptor.enabled: false")
            counts = [t["positive_views"].shape[0] for t in out]
            views = torch.cat([t["positive_views"] for t in out] + [t["negative_views"] for t in out])
            if views.shape[0] == 0:  # no object in the batch
                descriptors = views.new_zeros((0, self.config.descriptor.dim))
            else:
                descriptors = self.depth_encoder(views.to(self.depth_encoder.features.conv0.weight))
            positives, negatives = descriptors.split([sum(counts)] * 2)
            for t, pos, neg in zip(out, positives.split(counts), negatives.split(counts), strict=True):
                t["positive_descriptors"], t["negative_descriptors"] = pos, neg
        return out

    def _inference_intrinsics(self, images: list[Tensor], intrinsics: Sequence[Tensor] | None) -> list[Tensor]:
        device = images[0].device if images else None
        if intrinsics is None:
            if not self._warned_default_intrinsics:
                LOGGER.warning("no camera intrinsics given: assuming a %.1f deg horizontal field of view "
                               "(translations scale with this guess)", self.config.default_hfov_deg)
                self._warned_default_intrinsics = True
            return [default_intrinsics(int(img.shape[-2]), int(img.shape[-1]), self.config.default_hfov_deg,
                                       device=device) for img in images]
        if len(intrinsics) != len(images):
            raise ValueError(f"got {len(intrinsics)} camera matrices for {len(images)} images")
        out = []
        for k in intrinsics:
            k = torch.as_tensor(k, dtype=torch.float32, device=device)
            if k.shape != (3, 3) or not torch.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
                raise ValueError(f"camera matrix K must be a finite (3, 3) with fx, fy > 0, got {k.tolist()}")
            out.append(k)
        return out


def build_model(config: ModelConfig | None = None, classes: Sequence[str] = CATEGORIES,
                load_backbone_weights: bool = True) -> Scene3DNet:
    """Scene3DNet of ``config`` (default: the dataclass defaults, as in ``config/model.yaml``).

    ``load_backbone_weights=False`` skips reading ImageNet weights (when a checkpoint follows).
    """
    config = config or ModelConfig()
    return Scene3DNet(build_backbone(config.backbone, load_weights=load_backbone_weights), config, classes)


def _with_box_masks(detections: list[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
    """Keep each detection's box-relative mask probabilities ``(N, M, M)`` as ``box_masks`` before
    the transform pastes ``masks`` into the image (``postprocess`` leaves unknown keys alone)."""
    for detection in detections:
        if "masks" in detection:
            detection["box_masks"] = detection["masks"][:, 0].clone()
    return detections
