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

ROOT = Path(__file__).resolve().parents[2]
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
                                                      "lammps")] + [(w, "lammps", 2) for w in (27, 64)]
    assert sorted(rows) == sorted(expected)
    no_plugin = lammps_plugin_error()
    for key, r in rows.items():
        if key[1] == "lammps" and no_plugin:  # a failed row must say why, never vanish
            assert r["error"] and "plugin" in r["error"], r
            continue
        assert r["error"] is None, (key, r["error"])
        assert finite(r["ms_per_step"]) and r["ms_per_step"] > 0 and finite(r["ns_per_day"]), key
        assert finite(r["us_per_atom_step"])
        if key[1] in ("openmm", "lammps"):
            assert finite(r["ratio_bound"]) and finite(r["ratio_tip3p"]), key
        if key[1] == "model-only":
            assert 0 < r["extra"]["neighbour_share"] < 1.5 and r["extra"]["edges"] > 0
    if not no_plugin:
        assert finite(rows[64, "lammps", 2]["ratio_ranks"])
    table = (out / "speed.md").read_text()
    assert "AMD" in table or "Intel" in table or "CPU:" in table
    assert "--quick" in table
    lines = [ln for ln in table.splitlines() if ln.startswith("| 64 |")]
    assert len(lines) == 7  # tip3p flex + rigid, model-only, eager, openmm, lammps 1 and 2 ranks


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_accuracy_quick(tmp_path):
    out = tmp_path / "results"
    run_script("accuracy.py", out, timeout=580)
    for name in ("accuracy.md", "accuracy.json", "accuracy_force_mae.png", "learning_curves.png", "rdf.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = json.loads((out / "accuracy.json").read_text())
    datasets = ["tip3p"] + (["deepmd"] if DEEPMD.is_file() else [])
    for ds in datasets:
        runs = [r for r in report["runs"] if r["dataset"] == ds]
        assert sorted((r["init"], str(r["size"])) for r in runs) == sorted(
            (i, s) for i in ("scratch", "mask", "denoise") for s in ("4", "all"))
        for r in runs:
            assert not r.get("error"), r
            for key in ("energy_mae", "energy_rmse", "force_mae", "force_rmse"):
                assert finite(r[key]) and r[key] > 0, (ds, r["init"], key)
            assert r["n_train"] == 4 or r["size"] == "all"
        md = report["md"][ds]
        assert "error" not in md, md
        assert md["model"].split(",")[0] in ("painn scratch", "painn mask", "painn denoise"), md["model"]
        assert finite(md["ns_per_day"]) and md["frames"] >= 2
        assert 0 <= md["dissociated_at_end"] <= md["molecules"]
        assert 0.5 < md["oo_min"] < 10.0 and 0 <= md["oo_close_at_end"] <= md["molecules"] ** 2 / 2
        for pair in ("O-O", "O-H"):
            ref = md["rdf"][pair]["reference"]
            assert all(finite(g) for g in ref) and max(ref) > 1.0  # a liquid's first peak
        guarded = report["md"][f"{ds} + repulsion"]  # the same model with maskpot's short-range repulsion
        assert "error" not in guarded and guarded["model"] == md["model"] + " + repulsion", guarded
        assert set(guarded["repulsion"]) == {"1-1", "1-8", "8-8"} and 2.0 < guarded["repulsion"]["8-8"] < 3.0
        assert md.get("repulsion") is None and finite(guarded["oo_min"])
    if not DEEPMD.is_file():  # without the shared data the deepmd rows must say why
        assert all(r.get("error") for r in report["runs"] if r["dataset"] == "deepmd")
    table = (out / "accuracy.md").read_text()
    for ds in datasets:
        assert f"### {ds}, painn" in table
        assert any(ln.startswith(f"| {ds} |") for ln in table.splitlines())  # MD quality row
    assert " nan" not in table.lower()
    # run again with MD off: every finetuning is reused (nothing retrained), the stored MD record is kept and reported
    md_record = out / "accuracy_runs" / "tip3p" / "md" / "md.json"
    before = md_record.read_bytes()
    ckpts = {p: p.stat().st_mtime_ns for p in (out / "accuracy_runs").rglob("*.ckpt")}
    run_script("accuracy.py", out, 300, "--md-ps", "0")
    assert md_record.read_bytes() == before
    assert {p: p.stat().st_mtime_ns for p in (out / "accuracy_runs").rglob("*.ckpt")} == ckpts
    again = json.loads((out / "accuracy.json").read_text())
    assert again["md"]["tip3p"]["model"] == report["md"]["tip3p"]["model"]
    assert all(r.get("reused") for r in again["runs"] if not r.get("error"))
    # a record made before the overlap check gains it from its trajectory (--report here), with the same values
    contact_keys = ("oo_min", "oo_close_at_end", "oo_first_close_ps")
    old = {k: v for k, v in json.loads(before).items() if k not in contact_keys}
    md_record.write_text(json.dumps(old))
    run_script("accuracy.py", out, 120, "--report")
    restored = json.loads(md_record.read_text())
    assert {k: restored[k] for k in contact_keys} == {k: json.loads(before)[k] for k in contact_keys}
    # contact_scan.py reads the MD models just made: TIP3P must be a wall; the model's curves are finite
    run_script("contact_scan.py", out, 200)
    for name in ("contact_scan.md", "contact_scan.json", "contact_scan.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    scans = json.loads((out / "contact_scan.json").read_text())["results"]
    for ds in datasets:
        res = scans[ds]
        assert "error" not in res, res
        assert len(res["pairs"]) == 1 and res["distances"][0] == 3.2 and 2.0 < res["data_closest_oo"] < 3.0
        assert res["curves"]["tip3p"]["false_minima"] == [None]
        assert all(finite(e) for e in res["curves"]["model"]["energy"][0])
        assert res["model"] == report["md"][ds]["model"]


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
