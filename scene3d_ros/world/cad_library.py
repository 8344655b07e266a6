"""The CAD library: procedural and shipped real meshes of the 12 Pascal3D+ categories.

A library is a folder holding ``library.json`` and ``meshes/<category>/<model_id>.obj``. Every
mesh is stored in **metres** in its category's **canonical object frame** (the
:mod:`scene3d_ros.geometry` convention): +x = front, +y = left, +z = up, origin at the centre of
the axis-aligned bounding box. The physical "front" of each category:

================  ==========================================================================
category          +x (front) points towards ...
================  ==========================================================================
aeroplane         the nose; wings span along y, the tail fin is at -x and points up
bicycle           the front wheel and handlebar; the wheels stand in the x-z plane
boat              the bow; the stern (transom, outboard motor) is at -x
bottle            nothing in particular (rotationally symmetric; a flat side for square ones)
bus               the driver's windscreen end, the direction of travel
car               the bonnet end, the direction of travel
chair             where the seated person looks; the backrest is at -x
diningtable       one of the long sides; the long axis lies along y (tables are symmetric)
motorbike         the front wheel; the rider faces +x
sofa              the seat front; the backrest is at -x and the sofa's length lies along y
train             the cab/nose end, the direction of travel (nominal for c2 coaches/wagons)
tvmonitor         the screen side; stands, housings and wall brackets are behind it (-x)
================  ==========================================================================

Each model declares its symmetry about +z (``geometry.SYMMETRIES``) only where the mesh has it:
bottles and round tables ``continuous``, square tables and square bottles ``c4``, rectangular
and oval tables, passenger coaches and tank wagons ``c2``, everything else ``none``.

``library.json`` lists every model with its identity, symmetry, source and licence, the mesh
file, its extents, face count and sha256; :attr:`CadLibrary.checksum` is the sha256 of
``library.json`` and so covers every mesh byte. Builds are deterministic: the same seed gives
byte-identical files.

**Extended libraries** (held-out models). ``build_cad_library(root, extra_instances=K)`` writes the
default library's models (byte-identical meshes and entries) plus ``K`` further procedural
instances of every sub-type, ``<category>_<subtype>_03`` and up (:func:`extra_procedural_model_ids`):
new shapes drawn from ``model_rng(seed, model_id)`` under new ids. Its ``library.json`` adds
``"extra_instances": K`` and ``"unseen_models"``, the sorted ids of those extra models: a network
trained on data of the default library never saw them, so ``evaluate`` reports them as the unseen
split (:attr:`CadLibrary.unseen_models`). The default library (``extra_instances`` 0) has neither
key, so its ``library.json`` and checksum are unchanged; an extended library must live in another
folder than the default one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from trimesh.exchange.obj import export_obj

from scene3d_ros import CATEGORIES
from scene3d_ros.geometry import SYMMETRIES
from scene3d_ros.paths import default_cad_library_dir
from scene3d_ros.world.procedural_models import (
    INSTANCES_PER_SUBTYPE,
    SUBTYPES,
    SubtypeSpec,
    build_procedural_model,
    procedural_model_id,
    procedural_model_ids,
)
from scene3d_ros.world.real_meshes import REAL_MESHES, build_real_mesh

LOGGER = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Layout of ``library.json``; :meth:`CadLibrary.load` rejects other versions."""
GENERATOR_VERSION = 3
"""Bump whenever a generator or a real-mesh transform changes the meshes (forces a rebuild)."""
LIBRARY_FILE = "library.json"
SOURCES = ("procedural", "pybullet_data")
PROCEDURAL_LICENSE = "Apache-2.0 (procedural, scene3d_ros)"
MAX_FACES = 4000
"""Face budget per mesh (fast ray casting); the tests hold every model to it."""

CATEGORY_SIZES: dict[str, tuple[str, float, float]] = {
    "aeroplane": ("footprint", 15.0, 70.0),   # length or wingspan, whichever is larger
    "bicycle": ("length", 1.3, 2.6),           # ~1.7 m; tandems up to 2.6 m
    "boat": ("length", 3.0, 40.0),
    "bottle": ("height", 0.2, 0.4),
    "bus": ("length", 10.0, 13.0),
    "car": ("length", 3.5, 5.5),
    "chair": ("height", 0.75, 1.15),
    "diningtable": ("height", 0.7, 0.8),
    "motorbike": ("length", 1.6, 2.6),         # ~2 m
    "sofa": ("width", 1.5, 2.5),
    "train": ("length", 15.0, 25.0),           # one car or locomotive
    "tvmonitor": ("width", 0.4, 1.2),
}
"""Real-world size range per category, metres: (measure, min, max). Measures: ``length`` = x
extent, ``width`` = y extent, ``height`` = z extent, ``footprint`` = max(x, y) extent."""

_MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MODEL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "model_id": str, "category": str, "subtype": str, "symmetry": str, "source": str, "license": str,
    "mesh_file": str, "extents": list, "mesh_sha256": str, "num_faces": int,
}


def category_size(extents: tuple[float, float, float] | np.ndarray, category: str) -> float:
    """The extent (metres) that :data:`CATEGORY_SIZES` constrains for ``category``."""
    measure = CATEGORY_SIZES[category][0]
    x, y, z = (float(v) for v in extents)
    return {"length": x, "width": y, "height": z, "footprint": max(x, y)}[measure]


class CadLibraryError(RuntimeError):
    """The CAD library is missing, corrupt or out of date; the message says how to rebuild it."""


def _rebuild_hint(root: Path) -> str:
    if root == default_cad_library_dir():
        return "run `build_cad_library --force` to rebuild"
    extra = _declared_extra_instances(root)
    extended = f" --extra-instances {extra}" if extra else ""
    return f"run `build_cad_library --output {root}{extended} --force` to rebuild"


@dataclass(frozen=True)
class CadModel:
    """One CAD model of the library; its mesh is in metres in the canonical object frame."""

    model_id: str        # stable, filesystem-safe, e.g. "chair_swivel_01", "car_pybullet_racecar"
    category: str        # one of scene3d_ros.CATEGORIES
    subtype: str         # e.g. "swivel"
    symmetry: str        # one of geometry.SYMMETRIES (about the object's +z axis)
    source: str          # "procedural" | "pybullet_data"
    license: str         # e.g. "Apache-2.0 (procedural, scene3d_ros)"
    mesh_file: str       # relative to the library root, e.g. "meshes/chair/chair_swivel_01.obj"
    extents: tuple[float, float, float]  # axis-aligned size in the canonical frame, metres (x, y, z)

    @property
    def shape_class(self) -> str:
        """``"<category>/<subtype>"``: the model's distinct shape (a sub-type's instances differ only
        in drawn size), the class of the crop viewpoint stage's shape head and of shape-level Top-1."""
        return f"{self.category}/{self.subtype}"


class CadLibrary:
    """A loaded, validated CAD library folder; meshes are read lazily and cached.

    ``extra_instances``: procedural instances per sub-type beyond the default library's (0 for the
    default library); ``unseen_models``: sorted ids of those extra models, which a network trained
    on the default library never saw (see the module doc, "Extended libraries").
    """

    def __init__(self, root: Path, models: tuple[CadModel, ...], *, seed: int, generator_version: int,
                 checksum: str, mesh_sha256: dict[str, str], num_faces: dict[str, int],
                 extra_instances: int = 0, unseen_models: tuple[str, ...] = ()) -> None:
        self.root = root
        self.models = tuple(sorted(models, key=lambda m: m.model_id))
        self.seed = seed
        self.generator_version = generator_version
        self.extra_instances = int(extra_instances)
        self.unseen_models = tuple(sorted(unseen_models))
        self._checksum = checksum
        self._by_id = {m.model_id: m for m in self.models}
        self._mesh_sha256 = dict(mesh_sha256)
        self._num_faces = dict(num_faces)
        self._meshes: dict[str, trimesh.Trimesh] = {}

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, root: str | Path | None = None) -> CadLibrary:
        """Open the library at ``root`` (default: ``paths.default_cad_library_dir()``).

        Validates ``library.json`` (JSON, format version, fields and their types, categories,
        symmetry names, sources, unique ids, mesh paths inside the root and present, the optional
        ``extra_instances`` and ``unseen_models`` of an extended library) and raises
        :class:`CadLibraryError` naming the problem and how to rebuild.
        """
        root = Path(root).expanduser() if root is not None else default_cad_library_dir()
        hint = _rebuild_hint(root)
        index = root / LIBRARY_FILE
        if not index.is_file():
            raise CadLibraryError(f"no CAD library at {root} ({LIBRARY_FILE} is missing); {hint}")
        raw = index.read_bytes()
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CadLibraryError(f"{index} is not valid JSON ({exc}); {hint}") from exc
        if not isinstance(data, dict):
            raise CadLibraryError(f"{index} must hold a JSON object, got {type(data).__name__}; {hint}")
        if data.get("format_version") != FORMAT_VERSION:
            raise CadLibraryError(f"{index} has format_version {data.get('format_version')!r}, "
                                  f"expected {FORMAT_VERSION}; {hint}")
        for key in ("generator_version", "seed"):
            if not isinstance(data.get(key), int) or isinstance(data.get(key), bool):
                raise CadLibraryError(f"{index}: {key!r} must be an integer, got {data.get(key)!r}; {hint}")
        entries = data.get("models")
        if not isinstance(entries, list) or not entries:
            raise CadLibraryError(f"{index}: 'models' must be a non-empty list; {hint}")
        models, sha, faces = [], {}, {}
        for i, entry in enumerate(entries):
            try:
                model = _parse_model(entry, root)
            except ValueError as exc:
                raise CadLibraryError(f"{index}: model #{i}: {exc}; {hint}") from exc
            if model.model_id in sha:
                raise CadLibraryError(f"{index}: duplicate model_id {model.model_id!r}; {hint}")
            models.append(model)
            sha[model.model_id] = entry["mesh_sha256"]
            faces[model.model_id] = entry["num_faces"]
        extra = data.get("extra_instances", 0)
        if not isinstance(extra, int) or isinstance(extra, bool) or extra < 0:
            raise CadLibraryError(f"{index}: 'extra_instances' must be an integer >= 0, got {extra!r}; {hint}")
        unseen = data.get("unseen_models", [])
        if not isinstance(unseen, list) or not all(isinstance(m, str) for m in unseen):
            raise CadLibraryError(f"{index}: 'unseen_models' must be a list of model ids, got {unseen!r}; {hint}")
        unknown = sorted(set(unseen) - set(sha))
        if unknown:
            raise CadLibraryError(f"{index}: 'unseen_models' lists ids that are not models of the library: "
                                  f"{unknown[:3]}; {hint}")
        return cls(root, tuple(models), seed=data["seed"], generator_version=data["generator_version"],
                   checksum=hashlib.sha256(raw).hexdigest(), mesh_sha256=sha, num_faces=faces,
                   extra_instances=extra, unseen_models=tuple(unseen))

    def verify(self) -> None:
        """Check every mesh file against the sha256 recorded in ``library.json``."""
        bad = [m.model_id for m in self.models
               if _sha256_file(self.mesh_path(m.model_id)) != self._mesh_sha256[m.model_id]]
        if bad:
            raise CadLibraryError(f"CAD library at {self.root}: {len(bad)} mesh file(s) do not match their "
                                  f"recorded sha256 (e.g. {bad[:3]}); {_rebuild_hint(self.root)}")

    # ------------------------------------------------------------------ queries
    @property
    def checksum(self) -> str:
        """sha256 of ``library.json`` (which lists each mesh file's sha256)."""
        return self._checksum

    @property
    def categories(self) -> tuple[str, ...]:
        """Categories that have at least one model, in ``scene3d_ros.CATEGORIES`` order."""
        present = {m.category for m in self.models}
        return tuple(c for c in CATEGORIES if c in present)

    def get(self, model_id: str) -> CadModel:
        """The model with id ``model_id`` (KeyError naming the library if unknown)."""
        try:
            return self._by_id[model_id]
        except KeyError:
            examples = [m.model_id for m in self.models[:3]]
            raise KeyError(f"unknown CAD model id {model_id!r}: the library at {self.root} has "
                           f"{len(self.models)} models, e.g. {examples}") from None

    def by_category(self, category: str) -> tuple[CadModel, ...]:
        """Models of ``category`` sorted by id (empty if the library has none of it)."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}, expected one of {CATEGORIES}")
        return tuple(m for m in self.models if m.category == category)

    def mesh_path(self, model_id: str) -> Path:
        """Absolute path of the model's OBJ file."""
        return (self.root / self.get(model_id).mesh_file).absolute()

    def mesh_uri(self, model_id: str) -> str:
        """``file:///abs/path.obj`` URI of the model's mesh (for RViz MESH_RESOURCE markers)."""
        return self.mesh_path(model_id).resolve().as_uri()

    def mesh(self, model_id: str) -> trimesh.Trimesh:
        """The model's mesh (metres, canonical object frame); a copy of a cached load."""
        cached = self._meshes.get(model_id)
        if cached is None:
            path = self.mesh_path(model_id)
            try:
                cached = trimesh.load(path, file_type="obj", process=False, force="mesh")
            except Exception as exc:  # trimesh raises many types on broken files
                raise CadLibraryError(f"cannot read mesh {path}: {exc}; {_rebuild_hint(self.root)}") from exc
            if len(cached.faces) != self._num_faces[model_id]:
                raise CadLibraryError(f"mesh {path} has {len(cached.faces)} faces, library.json says "
                                      f"{self._num_faces[model_id]}; {_rebuild_hint(self.root)}")
            self._meshes[model_id] = cached
        return cached.copy()

    def num_faces(self, model_id: str) -> int:
        """Face count of the model's mesh as recorded in ``library.json``."""
        self.get(model_id)
        return self._num_faces[model_id]

    def __len__(self) -> int:
        return len(self.models)

    def __repr__(self) -> str:
        return (f"CadLibrary(root={str(self.root)!r}, models={len(self.models)}, "
                f"checksum={self._checksum[:12]})")


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _parse_model(entry: Any, root: Path) -> CadModel:
    """One ``library.json`` model entry -> CadModel; ValueError naming the bad field."""
    if not isinstance(entry, dict):
        raise ValueError(f"must be a JSON object, got {type(entry).__name__}")
    for key, kind in _MODEL_FIELDS.items():
        if key not in entry:
            raise ValueError(f"missing field {key!r}")
        if not isinstance(entry[key], kind) or isinstance(entry[key], bool):
            raise ValueError(f"field {key!r} must be {kind.__name__}, got {entry[key]!r}")
    model_id = entry["model_id"]
    if not _MODEL_ID.match(model_id):
        raise ValueError(f"model_id {model_id!r} is not filesystem-safe ([a-z0-9_])")
    if entry["category"] not in CATEGORIES:
        raise ValueError(f"{model_id}: unknown category {entry['category']!r}, expected one of {CATEGORIES}")
    if entry["symmetry"] not in SYMMETRIES:
        raise ValueError(f"{model_id}: unknown symmetry {entry['symmetry']!r}, expected one of {SYMMETRIES}")
    if entry["source"] not in SOURCES:
        raise ValueError(f"{model_id}: unknown source {entry['source']!r}, expected one of {SOURCES}")
    extents = entry["extents"]
    if (len(extents) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in extents)
            or not all(math.isfinite(v) and v > 0 for v in extents)):
        raise ValueError(f"{model_id}: extents must be 3 positive numbers (metres), got {extents!r}")
    if not _SHA256.match(entry["mesh_sha256"]):
        raise ValueError(f"{model_id}: mesh_sha256 is not a sha256 hex digest")
    mesh_file = entry["mesh_file"]
    relative = Path(mesh_file)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"{model_id}: mesh_file {mesh_file!r} must be a path inside the library folder")
    if not (root / relative).is_file():
        raise ValueError(f"{model_id}: mesh file {root / relative} is missing")
    return CadModel(model_id, entry["category"], entry["subtype"], entry["symmetry"], entry["source"],
                    entry["license"], mesh_file, (float(extents[0]), float(extents[1]), float(extents[2])))


# ====================================================================== building
@dataclass(frozen=True)
class _Job:
    """One model to build: its identity and a function producing its canonical mesh."""

    model_id: str
    category: str
    subtype: str
    symmetry: str
    source: str
    license: str
    make: Callable[[], trimesh.Trimesh]


def extra_procedural_model_ids(extra_instances: int) -> list[tuple[SubtypeSpec, str]]:
    """(sub-type spec, model id) of ``extra_instances`` further instances of every procedural sub-type,
    numbered on from the default library's ``INSTANCES_PER_SUBTYPE`` (e.g. ``chair_swivel_03``)."""
    if extra_instances < 0:
        raise ValueError(f"extra_instances must be >= 0, got {extra_instances}")
    return [(spec, procedural_model_id(spec, k + 1))
            for spec in SUBTYPES for k in range(INSTANCES_PER_SUBTYPE, INSTANCES_PER_SUBTYPE + extra_instances)]


def _jobs(seed: int, extra_instances: int = 0) -> list[_Job]:
    """Every model to build: the default library's, then ``extra_instances`` more per sub-type."""
    procedural = procedural_model_ids() + extra_procedural_model_ids(extra_instances)
    jobs = [_Job(model_id, spec.category, spec.subtype, spec.symmetry, "procedural", PROCEDURAL_LICENSE,
                 lambda spec=spec, model_id=model_id: build_procedural_model(spec, model_id, seed).mesh)
            for spec, model_id in procedural]
    jobs += [_Job(spec.model_id, spec.category, spec.subtype, spec.symmetry, "pybullet_data", spec.license,
                  lambda spec=spec: build_real_mesh(spec))
             for spec in REAL_MESHES]
    return jobs


def mesh_to_obj_bytes(mesh: trimesh.Trimesh, model_id: str) -> bytes:
    """Deterministic OBJ text of a mesh (vertices in metres, 6 decimals, faces; no normals)."""
    header = f"scene3d_ros CAD library model {model_id}; metres; object frame +x front, +y left, +z up"
    text = export_obj(mesh, include_normals=False, include_color=False, include_texture=False, digits=6,
                      header=header)
    return text.encode("utf-8")


def _check_mesh(mesh: trimesh.Trimesh, model_id: str) -> None:
    if len(mesh.faces) == 0 or not np.all(np.isfinite(mesh.vertices)):
        raise ValueError(f"model {model_id}: generated mesh is empty or not finite")
    centre = mesh.bounds.mean(axis=0)
    if np.abs(centre).max() > 1e-3:
        raise ValueError(f"model {model_id}: bounding-box centre {centre} is not at the origin")


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """Exclusive lock (a sibling lock file) so concurrent builders of one library take turns."""
    root.parent.mkdir(parents=True, exist_ok=True)
    lock_path = root.parent / f".{root.name}.lock"
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _check_replaceable(root: Path) -> None:
    """Refuse to replace a file or a non-empty folder that is not a CAD library."""
    if root.exists() and (not root.is_dir() or (not (root / LIBRARY_FILE).is_file() and any(root.iterdir()))):
        raise CadLibraryError(f"{root} exists and is not a CAD library (no {LIBRARY_FILE}); "
                              "refusing to replace it, choose another --output")


def _swap_into_place(new: Path, root: Path) -> None:
    """Rename the freshly built folder ``new`` to ``root``, replacing an old library."""
    _check_replaceable(root)
    old = None
    if root.exists():
        old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(root, old)
    try:
        os.replace(new, root)
    except BaseException:
        if old is not None:
            os.replace(old, root)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _build(root: Path, seed: int, progress: bool, extra_instances: int = 0) -> CadLibrary:
    from tqdm import tqdm

    _check_replaceable(root)
    jobs = _jobs(seed, extra_instances)
    ids = [job.model_id for job in jobs]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate model ids among the generators")
    new = Path(tempfile.mkdtemp(prefix=f".{root.name}.building-", dir=root.parent))
    try:
        records = []
        for job in tqdm(jobs, desc="build_cad_library", unit="model", disable=not progress):
            mesh = job.make()
            _check_mesh(mesh, job.model_id)
            data = mesh_to_obj_bytes(mesh, job.model_id)
            mesh_file = f"meshes/{job.category}/{job.model_id}.obj"
            (new / mesh_file).parent.mkdir(parents=True, exist_ok=True)
            (new / mesh_file).write_bytes(data)
            records.append({
                "model_id": job.model_id, "category": job.category, "subtype": job.subtype,
                "symmetry": job.symmetry, "source": job.source, "license": job.license,
                "mesh_file": mesh_file,
                "extents": [round(float(v), 6) for v in mesh.extents],
                "mesh_sha256": hashlib.sha256(data).hexdigest(), "num_faces": int(len(mesh.faces)),
            })
        records.sort(key=lambda r: r["model_id"])
        index = {"format_version": FORMAT_VERSION, "generator_version": GENERATOR_VERSION, "seed": int(seed),
                 "models": records}
        if extra_instances:  # an extended library; the default one's library.json stays as it was
            index["extra_instances"] = int(extra_instances)
            index["unseen_models"] = sorted(model_id for _, model_id in extra_procedural_model_ids(extra_instances))
        (new / LIBRARY_FILE).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        new.chmod(0o755)  # mkdtemp creates 0700
        _swap_into_place(new, root)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    return CadLibrary.load(root)


def build_cad_library(root: str | Path | None = None, seed: int = 0, progress: bool = True,
                      extra_instances: int = 0) -> CadLibrary:
    """Build the whole library into ``root`` (default ``paths.default_cad_library_dir()``).

    Deterministic: the same ``seed`` gives byte-identical files and the same checksum. The
    library is written into a temporary sibling folder and renamed into place (replacing an
    old library) only when complete; ``progress`` shows a tqdm bar on stderr.
    ``extra_instances`` > 0 builds an extended library (see the module doc) and needs a ``root``
    other than the default library's folder (ValueError otherwise).
    """
    root = (Path(root).expanduser() if root is not None else default_cad_library_dir()).absolute()
    _check_extra_instances(root, extra_instances)
    with _build_lock(root):
        return _build(root, int(seed), progress, int(extra_instances))


def _check_extra_instances(root: Path, extra_instances: int) -> None:
    """ValueError unless ``extra_instances`` >= 0, and 0 for the default library's folder (which
    must stay the library the shipped network was trained on)."""
    if int(extra_instances) < 0:
        raise ValueError(f"extra_instances must be >= 0, got {extra_instances}")
    if extra_instances and root == default_cad_library_dir().absolute():
        raise ValueError(f"an extended library (extra instances) must not replace the default library at {root}: "
                         "build it into another folder (--output DIR)")


def check_cad_library(root: str | Path | None = None, seed: int = 0,
                      extra_instances: int | None = None) -> CadLibrary:
    """Load the library and check it is current: this generator version and ``seed``, every
    mesh file matching its recorded sha256 and, unless ``extra_instances`` is None (any), that many
    extra instances per sub-type. Raises :class:`CadLibraryError` saying why not."""
    library = CadLibrary.load(root)
    if library.generator_version != GENERATOR_VERSION or library.seed != seed:
        raise CadLibraryError(f"CAD library at {library.root} is out of date (generator version "
                              f"{library.generator_version}, seed {library.seed}; wanted version "
                              f"{GENERATOR_VERSION}, seed {seed}); {_rebuild_hint(library.root)}")
    if extra_instances is not None and library.extra_instances != extra_instances:
        raise CadLibraryError(f"CAD library at {library.root} has {library.extra_instances} extra instances per "
                              f"sub-type, wanted {extra_instances}; {_rebuild_hint(library.root)}")
    library.verify()
    return library


def _declared_extra_instances(root: Path) -> int:
    """``extra_instances`` recorded in ``root``'s ``library.json``; 0 when absent, invalid or unreadable."""
    try:
        value = json.loads((root / LIBRARY_FILE).read_text(encoding="utf-8")).get("extra_instances", 0)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return 0
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def ensure_cad_library(root: str | Path | None = None, seed: int = 0, progress: bool = True,
                       extra_instances: int | None = None) -> CadLibrary:
    """Load the library at ``root`` if it is valid and current (:func:`check_cad_library`), else build it.

    ``extra_instances`` None accepts a current library with any number of extra instances and
    rebuilds a stale one with as many as its ``library.json`` declares (0 if unreadable), so an
    extended library stays extended; an integer asks for exactly that many.
    """
    root = (Path(root).expanduser() if root is not None else default_cad_library_dir()).absolute()
    if extra_instances is not None:
        _check_extra_instances(root, extra_instances)
    try:
        return check_cad_library(root, seed, extra_instances)
    except CadLibraryError as exc:
        LOGGER.info("building the CAD library: %s", exc)
    with _build_lock(root):
        try:  # another process may have built it while we waited for the lock
            return check_cad_library(root, seed, extra_instances)
        except CadLibraryError:
            extra = int(extra_instances) if extra_instances is not None else (
                0 if root == default_cad_library_dir().absolute() else _declared_extra_instances(root))
            return _build(root, int(seed), progress, extra)
