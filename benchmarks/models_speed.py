"""Per-call speed of a potential's energy+forces and of the torch neighbour search on DeePMD water.

Usage (from the repo root, PYTHONPATH=.):  python benchmarks/models_speed.py [--backbone painn] [--repeat 20]
Reads ../shared/data/water/deepmd_water/data_0 (192 atoms, 12.44 A cubic box) and tiles it 4x4x4 for ~12k atoms.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from maskpot.models import ModelConfig, build_potential
from maskpot.models.neighbors import neighbor_pairs

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "water" / "deepmd_water" / "data_0"


def load_frame():
    coord = np.load(DATA / "set.000" / "coord.npy")[0].reshape(-1, 3)
    box = np.load(DATA / "set.000" / "box.npy")[0].reshape(3, 3)
    types = np.loadtxt(DATA / "type.raw", dtype=np.int64)  # 0 = O, 1 = H
    species = np.where(types == 0, 1, 0)  # model species [1, 8]: H -> 0, O -> 1
    return coord, box, species


def tile(coord, box, species, n):
    shifts = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3) @ box
    return (coord[None] + shifts[:, None]).reshape(-1, 3), box * n, np.tile(species, len(shifts))


def timeit(fn, repeat):
    """Median and best seconds per call (the best is the least disturbed by other load on a shared machine)."""
    for _ in range(3):  # warm-up (TorchScript's profiling executor optimises during the first calls)
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="painn")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    coord, box, species = load_frame()
    pbc = torch.tensor([True, True, True])
    for dtype in ("float32", "float64"):
        td = getattr(torch, dtype)
        pot = build_potential(ModelConfig(backbone=args.backbone, dtype=dtype))
        pos, cell = torch.tensor(coord, dtype=td), torch.tensor(box, dtype=td)
        ei, sh = neighbor_pairs(pos, cell, pbc, pot.cutoff)
        sh = sh @ cell
        sp, batch = torch.tensor(species), torch.zeros(len(pos), dtype=torch.int64)
        t = timeit(lambda: pot.energy_forces(pos, sp, ei, sh, batch, 1, False), args.repeat)
        scripted = torch.jit.script(pot)
        ts = timeit(lambda: scripted.energy_forces(pos, sp, ei, sh, batch, 1, False), args.repeat)
        print(f"{args.backbone} {dtype} 192 atoms, {ei.shape[1]} edges, energy+forces ms (median/best): "
              f"eager {1e3 * t[0]:.1f}/{1e3 * t[1]:.1f}, TorchScript {1e3 * ts[0]:.1f}/{1e3 * ts[1]:.1f}")
    search = torch.jit.script(neighbor_pairs)
    for n in (1, 4):
        c, b, _ = tile(coord, box, species, n)
        pos, cell = torch.tensor(c), torch.tensor(b)
        t = timeit(lambda: search(pos, cell, pbc, 5.0), max(3, args.repeat // n**2))
        print(f"neighbor_pairs (TorchScript) float64 {len(c)} atoms ({b[0, 0]:.2f} A box), cutoff 5, ms (median/best): "
              f"{1e3 * t[0]:.1f}/{1e3 * t[1]:.1f}")


if __name__ == "__main__":
    main()
