"""The README's OpenMM script runs as written (with a tiny model and 10 steps instead of 1000)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_openmm_script(export_factory, water_atoms, tmp_path):
    """From an extxyz with all O first, then all H (DeePMD's order): OpenMM sees every atom."""
    order = list(range(0, len(water_atoms), 3)) + [k for k in range(len(water_atoms)) if k % 3]
    water_atoms[order].write(tmp_path / "water.extxyz")
    shutil.copy(export_factory("openmm"), tmp_path / "model-openmm.pt")
    code = readme_block("## OpenMM").replace("sim.step(1000)", "sim.step(10)")
    code += "\nprint(pdb.topology.getNumAtoms(), 'atoms')"
    code += "\nprint(sim.context.getState(getEnergy=True).getPotentialEnergy())\n"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "kJ/mol" in res.stdout and f"{len(water_atoms)} atoms" in res.stdout
    assert "simtk" not in res.stderr  # openmmtorch's deprecated import is silenced
