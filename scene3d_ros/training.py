"""Training of Scene3DNet (network 1 + network 2) on generated datasets; the library behind ``train``.

One run::

    config, model_config = load_train_config("config/train.yaml", ["optim.lr=1e-4"])
    result = train(config, model_config, output="runs/a")            # or resume=True / a path

Pieces, usable on their own:

* :class:`TrainConfig` (``model`` overrides of ``config/model.yaml``, ``data``, ``optim``, ``run``)
  and :func:`load_train_config`;
* :class:`TripletViewDataset`: wraps a scene dataset and adds, per object, the depth views the
  descriptor head needs (``positive_views``: the object's own CAD model, ``negative_views``: a
  model with a different id; both in the ground-truth **allocentric** rotation) and the
  ``symmetries``. Views are rendered in the DataLoader workers, the CAD library loaded once per
  worker; the random choice of negatives is seeded by (seed, epoch, index), so it does not depend
  on workers, ranks or on where a run was resumed;
* :class:`ResumableSampler`: a ``DistributedSampler`` (one replica without DDP) that yields
  ``(epoch, index)`` keys and can start in the middle of an epoch;
* :func:`build_optimizer`, :func:`build_scheduler` (linear warm-up times cosine / step / constant);
* :func:`train`: the loop, with DDP under ``torchrun`` (gloo on CPU, NCCL on CUDA), AMP on
  CUDA, gradient clipping, a quick validation loss, atomic checkpoints (``last.pt`` and
  ``step_XXXXXX.pt``, the newest ``keep_checkpoints`` kept) that resume exactly, ``metrics.csv``
  / ``val_metrics.csv`` and ``curves.png``.

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
import csv
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor, nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from scene3d_ros import CATEGORIES
from scene3d_ros.config import ConfigError, dataclass_from_dict, dataclass_to_dict, load_config, merge
from scene3d_ros.data.shards import MANIFEST_NAME, default_output_dir, read_manifest
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.mirror import MIRROR_SYMMETRY_TOLERANCE, mirror_asymmetry, mirror_target
from scene3d_ros.model.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from scene3d_ros.model.config import ModelConfig, load_model_config, model_config_from_dict
from scene3d_ros.model.device import resolve_device
from scene3d_ros.model.network import Scene3DNet, build_model
from scene3d_ros.model.rotations import egocentric_to_allocentric, quaternion_to_matrix
from scene3d_ros.paths import atomic_write_bytes, atomic_write_text, config_dir
from scene3d_ros.world.cad_library import CadLibrary, CadLibraryError
from scene3d_ros.world.depth_views import triplet_depth_views
from scene3d_ros.world.renderer import Renderer

LOGGER = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")
DEVICES = ("auto", "cpu", "cuda")
AMP_DTYPES = ("float16", "bfloat16")
LAST_CHECKPOINT = "last.pt"
METRICS_FILE = "metrics.csv"
VAL_METRICS_FILE = "val_metrics.csv"
CURVES_FILE = "curves.png"
CONFIG_FILE = "config.yaml"
MODEL_TARGET_KEYS = ("boxes", "labels", "masks", "quaternions", "translations", "K", "symmetries",
                     "positive_views", "negative_views")
"""Target entries handed to the model (the dataset's other entries stay on the CPU side)."""


class DataError(RuntimeError):
    """A dataset folder or the CAD library is missing or does not fit; the message says how to fix it."""


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
def check_dataset_dir(path: str | Path, what: str) -> Path:
    """``path`` if it holds a complete generated dataset, else :class:`DataError` saying how to make one."""
    path = Path(path).expanduser()
    if not (path / MANIFEST_NAME).is_file():
        state = "does not exist" if not path.exists() else f"holds no dataset ({MANIFEST_NAME} is missing)"
        raise DataError(f"the {what} dataset folder {path} {state}; generate one with "
                        f"`generate_data --output {path}` (set its size with --set output.num_scenes=N)")
    try:
        manifest = read_manifest(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path / MANIFEST_NAME} ({exc}); regenerate the dataset with "
                        f"`generate_data --output {path} --force`") from exc
    if not manifest.get("complete", False):
        raise DataError(f"the {what} dataset in {path} is incomplete; finish it by re-running "
                        f"`generate_data --output {path}` with the same config")
    return path


def _dataset_library_checksum(path: Path) -> str | None:
    return read_manifest(path).get("identity", {}).get("cad_library_checksum")


def resolve_cad_library(data: DataConfig, dataset_dirs: Sequence[Path]) -> CadLibrary:
    """The CAD library the views are rendered from (see :class:`DataConfig`), checked against
    the library every dataset was generated with (its manifest's checksum)."""
    root = data.cad_library
    if root is None and dataset_dirs:
        root = read_manifest(dataset_dirs[0]).get("config", {}).get("cad_library")
    try:
        library = CadLibrary.load(root)
    except CadLibraryError as exc:
        raise DataError(str(exc)) from exc
    for path in dataset_dirs:
        checksum = _dataset_library_checksum(path)
        if checksum is not None and checksum != library.checksum:
            raise DataError(f"the dataset {path} was generated with another CAD library (checksum "
                            f"{checksum[:12]}) than {library.root} ({library.checksum[:12]}): its depth views "
                            "would not match the images; set data.cad_library to that library or regenerate the data")
    return library


class TripletViewDataset(Dataset):
    """A scene dataset plus what the descriptor and pose losses need, per object:

    * ``positive_views`` (N, 1, S, S) float32: normalised depth view (see
      :mod:`scene3d_ros.world.depth_views`) of the object's own CAD model in its ground-truth
      allocentric rotation (:func:`~scene3d_ros.model.rotations.egocentric_to_allocentric` of
      the target's egocentric ``quaternions`` and ``translations``);
    * ``negative_views`` (N, 1, S, S): a CAD model with a different id in the same rotation,
      from the object's category with probability ``same_category_probability`` (when the
      category has another model), else from the whole library;
    * ``symmetries`` list[str]: the model's symmetry, unless the dataset already provides it;
    * ``negative_model_ids`` list[str];
    * ``mirrored`` bool: with probability ``mirror_probability`` the item is the horizontal mirror
      image of the scene (:func:`scene3d_ros.mirror.mirror_target`: image, masks, boxes, K and
      poses), drawn only for scenes whose every model is its own mirror image
      (:func:`~scene3d_ros.mirror.mirror_asymmetry` below ``MIRROR_SYMMETRY_TOLERANCE``; a
      bicycle with its chain on one side stays as rendered). The views follow the mirrored poses.

    Items are addressed by ``(epoch, index)`` keys (a plain ``index`` means epoch 0); the negatives
    are drawn from ``np.random.default_rng([seed, epoch, index])`` and the mirror from a second
    stream of the same key, so they depend on nothing else. The CAD library and a single-threaded renderer are created lazily, once per process
    (each DataLoader worker has its own), and every mesh is loaded once.
    """

    def __init__(self, scenes: Dataset, library_root: str | Path, view_size_px: int,
                 same_category_probability: float = 0.5, seed: int = 0, mirror_probability: float = 0.0) -> None:
        if not 0.0 <= mirror_probability <= 1.0:
            raise ValueError(f"mirror_probability must be in [0, 1], got {mirror_probability}")
        self.scenes = scenes
        self.mirror_probability = float(mirror_probability)
        self.library_root = str(library_root)
        self.view_size_px = int(view_size_px)
        self.same_category_probability = float(same_category_probability)
        self.seed = int(seed)
        self._library: CadLibrary | None = None
        self._renderer: Renderer | None = None
        self._meshes: dict[str, Any] = {}
        self._mirror_symmetric: dict[str, bool] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.scenes)

    def _process_state(self) -> tuple[CadLibrary, Renderer]:
        if self._pid != os.getpid():  # a forked worker: own library, renderer and meshes
            self._library, self._renderer, self._meshes, self._pid = None, None, {}, os.getpid()
            self._mirror_symmetric = {}
        if self._library is None:
            self._library = CadLibrary.load(self.library_root)
            self._renderer = Renderer(nthreads=1)
        return self._library, self._renderer

    def _mesh(self, library: CadLibrary, model_id: str):
        mesh = self._meshes.get(model_id)
        if mesh is None:  # one object per model, so the renderer's per-mesh scene cache hits
            mesh = self._meshes[model_id] = library.mesh(model_id)
        return mesh

    def is_mirror_symmetric(self, model_id: str) -> bool:
        """Whether the model is its own mirror image across its x-z plane (computed once per process)."""
        symmetric = self._mirror_symmetric.get(model_id)
        if symmetric is None:
            library, _ = self._process_state()
            symmetric = mirror_asymmetry(self._mesh(library, model_id)) < MIRROR_SYMMETRY_TOLERANCE
            self._mirror_symmetric[model_id] = symmetric
        return symmetric

    def negative_model_ids(self, model_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
        """One negative model id per object (never the object's own id)."""
        library, _ = self._process_state()
        out = []
        for model_id in model_ids:
            own = library.get(model_id)
            same = [m.model_id for m in library.by_category(own.category) if m.model_id != model_id]
            if same and rng.random() < self.same_category_probability:
                pool = same
            else:
                pool = [m.model_id for m in library.models if m.model_id != model_id]
            out.append(pool[int(rng.integers(len(pool)))])
        return out

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, dict[str, Any]]:
        epoch, index = (0, key) if isinstance(key, int) else (int(key[0]), int(key[1]))
        image, target = self.scenes[index]
        library, renderer = self._process_state()
        target = dict(target)
        model_ids = list(target["model_ids"])
        if "symmetries" not in target:
            target["symmetries"] = [library.get(m).symmetry for m in model_ids]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, index]))
        negatives = self.negative_model_ids(model_ids, rng)
        mirror_rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, index, 1]))
        mirrored = (self.mirror_probability > 0.0 and mirror_rng.random() < self.mirror_probability
                    and all(self.is_mirror_symmetric(m) for m in model_ids))
        if mirrored:
            image, target = mirror_target(image, target)
        q_allo = egocentric_to_allocentric(target["quaternions"].double(), target["translations"].double())
        rotations = quaternion_to_matrix(q_allo).numpy()
        positive, negative = triplet_depth_views([self._mesh(library, m) for m in model_ids],
                                                 [self._mesh(library, m) for m in negatives],
                                                 rotations, self.view_size_px, renderer)
        target["positive_views"] = torch.from_numpy(positive).unsqueeze(1)
        target["negative_views"] = torch.from_numpy(negative).unsqueeze(1)
        target["negative_model_ids"] = negatives
        target["mirrored"] = mirrored
        return image, target

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_library=None, _renderer=None, _meshes={}, _mirror_symmetric={})  # rebuilt in the receiving process
        return state


def collate_scenes(batch: list[tuple[Tensor, dict[str, Any]]]) -> tuple[list[Tensor], list[dict[str, Any]]]:
    """Detection-style collate: lists of images and targets (images differ in size)."""
    return [item[0] for item in batch], [item[1] for item in batch]


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (also used with one replica, without DDP) that yields ``(epoch, index)``
    keys and can skip the first ``start`` samples of its epoch (for exact resumes).

    The permutation of epoch e is ``torch.randperm`` with seed ``seed + e``, padded to a multiple
    of the replica count and dealt out round-robin, exactly as ``DistributedSampler``.
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.start = 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        """Next iteration: epoch ``epoch``, from its ``start``-th sample of this replica."""
        self.set_epoch(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.start:]
        return iter([(self.epoch, int(i)) for i in indices])

    def __len__(self) -> int:
        return max(self.num_samples - self.start, 0)


def _scene_datasets(paths: Sequence[Path], include_difficult: bool) -> Dataset:
    sets = [SyntheticSceneDataset(p, include_difficult=include_difficult) for p in paths]
    return sets[0] if len(sets) == 1 else ConcatDataset(sets)


def build_train_dataset(config: TrainConfig, model_config: ModelConfig, library: CadLibrary,
                        dataset_dirs: Sequence[Path]) -> TripletViewDataset:
    """The training scenes of ``dataset_dirs`` with their triplet views."""
    return TripletViewDataset(_scene_datasets(dataset_dirs, config.data.include_difficult), library.root,
                              model_config.depth_encoder.view_size_px,
                              config.data.same_category_negative_probability, config.run.seed,
                              config.data.mirror_probability)


def _loader(dataset: Dataset, batch_size: int, num_workers: int, sampler: Any, drop_last: bool, seed: int,
            pin_memory: bool) -> DataLoader:
    """Workers come from a forkserver (forked from a clean process that never ran open3d: forking a
    process whose open3d thread pools are running is unsafe) and persist across epochs. A private
    generator keeps iterator creation from consuming the global torch RNG (exact resumes)."""
    context = None
    if num_workers > 0:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["scene3d_ros.training"])
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_scenes, drop_last=drop_last, pin_memory=pin_memory,
                      persistent_workers=num_workers > 0, multiprocessing_context=context,
                      generator=torch.Generator().manual_seed(seed))


# =========================================================================== optimisation
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


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """SGD or AdamW over the trainable parameters; no weight decay on 1-D ones (biases, norms)."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


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


# =========================================================================== processes and devices
@dataclass(frozen=True)
class DistributedInfo:
    """This process's place in a ``torchrun`` job (world size 1 without one)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_info_from_env() -> DistributedInfo:
    """Read ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` (set by torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistributedInfo(world_size=world, rank=int(os.environ.get("RANK", "0")),
                           local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                           local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))))


def default_num_threads(processes_on_machine: int = 1) -> int:
    """Usable CPU cores divided among the training processes on this machine (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(processes_on_machine, 1))


@contextlib.contextmanager
def _torch_settings(run: RunConfig, device: torch.device, processes_on_machine: int) -> Iterator[None]:
    """Thread count and determinism flags for the run, restored afterwards (the process may go on)."""
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        if device.type == "cpu":
            torch.set_num_threads(run.num_threads or default_num_threads(processes_on_machine))
        if run.deterministic:
            if device.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            # roi_align's CUDA backward has no deterministic kernel: warn instead of failing there
            torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
            torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False  # input sizes vary (multi-scale training)
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[3], saved[4]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _init_process_group(info: DistributedInfo, device: torch.device) -> None:
    if not info.enabled or dist.is_initialized():
        return
    if device.type == "cpu" and os.environ.get("MASTER_ADDR") in ("127.0.0.1", "localhost") \
            and info.local_world_size == info.world_size and "GLOO_SOCKET_IFNAME" not in os.environ:
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # a single-machine job stays on loopback
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                            rank=info.rank, world_size=info.world_size)


# =========================================================================== outputs
@dataclass
class MetricsLog:
    """Rows of a CSV file, rewritten atomically at every append (a crash never leaves half a row)."""

    path: Path
    columns: list[str] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def resume(cls, path: Path, up_to_step: int) -> MetricsLog:
        """The rows of an existing file up to ``up_to_step`` (later ones belong to steps that will be redone)."""
        log = cls(path)
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                log.columns = list(reader.fieldnames or []) or None
                log.rows = [row for row in reader if row.get("step") and int(row["step"]) <= up_to_step]
        return log

    def append(self, row: dict[str, Any]) -> None:
        """Add a row in memory (the first row fixes the columns); :meth:`write` saves the file."""
        if self.columns is None:
            self.columns = list(row)
        self.rows.append({key: row.get(key, "") for key in self.columns})

    def write(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns or [], lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({key: _fmt(value) for key, value in row.items()})
        atomic_write_text(self.path, buffer.getvalue())

    def series(self, column: str) -> tuple[list[int], list[float]]:
        steps, values = [], []
        for row in self.rows:
            value = row.get(column, "")
            if value not in ("", None):
                steps.append(int(row["step"]))
                values.append(float(value))
        return steps, values


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def plot_curves(path: Path, train_log: MetricsLog, val_log: MetricsLog | None) -> None:
    """Training curves (every loss and the total against the step; learning rate; validation total)
    as a PNG written atomically (matplotlib's Agg backend, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    loss_columns = [c for c in (train_log.columns or []) if c.startswith("loss_")]
    figure = Figure(figsize=(13, 4.2), dpi=100)
    ax_loss, ax_total, ax_lr = figure.subplots(1, 3)
    for column in loss_columns:
        ax_loss.plot(*train_log.series(column), label=column.removeprefix("loss_"), linewidth=1)
    ax_loss.set(title="losses (train)", xlabel="step", yscale="log")
    ax_loss.legend(fontsize=7)
    ax_total.plot(*train_log.series("total"), label="train", linewidth=1.2)
    if val_log is not None and val_log.rows:
        ax_total.plot(*val_log.series("total"), "o-", label="val", linewidth=1.2, markersize=3)
    ax_total.set(title="total loss", xlabel="step", yscale="log")
    ax_total.legend(fontsize=8)
    ax_lr.plot(*train_log.series("lr"), linewidth=1.2)
    ax_lr.set(title="learning rate", xlabel="step")
    for ax in (ax_loss, ax_total, ax_lr):
        ax.grid(True, alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


class RunOutput:
    """Everything a run writes; only the main rank writes (other ranks' calls do nothing).

    ``written`` lists the files this process wrote (for the DDP test's debug dump).
    """

    def __init__(self, root: Path, enabled: bool, keep_checkpoints: int) -> None:
        self.root = root
        self.enabled = enabled
        self.keep_checkpoints = keep_checkpoints
        self.written: set[str] = set()

    def path(self, name: str) -> Path:
        return self.root / name

    def write_text(self, name: str, text: str) -> None:
        if self.enabled:
            atomic_write_text(self.path(name), text)
            self.written.add(name)

    def write_log(self, log: MetricsLog) -> None:
        if self.enabled:
            log.write()
            self.written.add(log.path.name)

    def write_curves(self, train_log: MetricsLog, val_log: MetricsLog | None) -> None:
        if self.enabled and train_log.rows:
            plot_curves(self.path(CURVES_FILE), train_log, val_log)
            self.written.add(CURVES_FILE)

    def write_checkpoint(self, step: int, save: Callable[[Path], None]) -> None:
        """``save(path)`` writes ``last.pt``; it is copied to ``step_XXXXXX.pt`` and old step files pruned."""
        if not self.enabled:
            return
        last = self.path(LAST_CHECKPOINT)
        save(last)
        name = f"step_{step:06d}.pt"
        link = self.path(f".{name}.{os.getpid()}.link")
        try:  # a hard link: no second copy of the bytes; renamed into place atomically
            link.unlink(missing_ok=True)
            os.link(last, link)
            os.replace(link, self.path(name))
        except OSError:  # no hard links on this file system
            link.unlink(missing_ok=True)
            atomic_write_bytes(self.path(name), last.read_bytes())
        self.written.update((LAST_CHECKPOINT, name))
        for old in sorted(self.root.glob("step_*.pt"))[:-self.keep_checkpoints]:
            old.unlink(missing_ok=True)


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


class StopRequest:
    """What a SIGINT/SIGTERM during :func:`train` asked for: ``signal_name`` is set when one came."""

    def __init__(self) -> None:
        self.signal_name: str | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Turn the first SIGINT/SIGTERM into a :class:`StopRequest` (the loop stops after its step and
    checkpoints); the handlers that were there before come back at once, so a second signal acts as
    usual (KeyboardInterrupt, termination). Outside the main thread nothing is installed."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def handle(signum: int, _frame: Any) -> None:
        request.signal_name = signal.Signals(signum).name
        restore()
        LOGGER.warning("%s: stopping after this step and writing the checkpoint (send it again to stop at once)",
                       request.signal_name)

    for signum in previous:
        signal.signal(signum, handle)
    try:
        yield request
    finally:
        restore()


def _stop_agreed(request: StopRequest, info: DistributedInfo, device: torch.device) -> bool:
    """Whether any rank was asked to stop (every rank gets the same answer, so all stop at one step)."""
    stop = request.signal_name is not None
    if not info.enabled:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def _to_device(images: list[Tensor], targets: list[dict[str, Any]], device: torch.device
               ) -> tuple[list[Tensor], list[dict[str, Any]]]:
    non_blocking = device.type == "cuda"
    images = [img.to(device, non_blocking=non_blocking) for img in images]
    moved = []
    for target in targets:
        moved.append({key: (target[key].to(device, non_blocking=non_blocking) if isinstance(target[key], Tensor)
                            else target[key]) for key in MODEL_TARGET_KEYS if key in target})
    return images, moved


def _parameter_digest(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _average_norm_statistics(model: nn.Module, world_size: int) -> None:
    """Average the batch-norm running statistics over the ranks (each rank's last forward updated
    them from its own batch), so the checkpoint holds statistics of every rank's data and all
    ranks hold the same state."""
    buffers = [b for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
               for b in (m.running_mean, m.running_var) if b is not None]
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1) for b in buffers])
    dist.all_reduce(flat)
    flat /= world_size
    for b, value in zip(buffers, flat.split([b.numel() for b in buffers]), strict=True):
        b.copy_(value.view_as(b))


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
            images, targets = _to_device(images, targets, device)
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
    info = distributed_info_from_env()
    run = config.run
    if config.optim.warmup_steps > config.optim.max_steps:
        LOGGER.warning("optim.warmup_steps (%d) exceeds optim.max_steps (%d): the learning rate never reaches "
                       "optim.lr", config.optim.warmup_steps, config.optim.max_steps)
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
    train_dirs = [check_dataset_dir(p, "training") for p in (config.data.train or (str(default_output_dir()),))]
    val_dir = check_dataset_dir(config.data.val, "validation") if config.data.val else None
    library = resolve_cad_library(config.data, train_dirs + ([val_dir] if val_dir else []))

    with _torch_settings(run, device, info.local_world_size), stop_on_signals() as stop:
        _init_process_group(info, device)
        try:
            return _train(config, model_config, root, resume_path, info, device, library, train_dirs, val_dir, stop)
        finally:
            if info.enabled and dist.is_initialized():
                dist.destroy_process_group()


def _train(config: TrainConfig, model_config: ModelConfig, root: Path, resume_path: Path | None,
           info: DistributedInfo, device: torch.device, library: CadLibrary, train_dirs: list[Path],
           val_dir: Path | None, stop: StopRequest) -> TrainResult:
    run, optim_config, data = config.run, config.optim, config.data
    out = RunOutput(root, info.is_main, run.keep_checkpoints)
    if info.is_main:
        root.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- model, optimizer
    _seed_everything(run.seed)  # identical initial weights on every rank
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
        val_scenes = TripletViewDataset(_scene_datasets([val_dir], data.include_difficult), library.root,
                                        model_config.depth_encoder.view_size_px,
                                        data.same_category_negative_probability, run.seed + 1)
        subset = Subset(val_scenes, range(min(len(val_scenes), run.eval_batches * data.batch_size)))
        val_loader = _loader(subset, data.batch_size, min(data.num_workers, 1), None, False, run.seed, pin)

    # ---------------------------------------------------------------- resume
    step, epoch, batch_in_epoch = 0, 0, 0
    train_log = MetricsLog(out.path(METRICS_FILE))
    val_log = MetricsLog(out.path(VAL_METRICS_FILE))
    rng_states: list[dict[str, Any]] | None = None
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
        epoch, batch_in_epoch = int(extra["epoch"]), int(extra["batch_in_epoch"])
        if (extra.get("world_size"), extra.get("batch_size"), extra.get("dataset_size")) != \
                (info.world_size, data.batch_size, len(train_set)):
            epoch, batch_in_epoch = epoch + (1 if batch_in_epoch else 0), 0  # cannot continue the epoch exactly
        rng_states = extra.get("rng_per_rank")
        if rng_states is not None and len(rng_states) == info.world_size:
            restore_rng_state(rng_states[info.rank])
        elif info.is_main and checkpoint.get("rng") is not None:
            restore_rng_state(checkpoint["rng"])
        else:
            _seed_everything(run.seed + info.rank + 7919 * step)
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
        _seed_everything(run.seed + info.rank)  # the ranks' detector sampling differs
    if batch_in_epoch >= batches_per_epoch:
        epoch, batch_in_epoch = epoch + 1, 0

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
    def save(path: Path) -> None:
        save_checkpoint(path, model, model_config, CATEGORIES, optimizer=optimizer, scheduler=scheduler, step=step,
                        rng_state=True, extra={
                            "train_config": train_config_to_dict(config), "epoch": epoch,
                            "batch_in_epoch": batch_in_epoch, "world_size": info.world_size,
                            "batch_size": data.batch_size, "dataset_size": len(train_set),
                            "rng_per_rank": all_rng, "grad_scaler": scaler.state_dict() if scaler.is_enabled() else None,
                        })

    def checkpoint_now() -> None:
        nonlocal all_rng
        state = capture_rng_state()
        if info.enabled:
            _average_norm_statistics(model, info.world_size)
            gathered: list[Any] = [None] * info.world_size
            dist.all_gather_object(gathered, state)
            all_rng = gathered
        else:
            all_rng = [state]
        out.write_checkpoint(step, save)
        out.write_curves(train_log, val_log)

    all_rng: list[dict[str, Any]] | None = None
    stop_at = min(run.stop_at_step or optim_config.max_steps, optim_config.max_steps)
    interval: dict[str, float] = {}
    interval_steps, interval_time, timed_steps, timed_seconds = 0, 0.0, 0, 0.0
    last_row: dict[str, float] = {}
    lr = optimizer.param_groups[0]["lr"]
    stopped_by: str | None = None

    def log_interval() -> None:
        """One metrics.csv row: the means of the steps since the last row, over all ranks."""
        nonlocal interval, interval_steps, interval_time, timed_steps, timed_seconds, last_row
        keys = sorted(interval)
        means = torch.tensor([interval[k] / interval_steps for k in keys], dtype=torch.float64)
        if info.enabled:
            means = means.to(device)
            dist.all_reduce(means)
            means = means.cpu() / info.world_size
        seconds = interval_time / interval_steps
        row = {"step": step, "epoch": epoch, "lr": lr,
               **{k: float(v) for k, v in zip(keys, means.tolist(), strict=True) if k != "total"},
               "total": float(means[keys.index("total")]), "seconds_per_step": seconds,
               "images_per_s": per_step / max(seconds, 1e-9)}
        train_log.append(row)
        out.write_log(train_log)
        last_row = {k: v for k, v in row.items() if k.startswith("loss_") or k == "total"}
        timed_steps += interval_steps
        timed_seconds += interval_time
        interval, interval_steps, interval_time = {}, 0, 0.0

    bar = tqdm(total=stop_at, initial=step, desc="train", unit="step", dynamic_ncols=True,
               disable=not (info.is_main and run.progress))
    try:
        while step < stop_at and stopped_by is None:
            sampler.set_position(epoch, batch_in_epoch * data.batch_size)
            tick = time.perf_counter()
            for images, targets in train_loader:
                images, targets = _to_device(images, targets, device)
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
                for key, value in {**values, "total": total_value}.items():
                    interval[key] = interval.get(key, 0.0) + value
                interval_steps += 1
                interval_time += time.perf_counter() - tick

                if step % run.log_every == 0 or step == stop_at:
                    log_interval()
                bar.set_postfix(loss=f"{total_value:.3f}", lr=f"{lr:.2e}", refresh=False)
                bar.update(1)

                if batch_in_epoch >= batches_per_epoch:
                    epoch, batch_in_epoch = epoch + 1, 0
                if val_loader is not None and step % run.eval_every == 0:
                    val = validation_losses(model, val_loader, device, run.seed, autocast)
                    val_log.append({"step": step, **val})
                    out.write_log(val_log)
                checkpointed = step % run.checkpoint_every == 0 or step == stop_at
                if checkpointed:
                    checkpoint_now()
                if _stop_agreed(stop, info, device):
                    stopped_by = stop.signal_name or "a signal to another rank"
                    if interval_steps:
                        log_interval()
                    if not checkpointed:
                        checkpoint_now()
                    LOGGER.info("stopped by %s at step %d; %s holds it (continue with --resume)", stopped_by, step,
                                root / LAST_CHECKPOINT)
                    break
                if step >= stop_at or batch_in_epoch == 0:
                    break
                tick = time.perf_counter()
    finally:
        bar.close()

    if run.debug_dump:
        digest = _parameter_digest(model)
        torch.save(model.state_dict(), root / f"debug_rank{info.rank}_state.pt")
        atomic_write_text(root / f"debug_rank{info.rank}.json", json.dumps(
            {"rank": info.rank, "world_size": info.world_size, "step": step, "parameter_sha256": digest,
             "files_written": sorted(out.written)}, indent=1))
    return TrainResult(output=root, step=step, checkpoint=root / LAST_CHECKPOINT,
                       seconds_per_step=timed_seconds / max(timed_steps, 1), last_losses=last_row,
                       stopped_by=stopped_by)


__all__ = [
    "DataConfig", "DataError", "DistributedInfo", "MetricsLog", "OptimConfig", "ResumableSampler", "RunConfig",
    "RunOutput", "StopRequest", "TrainConfig", "TrainResult", "TripletViewDataset", "build_optimizer", "build_scheduler",
    "build_train_dataset", "check_dataset_dir", "collate_scenes", "default_train_config_path",
    "distributed_info_from_env", "load_train_config", "lr_factor", "plot_curves", "resolve_cad_library",
    "resolve_model_config", "stop_on_signals", "train", "train_config_from_dict", "train_config_to_dict",
    "validation_losses",
]
