"""What a training run writes to its folder: file names, metrics CSVs, curves and checkpoints.

Only the main rank writes (:class:`RunOutput`); every write is atomic, so a crash or a stop never
leaves half a file.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scene3d_ros.paths import atomic_write_bytes, atomic_write_text

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
METRICS_FILE = "metrics.csv"
VAL_METRICS_FILE = "val_metrics.csv"
CURVES_FILE = "curves.png"
CONFIG_FILE = "config.yaml"


@dataclass
class MetricsLog:
    """Rows of a CSV file, rewritten atomically at every append (a crash never leaves half a row)."""

    path: Path
    columns: list[str] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def resume(cls, path: Path, up_to_step: int) -> MetricsLog:
        """The rows of an existing file up to ``up_to_step`` (later ones belong to steps that will be redone)."""
        log = cls(path)
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                log.columns = list(reader.fieldnames or []) or None
                log.rows = [row for row in reader if row.get("step") and int(row["step"]) <= up_to_step]
        return log

    def append(self, row: dict[str, Any]) -> None:
        """Add a row in memory (the first row fixes the columns); :meth:`write` saves the file."""
        if self.columns is None:
            self.columns = list(row)
        self.rows.append({key: row.get(key, "") for key in self.columns})

    def write(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns or [], lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({key: _fmt(value) for key, value in row.items()})
        atomic_write_text(self.path, buffer.getvalue())

    def series(self, column: str) -> tuple[list[int], list[float]]:
        steps, values = [], []
        for row in self.rows:
            value = row.get(column, "")
            if value not in ("", None):
                steps.append(int(row["step"]))
                values.append(float(value))
        return steps, values


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def plot_curves(path: Path, train_log: MetricsLog, val_log: MetricsLog | None) -> None:
    """Training curves (every loss and the total against the step; learning rate; validation total)
    as a PNG written atomically (matplotlib's Agg backend, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    loss_columns = [c for c in (train_log.columns or []) if c.startswith("loss_")]
    figure = Figure(figsize=(13, 4.2), dpi=100)
    ax_loss, ax_total, ax_lr = figure.subplots(1, 3)
    for column in loss_columns:
        ax_loss.plot(*train_log.series(column), label=column.removeprefix("loss_"), linewidth=1)
    ax_loss.set(title="losses (train)", xlabel="step", yscale="log")
    ax_loss.legend(fontsize=7)
    ax_total.plot(*train_log.series("total"), label="train", linewidth=1.2)
    if val_log is not None and val_log.rows:
        ax_total.plot(*val_log.series("total"), "o-", label="val", linewidth=1.2, markersize=3)
    ax_total.set(title="total loss", xlabel="step", yscale="log")
    ax_total.legend(fontsize=8)
    ax_lr.plot(*train_log.series("lr"), linewidth=1.2)
    ax_lr.set(title="learning rate", xlabel="step")
    for ax in (ax_loss, ax_total, ax_lr):
        ax.grid(True, alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


class RunOutput:
    """Everything a run writes; only the main rank writes (other ranks' calls do nothing).

    ``written`` lists the files this process wrote (for the DDP test's debug dump).
    """

    def __init__(self, root: Path, enabled: bool, keep_checkpoints: int) -> None:
        self.root = root
        self.enabled = enabled
        self.keep_checkpoints = keep_checkpoints
        self.written: set[str] = set()

    def path(self, name: str) -> Path:
        return self.root / name

    def write_text(self, name: str, text: str) -> None:
        if self.enabled:
            atomic_write_text(self.path(name), text)
            self.written.add(name)

    def write_log(self, log: MetricsLog) -> None:
        if self.enabled:
            log.write()
            self.written.add(log.path.name)

    def write_curves(self, train_log: MetricsLog, val_log: MetricsLog | None) -> None:
        if self.enabled and train_log.rows:
            plot_curves(self.path(CURVES_FILE), train_log, val_log)
            self.written.add(CURVES_FILE)

    def write_checkpoint(self, step: int, save: Callable[[Path], None]) -> None:
        """``save(path)`` writes ``last.pt``; it is copied to ``step_XXXXXX.pt`` and old step files pruned."""
        if not self.enabled:
            return
        last = self.path(LAST_CHECKPOINT)
        save(last)
        name = f"step_{step:06d}.pt"
        link = self.path(f".{name}.{os.getpid()}.link")
        try:  # a hard link: no second copy of the bytes; renamed into place atomically
            link.unlink(missing_ok=True)
            os.link(last, link)
            os.replace(link, self.path(name))
        except OSError:  # no hard links on this file system
            link.unlink(missing_ok=True)
            atomic_write_bytes(self.path(name), last.read_bytes())
        self.written.update((LAST_CHECKPOINT, name))
        for old in sorted(self.root.glob("step_*.pt"))[:-self.keep_checkpoints]:
            old.unlink(missing_ok=True)


__all__ = ["BEST_CHECKPOINT", "CONFIG_FILE", "CURVES_FILE", "LAST_CHECKPOINT", "METRICS_FILE", "MetricsLog",
           "RunOutput", "VAL_METRICS_FILE", "plot_curves"]
