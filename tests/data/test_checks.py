"""Overlapping atoms are refused with a message naming them, also across a periodic boundary."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from maskpot.data import Frame, write_extxyz
from maskpot.data.checks import check_frames


def test_overlap_across_the_boundary_is_named():
    frame = Frame(positions=[[0.1, 5, 5], [9.95, 5, 5], [5, 5, 5]], numbers=[8, 1, 1], cell=np.eye(3) * 10,
                  pbc=True, source="w.xyz#0")
    with pytest.raises(ValueError, match=r"w.xyz#0: atoms 0 and 1 overlap \(0.150 A apart"):
        check_frames([frame])
    frame.positions[1, 0] = 8.0
    check_frames([frame])  # 2.1 A apart: fine


def test_md_refuses_overlapping_structure(tmp_path):
    frame = Frame(positions=[[1, 1, 1], [1.2, 1, 1], [5, 5, 5]], numbers=[8, 1, 1], cell=np.eye(3) * 10, pbc=True)
    path = write_extxyz([frame], tmp_path / "bad.extxyz")
    res = subprocess.run([sys.executable, "-m", "maskpot", "md", "missing.pt", "--structure", str(path)],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "atoms 0 and 1 overlap" in res.stderr and len(res.stderr.strip().splitlines()) == 1
