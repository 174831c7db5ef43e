"""Two runs writing the same output: the second stops at once with one line (maskpot.atomic.exclusive_output),
the first one's file is untouched, and no lock or temporary file is left behind."""

from __future__ import annotations

import os
import signal

import pytest

from maskpot.atomic import OutputInUseError, exclusive_output, lock_path
from tests.faults.conftest import assert_one_line, leftovers, run_cli


def test_second_holder_fails_at_once_and_the_lock_goes_away(tmp_path):
    out = tmp_path / "model.pt"
    with exclusive_output(out):
        assert lock_path(out).read_text().strip() == str(os.getpid())
        with pytest.raises(OutputInUseError, match=f"another run \\(pid {os.getpid()}\\) is writing this output"):
            with exclusive_output(out):
                pass
    assert leftovers(tmp_path) == []
    with exclusive_output(out):  # free again
        pass


def test_a_killed_holder_does_not_block_the_next_run(tmp_path):
    out = tmp_path / "model.pt"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: take the lock, say so, wait to be killed
        os.close(read)
        with exclusive_output(out):
            os.write(write, b"x")
            signal.pause()
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"x"
    with pytest.raises(OutputInUseError):
        with exclusive_output(out):
            pass
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with exclusive_output(out):  # the kernel dropped the dead process's lock; its stale file is reused
        pass
    assert leftovers(tmp_path) == []


def test_export_to_an_output_in_use_fails_and_keeps_the_file(checkpoint_factory, tmp_path):
    out = tmp_path / "model-ase.pt"
    out.write_bytes(b"first run's export")
    with exclusive_output(out):  # another export of the same --out is running
        line = assert_one_line(run_cli("export", checkpoint_factory("painn"), "--target", "ase", "--out", out),
                               f"{out}: another run (pid {os.getpid()}) is writing this output")
    assert "choose another --out" in line
    assert out.read_bytes() == b"first run's export" and leftovers(tmp_path) == []


def test_md_to_an_output_in_use_fails(export_factory, water_atoms, tmp_path):
    structure = tmp_path / "water.extxyz"
    water_atoms.write(structure)
    with exclusive_output(tmp_path / "run"):
        assert_one_line(run_cli("md", export_factory("openmm"), "--structure", structure, "--steps", "2",
                                "--out", tmp_path / "run"), "another run")
    assert not (tmp_path / "run.dcd").exists() and leftovers(tmp_path) == []


def test_lammps_md_to_an_output_in_use_fails_before_running(export_factory, water_atoms, tmp_path):
    from maskpot.data.frame import Frame
    from maskpot.lammps.md import run_lammps_md

    try:
        with exclusive_output(tmp_path / "md"):
            with pytest.raises(OutputInUseError, match="another run"):
                run_lammps_md(export_factory("lammps"), Frame.from_atoms(water_atoms), steps=2,
                              out_prefix=tmp_path / "md")
    except FileNotFoundError as exc:  # no plugin built
        pytest.skip(str(exc))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
