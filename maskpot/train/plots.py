"""PNG plots (matplotlib, Agg backend): learning curves and force parity."""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from maskpot.atomic import atomic_write  # noqa: E402


def _save(fig, path: str | os.PathLike) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def learning_curve(rows: Sequence[dict], path: str | os.PathLike, keys: Sequence[str], title: str = "") -> None:
    """Plot the columns ``keys`` of a run log (one dict per evaluation) against optimiser step on a log axis."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    steps = [r["step"] for r in rows]
    for k in keys:
        ys = [r.get(k) for r in rows]
        if any(y is not None and np.isfinite(y) and y > 0 for y in ys):
            ax.plot(steps, [np.nan if y is None else y for y in ys], marker="o", ms=3, label=k)
    ax.set_xlabel("optimiser step")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)


def force_parity(ref: np.ndarray, pred: np.ndarray, path: str | os.PathLike, title: str = "") -> None:
    """Predicted vs reference force components (eV/Angstrom)."""
    ref, pred = np.ravel(ref), np.ravel(pred)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(ref, pred, s=2, alpha=0.4)
    lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel("reference force (eV/Å)")
    ax.set_ylabel("predicted force (eV/Å)")
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)
