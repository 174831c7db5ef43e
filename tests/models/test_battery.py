"""Every backbone, in float32 and float64, passes the model test battery (tests/models/battery.py)."""

import pytest

from tests.models import battery

EVERY = [(b, d) for b in battery.BACKBONES for d in battery.DTYPES]
ENERGY_CENTRIC = [b for b in battery.BACKBONES if battery.energy_centric(b)]
_models: dict = {}


def model(backbone: str, dtype: str) -> battery.Model:
    if (backbone, dtype) not in _models:
        _models[backbone, dtype] = battery.make_model(backbone, dtype)
    return _models[backbone, dtype]


@pytest.mark.parametrize("check", battery.EVERY_MODEL, ids=lambda c: c.__name__)
@pytest.mark.parametrize("backbone,dtype", EVERY)
def test_every_model(backbone, dtype, check):
    check(model(backbone, dtype))


@pytest.mark.parametrize("check", battery.ENERGY_CENTRIC_FLOAT64, ids=lambda c: c.__name__)
@pytest.mark.parametrize("backbone", ENERGY_CENTRIC)
def test_energy_centric_float64(backbone, check):
    check(model(backbone, "float64"))


def test_the_battery_catches_a_broken_model():
    """The checks can fail: a PaiNN whose envelope is a step (1 inside the cutoff, 0 outside) fails the
    smoothness check."""
    broken = battery.make_model("painn", "float64")
    broken.potential.backbone.geometry.envelope.forward = lambda r: (r < battery.CUTOFF).to(r.dtype)
    with pytest.raises(AssertionError, match="across the cutoff"):
        battery.check_cutoff_smoothness(broken)
