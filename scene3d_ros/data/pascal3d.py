"""Loader for the real Pascal3D+ (release 1.1) dataset layout, in scene3d_ros conventions.

Expected layout under ``root`` (the ``PASCAL3D+_release1.1`` folder, or a folder containing it)::

    Annotations/{cat}_pascal/{id}.mat     Annotations/{cat}_imagenet/{id}.mat
    Images/{cat}_pascal/{id}.jpg          Images/{cat}_imagenet/{id}.JPEG
    CAD/{cat}.mat, CAD/{cat}/01.off ...   (not read here; ``cad_index`` names the model)
    Image_sets/{cat}_imagenet_{train,val}.txt                  (ImageNet part: one id a line)
    PASCAL/VOCdevkit/VOC2012/ImageSets/Main/{cat}_{train,val}.txt  (Pascal part: "id label";
                                         ``VOCdevkit/VOC2012/...`` directly under root works too)

Conventions of the Pascal3D+ toolkit
------------------------------------
Followed from the toolkit's ``project_3d.m`` (Yu Xiang; the same function ships in the Pascal3D+
release, in github.com/yuxng/Pose_Dataset ``segmentation/project_3d.m`` and ``view_estimator.m``
that produced the annotations, and in github.com/yuxng/ObjectNet3D_toolbox ``project_3d.m``; the
Python port github.com/wkentaro/pascal3d ``pascal3d/utils/geometry.py`` is identical). With
a = azimuth, e = elevation, theta = in-plane rotation (radians) and d = distance::

    C  = d * [cos(e) sin(a), -cos(e) cos(a), sin(e)]       camera centre in CAD coordinates
    a' = -a,  e' = -(pi/2 - e)
    R  = Rx(e') * Rz(a')                                   CAD -> Pascal camera
    P  = [M f 0; 0 M f 0; 0 0 -1] * [R, -R C]              M = viewport (3000), f = focal (1)
    x  = P [X; 1];  (u', v') = (x1 / x3, x2 / x3)
    (u'', v'') = R2d(theta) (u', v'),  R2d(t) = [cos t, -sin t; sin t, cos t]
    pixel = (u'' + px, -v'' + py)                          MATLAB pixel coordinates (1-based)

So the Pascal camera has x right, y up and looks along its -z; ``R C = (0, 0, -d)`` (the camera
looks at the CAD origin). ``C`` is MATLAB's ``view(az, el)`` camera: azimuth 0 puts the camera on
the CAD model's -y side, azimuth 90 on its +x side, elevation > 0 above it.

Conversion to scene3d_ros (``geometry.py``: object -> optical camera, x right, y down, z forward)
----------------------------------------------------------------------------------------------
1. Camera flip: optical = ``diag(1, -1, -1)`` @ Pascal camera (y up -> down, -z view -> +z).
2. In-plane: with (a, b) = M f (x / z, y / z) in the optical frame, the toolkit's pixel offset
   from (px, py) is ``R2d(-theta) (a, b)``, i.e. the optical-frame rotation ``Rz(-theta)`` about
   the optical axis (z is unchanged, so the pinhole projection commutes with it).
3. CAD -> canonical object frame: Pascal3D+ CAD models are z-up; the toolkit's horizontal flip
   rule (azimuth -> 360 - azimuth, theta -> -theta) makes x = 0 the left/right symmetry plane,
   and Pascal3D+ defines azimuth 0 as the frontal view, so the camera at -y sees the front:
   CAD -y = front, CAD +x = the object's left, CAD +z = up. Hence
   ``p_canonical = PASCAL3D_CAD_TO_CANONICAL @ p_cad`` with ``PASCAL3D_CAD_TO_CANONICAL = Rz(+90 deg)``.
   (Assumption to check on real data: the CAD files are not available here; tvmonitor and
   chair azimuths should cluster near 0 if the front is -y. Only this constant would change.)

Result: ``R_ours = Rz(-theta) @ diag(1, -1, -1) @ R_pascal(a, e) @ PASCAL3D_CAD_TO_CANONICAL.T``,
which equals ``geometry.viewpoint_rotation(azimuth, elevation, -theta)``. So
``rotation_to_viewpoint(R_ours) == (pascal_azimuth mod 360, pascal_elevation, -pascal_theta)``:
same azimuth (both 0 = front, 90 = the object's left side, counter-clockwise seen from above),
same elevation, in-plane angle negated (Pascal theta turns the image counter-clockwise, ours
clockwise).

Translation: metric translation is NOT available from Pascal3D+. ``distance`` is in CAD units and
the camera of the projection formula is a virtual one (focal length ``focal * viewport`` pixels,
principal point (px, py) where the CAD origin projects), not the photo's real camera. With that
virtual camera, the CAD origin sits at ``(0, 0, distance)`` in the optical frame (see
:func:`pascal3d_translation` and :func:`pascal3d_virtual_camera`). What Pascal3D+ does give about
position is the 2D box and the projected origin (px, py).

Pixel coordinates: MATLAB puts the centre of pixel (1, 1) at (1, 1); scene3d_ros puts the centre
of 0-based pixel (u, v) at (u + 0.5, v + 0.5) (``CameraIntrinsics``). So ours = MATLAB - 0.5: the
1-based inclusive box [x1 y1 x2 y2] becomes the pixel-edge box (x1 - 1, y1 - 1, x2, y2) and the
principal point becomes (px - 0.5, py - 0.5).

Pascal3D+ has no instance masks: :meth:`Pascal3DDataset.to_torch` omits the ``masks`` key.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from scene3d_ros import CATEGORIES
from scene3d_ros.geometry import CameraIntrinsics, matrix_to_quaternion, rotation_about_up

SOURCES = ("pascal", "imagenet")
SPLITS = ("train", "val")
RELEASE_FOLDER = "PASCAL3D+_release1.1"

DEFAULT_VIEWPORT = 3000.0
"""The toolkit's viewport M (pixels per unit focal length); every release annotation uses 3000."""
DEFAULT_FOCAL = 1.0
"""The toolkit's focal length f (fixed to 1 by the annotation optimiser)."""

PASCAL3D_CAD_TO_CANONICAL = rotation_about_up(np.pi / 2.0)
"""Fixed rotation ``p_canonical = PASCAL3D_CAD_TO_CANONICAL @ p_cad``: CAD -y (front) -> +x,
CAD +x (the object's left) -> +y, CAD +z (up) -> +z. See the module docstring."""

_OPTICAL_FROM_PASCAL_CAMERA = np.diag([1.0, -1.0, -1.0])
_VOC_SPLIT_DIRS = (
    Path("PASCAL") / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main",
    Path("VOCdevkit") / "VOC2012" / "ImageSets" / "Main",
)
_IMAGE_EXTENSIONS = (".jpg", ".JPEG", ".jpeg", ".JPG", ".png")


# --------------------------------------------------------------------------- conventions
def _rot_z(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_x(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def pascal3d_camera_rotation(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """The toolkit's own CAD -> Pascal-camera rotation ``R = Rx(-(pi/2 - e)) @ Rz(-a)`` (3x3).

    The Pascal camera has x right, y up and looks along its -z; input angles in degrees.
    """
    a = np.radians(float(azimuth_deg))
    e = np.radians(float(elevation_deg))
    return _rot_x(-(np.pi / 2.0 - e)) @ _rot_z(-a)


def pascal3d_viewpoint_to_rotation(azimuth_deg: float, elevation_deg: float, theta_deg: float) -> np.ndarray:
    """Object -> optical-camera rotation (3x3) in scene3d_ros conventions from a Pascal3D+ viewpoint.

    The object frame is our canonical one (+x front, +y left, +z up), related to the Pascal3D+
    CAD frame by :data:`PASCAL3D_CAD_TO_CANONICAL`; the camera frame is optical (x right, y down,
    z forward). Composition (module docstring): in-plane ``Rz(-theta)``, camera flip
    ``diag(1, -1, -1)``, the toolkit's ``R(a, e)``, then the CAD frame. Equals
    ``geometry.viewpoint_rotation(azimuth, elevation, -theta)``, so ``rotation_to_viewpoint``
    returns (azimuth mod 360, elevation, -theta). Angles in degrees.
    """
    angles = (azimuth_deg, elevation_deg, theta_deg)
    if not all(np.isfinite(float(v)) for v in angles):
        raise ValueError(f"Pascal3D+ viewpoint angles must be finite degrees, got {angles}")
    r_cad_to_optical = (
        _rot_z(-np.radians(float(theta_deg)))
        @ _OPTICAL_FROM_PASCAL_CAMERA
        @ pascal3d_camera_rotation(azimuth_deg, elevation_deg)
    )
    return r_cad_to_optical @ PASCAL3D_CAD_TO_CANONICAL.T


def pascal3d_translation(distance: float, metres_per_cad_unit: float = 1.0) -> np.ndarray:
    """Position (3,) of the CAD-model origin in the optical frame of the toolkit's virtual camera.

    The toolkit places the camera at distance ``distance`` (CAD units) from the CAD origin, looking
    at it, and shifts the principal point to (px, py) where the origin projects; so the origin is
    at ``(0, 0, distance)``. The result is ``(0, 0, distance * metres_per_cad_unit)``: with the
    default 1.0 it stays in CAD units. This is NOT a metric translation in the photo's real camera
    (Pascal3D+ has none): it is consistent only with :func:`pascal3d_virtual_camera` (focal length
    ``focal * viewport`` pixels). Pass a per-category scale (metres per CAD unit) to get metres in
    that virtual camera. It locates the CAD origin, not the centre of the model's bounding box.
    """
    distance = float(distance)
    scale = float(metres_per_cad_unit)
    if not np.isfinite(distance) or distance <= 0.0:
        raise ValueError(f"Pascal3D+ distance must be > 0 CAD units (0 means a coarse viewpoint), got {distance}")
    if not np.isfinite(scale) or scale <= 0.0:
        raise ValueError(f"metres_per_cad_unit must be > 0, got {scale}")
    return np.array([0.0, 0.0, distance * scale])


def pascal3d_virtual_camera(
    px: float, py: float, width: int, height: int, focal: float = DEFAULT_FOCAL, viewport: float = DEFAULT_VIEWPORT
) -> CameraIntrinsics:
    """The toolkit's virtual pinhole camera in scene3d_ros pixel coordinates.

    fx = fy = ``focal * viewport`` pixels; principal point ``(px - 0.5, py - 0.5)`` (Pascal's
    (px, py) are MATLAB 1-based coordinates, see module docstring). Together with
    :func:`pascal3d_viewpoint_to_rotation` and :func:`pascal3d_translation` it reproduces the
    toolkit's ``project_3d`` pixel for pixel.
    """
    f = float(focal) * float(viewport)
    return CameraIntrinsics(f, f, float(px) - 0.5, float(py) - 0.5, int(width), int(height))


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Pascal3DObject:
    """One annotated object with a fine viewpoint.

    ``bbox`` is (x0, y0, x1, y1) in pixel edges, 0-based (converted from the 1-based inclusive
    Pascal box: x0 = x1_mat - 1, x1 = x2_mat). ``rotation`` (object -> optical camera, canonical
    object frame) and ``quaternion`` (w, x, y, z; w >= 0) come from
    :func:`pascal3d_viewpoint_to_rotation`. Angles are the raw Pascal3D+ values in degrees,
    ``distance`` in CAD units, ``px``/``py`` the raw Pascal principal point (MATLAB 1-based
    pixels), ``focal``/``viewport`` the raw toolkit camera values.
    """

    category: str
    bbox: tuple[float, float, float, float]
    occluded: bool
    truncated: bool
    difficult: bool
    cad_index: int
    model_id: str
    azimuth: float
    elevation: float
    theta: float
    distance: float
    rotation: np.ndarray
    quaternion: np.ndarray
    px: float
    py: float
    focal: float = DEFAULT_FOCAL
    viewport: float = DEFAULT_VIEWPORT

    @property
    def label(self) -> int:
        """Detector class id, 1-based index into ``CATEGORIES``."""
        return CATEGORIES.index(self.category) + 1

    def translation(self, metres_per_cad_unit: float = 1.0) -> np.ndarray:
        """CAD origin in the virtual camera frame; see :func:`pascal3d_translation` (not metric)."""
        return pascal3d_translation(self.distance, metres_per_cad_unit)

    def virtual_camera(self, width: int, height: int) -> CameraIntrinsics:
        """The toolkit's virtual camera for this object; see :func:`pascal3d_virtual_camera`."""
        return pascal3d_virtual_camera(self.px, self.py, width, height, self.focal, self.viewport)


@dataclass(frozen=True)
class Pascal3DRecord:
    """One image: path, size in pixels, its usable objects and where it comes from."""

    image_path: Path
    width: int
    height: int
    objects: tuple[Pascal3DObject, ...]
    source: str  # "pascal" or "imagenet"
    image_id: str


# --------------------------------------------------------------------------- .mat parsing
def _as_list(value: Any) -> list:
    """MATLAB struct arrays load as ndarrays of mat_struct, a single struct as the struct itself."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _field(struct: Any, name: str, default: Any = None) -> Any:
    """Field of a loadmat mat_struct; missing or empty (``[]`` in MATLAB) gives ``default``."""
    value = getattr(struct, name, default)
    if isinstance(value, np.ndarray) and value.size == 0:
        return default
    return value


def _scalar(struct: Any, name: str, default: float | None = None) -> float | None:
    value = _field(struct, name, None)
    if value is None:
        return default
    return float(np.asarray(value, dtype=np.float64).ravel()[0])


def _parse_viewpoint(obj: Any) -> tuple[dict[str, float] | None, str | None]:
    """Fine viewpoint fields of one object, or (None, skip reason)."""
    viewpoint = _field(obj, "viewpoint", None)
    if viewpoint is None or not hasattr(viewpoint, "_fieldnames"):
        return None, "no_viewpoint"
    azimuth = _scalar(viewpoint, "azimuth")
    elevation = _scalar(viewpoint, "elevation")
    distance = _scalar(viewpoint, "distance", 0.0)
    if azimuth is None or elevation is None or distance is None or distance <= 0.0:
        # The toolkit stores distance = 0 (and only azimuth_coarse/elevation_coarse) when the
        # annotator gave a coarse viewpoint without enough anchor points for a fine one.
        return None, "coarse_viewpoint_only"
    px, py = _scalar(viewpoint, "px"), _scalar(viewpoint, "py")
    if px is None or py is None:
        return None, "no_principal_point"
    return {
        "azimuth": azimuth,
        "elevation": elevation,
        "theta": _scalar(viewpoint, "theta", 0.0),
        "distance": distance,
        "px": px,
        "py": py,
        "focal": _scalar(viewpoint, "focal", DEFAULT_FOCAL),
        "viewport": _scalar(viewpoint, "viewport", DEFAULT_VIEWPORT),
    }, None


def _parse_object(obj: Any, category: str, view: dict[str, float]) -> Pascal3DObject:
    """Object of ``category`` with the fine viewpoint ``view`` from :func:`_parse_viewpoint`."""
    bbox_mat = np.asarray(_field(obj, "bbox", np.zeros(0)), dtype=np.float64).ravel()
    if bbox_mat.shape != (4,):
        raise ValueError(f"Pascal3D+ bbox must have 4 values [x1 y1 x2 y2], got {bbox_mat}")
    x1, y1, x2, y2 = (float(v) for v in bbox_mat)
    cad_index = int(_scalar(obj, "cad_index", 0))
    if cad_index < 1:
        raise ValueError(f"Pascal3D+ cad_index is 1-based, got {cad_index} for a {category}")
    rotation = pascal3d_viewpoint_to_rotation(view["azimuth"], view["elevation"], view["theta"])
    return Pascal3DObject(
        category=category,
        bbox=(x1 - 1.0, y1 - 1.0, x2, y2),
        occluded=bool(_scalar(obj, "occluded", 0.0)),
        truncated=bool(_scalar(obj, "truncated", 0.0)),
        difficult=bool(_scalar(obj, "difficult", 0.0)),
        cad_index=cad_index,
        model_id=f"{category}_pascal3d_{cad_index:02d}",
        azimuth=view["azimuth"],
        elevation=view["elevation"],
        theta=view["theta"],
        distance=view["distance"],
        rotation=rotation,
        quaternion=matrix_to_quaternion(rotation),
        px=view["px"],
        py=view["py"],
        focal=view["focal"],
        viewport=view["viewport"],
    )


def _image_size(record: Any) -> tuple[int, int]:
    size = _field(record, "size", None)
    if size is not None and hasattr(size, "width"):
        return int(_scalar(size, "width")), int(_scalar(size, "height"))
    imgsize = _field(record, "imgsize", None)
    if imgsize is not None:
        values = np.asarray(imgsize).ravel()
        return int(values[0]), int(values[1])
    raise ValueError("Pascal3D+ record has neither size.width/height nor imgsize")


# --------------------------------------------------------------------------- dataset
class Pascal3DDataset:
    """Pascal3D+ images with fine viewpoints, as :class:`Pascal3DRecord` s (all loaded at init).

    ``root``: the ``PASCAL3D+_release1.1`` folder (or its parent). ``split``: "train" or "val"
    (VOC ImageSets for the Pascal part, ``Image_sets`` for ImageNet; if a category's split file
    is missing, all its annotation files are used, with a warning). ``categories``: subset of
    ``CATEGORIES`` (labels stay the global 1-based ``CATEGORIES`` index). ``sources``: "pascal"
    and/or "imagenet". An image annotated in several ``{cat}_pascal`` folders becomes one record
    with each category's objects taken from its own folder's file (objects in ``CATEGORIES``
    order, image from the first such folder). Records are ordered by source, then image id.

    Skipped objects are counted by reason in ``skipped_objects``: ``class_not_in_categories``,
    ``in_other_category_file`` (counted in the file where it is not read),
    ``no_own_category_file`` (a requested category's object in an image not annotated or listed
    under that category), ``difficult``, ``no_viewpoint``, ``coarse_viewpoint_only``,
    ``no_principal_point``. Skipped images in ``skipped_images``: ``missing_annotation_file``
    (listed in a split file, no .mat), ``no_usable_objects``. Difficult objects are dropped (not
    kept as "ignore" boxes) unless ``include_difficult``. Requested ``Annotations/{cat}_{source}``
    folders that do not exist are listed in ``missing_annotation_folders``; if none exists, a
    FileNotFoundError is raised.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        categories: Sequence[str] = CATEGORIES,
        sources: Sequence[str] = ("pascal",),
        include_difficult: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        categories = tuple(categories)
        unknown = [c for c in categories if c not in CATEGORIES]
        if unknown or not categories:
            raise ValueError(f"categories must be a non-empty subset of {CATEGORIES}, got {categories}")
        sources = tuple(sources)
        if not sources or any(s not in SOURCES for s in sources):
            raise ValueError(f"sources must be a non-empty subset of {SOURCES}, got {sources}")

        self.root = self._resolve_root(Path(root))
        self.split = split
        self.categories = categories
        self.sources = sources
        self.include_difficult = include_difficult
        self.skipped_objects: Counter[str] = Counter()
        self.skipped_images: Counter[str] = Counter()
        self.missing_annotation_folders: tuple[Path, ...] = tuple(
            self.root / "Annotations" / f"{c}_{s}"
            for s in sources
            for c in categories
            if not (self.root / "Annotations" / f"{c}_{s}").is_dir()
        )
        if len(self.missing_annotation_folders) == len(sources) * len(categories):
            raise FileNotFoundError(
                f"no Pascal3D+ annotation folder for categories {categories} and sources {sources} "
                f"under {self.root / 'Annotations'} (expected e.g. {self.missing_annotation_folders[0]})"
            )

        # (source, image id) -> [(category, annotation file)] in category order
        index: dict[tuple[str, str], list[tuple[str, Path]]] = {}
        for source in sources:
            for category in categories:
                folder = self.root / "Annotations" / f"{category}_{source}"
                for image_id in self._split_ids(category, source, folder):
                    path = folder / f"{image_id}.mat"
                    if not path.is_file():
                        self.skipped_images["missing_annotation_file"] += 1
                        continue
                    index.setdefault((source, image_id), []).append((category, path))

        records = []
        for source in sources:  # deterministic order: by source, then image id
            for (src, image_id), files in sorted(index.items()):
                if src != source:
                    continue
                record = self._load_record(source, image_id, files)
                if record is None:
                    self.skipped_images["no_usable_objects"] += 1
                else:
                    records.append(record)
        self.records: tuple[Pascal3DRecord, ...] = tuple(records)

    # ------------------------------------------------------------------ layout
    @staticmethod
    def _resolve_root(root: Path) -> Path:
        if (root / "Annotations").is_dir():
            return root
        if (root / RELEASE_FOLDER / "Annotations").is_dir():
            return root / RELEASE_FOLDER
        raise FileNotFoundError(
            f"not a Pascal3D+ root: expected the folder {root / 'Annotations'} (with "
            f"Annotations/{{cat}}_pascal/*.mat, Images/, Image_sets/) or {root / RELEASE_FOLDER / 'Annotations'}"
        )

    def _split_file(self, category: str, source: str) -> Path | None:
        if source == "imagenet":
            path = self.root / "Image_sets" / f"{category}_imagenet_{self.split}.txt"
            return path if path.is_file() else None
        for folder in _VOC_SPLIT_DIRS:
            path = self.root / folder / f"{category}_{self.split}.txt"
            if path.is_file():
                return path
        return None

    def _split_ids(self, category: str, source: str, folder: Path) -> list[str]:
        split_file = self._split_file(category, source)
        if split_file is None:
            if not folder.is_dir():
                return []  # absent from this copy of the dataset: see missing_annotation_folders
            warnings.warn(
                f"Pascal3D+ split file for {category}/{source}/{self.split} not found "
                f"(looked in Image_sets/ and {', '.join(str(d) for d in _VOC_SPLIT_DIRS)}); "
                f"using all {folder} annotations",
                UserWarning,
                stacklevel=3,
            )
            return sorted(p.stem for p in folder.glob("*.mat"))
        ids = []
        for line in split_file.read_text().splitlines():
            parts = line.split()
            if not parts:
                continue
            # VOC class files: "id label" with label -1 = class absent from the image
            if len(parts) > 1 and parts[1] == "-1":
                continue
            ids.append(parts[0])
        return ids

    def _image_path(self, source: str, files: Iterable[tuple[str, Path]], filename: str, image_id: str) -> Path:
        candidates = []
        for category, _ in files:
            folder = self.root / "Images" / f"{category}_{source}"
            if filename:
                candidates.append(folder / filename)
            candidates.extend(folder / f"{image_id}{ext}" for ext in _IMAGE_EXTENSIONS)
        for path in candidates:
            if path.is_file():
                return path
        return candidates[0]  # reported by to_torch when the image is actually needed

    def _load_record(self, source: str, image_id: str, files: list[tuple[str, Path]]) -> Pascal3DRecord | None:
        objects: list[Pascal3DObject] = []
        width = height = None
        filename = ""
        for category, path in files:
            record = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)["record"]
            if width is None:
                width, height = _image_size(record)
                filename = str(_field(record, "filename", "") or "")
            for obj in _as_list(_field(record, "objects", None)):
                cls = str(_field(obj, "class", ""))
                if cls != category:
                    # each category's objects are read from that category's own folder
                    if cls not in self.categories:
                        self.skipped_objects["class_not_in_categories"] += 1
                    elif any(c == cls for c, _ in files):
                        self.skipped_objects["in_other_category_file"] += 1
                    else:
                        self.skipped_objects["no_own_category_file"] += 1
                    continue
                if bool(_scalar(obj, "difficult", 0.0)) and not self.include_difficult:
                    self.skipped_objects["difficult"] += 1
                    continue
                view, reason = _parse_viewpoint(obj)
                if view is None:
                    self.skipped_objects[str(reason)] += 1
                    continue
                objects.append(_parse_object(obj, category, view))
        if not objects:
            return None
        return Pascal3DRecord(
            image_path=self._image_path(source, files, filename, image_id),
            width=int(width),
            height=int(height),
            objects=tuple(objects),
            source=source,
            image_id=image_id,
        )

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Pascal3DRecord:
        if not -len(self.records) <= index < len(self.records):
            raise IndexError(f"index {index} out of range for {len(self.records)} Pascal3D+ records")
        return self.records[index]

    def to_torch(self, index: int) -> tuple[Any, dict[str, Any]]:
        """(image 3xHxW float32 in [0, 1], target) in torchvision detection format.

        target: ``boxes`` (N, 4) float32 pixel edges x0 y0 x1 y1, ``labels`` (N,) int64 (1-based
        ``CATEGORIES`` index), ``quaternions`` (N, 4) float32 (w, x, y, z; w >= 0; object ->
        optical camera), ``model_ids`` list[str], ``occluded``/``truncated``/``difficult`` (N,)
        bool, ``image_id`` int64 scalar (the dataset index): the keys of the synthetic dataset's
        target that Pascal3D+ can fill. Absent: ``masks`` (Pascal3D+ has no instance masks),
        ``translations`` and ``K`` (no metric translation and no real intrinsics; the toolkit's
        virtual camera is per object, see :meth:`Pascal3DObject.virtual_camera`),
        ``visible_fraction``.
        """
        import torch
        from PIL import Image

        record = self[index]
        if not record.image_path.is_file():
            raise FileNotFoundError(f"Pascal3D+ image not found: {record.image_path}")
        with Image.open(record.image_path) as image:
            rgb = np.asarray(image.convert("RGB"))
        if rgb.shape[:2] != (record.height, record.width):
            raise ValueError(
                f"{record.image_path} is {rgb.shape[1]}x{rgb.shape[0]} pixels but its annotation says "
                f"{record.width}x{record.height}"
            )
        tensor = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div_(255.0)
        objects = record.objects
        target = {
            "boxes": torch.tensor([o.bbox for o in objects], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([o.label for o in objects], dtype=torch.int64),
            "quaternions": torch.tensor(np.stack([o.quaternion for o in objects]), dtype=torch.float32),
            "model_ids": [o.model_id for o in objects],
            "occluded": torch.tensor([o.occluded for o in objects], dtype=torch.bool),
            "truncated": torch.tensor([o.truncated for o in objects], dtype=torch.bool),
            "difficult": torch.tensor([o.difficult for o in objects], dtype=torch.bool),
            "image_id": torch.tensor(index if index >= 0 else index + len(self), dtype=torch.int64),
        }
        return tensor, target
