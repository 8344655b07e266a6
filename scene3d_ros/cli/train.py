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
import sys

from scene3d_ros.cli.training_cli import run_training, training_parser
from scene3d_ros.training.detector import load_train_config, train


def build_parser() -> argparse.ArgumentParser:
    return training_parser("train", __doc__.split("\n\n")[0], "train.yaml")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run(args):
        config, model_config = load_train_config(args.config, args.overrides)
        return train(config, model_config, output=args.output, resume=args.resume)

    return run_training("train", args, run)


if __name__ == "__main__":
    sys.exit(main())
