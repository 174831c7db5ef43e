"""The compute floor of a model on this core: its FLOPs per atom-step (energy + forces), counted, over the rate
this core sustains on a large matrix product in the model's dtype, measured in the same run.

FLOPs are those torch.profiler counts (matrix products: the per-edge filters and the atom-wise layers, which
are nearly all of the arithmetic); element-wise work and data movement are left out, so the floor
is a lower bound that no implementation reaches. ``x compute floor`` in speed.md is a row's us/atom-step over it.
"""

from __future__ import annotations

import time

import numpy as np
import torch


def gemm_rate(dtype: str, n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of an n x n x n matrix product in ``dtype`` on this thread (median of ``repeats``)."""
    dt = torch.float64 if dtype == "float64" else torch.float32
    a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2.0 * n ** 3 / float(np.median(times))


def flops_per_call(frame, model_file) -> float:
    """Counted FLOPs of one call of an exported ASE-target file (neighbour search, energy, forces) on ``frame``:
    torch.profiler's FLOP estimates of its matrix products, backward (force) products included. Give it an
    export with ``kernels="reference"``: the profiler counts nothing inside a fused kernel."""
    from torch.profiler import ProfilerActivity, profile

    module = torch.jit.load(str(model_file))
    args = (torch.tensor(frame.positions, dtype=torch.float64), torch.tensor(frame.numbers, dtype=torch.long),
            torch.tensor(np.asarray(frame.cell), dtype=torch.float64), torch.tensor([True, True, True]))
    module(*args)  # the first calls of a TorchScript module optimise it
    module(*args)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        module(*args)
    return float(sum(e.flops for e in prof.key_averages() if e.flops))


def floor_us_per_atom_step(frame, model_file, rate: float) -> tuple[float, float]:
    """(counted FLOPs per atom-step, floor in us/atom-step at ``rate`` FLOP/s) of an ASE-target export."""
    per_atom = flops_per_call(frame, model_file) / len(frame)
    return per_atom, 1e6 * per_atom / rate
