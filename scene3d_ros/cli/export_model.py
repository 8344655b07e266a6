"""export_model: turn a training checkpoint into the inference-only file that ships.

    export_model RUN/last.pt models/scene3d_default.pt [--dtype float16]
    export_model VIEWPOINT_RUN/best.pt models/viewpoint_default.pt     # the crop viewpoint stage

Floating-point weights are stored in half precision by default (half the size; loading casts
them back to float32), optimizer/scheduler/RNG state is dropped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from scene3d_ros.model import CheckpointError
from scene3d_ros.model.checkpoint import export_checkpoint
from scene3d_ros.model.viewpoint_checkpoint import export_viewpoint_checkpoint, is_viewpoint_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="export_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (e.g. RUN/last.pt)")
    parser.add_argument("output", type=Path, help="file to write (atomically)")
    parser.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16")
    args = parser.parse_args(argv)
    try:
        export = export_viewpoint_checkpoint if is_viewpoint_checkpoint(args.checkpoint) else export_checkpoint
        path = export(args.checkpoint, args.output, getattr(torch, args.dtype))
    except CheckpointError as exc:
        print(f"export_model: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, {args.dtype} weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
