"""The model battery (tests/models/battery.py) on fused potentials: every check the reference models pass, run on
PaiNN, EGNN and GNS with their fused operators swapped in (float64, weights frozen: inference only)."""

from __future__ import annotations

import pytest

from maskpot.kernels import egnn, gns, painn
from tests.kernels.fused import frozen, fused_copy
from tests.models import battery as B


@pytest.mark.parametrize("check", B.EVERY_MODEL + B.ENERGY_CENTRIC_FLOAT64, ids=lambda c: c.__name__)
@pytest.mark.parametrize("backbone,use_fused", [("painn", painn.use_fused), ("egnn", egnn.use_fused),
                                                ("gns", gns.use_fused)], ids=["painn", "egnn", "gns"])
def test_fused_model_passes_the_battery(backbone, use_fused, check):
    if check in B.ENERGY_CENTRIC_FLOAT64 and not B.energy_centric(backbone):
        pytest.skip("energy-centric checks")
    check(fused_copy(frozen(B.make_model(backbone, "float64")), use_fused))
