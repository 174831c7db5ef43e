"""Training faults through the CLI: Ctrl-C exits 130 with one line and keeps the best weights (and --resume
finishes the run), budgets that cannot run, an output in use, an unwritable output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from maskpot.atomic import exclusive_output
from maskpot.data import write_extxyz
from maskpot.train.checkpoint import load_checkpoint
from tests.faults.conftest import REPO, assert_one_line, leftovers, run_cli

TINY = ["--hidden", "16", "--layers", "2", "--cutoff", "3.5"]


@pytest.fixture
def water_file(tmp_path):
    from tests.train.conftest import labelled_water

    path = tmp_path / "water.extxyz"
    write_extxyz(labelled_water(), path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("command", ["finetune", "pretrain"])
def test_ctrl_c_exits_130_keeps_the_best_and_resume_finishes(command, tmp_path, water_file):
    out = tmp_path / "model.ckpt"
    cmd = [sys.executable, "-m", "maskpot", command, str(water_file), "--max-steps", "100000", "--eval-every", "2",
           "--patience", "100000", "--batch-size", "2", *TINY, "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # a job started in the background of a shell ignores SIGINT, and so would this child: restore the default
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = tmp_path / "model.log.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.is_file() and len(log.read_text().splitlines()) >= 4):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("interrupted:")]
    assert len(lines) == 1 and f"{command} interrupted at step" in lines[0] and "resume with --resume" in lines[0]
    assert f"kept the best weights so far in {out}" in lines[0]  # names the checkpoint it wrote
    assert "Traceback" not in err and leftovers(tmp_path) == []
    kind = "finetuned" if command == "finetune" else "pretrained"
    assert load_checkpoint(out).kind == kind and (tmp_path / "model.state.pt").is_file()
    # --resume with a smaller budget: the run ends at once with the best weights it has
    resumed = run_cli(*cmd[3:cmd.index("100000")], "40", *cmd[cmd.index("100000") + 1:], "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not (tmp_path / "model.state.pt").exists() and load_checkpoint(out).kind == kind


@pytest.mark.parametrize("command, option", [("pretrain", "--max-steps"), ("finetune", "--max-steps"),
                                             ("finetune", "--eval-every"), ("pretrain", "--patience"),
                                             ("finetune", "--batch-size")])
def test_budgets_that_cannot_run_are_one_line(command, option, tmp_path, water_file):
    res = run_cli(command, water_file, option, "0", *TINY, "--out", tmp_path / "x.ckpt")
    assert_one_line(res, f"{option[2:]} must be at least 1")
    assert not (tmp_path / "x.ckpt").exists() and leftovers(tmp_path) == []


def test_resume_without_a_state_is_one_line(tmp_path, water_file):
    res = run_cli("finetune", water_file, "--resume", *TINY, "--out", tmp_path / "x.ckpt")
    assert_one_line(res, "x.state.pt: no training state to resume")


@pytest.mark.parametrize("command", ["finetune", "pretrain"])
def test_an_output_in_use_stops_the_second_run_at_once(command, tmp_path, water_file):
    out = tmp_path / "model.ckpt"
    with exclusive_output(out):
        res = run_cli(command, water_file, "--max-steps", "2", *TINY, "--out", out)
    assert_one_line(res, str(out), "another run", "is writing this output")
    assert not out.exists() and leftovers(tmp_path) == []


def test_finetune_into_a_readonly_folder_names_the_users_path(readonly_dir, water_file):
    out = readonly_dir / "model.ckpt"
    res = run_cli("finetune", water_file, "--max-steps", "2", "--eval-every", "2", *TINY, "--out", out)
    assert_one_line(res, str(readonly_dir))
    assert ".tmp" not in res.stderr
