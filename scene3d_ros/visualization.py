"""Pictures people look at: instance overlays, depth colouring, boxes and pose axes.

All images are HxWx3 uint8 RGB. Axes of object frames are drawn red = +x (front),
green = +y (left), blue = +z (up), projected with the camera intrinsics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

from scene3d_ros.geometry import CameraIntrinsics, quaternion_to_matrix

if TYPE_CHECKING:
    from scene3d_ros.pipeline import DetectedObject

_PALETTE = (np.array(colormaps["tab20"].colors) * 255).astype(np.uint8)


def instance_colour(k: int) -> tuple[int, int, int]:
    """A stable distinct colour for instance ``k``."""
    return tuple(int(c) for c in _PALETTE[k % len(_PALETTE)])


def colourise_instances(instance: np.ndarray, background: int = -1) -> np.ndarray:
    """Instance map (HxW, ``background`` where empty) -> RGB with one colour per instance, black background."""
    out = np.zeros(instance.shape + (3,), np.uint8)
    valid = instance != background
    out[valid] = _PALETTE[instance[valid] % len(_PALETTE)]
    return out


def overlay_instances(rgb: np.ndarray, instance: np.ndarray, alpha: float = 0.5, background: int = -1) -> np.ndarray:
    """Blend instance colours over ``rgb`` where instances are."""
    colours = colourise_instances(instance, background).astype(np.float32)
    out = rgb.astype(np.float32)
    mask = instance != background
    out[mask] = (1 - alpha) * out[mask] + alpha * colours[mask]
    return out.astype(np.uint8)


def colourise_depth(depth_m: np.ndarray, cmap: str = "turbo") -> np.ndarray:
    """Depth (metres, 0 = no data) -> RGB with a log scale over the valid range, black where empty."""
    valid = depth_m > 0
    out = np.zeros(depth_m.shape + (3,), np.uint8)
    if not valid.any():
        return out
    log_depth = np.log(depth_m[valid])
    low, high = log_depth.min(), log_depth.max()
    scaled = (log_depth - low) / max(high - low, 1e-6)
    out[valid] = (colormaps[cmap](scaled)[:, :3] * 255).astype(np.uint8)
    return out


def draw_detections(rgb: np.ndarray, boxes: Sequence[Sequence[float]], labels: Sequence[str],
                    quaternions: Sequence[Sequence[float]] | None = None,
                    translations: Sequence[Sequence[float]] | None = None,
                    intrinsics: CameraIntrinsics | None = None, axis_length_m: Sequence[float] | None = None) -> np.ndarray:
    """Boxes with labels and, when poses and intrinsics are given, the object axes."""
    image = Image.fromarray(np.ascontiguousarray(rgb))
    draw = ImageDraw.Draw(image)
    for k, (box, label) in enumerate(zip(boxes, labels, strict=True)):
        colour = instance_colour(k)
        x0, y0, x1, y1 = (float(v) for v in box)
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=2)
        draw.text((x0 + 3, y0 + 2), label, fill=colour)
        if quaternions is None or translations is None or intrinsics is None:
            continue
        t = np.asarray(translations[k], dtype=np.float64)
        if t[2] <= 0:
            continue
        rotation = quaternion_to_matrix(np.asarray(quaternions[k], dtype=np.float64))
        length = axis_length_m[k] if axis_length_m is not None else 0.2 * t[2]
        points = np.vstack([t, t + rotation.T[0] * length, t + rotation.T[1] * length, t + rotation.T[2] * length])
        if np.any(points[:, 2] <= 1e-3):
            continue
        uv = intrinsics.project(points)
        for axis, axis_colour in enumerate(((255, 40, 40), (40, 220, 40), (60, 90, 255))):
            draw.line([tuple(uv[0]), tuple(uv[axis + 1])], fill=axis_colour, width=2)
    return np.asarray(image)


def draw_objects(rgb: np.ndarray, objects: Sequence[DetectedObject], intrinsics: CameraIntrinsics) -> np.ndarray:
    """The pipeline's objects over ``rgb``: masks (highest score on top), boxes with category and
    score, and object axes half the object's largest size long."""
    instance = np.full(rgb.shape[:2], -1, np.int32)
    for k in reversed(range(len(objects))):
        if objects[k].mask is not None:
            instance[objects[k].mask] = k
    return draw_detections(overlay_instances(rgb, instance), [o.box for o in objects],
                           [f"{o.category} {o.score:.2f}" for o in objects], [o.quaternion for o in objects],
                           [o.translation for o in objects], intrinsics, [0.5 * float(max(o.size)) for o in objects])


def side_by_side(images: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Concatenate equally tall RGB images horizontally with white gaps."""
    height = max(im.shape[0] for im in images)
    parts = []
    for k, im in enumerate(images):
        if im.shape[0] != height:
            im = np.asarray(Image.fromarray(im).resize((round(im.shape[1] * height / im.shape[0]), height)))
        parts.append(im)
        if k < len(images) - 1:
            parts.append(np.full((height, gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=1)
