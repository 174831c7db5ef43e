"""pair_style maskpot through `lmp` and `mpirun -np N lmp`: thermo and dumped forces against the toy model's
Python reference, domain decomposition (1 vs 2 ranks, a rank with no atoms), NVE conservation, and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from water_structures import disordered_water, triclinic
from toymodel import reference

from maskpot.lammps import run_lammps, write_data

NKTV2P_METAL = 1.6021765e6  # bar per eV/A^3 (LAMMPS' force->nktv2p for units metal)


def deck(data: Path, model: Path, plugin: Path, body: str, units: str = "metal", before_box: str = "",
         elements: str = "O H", style: str = "maskpot") -> str:
    return f"""
units {units}
atom_style atomic
boundary p p p
{before_box}
read_data {data}
plugin load {plugin}
pair_style {style}
pair_coeff * * {model} {elements}
thermo_style custom step pe press pxx pyy pzz pxy pxz pyz etotal
thermo_modify format float %20.15g
{body}
"""


def run0(data, model, plugin, tmp: Path, nprocs: int = 1, before_box: str = "",
         style: str = "maskpot") -> tuple[dict, np.ndarray, str]:
    """thermo of `run 0` and the forces dumped sorted by atom ID."""
    tmp.mkdir(parents=True, exist_ok=True)
    body = f"dump f all custom 1 {tmp}/forces.dump id fx fy fz\ndump_modify f sort id format float %20.15g\nrun 0"
    result = run_lammps(deck(data, model, plugin, body, before_box=before_box, style=style), nprocs=nprocs, cwd=tmp)
    forces = np.loadtxt(tmp / "forces.dump", skiprows=9)
    return {k: v[-1] for k, v in result.last.items()}, forces[:, 1:], result.log


def pressure_tensor(thermo: dict) -> np.ndarray:
    xx, yy, zz, xy, xz, yz = (thermo[k] for k in ("Pxx", "Pyy", "Pzz", "Pxy", "Pxz", "Pyz"))
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def assert_reference(thermo: dict, forces: np.ndarray, atoms: Atoms, rel: float = 1e-10) -> None:
    ref = reference(atoms)
    assert thermo["PotEng"] == pytest.approx(ref["energy"], rel=rel, abs=0)
    assert np.abs(forces - ref["forces"]).max() <= rel * np.abs(ref["forces"]).max()
    expected = ref["virial"] / atoms.get_volume() * NKTV2P_METAL
    assert np.abs(pressure_tensor(thermo) - expected).max() <= 1e-9 * np.abs(expected).max()
    assert thermo["Press"] == pytest.approx(np.trace(expected) / 3, rel=1e-9)


@pytest.mark.parametrize("ghosts", ["auto", "halo"])
def test_lmp_run0_matches_reference(water_data, toy_model, plugin, tmp_path, ghosts):
    """One rank: ghosts folded onto their owners (auto) or the receptive-field halo (forced)."""
    atoms, data = water_data
    thermo, forces, log = run0(data, toy_model, plugin, tmp_path, style=f"maskpot ghosts {ghosts}")
    assert_reference(thermo, forces, atoms)
    if ghosts == "auto":
        assert "ghost atoms folded onto their owners" in log and "communication cutoff set" not in log
        nghost = float(re.search(r"Nghost:\s+(\S+) ave", log).group(1))
        assert nghost < 8 * len(atoms)  # a 6 A (cutoff + skin) shell: 6.8x the local atoms; the 10 A halo: 16x
    else:
        assert "maskpot: communication cutoff set to 10 A (receptive field 8 + skin 2)" in log


@pytest.mark.parametrize("nprocs", [2, 4])
@pytest.mark.parametrize("box", ["cubic", "triclinic"])
def test_ranks_match_one_rank(toy_model, plugin, tmp_path, box, nprocs):
    """Domain decomposition (halo) on 2 and 4 ranks equals one rank (folded ghosts) and the reference."""
    atoms = disordered_water() if box == "cubic" else triclinic(disordered_water(seed=1))
    data = write_data(atoms, tmp_path / "w.data", "O,H")
    one, forces_one, _ = run0(data, toy_model, plugin, tmp_path / "np1", nprocs=1)
    two, forces_two, log = run0(data, toy_model, plugin, tmp_path / f"np{nprocs}", nprocs=nprocs)
    grid = re.search(r"(\d+) by (\d+) by (\d+) MPI processor grid", log)
    assert np.prod([int(g) for g in grid.groups()]) == nprocs
    for key in ("PotEng", "Pxx", "Pyy", "Pzz", "Pxy", "Pxz", "Pyz"):
        assert two[key] == pytest.approx(one[key], rel=1e-12, abs=1e-9)
    assert np.abs(forces_two - forces_one).max() <= 1e-12 * np.abs(forces_one).max()
    assert_reference(two, forces_two, atoms)


def test_one_rank_runs_with_newton_off(water_data, toy_model, plugin, tmp_path):
    """Folded ghosts carry no forces, so one rank needs no reverse communication (pair_nequip users' newton off)."""
    atoms, data = water_data
    thermo, forces, log = run0(data, toy_model, plugin, tmp_path, before_box="newton off")
    assert "ghost atoms folded onto their owners" in log
    assert_reference(thermo, forces, atoms)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_box_smaller_than_cutoff(toy_model, plugin, tmp_path, nprocs):
    """One water in a 3.3 A box (cutoff 4 A): atoms see several images of each other and of themselves, which
    the folded graph holds as edges with different shifts (self edges included)."""
    from water_structures import generated_water

    atoms = generated_water(n_side=1, spacing=3.3)
    data = write_data(atoms, tmp_path / "tiny.data", "O,H")
    thermo, forces, _ = run0(data, toy_model, plugin, tmp_path / f"np{nprocs}", nprocs=nprocs)
    assert_reference(thermo, forces, atoms)


def long_box_water():
    """The disordered 12.4 A box repeated 4 times along x: with `processors 2 1 1` each rank's 24.8 A slab is
    wider than the two 10 A halos, so a rank sees only part of the other rank's atoms (in a smaller box the halo
    holds every atom and would hide a wrong halo)."""
    return disordered_water().repeat((4, 1, 1))


def test_partial_halo_matches_one_rank(toy_model, plugin, tmp_path):
    """2 ranks whose halos hold only part of the other rank's atoms (several images of some of them) equal one
    rank and the reference: the halo graph keeps one node per atom ID and each edge once."""
    atoms = long_box_water()
    data = write_data(atoms, tmp_path / "long.data", "O,H")
    one, forces_one, _ = run0(data, toy_model, plugin, tmp_path / "np1", nprocs=1)
    two, forces_two, log = run0(data, toy_model, plugin, tmp_path / "np2", nprocs=2, before_box="processors 2 1 1")
    assert "2 by 1 by 1 MPI processor grid" in log
    assert atoms.cell[0, 0] / 2 > 2 * 10.0  # a slab wider than its two halos (receptive field 8 + skin 2)
    for key in ("PotEng", "Pxx", "Pyy", "Pzz", "Pxy", "Pxz", "Pyz"):
        assert two[key] == pytest.approx(one[key], rel=1e-12, abs=1e-9)
    assert np.abs(forces_two - forces_one).max() <= 1e-12 * np.abs(forces_one).max()
    assert_reference(two, forces_two, atoms)


def test_halo_must_cover_the_receptive_field(toy_model, plugin, tmp_path):
    """Negative control on 2 ranks: the same model declaring receptive_field = cutoff gets a 6 A halo instead of
    10 A, and the energy of atoms whose neighbours' neighbours (owned by the other rank) lie beyond the halo comes
    out wrong. (On one rank every ghost is an image of a local atom, so no halo is too short; in a small box the
    halo holds every atom; a lattice-like box leaves gaps at the box faces: hence the long disordered one.)"""
    from toymodel import CUTOFF, save_toy_model

    atoms = long_box_water()
    data = write_data(atoms, tmp_path / "w.data", "O,H")
    energy = reference(atoms)["energy"]
    thermo, _, _ = run0(data, toy_model, plugin, tmp_path / "full", nprocs=2, before_box="processors 2 1 1")
    assert thermo["PotEng"] == pytest.approx(energy, rel=1e-10, abs=0)
    short = save_toy_model(tmp_path / "short-halo.pt", receptive_field=CUTOFF)
    thermo, _, log = run0(data, short, plugin, tmp_path / "short", nprocs=2, before_box="processors 2 1 1")
    assert "communication cutoff set to 6 A" in log
    assert abs(thermo["PotEng"] - energy) > 1e-6


def test_rank_without_atoms(toy_model, plugin, tmp_path):
    """A box twice as long as the water slab: with `processors 2 1 1` the second rank owns no atom, only ghosts."""
    atoms = disordered_water()
    atoms.wrap()
    atoms.set_cell(atoms.cell.array * [[2], [1], [1]], scale_atoms=False)
    data = write_data(atoms, tmp_path / "slab.data", "O,H")
    thermo, forces, log = run0(data, toy_model, plugin, tmp_path / "np2", nprocs=2, before_box="processors 2 1 1")
    nlocal_min = float(re.search(r"Nlocal:\s+\S+ ave\s+\S+ max\s+(\S+) min", log).group(1))
    assert nlocal_min == 0
    assert_reference(thermo, forces, atoms)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_nve_energy_error_is_second_order(water_data, toy_model, plugin, tmp_path, nprocs):
    """Velocity Verlet with exact forces (-dE/dx, ghost forces summed back) has an energy error that shrinks as
    dt^2; wrong or missing force contributions leave an error that does not. The toy model is not in equilibrium
    for water, so the run heats up: the error is measured against the potential energy swing."""
    atoms, data = water_data
    errors, swings = [], []
    for timestep, steps in ((0.0005, 160), (0.00025, 320)):
        body = f"""
neighbor 1.0 bin
velocity all create 300.0 12345 mom yes rot yes dist gaussian
fix integrate all nve
timestep {timestep}
thermo {steps // 8}
run {steps}
"""
        result = run_lammps(deck(data, toy_model, plugin, body), nprocs=nprocs, cwd=tmp_path)
        thermo = result.last
        assert thermo["Step"][-1] == steps
        errors.append(np.abs(thermo["TotEng"] - thermo["TotEng"][0]).max())
        swings.append(np.ptp(thermo["PotEng"]))
        assert re.search(r"Neighbor list builds = [1-9]", result.log)  # atoms re-binned (and moved between ranks)
        assert "Dangerous builds = 0" in result.log
    assert min(swings) > 1.0  # eV: it really moved
    assert errors[1] < 1e-3 * swings[1], (errors, swings)
    assert errors[0] / errors[1] > 3.0, errors  # ~4 for a second-order error


def save_old_interface_model(path: Path) -> Path:
    """A scripted module with the metadata attributes but the pre-edge_shift forward (5 arguments)."""
    import torch

    from toymodel import ToyLammpsModel

    class OldInterface(ToyLammpsModel):
        def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                    n_local: int, compute_virial: bool) -> torch.Tensor:
            return positions

    torch.jit.save(torch.jit.script(OldInterface()), str(path))
    return path


@pytest.mark.parametrize("case, pattern", [
    ("missing model", r"maskpot model file \S*nope\.pt does not exist"),
    ("corrupt model", r"cannot load maskpot model file \S*corrupt\.pt"),
    ("openmm model", r"model exported for openmm: re-export with --target lammps"),
    ("units lj", r"pair_style maskpot supports units metal and real, not units lj"),
    ("unknown element", r"unknown element 'Q' for atom type 2"),
    ("element not in model", r"element C \(atom type 2\) is not in the species of model"),
    ("newton off", r"pair_style maskpot requires newton pair on with the ghost halo"),
    ("too few elements", r"expected '\* \* model.pt' and 2 element names"),
    ("per-atom virial", r"pair_style maskpot does not compute per-atom virials"),
    ("bad ghosts mode", r"pair_style maskpot ghosts must be auto, fold, halo or exchange, not 'all'"),
    ("exchange without layers", r"ghosts exchange: model \S*toy\S*\.pt has no layer-wise interface; re-export"),
    ("fold on two ranks", r"pair_style maskpot ghosts fold needs one MPI rank \(running on 2\)"),
    ("old interface", r"old-interface\.pt: its forward takes 5 arguments, this pair style passes 6 .*re-export"),
])
def test_bad_input_is_a_lammps_error(case, pattern, water_data, toy_model, toy_model_openmm, plugin, tmp_path):
    _, data = water_data
    model, units, before, elements, body, style, nprocs = toy_model, "metal", "", "O H", "run 0", "maskpot", 1
    if case == "missing model":
        model = tmp_path / "nope.pt"
    elif case == "corrupt model":
        model = tmp_path / "corrupt.pt"
        model.write_bytes(b"not a zip archive")
    elif case == "openmm model":
        model = toy_model_openmm
    elif case == "units lj":
        units = "lj"
    elif case == "unknown element":
        elements = "O Q"
    elif case == "element not in model":
        elements = "O C"
    elif case == "newton off":
        before, nprocs = "newton off", 2
    elif case == "too few elements":
        elements = "O"
    elif case == "per-atom virial":
        body = "compute s all stress/atom NULL\ncompute p all reduce sum c_s[1]\nthermo_style custom step c_p\nrun 0"
    elif case == "bad ghosts mode":
        style = "maskpot ghosts all"
    elif case == "exchange without layers":  # the toy model has only the one-call forward
        style = "maskpot ghosts exchange"
    elif case == "fold on two ranks":
        style, nprocs = "maskpot ghosts fold", 2
    elif case == "old interface":
        model = save_old_interface_model(tmp_path / "old-interface.pt")
    with pytest.raises(RuntimeError, match=r"LAMMPS failed: ERROR.*" + pattern):
        run_lammps(deck(data, model, plugin, body, units=units, before_box=before, elements=elements, style=style),
                   nprocs=nprocs, cwd=tmp_path)


def test_lammps_blas_no_longer_shadows_torch(water_data, toy_model, plugin, tmp_path):
    """liblammps.so exports a reference dgemm_ that, loaded first, shadows libtorch's (float64 models ran 2-4x
    slower). `run_lammps` preloads libtorch_cpu.so, so the plugin finds torch's own dgemm_; `lmp` started by hand
    without it gets a WARNING naming the fix. The numbers agree either way."""
    import subprocess

    from maskpot.lammps.plugin import engine_environment, executable

    atoms, data = water_data
    thermo, forces, log = run0(data, toy_model, plugin, tmp_path / "preloaded")
    assert "libtorch_cpu.so" in engine_environment()["LD_PRELOAD"]
    assert "shadows libtorch" not in log
    env = engine_environment()
    env.pop("LD_PRELOAD")
    (tmp_path / "plain").mkdir()
    body = f"dump f all custom 1 {tmp_path}/plain/forces.dump id fx fy fz\ndump_modify f sort id format float %20.15g\nrun 0"
    (tmp_path / "plain" / "in.lmp").write_text(deck(data, toy_model, plugin, body))
    done = subprocess.run([executable("lmp"), "-in", "in.lmp"], cwd=tmp_path / "plain", env=env, capture_output=True,
                          text=True, check=True)
    assert re.search(r"WARNING: maskpot: dgemm_ of \S*liblammps\S* shadows libtorch's.*LD_PRELOAD=\S*libtorch_cpu\.so",
                     done.stdout)
    plain = np.loadtxt(tmp_path / "plain" / "forces.dump", skiprows=9)[:, 1:]
    assert np.abs(plain - forces).max() <= 1e-12 * np.abs(forces).max()
