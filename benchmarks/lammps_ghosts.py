"""pair_style maskpot: ms/step with ghosts folded onto their owners (one rank) against the receptive-field halo.

Usage (repo root, PYTHONPATH=., plugin built, LD_LIBRARY_PATH=$VIRTUAL_ENV/lib):
    python benchmarks/lammps_ghosts.py model-lammps.pt [--replicate 1] [--steps 50] [--nprocs 1 2]
Runs NVE water (the 64-water box made by maskpot.data.tip3p, `replicate N N N` for more) with
`pair_style maskpot ghosts halo` and `ghosts auto` (fold on one rank, halo on several) and prints LAMMPS' loop
time per step and the ghost count. No timing is asserted anywhere: this machine is shared and noisy.
"""

import argparse
import re
import tempfile
from pathlib import Path

import numpy as np
from ase import Atoms

from maskpot.data.tip3p import water_box_positions
from maskpot.lammps import plugin_path, run_lammps, write_data

DECK = """
units metal
atom_style atomic
read_data {data}
replicate {rep} {rep} {rep}
plugin load {plugin}
pair_style maskpot ghosts {ghosts}
pair_coeff * * {model} O H
velocity all create 300.0 4928459 mom yes rot yes dist gaussian
fix nve all nve
timestep 0.0005
thermo {steps}
run {steps}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--replicate", type=int, default=1, help="copies of the 64-water box per axis")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--nprocs", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        atoms = Atoms(numbers=[8, 1, 1] * 64, positions=water_box_positions(64, 12.44, np.random.default_rng(0)),
                      cell=np.eye(3) * 12.44, pbc=True)
        data = write_data(atoms, Path(tmp) / "water.data", "O,H")
        for nprocs in args.nprocs:
            for ghosts in ("halo", "auto"):
                deck = DECK.format(data=data, rep=args.replicate, plugin=plugin_path(), ghosts=ghosts,
                                   model=Path(args.model).resolve(), steps=args.steps)
                log = run_lammps(deck, nprocs=nprocs, cwd=tmp).log
                seconds, atoms_n = re.search(r"Loop time of (\S+) on \d+ procs for \d+ steps with (\d+) atoms", log).groups()
                nghost = re.search(r"Nghost:\s+(\S+) ave", log).group(1)
                print(f"{atoms_n} atoms, {nprocs} rank(s), ghosts {ghosts:4s}: {1e3 * float(seconds) / args.steps:9.1f} "
                      f"ms/step, {nghost} ghosts per rank")


if __name__ == "__main__":
    main()
