"""Which torch device to run on: the one rule every entry point and node uses."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: ``cuda:<local_rank>`` when torch sees a CUDA device, else the CPU.

    Raises ValueError for an unknown name or for ``cuda`` on a machine without CUDA.
    """
    if name not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device; use 'auto' or 'cpu'")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def device_description(device: torch.device) -> str:
    """``cpu (N threads)`` or ``cuda:0 (<GPU name>)``, for logs and reports."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
