"""Per-call speed of a potential's energy+forces (eager vs TorchScript) and of the torch neighbour search, on
DeePMD water: a developer's probe, not part of the benchmark tables.

Usage (repository root, venv active):  python benchmarks/models_speed.py [--backbone painn] [--repeat 20]
Reads the first frame of ../shared/data/water/deepmd_water/data_0 (192 atoms, 12.44 A cubic box); the neighbour
search also runs on it repeated 4x4x4 (12,288 atoms). Times in ms per call, median over --repeat.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import REPO_ROOT, timed_calls  # noqa: E402
from maskpot.data import read  # noqa: E402
from maskpot.models import ModelConfig, build_potential  # noqa: E402
from maskpot.models.neighbors import neighbor_pairs  # noqa: E402
from maskpot.models.potential import species_indices  # noqa: E402

DATA = REPO_ROOT.parent / "shared" / "data" / "water" / "deepmd_water" / "data_0"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="painn")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    atoms = read(DATA)[0].to_atoms()
    pbc = torch.tensor([True, True, True])
    for dtype in ("float32", "float64"):
        td = getattr(torch, dtype)
        config = ModelConfig(backbone=args.backbone, dtype=dtype, avg_neighbors=32.0)  # random weights, no data
        pot = build_potential(config)
        pos, cell = torch.tensor(atoms.positions, dtype=td), torch.tensor(atoms.cell.array, dtype=td)
        ei, shift = neighbor_pairs(pos, cell, pbc, pot.cutoff)
        shift = shift @ cell
        sp = torch.from_numpy(species_indices(atoms.numbers, config.species))
        batch = torch.zeros(len(pos), dtype=torch.int64)
        scripted = torch.jit.script(pot)
        eager = np.median(timed_calls(lambda: pot.energy_forces(pos, sp, ei, shift, batch, 1, False), 1, args.repeat))
        ts = np.median(timed_calls(lambda: scripted.energy_forces(pos, sp, ei, shift, batch, 1, False), 1,
                                   args.repeat))
        print(f"{args.backbone} {dtype} {len(atoms)} atoms, {ei.shape[1]} edges, energy+forces ms: eager {eager:.1f}, "
              f"TorchScript {ts:.1f}")
    search = torch.jit.script(neighbor_pairs)
    for n in (1, 4):
        big = atoms.repeat(n)
        pos, cell = torch.tensor(big.positions), torch.tensor(big.cell.array)
        t = np.median(timed_calls(lambda: search(pos, cell, pbc, 5.0), 1, max(3, args.repeat // n ** 2)))
        print(f"neighbor_pairs (TorchScript) float64 {len(big)} atoms ({big.cell[0, 0]:.2f} A box), cutoff 5 A, "
              f"ms: {t:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
