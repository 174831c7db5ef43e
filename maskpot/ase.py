"""ASE calculator for an export made with ``maskpot export --target ase``.

Energy in eV, forces in eV/Angstrom, stress in eV/Angstrom^3 (ASE's convention, periodic cells only).
Force-centric models (GNS) predict forces only: they implement ``forces`` alone, so asking for their energy
or stress raises ASE's ``PropertyNotImplementedError`` (ASE dynamics that only need forces, such as
``VelocityVerlet`` or ``Langevin`` without an energy logger, work). Loading needs torch alone: the file
carries the network and its metadata. A structure the model cannot evaluate (a non-finite position, or an
energy or force that comes out NaN or infinite, e.g. two atoms on the same spot) raises a one-line
RuntimeError naming the atom or the closest pair. ``device`` ("cpu", "cuda", "auto": cuda when torch sees one)
is where the model runs; results come back to the CPU as numpy arrays.
"""

from __future__ import annotations

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from maskpot.errors import first_line
from maskpot.export.loading import load_exported, model_device


class MaskpotCalculator(Calculator):
    """``MaskpotCalculator("model-ase.pt", device="auto")``: energies, forces and (energy-centric models) stress."""

    def __init__(self, model_file: str, device: str = "auto", **kwargs):
        super().__init__(**kwargs)
        self.model, self.metadata = load_exported(model_file, device)
        self.device = model_device(self.model)
        if self.metadata["target"] != "ase":
            raise ValueError(f"{model_file}: exported for {self.metadata['target']}; re-export with --target ase")
        self.energy_centric = self.metadata["model_kind"] == "energy-centric"
        self.implemented_properties = (["energy", "free_energy", "forces", "stress"] if self.energy_centric
                                       else ["forces"])

    def calculate(self, atoms=None, properties=("forces",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.any() and atoms.cell.rank < 3:
            raise ValueError("periodic atoms need a full cell (3 non-zero vectors)")
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(self.metadata["species_symbols"]))
        if unknown:
            raise ValueError(f"element(s) {', '.join(unknown)} not known to this model ({', '.join(self.metadata['species_symbols'])})")
        try:
            energy, forces, virial = self.model(
                torch.tensor(atoms.positions, dtype=torch.float64, device=self.device),
                torch.tensor(atoms.numbers, dtype=torch.long, device=self.device),
                torch.tensor(np.array(atoms.cell), dtype=torch.float64, device=self.device),
                torch.tensor(pbc, device=self.device),
            )
        except torch.jit.Error as exc:  # raised inside the TorchScript model: keep its message, not the traceback
            raise RuntimeError(first_line(exc)) from None
        self.results["forces"] = forces.detach().cpu().numpy().copy()
        if self.energy_centric:
            self.results["energy"] = self.results["free_energy"] = float(energy)
        if self.energy_centric and pbc.all():
            stress = -virial.detach().cpu().numpy() / atoms.get_volume()
            self.results["stress"] = stress.reshape(9)[[0, 4, 8, 5, 2, 1]]
