"""The shape database: depth-view descriptors of every CAD model over a viewpoint grid.

Offline (:func:`build_shape_database`, console entry ``build_shape_db``): every model of the CAD
library is rendered with :func:`scene3d_ros.world.depth_views.object_depth_view` over a grid of
viewpoints (azimuth x elevation x in-plane, degrees; :class:`ViewGrid`) and embedded with network
2 (``Scene3DNet.depth_encoder``). Online (:meth:`ShapeDatabase.search`): the pose-prior search of
:mod:`scene3d_ros.retrieval.search`.

View rotations are **allocentric**: object -> virtual camera optical frame, the rotation relative
to the viewing ray that a depth view (and an ROI crop) shows; stored as (w, x, y, z) quaternions
with ``w >= 0``. Models with a continuous symmetry about +z look the same from every azimuth, so
only azimuth 0 is stored for them (the search compares rotations modulo that symmetry).

File format (one ``torch.save`` of plain tensors/lists/dicts, read with
``torch.load(weights_only=True)``; written atomically)::

    format              "scene3d_ros.shape_database"
    format_version      2
    descriptors         (V, D) float32 or float16
    model_index         (V,) int64, row into model_ids
    view_quaternions    (V, 4) float32, allocentric, w >= 0
    silhouettes         (V, G, G) uint8 (0..255) view silhouettes for the resolution policy's
                        silhouette check (world.depth_views.view_silhouette, G = 28), or None
    model_ids           list[str] (M), categories list[str] (M), symmetries list[str] (M)
    library_checksum    CadLibrary.checksum of the library rendered
    checkpoint_sha256   sha256 of the checkpoint whose network 2 embedded the views
    grid                ViewGrid as a dict; view_size_px int; build dict (time, device, ...)

plus ``<name>.manifest.json`` next to it (format, checksums, grid, counts, build time) for humans
and tools that should not open the torch file.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scene3d_ros import CATEGORIES
from scene3d_ros.geometry import SYMMETRIES, matrix_to_quaternion, viewpoint_rotation
from scene3d_ros.model.rotations import quaternion_to_matrix
from scene3d_ros.paths import atomic_write_bytes, atomic_write_text, data_dir
from scene3d_ros.retrieval.search import (
    FALLBACK_CUBOID,
    RetrievalResult,
    ViewCandidates,
    align_azimuth,
    angle_from_cos_half,
    candidates_torch,
    cos_half_angles,
    cos_half_threshold,
    effective_angles,
    faiss_module,
    query_rotations,
    search_faiss,
    search_torch,
)

DB_FORMAT = "scene3d_ros.shape_database"
DB_FORMAT_VERSION = 2
DESCRIPTOR_DTYPES = {"float32": torch.float32, "float16": torch.float16}
BACKENDS = ("torch", "faiss")
_REQUIRED_KEYS = ("format", "format_version", "descriptors", "model_index", "view_quaternions", "model_ids",
                  "categories", "symmetries", "library_checksum", "checkpoint_sha256", "grid", "view_size_px")


class ShapeDatabaseError(RuntimeError):
    """A shape database is missing, corrupt, or was built from another checkpoint or CAD library;
    the message says how to rebuild it."""


def default_shape_db_path() -> Path:
    """Where ``build_shape_db`` writes by default: ``data_dir()/shape_db/shape_db.pt``."""
    return data_dir() / "shape_db" / "shape_db.pt"


def manifest_path(path: str | Path) -> Path:
    """The JSON manifest next to database ``path`` (``x.pt`` -> ``x.manifest.json``)."""
    path = Path(path)
    return path.with_name(path.stem + ".manifest.json")


def rebuild_hint(path: str | Path | None = None, checkpoint: str | Path | None = None) -> str:
    """The command that rebuilds the database."""
    return (f"rebuild it with `build_shape_db --checkpoint {checkpoint or 'CHECKPOINT'} "
            f"--output {path or default_shape_db_path()}`")


# --------------------------------------------------------------------------- viewpoint grid
@dataclass(frozen=True)
class ViewGrid:
    """Viewpoints rendered per model (degrees; :func:`scene3d_ros.geometry.viewpoint_rotation`).

    ``azimuths`` evenly spaced over [0, 360); ``elevations`` / ``inplanes`` evenly spaced over
    their closed ranges (one value = the range's middle).
    """

    azimuths: int = 12
    elevations: int = 4
    elevation_deg_range: tuple[float, float] = (-10.0, 60.0)
    inplanes: int = 3
    inplane_deg_range: tuple[float, float] = (-15.0, 15.0)

    def __post_init__(self) -> None:
        for name in ("azimuths", "elevations", "inplanes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"grid.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("elevation_deg_range", "inplane_deg_range"):
            lo, hi = (float(v) for v in getattr(self, name))
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"grid.{name} must be [low, high] degrees with low <= high, got {getattr(self, name)}")
            object.__setattr__(self, name, (lo, hi))
        lo, hi = self.elevation_deg_range
        if lo < -90.0 or hi > 90.0:
            raise ValueError(f"grid.elevation_deg_range must lie in [-90, 90] degrees, got {self.elevation_deg_range}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, as stored in a database's ``grid``."""
        return dataclasses.asdict(self) | {"elevation_deg_range": list(self.elevation_deg_range),
                                           "inplane_deg_range": list(self.inplane_deg_range)}

    @staticmethod
    def _spread(count: int, low: float, high: float) -> np.ndarray:
        return np.array([(low + high) / 2.0]) if count == 1 else np.linspace(low, high, count)

    def viewpoints(self, symmetry: str = "none") -> np.ndarray:
        """(K, 3) (azimuth, elevation, in-plane) degrees; azimuth 0 only for a continuous symmetry."""
        azimuths = [0.0] if symmetry == "continuous" else 360.0 * np.arange(self.azimuths) / self.azimuths
        grid = np.meshgrid(azimuths, self._spread(self.elevations, *self.elevation_deg_range),
                           self._spread(self.inplanes, *self.inplane_deg_range), indexing="ij")
        return np.stack([g.reshape(-1) for g in grid], axis=1)

    def rotations(self, symmetry: str = "none") -> np.ndarray:
        """(K, 3, 3) allocentric rotations (object -> view optical frame) of :meth:`viewpoints`."""
        return np.stack([viewpoint_rotation(*vp) for vp in self.viewpoints(symmetry)])


# --------------------------------------------------------------------------- the database
class ShapeDatabase:
    """Descriptors of depth views of CAD models, with their model and allocentric view rotation."""

    def __init__(self, descriptors: Tensor, model_index: Tensor, view_quaternions: Tensor, model_ids: Sequence[str],
                 categories: Sequence[str], symmetries: Sequence[str], *, library_checksum: str = "",
                 checkpoint_sha256: str = "", grid: dict[str, Any] | None = None, view_size_px: int = 0,
                 build: dict[str, Any] | None = None, silhouettes: Tensor | None = None) -> None:
        self.descriptors = descriptors
        self.model_index = model_index.long()
        self.view_quaternions = view_quaternions.float()
        self.model_ids = [str(m) for m in model_ids]
        self.categories = [str(c) for c in categories]
        self.symmetries = [str(s) for s in symmetries]
        self.library_checksum = str(library_checksum)
        self.checkpoint_sha256 = str(checkpoint_sha256)
        self.grid = dict(grid or {})
        self.view_size_px = int(view_size_px)
        self.build = dict(build or {})
        self.silhouettes = silhouettes
        _validate_arrays(self.descriptors, self.model_index, self.view_quaternions, self.model_ids,
                         self.categories, self.symmetries)
        if silhouettes is not None and (silhouettes.dtype != torch.uint8 or silhouettes.dim() != 3
                                        or silhouettes.shape[0] != len(self) or silhouettes.shape[1] != silhouettes.shape[2]):
            raise ValueError(f"silhouettes must be ({len(self)}, G, G) uint8, got {tuple(silhouettes.shape)} "
                             f"{silhouettes.dtype}")
        self._device_cache: dict[str, dict[str, Tensor]] = {}
        self._faiss_index = None

    def __len__(self) -> int:
        return int(self.descriptors.shape[0])

    @property
    def dim(self) -> int:
        """Descriptor dimension D."""
        return int(self.descriptors.shape[1])

    def __repr__(self) -> str:
        return (f"ShapeDatabase(views={len(self)}, models={len(self.model_ids)}, dim={self.dim}, "
                f"dtype={str(self.descriptors.dtype).replace('torch.', '')}, library={self.library_checksum[:12]}, "
                f"checkpoint={self.checkpoint_sha256[:12]})")

    # ------------------------------------------------------------------ save / load
    def to_payload(self) -> dict[str, Any]:
        """The plain dict that :meth:`save` writes (see the module doc)."""
        return {
            "format": DB_FORMAT, "format_version": DB_FORMAT_VERSION,
            "descriptors": self.descriptors.cpu().contiguous(), "model_index": self.model_index.cpu().contiguous(),
            "view_quaternions": self.view_quaternions.cpu().contiguous(), "model_ids": list(self.model_ids),
            "categories": list(self.categories), "symmetries": list(self.symmetries),
            "library_checksum": self.library_checksum, "checkpoint_sha256": self.checkpoint_sha256,
            "grid": dict(self.grid), "view_size_px": self.view_size_px, "build": dict(self.build),
            "silhouettes": None if self.silhouettes is None else self.silhouettes.cpu().contiguous(),
        }

    def manifest(self) -> dict[str, Any]:
        """JSON-able summary: format, checksums, grid, counts, build info."""
        per_category = {c: 0 for c in CATEGORIES if c in self.categories}
        view_categories = np.asarray(self.categories)[self.model_index.numpy()] if len(self) else []
        for c in view_categories:
            per_category[str(c)] += 1
        return {
            "format": DB_FORMAT, "format_version": DB_FORMAT_VERSION,
            "library_checksum": self.library_checksum, "checkpoint_sha256": self.checkpoint_sha256,
            "grid": self.grid, "view_size_px": self.view_size_px,
            "descriptor_dim": self.dim, "descriptor_dtype": str(self.descriptors.dtype).replace("torch.", ""),
            "num_views": len(self), "num_models": len(self.model_ids),
            "silhouette_grid": None if self.silhouettes is None else int(self.silhouettes.shape[1]),
            "models_per_category": {c: self.categories.count(c) for c in per_category},
            "views_per_category": per_category, "build": self.build,
        }

    def save(self, path: str | Path) -> Path:
        """Write the database (atomically) and its manifest; returns ``path``."""
        path = Path(path)
        buffer = io.BytesIO()
        torch.save(self.to_payload(), buffer)
        atomic_write_bytes(path, buffer.getvalue())
        atomic_write_text(manifest_path(path), json.dumps(self.manifest(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, expected_library_checksum: str | None = None,
             expected_checkpoint_sha256: str | None = None) -> ShapeDatabase:
        """Read and validate a database written by :meth:`save`.

        Raises :class:`ShapeDatabaseError` (saying how to rebuild) for a missing, truncated or
        corrupt file, a wrong format/version, bad keys, shapes, dtypes or non-finite values, and a
        database built from another CAD library or checkpoint than the expected ones.
        """
        path = Path(path)
        hint = rebuild_hint(path)
        if not path.is_file():
            raise ShapeDatabaseError(f"no shape database at {path}; {hint}")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for truncated/corrupt files
            raise ShapeDatabaseError(f"cannot read shape database {path} (corrupt or truncated: "
                                     f"{type(exc).__name__}: {exc}); {hint}") from exc
        if not isinstance(data, dict) or data.get("format") != DB_FORMAT:
            raise ShapeDatabaseError(f"{path} is not a scene3d_ros shape database; {hint}")
        if data.get("format_version") != DB_FORMAT_VERSION:
            raise ShapeDatabaseError(f"{path} has shape database format version {data.get('format_version')!r}, "
                                     f"this code reads {DB_FORMAT_VERSION}; {hint}")
        missing = [k for k in _REQUIRED_KEYS if k not in data]
        if missing:
            raise ShapeDatabaseError(f"{path} is incomplete: missing {missing}; {hint}")
        for key in ("descriptors", "model_index", "view_quaternions"):
            if not isinstance(data[key], Tensor):
                raise ShapeDatabaseError(f"{path}: {key!r} must be a tensor; {hint}")
        if data.get("silhouettes") is not None and not isinstance(data["silhouettes"], Tensor):
            raise ShapeDatabaseError(f"{path}: 'silhouettes' must be a tensor or None; {hint}")
        for key in ("model_ids", "categories", "symmetries"):
            if not isinstance(data[key], list) or not all(isinstance(v, str) for v in data[key]):
                raise ShapeDatabaseError(f"{path}: {key!r} must be a list of strings; {hint}")
        for key in ("library_checksum", "checkpoint_sha256"):
            if not isinstance(data[key], str):
                raise ShapeDatabaseError(f"{path}: {key!r} must be a string; {hint}")
        if expected_library_checksum is not None and data["library_checksum"] != expected_library_checksum:
            raise ShapeDatabaseError(
                f"{path} was built from another CAD library (checksum {data['library_checksum'][:12]}..., "
                f"the library now has {expected_library_checksum[:12]}...); {hint}")
        if expected_checkpoint_sha256 is not None and data["checkpoint_sha256"] != expected_checkpoint_sha256:
            raise ShapeDatabaseError(
                f"{path} was built with another checkpoint (sha256 {data['checkpoint_sha256'][:12]}..., "
                f"expected {expected_checkpoint_sha256[:12]}...): its descriptors do not match this network; {hint}")
        try:
            return cls(data["descriptors"], data["model_index"], data["view_quaternions"], data["model_ids"],
                       data["categories"], data["symmetries"], library_checksum=data["library_checksum"],
                       checkpoint_sha256=data["checkpoint_sha256"], grid=data.get("grid") or {},
                       view_size_px=int(data["view_size_px"]), build=data.get("build") or {},
                       silhouettes=data.get("silhouettes"))
        except (ValueError, TypeError) as exc:
            raise ShapeDatabaseError(f"{path} is invalid: {exc}; {hint}") from exc

    # ------------------------------------------------------------------ search
    def _tensors(self, device: torch.device) -> dict[str, Tensor]:
        key = str(device)
        if key not in self._device_cache:
            desc = self.descriptors.to(device=device, dtype=torch.float32)
            view_q = self.view_quaternions.to(device)
            continuous = torch.tensor([s == "continuous" for s in self.symmetries], dtype=torch.bool)
            category_of_model = torch.tensor([CATEGORIES.index(c) for c in self.categories], dtype=torch.long)
            self._device_cache[key] = {
                "descriptors": desc, "sq_norms": (desc * desc).sum(dim=1), "view_q": view_q,
                "view_r": quaternion_to_matrix(view_q), "continuous": continuous[self.model_index].to(device),
                "view_cat": category_of_model[self.model_index].to(device),
                "silhouettes": None if self.silhouettes is None else self.silhouettes.to(device),
            }
        return self._device_cache[key]

    def search(self, descriptors: Tensor | np.ndarray, rotations: Tensor | np.ndarray,
               categories: Sequence[str | None] | None = None, max_angle_deg: float = 30.0,
               backend: str = "torch", max_distance: float | None = None,
               device: str | torch.device | None = None) -> list[RetrievalResult]:
        """Retrieve the CAD model for each of N objects (see :mod:`scene3d_ros.retrieval.search`).

        ``descriptors`` (N, D): network 1's object descriptors; ``rotations``: the objects'
        predicted **allocentric** rotations, (N, 4) (w, x, y, z) quaternions or (N, 3, 3)
        matrices; ``categories``: per object the predicted category (only its models are
        considered; ``None`` = any). Only views within ``max_angle_deg`` (degrees, geodesic) of
        the predicted rotation are searched; when none is, the window is doubled (up to 180)
        and the result reports ``widened_to_deg``. ``max_distance``: beyond this squared L2
        distance the result is the cuboid fallback, as it is for a category without models.
        ``backend``: ``"torch"`` (on ``device``: CPU by default, or CUDA; the database is copied
        there once and cached) or ``"faiss"`` (exact ``IndexFlatL2`` built on first use, CPU); both
        give the same results. Every result carries the chosen view's (allocentric) ``rotation``.
        The resolution policy (:mod:`scene3d_ros.retrieval.resolution`) builds on
        :meth:`candidates` instead.
        """
        queries, query_q, query_r, query_cat, categories = self._queries(descriptors, rotations, categories,
                                                                         max_angle_deg, backend)
        if queries.shape[0] == 0:
            return []
        dev = self._device(device, backend)
        t = self._tensors(dev)
        qq, qr, qc = query_q.to(dev), query_r.to(dev), query_cat.to(dev)
        queries = queries.to(dev)
        if backend == "torch":
            index, dist, window, chosen_c = search_torch(queries, qq, qr, qc, max_angle_deg, t["descriptors"],
                                                         t["sq_norms"], t["view_q"], t["view_r"],
                                                         t["continuous"], t["view_cat"])
            index, dist, window = index.cpu().numpy(), dist.cpu().numpy(), window.cpu().numpy()
            chosen_c = chosen_c.cpu()
        else:
            index, dist, window, chosen_c = self._search_faiss(queries, qq, qr, qc, max_angle_deg, t)
        return self._results(index, dist, window, chosen_c, max_angle_deg, max_distance, categories, qr.cpu())

    def candidates(self, descriptors: Tensor | np.ndarray, rotations: Tensor | np.ndarray,
                   categories: Sequence[str | None] | None, max_angle_deg: float, k: int,
                   backend: str = "torch", device: str | torch.device | None = None) -> ViewCandidates:
        """The ``k`` views nearest in descriptor distance among those :meth:`search` allows each
        query (same arguments; the window is widened the same way), on the CPU: what the
        resolution policy (:mod:`scene3d_ros.retrieval.resolution`) scores."""
        if int(k) < 1:
            raise ValueError(f"k must be >= 1 candidate, got {k}")
        queries, query_q, query_r, query_cat, _ = self._queries(descriptors, rotations, categories, max_angle_deg,
                                                                backend)
        n = queries.shape[0]
        if n == 0 or len(self) == 0:
            width = max(1, min(int(k), len(self))) if len(self) else 1
            return ViewCandidates(torch.full((n, width), -1, dtype=torch.long), torch.full((n, width), float("inf")),
                                  torch.full((n,), float("nan")), torch.full((n, width), float("nan")))
        dev = self._device(device, backend)
        t = self._tensors(dev)
        qq, qr, qc = query_q.to(dev), query_r.to(dev), query_cat.to(dev)
        if backend == "torch":
            idx, dist, window, cos_half = candidates_torch(queries.to(dev), qq, qr, qc, max_angle_deg, int(k),
                                                           t["descriptors"], t["sq_norms"], t["view_q"], t["view_r"],
                                                           t["continuous"], t["view_cat"])
        else:
            idx_np, dist_np, window_np, cos_half = self._search_faiss(queries, qq, qr, qc, max_angle_deg, t, k=int(k))
            idx, dist, window = torch.from_numpy(idx_np), torch.from_numpy(dist_np), torch.from_numpy(window_np)
        idx, angles = idx.cpu(), angle_from_cos_half(cos_half.cpu())
        return ViewCandidates(idx, dist.cpu(), window.cpu(), torch.where(idx >= 0, angles, float("nan")))

    def view_silhouettes(self, index: Tensor) -> Tensor:
        """Silhouettes ``index.shape + (G, G)`` float32 in [0, 1] of the views ``index`` (int64,
        any shape; -1 gives view 0's, for padding the caller masks out). ValueError when the
        database holds none (built before silhouettes existed)."""
        if self.silhouettes is None:
            raise ValueError("this shape database has no view silhouettes, so it cannot run the silhouette check; "
                             + rebuild_hint())
        return self.silhouettes[index.clamp_min(0)].float() / 255.0

    @property
    def silhouette_grid(self) -> int | None:
        """Side G (cells) of the view silhouettes, or None when the database holds none."""
        return None if self.silhouettes is None else int(self.silhouettes.shape[1])

    def _device(self, device: str | torch.device | None, backend: str) -> torch.device:
        """Where a search runs: ``device`` (default CPU); FAISS always on the CPU."""
        return torch.device("cpu") if backend == "faiss" or device is None else torch.device(device)

    def _queries(self, descriptors: Tensor | np.ndarray, rotations: Tensor | np.ndarray,
                 categories: Sequence[str | None] | None, max_angle_deg: float, backend: str
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor, list[str | None]]:
        """Validated search inputs: descriptors (N, D) float32, canonical query quaternions and
        matrices, category indices (-1 any, -2 a category without models) and the categories."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if not (math.isfinite(max_angle_deg) and max_angle_deg > 0.0):
            raise ValueError(f"max_angle_deg must be > 0 degrees, got {max_angle_deg}")
        queries = torch.as_tensor(np.asarray(descriptors) if not isinstance(descriptors, Tensor) else descriptors)
        if queries.dim() != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"descriptors must be (N, {self.dim}), got {tuple(queries.shape)}")
        n = queries.shape[0]
        query_q, query_r = query_rotations(rotations)
        if query_q.shape[0] != n:
            raise ValueError(f"need one rotation per descriptor, got {query_q.shape[0]} for {n}")
        if categories is None:
            categories = [None] * n
        if len(categories) != n:
            raise ValueError(f"need one category (or None) per descriptor, got {len(categories)} for {n}")
        for c in categories:
            if c is not None and c not in CATEGORIES:
                raise ValueError(f"unknown category {c!r}, expected one of {CATEGORIES} or None")
        present = set(self.categories)
        # -2: a category without any model in the database (cuboid), -1: any category
        query_cat = torch.tensor([-1 if c is None else (CATEGORIES.index(c) if c in present else -2)
                                  for c in categories], dtype=torch.long)
        queries = queries.to(torch.float32)
        if not torch.isfinite(queries).all():
            raise ValueError("descriptors must be finite")
        return queries, query_q, query_r, query_cat, list(categories)

    def _search_faiss(self, queries: Tensor, qq: Tensor, qr: Tensor, qc: Tensor, max_angle_deg: float,
                      t: dict[str, Tensor], k: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, Tensor]:
        """FAISS backend: the nearest allowed view per query (``(N,)`` arrays, cos(angle/2) to it),
        or with ``k`` the ``k`` nearest (``(N, k)``, padded with -1 / inf / 0)."""
        faiss = faiss_module()
        if self._faiss_index is None:
            flat = faiss.IndexFlatL2(self.dim)
            flat.add(np.ascontiguousarray(t["descriptors"].numpy(), dtype=np.float32))
            self._faiss_index = flat
        n, v = queries.shape[0], len(self)
        windows = torch.full((n,), float("nan"))
        allowed: list[np.ndarray] = []
        cos_half: list[Tensor] = []
        step = max(1, (1 << 24) // max(v, 1))
        for start in range(0, n, step):
            sl = slice(start, min(n, start + step))
            c = cos_half_angles(qq[sl], qr[sl], t["view_q"], t["view_r"], t["continuous"])
            cat_ok = (qc[sl, None] == -1) | (t["view_cat"][None, :] == qc[sl, None])
            best = torch.where(cat_ok, c, torch.tensor(-float("inf"))).amax(dim=1) if v else \
                torch.full((c.shape[0],), -float("inf"))
            windows[sl] = effective_angles(best, max_angle_deg)
            mask = (c >= cos_half_threshold(windows[sl])[:, None]) & cat_ok
            allowed.extend(torch.nonzero(row).flatten().numpy() for row in mask)
            cos_half.extend(c)
        index, dist = search_faiss(self._faiss_index, queries.numpy(), allowed, k)
        if k is None:
            chosen_c = torch.tensor([float(cos_half[i][index[i]]) if index[i] >= 0 else 0.0 for i in range(n)])
        else:
            chosen_c = torch.stack([torch.where(torch.from_numpy(index[i]) >= 0,
                                                cos_half[i][torch.from_numpy(index[i]).clamp_min(0)], 0.0)
                                    for i in range(n)]) if n else torch.zeros((0, int(k)))
        return index, dist, windows.numpy(), chosen_c

    def _results(self, index: np.ndarray, dist: np.ndarray, window: np.ndarray, chosen_c: Tensor,
                 max_angle_deg: float, max_distance: float | None,
                 query_categories: Sequence[str | None], query_r: Tensor) -> list[RetrievalResult]:
        angles = angle_from_cos_half(chosen_c).numpy()
        rotations = self.view_rotations(np.asarray(index), query_r)
        results = []
        for i in range(len(index)):
            view = int(index[i])
            if view < 0:
                results.append(RetrievalResult(None, query_categories[i], math.inf, -1, math.nan, None,
                                               FALLBACK_CUBOID))
                continue
            model = int(self.model_index[view])
            widened = float(window[i]) if float(window[i]) > float(max_angle_deg) + 1e-9 else None
            distance = float(dist[i])
            too_far = max_distance is not None and distance > float(max_distance)
            results.append(RetrievalResult(
                model_id=None if too_far else self.model_ids[model],
                category=self.categories[model], distance=distance, view_index=view,
                view_angle_deg=float(angles[i]), widened_to_deg=widened,
                fallback=FALLBACK_CUBOID if too_far else None, rotation=tuple(float(x) for x in rotations[i])))
        return results

    def view_rotations(self, index: np.ndarray, query_r: Tensor) -> np.ndarray:
        """(N, 4) float64 allocentric quaternions of the views ``index`` (N,) (rows of -1:
        identity), those of continuously symmetric models turned about +z towards the query
        rotation ``query_r`` (N, 3, 3) (their database views have azimuth 0 only)."""
        if not len(self):
            return np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (len(index), 1))
        views = torch.from_numpy(np.clip(index, 0, None)).long()
        q = self.view_quaternions[views].double()
        continuous = torch.tensor([self.symmetries[int(self.model_index[v])] == "continuous" and i >= 0
                                   for v, i in zip(views.tolist(), index.tolist(), strict=True)], dtype=torch.bool)
        if bool(continuous.any()):
            turned = align_azimuth(quaternion_to_matrix(q[continuous]), query_r[continuous].double())
            q[continuous] = torch.from_numpy(matrix_to_quaternion(turned.numpy()))
        return q.numpy()


def _validate_arrays(descriptors: Tensor, model_index: Tensor, view_quaternions: Tensor, model_ids: list[str],
                     categories: list[str], symmetries: list[str]) -> None:
    """ValueError naming the first inconsistency of a database's arrays."""
    if descriptors.dim() != 2 or descriptors.dtype not in DESCRIPTOR_DTYPES.values():
        raise ValueError(f"descriptors must be (V, D) float32/float16, got {tuple(descriptors.shape)} "
                         f"{descriptors.dtype}")
    v = descriptors.shape[0]
    if model_index.shape != (v,):
        raise ValueError(f"model_index must be ({v},), got {tuple(model_index.shape)}")
    if view_quaternions.shape != (v, 4):
        raise ValueError(f"view_quaternions must be ({v}, 4), got {tuple(view_quaternions.shape)}")
    if not (torch.isfinite(descriptors).all() and torch.isfinite(view_quaternions).all()):
        raise ValueError("descriptors and view quaternions must be finite")
    if v and (not torch.allclose(view_quaternions.norm(dim=1), torch.ones(v), atol=1e-3)
              or bool((view_quaternions[:, 0] < -1e-6).any())):
        raise ValueError("view quaternions must be unit (w, x, y, z) with w >= 0")
    m = len(model_ids)
    if not len(categories) == len(symmetries) == m or len(set(model_ids)) != m:
        raise ValueError(f"model_ids ({m}, unique), categories ({len(categories)}) and symmetries "
                         f"({len(symmetries)}) must have one entry per model")
    if v and (int(model_index.min()) < 0 or int(model_index.max()) >= m):
        raise ValueError(f"model_index must lie in [0, {m})")
    bad = [c for c in categories if c not in CATEGORIES] + [s for s in symmetries if s not in SYMMETRIES]
    if bad:
        raise ValueError(f"unknown categories/symmetries {sorted(set(bad))}")


# --------------------------------------------------------------------------- building
@torch.inference_mode()
def build_shape_database(library, depth_encoder: torch.nn.Module, grid: ViewGrid, view_size_px: int,
                         model_ids: Sequence[str] | None = None, batch_size: int = 64,
                         descriptor_dtype: str = "float32", checkpoint_sha256: str = "",
                         device: str | torch.device = "cpu", progress: bool = True) -> ShapeDatabase:
    """Render and embed the depth views of ``library``'s models (all, or ``model_ids``).

    ``depth_encoder``: network 2 (``Scene3DNet.depth_encoder``), in eval mode on ``device``;
    ``view_size_px``: the view size it was trained on (``model_config.depth_encoder.view_size_px``).
    Continuous-symmetric models get azimuth 0 only (:meth:`ViewGrid.viewpoints`).
    """
    from tqdm import tqdm

    from scene3d_ros.world.depth_views import object_depth_view, view_silhouette

    if descriptor_dtype not in DESCRIPTOR_DTYPES:
        raise ValueError(f"descriptor_dtype must be one of {sorted(DESCRIPTOR_DTYPES)}, got {descriptor_dtype!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    start = time.perf_counter()
    models = [library.get(m) for m in model_ids] if model_ids is not None else list(library.models)
    if not models:
        raise ValueError("no CAD models to put in the shape database")
    rotations = {s: grid.rotations(s) for s in {m.symmetry for m in models}}
    quats = {s: matrix_to_quaternion(r).astype(np.float32) for s, r in rotations.items()}
    jobs = [(k, r) for k, m in enumerate(models) for r in range(len(rotations[m.symmetry]))]
    descriptors, index, view_q, silhouettes = [], [], [], []
    bar = tqdm(total=len(jobs), desc="shape database views", unit="view", disable=not progress)
    mesh_cache: dict[int, Any] = {}
    for b in range(0, len(jobs), int(batch_size)):
        batch = jobs[b:b + int(batch_size)]
        views = np.empty((len(batch), view_size_px, view_size_px), dtype=np.float32)
        for j, (k, r) in enumerate(batch):
            if k not in mesh_cache:
                mesh_cache.clear()  # jobs are ordered by model: keep one mesh
                mesh_cache[k] = library.mesh(models[k].model_id)
            views[j] = object_depth_view(mesh_cache[k], rotations[models[k].symmetry][r], view_size_px)
            silhouettes.append(np.rint(255.0 * view_silhouette(views[j])).astype(np.uint8))
            index.append(k)
            view_q.append(quats[models[k].symmetry][r])
        out = depth_encoder(torch.from_numpy(views).to(device)).float().cpu()
        if not torch.isfinite(out).all():
            raise ValueError("network 2 produced non-finite descriptors (broken checkpoint?)")
        descriptors.append(out.to(DESCRIPTOR_DTYPES[descriptor_dtype]))
        bar.update(len(batch))
    bar.close()
    build = {"seconds": round(time.perf_counter() - start, 2), "device": str(device),
             "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "cad_library": str(library.root)}
    return ShapeDatabase(torch.cat(descriptors), torch.tensor(index, dtype=torch.long),
                         torch.from_numpy(np.stack(view_q)), [m.model_id for m in models],
                         [m.category for m in models], [m.symmetry for m in models],
                         library_checksum=library.checksum, checkpoint_sha256=checkpoint_sha256,
                         grid=grid.as_dict(), view_size_px=view_size_px, build=build,
                         silhouettes=torch.from_numpy(np.stack(silhouettes)))
