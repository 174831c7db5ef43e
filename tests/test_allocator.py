"""maskpot.allocator: once an engine has put the caching allocator in place, repeating a 64 MiB torch
allocation maps no new memory and stops page-faulting (torch's default allocator faults once per 4 KiB page every
time). Each case runs in a fresh process: the allocator is process-wide."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from maskpot.lammps import engine_environment, plugin_path

ROOT = Path(__file__).resolve().parents[1]
PAGES = (64 << 20) // 4096  # minor faults of touching a fresh 64 MiB block

# prints the minor page faults of one 64 MiB torch allocation, touched and freed, averaged over 5 repeats
PROBE = """
import resource, torch
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.empty(64 << 20, dtype=torch.uint8).fill_(1)  # first use maps the memory in either case
before = faults()
for _ in range(5):
    torch.empty(64 << 20, dtype=torch.uint8).fill_(1)
print("FAULTS", (faults() - before) / 5)
"""


def faults_per_allocation(setup: str, env: dict | None = None) -> float:
    code = textwrap.dedent(setup) + PROBE
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**(env or os.environ), "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    return float(next(line for line in out.stdout.splitlines() if line.startswith("FAULTS")).split()[1])


def test_torch_default_faults_on_every_large_allocation():
    n = faults_per_allocation("")
    assert n > 0.9 * PAGES, n  # the reason the allocator is tuned at all


def test_caching_allocator_reuses_blocks():
    setup = """
    from maskpot.allocator import cached_bytes, mapped_blocks, release_cached, tune_allocator
    import torch
    assert tune_allocator()
    torch.empty(64 << 20, dtype=torch.uint8).fill_(1)
    maps = mapped_blocks()
    for _ in range(3):
        torch.empty(64 << 20, dtype=torch.uint8).fill_(1)
    assert mapped_blocks() == maps, (maps, mapped_blocks())  # reused, not mapped again
    assert cached_bytes() >= 64 << 20
    release_cached()
    assert cached_bytes() == 0
    """
    n = faults_per_allocation(setup)
    assert n < 0.05 * PAGES, n


def test_opt_out_leaves_torch_alone():
    setup = "from maskpot.allocator import tune_allocator\nassert not tune_allocator()\n"
    n = faults_per_allocation(setup, {**os.environ, "MASKPOT_ALLOCATOR": "default"})
    assert n > 0.9 * PAGES, n


@pytest.mark.parametrize("engine", ["ase", "lammps"])
def test_engines_tune_it(engine, export_factory):
    """Creating the ASE calculator, or the LAMMPS pair style (in C++), tunes the process."""
    if engine == "ase":
        setup = f"from maskpot.ase import MaskpotCalculator\nMaskpotCalculator({str(export_factory('ase'))!r})\n"
    else:
        setup = f"""
        from maskpot.lammps import import_lammps
        lmp = import_lammps().lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        lmp.command("plugin load {plugin_path()}")
        lmp.command("pair_style maskpot")
        """
    n = faults_per_allocation(setup, engine_environment())
    assert n < 0.05 * PAGES, n
