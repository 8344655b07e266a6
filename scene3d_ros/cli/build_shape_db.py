"""``build_shape_db``: render and embed depth views of every CAD model into the shape database.

    build_shape_db --checkpoint PATH [--output FILE] [--device auto|cpu|cuda] [--quiet] [--if-needed]
                   [--config config/shape_db.yaml] [--set shape_db.grid.azimuths=24 ...]

Renders :func:`scene3d_ros.world.depth_views.object_depth_view` views (size: the checkpoint's
``depth_encoder.view_size_px``) of the library's models over the viewpoint grid of the config
(azimuth x elevation x in-plane, degrees; allocentric rotations), embeds them with the
checkpoint's network 2 and writes the database (``torch.load(weights_only=True)``-readable,
atomic) plus ``<name>.manifest.json``. ``--if-needed`` keeps an existing database that loads and
matches the checkpoint, the library and the grid (``make setup`` uses it). Exit codes: 0 done, 1 bad checkpoint / library / device,
2 bad command line or config.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from scene3d_ros import CATEGORIES
from scene3d_ros.config import ConfigError, add_config_arguments, dataclass_from_dict, load_config
from scene3d_ros.paths import default_model_path, packaged_config_file


@dataclass(frozen=True)
class ShapeDbConfig:
    """The ``shape_db`` section of ``config/shape_db.yaml`` (see the comments there)."""

    grid: dict = field(default_factory=dict)
    descriptor_dtype: str = "float32"
    batch_size: int = 64
    cad_library: str | None = None
    models: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    output: str | None = None

    def __post_init__(self) -> None:
        if self.descriptor_dtype not in ("float32", "float16"):
            raise ValueError(f"descriptor_dtype must be float32 or float16, got {self.descriptor_dtype!r}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.models is not None:
            object.__setattr__(self, "models", tuple(str(m) for m in self.models))
        if self.categories is not None:
            object.__setattr__(self, "categories", tuple(str(c) for c in self.categories))
            unknown = [c for c in self.categories if c not in CATEGORIES]
            if unknown:
                raise ValueError(f"unknown categories {unknown}, expected some of {CATEGORIES}")


def load_shape_db_config(path: str | Path | None, overrides: list[str] | None = None):
    """(ShapeDbConfig, ViewGrid) from ``path`` (None = defaults) with ``shape_db.x=value`` overrides."""
    from scene3d_ros.retrieval.shape_database import ViewGrid

    raw = load_config(path, overrides)
    unknown = sorted(set(raw) - {"shape_db"})
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown} in the shape_db config; expected only 'shape_db'")
    config = dataclass_from_dict(ShapeDbConfig, raw.get("shape_db"), "shape_db")
    grid = dataclass_from_dict(ViewGrid, config.grid, "shape_db.grid")
    return config, grid


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="build_shape_db", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=default_model_path(),
                        help="checkpoint whose network 2 embeds the views (default: the shipped model)")
    parser.add_argument("--output", type=Path, default=None,
                        help="database file (default: shape_db.output, else $SCENE3D_DATA_DIR/shape_db/shape_db.pt)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto = cuda when available (default)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--if-needed", action="store_true",
                        help="do nothing when the output already holds a valid database of this checkpoint, "
                             "library and grid")
    add_config_arguments(parser, default_config=packaged_config_file("shape_db.yaml"))
    return parser


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


def _selection(config: ShapeDbConfig) -> dict:
    """The model selection of a build, as stored in the database's build info."""
    return {"models": list(config.models) if config.models is not None else None,
            "categories": list(config.categories) if config.categories is not None else None,
            "descriptor_dtype": config.descriptor_dtype}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    from scene3d_ros.data.shards import sha256_file
    from scene3d_ros.model import CheckpointError, build_model_from_checkpoint
    from scene3d_ros.retrieval.shape_database import (
        ShapeDatabase,
        ShapeDatabaseError,
        build_shape_database,
        default_shape_db_path,
        manifest_path,
    )
    from scene3d_ros.world.cad_library import CadLibraryError, ensure_cad_library

    try:
        config, grid = load_shape_db_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"build_shape_db: {exc}", file=sys.stderr)
        return 2
    output = args.output or (Path(config.output) if config.output else default_shape_db_path())
    try:
        device = _device(args.device)
        model = build_model_from_checkpoint(args.checkpoint, device)
        if model.depth_encoder is None:
            raise CheckpointError(f"{args.checkpoint} has no network 2 (descriptor.enabled is false)")
        library = ensure_cad_library(config.cad_library, progress=not args.quiet)
        checkpoint_sha256 = sha256_file(args.checkpoint)
        if args.if_needed and output.is_file():
            try:
                existing = ShapeDatabase.load(output, expected_library_checksum=library.checksum,
                                              expected_checkpoint_sha256=checkpoint_sha256)
            except ShapeDatabaseError as exc:
                print(f"build_shape_db: rebuilding: {exc}", file=sys.stderr)
            else:
                if existing.grid == grid.as_dict() and existing.build.get("selection") == _selection(config):
                    print(f"shape database {output} is up to date ({len(existing)} views)")
                    return 0
                print("build_shape_db: rebuilding: the grid or model selection changed", file=sys.stderr)
        model_ids = [m.model_id for m in library.models]
        if config.categories is not None:
            model_ids = [m for m in model_ids if library.get(m).category in config.categories]
        if config.models is not None:
            for m in config.models:
                library.get(m)  # KeyError naming the library for an unknown id
            model_ids = [m for m in model_ids if m in set(config.models)]
        if not model_ids:
            raise ValueError("the models/categories selection leaves no CAD model")
        db = build_shape_database(library, model.depth_encoder, grid, model.config.depth_encoder.view_size_px,
                                  model_ids=model_ids, batch_size=config.batch_size,
                                  descriptor_dtype=config.descriptor_dtype,
                                  checkpoint_sha256=checkpoint_sha256, device=device,
                                  progress=not args.quiet)
        db.build["checkpoint"] = str(Path(args.checkpoint).resolve())
        db.build["selection"] = _selection(config)
        db.save(output)
    except CheckpointError as exc:
        print(f"build_shape_db: {exc}", file=sys.stderr)
        return 1
    except (CadLibraryError, KeyError, ValueError, OSError) as exc:
        print(f"build_shape_db: error: {exc}", file=sys.stderr)
        return 1
    print(f"shape database: {len(db)} views of {len(db.model_ids)} models (descriptor dim {db.dim}, "
          f"{config.descriptor_dtype}) in {db.build['seconds']:.1f} s")
    print(f"written to {output} and {manifest_path(output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
