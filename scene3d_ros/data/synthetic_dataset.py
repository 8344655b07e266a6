"""torch ``Dataset`` over the shards written by ``generate_data`` (see :mod:`scene3d_ros.data.shards`).

Targets follow torchvision's detection format plus the pose ground truth. Shards are opened
lazily and kept open per process (a forked DataLoader worker reopens its own handles).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from scene3d_ros.data.shards import MANIFEST_NAME, SCENE_PARTS, read_manifest, read_scene


class SyntheticSceneDataset:
    """Scenes of a generated dataset folder, in scene-index order.

    ``transforms(image, target) -> (image, target)`` is applied last. ``with_depth`` adds the
    (H, W) float32 z-depth (metres, 0 on background) to the target. ``include_difficult=False``
    drops the objects flagged ``difficult`` (tiny or almost hidden, see
    :mod:`scene3d_ros.world.annotations`) from the targets.
    """

    def __init__(self, root: str | Path, transforms: Callable | None = None, with_depth: bool = False,
                 include_difficult: bool = True) -> None:
        self.root = Path(root)
        if not (self.root / MANIFEST_NAME).is_file():
            raise FileNotFoundError(f"no {MANIFEST_NAME} in {self.root}: "
                                    f"run generate_data --output {self.root}")
        self.manifest = read_manifest(self.root)
        if not self.manifest.get("complete", False):
            raise RuntimeError(f"the dataset in {self.root} is incomplete: re-run generate_data to finish it")
        self.transforms = transforms
        self.with_depth = with_depth
        self.include_difficult = include_difficult
        self._index: list[tuple[str, int]] = []
        for shard in sorted(self.manifest["shards"], key=lambda s: s["index"]):
            self._index += [(shard["file"], j) for j in range(int(shard["num_scenes"]))]
        self._open: dict[str, Any] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._index)

    def _shard(self, name: str):
        if self._pid != os.getpid():  # forked worker: never share the parent's file handles
            self._open, self._pid = {}, os.getpid()
        npz = self._open.get(name)
        if npz is None:
            npz = np.load(self.root / name, allow_pickle=False)
            self._open[name] = npz
        return npz

    def load_scene(self, index: int, parts: tuple[str, ...] = SCENE_PARTS) -> dict[str, Any]:
        """Raw record of scene ``index``: ``rgb`` uint8 (H, W, 3), ``instance`` int32 (H, W)
        (-1 background, else the object's ``instance_id``), ``depth`` float32 (H, W) metres,
        ``meta`` (dict: ``scene_index``, ``width``, ``height``, ``K``, ``scene``, ``objects``);
        only the ``parts`` asked for."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"scene index {index} out of range for {len(self)} scenes")
        name, j = self._index[index]
        return read_scene(self._shard(name), j, parts)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        """(image float32 3xHxW in [0, 1], target).

        target: ``boxes`` (N, 4) float32 x0 y0 x1 y1 pixel edges (visible mask), ``labels`` (N,)
        int64 (1-based ``CATEGORIES`` index), ``masks`` (N, H, W) uint8 (visible), ``quaternions``
        (N, 4) float32 (w, x, y, z; w >= 0; canonical modulo symmetry; object -> optical frame),
        ``translations`` (N, 3) float32 metres (optical frame), ``K`` (3, 3) float32 pixels,
        ``model_ids`` list[str], ``symmetries`` list[str] (about each model's up axis),
        ``visible_fraction`` (N,) float32, ``occluded``, ``truncated``, ``difficult`` (N,) bool, ``image_id`` int64 scalar (dataset index), ``depth`` (H, W)
        float32 metres when ``with_depth``.
        """
        import torch

        record = self.load_scene(index)
        objects = record["meta"]["objects"]
        if not self.include_difficult:
            objects = [o for o in objects if not o["difficult"]]
        instance = record["instance"]
        height, width = instance.shape
        n = len(objects)
        ids = np.array([o["instance_id"] for o in objects], dtype=np.int32)
        masks = (instance[None, :, :] == ids[:, None, None]).astype(np.uint8)
        image = torch.from_numpy(np.ascontiguousarray(record["rgb"].transpose(2, 0, 1))).float().div_(255.0)
        def column(key: str, dtype, width: int | None = None):
            shape = (n,) if width is None else (n, width)
            return torch.tensor([o[key] for o in objects], dtype=dtype).reshape(shape)

        target: dict[str, Any] = {
            "boxes": column("box", torch.float32, 4),
            "labels": column("label", torch.int64),
            "masks": torch.from_numpy(masks),
            "quaternions": column("quaternion", torch.float32, 4),
            "translations": column("translation", torch.float32, 3),
            "K": torch.tensor(record["meta"]["K"], dtype=torch.float32),
            "model_ids": [o["model_id"] for o in objects],
            "symmetries": [o["symmetry"] for o in objects],
            "visible_fraction": column("visible_fraction", torch.float32),
            "occluded": column("occluded", torch.bool),
            "truncated": column("truncated", torch.bool),
            "difficult": column("difficult", torch.bool),
            "image_id": torch.tensor(index if index >= 0 else index + len(self), dtype=torch.int64),
        }
        if self.with_depth:
            target["depth"] = torch.from_numpy(record["depth"])
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def close(self) -> None:
        """Close the open shard files of this process."""
        for npz in self._open.values():
            npz.close()
        self._open = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_open"] = {}  # file handles never travel to spawned workers
        return state
