"""pair_style maskpot through `lmp` and `mpirun -np N lmp` with real exports (tiny random-weight PaiNN): domain
decomposition of a triclinic box, newton off, sparse atom IDs, restarts, per-atom energies, NPT, a 30,720-atom
box on two ranks, and torch's BLAS preloaded. (NVE energy conservation: test_lammps_md.py, with a
trained model.)"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from lammps_checks import RTOL, assert_close, ase_reference, deck, run0_lmp, tensor
from water_structures import disordered_water, triclinic

from maskpot.lammps import run_lammps, write_data


@pytest.mark.parametrize("nprocs", [2, 4])
def test_triclinic_ranks_match_one_rank(export_factory, plugin, tmp_path, nprocs):
    """A triclinic box on 2 and 4 ranks (node states exchanged) equals one rank (ghosts folded) to round-off and
    the ASE calculator at 1e-9."""
    atoms = triclinic(disordered_water(seed=1))
    data = write_data(atoms, tmp_path / "w.data", "O,H")
    model = export_factory("lammps", "painn", "float64")
    one, forces_one, _ = run0_lmp(data, model, plugin, tmp_path / "np1", 1)
    many, forces_many, log = run0_lmp(data, model, plugin, tmp_path / f"np{nprocs}", nprocs)
    grid = re.search(r"(\d+) by (\d+) by (\d+) MPI processor grid", log)
    assert np.prod([int(g) for g in grid.groups()]) == nprocs
    for key in ("poteng", "pxx", "pyy", "pzz", "pxy", "pxz", "pyz"):
        assert many[key] == pytest.approx(one[key], rel=1e-12, abs=1e-9)
    assert np.abs(forces_many - forces_one).max() <= 1e-12 * np.abs(forces_one).max()
    assert_close(many["poteng"], forces_many, tensor(many), ase_reference(atoms, export_factory("ase")), "metal",
                 RTOL["float64"])


def test_one_rank_runs_with_newton_off(water_atoms, export_factory, plugin, tmp_path):
    """Folded ghosts carry no forces, so one rank needs no reverse communication (pair_nequip users' newton off)."""
    data = write_data(water_atoms, tmp_path / "w.data", "O,H")
    thermo, forces, log = run0_lmp(data, export_factory("lammps"), plugin, tmp_path, 1, before_box="newton off")
    assert "ghost atoms folded onto their owners" in log
    assert_close(thermo["poteng"], forces, tensor(thermo), ase_reference(water_atoms, export_factory("ase")),
                 "metal", RTOL["float64"])


def test_sparse_atom_ids(water_atoms, export_factory, plugin, tmp_path):
    """Atom IDs 100000, 200000, ... on 1 rank (ghosts folded: owners found by ID) and 2 ranks give the energy and
    forces of IDs 1, 2, ... (the per-step tables are sized by the atoms present, not the largest ID)."""
    data = write_data(water_atoms, tmp_path / "dense.data", "O,H")
    lines = data.read_text().splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("Atoms")) + 2
    for k in range(start, start + len(water_atoms)):
        tokens = lines[k].split()
        lines[k] = " ".join([str(int(tokens[0]) * 100000)] + tokens[1:])
    sparse = tmp_path / "sparse.data"
    sparse.write_text("\n".join(lines) + "\n")
    model = export_factory("lammps")
    dense, forces_dense, _ = run0_lmp(data, model, plugin, tmp_path / "dense", 1)
    for nprocs in (1, 2):
        thermo, forces, _ = run0_lmp(sparse, model, plugin, tmp_path / f"sparse{nprocs}", nprocs)
        assert thermo["poteng"] == pytest.approx(dense["poteng"], rel=1e-12)
        assert np.abs(forces - forces_dense).max() <= 1e-10 * np.abs(forces_dense).max()


def test_restart_continues_the_run(water_atoms, export_factory, plugin, tmp_path):
    """2 ranks: 4 steps of NVE equal 2 steps, write_restart, read_restart (pair_style and pair_coeff given again:
    the pair style stores nothing in the restart file) and 2 more."""
    data = write_data(water_atoms, tmp_path / "w.data", "O,H")
    model = export_factory("lammps")
    start = "velocity all create 300.0 7 mom yes rot yes dist gaussian\nfix md all nve\ntimestep 0.0005\nthermo 2\n"
    whole = run_lammps(deck(data, model, plugin, start + "run 4"), nprocs=2, cwd=tmp_path).last
    run_lammps(deck(data, model, plugin, start + f"run 2\nwrite_restart {tmp_path}/md.restart"), nprocs=2,
               cwd=tmp_path)
    second = run_lammps(f"""
read_restart {tmp_path}/md.restart
plugin load {plugin}
pair_style maskpot
pair_coeff * * {model} O H
fix md all nve
thermo_style custom step pe etotal
thermo_modify format float %20.15g
thermo 2
run 2
""", nprocs=2, cwd=tmp_path).last
    np.testing.assert_array_equal(second["Step"], [2, 4])
    np.testing.assert_allclose(second["PotEng"], whole["PotEng"][1:], rtol=1e-10)
    np.testing.assert_allclose(second["TotEng"], whole["TotEng"][1:], rtol=1e-10)


def test_per_atom_energies_sum_to_the_total(water_atoms, export_factory, plugin, tmp_path):
    """compute pe/atom on 1 and 2 ranks: summed it is the total energy, and atom by atom the ranks agree (GNS:
    the energies of a force-centric model; PaiNN with the repulsion: the repulsion included)."""
    data = write_data(water_atoms, tmp_path / "w.data", "O,H")
    for backbone in ("painn-rep", "gns"):
        energies = []
        for nprocs in (1, 2):
            out = tmp_path / f"{backbone}-{nprocs}"
            out.mkdir()
            body = f"""compute peatom all pe/atom
compute pesum all reduce sum c_peatom
thermo_style custom step pe c_pesum
thermo_modify format float %20.15g
dump e all custom 1 {out}/pe.dump id c_peatom
dump_modify e sort id format float %22.16g
run 0"""
            thermo = run_lammps(deck(data, export_factory("lammps", backbone), plugin, body), nprocs=nprocs,
                                cwd=out).last
            assert thermo["c_pesum"][0] == pytest.approx(thermo["PotEng"][0], rel=1e-12)
            energies.append(np.loadtxt(out / "pe.dump", skiprows=9)[:, 1])
        np.testing.assert_allclose(energies[1], energies[0], rtol=1e-12)


def test_npt_on_one_and_two_ranks(water_atoms, export_factory, plugin, tmp_path):
    """20 steps of Nose-Hoover NPT: the box moves the way the virial pressure pushes it, the same on 1 and 2 ranks
    (the virial of the exchanged graph equals the folded one's)."""
    data = write_data(water_atoms, tmp_path / "w.data", "O,H")
    body = """velocity all create 300.0 3 mom yes rot yes dist gaussian
fix md all npt temp 300 300 0.05 iso 1.0 1.0 0.5
timestep 0.0005
thermo 10
run 20"""
    runs = [run_lammps(deck(data, export_factory("lammps"), plugin, body), nprocs=n, cwd=tmp_path).last
            for n in (1, 2)]
    for thermo in runs:
        np.testing.assert_array_equal(thermo["Step"], [0, 10, 20])
        assert np.all(np.isfinite(thermo["Press"]))
        assert np.sign(thermo["Volume"][-1] - thermo["Volume"][0]) == np.sign(thermo["Press"][0] - 1.0)
    for key in ("PotEng", "Press", "Volume"):
        np.testing.assert_allclose(runs[1][key], runs[0][key], rtol=1e-8)


def test_thirty_thousand_atoms_on_two_ranks(water_atoms, export_factory, plugin, tmp_path):
    """The 64-water box replicated 8 x 5 x 4 (30,720 atoms) on 2 ranks, float32, 2 MD steps: the energy is 160
    times the small box's (exchange buffers and edge counts at scale)."""
    data = write_data(water_atoms, tmp_path / "w.data", "O,H")
    model = export_factory("lammps", "painn", "float32")
    small = run_lammps(deck(data, model, plugin, "run 0"), cwd=tmp_path).last["PotEng"][0]
    body = "replicate 8 5 4\nvelocity all create 300.0 5 dist gaussian\nfix md all nve\ntimestep 0.0005\nrun 2"
    result = run_lammps(deck(data, model, plugin, body), nprocs=2, cwd=tmp_path)
    assert "30720 atoms" in result.log
    assert result.last["PotEng"][0] == pytest.approx(160 * small, rel=1e-6)
    assert np.all(np.isfinite(result.last["PotEng"]))


def test_lammps_blas_no_longer_shadows_torch(water_atoms, export_factory, plugin, tmp_path):
    """liblammps.so exports a reference dgemm_ that, loaded first, shadows libtorch's (float64 models ran 2-4x
    slower). `run_lammps` preloads libtorch_cpu.so, so the plugin finds torch's own dgemm_. (The `lmp` binary
    started without it, and the launcher's entry point that preloads it: test_lammps_autoload.py.)"""
    from maskpot.lammps.plugin import engine_environment

    data = write_data(water_atoms, tmp_path / "w.data", "O,H")
    model = export_factory("lammps", "painn", "float64")
    _, _, log = run0_lmp(data, model, plugin, tmp_path / "preloaded", 1)
    assert "libtorch_cpu.so" in engine_environment()["LD_PRELOAD"]
    assert "shadows libtorch" not in log
