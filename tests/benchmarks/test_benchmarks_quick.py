"""End-to-end checks of the benchmark scripts in --quick mode: they run, write every output file, and their tables
hold finite numbers in the rows expected. Timings themselves are never asserted (the machine is shared)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.common import fmt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the benchmark scripts' helpers (benchmarks.common)
DEEPMD = ROOT.parent / "shared" / "data" / "water" / "deepmd_water" / "data_3" / "type.raw"


def run_script(name: str, out: Path, timeout: float, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), "--quick", "--out", str(out), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def lammps_plugin_error() -> str | None:
    from maskpot.lammps import plugin_path

    try:
        plugin_path()
    except FileNotFoundError as exc:
        return str(exc)
    return None


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_speed_quick(tmp_path):
    out = tmp_path / "results"
    run_script("speed.py", out, timeout=380)
    for name in ("speed.md", "speed.json", "speed_nsday.png", "speed_scaling.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = json.loads((out / "speed.json").read_text())
    rows = {(r["waters"], r["engine"], r["ranks"]): r for r in report["rows"]}
    expected = [(w, e, 1) for w in (27, 64) for e in ("tip3p-flex", "tip3p-rigid", "model-only", "eager", "openmm",
                                                      "openmm-python", "lammps")] + [(w, "lammps", 2) for w in (27, 64)]
    assert sorted(rows) == sorted(expected)
    no_plugin = lammps_plugin_error()
    for key, r in rows.items():
        if key[1] == "lammps" and no_plugin:  # a failed row must say why, never vanish
            assert r["error"] and "plugin" in r["error"], r
            continue
        assert r["error"] is None, (key, r["error"])
        assert finite(r["ms_per_step"]) and r["ms_per_step"] > 0 and finite(r["ns_per_day"]), key
        assert finite(r["us_per_atom_step"])
        if key[1] in ("openmm", "openmm-python", "lammps"):
            assert finite(r["ratio_bound"]) and finite(r["ratio_tip3p"]), key
        if key[1] == "model-only":
            assert 0 < r["extra"]["neighbour_share"] < 1.5 and r["extra"]["edges"] > 0
        if key[1] not in ("tip3p-flex", "tip3p-rigid"):  # counted FLOPs and the GEMM rate: no row beats the floor
            assert r["extra"]["flops_per_atom_step"] > 0 and r["extra"]["gemm_flops_per_s"] > 1e8, key
            assert r["us_per_atom_step"] > r["extra"]["floor_us"] > 0, key
    if not no_plugin:
        assert finite(rows[64, "lammps", 2]["ratio_ranks"])
    table = (out / "speed.md").read_text()
    assert_machine_section(table, report, threads=1)
    assert "--quick" in report["command"] and f"- command: `{report['command']}`" in table
    lines = [ln for ln in table.splitlines() if ln.startswith("| 64 |")]
    assert len(lines) == 8  # tip3p flex + rigid, model-only, eager, openmm, openmm-python, lammps 1 and 2 ranks
    # the table shows the JSON's numbers (columns: waters, atoms, model, engine, ns/day, ms/step, ...)
    assert sorted(ln.split(" | ")[5] for ln in lines) == sorted(
        fmt(r["ms_per_step"]) for r in report["rows"] if r["waters"] == 64)


def assert_machine_section(table: str, report: dict, threads: int) -> None:
    """The report describes this machine and the thread count the run used, in the JSON and the markdown."""
    from benchmarks.common import cpu_model

    machine = report["machine"]
    assert (machine["cpu"], machine["logical_cores"], machine["torch_threads"]) == (cpu_model(), os.cpu_count(),
                                                                                    threads)
    assert f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores\n- torch threads per process: {threads}\n" in table
    assert ("- GPU: none on this machine: no GPU rows\n" in table) != torch.cuda.is_available()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_pretraining_quick(tmp_path):
    """benchmarks/pretraining.py --quick: every kind of init runs end to end (TIP3P data, masked pretraining with
    both read-outs, supervised pretraining, plateau finetuning), the report has every cell, and a second run
    reuses every record (nothing retrained)."""
    out = tmp_path / "results"
    run_script("pretraining.py", out, 560)
    for name in ("pretraining.md", "pretraining.json", "pretraining_force_mae.png", "pretraining_curves.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = json.loads((out / "pretraining.json").read_text())
    if not DEEPMD.is_file():  # without the shared data every finetuning says why
        assert report["summary"]["n_finished"] == 0
        return
    cells = {c["init"]: c for c in report["cells"]}
    assert set(cells) == {"scratch", "mask-dft", "mask-tip3p", "supervised-tip3p", "mask-head-dft"}
    for init, c in cells.items():
        assert c["n_runs"] == c["n_planned"] == 2 and c["train_frames"] == 4, c
        assert finite(c["force_mae_mean"]) and finite(c["force_mae_ci95"]) and 0 <= c["best_at_last_fraction"] <= 1
        if init != "scratch":
            assert finite(c["paired_vs_scratch_pct_mean"]) and c["n_pairs"] == 2, c
    for key in ("backbone", "train_frames", "init", "pretrain_data", "n_runs", "force_mae_mean", "force_mae_ci95",
                "paired_vs_scratch_pct_mean", "paired_vs_scratch_pct_ci95", "best_at_last_fraction"):
        assert key in cells["mask-tip3p"], key
    runs = out / "pretraining_runs" / "painn"
    assert json.loads((runs / "mask-dft-p0-n4-s0.json").read_text())["init_part"] == "model"
    assert json.loads((runs / "mask-head-dft-p0-n4-s0.json").read_text())["init_part"] == "backbone"
    assert json.loads((runs / "supervised-tip3p-p0-n4-s0.json").read_text())["init_part"] == "model"
    table = (out / "pretraining.md").read_text()
    assert "--quick" in table and "| painn | 4 | mask-tip3p | 2/2 |" in table and " nan" not in table.lower()
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    run_script("pretraining.py", out, 120)
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*.json")} == stamps


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_contact_scan_quick_with_a_trained_model(tmp_path, trained_water_checkpoint):
    """contact_scan.py pushes water pairs together with the dataset's MD model (here a tiny PaiNN trained on
    TIP3P frames): TIP3P is a wall at every distance; the model's and the repulsion's curves are finite."""
    import shutil

    out = tmp_path / "results"
    md = out / "accuracy_runs" / "tip3p" / "md"
    md.mkdir(parents=True)
    shutil.copy(trained_water_checkpoint, md / "model.ckpt")
    (md / "md.json").write_text(json.dumps({"model": "painn test model"}))
    run_script("contact_scan.py", out, 250, "--data", "tip3p")
    for name in ("contact_scan.md", "contact_scan.json", "contact_scan.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    res = json.loads((out / "contact_scan.json").read_text())["results"]["tip3p"]
    assert "error" not in res, res
    assert len(res["pairs"]) == 1 and res["distances"][0] == 3.2 and 2.0 < res["data_closest_oo"] < 3.0
    assert res["curves"]["tip3p"]["false_minima"] == [None]
    assert all(finite(e) for e in res["curves"]["model"]["energy"][0])


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "water" / "deepmd_water" / "data_0").is_dir(),
                    reason="needs ../shared/data")
def test_models_speed_probe_runs(capsys):
    """benchmarks/models_speed.py (a developer's probe) still runs: one line per dtype and per neighbour search."""
    sys.path.insert(0, str(ROOT))
    from benchmarks import models_speed

    assert models_speed.main(["--backbone", "gns", "--repeat", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines[:2]] == ["float32", "float64"] and "192 atoms" in lines[0]
    assert "12288 atoms" in lines[-1] and all(" ms" in line for line in lines)


@pytest.mark.slow
@pytest.mark.skipif(not DEEPMD.is_file(), reason="needs ../shared/data")
@pytest.mark.timeout(500)
def test_train_speed_quick(tmp_path):
    """train_speed.py --quick: one row (a tiny PaiNN), both variants timed, the compiled step's loss is the
    eager one's, one compiled shape (the batches share a bucket)."""
    out = tmp_path / "results"
    run_script("train_speed.py", out, 450)
    report = json.loads((out / "train_speed.json").read_text())
    [row] = report["rows"]
    assert row["backbone"] == "painn" and row["atoms_per_batch"] == 768 and row["shapes"] == 1, row
    for key in ("eager_cpu_s", "eager_wall_s", "compiled_cpu_s", "compiled_wall_s", "speedup_cpu", "compile_s"):
        assert finite(row[key]) and row[key] > 0, key
    assert row["loss_rel_diff"] < 1e-5
    table = (out / "train_speed.md").read_text()
    assert "| painn | 768 |" in table
    assert_machine_section(table, report, threads=1)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_rank_scaling_quick(tmp_path):
    """rank_scaling.py --quick: the four runs (1 and 2 ranks, half box alone and two side by side) have finite
    times, the report states the speed-up and the machine's bound, and no run files are left in the results."""
    if lammps_plugin_error():
        pytest.skip(lammps_plugin_error())
    out = tmp_path / "results"
    run_script("rank_scaling.py", out, 250)
    report = json.loads((out / "rank_scaling.json").read_text())
    assert set(report["ms_per_step"]) == {"1 rank", "2 ranks", "1 rank, half box", "two half boxes side by side"}
    assert all(finite(v) and v > 0 for v in report["ms_per_step"].values())
    assert finite(report["rank_speedup"]) and finite(report["machine_bound"])
    table = (out / "rank_scaling.md").read_text()
    assert f"- 2 ranks / 1 rank speed-up: {report['rank_speedup']:.2f}\n" in table
    phases = report["phase_ms_per_call"]  # the plugin's MASKPOT_TIMING phases of both rank counts
    assert set(phases) == {"1 rank", "2 ranks: rank 0", "2 ranks: rank 1"}
    assert {"model", "edges"} <= set(phases["1 rank"]) and "exchange_forward" in phases["2 ranks: rank 1"]
    assert "- exchange and waiting: " in table and "| total |" in table
    paired = report["paired_edge_fraction"]  # every edge in pairs on one rank, not those to ghosts on two
    assert paired["1 rank"] == 1 and all(0 < paired[f"2 ranks: rank {r}"] < 1 for r in (0, 1))
    assert sorted(p.name for p in out.iterdir()) == ["rank_scaling.json", "rank_scaling.md"]
    assert_machine_section(table, report, threads=1)


@pytest.mark.slow
@pytest.mark.openmm_torch
@pytest.mark.timeout(300)
def test_engines_interleaved_quick(tmp_path):
    """engines_interleaved.py --quick: the four engines each have a finite time, the table shows their ratios to
    the model-only bound (the bound's own is 1)."""
    if lammps_plugin_error():
        pytest.skip(lammps_plugin_error())
    out = tmp_path / "results"
    run_script("engines_interleaved.py", out, 250)
    report = json.loads((out / "engines_interleaved.json").read_text())
    (box,) = report["boxes"]
    assert box["waters"] == 27
    assert set(box["ms_per_step"]) == {"model-only", "openmm", "openmm-python", "lammps 1 rank"}
    assert all(finite(v) and v > 0 for v in box["ms_per_step"].values())
    assert box["engine_over_bound"]["model-only"] == 1.0
    table = (out / "engines_interleaved.md").read_text()
    assert "## 27 waters (81 atoms)" in table
    assert f"| openmm | {fmt(box['ms_per_step']['openmm'])} |" in table
    assert f"| lammps 1 rank | {fmt(box['ms_per_step']['lammps 1 rank'])} |" in table
    assert_machine_section(table, report, threads=1)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_kernels_ab_quick(tmp_path):
    """kernels_ab.py --quick against HEAD: both builds of the package and its operators compile, import and load
    side by side (maskpot_a and maskpot_b), every call is timed, two builds of the same sources give the same
    numbers, and the export's call in spatial order gives the energy and forces of the atoms as given."""
    from benchmarks.kernels_ab import renamed

    assert renamed('TORCH_LIBRARY(maskpot, m) "maskpot::painn_message" maskpot_kernels', "maskpot_b") == (
        'TORCH_LIBRARY(maskpot_b, m) "maskpot_b::painn_message" maskpot_kernels')
    out = tmp_path / "results"
    run_script("kernels_ab.py", out, 380, "--baseline", "HEAD")
    report = json.loads((out / "kernels_ab.json").read_text())
    assert [r["call"] for r in report["operators"]] == ["layer 0 forward", "layer 0 backward", "layer 1 forward",
                                                        "layer 1 backward", "neighbor_pairs"]
    same_sources = "uncommitted" not in report["tree"]  # a developer's tree may differ from HEAD
    for r in report["operators"]:
        assert r["error"] is None and r["a_cpu_ms"] > 0 and r["b_cpu_ms"] > 0 and finite(r["ratio"]), r
        assert r["max_rel_diff"] == 0.0 or not same_sources, r
    # the export made by each build's whole package (maskpot_a, maskpot_b), one per backbone
    assert [m["backbone"] for m in report["models"]] == ["painn", "egnn"]
    for model in report["models"]:
        assert model["waters"] == 64 and "error" not in model and finite(model["ratio"]), model
        assert model["max_rel_diff"] == 0.0 or not same_sources, model
    assert [r["waters"] for r in report["atom_order"]] == [27, 64]
    for r in report["atom_order"]:
        assert finite(r["ratio"]) and r["max_rel_diff"] < 1e-5, r
    table = (out / "kernels_ab.md").read_text()
    assert "| float32 | layer 1 backward |" in table and table.count("| float32 | 64 | 192 |") == 3
    assert_machine_section(table, report, threads=1)
