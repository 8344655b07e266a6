"""Training of Scene3DNet (network 1 + network 2) on generated datasets; the library behind ``train``.

One run::

    config, model_config = load_train_config("config/train.yaml", ["optim.lr=1e-4"])
    result = train(config, model_config, output="runs/a")            # or resume=True / a path

Here: :class:`TrainConfig` (``model`` overrides of ``config/model.yaml``, ``data``
(:class:`DataConfig`), ``optim`` (:class:`~scene3d_ros.training.optim.OptimConfig`), ``run``
(:class:`~scene3d_ros.training.loop.RunConfig`)) and :func:`load_train_config`; the training
scenes with their triplet views (:class:`~scene3d_ros.data.triplet_views.TripletViewDataset`,
:func:`build_train_dataset`); :func:`validation_losses`; :func:`train`: the loop, with DDP under
``torchrun`` (gloo on CPU, NCCL on CUDA), AMP on CUDA, gradient clipping, a quick validation loss,
atomic checkpoints (``last.pt`` and ``step_XXXXXX.pt``, the newest ``keep_checkpoints`` kept) that
resume exactly, ``metrics.csv`` / ``val_metrics.csv`` and ``curves.png``. The pieces it shares
with the viewpoint stage's trainer are the other modules of :mod:`scene3d_ros.training`.

Output folder::

    config.yaml        the resolved train config and the full model config of the run
    last.pt            newest checkpoint (scene3d_ros.model.checkpoint format; extra: sampler position,
                       per-rank RNG states, grad scaler, train config)
    step_000500.pt     checkpoints every run.checkpoint_every steps (newest keep_checkpoints kept)
    metrics.csv        step, epoch, lr, each loss, total, seconds_per_step, images_per_s (means over
                       the log interval, over all ranks)
    val_metrics.csv    step, each validation loss, total
    curves.png         training curves, redrawn at every checkpoint

SIGINT (Ctrl-C) or SIGTERM (``kill``, a batch scheduler's preemption, ``torchrun`` passing it
on) stop a run after the step in progress: it writes ``last.pt`` at that step (every rank stops at
the same step), shuts its DataLoader workers down and returns with ``TrainResult.stopped_by``
set; ``--resume`` continues it exactly. A second signal acts at once, as without this.

Only rank 0 writes. Units: lr per optimizer step; ``seconds_per_step`` wall seconds (data wait
included); ``images_per_s`` over all ranks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from scene3d_ros import CATEGORIES
from scene3d_ros.config import ConfigError, dataclass_from_dict, dataclass_to_dict, load_config, merge
from scene3d_ros.data.shards import default_output_dir
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.data.triplet_views import TripletViewDataset, collate_scenes
from scene3d_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from scene3d_ros.model.config import ModelConfig, load_model_config, model_config_from_dict
from scene3d_ros.model.network import Scene3DNet, build_model
from scene3d_ros.paths import atomic_write_text, config_dir
from scene3d_ros.training.datasets import DataError, check_dataset_dir, data_loader, resolve_cad_library
from scene3d_ros.training.loop import (
    IntervalMeter,
    RunConfig,
    RunStart,
    data_position_extra,
    first_batch,
    last_losses,
    log_stop,
    progress_bar,
    restore_rank_rng,
    resume_data_position,
    run_session,
    start_run,
    stop_signal,
    write_checkpoint,
)
from scene3d_ros.training.optim import OptimConfig, build_optimizer, build_scheduler, freeze_parameters
from scene3d_ros.training.outputs import (
    CONFIG_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    VAL_METRICS_FILE,
    MetricsLog,
    RunOutput,
)
from scene3d_ros.training.runtime import parameter_digest, seed_everything
from scene3d_ros.training.sampler import ResumableSampler
from scene3d_ros.training.signals import StopRequest
from scene3d_ros.world.cad_library import CadLibrary

LOGGER = logging.getLogger(__name__)

MODEL_TARGET_KEYS = ("boxes", "labels", "masks", "quaternions", "translations", "K", "symmetries",
                     "positive_views", "negative_views")
"""Target entries handed to the model (the dataset's other entries stay on the CPU side)."""


# =========================================================================== config
@dataclass(frozen=True)
class DataConfig:
    """``data`` section.

    ``train``: dataset folders written by ``generate_data`` (one string or a list; ``None`` =
    ``generate_data``'s default folder). ``val``: a dataset folder for the quick validation loss
    (``None`` = no validation). ``batch_size``: images per step **per process**. ``num_workers``:
    DataLoader worker processes per rank (they render the depth views; 0 = in the main process).
    ``include_difficult``: keep objects flagged difficult in the targets.
    ``mirror_probability``: chance that a training scene is shown as its horizontal mirror image
    (poses mirrored too; only scenes of mirror-symmetric models, see :class:`TripletViewDataset`;
    never for the validation loss). ``same_category_negative_probability``: chance that an object's negative CAD model is drawn
    from its own category (a harder negative), else from the whole library; always a different
    model id. ``cad_library``: the library the views are rendered from (``None`` = the one the
    first training dataset was generated with, from its manifest, else the default library).
    Image sizes are the model's business (``model.detector.min_size`` / ``max_size``).
    """

    train: tuple[str, ...] | None = None
    val: str | None = None
    batch_size: int = 4
    num_workers: int = 2
    include_difficult: bool = True
    same_category_negative_probability: float = 0.5
    mirror_probability: float = 0.5
    cad_library: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.train, str):
            object.__setattr__(self, "train", (self.train,))
        elif self.train is not None:
            object.__setattr__(self, "train", tuple(str(p) for p in self.train))
            if not self.train:
                raise ValueError("data.train must name at least one dataset folder (or be null)")
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if not 0.0 <= self.same_category_negative_probability <= 1.0:
            raise ValueError("data.same_category_negative_probability must be in [0, 1], got "
                             f"{self.same_category_negative_probability}")
        if not 0.0 <= self.mirror_probability <= 1.0:
            raise ValueError(f"data.mirror_probability must be in [0, 1], got {self.mirror_probability}")


@dataclass(frozen=True)
class TrainConfig:
    """The whole ``train`` config; ``model`` holds overrides of ``config/model.yaml`` (a mapping
    in the same layout, e.g. ``{"detector": {"min_size": [256]}}``)."""

    model: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


def default_train_config_path() -> Path:
    """``config/train.yaml`` of the package."""
    return config_dir() / "train.yaml"


def resolve_model_config(overrides: dict[str, Any] | None) -> ModelConfig:
    """``config/model.yaml`` (:func:`load_model_config`) with the train config's ``model`` overrides merged in."""
    if overrides is not None and not isinstance(overrides, dict):
        raise ConfigError(f"the 'model' section must be a mapping of overrides, got {type(overrides).__name__}")
    base = dataclass_to_dict(load_model_config())
    return model_config_from_dict(merge(base, overrides or {}))


def train_config_from_dict(data: dict[str, Any]) -> tuple[TrainConfig, ModelConfig]:
    """:class:`TrainConfig` and the resolved :class:`ModelConfig` of a plain mapping; unknown
    keys and bad values raise :class:`ConfigError`."""
    data = dict(data)
    data["model"] = data.get("model") or {}
    config = dataclass_from_dict(TrainConfig, data, "train")
    return config, resolve_model_config(config.model)


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None
                      ) -> tuple[TrainConfig, ModelConfig]:
    """Read ``path`` (default ``config/train.yaml``) with ``section.key=value`` overrides."""
    raw = load_config(default_train_config_path() if path is None else path, overrides)
    return train_config_from_dict(raw)


def train_config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain (YAML/JSON/checkpoint-safe) dict of a :class:`TrainConfig`."""
    return dataclass_to_dict(config)


# =========================================================================== data
def scene_datasets(paths: Sequence[Path], include_difficult: bool) -> Dataset:
    """The generated scenes of ``paths`` as one dataset."""
    sets = [SyntheticSceneDataset(p, include_difficult=include_difficult) for p in paths]
    return sets[0] if len(sets) == 1 else ConcatDataset(sets)


def build_train_dataset(config: TrainConfig, model_config: ModelConfig, library: CadLibrary,
                        dataset_dirs: Sequence[Path]) -> TripletViewDataset:
    """The training scenes of ``dataset_dirs`` with their triplet views."""
    return TripletViewDataset(scene_datasets(dataset_dirs, config.data.include_difficult), library.root,
                              model_config.depth_encoder.view_size_px,
                              config.data.same_category_negative_probability, config.run.seed,
                              config.data.mirror_probability)


# =========================================================================== the loop
@dataclass
class TrainResult:
    """What :func:`train` did. ``seconds_per_step``: mean wall time of the logged steps of this
    process (data wait included); ``last_losses``: the final log row's mean losses."""

    output: Path
    step: int
    checkpoint: Path
    seconds_per_step: float
    last_losses: dict[str, float]
    stopped_by: str | None = None  # "SIGINT" / "SIGTERM" when a signal stopped the run early


def targets_to_device(images: list[Tensor], targets: list[dict[str, Any]], device: torch.device
                      ) -> tuple[list[Tensor], list[dict[str, Any]]]:
    """Images and the model's target entries (:data:`MODEL_TARGET_KEYS`) on ``device``."""
    non_blocking = device.type == "cuda"
    images = [img.to(device, non_blocking=non_blocking) for img in images]
    moved = []
    for target in targets:
        moved.append({key: (target[key].to(device, non_blocking=non_blocking) if isinstance(target[key], Tensor)
                            else target[key]) for key in MODEL_TARGET_KEYS if key in target})
    return images, moved


@contextlib.contextmanager
def _frozen_norm_statistics(model: nn.Module) -> Iterator[None]:
    """Train mode (the model returns losses only then) with batch-norm statistics left untouched."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m in norms:
            m.train()


def validation_losses(model: Scene3DNet, loader: DataLoader, device: torch.device, seed: int,
                      autocast: Callable[[], contextlib.AbstractContextManager]) -> dict[str, float]:
    """Mean losses over ``loader`` (train-mode forward without gradients, batch-norm statistics
    frozen, detector sampling seeded by ``seed``); the global RNG streams are left as they were."""
    devices = [device.index or 0] if device.type == "cuda" else []
    sums: dict[str, float] = {}
    batches = 0
    with torch.random.fork_rng(devices=devices), torch.no_grad(), _frozen_norm_statistics(model):
        torch.manual_seed(seed)
        for images, targets in loader:
            images, targets = targets_to_device(images, targets, device)
            with autocast():
                losses = model(images, targets)
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            batches += 1
    means = {key: value / max(batches, 1) for key, value in sorted(sums.items())}
    means["total"] = sum(means.values())
    return means


def _check_resume_compatible(checkpoint: dict[str, Any], config: TrainConfig, world_size: int) -> None:
    stored = (checkpoint.get("extra") or {}).get("train_config")
    if not isinstance(stored, dict):
        return
    now = train_config_to_dict(config)
    for section in ("data", "optim"):
        old, new = stored.get(section, {}), now[section]
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            LOGGER.warning("resuming with a changed %s section (%s): the run will not match an uninterrupted one%s",
                           section, ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed),
                           "; the optimizer and schedule states come from the checkpoint" if section == "optim"
                           else "")
    extra = checkpoint.get("extra") or {}
    if extra.get("world_size", world_size) != world_size:
        LOGGER.warning("the checkpoint was written by %s processes, this run has %s: the data order and "
                       "random streams will differ from an uninterrupted run", extra.get("world_size"), world_size)


def train(config: TrainConfig, model_config: ModelConfig, output: str | Path | None = None,
          resume: bool | str | Path = False) -> TrainResult:
    """Train (or, with ``resume``, continue) a run; see the module doc for what it writes.

    ``output``: run folder (default ``config.run.output``). ``resume``: ``True`` continues from
    ``<output>/last.pt``, a path from that checkpoint; the model config and classes must match
    it (:class:`CheckpointError` otherwise). Starting afresh in a folder that already holds a
    ``last.pt`` is refused. Under ``torchrun`` (``WORLD_SIZE`` > 1) every process calls this;
    the process group is created here and destroyed at the end.

    Raises :class:`DataError` (missing/incomplete dataset, CAD library), :class:`CheckpointError`
    and :class:`ConfigError` with messages meant for the user.
    """
    if config.optim.warmup_steps > config.optim.max_steps:
        LOGGER.warning("optim.warmup_steps (%d) exceeds optim.max_steps (%d): the learning rate never reaches "
                       "optim.lr", config.optim.warmup_steps, config.optim.max_steps)
    start = start_run(config.run, output, resume)
    train_dirs = [check_dataset_dir(p, "training") for p in (config.data.train or (str(default_output_dir()),))]
    val_dir = check_dataset_dir(config.data.val, "validation") if config.data.val else None
    library = resolve_cad_library(config.data.cad_library, train_dirs + ([val_dir] if val_dir else []))
    with run_session(config.run, start) as stop:
        return _train(config, model_config, start, library, train_dirs, val_dir, stop)


def _train(config: TrainConfig, model_config: ModelConfig, start: RunStart, library: CadLibrary,
           train_dirs: list[Path], val_dir: Path | None, stop: StopRequest) -> TrainResult:
    run, optim_config, data = config.run, config.optim, config.data
    info, device, root, resume_path = start.info, start.device, start.root, start.resume_path
    out = RunOutput(root, info.is_main, run.keep_checkpoints)
    if info.is_main:
        root.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- model, optimizer
    seed_everything(run.seed)  # identical initial weights on every rank
    # ImageNet weights only for a run from scratch (a checkpoint or run.init_weights replaces every layer)
    model = build_model(model_config, CATEGORIES,
                        load_backbone_weights=resume_path is None and not run.init_weights).to(device)
    model.train()
    trained = freeze_parameters(model, optim_config.trainable)
    if optim_config.trainable and info.is_main:
        LOGGER.info("training %d of %d parameter values (optim.trainable: %s)", trained,
                    sum(p.numel() for p in model.parameters()), ", ".join(optim_config.trainable))
    optimizer = build_optimizer(model, optim_config)
    scheduler = build_scheduler(optimizer, optim_config)
    use_amp = run.amp and device.type == "cuda"
    amp_dtype = torch.float16 if run.amp_dtype == "float16" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=amp_dtype) if use_amp else contextlib.nullcontext()

    # ---------------------------------------------------------------- data
    train_set = build_train_dataset(config, model_config, library, train_dirs)
    per_step = data.batch_size * info.world_size
    if len(train_set) < per_step:
        raise DataError(f"the training data has {len(train_set)} scenes, fewer than one step's "
                        f"{data.batch_size} x {info.world_size} processes; generate more scenes")
    sampler = ResumableSampler(train_set, info.world_size, info.rank, shuffle=True, seed=run.seed)
    pin = device.type == "cuda"
    train_loader = _loader(train_set, data.batch_size, data.num_workers, sampler, True, run.seed, pin)
    batches_per_epoch = sampler.num_samples // data.batch_size
    val_loader = None
    if val_dir is not None and run.eval_every > 0 and info.is_main:
        val_scenes = TripletViewDataset(scene_datasets([val_dir], data.include_difficult), library.root,
                                        model_config.depth_encoder.view_size_px,
                                        data.same_category_negative_probability, run.seed + 1)
        subset = Subset(val_scenes, range(min(len(val_scenes), run.eval_batches * data.batch_size)))
        val_loader = _loader(subset, data.batch_size, min(data.num_workers, 1), None, False, run.seed, pin)

    # ---------------------------------------------------------------- resume
    step, epoch, batch_in_epoch = 0, 0, 0
    train_log = MetricsLog(out.path(METRICS_FILE))
    val_log = MetricsLog(out.path(VAL_METRICS_FILE))
    if resume_path is not None:
        checkpoint = load_checkpoint(resume_path, map_location="cpu", expected_classes=CATEGORIES,
                                     expected_config=model_config)
        extra = checkpoint.get("extra") or {}
        if checkpoint.get("optimizer") is None or "epoch" not in extra:
            raise CheckpointError(f"{resume_path} holds model weights but no training state (optimizer, data "
                                  "position); it cannot be resumed")
        _check_resume_compatible(checkpoint, config, info.world_size)
        try:
            model.load_state_dict(checkpoint["model"], strict=True)
            optimizer.load_state_dict(checkpoint["optimizer"])
            if checkpoint.get("scheduler") is not None:
                scheduler.load_state_dict(checkpoint["scheduler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"cannot restore the training state from {resume_path}: {exc}") from exc
        if extra.get("grad_scaler") and scaler.is_enabled():
            scaler.load_state_dict(extra["grad_scaler"])
        step = int(checkpoint["step"])
        epoch, batch_in_epoch = resume_data_position(extra, info, data.batch_size, len(train_set), batches_per_epoch)
        restore_rank_rng(checkpoint, info, run.seed, step)
        train_log = MetricsLog.resume(out.path(METRICS_FILE), step)
        val_log = MetricsLog.resume(out.path(VAL_METRICS_FILE), step)
        LOGGER.info("resumed %s at step %d (epoch %d, batch %d)", resume_path, step, epoch, batch_in_epoch)
        del checkpoint
    else:
        if run.init_weights:
            # the layers must match; loss weights, input sizes and sampling settings may differ
            checkpoint = load_checkpoint(run.init_weights, map_location="cpu", expected_classes=CATEGORIES)
            try:
                model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                       for k, v in checkpoint["model"].items()}, strict=True)
            except RuntimeError as exc:
                raise CheckpointError(f"run.init_weights {run.init_weights}: its layers do not fit this model "
                                      f"config: {str(exc).splitlines()[0]} ...") from exc
            LOGGER.info("initialised the weights from %s (trained %s steps)", run.init_weights, checkpoint["step"])
            del checkpoint
        seed_everything(run.seed + info.rank)  # the ranks' detector sampling differs
        epoch, batch_in_epoch = first_batch(epoch, batch_in_epoch, batches_per_epoch)

    find_unused = run.find_unused_parameters
    if find_unused == "auto":
        find_unused = not data.include_difficult
    train_model: nn.Module = model
    if info.enabled:
        if run.sync_batch_norm and device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=bool(find_unused))

    if info.is_main:
        resolved = {**train_config_to_dict(config), "model": dataclass_to_dict(model_config)}
        out.write_text(CONFIG_FILE, yaml.safe_dump(resolved, sort_keys=False))

    # ---------------------------------------------------------------- helpers
    def save(path: Path, rng_per_rank: list[dict[str, Any]]) -> None:
        save_checkpoint(path, model, model_config, CATEGORIES, optimizer=optimizer, scheduler=scheduler, step=step,
                        rng_state=True, extra={
                            "train_config": train_config_to_dict(config),
                            **data_position_extra(epoch, batch_in_epoch, info, data.batch_size, len(train_set),
                                                  rng_per_rank),
                            "grad_scaler": scaler.state_dict() if scaler.is_enabled() else None,
                        })

    stop_at = min(run.stop_at_step or optim_config.max_steps, optim_config.max_steps)
    meter = IntervalMeter()
    last_row: dict[str, float] = {}
    lr = optimizer.param_groups[0]["lr"]
    stopped_by: str | None = None

    def log_interval() -> None:
        """One metrics.csv row: the means of the steps since the last row, over all ranks."""
        nonlocal last_row
        means, seconds = meter.close(info, device)
        row = {"step": step, "epoch": epoch, "lr": lr, **{k: v for k, v in means.items() if k != "total"},
               "total": means["total"], "seconds_per_step": seconds, "images_per_s": per_step / max(seconds, 1e-9)}
        train_log.append(row)
        out.write_log(train_log)
        last_row = last_losses(row)

    with progress_bar(stop_at, step, "train", info.is_main and run.progress) as bar:
        while step < stop_at and stopped_by is None:
            sampler.set_position(epoch, batch_in_epoch * data.batch_size)
            tick = time.perf_counter()
            for images, targets in train_loader:
                images, targets = targets_to_device(images, targets, device)
                with autocast():
                    losses = train_model(images, targets)
                    total = sum(losses.values())
                values = {key: float(value.detach()) for key, value in losses.items()}
                total_value = float(total.detach())
                if not math.isfinite(total_value):
                    raise FloatingPointError(f"the loss became non-finite at step {step + 1} ({values}); lower "
                                             "optim.lr or set optim.grad_clip, and resume from an earlier checkpoint")
                lr = optimizer.param_groups[0]["lr"]
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(total).backward()
                if optim_config.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), optim_config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                batch_in_epoch += 1
                meter.add({**values, "total": total_value}, time.perf_counter() - tick)

                if step % run.log_every == 0 or step == stop_at:
                    log_interval()
                bar.set_postfix(loss=f"{total_value:.3f}", lr=f"{lr:.2e}", refresh=False)
                bar.update(1)

                epoch, batch_in_epoch = first_batch(epoch, batch_in_epoch, batches_per_epoch)
                if val_loader is not None and step % run.eval_every == 0:
                    val = validation_losses(model, val_loader, device, run.seed, autocast)
                    val_log.append({"step": step, **val})
                    out.write_log(val_log)
                checkpointed = step % run.checkpoint_every == 0 or step == stop_at
                if checkpointed:
                    write_checkpoint(out, model, info, step, save, train_log, val_log)
                stopped_by = stop_signal(stop, info, device)
                if stopped_by is not None:
                    if meter.steps:
                        log_interval()
                    if not checkpointed:
                        write_checkpoint(out, model, info, step, save, train_log, val_log)
                    log_stop(stopped_by, step, root)
                    break
                if step >= stop_at or batch_in_epoch == 0:
                    break
                tick = time.perf_counter()

    if run.debug_dump:
        digest = parameter_digest(model)
        torch.save(model.state_dict(), root / f"debug_rank{info.rank}_state.pt")
        atomic_write_text(root / f"debug_rank{info.rank}.json", json.dumps(
            {"rank": info.rank, "world_size": info.world_size, "step": step, "parameter_sha256": digest,
             "files_written": sorted(out.written)}, indent=1))
    return TrainResult(output=root, step=step, checkpoint=root / LAST_CHECKPOINT,
                       seconds_per_step=meter.seconds_per_step, last_losses=last_row, stopped_by=stopped_by)


def _loader(dataset: Dataset, batch_size: int, num_workers: int, sampler: Any, drop_last: bool, seed: int,
            pin_memory: bool) -> DataLoader:
    """Scenes with triplet views; the workers start with the dataset modules loaded."""
    return data_loader(dataset, batch_size, num_workers, sampler, drop_last, seed, collate_scenes,
                       preload=("scene3d_ros.data.triplet_views", "scene3d_ros.data.synthetic_dataset"),
                       pin_memory=pin_memory)


__all__ = [
    "MODEL_TARGET_KEYS", "DataConfig", "TrainConfig", "TrainResult", "build_train_dataset",
    "default_train_config_path", "load_train_config", "resolve_model_config", "scene_datasets",
    "targets_to_device", "train", "train_config_from_dict", "train_config_to_dict", "validation_losses",
]
