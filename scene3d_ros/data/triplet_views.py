"""Scenes with the depth views network 2's descriptor loss needs: :class:`TripletViewDataset`.

It wraps a scene dataset and adds, per object, the depth views of the object's own CAD model
(``positive_views``) and of a model with a different id (``negative_views``), both in the
ground-truth **allocentric** rotation, and the ``symmetries``. Views are rendered in the
DataLoader workers, the CAD library loaded once per worker; the random choice of negatives (and
of the mirror) is seeded by (seed, epoch, index), so it does not depend on workers, ranks or on
where a run was resumed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from scene3d_ros.mirror import MIRROR_SYMMETRY_TOLERANCE, mirror_asymmetry, mirror_target
from scene3d_ros.model.rotations import egocentric_to_allocentric, quaternion_to_matrix
from scene3d_ros.world.cad_library import CadLibrary
from scene3d_ros.world.depth_views import triplet_depth_views
from scene3d_ros.world.renderer import Renderer


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


__all__ = ["TripletViewDataset", "collate_scenes"]
