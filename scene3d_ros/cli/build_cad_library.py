"""``build_cad_library``: build (or check) the CAD library of procedural and shipped real meshes.

    build_cad_library [--output DIR] [--seed N] [--extra-instances K] [--force] [--quiet]

Without ``--force`` an existing library that is valid and up to date (same generator version,
seed and extra instances, mesh files matching their sha256) is kept; otherwise the library is
(re)built into a temporary sibling folder and renamed into place. Prints per-category model and
sub-type counts and the library checksum. Exit code 0 on success, 1 on error (message on
stderr), 2 on a bad command line.

``--extra-instances K`` (needs ``--output``, another folder than the default library's) builds an
*extended* library: the default library's models, byte-identical, plus K more procedural
instances per sub-type (``car_sedan_03`` ...) that a network trained on the default library
never saw; ``library.json`` lists them as ``unseen_models`` and ``evaluate`` reports them as
the unseen split of its Top-1 retrieval table (see docs/cad_library.md).
"""

from __future__ import annotations

import argparse
import sys
import time

from scene3d_ros import CATEGORIES
from scene3d_ros.paths import default_cad_library_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build_cad_library",
        description="Build (or check) the CAD library of procedural and shipped real meshes (metres, "
        "canonical object frame: +x front, +y left, +z up).")
    parser.add_argument("--output", default=None, metavar="DIR",
                        help=f"library folder (default: {default_cad_library_dir()})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the procedural parameters (default: 0)")
    parser.add_argument("--extra-instances", type=int, default=0, metavar="K",
                        help="extended library: K more procedural instances per sub-type (new ids, listed as "
                        "unseen_models in library.json); needs --output (default: 0, the default library)")
    parser.add_argument("--force", action="store_true", help="rebuild even if an up-to-date library exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.extra_instances < 0:
        parser.error("--extra-instances must be >= 0")
    if args.extra_instances and args.output is None:
        parser.error("--extra-instances needs --output DIR: the default library must stay the one the shipped "
                     "network was trained on")
    from scene3d_ros.world.cad_library import CadLibraryError, build_cad_library, check_cad_library

    start = time.perf_counter()
    try:
        library = None
        if not args.force:
            try:
                library = check_cad_library(args.output, seed=args.seed, extra_instances=args.extra_instances)
                print("the CAD library is up to date: kept (use --force to rebuild it)")
            except CadLibraryError as exc:
                print(f"building the CAD library: {str(exc).split('; run `build_cad_library')[0]}")
        if library is None:
            library = build_cad_library(args.output, seed=args.seed, progress=not args.quiet,
                                        extra_instances=args.extra_instances)
    except (CadLibraryError, OSError, ValueError, ImportError) as exc:
        print(f"build_cad_library: error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start

    print(f"CAD library at {library.root} "
          f"(seed {library.seed}, generator version {library.generator_version})")
    print(f"{'category':<12} {'models':>6} {'sub-types':>9}  sub-type names")
    for category in CATEGORIES:
        models = library.by_category(category)
        subtypes = sorted({m.subtype for m in models})
        print(f"{category:<12} {len(models):>6} {len(subtypes):>9}  {', '.join(subtypes)}")
    print(f"{'total':<12} {len(library.models):>6}")
    if library.unseen_models:
        print(f"unseen models: {len(library.unseen_models)} ({library.extra_instances} extra instance(s) per "
              f"sub-type, listed as unseen_models in {library.root / 'library.json'})")
    print(f"checksum {library.checksum}")
    print(f"done in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
