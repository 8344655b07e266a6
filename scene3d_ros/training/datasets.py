"""The generated datasets a training run reads: checks with messages that say how to fix them, the
CAD library they were rendered from, and the DataLoader both trainers use."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from scene3d_ros.data.shards import MANIFEST_NAME, read_manifest
from scene3d_ros.world.cad_library import CadLibrary, CadLibraryError


class DataError(RuntimeError):
    """A dataset folder or the CAD library is missing or does not fit; the message says how to fix it."""


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


def resolve_cad_library(cad_library: str | None, dataset_dirs: Sequence[Path]) -> CadLibrary:
    """The CAD library at ``cad_library`` (a run's ``data.cad_library``; ``None`` = the one the first
    dataset was generated with, from its manifest, else the default library), checked against the
    library every dataset was generated with (its manifest's checksum)."""
    root = cad_library
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


def data_loader(dataset: Dataset, batch_size: int, num_workers: int, sampler: Any, drop_last: bool, seed: int,
                collate_fn: Callable[[list[Any]], Any], preload: Sequence[str], pin_memory: bool = False
                ) -> DataLoader:
    """A DataLoader whose workers come from a forkserver (forked from a clean process that never ran
    open3d: forking a process whose open3d thread pools are running is unsafe) that imported the
    ``preload`` modules (those the pickled dataset refers to, so every worker starts with them
    loaded) and that persist across epochs. A private generator keeps iterator creation from consuming the global
    torch RNG (exact resumes)."""
    context = None
    if num_workers > 0:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(preload))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_fn, drop_last=drop_last, pin_memory=pin_memory,
                      persistent_workers=num_workers > 0, multiprocessing_context=context,
                      generator=torch.Generator().manual_seed(seed))


__all__ = ["DataError", "check_dataset_dir", "data_loader", "resolve_cad_library"]
