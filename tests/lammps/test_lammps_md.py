"""`maskpot md --engine lammps` (maskpot.lammps.md): the CLI end to end on 1 and 2 ranks, its outputs, and that the
first thermo row equals the ASE calculator's energy of the same structure."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import ase.io
import numpy as np
import pytest
from water_structures import ROOT

from maskpot.ase import MaskpotCalculator


def maskpot_md(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maskpot", "md", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize("nprocs, ensemble", [(2, "nvt-nose-hoover"), (1, "nve")])
def test_md_cli_lammps(nprocs, ensemble, export_factory, water_atoms, plugin, tmp_path):
    structure = tmp_path / "water.extxyz"
    ase.io.write(structure, water_atoms)
    model = export_factory("lammps", "painn", "float64")
    res = maskpot_md(str(model), "--engine", "lammps", "--structure", str(structure), "--steps", "20",
                     "--report-interval", "5", "--nprocs", str(nprocs), "--ensemble", ensemble, "--out", "run/md",
                     cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "192 atoms, 20 steps" in res.stdout and "ns/day" in res.stdout
    ns_per_day = float(res.stdout.split("ns/day")[0].split()[-1])
    assert ns_per_day > 0
    with open(tmp_path / "run" / "md.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [0, 5, 10, 15, 20]
    assert float(rows[-1]["time_ps"]) == pytest.approx(20 * 0.5e-3)
    assert float(rows[0]["temperature_K"]) == pytest.approx(300.0, rel=1e-6)
    atoms = water_atoms.copy()
    atoms.calc = MaskpotCalculator(export_factory("ase", "painn", "float64"))
    assert float(rows[0]["potential_energy_eV"]) == pytest.approx(atoms.get_potential_energy(), rel=1e-9)
    if ensemble == "nve":
        total = np.array([float(r["total_energy_eV"]) for r in rows])
        assert np.ptp(total) < 1e-3  # eV, 20 steps of 0.5 fs
    frames = ase.io.read(tmp_path / "run" / "md.lammpstrj", index=":", format="lammps-dump-text")
    assert len(frames) == 5 and len(frames[0]) == 192
    assert frames[0].get_chemical_symbols()[:3] == ["O", "H", "H"]  # element names, atoms sorted by ID
    log = (tmp_path / "run" / "md.log").read_text()
    assert f"{nprocs} procs for 20 steps" in log
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["md.csv", "md.data", "md.in", "md.lammpstrj",
                                                                    "md.log"]


def test_md_cli_lammps_bad_input(export_factory, water_atoms, plugin, tmp_path):
    structure = tmp_path / "water.extxyz"
    ase.io.write(structure, water_atoms)
    res = maskpot_md(str(export_factory("ase")), "--engine", "lammps", "--structure", str(structure), cwd=tmp_path)
    assert res.returncode == 1 and "exported for ase; re-export with --target lammps" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = maskpot_md(str(export_factory("lammps")), "--engine", "lammps", "--structure", str(structure),
                     "--ensemble", "npt", "--out", "bad/md", cwd=tmp_path)
    assert res.returncode == 1 and "unknown ensemble 'npt'" in res.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("nprocs", [1, 2])
def test_nve_trained_model_conserves_energy(nprocs, trained_water_checkpoint, water_atoms, plugin, tmp_path):
    """400 steps of 0.25 fs (100 fs, ~11 O-H vibrations) on 64 waters, float64, one rank (ghosts folded) or two
    (node states exchanged between layers, atoms migrating between ranks), with a model that has learned the
    O-H bonds. Same bounds as the OpenMM NVE test: the total energy fluctuates by less than 5% of the kinetic
    energy's fluctuation and drifts by less than 1% of the mean kinetic energy."""
    from maskpot.data.frame import Frame
    from maskpot.export import export_checkpoint
    from maskpot.lammps.md import run_lammps_md

    model = export_checkpoint(trained_water_checkpoint, "lammps", tmp_path / "m.pt", dtype="float64")
    result = run_lammps_md(model, Frame.from_atoms(water_atoms), steps=400, timestep_fs=0.25, ensemble="nve",
                           report_interval=10, out_prefix=tmp_path / "nve", nprocs=nprocs)
    data = np.genfromtxt(result["thermo"], delimiter=",", names=True)
    total, kinetic = data["total_energy_eV"], data["kinetic_energy_eV"]
    assert len(total) == 41 and np.all(np.isfinite(total)) and kinetic.mean() > 0
    assert total.std() < 0.05 * kinetic.std(), (total.std(), kinetic.std())
    drift = abs(total[-5:].mean() - total[:5].mean())
    assert drift < 0.01 * kinetic.mean(), (drift, kinetic.mean())


def test_run_lammps_md_rejects_negative_warmup(export_factory, water_atoms, tmp_path):
    from maskpot.data import Frame
    from maskpot.lammps.md import run_lammps_md

    with pytest.raises(ValueError, match=r"warmup_steps \(-1\) >= 0"):
        run_lammps_md(export_factory("lammps"), Frame.from_atoms(water_atoms), steps=10, warmup_steps=-1,
                      out_prefix=tmp_path / "md")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("nprocs", [1, 2])
def test_phase_timing_covers_every_rank_and_the_pair_time(nprocs, export_factory, water_atoms, plugin, tmp_path,
                                                           monkeypatch):
    """MASKPOT_TIMING=1: each rank reports its compute calls and per-phase seconds (the edges, with images of the
    rank's own atoms folded onto them, then the fold phases on one rank, the exchange phases after the choice of
    the graph's ghosts on two), and the phases add up to at least LAMMPS' own Pair time of the timed run; the edges go to the model
    in pairs (build_edges): all of them on one rank, on two all but those to the other rank's ghosts."""
    import re

    from maskpot.data import Frame
    from maskpot.lammps.md import run_lammps_md

    monkeypatch.setenv("MASKPOT_TIMING", "1")
    result = run_lammps_md(export_factory("lammps"), Frame.from_atoms(water_atoms), steps=6, warmup_steps=2,
                           out_prefix=tmp_path / "md", nprocs=nprocs)
    timing = result["timing"]
    assert sorted(timing) == list(range(nprocs))
    phases = {"edges", "model", "forces"} if nprocs == 1 else {
        "edges", "graph", "features", "layers", "exchange_forward", "outputs", "backward", "exchange_reverse",
        "edge_gradient", "failure_check", "forces"}
    pair = [float(m) for m in re.findall(r"^Pair\s*\|\s*\S+\s*\|\s*(\S+)", open(result["log"]).read(), re.M)]
    for rank in timing.values():
        assert set(rank["seconds"]) == phases
        assert rank["calls"] >= 6 + 2  # the timed and warm-up steps, plus each run's set-up
        assert all(s >= 0 for s in rank["seconds"].values())
        assert sum(rank["seconds"].values()) >= 0.95 * pair[-1] > 0
        if nprocs == 1:
            assert rank["paired"] == rank["edges"] > 0
        else:
            assert 0 < rank["paired"] < rank["edges"] and rank["paired"] % 2 == 0
    monkeypatch.delenv("MASKPOT_TIMING")
    quiet = run_lammps_md(export_factory("lammps"), Frame.from_atoms(water_atoms), steps=2,
                          out_prefix=tmp_path / "quiet", nprocs=nprocs)
    assert quiet["timing"] == {}
