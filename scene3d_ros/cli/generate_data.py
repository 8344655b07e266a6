"""``generate_data``: render a synthetic Pascal3D+-like dataset into shards.

    generate_data [--config config/generate_data.yaml] [--set output.num_scenes=5000 ...]
                  [--output DIR] [--workers N] [--force]

Re-running with the same config completes an interrupted run (existing shards are verified by
sha256 and kept); a folder holding a dataset of another config is refused unless ``--force``.
See :mod:`scene3d_ros.data.shards` for the file format.
"""

from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from scene3d_ros.config import ConfigError, add_config_arguments, dataclass_from_dict, load_config
from scene3d_ros.data.shards import (
    DatasetBusyError,
    DatasetMismatchError,
    GenerateConfig,
    default_output_dir,
    generate_dataset,
)
from scene3d_ros.paths import packaged_config_file


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="generate_data", description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, default_config=packaged_config_file("generate_data.yaml"))
    parser.add_argument("--output", default=None,
                        help=f"dataset folder (default: output.directory, else {default_output_dir()})")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: output.workers)")
    parser.add_argument("--force", action="store_true",
                        help="delete an existing dataset of a different config in the output folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        raw = load_config(args.config, args.overrides)
        config = dataclass_from_dict(GenerateConfig, raw, "generate_data")
    except ConfigError as exc:
        print(f"generate_data: {exc}", file=sys.stderr)
        return 2
    output = args.output or config.output.directory or default_output_dir()
    workers = args.workers or config.output.workers
    start = time.perf_counter()
    with tqdm(total=config.output.num_scenes, unit="scene", desc="generate_data") as bar:
        try:
            summary = generate_dataset(config, output=output, workers=workers, force=args.force,
                                       progress=bar.update)
        except (DatasetMismatchError, DatasetBusyError) as exc:
            bar.close()
            print(f"generate_data: {exc}", file=sys.stderr)
            return 2
    elapsed = time.perf_counter() - start
    scenes = sum(s["num_scenes"] for s in summary.manifest["shards"] if s["index"] in set(summary.generated))
    print(f"generate_data: {summary.output}: {len(summary.generated)} shard(s) generated ({scenes} scenes, "
          f"{scenes / max(elapsed, 1e-9):.1f} scenes/s), {len(summary.kept)} kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
