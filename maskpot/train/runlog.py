"""Per-epoch run log shared by pretraining and finetuning: CSV next to the checkpoint, rewritten atomically."""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
from pathlib import Path

import torch

from maskpot.atomic import atomic_write


def sibling(path: str | os.PathLike, suffix: str) -> Path:
    """``model.ckpt`` -> ``model<suffix>`` in the same folder (e.g. ``.log.csv``, ``.curve.png``)."""
    p = Path(path)
    return p.with_name(p.stem + suffix)


class RunLog:
    """Rows of per-epoch numbers, written as CSV after every epoch (the file is always complete)."""

    def __init__(self, path: str | os.PathLike, columns: list[str]) -> None:
        self.path = Path(path)
        self.columns = columns
        self.rows: list[dict] = []

    def add(self, **row) -> None:
        self.rows.append({c: row.get(c) for c in self.columns})
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns)
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in r.items()})
        text = buf.getvalue()
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(text))


def check_finite(loss: torch.Tensor, epoch: int, batch: int, stage: str) -> None:
    """Raise a one-line ValueError when the loss is NaN/inf (nothing is saved after this)."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise ValueError(f"{stage}: loss is {value} at epoch {epoch} batch {batch}; lower the learning rate or check "
                         f"the data for NaN labels (no checkpoint written)")


def progress(enabled: bool = True):
    """A rich progress bar for epochs (to stderr); a null context yielding None when ``enabled`` is False."""
    if not enabled:
        return contextlib.nullcontext()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[info]}"), console=Console(stderr=True), transient=False)
