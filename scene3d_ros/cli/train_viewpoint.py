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
import sys

from scene3d_ros.cli.training_cli import run_training, training_parser
from scene3d_ros.training.viewpoint import load_viewpoint_train_config, train_viewpoint


def build_parser() -> argparse.ArgumentParser:
    return training_parser("train_viewpoint", __doc__.split("\n\n")[0], "train_viewpoint.yaml")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run(args):
        config = load_viewpoint_train_config(args.config, args.overrides)
        return train_viewpoint(config, output=args.output, resume=args.resume)

    return run_training("train_viewpoint", args, run)


if __name__ == "__main__":
    sys.exit(main())
