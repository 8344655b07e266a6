"""``train_viewpoint``: train the crop viewpoint stage (rotation hypotheses from detection crops).

    train_viewpoint --output DIR [--config config/train_viewpoint.yaml]
                    [--set data.train=[DIR] data.val=DIR optim.max_steps=40000 ...] [--resume [CHECKPOINT]]
    torchrun --nproc_per_node=N -m scene3d_ros.cli.train_viewpoint ...      # data-parallel (DDP)

SIGINT (Ctrl-C) or SIGTERM stop a run after the step in progress with ``last.pt`` written;
``--resume`` continues it exactly. Exit codes: 0 done, 1 a problem with the data, the CAD library
or a checkpoint, 2 a bad config or option, 130 / 143 stopped by SIGINT / SIGTERM (resumable).
See :mod:`scene3d_ros.training.viewpoint`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from scene3d_ros.config import ConfigError, add_config_arguments
from scene3d_ros.model.checkpoint import CheckpointError
from scene3d_ros.paths import packaged_config_file
from scene3d_ros.training.datasets import DataError
from scene3d_ros.training.viewpoint import load_viewpoint_train_config, train_viewpoint
from scene3d_ros.world.cad_library import CadLibraryError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train_viewpoint", description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, default_config=packaged_config_file("train_viewpoint.yaml"))
    parser.add_argument("--output", default=None, help="run folder (default: run.output of the config)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                        help="continue the run in --output from its last.pt, or from CHECKPOINT")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_viewpoint_train_config(args.config, args.overrides)
        result = train_viewpoint(config, output=args.output, resume=args.resume)
    except ConfigError as exc:
        print(f"train_viewpoint: {exc}", file=sys.stderr)
        return 2
    except (CheckpointError, DataError, CadLibraryError, FloatingPointError) as exc:
        print(f"train_viewpoint: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        print(f"train_viewpoint: {result.output}: step {result.step}, {result.seconds_per_step:.3f} s/step, "
              f"checkpoint {result.checkpoint}")
        if result.stopped_by is not None:
            print(f"train_viewpoint: stopped by {result.stopped_by} at step {result.step}; continue with: "
                  f"train_viewpoint --output {result.output} --resume (and the same --config/--set)", file=sys.stderr)
    if result.stopped_by is not None:
        return 128 + int(signal.Signals.__members__.get(result.stopped_by, signal.SIGTERM))
    return 0


if __name__ == "__main__":
    sys.exit(main())
