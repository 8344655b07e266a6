"""Checkpoints of Scene3DNet: atomic writes, ``weights_only`` loads, clear errors.

A checkpoint is a ``torch.save``'d dict holding only plain data (dicts, lists, strings, numbers,
tensors), so :func:`load_checkpoint` can use ``torch.load(weights_only=True)`` and never runs
pickled code::

    format            "scene3d_ros.checkpoint"
    format_version    1
    model_config      ModelConfig as a plain dict (scene3d_ros.config.dataclass_to_dict)
    classes           list of category names (detector label k = classes[k - 1])
    model             state_dict
    step              int, training step
    optimizer, scheduler   state_dicts or None
    rng               {"torch": ByteTensor, "numpy": {...}, "python": {...}[, "cuda": [...]]} or None
    extra             caller's plain data or None
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from scene3d_ros.config import ConfigError, dataclass_to_dict
from scene3d_ros.model.config import ModelConfig, model_config_from_dict
from scene3d_ros.model.network import Scene3DNet, build_model
from scene3d_ros.paths import atomic_write_bytes

CHECKPOINT_FORMAT = "scene3d_ros.checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model_config", "classes", "model", "step")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, not ours, or does not match what the caller expects."""


# --------------------------------------------------------------------------- RNG state
def capture_rng_state() -> dict[str, Any]:
    """The torch (CPU, and CUDA when available), numpy-global and python ``random`` generator
    states, as tensors and plain values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore the generator states saved by :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- helpers
def _check_plain(value: Any, where: str) -> None:
    """Raise TypeError unless ``value`` is data that ``torch.load(weights_only=True)`` accepts."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where} has a key {key!r} of type {type(key).__name__}; use str or int")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(f"{where} holds a {type(value).__name__}; checkpoints store only dicts, lists, strings, "
                    "numbers and tensors")


def _config_dict(config: ModelConfig | dict[str, Any]) -> dict[str, Any]:
    if isinstance(config, ModelConfig):
        return dataclass_to_dict(config)
    # normalise a plain dict through the dataclass so defaults and tuples compare equal
    return dataclass_to_dict(model_config_from_dict(config))


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


# --------------------------------------------------------------------------- save / load
def save_checkpoint(path: str | Path, model: nn.Module, config: ModelConfig, classes: Sequence[str],
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any | None = None, step: int = 0,
                    rng_state: bool = True, extra: dict[str, Any] | None = None) -> None:
    """Write a checkpoint of ``model`` (built from ``config`` for ``classes``) to ``path`` atomically.

    ``optimizer`` / ``scheduler`` state dicts, the training ``step``, the RNG states
    (``rng_state=True``) and ``extra`` (plain data only) are stored for resuming.
    """
    classes = [str(c) for c in classes]
    model_classes = getattr(model, "classes", None)
    if model_classes is not None and list(model_classes) != classes:
        raise ValueError(f"classes {classes} differ from the model's {list(model_classes)}")
    model_config = getattr(model, "config", None)
    if isinstance(model_config, ModelConfig) and model_config != config:
        raise ValueError("the config given differs from the one the model was built with")
    _check_plain(extra, "extra")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "model_config": _config_dict(config),
        "classes": classes,
        "model": model.state_dict(),
        "step": int(step),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": capture_rng_state() if rng_state else None,
        "extra": extra,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    expected_classes: Sequence[str] | None = None,
                    expected_config: ModelConfig | dict[str, Any] | None = None) -> dict[str, Any]:
    """Read and validate a checkpoint written by :func:`save_checkpoint` (see the module doc).

    Raises :class:`CheckpointError` for a missing file, a corrupt or truncated one, a file that is
    not a scene3d_ros checkpoint (format tag, version, keys), and, when given, a class list or
    model config different from ``expected_classes`` / ``expected_config``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        raise CheckpointError(f"cannot read checkpoint {path} (corrupt or truncated file, or not a torch file "
                              f"loadable with weights_only=True): {type(exc).__name__}: {exc}") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a scene3d_ros checkpoint (no format tag {CHECKPOINT_FORMAT!r})")
    version = checkpoint.get("format_version")
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version!r}; this code reads version "
                              f"{CHECKPOINT_VERSION}")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} is an incomplete scene3d_ros checkpoint: missing {missing}")
    if expected_classes is not None and list(checkpoint["classes"]) != [str(c) for c in expected_classes]:
        raise CheckpointError(f"{path} was trained for classes {checkpoint['classes']}, expected "
                              f"{list(expected_classes)}")
    if expected_config is not None:
        try:
            stored = _flatten(_config_dict(checkpoint["model_config"]))
        except ConfigError as exc:
            raise CheckpointError(f"{path} holds an invalid model config: {exc}") from exc
        wanted = _flatten(_config_dict(expected_config))
        diff = sorted(key for key in set(stored) | set(wanted) if stored.get(key) != wanted.get(key))
        if diff:
            details = ", ".join(f"{key}: checkpoint {stored.get(key)!r} vs expected {wanted.get(key)!r}"
                                for key in diff)
            raise CheckpointError(f"{path} was trained with a different model config: {details}")
    return checkpoint


def build_model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                                expected_classes: Sequence[str] | None = None) -> Scene3DNet:
    """The Scene3DNet stored in ``path``, weights loaded strictly, on ``device``, in eval mode."""
    checkpoint = load_checkpoint(path, "cpu", expected_classes=expected_classes)
    try:
        config = model_config_from_dict(checkpoint["model_config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path} holds an invalid model config: {exc}") from exc
    model = build_model(config, checkpoint["classes"], load_backbone_weights=False)
    try:
        model.load_state_dict(checkpoint["model"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"the weights in {path} do not fit the model its config describes: {exc}") from exc
    return model.to(device).eval()


def export_checkpoint(source: str | Path, destination: str | Path, dtype: torch.dtype = torch.float16,
                      extra: dict[str, Any] | None = None) -> Path:
    """Write an inference-only copy of ``source``: floating-point weights cast to ``dtype``
    (half by default, halving the file), no optimizer/scheduler/RNG state; ``extra`` (plain data,
    e.g. a model card summary) is merged into the stored ``extra``.

    :func:`build_model_from_checkpoint` loads it into a float32 model (``load_state_dict``
    casts), so a shipped model costs half the disk and nothing at run time.
    """
    checkpoint = load_checkpoint(source)
    _check_plain(extra, "extra")
    weights = {name: (value.to(dtype) if value.is_floating_point() else value)
               for name, value in checkpoint["model"].items()}
    payload = {**checkpoint, "model": weights, "optimizer": None, "scheduler": None, "rng": None,
               "extra": {**(checkpoint.get("extra") or {}), **(extra or {}), "exported_dtype": str(dtype)}}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(destination, buffer.getvalue())
    return Path(destination)
