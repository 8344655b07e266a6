"""The processes of a training run: ``torchrun`` ranks, torch thread/determinism settings, seeding,
the process group, and the collective steps every rank takes together (stop agreement, RNG states,
batch-norm statistics)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from scene3d_ros.model.checkpoint import capture_rng_state
from scene3d_ros.training.signals import StopRequest


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
def torch_settings(device: torch.device, num_threads: int | None, deterministic: bool,
                   processes_on_machine: int) -> Iterator[None]:
    """Thread count (CPU; ``None`` = :func:`default_num_threads`) and determinism flags for a run,
    restored afterwards (the process may go on)."""
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        if device.type == "cpu":
            torch.set_num_threads(num_threads or default_num_threads(processes_on_machine))
        if deterministic:
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


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def init_process_group(info: DistributedInfo, device: torch.device) -> None:
    """Join the ``torchrun`` job (gloo on CPU, NCCL on CUDA); nothing without one or when joined already."""
    if not info.enabled or dist.is_initialized():
        return
    if device.type == "cpu" and os.environ.get("MASTER_ADDR") in ("127.0.0.1", "localhost") \
            and info.local_world_size == info.world_size and "GLOO_SOCKET_IFNAME" not in os.environ:
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # a single-machine job stays on loopback
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                            rank=info.rank, world_size=info.world_size)


def stop_agreed(request: StopRequest, info: DistributedInfo, device: torch.device) -> bool:
    """Whether any rank was asked to stop (every rank gets the same answer, so all stop at one step)."""
    stop = request.signal_name is not None
    if not info.enabled:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def gather_rng_states(info: DistributedInfo) -> list[dict[str, Any]]:
    """Every rank's RNG states (:func:`capture_rng_state`), in rank order, on every rank."""
    state = capture_rng_state()
    if not info.enabled:
        return [state]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, state)
    return gathered


def average_norm_statistics(model: nn.Module, world_size: int) -> None:
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


def parameter_digest(model: nn.Module) -> str:
    """SHA-256 (hex) of the model's state dict: names and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


__all__ = ["DistributedInfo", "average_norm_statistics", "default_num_threads", "distributed_info_from_env",
           "gather_rng_states", "init_process_group", "parameter_digest", "seed_everything", "stop_agreed",
           "torch_settings"]
