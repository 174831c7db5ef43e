"""Train/validation/test splits by shuffled frame index.

This splits a list of frames at random (with a fixed seed). To split *by file* instead (e.g. DeePMD-kit's water
example trains on data_0..data_2 and validates on data_3), read the files separately and pass each list where it
belongs: ``train = read_many([...]); val = read(".../data_3")``; no function is needed for that.
"""

from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np

T = TypeVar("T")

__all__ = ["split_frames"]


def split_frames(frames: Sequence[T], n_train: int | None = None,
                 fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                 seed: int = 0) -> tuple[list[T], list[T], list[T]]:
    """Shuffle indices with ``seed`` and cut them into (train, val, test) by ``fractions``.

    ``n_train`` keeps only the first ``n_train`` frames of the shuffled training part (learning curves: the
    validation/test parts stay the same for every ``n_train`` with the same seed). Same inputs -> same split.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers with a positive sum, got {fractions}")
    total = sum(fractions)
    n = len(frames)
    order = np.random.default_rng(seed).permutation(n)
    n_tr = int(round(n * fractions[0] / total))
    # the test part takes the rounding remainder, unless it was asked to be empty
    n_va = n - n_tr if fractions[2] == 0 else min(int(round(n * fractions[1] / total)), n - n_tr)
    train_idx, val_idx, test_idx = order[:n_tr], order[n_tr:n_tr + n_va], order[n_tr + n_va:]
    if n_train is not None:
        if n_train < 0 or n_train > len(train_idx):
            raise ValueError(f"n_train={n_train} but the training part has only {len(train_idx)} of {n} frames")
        train_idx = train_idx[:n_train]
    pick = lambda idx: [frames[int(i)] for i in idx]  # noqa: E731
    return pick(train_idx), pick(val_idx), pick(test_idx)
