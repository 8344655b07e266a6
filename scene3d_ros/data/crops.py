"""Object crops of generated scenes for the crop viewpoint stage (:mod:`scene3d_ros.model.viewpoint`).

One item per annotated object: the square crop around its (jittered) visible box cut from the
full-resolution scene image exactly as at inference (:func:`~scene3d_ros.model.viewpoint.crop_boxes`),
the viewing ray through the crop centre, and the allocentric rotation relative to that ray as
viewpoint bins + offsets. Boxes are jittered the way a detector's boxes deviate from the ground
truth (centre shift and side scale, uniform), and a crop of a mirror-symmetric model is shown
as its left-right mirror image with probability ``mirror_probability`` (:mod:`scene3d_ros.mirror`).
Optionally the crop's colours are jittered, a random rectangle of it is erased (filled with
noise, as a synthetic occluder; the mask target loses the erased cells), and another object of
the same scene is pasted over it (a real occluder's look: its own silhouette and colours; the mask
target loses what it covers).

Items are addressed by ``(epoch, index)`` keys (a plain ``index`` means epoch 0, without
jitter or mirror when the dataset was built with ``augment=False``); all randomness comes from
``np.random.default_rng([seed, epoch, index])``, so an item depends on nothing else
(reproducible, exact resumes, any number of workers).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.mirror import (
    MIRROR_SYMMETRY_TOLERANCE,
    mirror_asymmetry,
    mirror_boxes,
    mirror_intrinsics,
    mirror_rotations,
)
from scene3d_ros.model.viewpoint import (
    ViewpointModelConfig,
    crop_boxes,
    crop_rays,
    encode_viewpoint,
    ray_rotation,
)


@dataclass(frozen=True)
class CropAugmentation:
    """Box jitter (``shift``: centre moved by U(-shift, shift) x the box's width/height;
    ``scale``: each side scaled by U(1 - scale, 1 + scale)), the mirror probability, and colour
    jitter of the crop (``brightness``, ``contrast``, ``saturation``: factor U(1 - x, 1 + x);
    ``hue``: shift U(-x, x) of a turn; applied in that order with torchvision's functional
    adjustments; 0 = off, the default, which leaves the items exactly as without the fields),
    and random erasing (:func:`erase_rectangle`): with probability ``erase_probability`` a
    rectangle of area U(``erase_area[0]``, ``erase_area[1]``) x the crop's, aspect ratio
    log-uniform in [1/3, 3], is filled with uniform noise (0 = off, the default), and occluder
    pasting (:func:`paste_occluder`): with probability ``occluder_probability`` another object of
    the scene, cut around its own box into a square of area U(``occluder_area``) x the crop's, is
    pasted (its visible pixels only) at a uniform position in the crop (0 = off, the default)."""

    shift: float = 0.10
    scale: float = 0.10
    mirror_probability: float = 0.5
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    erase_probability: float = 0.0
    erase_area: tuple[float, float] = (0.05, 0.25)
    occluder_probability: float = 0.0
    occluder_area: tuple[float, float] = (0.1, 0.4)

    def __post_init__(self) -> None:
        for name in ("shift", "scale"):
            if not 0.0 <= float(getattr(self, name)) < 0.5:
                raise ValueError(f"crop augmentation: {name} must be in [0, 0.5), got {getattr(self, name)}")
        if not 0.0 <= float(self.mirror_probability) <= 1.0:
            raise ValueError(f"crop augmentation: mirror_probability must be in [0, 1], got {self.mirror_probability}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ValueError(f"crop augmentation: {name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= float(self.hue) <= 0.5:
            raise ValueError(f"crop augmentation: hue must be in [0, 0.5], got {self.hue}")
        if not 0.0 <= float(self.erase_probability) <= 1.0:
            raise ValueError(f"crop augmentation: erase_probability must be in [0, 1], got {self.erase_probability}")
        area = tuple(float(a) for a in self.erase_area)
        if len(area) != 2 or not 0.0 < area[0] <= area[1] <= 0.5:
            raise ValueError(f"crop augmentation: erase_area must be (min, max) with 0 < min <= max <= 0.5, "
                             f"got {self.erase_area}")
        object.__setattr__(self, "erase_area", area)
        if not 0.0 <= float(self.occluder_probability) <= 1.0:
            raise ValueError(f"crop augmentation: occluder_probability must be in [0, 1], "
                             f"got {self.occluder_probability}")
        area = tuple(float(a) for a in self.occluder_area)
        if len(area) != 2 or not 0.0 < area[0] <= area[1] <= 1.0:
            raise ValueError(f"crop augmentation: occluder_area must be (min, max) with 0 < min <= max <= 1, "
                             f"got {self.occluder_area}")
        object.__setattr__(self, "occluder_area", area)

    @property
    def jitters_colour(self) -> bool:
        return any(float(v) > 0.0 for v in (self.brightness, self.contrast, self.saturation, self.hue))


def jitter_colour(crop: Tensor, rng: np.random.Generator, augmentation: CropAugmentation) -> Tensor:
    """``crop`` (3, S, S) RGB in [0, 1] with brightness, contrast, saturation and hue jittered by
    factors drawn from ``rng`` (four draws, always, so the stream does not depend on which are on)."""
    b, c, s = (rng.uniform(1.0 - x, 1.0 + x) for x in (augmentation.brightness, augmentation.contrast,
                                                        augmentation.saturation))
    h = rng.uniform(-augmentation.hue, augmentation.hue)
    crop = TF.adjust_brightness(crop, float(b))
    crop = TF.adjust_contrast(crop, float(c))
    crop = TF.adjust_saturation(crop, float(s))
    return TF.adjust_hue(crop, float(h)) if h != 0.0 else crop


ERASE_ASPECT = 3.0  # erased rectangles' height/width ratio lies in [1/ERASE_ASPECT, ERASE_ASPECT]


def erase_rectangle(crop: Tensor, rng: np.random.Generator, area: tuple[float, float], grid: int,
                    mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """``crop`` (3, S, S) with a random rectangle filled with uniform noise in [0, 1], a synthetic
    occluder. The rectangle is drawn in cells of a ``grid`` x ``grid`` partition of the crop (the
    mask head's ``mask_size``, or S for pixels): area U(area) x the crop's, aspect log-uniform in
    [1/3, 3], position uniform inside the crop; ``mask`` (grid, grid), the object's visible share of
    each cell, gets 0 in the erased cells (exact when S is a multiple of ``grid``). Returns new
    tensors (the inputs are not changed)."""
    size = crop.shape[-1]
    fraction = rng.uniform(*area)
    aspect = math.exp(rng.uniform(-math.log(ERASE_ASPECT), math.log(ERASE_ASPECT)))
    rows = int(np.clip(round(grid * math.sqrt(fraction * aspect)), 1, grid))
    cols = int(np.clip(round(grid * math.sqrt(fraction / aspect)), 1, grid))
    r0, c0 = int(rng.integers(0, grid - rows + 1)), int(rng.integers(0, grid - cols + 1))
    y0, y1 = round(r0 * size / grid), round((r0 + rows) * size / grid)
    x0, x1 = round(c0 * size / grid), round((c0 + cols) * size / grid)
    noise = torch.from_numpy(rng.random((crop.shape[0], y1 - y0, x1 - x0), dtype=np.float32))
    crop = TF.erase(crop, y0, x0, y1 - y0, x1 - x0, noise)
    if mask is not None:
        mask = mask.clone()
        mask[r0:r0 + rows, c0:c0 + cols] = 0.0
    return crop, mask


def paste_occluder(crop: Tensor, occluder: Tensor, visible: Tensor, rng: np.random.Generator,
                   mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """``crop`` (3, S, S) with ``occluder`` (3, s, s), s <= S, pasted at a uniform position where its
    ``visible`` (s, s) share in [0, 1] says (alpha blending: its silhouette, not its square).
    ``mask`` (G, G), the object's visible share of each crop cell, is multiplied by the share of
    each cell left uncovered (exact where the object and the occluder do not share a cell partly).
    Returns new tensors (the inputs are not changed)."""
    size, side = crop.shape[-1], occluder.shape[-1]
    if side > size or visible.shape[-2:] != occluder.shape[-2:]:
        raise ValueError(f"paste_occluder: occluder {tuple(occluder.shape)} and visible {tuple(visible.shape)} "
                         f"must be the same square, at most the crop's side {size}")
    y0, x0 = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
    alpha = visible.clamp(0.0, 1.0).to(crop.dtype)
    crop = crop.clone()
    window = crop[:, y0:y0 + side, x0:x0 + side]
    window.copy_(window * (1.0 - alpha) + occluder * alpha)
    if mask is not None:
        covered = torch.zeros((1, 1, size, size), dtype=crop.dtype)
        covered[0, 0, y0:y0 + side, x0:x0 + side] = alpha
        mask = mask * (1.0 - torch.nn.functional.interpolate(covered, size=tuple(mask.shape), mode="area")[0, 0])
    return crop, mask


def jitter_box(box: np.ndarray, rng: np.random.Generator, shift: float, scale: float) -> np.ndarray:
    """A box ``(4,)`` (x0 y0 x1 y1, pixel edges) with its centre shifted and sides scaled."""
    box = np.asarray(box, dtype=np.float64)
    size = np.maximum(box[2:] - box[:2], 1.0)
    centre = (box[:2] + box[2:]) / 2.0 + rng.uniform(-shift, shift, 2) * size
    size = size * rng.uniform(1.0 - scale, 1.0 + scale, 2)
    return np.concatenate([centre - size / 2.0, centre + size / 2.0])


class ObjectCropDataset(Dataset):
    """Every object of ``scenes`` (not ``difficult`` unless ``include_difficult``) as a crop item.

    Item (dict): ``crop`` (3, S, S) float32 RGB in [0, 1]; ``label`` int64 (1-based category);
    ``ray`` (3,) float32 unit viewing ray (optical frame); ``bins`` (3,) int64 and ``offsets`` (3,)
    float32 (:func:`~scene3d_ros.model.viewpoint.encode_viewpoint` of the allocentric rotation);
    ``rotation`` (3, 3) float32 allocentric rotation; ``symmetry``, ``model_id``, ``category`` str;
    ``occluded``, ``truncated``, ``mirrored`` bool; ``scene`` and ``object`` int (indices); with a
    mask head (``model.mask_size`` > 0), ``mask`` (M, M) float32: the share of each cell of the
    crop square covered by the object's visible pixels (the instance image, cropped as the RGB).
    """

    def __init__(self, scenes: Sequence[SyntheticSceneDataset], model: ViewpointModelConfig,
                 augmentation: CropAugmentation | None = None, seed: int = 0, include_difficult: bool = False,
                 mirror_symmetric_models: set[str] | None = None) -> None:
        self.scenes = list(scenes)
        self.model = model
        self.augmentation = augmentation
        self.seed = int(seed)
        if augmentation is not None and augmentation.mirror_probability > 0 and mirror_symmetric_models is None:
            raise ValueError("mirror augmentation needs the set of mirror-symmetric model ids "
                             "(see mirror_symmetric_model_ids)")
        self.mirror_symmetric_models = set(mirror_symmetric_models or ())
        self.index: list[tuple[int, int, int]] = []  # (scene set, scene, object index in meta)
        self.categories: list[str] = []  # category of each item (e.g. for weighted sampling)
        for s, dataset in enumerate(self.scenes):
            for j in range(len(dataset)):
                objects = dataset.load_scene(j, parts=("meta",))["meta"]["objects"]
                kept = [o for o, obj in enumerate(objects) if include_difficult or not obj["difficult"]]
                self.index += [(s, j, o) for o in kept]
                self.categories += [objects[o]["category"] for o in kept]
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = (0, key) if isinstance(key, int) else (int(key[0]), int(key[1]))
        s, j, o = self.index[index]
        with_mask = self.model.mask_size > 0
        pastes = self.augmentation is not None and self.augmentation.occluder_probability > 0.0
        parts = ("rgb", "instance", "meta") if with_mask or pastes else ("rgb", "meta")
        record = self.scenes[s].load_scene(j, parts=parts)
        meta = record["meta"]
        obj = meta["objects"][o]
        rgb = record["rgb"]
        width = rgb.shape[1]
        box = np.asarray(obj["box"], dtype=np.float64)
        k = np.asarray(meta["K"], dtype=np.float64)
        rotation = np.asarray(obj["rotation"], dtype=np.float64)
        mirrored = False
        if self.augmentation is not None:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, index]))
            box = jitter_box(box, rng, self.augmentation.shift, self.augmentation.scale)
            if rng.random() < self.augmentation.mirror_probability and obj["model_id"] in self.mirror_symmetric_models:
                mirrored = True
                rgb = rgb[:, ::-1]
                if "instance" in record:
                    record["instance"] = record["instance"][:, ::-1]
                box = mirror_boxes(box, width)[0]
                k = mirror_intrinsics(k, width)
                rotation = mirror_rotations(rotation)[0]
        image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0)
        boxes = torch.as_tensor(box, dtype=torch.float32).view(1, 4)
        crop = crop_boxes(image, boxes, self.model.crop_size, self.model.crop_margin)[0]
        if self.augmentation is not None and self.augmentation.jitters_colour:
            crop = jitter_colour(crop, rng, self.augmentation)
        ray = crop_rays(boxes.double(), torch.as_tensor(k))[0]
        allocentric = ray_rotation(ray.view(1, 3))[0].numpy().T @ rotation
        target = encode_viewpoint(allocentric, self.model.bins)
        extra = {}
        if with_mask:
            visible = torch.from_numpy(np.ascontiguousarray(record["instance"] == obj["instance_id"])).float()[None]
            extra["mask"] = crop_boxes(visible, boxes, self.model.mask_size, self.model.crop_margin)[0, 0]
        if self.augmentation is not None and self.augmentation.erase_probability > 0.0:
            if rng.random() < self.augmentation.erase_probability:
                grid = self.model.mask_size if with_mask else self.model.crop_size
                crop, mask = erase_rectangle(crop, rng, self.augmentation.erase_area, grid, extra.get("mask"))
                if mask is not None:
                    extra["mask"] = mask
        if pastes and rng.random() < self.augmentation.occluder_probability:
            crop, mask = self._paste_other_object(crop, record, o, mirrored, image, rng, extra.get("mask"))
            if mask is not None:
                extra["mask"] = mask
        return {
            "crop": crop, "label": int(obj["label"]), "ray": ray.float(),
            "bins": torch.from_numpy(target.bins), "offsets": torch.from_numpy(target.offsets),
            "rotation": torch.from_numpy(allocentric).float(), "symmetry": obj["symmetry"],
            "model_id": obj["model_id"], "category": obj["category"], "occluded": bool(obj["occluded"]),
            "truncated": bool(obj["truncated"]), "mirrored": mirrored, "scene": j, "object": o, **extra,
        }

    def _paste_other_object(self, crop: Tensor, record: dict[str, Any], o: int, mirrored: bool, image: Tensor,
                            rng: np.random.Generator, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Occluder pasting onto ``crop``, object ``o`` of a loaded scene ``record`` (``image`` its (3, H, W)
        RGB, mirrored when ``mirrored``): another of the scene's objects with visible pixels, drawn
        uniformly, cut around its box (no margin) into a square of area U(occluder_area) x the
        crop's and pasted by :func:`paste_occluder`; the crop unchanged when there is none."""
        objects = record["meta"]["objects"]
        others = [p for p, obj in enumerate(objects) if p != o and obj["visible_pixels"] > 0]
        side = int(round(self.model.crop_size * math.sqrt(rng.uniform(*self.augmentation.occluder_area))))
        if not others or side < 1:
            return crop, mask
        other = objects[others[int(rng.integers(len(others)))]]
        box = np.asarray(other["box"], dtype=np.float64)
        if mirrored:
            box = mirror_boxes(box, image.shape[-1])[0]
        boxes = torch.as_tensor(box, dtype=torch.float32).view(1, 4)
        visible = torch.from_numpy(np.ascontiguousarray(record["instance"] == other["instance_id"])).float()[None]
        occluder = crop_boxes(image, boxes, side, 0.0)[0]
        return paste_occluder(crop, occluder, crop_boxes(visible, boxes, side, 0.0)[0, 0], rng, mask)


def collate_crops(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors, list the rest."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if isinstance(values[0], Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], (bool, int)):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out


def mirror_symmetric_model_ids(library) -> set[str]:
    """Ids of the library's models that are their own left-right mirror image
    (:func:`~scene3d_ros.mirror.mirror_asymmetry` below ``MIRROR_SYMMETRY_TOLERANCE``)."""
    return {m.model_id for m in library.models if mirror_asymmetry(library.mesh(m.model_id)) < MIRROR_SYMMETRY_TOLERANCE}
