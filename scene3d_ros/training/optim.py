"""Optimisation shared by both trainers: the ``optim`` config section, optimizers, the learning-rate
schedule and freezing parameters for fine-tuning."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from scene3d_ros.config import ConfigError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")


@dataclass(frozen=True)
class OptimConfig:
    """``optim`` section.

    ``optimizer``: ``sgd`` (with ``momentum``, Nesterov off) or ``adamw`` (with ``betas``).
    ``weight_decay`` applies to weights, not to biases and normalisation parameters. The learning
    rate of step s (0-based) is ``lr * warmup(s) * schedule(s)``: ``warmup`` rises linearly from
    ``warmup_factor`` to 1 over ``warmup_steps``; ``schedule`` is ``cosine`` (from 1 after the
    warm-up down to ``min_lr_factor`` at ``max_steps``), ``step`` (times ``step_gamma`` at each of
    ``step_milestones``) or ``constant``. ``grad_clip``: maximum global L2 norm of the gradients
    (``None`` = no clipping). ``max_steps``: optimizer steps of the whole run. ``trainable``:
    parameter-name prefixes (``roi_heads.mask_head``, ``roi_heads.descriptor_head``, ...) of the
    only parameters trained, the others frozen with their batch-norm statistics (fine-tuning heads
    on features that stay put); empty = train everything (see :func:`freeze_parameters`).
    """

    optimizer: str = "adamw"
    lr: float = 1e-4
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    warmup_factor: float = 0.001
    schedule: str = "cosine"
    min_lr_factor: float = 0.01
    step_milestones: tuple[int, ...] = ()
    step_gamma: float = 0.1
    max_steps: int = 10000
    grad_clip: float | None = 10.0
    trainable: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "trainable", tuple(str(p) for p in (self.trainable or ())))
        if any(not p for p in self.trainable):
            raise ValueError("optim.trainable holds an empty prefix")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optim.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not self.lr > 0.0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if self.max_steps < 1 or self.warmup_steps < 0:
            raise ValueError("optim.max_steps must be >= 1 and optim.warmup_steps >= 0")
        if self.grad_clip is not None and not self.grad_clip > 0.0:
            raise ValueError(f"optim.grad_clip must be > 0 or null, got {self.grad_clip}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "step_milestones", tuple(sorted(int(m) for m in self.step_milestones)))



def freeze_parameters(model: nn.Module, trainable: Sequence[str]) -> int:
    """Train only the parameters with a name (a shared parameter has one per owner: all count)
    starting with one of the ``trainable`` prefixes; freeze the rest, and put batch-norm layers
    without a trainable parameter in eval mode so their running statistics stay as loaded (call
    after ``model.train()``). Empty ``trainable``: nothing changes. Returns how many parameter
    values are trained; a prefix that names no parameter is a ``ConfigError``."""
    if not trainable:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    names: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(parameter), []).append(name)
    unused = [p for p in trainable if not any(n.startswith(p) for ns in names.values() for n in ns)]
    if unused:
        tops = sorted({".".join(n.split(".")[:2]) for ns in names.values() for n in ns})
        raise ConfigError(f"optim.trainable: {unused} name no parameter; parameters start with {tops}")
    for parameter in model.parameters():
        parameter.requires_grad_(any(n.startswith(tuple(trainable)) for n in names[id(parameter)]))
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                p.requires_grad for p in module.parameters(recurse=False)):
            module.eval()
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def decay_groups(parameters: Iterable[nn.Parameter], weight_decay: float, **options: Any) -> list[dict[str, Any]]:
    """Parameter groups with ``weight_decay`` on weights and none on 1-D parameters (biases, norms);
    ``options`` (e.g. ``lr``) go into both groups; empty groups are left out."""
    decay, no_decay = [], []
    for parameter in parameters:
        (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay, **options},
              {"params": no_decay, "weight_decay": 0.0, **options}]
    return [g for g in groups if g["params"]]


def optimizer_for_groups(groups: list[dict[str, Any]], config: OptimConfig) -> torch.optim.Optimizer:
    """``config.optimizer`` (SGD with momentum or AdamW with betas) over ``groups``."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """SGD or AdamW over the trainable parameters; no weight decay on 1-D ones (biases, norms)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return optimizer_for_groups(decay_groups(trainable, config.weight_decay), config)


def lr_factor(step: int, config: OptimConfig) -> float:
    """Multiplier of ``config.lr`` at optimizer step ``step`` (0-based); see :class:`OptimConfig`."""
    warmup = 1.0
    if step < config.warmup_steps:
        warmup = config.warmup_factor + (1.0 - config.warmup_factor) * step / config.warmup_steps
    if config.schedule == "cosine":
        span = max(config.max_steps - config.warmup_steps, 1)
        progress = min(max(step - config.warmup_steps, 0) / span, 1.0)
        schedule = config.min_lr_factor + (1.0 - config.min_lr_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    elif config.schedule == "step":
        schedule = config.step_gamma ** sum(step >= m for m in config.step_milestones)
    else:
        schedule = 1.0
    return warmup * schedule


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` applying :func:`lr_factor`; call ``step()`` after every optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))


__all__ = ["OPTIMIZERS", "SCHEDULES", "OptimConfig", "build_optimizer", "build_scheduler", "decay_groups",
           "freeze_parameters", "lr_factor", "optimizer_for_groups"]
