"""The fast CPU inference path (issue 18): batch norms folded into the convolutions before them,
and network 1's convolutions in channels-last memory format.

MobileNetV2 runs a batch norm (torchvision's ``FrozenBatchNorm2d`` in network 1's backbone,
eval-mode ``BatchNorm2d`` in the crop viewpoint stage) after each of its 52 convolutions: two
extra passes over every feature map, and the depthwise convolutions are several times faster
channels-last on this CPU. Folding makes each convolution compute ``conv(x) * scale + shift``
itself (``W' = W * scale``, ``b' = (b - mean) * scale + beta``, ``scale = gamma / sqrt(var + eps)``),
so the outputs change only by float rounding (benchmarks/results/cpu_path.md, made by
benchmarks/bench_cpu_path.py: the same detections and rotations, and the speed-up per frame).

Inference only: a folded network has no batch norms left to train. :class:`scene3d_ros.pipeline.Pipeline`
applies it on CPU unless built with ``fast_path=False``.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d


def fold_batch_norms(module: nn.Module) -> int:
    """Fold every batch norm that directly follows a ``Conv2d`` inside an ``nn.Sequential`` (where
    the order of the children is the order they run in: torchvision's ``Conv2dNormActivation``,
    MobileNetV2's blocks) into that convolution, and replace it by ``nn.Identity``. The
    convolution gains a bias. Returns how many were folded.

    Raises ``ValueError`` for a ``BatchNorm2d`` in training mode (its batch statistics, not its
    running ones, would apply) and leaves batch norms without running statistics alone."""
    folded = 0
    for parent in list(module.modules()):
        if not isinstance(parent, nn.Sequential):
            continue
        children = list(parent.named_children())
        for (_, conv), (name, norm) in zip(children, children[1:], strict=False):
            if not isinstance(conv, nn.Conv2d) or not isinstance(norm, FrozenBatchNorm2d | nn.BatchNorm2d):
                continue
            if isinstance(norm, nn.BatchNorm2d):
                if norm.training:
                    raise ValueError(f"cannot fold a BatchNorm2d in training mode ({name!r}): call eval() first")
                if norm.running_mean is None or norm.running_var is None:
                    continue
            _fold(conv, norm)
            setattr(parent, name, nn.Identity())
            folded += 1
    return folded


def _fold(conv: nn.Conv2d, norm: nn.Module) -> None:
    with torch.no_grad():
        mean, var = norm.running_mean, norm.running_var
        gamma = norm.weight if norm.weight is not None else torch.ones_like(mean)
        beta = norm.bias if norm.bias is not None else torch.zeros_like(mean)
        scale = gamma * (var + norm.eps).rsqrt()
        bias = conv.bias if conv.bias is not None else torch.zeros_like(mean)
        conv.weight.mul_(scale.view(-1, 1, 1, 1).to(conv.weight.dtype))
        conv.bias = nn.Parameter(((bias - mean) * scale + beta).to(conv.weight.dtype),
                                 requires_grad=conv.weight.requires_grad)


def _channels_last_input(module: nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])


def network_to_channels_last(model: nn.Module) -> None:
    """Network 1's (:class:`~scene3d_ros.model.network.Scene3DNet`) convolutions (backbone, FPN, RPN
    head, mask head) channels-last, with the batched images turned channels-last on the way into
    the backbone (the crop viewpoint stage's network is channels-last already)."""
    for part in (model.backbone, model.rpn, model.roi_heads):
        part.to(memory_format=torch.channels_last)
    model.backbone.register_forward_pre_hook(_channels_last_input)


def apply_fast_path(model: nn.Module, viewpoint_model: nn.Module | None = None) -> int:
    """The fast CPU path on network 1 (in eval mode) and, when given, the crop viewpoint stage's
    network: batch norms folded (:func:`fold_batch_norms`), network 1 channels-last
    (:func:`network_to_channels_last`). Returns the number of batch norms folded."""
    if model.training or (viewpoint_model is not None and viewpoint_model.training):
        raise ValueError("the fast path is for inference: call eval() on the networks first")
    folded = fold_batch_norms(model)
    if viewpoint_model is not None:
        folded += fold_batch_norms(viewpoint_model)
    network_to_channels_last(model)
    return folded
