"""What the two training entry points (``train``, ``train_viewpoint``) share: the parser and
the run with its exit codes (0 done, 1 data / CAD library / checkpoint / non-finite loss, 2 a bad
config, 130 / 143 stopped by SIGINT / SIGTERM and resumable)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from scene3d_ros.config import ConfigError, add_config_arguments
from scene3d_ros.model.checkpoint import CheckpointError
from scene3d_ros.paths import packaged_config_file
from scene3d_ros.training.datasets import DataError
from scene3d_ros.world.cad_library import CadLibraryError


def training_parser(prog: str, description: str, config_file: str) -> argparse.ArgumentParser:
    """``--config`` (default ``config/<config_file>``), ``--set``, ``--output``, ``--resume [CHECKPOINT]``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_config_arguments(parser, default_config=packaged_config_file(config_file))
    parser.add_argument("--output", default=None, help="run folder (default: run.output of the config)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                        help="continue the run in --output from its last.pt, or from CHECKPOINT")
    return parser


def run_training(prog: str, args: argparse.Namespace, run: Callable[[argparse.Namespace], Any]) -> int:
    """Call ``run(args)`` (loads the config and trains; returns the trainer's result with ``output``,
    ``step``, ``seconds_per_step``, ``checkpoint``, ``stopped_by``), print its summary once per
    torchrun job and map the outcome to the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = run(args)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except (CheckpointError, DataError, CadLibraryError, FloatingPointError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":  # one summary per torchrun job
        print(f"{prog}: {result.output}: step {result.step}, {result.seconds_per_step:.3f} s/step, "
              f"checkpoint {result.checkpoint}")
        if result.stopped_by is not None:
            print(f"{prog}: stopped by {result.stopped_by} at step {result.step}; continue with: "
                  f"{prog} --output {result.output} --resume (and the same --config/--set)", file=sys.stderr)
    if result.stopped_by is not None:
        return 128 + int(signal.Signals.__members__.get(result.stopped_by, signal.SIGTERM))
    return 0
