"""Checkpoints of the crop viewpoint stage (:class:`~scene3d_ros.model.viewpoint.ViewpointNet`).

Same habits as :mod:`scene3d_ros.model.checkpoint` (plain data only, ``weights_only`` loads,
atomic writes, clear errors), with their own format tag so that a network-1 checkpoint is never
mistaken for a stage-2 one or the other way round::

    format            "scene3d_ros.viewpoint_checkpoint"
    format_version    1
    model_config      ViewpointModelConfig as a plain dict
    classes           category names (label k = classes[k - 1])
    model             state_dict
    step, optimizer, scheduler, rng, extra   as in network 1's checkpoints
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scene3d_ros.config import ConfigError, dataclass_from_dict, dataclass_to_dict
from scene3d_ros.model.checkpoint import CheckpointError, capture_rng_state
from scene3d_ros.model.viewpoint import ViewpointModelConfig, ViewpointNet
from scene3d_ros.paths import atomic_write_bytes

VIEWPOINT_CHECKPOINT_FORMAT = "scene3d_ros.viewpoint_checkpoint"
VIEWPOINT_CHECKPOINT_VERSION = 1
_REQUIRED = ("format", "format_version", "model_config", "classes", "model", "step")


def viewpoint_config_from_dict(data: dict[str, Any] | None) -> ViewpointModelConfig:
    """:class:`ViewpointModelConfig` of a plain mapping (unknown keys: :class:`ConfigError`)."""
    return dataclass_from_dict(ViewpointModelConfig, data, "viewpoint model")


def save_viewpoint_checkpoint(path: str | Path, model: ViewpointNet, classes: Sequence[str],
                              optimizer: torch.optim.Optimizer | None = None, scheduler: Any | None = None,
                              step: int = 0, rng_state: bool = True, extra: dict[str, Any] | None = None,
                              dtype: torch.dtype | None = None) -> None:
    """Write ``model`` (and, for resuming, the optimizer/scheduler/RNG states) to ``path`` atomically.
    ``dtype`` casts the floating-point weights (e.g. ``torch.float16`` for a shipped model)."""
    if len(classes) != model.num_classes:
        raise ValueError(f"{len(classes)} classes given for a model with {model.num_classes}")
    weights = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
               for k, v in model.state_dict().items()}
    payload = {
        "format": VIEWPOINT_CHECKPOINT_FORMAT, "format_version": VIEWPOINT_CHECKPOINT_VERSION,
        "model_config": dataclass_to_dict(model.config), "classes": [str(c) for c in classes],
        "model": weights, "step": int(step),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": capture_rng_state() if rng_state else None, "extra": extra,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_viewpoint_checkpoint(path: str | Path, expected_classes: Sequence[str] | None = None,
                              expected_config: ViewpointModelConfig | None = None) -> dict[str, Any]:
    """Read and validate a stage-2 checkpoint; :class:`CheckpointError` for a missing, corrupt or
    foreign file, or classes / model config other than the expected ones."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"viewpoint checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        raise CheckpointError(f"cannot read viewpoint checkpoint {path} (corrupt, truncated or not a torch file "
                              f"loadable with weights_only=True): {type(exc).__name__}: {exc}") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != VIEWPOINT_CHECKPOINT_FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{path} is not a viewpoint-stage checkpoint (format {found!r}, expected "
                              f"{VIEWPOINT_CHECKPOINT_FORMAT!r})")
    if checkpoint.get("format_version") != VIEWPOINT_CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has format version {checkpoint.get('format_version')!r}; this code reads "
                              f"{VIEWPOINT_CHECKPOINT_VERSION}")
    missing = [k for k in _REQUIRED if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} is an incomplete viewpoint checkpoint: missing {missing}")
    if expected_classes is not None and list(checkpoint["classes"]) != [str(c) for c in expected_classes]:
        raise CheckpointError(f"{path} was trained for classes {checkpoint['classes']}, expected {list(expected_classes)}")
    try:
        stored = viewpoint_config_from_dict(checkpoint["model_config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path} holds an invalid viewpoint model config: {exc}") from exc
    if expected_config is not None and stored != expected_config:
        raise CheckpointError(f"{path} was trained with model config {dataclass_to_dict(stored)}, expected "
                              f"{dataclass_to_dict(expected_config)}")
    return checkpoint


def build_viewpoint_model(path: str | Path, device: str | torch.device = "cpu",
                          expected_classes: Sequence[str] | None = None) -> ViewpointNet:
    """The stage-2 network stored in ``path``: float32 weights loaded strictly, on ``device``, eval mode."""
    checkpoint = load_viewpoint_checkpoint(path, expected_classes)
    model = _model_of(checkpoint, path)
    try:
        load_weights(model, checkpoint["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"the weights in {path} do not fit the model its config describes: {exc}") from exc
    return model.to(device).eval()


def _model_of(checkpoint: dict[str, Any], path: str | Path) -> ViewpointNet:
    """The (untrained) network a validated checkpoint's config and classes describe."""
    try:
        return ViewpointNet(viewpoint_config_from_dict(checkpoint["model_config"]), len(checkpoint["classes"]),
                            checkpoint["classes"])
    except ValueError as exc:
        raise CheckpointError(f"{path} describes a network that cannot be built: {exc}") from exc


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], new_prefixes: Sequence[str] = ()) -> None:
    """Strict ``load_state_dict`` with floating-point weights cast to float32 (exported files are half).
    ``new_prefixes``: parameters of ``model`` starting with one of these may be missing from
    ``weights`` (a head added to a trained network keeps its fresh initialisation)."""
    result = model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()},
                                   strict=not new_prefixes)
    if new_prefixes:
        missing = [k for k in result.missing_keys if not k.startswith(tuple(new_prefixes))]
        if missing or result.unexpected_keys:
            raise RuntimeError(f"weights do not fit the model: missing {missing}, unexpected {result.unexpected_keys}")


def is_viewpoint_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a readable file with the stage-2 format tag (no other validation)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable: not ours, whatever it is
        return False
    return isinstance(checkpoint, dict) and checkpoint.get("format") == VIEWPOINT_CHECKPOINT_FORMAT


def export_viewpoint_checkpoint(source: str | Path, destination: str | Path, dtype: torch.dtype = torch.float16,
                                extra: dict[str, Any] | None = None) -> Path:
    """Write the inference-only copy of a stage-2 checkpoint: floating-point weights in ``dtype``,
    no optimizer/scheduler/RNG state; ``extra`` merged into the stored ``extra``."""
    checkpoint = load_viewpoint_checkpoint(source)
    model = _model_of(checkpoint, source)
    try:
        load_weights(model, checkpoint["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"the weights in {source} do not fit the model its config describes: {exc}") from exc
    kept = {k: v for k, v in (checkpoint.get("extra") or {}).items()
            if k in ("train_config", "crops_seen", "best_med_err_deg")}
    save_viewpoint_checkpoint(destination, model, checkpoint["classes"], step=checkpoint["step"], rng_state=False,
                              extra={**kept, **(extra or {}), "exported_dtype": str(dtype)}, dtype=dtype)
    return Path(destination)
