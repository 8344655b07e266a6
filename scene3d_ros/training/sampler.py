"""The data order of a training run, resumable in the middle of an epoch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (also used with one replica, without DDP) that yields ``(epoch, index)``
    keys and can skip the first ``start`` samples of its epoch (for exact resumes).

    The permutation of epoch e is ``torch.randperm`` with seed ``seed + e``, padded to a multiple
    of the replica count and dealt out round-robin, exactly as ``DistributedSampler``.

    With ``weights`` (one non-negative number per dataset item, not all zero), an epoch is instead
    ``len(dataset)`` (padded as above) draws with replacement, item i with probability
    ``weights[i] / sum(weights)``, from the same seed: the epoch length is unchanged, heavier items
    come more often.
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0, weights: Sequence[float] | None = None) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.start = 0
        self.weights = None
        if weights is not None:
            w = torch.as_tensor(weights, dtype=torch.float64)
            if w.shape != (len(dataset),) or not bool(torch.isfinite(w).all()) or bool((w < 0).any()) \
                    or not float(w.sum()) > 0.0:
                raise ValueError(f"weights must be {len(dataset)} finite non-negative numbers, not all zero")
            self.weights = w

    def set_position(self, epoch: int, start: int = 0) -> None:
        """Next iteration: epoch ``epoch``, from its ``start``-th sample of this replica."""
        self.set_epoch(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.weights is None:
            indices = list(super().__iter__())
        else:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            drawn = torch.multinomial(self.weights, self.total_size, replacement=True, generator=generator)
            indices = drawn[self.rank:self.total_size:self.num_replicas].tolist()
        return iter([(self.epoch, int(i)) for i in indices[self.start:]])

    def __len__(self) -> int:
        return max(self.num_samples - self.start, 0)


__all__ = ["ResumableSampler"]
