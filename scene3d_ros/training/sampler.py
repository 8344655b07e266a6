"""The data order of a training run, resumable in the middle of an epoch."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset, DistributedSampler


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


__all__ = ["ResumableSampler"]
