"""Training curves of a crop viewpoint stage run against the crops seen: the losses, and the
validation MedErr / Acc_pi/6 / flip share / best-of-k Acc_pi/6 and, for a stage with a shape
head, its shape top-1, with a mask head, its mask IoU (``train_viewpoint``'s ``metrics.csv`` and ``val_metrics.csv``).

    .venv/bin/python scripts/viewpoint_curves.py RUN_DIR OUT.png [--title TEXT]
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from scene3d_ros.paths import atomic_write_bytes


def read_csv(path: Path) -> list[dict[str, float]]:
    """Rows of a metrics CSV as floats (empty cells left out)."""
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def plot(run: Path, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    train = read_csv(run / "metrics.csv")
    val = read_csv(run / "val_metrics.csv") if (run / "val_metrics.csv").is_file() else []
    figure = Figure(figsize=(14, 4.2), dpi=100)
    ax_loss, ax_err, ax_acc = figure.subplots(1, 3)
    crops = [r["crops_seen"] / 1e3 for r in train]
    for key in ("loss_azimuth", "loss_elevation", "loss_inplane", "loss_offset", "loss_direction", "loss_shape",
                "loss_mask"):
        if train and key in train[0]:  # direction / shape / mask only with their optim weight > 0
            ax_loss.plot(crops, [r[key] for r in train], label=key.removeprefix("loss_"), linewidth=1)
    ax_loss.set(title="training losses", xlabel="crops seen (thousands)")
    ax_loss.legend(fontsize=8)
    seen = [r["crops_seen"] / 1e3 for r in val]
    ax_err.plot(seen, [r["med_err_deg"] for r in val], "o-", label="MedErr, top-1")
    ax_err.plot(seen, [r["best_of_k_med_deg"] for r in val], "s--", label="MedErr, best of k")
    ax_err.set(title="validation MedErr (deg, mean over categories)", xlabel="crops seen (thousands)")
    ax_err.legend(fontsize=8)
    ax_acc.plot(seen, [r["acc_pi6"] for r in val], "o-", label="Acc_pi/6, top-1")
    ax_acc.plot(seen, [r["best_of_k_acc_pi6"] for r in val], "s--", label="Acc_pi/6, best of k")
    ax_acc.plot(seen, [r["flips"] for r in val], "^:", label="flips > 150 deg")
    if val and "shape_top1" in val[0]:
        ax_acc.plot(seen, [r["shape_top1"] for r in val], "d-.", label="shape head top-1")
    if val and val[0].get("mask_iou") not in (None, ""):
        ax_acc.plot(seen, [r["mask_iou"] for r in val], "x-", label="mask head IoU (crop square)")
    ax_acc.set(title="validation shares", xlabel="crops seen (thousands)", ylim=(0, 1))
    ax_acc.legend(fontsize=8)
    for ax in (ax_loss, ax_err, ax_acc):
        ax.grid(True, alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(out, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="train_viewpoint run folder")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--title", default="crop viewpoint stage")
    args = parser.parse_args(argv)
    plot(args.run, args.out, args.title)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
