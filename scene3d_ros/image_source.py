"""Image files with their camera intrinsics: a folder of photos, or the real sample photos.

A folder holds ``*.png``/``*.jpg``/``*.jpeg`` files (read in name order). Its intrinsics come from
an optional ``intrinsics.yaml`` in the folder (``fx``, ``fy``, ``cx``, ``cy`` in pixels, for every
image of the folder, which must then share one size) or, without it, from a horizontal field of
view (a guess; the principal point is the image centre).

The sample photos are the real Middlebury stereo pair that ships with scikit-image
(``motorcycle_left/right.png``, 741x500, calibrated: f = 994.978 px; a Pascal3D+ motorbike).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError

from scene3d_ros.geometry import CameraIntrinsics

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
INTRINSICS_FILE = "intrinsics.yaml"
MAX_IMAGE_PIXELS = 4096 * 4096
# the down-sampled Middlebury 2014 calibration given in skimage.data.stereo_motorcycle's documentation
MOTORCYCLE_INTRINSICS = {"fx": 994.978, "fy": 994.978, "cx": 311.193, "cy": 254.877}


class ImageSourceError(ValueError):
    """A folder without usable images, an unreadable image or a bad intrinsics file."""


@dataclass(frozen=True)
class PhotoFile:
    """One image file and the intrinsics to use with it (pixels; ``calibrated``: from a file)."""

    path: Path
    intrinsics: CameraIntrinsics
    calibrated: bool

    def read_rgb(self) -> np.ndarray:
        """The image as HxWx3 uint8 RGB; ImageSourceError when it cannot be read or changed size."""
        try:
            with Image.open(self.path) as image:
                rgb = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise ImageSourceError(f"cannot read image {self.path}: {exc}") from exc
        if (rgb.shape[1], rgb.shape[0]) != (self.intrinsics.width, self.intrinsics.height):
            raise ImageSourceError(f"{self.path} is now {rgb.shape[1]}x{rgb.shape[0]}, was "
                                   f"{self.intrinsics.width}x{self.intrinsics.height}")
        return rgb


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the header, None for unreadable or out-of-range files."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError):
        return None
    if width < 1 or height < 1 or width * height > MAX_IMAGE_PIXELS:
        return None
    return width, height


def _intrinsics_from_file(path: Path, width: int, height: int) -> CameraIntrinsics:
    try:
        values = yaml.safe_load(path.read_text())
        return CameraIntrinsics(float(values["fx"]), float(values["fy"]), float(values["cx"]),
                                float(values["cy"]), width, height)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ImageSourceError(f"bad {path} (needs fx, fy, cx, cy in pixels): {exc}") from exc


def photos_in_folder(folder: str | Path, hfov_deg: float = 60.0) -> tuple[list[PhotoFile], list[str]]:
    """The readable images of ``folder`` (name order) and a list of skipped files with the reason.

    Raises ImageSourceError for a missing folder, a folder without a usable image, a bad
    ``intrinsics.yaml`` or, with that file, images of different sizes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageSourceError(f"no image folder {folder}")
    sized, skipped = [], []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        size = _image_size(path)
        if size is None:
            skipped.append(f"{path.name}: not a readable image of 1..{MAX_IMAGE_PIXELS} pixels")
        else:
            sized.append((path, size))
    if not sized:
        raise ImageSourceError(f"no readable {'/'.join(IMAGE_SUFFIXES)} image in {folder}"
                               + (f" (skipped: {'; '.join(skipped)})" if skipped else ""))
    calibration = folder / INTRINSICS_FILE
    if not calibration.is_file():
        return [PhotoFile(path, CameraIntrinsics.from_fov(*size, hfov_deg), False) for path, size in sized], skipped
    (first, first_size), intrinsics = sized[0], _intrinsics_from_file(calibration, *sized[0][1])
    for path, size in sized[1:]:
        if size != first_size:
            raise ImageSourceError(f"{calibration} holds one camera but {path.name} is {size[0]}x{size[1]} "
                                   f"and {first.name} {first_size[0]}x{first_size[1]}")
    return [PhotoFile(path, intrinsics, True) for path, _ in sized], skipped


def sample_photos() -> list[PhotoFile]:
    """The real sample photos that ship with scikit-image, with their calibration."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    k = MOTORCYCLE_INTRINSICS
    return [PhotoFile(folder / name, CameraIntrinsics(k["fx"], k["fy"], k["cx"], k["cy"], 741, 500), True)
            for name in ("motorcycle_left.png", "motorcycle_right.png")]
