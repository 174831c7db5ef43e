"""Two atoms on the same spot (or a NaN position) stop every engine with one line naming the closest pair (the
atom), instead of NaN energies and forces: ASE, OpenMM (create_force and MLPotential), OpenMM md, LAMMPS on
one rank (the model's forward) and two ranks (the layer-wise node_outputs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # noqa: F401  (before openmm)
import openmm

from maskpot.data.frame import Frame
from maskpot.errors import first_line
from tests.conftest import water_atoms_box

SAME_SPOT = "not finite (NaN or inf); closest pair: atoms 1 and 4, 0.000 A apart"


@pytest.fixture
def collapsed():
    """8 waters in a 6.2 A box with atom 4 put on atom 1."""
    atoms = water_atoms_box(8, 6.2)
    atoms.positions[4] = atoms.positions[1]
    return atoms


@pytest.mark.parametrize("backbone", ["painn", "gns", "painn-rep"])
def test_ase(backbone, export_factory, collapsed):
    from maskpot.ase import MaskpotCalculator

    collapsed.calc = MaskpotCalculator(export_factory("ase", backbone))
    with pytest.raises(RuntimeError) as err:
        collapsed.get_forces()
    assert SAME_SPOT in str(err.value) and "\n" not in str(err.value)


def test_ase_nan_position_names_the_atom(export_factory):
    from maskpot.ase import MaskpotCalculator

    atoms = water_atoms_box(8, 6.2)
    atoms.positions[5, 2] = np.nan
    atoms.calc = MaskpotCalculator(export_factory("ase"))
    with pytest.raises(RuntimeError, match="the position of atom 5 is not finite"):
        atoms.get_forces()


def _energy(system, positions_nm):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(positions_nm)
    return ctx.getState(getEnergy=True, getForces=True).getPotentialEnergy()


@pytest.mark.parametrize("backend", ["auto", "python"])
@pytest.mark.parametrize("backbone", ["painn", "gns"])
def test_openmm_create_force(backbone, backend, export_factory, collapsed):
    from maskpot.openmm.system import system_from_frame

    system, _, positions = system_from_frame(Frame.from_atoms(collapsed), str(export_factory("openmm", backbone)),
                                             backend=backend)
    with pytest.raises(openmm.OpenMMException) as err:
        _energy(system, positions)
    assert "maskpot: the model's energy or forces are " + SAME_SPOT == first_line(err.value)


@pytest.mark.parametrize("backend", ["auto", "python"])
def test_openmm_mixed_system_names_particles_not_ml_indices(backend, export_factory, collapsed):
    """ML region = waters 1..7 (particles 3..23); particles 4 and 7 coincide: named as particles (the python
    backend hands the model the ML particles only, and renames its atoms back)."""
    from openmmml import MLPotential

    from maskpot.openmm.system import topology_from_frame

    atoms = water_atoms_box(8, 6.2)
    atoms.positions[7] = atoms.positions[4]
    top = topology_from_frame(Frame.from_atoms(atoms))
    mm = openmm.System()
    for atom in top.atoms():
        mm.addParticle(atom.element.mass)
    mm.setDefaultPeriodicBoxVectors(*top.getPeriodicBoxVectors())
    mixed = MLPotential("maskpot", modelPath=str(export_factory("openmm")), backend=backend).createMixedSystem(
        top, mm, range(3, 24))
    with pytest.raises(openmm.OpenMMException) as err:
        _energy(mixed, atoms.positions / 10)
    assert first_line(err.value).endswith("closest pair: atoms 4 and 7, 0.000 A apart")


def test_mlpotential(export_factory, collapsed):
    from openmmml import MLPotential

    from maskpot.openmm.system import topology_from_frame

    system = MLPotential("maskpot", modelPath=str(export_factory("openmm"))).createSystem(
        topology_from_frame(Frame.from_atoms(collapsed)))
    with pytest.raises(openmm.OpenMMException) as err:
        _energy(system, collapsed.positions / 10)
    assert SAME_SPOT in first_line(err.value)


def test_openmm_md_stops_with_one_line_and_leaves_no_output(export_factory, collapsed, tmp_path):
    from maskpot.openmm.md import MDConfig, run_openmm_md
    from tests.faults.conftest import leftovers

    with pytest.raises(RuntimeError) as err:
        run_openmm_md(str(export_factory("openmm")), Frame.from_atoms(collapsed), MDConfig(steps=3), tmp_path / "md")
    assert str(err.value).startswith("OpenMM MD failed at step 0: maskpot:") and SAME_SPOT in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [] and leftovers(tmp_path) == []


@pytest.mark.parametrize("nprocs, expected", [(1, "not finite (NaN or inf); closest pair: atoms "),
                                              (2, "not finite (NaN or inf) at local atom ")])
def test_lammps(nprocs, expected, export_factory, tmp_path):
    """1 rank: the model's forward names the pair (LAMMPS' local indices); 2 ranks: the layer-wise node_outputs
    names the atom. Either way run_lammps raises one line with the model's message."""
    from maskpot.lammps import plugin_path, run_lammps, write_data

    try:
        plugin = plugin_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    atoms = water_atoms_box(64, 12.44)
    atoms.positions[4] = atoms.positions[1]
    data = write_data(atoms, tmp_path / "w.data", "O,H")
    deck = f"""units metal
atom_style atomic
boundary p p p
read_data {data}
plugin load {plugin}
pair_style maskpot
pair_coeff * * {export_factory("lammps")} O H
run 0
"""
    with pytest.raises(RuntimeError) as err:
        run_lammps(deck, nprocs=nprocs, timeout=300)
    message = str(err.value)
    assert message.startswith("LAMMPS failed:") and "maskpot: the model's energy or forces are " + expected in message
    assert "\n" not in message and "Traceback" not in message
