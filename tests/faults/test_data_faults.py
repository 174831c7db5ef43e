"""Bad training data is refused before any model sees it, in one line naming file, frame and atoms; `data info`
warns about it instead of printing NaN statistics silently."""

from __future__ import annotations

import numpy as np
import pytest

from maskpot.data import Frame, read_many, write_extxyz
from tests.faults.conftest import assert_one_line, run_cli


def water(k: int) -> Frame:
    rng = np.random.default_rng(k)
    positions = np.array([[1, 1, 1], [1.96, 1, 1], [0.76, 1.93, 1], [5, 5, 5], [5.96, 5, 5], [4.76, 5.93, 5]])
    return Frame(positions=positions + rng.uniform(0, 0.01, (6, 3)), numbers=[8, 1, 1, 8, 1, 1],
                 cell=np.eye(3) * 10, pbc=True, energy=-90.0 - k, forces=rng.normal(size=(6, 3)))


def spoil(frame: Frame, what: str) -> None:
    if what == "overlap":
        frame.positions[4] = frame.positions[1] + [0.05, 0, 0]
    elif what == "position":
        frame.positions[2, 1] = np.nan
    elif what == "energy":
        frame.energy = float("nan")
    elif what == "forces":
        frame.forces[3, 0] = np.inf


EXPECTED = {
    "overlap": "#2: atoms 1 and 4 overlap (0.050 A apart; minimum 0.5 A)",
    "position": "#2: atom 2 has a non-finite position",
    "energy": "#2: the energy is nan",
    "forces": "#2: the force on atom 3 is not finite",
}


@pytest.mark.parametrize("what", list(EXPECTED))
def test_read_many_names_file_frame_and_atoms(what, tmp_path):
    frames = [water(k) for k in range(4)]
    spoil(frames[2], what)
    path = write_extxyz(frames, tmp_path / "train.extxyz")
    with pytest.raises(ValueError) as err:
        read_many([path])
    assert str(err.value).startswith(f"{path}{EXPECTED[what]}"), str(err.value)


def test_evaluate_on_bad_data_is_one_line(checkpoint_factory, tmp_path):
    frames = [water(k) for k in range(3)]
    spoil(frames[2], "overlap")
    path = write_extxyz(frames, tmp_path / "test.extxyz")
    assert_one_line(run_cli("evaluate", checkpoint_factory("painn"), path), f"{path}{EXPECTED['overlap']}")


def test_data_info_warns_about_nan_statistics(tmp_path):
    frames = [water(k) for k in range(5)]
    spoil(frames[2], "energy")
    path = write_extxyz(frames, tmp_path / "nan.extxyz")
    res = run_cli("data", "info", path)
    assert_one_line(res, "1 of 5 frames would be refused for training", f"{path}{EXPECTED['energy']}",
                    code=0, prefix="warning: ")
    assert "nan" in res.stdout  # the statistics are still shown


def test_clean_data_gives_no_warning(tmp_path):
    path = write_extxyz([water(k) for k in range(3)], tmp_path / "ok.extxyz")
    res = run_cli("data", "info", path)
    assert res.returncode == 0 and res.stderr.strip() == ""
