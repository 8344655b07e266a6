"""Training of both networks: the pieces they share and one module per trainer.

* :mod:`~scene3d_ros.training.runtime`: ``torchrun`` ranks (:class:`DistributedInfo`), torch thread
  and determinism settings, seeding, the process group, the collective steps (stop agreement, RNG
  states, batch-norm statistics);
* :mod:`~scene3d_ros.training.signals`: the clean stop on SIGINT/SIGTERM (:func:`stop_on_signals`);
* :mod:`~scene3d_ros.training.outputs`: the run folder's files (:class:`MetricsLog`,
  :func:`plot_curves`, :class:`RunOutput`, the file names);
* :mod:`~scene3d_ros.training.optim`: the ``optim`` section, optimizers, the learning-rate schedule,
  freezing parameters;
* :mod:`~scene3d_ros.training.sampler`: :class:`ResumableSampler` (data order, resumable mid-epoch);
* :mod:`~scene3d_ros.training.datasets`: dataset folder checks (:class:`DataError`), the CAD library,
  the DataLoader;
* :mod:`~scene3d_ros.training.loop`: the ``run`` section and the run loop pieces (start, session,
  data position and RNG streams for exact resumes, interval means, checkpoints, stop);
* :mod:`~scene3d_ros.training.detector`: network 1 + network 2 (``train``);
* :mod:`~scene3d_ros.training.viewpoint`: the crop viewpoint stage (``train_viewpoint``).

The names below are re-exported for ``from scene3d_ros.training import ...``.
"""

from scene3d_ros.data.triplet_views import TripletViewDataset, collate_scenes
from scene3d_ros.training.datasets import DataError, check_dataset_dir, resolve_cad_library
from scene3d_ros.training.detector import (
    DataConfig,
    TrainConfig,
    TrainResult,
    build_train_dataset,
    default_train_config_path,
    load_train_config,
    resolve_model_config,
    targets_to_device,
    train,
    train_config_from_dict,
    train_config_to_dict,
    validation_losses,
)
from scene3d_ros.training.loop import RunConfig
from scene3d_ros.training.optim import (
    OptimConfig,
    build_optimizer,
    build_scheduler,
    freeze_parameters,
    lr_factor,
)
from scene3d_ros.training.outputs import MetricsLog, RunOutput, plot_curves
from scene3d_ros.training.runtime import DistributedInfo, distributed_info_from_env
from scene3d_ros.training.sampler import ResumableSampler
from scene3d_ros.training.signals import StopRequest, stop_on_signals
from scene3d_ros.training.viewpoint import ViewpointTrainConfig, load_viewpoint_train_config, train_viewpoint

__all__ = [
    "DataConfig", "DataError", "DistributedInfo", "MetricsLog", "OptimConfig", "ResumableSampler", "RunConfig",
    "RunOutput", "StopRequest", "TrainConfig", "TrainResult", "TripletViewDataset", "ViewpointTrainConfig",
    "build_optimizer", "build_scheduler", "build_train_dataset", "check_dataset_dir", "collate_scenes",
    "default_train_config_path", "distributed_info_from_env", "freeze_parameters", "load_train_config",
    "load_viewpoint_train_config", "lr_factor", "plot_curves", "resolve_cad_library", "resolve_model_config",
    "stop_on_signals", "targets_to_device", "train", "train_config_from_dict", "train_config_to_dict",
    "train_viewpoint", "validation_losses",
]
