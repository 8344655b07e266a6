"""Training of the crop viewpoint stage (``train_viewpoint``; :mod:`scene3d_ros.model.viewpoint`).

The same habits as network 1's ``train`` (:mod:`scene3d_ros.training.detector`; the run loop pieces
of :mod:`scene3d_ros.training` are shared): YAML config with ``--set`` overrides, tqdm, ``metrics.csv`` + ``val_metrics.csv`` +
``curves.png``, atomic ``last.pt`` (and ``best.pt``, the checkpoint with the lowest validation
MedErr), exact ``--resume`` (weights, optimizer, schedule, RNG streams, data position), a clean
stop after the step in progress on SIGINT/SIGTERM, and ``torchrun`` data parallelism (gloo on
CPU, NCCL on GPU).

Data: crops of generated scenes (:class:`~scene3d_ros.data.crops.ObjectCropDataset`), boxes
jittered and mirrored from a seed. Validation: every object of the first ``data.val_scenes``
scenes of ``data.val``, ground-truth boxes, no augmentation; the rotation of the top-1
hypothesis and the best of ``data.top_k`` against the ground truth, modulo each model's
symmetry (:func:`viewpoint_report`). By default the hypotheses are made as at inference (mirror
averaging, hypotheses ``data.val_separation_deg`` apart), so ``best.pt`` is chosen on what ships.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset

from scene3d_ros import CATEGORIES
from scene3d_ros.config import ConfigError, dataclass_from_dict, dataclass_to_dict, load_config
from scene3d_ros.data.crops import CropAugmentation, ObjectCropDataset, collate_crops, mirror_symmetric_model_ids
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.evaluation import (
    ACC_ROTATION_THRESHOLD_DEG,
    FLIP_THRESHOLD_DEG,
    mean_defined,
    median_or_none,
    share_below,
)
from scene3d_ros.geometry import symmetric_rotation_error_deg
from scene3d_ros.model.checkpoint import CheckpointError
from scene3d_ros.model.viewpoint import (
    HYPOTHESIS_SEPARATION_DEG,
    MOBILENET_V2_CHANNELS,
    ViewpointModelConfig,
    ViewpointNet,
    library_shapes,
    mask_ious,
    mask_loss,
    mirror_averaged_outputs,
    orbit_masks,
    shape_loss,
    top_k_hypotheses,
    viewpoint_loss,
)
from scene3d_ros.model.viewpoint_checkpoint import (
    load_viewpoint_checkpoint,
    load_weights,
    save_viewpoint_checkpoint,
    viewpoint_config_from_dict,
)
from scene3d_ros.paths import config_dir
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
from scene3d_ros.training.optim import OptimConfig, build_scheduler, decay_groups, optimizer_for_groups
from scene3d_ros.training.outputs import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    VAL_METRICS_FILE,
    MetricsLog,
    RunOutput,
)
from scene3d_ros.training.runtime import seed_everything
from scene3d_ros.training.sampler import ResumableSampler
from scene3d_ros.training.signals import StopRequest
from scene3d_ros.world.cad_library import CadLibrary

LOGGER = logging.getLogger(__name__)

# =========================================================================== config
@dataclass(frozen=True)
class ViewpointDataConfig:
    """``data`` section: ``train`` dataset folders (``generate_data``), ``val`` one folder of which
    the first ``val_scenes`` scenes give the validation objects; ``batch_size`` crops per step and
    process; ``num_workers`` DataLoader workers; ``include_difficult`` also trains on objects
    flagged difficult; ``augmentation``: box jitter and mirror (:class:`CropAugmentation`);
    ``top_k`` hypotheses scored in validation (best-of-k), ``val_mirror_average`` and
    ``val_separation_deg`` how they are made (as ``ViewpointStage`` makes them at inference; false
    / 0 for the one-pass, unseparated numbers of runs before 2026-12-07 14:00); ``cad_library`` as
    in ``train``; ``category_weights``: category -> relative sampling weight of its crops (those not
    named: 1; empty: every crop once per epoch, otherwise drawn with replacement, see
    :class:`~scene3d_ros.training.sampler.ResumableSampler`), to train more on the hard ones."""

    train: tuple[str, ...] | None = None
    val: str | None = None
    val_scenes: int = 300
    batch_size: int = 32
    num_workers: int = 2
    include_difficult: bool = False
    augmentation: CropAugmentation = field(default_factory=CropAugmentation)
    top_k: int = 5
    val_mirror_average: bool = True
    val_separation_deg: float = HYPOTHESIS_SEPARATION_DEG
    cad_library: str | None = None
    category_weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.category_weights or {}) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"data.category_weights: unknown categories {unknown}; known: {list(CATEGORIES)}")
        for name, weight in (self.category_weights or {}).items():
            if not (isinstance(weight, (int, float)) and 0.0 <= float(weight) < float("inf")):
                raise ValueError(f"data.category_weights.{name} must be a finite number >= 0, got {weight!r}")
        if isinstance(self.train, str):
            object.__setattr__(self, "train", (self.train,))
        elif self.train is not None:
            object.__setattr__(self, "train", tuple(str(p) for p in self.train))
        if self.batch_size < 2:
            raise ValueError(f"data.batch_size must be >= 2 (batch norm), got {self.batch_size}")
        if self.num_workers < 0 or self.val_scenes < 1 or self.top_k < 1:
            raise ValueError("data.num_workers must be >= 0, data.val_scenes and data.top_k >= 1")
        if not 0.0 <= self.val_separation_deg <= 180.0:
            raise ValueError(f"data.val_separation_deg must be in [0, 180], got {self.val_separation_deg}")


@dataclass(frozen=True)
class ViewpointOptimConfig(OptimConfig):
    """``optim`` section: network 1's :class:`~scene3d_ros.training.optim.OptimConfig` plus
    ``backbone_lr_factor`` (the ImageNet backbone learns at ``lr`` times this) and
    ``offset_weight`` (weight of the in-bin offset loss), ``direction_weight`` (weight of the
    front/back loss, :func:`~scene3d_ros.model.viewpoint.direction_loss`; 0: off) and
    ``shape_weight`` (weight of the shape head's cross-entropy over the category's shape classes,
    :func:`~scene3d_ros.model.viewpoint.shape_loss`; above 0 the network gets a shape head with the
    CAD library's shape classes; 0: no shape head) and ``mask_weight`` (weight of the mask head's
    binary cross-entropy, :func:`~scene3d_ros.model.viewpoint.mask_loss`; needs ``model.mask_size``
    > 0; 0: the mask head, if any, is not trained) and ``mask_pooling_share``: when ``run.init_weights``
    is a stage without the mask pooling that ``model.mask_pooling`` adds, the share of the trunk's
    weights on the whole-crop pool moved onto the new mask-pooled input (0: the new map starts at
    zero, the run at the old network exactly; 0.5: at first the trunk sees the mean of the two pools,
    so the new input is used from the first step rather than grown from zero)."""

    backbone_lr_factor: float = 0.2
    offset_weight: float = 1.0
    direction_weight: float = 0.0
    shape_weight: float = 0.0
    mask_weight: float = 0.0
    mask_pooling_share: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.mask_pooling_share <= 1.0:
            raise ValueError(f"optim.mask_pooling_share must be in [0, 1], got {self.mask_pooling_share}")
        if not 0.0 <= self.backbone_lr_factor <= 10.0:
            raise ValueError(f"optim.backbone_lr_factor must be in [0, 10], got {self.backbone_lr_factor}")
        if self.offset_weight < 0.0:
            raise ValueError(f"optim.offset_weight must be >= 0, got {self.offset_weight}")
        if self.direction_weight < 0.0:
            raise ValueError(f"optim.direction_weight must be >= 0, got {self.direction_weight}")
        if self.shape_weight < 0.0:
            raise ValueError(f"optim.shape_weight must be >= 0, got {self.shape_weight}")
        if self.mask_weight < 0.0:
            raise ValueError(f"optim.mask_weight must be >= 0, got {self.mask_weight}")


@dataclass(frozen=True)
class ViewpointTrainConfig:
    """The whole ``train_viewpoint`` config (``config/train_viewpoint.yaml``)."""

    model: ViewpointModelConfig = field(default_factory=ViewpointModelConfig)
    data: ViewpointDataConfig = field(default_factory=ViewpointDataConfig)
    optim: ViewpointOptimConfig = field(default_factory=ViewpointOptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


def default_viewpoint_config_path() -> Path:
    return config_dir() / "train_viewpoint.yaml"


def load_viewpoint_train_config(path: str | Path | None = None, overrides: list[str] | None = None
                                ) -> ViewpointTrainConfig:
    """Read ``path`` (default ``config/train_viewpoint.yaml``) with ``section.key=value`` overrides."""
    raw = load_config(default_viewpoint_config_path() if path is None else path, overrides)
    return dataclass_from_dict(ViewpointTrainConfig, raw, "train_viewpoint")


# =========================================================================== evaluation
@dataclass
class ViewpointRecord:
    """One validation object: category, error of the top-1 hypothesis and best error of the top k
    (degrees, modulo the symmetry), whether it is occluded/truncated, whether the shape head's
    most probable shape class is the object's (None without a shape head or a known shape class),
    and the IoU of the mask head's mask (probability >= 0.5) with the visible mask over the crop
    square (None without a mask head)."""

    category: str
    error_deg: float
    best_of_k_deg: float
    occluded: bool
    truncated: bool
    shape_correct: bool | None = None
    mask_iou: float | None = None


def predict_records(model: ViewpointNet, loader: DataLoader, device: torch.device, k: int,
                    shape_targets: dict[str, int] | None = None, mirror_average: bool = False,
                    separation_deg: float = 0.0) -> list[ViewpointRecord]:
    """Run the model over ``loader``'s crops and score the hypotheses against the ground truth;
    with a shape head and ``shape_targets`` (model id -> shape class index), its top-1 too.
    ``mirror_average`` and ``separation_deg`` as in :class:`~scene3d_ros.model.viewpoint.ViewpointStage`."""
    bins = model.config.bins
    records = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in loader:
            inputs = (batch["crop"].to(device), batch["label"].to(device), batch["ray"].to(device))
            logits, offsets, shapes, masks = mirror_averaged_outputs(model, *inputs) if mirror_average else model(*inputs)
            ious = None if masks is None else mask_ious(masks.float().sigmoid().cpu() >= 0.5, batch["mask"] >= 0.5)
            for i in range(len(logits)):
                symmetry = batch["symmetry"][i]
                hypotheses = top_k_hypotheses(logits[i], offsets[i], symmetry, bins, k, separation_deg)
                truth = batch["rotation"][i].double().numpy()
                errors = symmetric_rotation_error_deg(hypotheses.rotations, truth[None], symmetry)
                target = None if shape_targets is None else shape_targets.get(batch["model_id"][i])
                shape_correct = None if shapes is None or target is None else int(shapes[i].argmax()) == target
                records.append(ViewpointRecord(batch["category"][i], float(errors[0]), float(errors.min()),
                                               bool(batch["occluded"][i]), bool(batch["truncated"][i]),
                                               shape_correct, None if ious is None else float(ious[i])))
    model.train(was_training)
    return records


def viewpoint_report(records: Sequence[ViewpointRecord]) -> dict[str, Any]:
    """Per category and mean over categories (the Pascal3D+ habit): ``med_err_deg``, ``acc_pi6``,
    ``flips`` (share above :data:`FLIP_THRESHOLD_DEG`), ``best_of_k_acc_pi6``, ``best_of_k_med_deg``,
    ``shape_top1`` (share of objects whose most probable shape class is theirs; None without a
    shape head), ``mask_iou`` (median IoU of the mask head's masks; None without one), ``objects``; for all objects and the ``clean`` subset (neither occluded nor truncated)."""
    def summary(rows: Sequence[ViewpointRecord]) -> dict[str, Any]:
        per_category = {}
        for category in CATEGORIES:
            errors = [r.error_deg for r in rows if r.category == category]
            best = [r.best_of_k_deg for r in rows if r.category == category]
            shapes = [r.shape_correct for r in rows if r.category == category and r.shape_correct is not None]
            ious = [r.mask_iou for r in rows if r.category == category and r.mask_iou is not None]
            per_category[category] = {
                "objects": len(errors), "med_err_deg": median_or_none(errors),
                "acc_pi6": share_below(errors, ACC_ROTATION_THRESHOLD_DEG),
                "flips": None if not errors else float(np.mean(np.asarray(errors) > FLIP_THRESHOLD_DEG)),
                "best_of_k_med_deg": median_or_none(best),
                "best_of_k_acc_pi6": share_below(best, ACC_ROTATION_THRESHOLD_DEG),
                "shape_top1": float(np.mean(shapes)) if shapes else None,
                "mask_iou": median_or_none(ious),
            }
        keys = ("med_err_deg", "acc_pi6", "flips", "best_of_k_med_deg", "best_of_k_acc_pi6", "shape_top1", "mask_iou")
        mean = {key: mean_defined([c[key] for c in per_category.values()]) for key in keys}
        mean["objects"] = len(rows)
        mean["flips_pooled"] = None if not rows else float(np.mean([r.error_deg > FLIP_THRESHOLD_DEG for r in rows]))
        return {"mean": mean, "per_category": per_category}
    clean = [r for r in records if not r.occluded and not r.truncated]
    return {"all": summary(records), "clean": summary(clean)}


# =========================================================================== training
def _loader(dataset: Dataset, batch_size: int, num_workers: int, sampler: Any, drop_last: bool, seed: int
            ) -> DataLoader:
    """Crops; the workers start with :mod:`scene3d_ros.data.crops` (and the scene dataset) loaded."""
    return data_loader(dataset, batch_size, num_workers, sampler, drop_last, seed, collate_crops,
                       preload=("scene3d_ros.data.crops",))


def build_viewpoint_optimizer(model: ViewpointNet, config: ViewpointOptimConfig) -> torch.optim.Optimizer:
    """AdamW/SGD with two learning rates: the backbone at ``lr * backbone_lr_factor``, the trunk and
    heads at ``lr``; no weight decay on 1-D parameters."""
    backbone = [p for n, p in model.named_parameters() if n.startswith("features.")]
    head = [p for n, p in model.named_parameters() if not n.startswith("features.")]
    groups = (decay_groups(backbone, config.weight_decay, lr=config.lr * config.backbone_lr_factor)
              + decay_groups(head, config.weight_decay, lr=config.lr))
    return optimizer_for_groups(groups, config)


@dataclass
class ViewpointTrainResult:
    output: Path
    step: int
    checkpoint: Path
    seconds_per_step: float
    last_losses: dict[str, float]
    last_validation: dict[str, Any] | None = None
    stopped_by: str | None = None


def _scene_sets(paths: Sequence[Path]) -> list[SyntheticSceneDataset]:
    return [SyntheticSceneDataset(p) for p in paths]


def train_viewpoint(config: ViewpointTrainConfig, output: str | Path | None = None,
                    resume: bool | str | Path = False) -> ViewpointTrainResult:
    """Train (or with ``resume`` continue) the crop viewpoint stage; see the module doc."""
    start = start_run(config.run, output, resume)
    if not config.data.train:
        raise ConfigError("data.train: name the generated dataset folder(s) to train on")
    train_dirs = [check_dataset_dir(p, "training") for p in config.data.train]
    val_dir = check_dataset_dir(config.data.val, "validation") if config.data.val else None
    library = resolve_cad_library(config.data.cad_library, train_dirs + ([val_dir] if val_dir else []))
    with run_session(config.run, start) as stop:
        return _train(config, start, library, train_dirs, val_dir, stop)


def _train(config: ViewpointTrainConfig, start: RunStart, library: CadLibrary, train_dirs: list[Path],
           val_dir: Path | None, stop: StopRequest) -> ViewpointTrainResult:
    run, optim, data = config.run, config.optim, config.data
    info, device, root, resume_path = start.info, start.device, start.root, start.resume_path
    out = RunOutput(root, info.is_main, run.keep_checkpoints)
    if info.is_main:
        root.mkdir(parents=True, exist_ok=True)

    if optim.mask_weight > 0.0 and not config.model.mask_size:
        raise ConfigError("optim.mask_weight > 0 trains a mask head: set model.mask_size (e.g. 32)")
    if optim.shape_weight > 0.0 and not config.model.shapes:
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, shapes=library_shapes(library)))
    shape_targets = None
    if config.model.shapes:
        index = {name: i for i, name in enumerate(config.model.shapes)}
        shape_targets = {m.model_id: index[m.shape_class] for m in library.models if m.shape_class in index}
    seed_everything(run.seed)
    model = ViewpointNet(config.model, len(CATEGORIES), CATEGORIES)
    if resume_path is None:
        if run.init_weights:
            _load_init_weights(model, run.init_weights, config.model, config.optim.mask_pooling_share)
        else:
            model.load_imagenet()
    model.to(device).train()
    optimizer = build_viewpoint_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim)

    mirror_ids = mirror_symmetric_model_ids(library) if data.augmentation.mirror_probability > 0 else set()
    train_set = ObjectCropDataset(_scene_sets(train_dirs), config.model, data.augmentation, run.seed,
                                  data.include_difficult, mirror_ids)
    per_step = data.batch_size * info.world_size
    if len(train_set) < per_step:
        raise DataError(f"the training data has {len(train_set)} objects, fewer than one step's {per_step}")
    weights = None
    if data.category_weights:
        weights = [float(data.category_weights.get(c, 1.0)) for c in train_set.categories]
        if not any(weights):
            raise ConfigError("data.category_weights: every training crop has weight 0")
    sampler = ResumableSampler(train_set, info.world_size, info.rank, shuffle=True, seed=run.seed, weights=weights)
    train_loader = _loader(train_set, data.batch_size, data.num_workers, sampler, True, run.seed)
    batches_per_epoch = sampler.num_samples // data.batch_size
    val_loader = None
    if val_dir is not None and run.eval_every > 0 and info.is_main:
        val_scenes = SyntheticSceneDataset(val_dir)
        val_set = ObjectCropDataset([FirstScenes(val_scenes, data.val_scenes)], config.model, None, run.seed,
                                    data.include_difficult)
        val_loader = _loader(val_set, 64, 0, None, False, run.seed)
    LOGGER.info("%d training crops (%d scenes), %d validation crops; %d mirror-symmetric models",
                len(train_set), sum(len(s) for s in train_set.scenes),
                len(val_loader.dataset) if val_loader else 0, len(mirror_ids))

    step, epoch, batch_in_epoch = 0, 0, 0
    best_med: float | None = None
    train_log = MetricsLog(out.path(METRICS_FILE))
    val_log = MetricsLog(out.path(VAL_METRICS_FILE))
    if resume_path is not None:
        checkpoint = load_viewpoint_checkpoint(resume_path, CATEGORIES, config.model)
        extra = checkpoint.get("extra") or {}
        if checkpoint.get("optimizer") is None or "epoch" not in extra:
            raise CheckpointError(f"{resume_path} holds weights but no training state; it cannot be resumed")
        try:
            load_weights(model, checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"cannot restore the training state from {resume_path}: {exc}") from exc
        step = int(checkpoint["step"])
        best_med = extra.get("best_med_err_deg")
        epoch, batch_in_epoch = resume_data_position(extra, info, data.batch_size, len(train_set), batches_per_epoch)
        restore_rank_rng(checkpoint, info, run.seed, step)
        train_log = MetricsLog.resume(out.path(METRICS_FILE), step)
        val_log = MetricsLog.resume(out.path(VAL_METRICS_FILE), step)
        LOGGER.info("resumed %s at step %d (epoch %d, batch %d)", resume_path, step, epoch, batch_in_epoch)
        del checkpoint
    else:
        seed_everything(run.seed + info.rank)
        epoch, batch_in_epoch = first_batch(epoch, batch_in_epoch, batches_per_epoch)

    train_model: nn.Module = model
    if info.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if info.is_main:
        out.write_text(CONFIG_FILE, yaml.safe_dump(dataclass_to_dict(config), sort_keys=False))

    def save(path: Path, rng_per_rank: list[dict[str, Any]] | None) -> None:
        save_viewpoint_checkpoint(path, model, CATEGORIES, optimizer, scheduler, step, extra={
            "train_config": dataclass_to_dict(config),
            **data_position_extra(epoch, batch_in_epoch, info, data.batch_size, len(train_set), rng_per_rank),
            "best_med_err_deg": best_med, "crops_seen": step * per_step})

    stop_at = min(run.stop_at_step or optim.max_steps, optim.max_steps)
    meter = IntervalMeter()
    last_row: dict[str, float] = {}
    last_val: dict[str, Any] | None = None
    stopped_by: str | None = None

    def log_interval() -> None:
        """One metrics.csv row: the means of the steps since the last row, over all ranks."""
        nonlocal last_row
        means, seconds = meter.close(info, device)
        row = {"step": step, "epoch": epoch, "lr": optimizer.param_groups[-1]["lr"], **means,
               "seconds_per_step": seconds, "crops_per_s": per_step / max(seconds, 1e-9),
               "crops_seen": step * per_step}
        train_log.append(row)
        out.write_log(train_log)
        last_row = last_losses(row)

    def validate() -> None:
        """Validation metrics into val_metrics.csv; ``best.pt`` when the MedErr is the lowest so far
        (main rank only: its RNG entry is the main rank's ``rng``, no other rank's states)."""
        nonlocal best_med, last_val
        report = viewpoint_report(predict_records(model, val_loader, device, data.top_k, shape_targets,
                                                  data.val_mirror_average, data.val_separation_deg))
        mean = report["all"]["mean"]
        last_val = mean
        val_log.append({"step": step, "crops_seen": step * per_step, "total": mean["med_err_deg"],
                        **{k: v for k, v in mean.items() if v is not None}})
        out.write_log(val_log)
        shape = "" if mean["shape_top1"] is None else f", shape top-1 {mean['shape_top1']:.3f}"
        shape += "" if mean["mask_iou"] is None else f", mask IoU {mean['mask_iou']:.3f}"
        LOGGER.info("step %d validation: MedErr %.1f deg, Acc_pi/6 %.3f, flips %.3f, best-of-%d Acc_pi/6 %.3f%s",
                    step, mean["med_err_deg"], mean["acc_pi6"], mean["flips"], data.top_k, mean["best_of_k_acc_pi6"],
                    shape)
        if best_med is None or mean["med_err_deg"] < best_med:
            best_med = mean["med_err_deg"]
            save(out.path(BEST_CHECKPOINT), None)

    with progress_bar(stop_at, step, "train_viewpoint", info.is_main and run.progress) as bar:
        while step < stop_at and stopped_by is None:
            sampler.set_position(epoch, batch_in_epoch * data.batch_size)
            tick = time.perf_counter()
            for batch in train_loader:
                logits, offsets, shapes, masks = train_model(batch["crop"].to(device), batch["label"].to(device),
                                                             batch["ray"].to(device))
                orbits = orbit_masks(batch["bins"][:, 0], batch["symmetry"], config.model.bins).to(device)
                losses = viewpoint_loss(logits, offsets, batch["bins"].to(device), batch["offsets"].to(device),
                                        orbits, config.model.bins, optim.offset_weight, optim.direction_weight)
                if shapes is not None and optim.shape_weight > 0.0:
                    targets = torch.tensor([shape_targets.get(m, -1) for m in batch["model_id"]], device=device)
                    losses["loss_shape"] = optim.shape_weight * shape_loss(shapes, targets)
                if masks is not None and optim.mask_weight > 0.0:
                    losses["loss_mask"] = optim.mask_weight * mask_loss(masks, batch["mask"].to(device))
                total = sum(losses.values())
                values = {k: float(v.detach()) for k, v in losses.items()}
                total_value = float(total.detach())
                if not math.isfinite(total_value):
                    raise FloatingPointError(f"the loss became non-finite at step {step + 1} ({values}); lower "
                                             "optim.lr and resume from an earlier checkpoint")
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                if optim.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                batch_in_epoch += 1
                meter.add({**values, "total": total_value}, time.perf_counter() - tick)
                if step % run.log_every == 0 or step == stop_at:
                    log_interval()
                bar.set_postfix(loss=f"{total_value:.3f}", refresh=False)
                bar.update(1)
                epoch, batch_in_epoch = first_batch(epoch, batch_in_epoch, batches_per_epoch)
                if val_loader is not None and (step % run.eval_every == 0 or step == stop_at):
                    validate()
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
    return ViewpointTrainResult(output=root, step=step, checkpoint=root / LAST_CHECKPOINT,
                                seconds_per_step=meter.seconds_per_step, last_losses=last_row,
                                last_validation=last_val, stopped_by=stopped_by)


def _load_init_weights(model: ViewpointNet, path: str | Path, config: ViewpointModelConfig,
                       mask_pooling_share: float = 0.0) -> None:
    """Start a fresh run from the weights of ``path``: a checkpoint of the same network, or of the
    same network without the shape head, the mask head and/or the mask pooling that ``config`` adds
    (a new head starts fresh; new mask pooling takes ``mask_pooling_share`` of the trunk's weights on
    the whole-crop pool, :class:`ViewpointOptimConfig`; 0: it starts at zero, the old network exactly)."""
    checkpoint = load_viewpoint_checkpoint(path, CATEGORIES)
    stored = viewpoint_config_from_dict(checkpoint["model_config"])
    adds_shapes = not stored.shapes and bool(config.shapes)
    adds_mask = not stored.mask_size and bool(config.mask_size)
    adds_pooling = not stored.mask_pooling and config.mask_pooling
    expected = dataclasses.replace(config, shapes=() if adds_shapes else config.shapes,
                                   mask_size=0 if adds_mask else config.mask_size,
                                   mask_pooling=False if adds_pooling else config.mask_pooling)
    if stored != expected:
        raise CheckpointError(f"{path} was trained with model config {dataclass_to_dict(stored)}, expected "
                              f"{dataclass_to_dict(config)} (or the same without the shape or mask head or "
                              "mask pooling)")
    new_prefixes = (("shape_logits.",) * adds_shapes + ("mask_head.",) * adds_mask
                    + ("mask_pool.",) * adds_pooling)
    try:
        load_weights(model, checkpoint["model"], new_prefixes=new_prefixes)
    except RuntimeError as exc:
        raise CheckpointError(f"the weights in {path} do not fit the model: {exc}") from exc
    if adds_pooling and mask_pooling_share > 0.0:
        with torch.no_grad():
            pooled_columns = model.trunk[0].weight[:, :MOBILENET_V2_CHANNELS]
            model.mask_pool.weight.copy_(mask_pooling_share * pooled_columns)
            pooled_columns.mul_(1.0 - mask_pooling_share)


class FirstScenes:
    """The first ``n`` scenes of a scene dataset (same interface as the dataset for the crops)."""

    def __init__(self, scenes: SyntheticSceneDataset, n: int) -> None:
        self.scenes = scenes
        self.n = min(int(n), len(scenes))

    def __len__(self) -> int:
        return self.n

    def load_scene(self, index: int, parts: tuple[str, ...] = ("rgb", "instance", "depth", "meta")) -> dict[str, Any]:
        if not 0 <= index < self.n:
            raise IndexError(f"scene index {index} out of range for {self.n} scenes")
        return self.scenes.load_scene(index, parts)


__all__ = ["ViewpointTrainConfig", "load_viewpoint_train_config", "train_viewpoint", "viewpoint_report",
           "predict_records", "FirstScenes"]
