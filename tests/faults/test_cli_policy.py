"""The CLI's error policy (maskpot.cli.main): every exception is one red line and exit 1, Ctrl-C one line and
130, a traceback only with MASKPOT_DEBUG=1; unwritable outputs name the user's path."""

from __future__ import annotations

import sys

import pytest

from maskpot.errors import Interrupted
from tests.faults.conftest import assert_one_line, leftovers, run_cli


def run_main(monkeypatch, capsys, *argv) -> tuple[int, str]:
    """maskpot.cli.main() in this process: (exit status, stderr)."""
    from maskpot import cli

    monkeypatch.setattr(sys, "argv", ["maskpot", *argv])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    return stop.value.code, capsys.readouterr().err


def _raise(exc):
    def fail(*args, **kwargs):
        raise exc
    return fail


@pytest.mark.parametrize("exc, expected", [
    (OSError(28, "No space left on device", "/data/x.extxyz"), "error: /data/x.extxyz: No space left on device"),
    (ValueError("x.extxyz#3: the energy is nan\nsecond line"), "error: x.extxyz#3: the energy is nan"),
    (ZeroDivisionError("division by zero"), "error: ZeroDivisionError: division by zero (a maskpot bug; "
                                            "MASKPOT_DEBUG=1 shows the traceback)"),
])
def test_every_exception_is_one_line_and_status_1(exc, expected, monkeypatch, capsys):
    monkeypatch.setattr("maskpot.data.read", _raise(exc))
    code, err = run_main(monkeypatch, capsys, "data", "info", "x.extxyz")
    assert code == 1
    assert err.strip().splitlines() == [expected]


def test_debug_shows_the_traceback_then_the_line(monkeypatch, capsys):
    monkeypatch.setenv("MASKPOT_DEBUG", "1")
    monkeypatch.setattr("maskpot.data.read", _raise(ValueError("bad input")))
    code, err = run_main(monkeypatch, capsys, "data", "info", "x.extxyz")
    assert code == 1 and "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1] == "error: bad input"


@pytest.mark.parametrize("exc, expected", [(KeyboardInterrupt(), "interrupted (Ctrl-C)"),
                                           (Interrupted("kept model.ckpt (epoch 3)"),
                                            "interrupted: kept model.ckpt (epoch 3)")])
def test_ctrl_c_is_one_line_and_status_130(exc, expected, monkeypatch, capsys):
    monkeypatch.setattr("maskpot.data.read", _raise(exc))
    code, err = run_main(monkeypatch, capsys, "data", "info", "x.extxyz")
    assert code == 130
    assert [line for line in err.splitlines() if line.strip()] == [expected]


def test_usage_errors_keep_click_status_2():
    res = run_cli("export")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "Missing argument" in res.stderr


def test_export_into_a_readonly_folder_names_the_users_path(checkpoint_factory, readonly_dir):
    out = readonly_dir / "model-ase.pt"
    line = assert_one_line(run_cli("export", checkpoint_factory("painn"), "--target", "ase", "--out", out),
                           str(readonly_dir))
    assert ".tmp" not in line and not out.exists()


def test_openmm_md_into_a_readonly_folder_names_the_users_path(export_factory, water_atoms, tmp_path, readonly_dir):
    structure = tmp_path / "water.extxyz"
    water_atoms.write(structure)
    line = assert_one_line(run_cli("md", export_factory("openmm"), "--structure", structure, "--steps", "2",
                                   "--out", readonly_dir / "run"), str(readonly_dir))
    assert "DCDReporter" not in line and ".tmp" not in line


def test_evaluate_on_an_export_says_pass_the_ckpt(export_factory, tmp_path):
    water = tmp_path / "w.extxyz"
    water.write_text("")
    assert_one_line(run_cli("evaluate", export_factory("ase"), water), "this is an export (--target ase)",
                    "pass the .ckpt it was exported from (painn-float64-2.ckpt)")


def test_atomic_write_failure_leaves_nothing_and_names_the_path(tmp_path):
    from maskpot.atomic import atomic_write

    out = tmp_path / "out.txt"
    out.write_text("old")

    def broken(tmp: str) -> None:
        with open(tmp, "w") as handle:
            handle.write("half")
        raise OSError(28, "No space left on device", tmp)

    with pytest.raises(OSError) as err:
        atomic_write(out, broken)
    assert err.value.filename == str(out)
    assert out.read_text() == "old" and leftovers(tmp_path) == []


def test_ctrl_c_during_md_exits_130_and_leaves_no_output(export_factory, water_atoms, tmp_path):
    """SIGINT once the run holds its output lock: status 130, one line, no trajectory, no temp or lock file."""
    import os
    import signal
    import subprocess
    import time

    from tests.faults.conftest import REPO

    structure = tmp_path / "water.extxyz"
    water_atoms[:24].write(structure)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "maskpot", "md", str(export_factory("openmm")), "--structure",
                             str(structure), "--steps", "1000000", "--out", str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # see test_training
    deadline = time.monotonic() + 120
    while not (tmp_path / ".run.lock").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert [line for line in err.splitlines() if line.strip()] == ["interrupted (Ctrl-C)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["water.extxyz"]
