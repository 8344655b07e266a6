"""The networks: Mask R-CNN with pose and descriptor heads (network 1) and the depth encoder (network 2).

Entry points: :func:`build_model`, :func:`load_model_config`, :func:`save_checkpoint`,
:func:`load_checkpoint`, :func:`build_model_from_checkpoint`.
"""

from scene3d_ros.model.checkpoint import (
    CheckpointError,
    build_model_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from scene3d_ros.model.config import ModelConfig, load_model_config, model_config_from_dict
from scene3d_ros.model.network import Scene3DNet, build_model

__all__ = [
    "CheckpointError", "ModelConfig", "Scene3DNet", "build_model", "build_model_from_checkpoint",
    "load_checkpoint", "load_model_config", "model_config_from_dict", "save_checkpoint",
]
