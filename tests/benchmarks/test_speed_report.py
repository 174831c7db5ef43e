"""benchmarks/speed_report.py: ratios measured in one run and the targets judged from them."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.speed_report import Row, assess, table_rows  # noqa: E402


def rows_at(waters: int, lammps_2r_ms: float) -> list[Row]:
    atoms = 3 * waters
    bound = Row(waters, atoms, "model-only", "painn", "float32", times_ms=[10.0, 9.0, 11.0],
                extra={"neighbour_share": 0.2, "edges": 1000})
    return [Row(waters, atoms, "tip3p-flex", times_ms=[2.0]), bound,
            Row(waters, atoms, "openmm", "painn", "float32", times_ms=[10.2]),
            Row(waters, atoms, "lammps", "painn", "float32", ranks=1, times_ms=[20.0],
                extra={"lammps_breakdown_pct": {"Pair": 90.0}}),
            Row(waters, atoms, "lammps", "painn", "float32", ranks=2, times_ms=[lammps_2r_ms],
                extra={"lammps_breakdown_pct": {"Pair": 80.0, "Comm": 10.0}}),
            Row(waters, atoms, "eager", "painn", "float32", error="boom")]


def test_ratios_and_targets():
    python_force = Row(4096, 3 * 4096, "openmm-python", "painn", "float32", times_ms=[12.5])
    rows = rows_at(4096, lammps_2r_ms=10.0) + rows_at(258, lammps_2r_ms=15.0) + [python_force]
    assess(rows)
    tip3p, bound, openmm, one, two, failed = rows[:6]
    assert bound.ms == 10.0 and bound.ratio_tip3p == 0.2 and "neighbour search 20%" in bound.note
    assert openmm.ratio_bound == 10.0 / 10.2 and openmm.target == "met"  # 0.98 >= 0.95
    assert python_force.ratio_bound == 10.0 / 12.5 and python_force.target == "not met"
    assert python_force.note.startswith("2.50 ms/step outside the model (integrator, PythonForce call")
    assert one.ratio_bound == 0.5 and one.target == "not met"
    assert one.note.startswith("10.00 ms/step more than the bound; pair style")
    assert two.ratio_ranks == 2.0 and two.target == "met"  # 2.0 >= 1.8 at 4096 waters
    assert rows[10].ratio_ranks == 20.0 / 15.0 and rows[10].target.startswith("n/a")  # not the target's size
    assert failed.ratio_bound is None and table_rows([failed])[0][-1] == "failed: boom"
    assert abs(openmm.ns_day - 0.5e-6 * 86400e3 / 10.2) < 1e-12 and tip3p.us_atom_step == 1e3 * 2.0 / (3 * 4096)
