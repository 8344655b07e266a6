"""``train``: train Scene3DNet (network 1 + network 2) on generated datasets.

    train [--config config/train.yaml] [--set optim.lr=1e-4 data.batch_size=8 ...]
          [--output DIR] [--resume [CHECKPOINT]]
    torchrun --nproc_per_node=N -m scene3d_ros.cli.train ...      # data-parallel (DDP)

``--resume`` continues the run in ``--output`` from its ``last.pt`` (or from CHECKPOINT) exactly
where it stopped. SIGINT (Ctrl-C) or SIGTERM stop a run after the step in progress, with its
checkpoint written (a second signal stops at once). Exit codes: 0 done, 1 a problem with the data,
the CAD library or a checkpoint, or a loss that became non-finite (the message says what to do),
2 a bad config or option, 130 / 143 stopped by SIGINT / SIGTERM (resumable).
See :mod:`scene3d_ros.training.detector` for the config sections and the files a run writes.
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
from scene3d_ros.training.detector import load_train_config, train
from scene3d_ros.world.cad_library import CadLibraryError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train", description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, default_config=packaged_config_file("train.yaml"))
    parser.add_argument("--output", default=None, help="run folder (default: run.output of the config)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                        help="continue the run in --output from its last.pt, or from CHECKPOINT")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config, model_config = load_train_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    try:
        result = train(config, model_config, output=args.output, resume=args.resume)
    except ConfigError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    except (CheckpointError, DataError, CadLibraryError, FloatingPointError) as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":  # one summary per torchrun job
        print(f"train: {result.output}: step {result.step}, {result.seconds_per_step:.3f} s/step, "
              f"checkpoint {result.checkpoint}")
        if result.stopped_by is not None:
            print(f"train: stopped by {result.stopped_by} at step {result.step}; continue with: "
                  f"train --output {result.output} --resume (and the same --config/--set)", file=sys.stderr)
    if result.stopped_by is not None:
        return 128 + int(signal.Signals.__members__.get(result.stopped_by, signal.SIGTERM))
    return 0


if __name__ == "__main__":
    sys.exit(main())
