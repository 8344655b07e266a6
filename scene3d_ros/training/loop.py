"""The run loop pieces both trainers share: the ``run`` config section, starting a run (device,
folder, resume checkpoint) and the session around it (threads, signals, process group), the data
position and RNG streams a checkpoint carries for an exact resume, the per-interval loss means of
``metrics.csv``, checkpointing on every rank, and the stop after a signal.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from scene3d_ros.config import ConfigError
from scene3d_ros.model.checkpoint import CheckpointError, restore_rng_state
from scene3d_ros.model.device import resolve_device
from scene3d_ros.training.outputs import LAST_CHECKPOINT, MetricsLog, RunOutput
from scene3d_ros.training.runtime import (
    DistributedInfo,
    average_norm_statistics,
    distributed_info_from_env,
    gather_rng_states,
    init_process_group,
    seed_everything,
    stop_agreed,
    torch_settings,
)
from scene3d_ros.training.signals import StopRequest, stop_on_signals

LOGGER = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
AMP_DTYPES = ("float16", "bfloat16")
RESEED_STRIDE = 7919
"""A resume without the ranks' RNG states reseeds with ``seed + rank + RESEED_STRIDE * step``."""


@dataclass(frozen=True)
class RunConfig:
    """``run`` section.

    ``output``: run folder (``--output`` wins). ``seed``: model initialisation, data order,
    negatives and the detector's sampling. ``checkpoint_every`` / ``log_every`` / ``eval_every``:
    in optimizer steps (``eval_every`` needs ``data.val``; 0 = never). ``keep_checkpoints``: how
    many ``step_XXXXXX.pt`` files to keep. ``eval_batches``: batches of the validation set
    (its first ``eval_batches * batch_size`` scenes) in the quick validation loss. ``device``:
    ``auto`` (CUDA when available), ``cpu`` or ``cuda``. ``amp``: mixed precision (CUDA only;
    ignored on CPU) in ``amp_dtype``. ``deterministic``: deterministic algorithms (warn-only on
    CUDA) and no cuDNN autotuning, for exact resumes. ``num_threads``: torch CPU threads per
    process (``None`` = the usable cores divided by the processes on this machine).
    ``find_unused_parameters`` (DDP): ``auto`` = on when a process's batch may hold no object
    (``data.include_difficult: false``), which leaves the depth encoder without gradient.
    ``sync_batch_norm``: SyncBatchNorm under DDP on CUDA (only matters with batch_norm layers).
    ``stop_at_step``: stop (with a checkpoint) at this step although the schedule runs to
    ``optim.max_steps``, e.g. to fit a time slot; resume later with ``--resume``.
    ``init_weights``: a checkpoint (same classes and layers; loss weights, input sizes and sampling
    settings may differ) whose model weights
    start a fresh run (new optimizer, schedule and step count), e.g. to continue training a
    shipped model with another schedule; ignored by ``--resume``, which restores everything.
    ``progress``: tqdm bar on rank 0. ``debug_dump``: every rank writes
    ``debug_rank<r>.json`` (parameter hash, files written) and ``debug_rank<r>_state.pt``.
    """

    output: str = "output/train"
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 10
    eval_every: int = 500
    eval_batches: int = 10
    device: str = "auto"
    amp: bool = True
    amp_dtype: str = "float16"
    deterministic: bool = False
    num_threads: int | None = None
    find_unused_parameters: bool | str = "auto"
    sync_batch_norm: bool = False
    stop_at_step: int | None = None
    init_weights: str | None = None
    progress: bool = True
    debug_dump: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"run.device must be one of {DEVICES}, got {self.device!r}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"run.amp_dtype must be one of {AMP_DTYPES}, got {self.amp_dtype!r}")
        if self.checkpoint_every < 1 or self.log_every < 1 or self.keep_checkpoints < 1:
            raise ValueError("run.checkpoint_every, run.log_every and run.keep_checkpoints must be >= 1")
        if self.eval_every < 0 or self.eval_batches < 1:
            raise ValueError("run.eval_every must be >= 0 and run.eval_batches >= 1")
        if self.find_unused_parameters not in (True, False, "auto"):
            raise ValueError(f"run.find_unused_parameters must be true, false or auto, got "
                             f"{self.find_unused_parameters!r}")
        if self.stop_at_step is not None and self.stop_at_step < 1:
            raise ValueError(f"run.stop_at_step must be >= 1 or null, got {self.stop_at_step}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"run.num_threads must be >= 1 or null, got {self.num_threads}")


# =========================================================================== starting a run
@dataclass(frozen=True)
class RunStart:
    """Where and how a run starts: this process's rank, its device, the run folder and the
    checkpoint to resume (``None`` = a fresh run)."""

    info: DistributedInfo
    device: torch.device
    root: Path
    resume_path: Path | None


def start_run(run: RunConfig, output: str | Path | None, resume: bool | str | Path) -> RunStart:
    """Resolve the device, the run folder (``output``, else ``run.output``) and the checkpoint to
    resume: ``resume=True`` = ``<folder>/last.pt``, a path = that checkpoint. A missing checkpoint is
    a :class:`CheckpointError`; a fresh start in a folder that holds a ``last.pt`` and a bad device
    are :class:`ConfigError`."""
    info = distributed_info_from_env()
    try:
        device = resolve_device(run.device, info.local_rank)
    except ValueError as exc:
        raise ConfigError(f"run.device: {exc}") from exc
    root = Path(output or run.output).expanduser()
    resume_path: Path | None = None
    if resume:
        resume_path = root / LAST_CHECKPOINT if resume is True else Path(resume)
        if not resume_path.is_file():
            raise CheckpointError(f"nothing to resume: checkpoint {resume_path} not found")
    elif (root / LAST_CHECKPOINT).exists():
        raise ConfigError(f"{root} already holds a training run ({LAST_CHECKPOINT}); pass --resume to continue "
                          "it, or choose another --output")
    return RunStart(info=info, device=device, root=root, resume_path=resume_path)


@contextlib.contextmanager
def run_session(run: RunConfig, start: RunStart) -> Iterator[StopRequest]:
    """Torch threads and determinism (:func:`torch_settings`), the SIGINT/SIGTERM stop request and,
    under ``torchrun``, the process group (destroyed at the end) for the duration of a run."""
    info, device = start.info, start.device
    with torch_settings(device, run.num_threads, run.deterministic, info.local_world_size), \
            stop_on_signals() as stop:
        init_process_group(info, device)
        try:
            yield stop
        finally:
            if info.enabled and dist.is_initialized():
                dist.destroy_process_group()


# =========================================================================== the data position
def data_position_extra(epoch: int, batch_in_epoch: int, info: DistributedInfo, batch_size: int,
                        dataset_size: int, rng_per_rank: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The checkpoint ``extra`` entries :func:`resume_data_position` and :func:`restore_rank_rng`
    read back: the epoch, this rank's batches done in it, what the position depends on (process
    count, batch size per process, dataset size) and every rank's RNG states."""
    return {"epoch": epoch, "batch_in_epoch": batch_in_epoch, "world_size": info.world_size,
            "batch_size": batch_size, "dataset_size": dataset_size, "rng_per_rank": rng_per_rank}


def resume_data_position(extra: dict[str, Any], info: DistributedInfo, batch_size: int, dataset_size: int,
                         batches_per_epoch: int) -> tuple[int, int]:
    """``(epoch, batch_in_epoch)`` to continue from. When the process count, the batch size or the
    dataset changed since the checkpoint, the epoch in progress cannot be continued exactly: the
    next one starts."""
    epoch, batch_in_epoch = int(extra["epoch"]), int(extra["batch_in_epoch"])
    if (extra.get("world_size"), extra.get("batch_size"), extra.get("dataset_size")) != \
            (info.world_size, batch_size, dataset_size):
        LOGGER.warning("the data, batch size or process count changed since the checkpoint: the epoch restarts")
        epoch, batch_in_epoch = epoch + (1 if batch_in_epoch else 0), 0
    return first_batch(epoch, batch_in_epoch, batches_per_epoch)


def first_batch(epoch: int, batch_in_epoch: int, batches_per_epoch: int) -> tuple[int, int]:
    """``(epoch, batch_in_epoch)``, moved to the next epoch when this one has no batch left."""
    if batch_in_epoch >= batches_per_epoch:
        return epoch + 1, 0
    return epoch, batch_in_epoch


def restore_rank_rng(checkpoint: dict[str, Any], info: DistributedInfo, seed: int, step: int) -> None:
    """This rank's RNG states from the checkpoint's ``rng_per_rank`` (written with the same process
    count), else the main rank's ``rng`` on the main rank, else a reseed from (seed, rank, step)."""
    states = (checkpoint.get("extra") or {}).get("rng_per_rank")
    if states is not None and len(states) == info.world_size:
        restore_rng_state(states[info.rank])
    elif info.is_main and checkpoint.get("rng") is not None:
        restore_rng_state(checkpoint["rng"])
    else:
        seed_everything(seed + info.rank + RESEED_STRIDE * step)


# =========================================================================== during the run
class IntervalMeter:
    """The per-step losses and wall times since the last ``metrics.csv`` row, and the totals of the
    steps already logged (for the mean seconds per step of a run)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.steps = 0
        self.seconds = 0.0
        self.logged_steps = 0
        self.logged_seconds = 0.0

    def add(self, values: dict[str, float], seconds: float) -> None:
        """One step's losses and its wall time (seconds, data wait included)."""
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.steps += 1
        self.seconds += seconds

    def close(self, info: DistributedInfo, device: torch.device) -> tuple[dict[str, float], float]:
        """Means of the losses since the last row over all ranks (keys sorted; every rank calls
        this at the same step) and this rank's seconds per step; starts the next interval."""
        keys = sorted(self.sums)
        means = torch.tensor([self.sums[k] / self.steps for k in keys], dtype=torch.float64)
        if info.enabled:
            means = means.to(device)
            dist.all_reduce(means)
            means = means.cpu() / info.world_size
        seconds = self.seconds / self.steps
        self.logged_steps += self.steps
        self.logged_seconds += self.seconds
        self.sums, self.steps, self.seconds = {}, 0, 0.0
        return dict(zip(keys, means.tolist(), strict=True)), seconds

    @property
    def seconds_per_step(self) -> float:
        """Mean wall seconds of the logged steps (0 before the first row)."""
        return self.logged_seconds / max(self.logged_steps, 1)


def last_losses(row: dict[str, Any]) -> dict[str, float]:
    """The loss columns (``loss_*`` and ``total``) of a ``metrics.csv`` row."""
    return {k: v for k, v in row.items() if k.startswith("loss_") or k == "total"}


def write_checkpoint(out: RunOutput, model: nn.Module, info: DistributedInfo, step: int,
                     save: Callable[[Path, list[dict[str, Any]]], None], train_log: MetricsLog,
                     val_log: MetricsLog | None) -> None:
    """Checkpoint at ``step`` (every rank calls this at the same step): gather the ranks' RNG states,
    average the batch-norm statistics over the ranks, ``save(path, rng_per_rank)`` ``last.pt`` and
    its ``step_XXXXXX.pt`` on the main rank, and redraw the curves."""
    rng_per_rank = gather_rng_states(info)
    if info.enabled:
        average_norm_statistics(model, info.world_size)
    out.write_checkpoint(step, lambda path: save(path, rng_per_rank))
    out.write_curves(train_log, val_log)


def stop_signal(stop: StopRequest, info: DistributedInfo, device: torch.device) -> str | None:
    """The signal that stops the run after this step (the same answer on every rank), else ``None``."""
    if not stop_agreed(stop, info, device):
        return None
    return stop.signal_name or "a signal to another rank"


def log_stop(stopped_by: str, step: int, root: Path) -> None:
    LOGGER.info("stopped by %s at step %d; %s holds it (continue with --resume)", stopped_by, step,
                root / LAST_CHECKPOINT)


@contextlib.contextmanager
def progress_bar(total: int, initial: int, desc: str, enabled: bool) -> Iterator[tqdm]:
    """A tqdm bar of optimizer steps (a disabled one when ``enabled`` is false), closed at the end."""
    bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True, disable=not enabled)
    try:
        yield bar
    finally:
        bar.close()


__all__ = ["AMP_DTYPES", "DEVICES", "IntervalMeter", "RunConfig", "RunStart", "data_position_extra", "first_batch",
           "last_losses", "log_stop", "progress_bar", "restore_rank_rng", "resume_data_position", "run_session",
           "start_run", "stop_signal", "write_checkpoint"]
