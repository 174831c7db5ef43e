"""Export: the TorchScript file equals the Python model, carries its metadata, and rejects bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from maskpot.ase import MaskpotCalculator
from maskpot.export import read_metadata


def eager_energy_forces(checkpoint, atoms):
    """The Python (eager) path: checkpoint -> Potential, vesin neighbour list, compute.energy_forces."""
    from maskpot.data.neighbors import neighbor_list
    from maskpot.models.compute import energy_forces
    from maskpot.train.checkpoint import load_potential

    potential = load_potential(checkpoint).double()
    i, j, s = neighbor_list(atoms.positions, np.array(atoms.cell), atoms.pbc, potential.cutoff)
    pos = torch.tensor(atoms.positions)
    species = potential.z_to_species_index[torch.tensor(atoms.numbers)]
    shifts = torch.tensor(s, dtype=torch.float64) @ torch.tensor(np.array(atoms.cell))
    energy, forces, virial = energy_forces(potential, pos, species, torch.tensor(np.stack([i, j])), shifts,
                                           torch.zeros(len(atoms), dtype=torch.long), 1, False)
    return float(energy[0]), forces.detach().numpy(), virial[0].detach().numpy()


@pytest.mark.parametrize("backbone", ["painn", "egnn", "gns", "painn-rep"])
def test_ase_export_equals_python_model(backbone, checkpoint_factory, export_factory, water_atoms):
    atoms = water_atoms.copy()
    e_ref, f_ref, _ = eager_energy_forces(checkpoint_factory(backbone), atoms)
    atoms.calc = MaskpotCalculator(export_factory("ase", backbone))
    np.testing.assert_allclose(atoms.get_forces(), f_ref, rtol=1e-6, atol=1e-9)
    if backbone != "gns":
        assert atoms.get_potential_energy() == pytest.approx(e_ref, rel=1e-10)


def test_spatial_order_is_a_local_permutation(water_atoms):
    from maskpot.export.core import spatial_order, unsort
    from maskpot.kernels.neighbors import neighbor_search

    shuffled = water_atoms[np.random.default_rng(1).permutation(len(water_atoms))]
    positions = torch.tensor(shuffled.positions)
    order = spatial_order(positions)
    assert sorted(order.tolist()) == list(range(len(shuffled)))
    x = torch.randn(len(shuffled), 3, dtype=torch.float64)
    assert torch.equal(unsort(x[order], order), x)

    def index_gap(pos):  # mean |i - j| over the graph's edges: how far apart neighbours sit in memory
        edges, _ = neighbor_search()(pos, torch.tensor(np.array(shuffled.cell)), torch.tensor([True] * 3), 4.0)
        return float((edges[0] - edges[1]).abs().double().mean())

    assert index_gap(positions[order]) < 0.75 * index_gap(positions)  # 1 for an order blind to space


@pytest.mark.parametrize("backbone", ["painn", "gns"])
def test_ase_export_follows_the_callers_atom_order(backbone, export_factory, water_atoms):
    """The export evaluates atoms in spatial order; energies and forces come back in the caller's order."""
    perm = np.random.default_rng(2).permutation(len(water_atoms))
    results = []
    for atoms in (water_atoms.copy(), water_atoms[perm]):
        atoms.calc = MaskpotCalculator(export_factory("ase", backbone))
        energy = atoms.get_potential_energy() if backbone != "gns" else 0.0  # force-centric: no energy
        results.append((energy, atoms.get_forces()))
    (e0, f0), (e1, f1) = results
    np.testing.assert_allclose(f1, f0[perm], rtol=1e-10, atol=1e-12)
    assert e1 == pytest.approx(e0, rel=1e-12)


def test_metadata_inside_file(export_factory):
    meta = read_metadata(export_factory("lammps"))
    assert meta["target"] == "lammps" and meta["species"] == [1, 8] and meta["species_symbols"] == ["H", "O"]
    assert meta["cutoff_angstrom"] == 4.0 and meta["receptive_field_angstrom"] == 8.0
    assert meta["dtype"] == "float64" and meta["units"]["energy"] == "eV"
    assert meta["versions"]["torch"] == torch.__version__ and len(meta["checkpoint_sha256"]) == 64
    module = torch.jit.load(str(export_factory("lammps")))
    assert module.cutoff == 4.0 and list(module.species) == [1, 8] and module.target == "lammps"


def test_export_and_info_commands_show_the_repulsion(checkpoint_factory, tmp_path):
    """`maskpot export` writes the file, `maskpot info` prints its metadata with the repulsion table (or none)."""
    from typer.testing import CliRunner

    from maskpot.cli import app
    from tests.conftest import REPULSION_IN_WATER

    for backbone, expected in (("painn-rep", f"O-O: ZBL below {REPULSION_IN_WATER['8-8']:.3f} A"), ("painn", "none")):
        out = tmp_path / f"{backbone}.pt"
        r = CliRunner().invoke(app, ["export", str(checkpoint_factory(backbone)), "--target", "lammps", "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert read_metadata(out)["config"]["repulsion"] == (REPULSION_IN_WATER if backbone == "painn-rep" else None)
        r = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["info", str(out)])
        assert r.exit_code == 0, r.output
        row = next(line for line in r.output.splitlines() if "repulsion" in line)
        assert expected in row


def test_export_loads_with_torch_alone(export_factory, water_atoms):
    """A fresh interpreter that never imports maskpot evaluates the ASE export made with reference kernels."""
    code = (
        "import sys, torch\n"
        f"m = torch.jit.load({str(export_factory('ase', kernels='reference'))!r})\n"
        "pos = torch.rand(6, 3, dtype=torch.float64) * 5\n"
        "e, f, w = m(pos, torch.tensor([8, 1, 1, 8, 1, 1]), torch.eye(3, dtype=torch.float64) * 9, torch.tensor([True] * 3))\n"
        "assert f.shape == (6, 3) and 'maskpot' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_lammps_target_matches_ase_on_ghost_graph(export_factory, water_atoms):
    """The LAMMPS target on an explicit local+image graph gives the periodic energy/forces/virial."""
    from maskpot.data.neighbors import neighbor_list

    atoms = water_atoms.copy()
    atoms.calc = MaskpotCalculator(export_factory("ase"))
    e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces()
    stress_ref = atoms.get_stress(voigt=False)
    n = len(atoms)
    # Ghosts: every periodic image within the receptive field (2 layers x 4 A) of the box.
    big = atoms.repeat((3, 3, 3))
    big.positions -= atoms.cell.sum(0)
    center = atoms.cell.sum(0) / 2
    order = np.argsort([0 if (k // n) == 13 else 1 for k in range(len(big))], kind="stable")
    big = big[order]
    keep = np.all(np.abs(big.positions - center) < center + 8.5, axis=1)
    big = big[keep]
    i, j, _ = neighbor_list(big.positions, None, [False] * 3, 4.0)
    module = torch.jit.load(str(export_factory("lammps")))
    e, node_e, f, w = module(torch.tensor(big.positions), torch.tensor(big.numbers), torch.tensor(np.stack([i, j])),
                             torch.zeros((len(i), 3), dtype=torch.float64), n, True)
    assert float(e) == pytest.approx(e_ref, rel=1e-10)
    assert float(node_e.sum()) == pytest.approx(e_ref, rel=1e-10)
    folded = np.zeros((n, 3))
    np.add.at(folded, _owner(big, atoms), f.numpy())
    np.testing.assert_allclose(folded, f_ref, rtol=1e-8, atol=1e-9)
    volume = atoms.get_volume()
    np.testing.assert_allclose(-w.numpy()[[0, 1, 2]] / volume, np.diag(stress_ref), rtol=1e-7, atol=1e-10)


def test_lammps_target_matches_ase_on_folded_graph(export_factory, water_atoms):
    """One-rank form: local atoms only, edges to periodic images carry their shift vectors."""
    from ase.neighborlist import neighbor_list

    atoms = water_atoms.copy()
    atoms.calc = MaskpotCalculator(export_factory("ase"))
    e_ref, f_ref, stress_ref = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
    i, j, shifts = neighbor_list("ijS", atoms, 4.0)
    module = torch.jit.load(str(export_factory("lammps")))
    e, node_e, f, w = module(torch.tensor(atoms.positions), torch.tensor(atoms.numbers),
                             torch.tensor(np.stack([i, j])), torch.tensor(shifts @ np.array(atoms.cell)), len(atoms), True)
    assert float(e) == pytest.approx(e_ref, rel=1e-10) and float(node_e.sum()) == pytest.approx(e_ref, rel=1e-10)
    np.testing.assert_allclose(f.numpy(), f_ref, rtol=1e-8, atol=1e-9)
    virial = -stress_ref * atoms.get_volume()
    np.testing.assert_allclose(w.numpy(), virial.reshape(9)[[0, 4, 8, 1, 2, 5]], rtol=1e-8, atol=1e-9)


def _owner(big, atoms):
    """Index of the original atom each image came from (by wrapped fractional position)."""
    frac_big = np.mod(np.linalg.solve(atoms.cell.T, big.positions.T).T, 1.0)
    frac = np.mod(atoms.get_scaled_positions(), 1.0)
    d = frac_big[:, None, :] - frac[None, :, :]
    d -= np.round(d)
    return np.argmin((d**2).sum(-1), axis=1)


def test_not_an_export_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not a maskpot export"):
        read_metadata(bad)
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(plain))
    with pytest.raises(ValueError, match="not a maskpot export"):
        MaskpotCalculator(plain)


def test_wrong_target_error(export_factory):
    with pytest.raises(ValueError, match="re-export with --target ase"):
        MaskpotCalculator(export_factory("openmm"))


@pytest.mark.parametrize("readout", ["head", "force"])
def test_pretrained_checkpoint_export_error(readout, tip3p_water_frames, tmp_path, monkeypatch, capsys):
    """`maskpot export` of a real pretrained checkpoint (either read-out; with "force" it holds a whole model
    whose energy normalisation was never fitted) fails with one line naming the file and saying to finetune it,
    and writes nothing."""
    from maskpot.cli import main
    from maskpot.models import ModelConfig
    from maskpot.pretrain.loop import pretrain
    from maskpot.train.checkpoint import load_checkpoint
    from maskpot.train.config import PretrainConfig, PretrainTask

    ckpt = tmp_path / f"pre-{readout}.ckpt"
    config = ModelConfig(backbone="painn", species=[1, 8], cutoff=3.5, hidden=8, layers=1, num_rbf=4, avg_neighbors=32.0)
    pretrain(tip3p_water_frames[:2], ckpt, config, PretrainTask("mask", readout),
             PretrainConfig(max_steps=2, eval_every=1, batch_size=1, ema_decay=0.0), val_frames=tip3p_water_frames[2:])
    assert load_checkpoint(ckpt).kind == "pretrained"
    out = tmp_path / "model-ase.pt"
    monkeypatch.setattr(sys, "argv", ["maskpot", "export", str(ckpt), "--target", "ase", "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {ckpt}: a pretrained checkpoint"), lines
    assert lines[0].endswith("finetune it first"), lines
    assert not out.exists()
