"""The radial features against their closed forms (maskpot.models.radial computes them in a cheaper order)."""

import math

import torch

from maskpot.models.radial import BesselBasis, PolynomialCutoff

CUTOFF = 5.0


def test_polynomial_cutoff_is_the_p6_envelope():
    r = torch.linspace(0.0, 1.2 * CUTOFF, 241, dtype=torch.float64, requires_grad=True)
    env = PolynomialCutoff(CUTOFF)(r)
    x, p = r.detach() / CUTOFF, 6.0
    closed = (1 - 0.5 * (p + 1) * (p + 2) * x**p + p * (p + 2) * x ** (p + 1) - 0.5 * p * (p + 1) * x ** (p + 2))
    torch.testing.assert_close(env.detach(), closed * (x < 1), rtol=0, atol=1e-14)
    assert env[0] == 1.0 and bool((env.detach()[x >= 1] == 0).all())
    # first and second derivatives vanish at the cutoff (continuous forces and force derivatives)
    rc = torch.tensor([CUTOFF - 1e-9], dtype=torch.float64, requires_grad=True)
    d1 = torch.autograd.grad(PolynomialCutoff(CUTOFF)(rc).sum(), rc, create_graph=True)[0]
    d2 = torch.autograd.grad(d1.sum(), rc)[0]
    assert abs(float(d1)) < 1e-12 and abs(float(d2)) < 1e-6


def test_bessel_basis_is_sin_over_r():
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the frequencies are made in the default dtype
    try:
        basis = BesselBasis(CUTOFF, 8)
    finally:
        torch.set_default_dtype(default)
    r = torch.linspace(0.3, CUTOFF, 50, dtype=torch.float64)
    n = torch.arange(1, 9, dtype=torch.float64)
    closed = math.sqrt(2 / CUTOFF) * torch.sin(n * math.pi * r[:, None] / CUTOFF) / r[:, None]
    torch.testing.assert_close(basis(r), closed, rtol=1e-13, atol=1e-15)
