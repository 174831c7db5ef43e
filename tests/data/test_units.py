import pytest

from maskpot.data import units


def test_constants_match_known_values():
    assert units.BOHR_TO_ANGSTROM == pytest.approx(0.529177, abs=1e-6)
    assert units.HARTREE_TO_EV == pytest.approx(27.2114, abs=1e-4)
    assert units.EV_TO_KJ_PER_MOL == pytest.approx(96.485, abs=1e-3)
    assert units.EV_TO_KCAL_PER_MOL == pytest.approx(23.0605, abs=1e-3)
    assert units.HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM == pytest.approx(27.2114 / 0.529177, rel=1e-5)
    assert units.NM_TO_ANGSTROM == 10.0
