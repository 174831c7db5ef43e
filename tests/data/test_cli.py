import os
import subprocess
import sys

from typer.testing import CliRunner

from maskpot.cli import app
from maskpot.data import read

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "maskpot", *args], capture_output=True, text=True, env=env, cwd=REPO)


def test_info_on_deepmd_water(shared_data_dir):
    result = _run("data", "info", str(shared_data_dir / "water" / "deepmd_water"))
    assert result.returncode == 0, result.stderr
    lines = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.stdout.splitlines()
             if line.count("│") == 3}
    assert lines["frames"] == "400"
    assert lines["atoms per frame"] == "192"
    assert lines["forces"] == "yes"


def test_info_missing_file_is_one_red_line():
    result = _run("data", "info", "/nonexistent/water.extxyz")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: /nonexistent/water.extxyz: no such file or folder"]


def test_tip3p_command_writes_readable_file(tmp_path):
    out = tmp_path / "w.extxyz"
    result = CliRunner().invoke(app, ["data", "tip3p", "--molecules", "8", "--box", "8", "--frames", "2",
                                      "--interval", "5", "--equilibration", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps at the terminal width
    assert "wrote" in text and "2 frames of 24 atoms" in text
    frames = read(out)
    assert len(frames) == 2 and all(f.forces is not None and len(f) == 24 for f in frames)


def test_tip3p_runs_are_independent_and_pretraining_reads_them(tmp_path):
    """--runs N: N runs from seeds SEED..SEED+N-1 in one file (a pretraining set in one command)."""
    import numpy as np

    out = tmp_path / "pool.extxyz"
    common = ["data", "tip3p", "--molecules", "8", "--box", "6.2", "--frames", "2", "--interval", "5",
              "--equilibration", "10"]
    result = CliRunner().invoke(app, [*common, "--runs", "2", "--seed", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 frames of 24 atoms" in " ".join(result.output.split()) and "2 run(s)" in result.output
    frames = read(out)
    single = tmp_path / "one.extxyz"
    assert CliRunner().invoke(app, [*common, "--seed", "5", "--out", str(single)]).exit_code == 0
    # the second run is the seed-5 run on its own (runs are independent), and differs from the seed-4 one
    assert np.allclose(frames[2].positions, read(single)[0].positions, atol=1e-4)
    assert not np.allclose(frames[0].positions, frames[2].positions, atol=0.1)
    bad = CliRunner().invoke(app, [*common, "--runs", "0", "--out", str(tmp_path / "x.extxyz")])
    assert bad.exit_code != 0
