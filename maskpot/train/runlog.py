"""Per-evaluation run log shared by pretraining and finetuning: CSV next to the checkpoint, rewritten atomically."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from maskpot.atomic import atomic_write


def sibling(path: str | os.PathLike, suffix: str) -> Path:
    """``model.ckpt`` -> ``model<suffix>`` in the same folder (e.g. ``.log.csv``, ``.curve.png``)."""
    p = Path(path)
    return p.with_name(p.stem + suffix)


class RunLog:
    """Rows of per-evaluation numbers, written as CSV after every evaluation (the file is always complete)."""

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
