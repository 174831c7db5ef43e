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
