"""maskpot::edge_basis (maskpot/kernels) against PaiNN's reference edge features (EdgeGeometry.scaled_basis):
values and edge-vector gradients in both dtypes, edges beyond the cutoff, gradcheck, the refusal of a double
backward; and the radial basis' frequencies, computed in the model's dtype (checkpoints that stored them load)."""

from __future__ import annotations

import pytest
import torch

from maskpot.kernels.painn import FusedEdgeGeometry
from maskpot.models.radial import BesselBasis, EdgeGeometry
from tests.models import battery as B

TOL = {"float64": 1e-12, "float32": 1e-5}
CUTOFF, NUM_RBF, SCALE = 4.0, 16, 0.037


def edge_vectors(n: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """n edge vectors with lengths 0.5-5 A: some beyond the 4 A cutoff (zero features, zero gradients)."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=1)
    length = 0.5 + 4.5 * torch.rand(n, 1, generator=g, dtype=torch.float64)
    return (direction * length).to(dtype)


@pytest.mark.parametrize("dtype", B.DTYPES)
def test_matches_reference_features_and_gradients(dtype):
    t = getattr(torch, dtype)
    geometry = EdgeGeometry(CUTOFF, NUM_RBF).to(t)
    fused = FusedEdgeGeometry(geometry)
    x = edge_vectors(2000, t)
    assert bool((x.norm(dim=1) > CUTOFF).any())
    cotangent = torch.randn(2000, NUM_RBF + 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(t)
    results = []
    for module in (geometry, fused):
        vec = x.clone().requires_grad_()
        out = module.scaled_basis(vec, SCALE)
        (grad,) = torch.autograd.grad((out * cotangent).sum(), [vec])
        results.append((out.detach(), grad))
    (out_r, grad_r), (out_f, grad_f) = results
    beyond = x.norm(dim=1) >= CUTOFF
    assert bool((out_f[beyond, :NUM_RBF] == 0).all()), "features beyond the cutoff must be exactly zero"
    for ref, got, what in ((out_r, out_f, "features"), (grad_r, grad_f, "edge-vector gradient")):
        B.nontrivial(ref, what)
        B.close(got, ref, TOL[dtype], what)


def test_gradcheck():
    x = edge_vectors(60, torch.float64, seed=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: torch.ops.maskpot.edge_basis(v, CUTOFF, 5, 6.0, SCALE), (x,))


def test_refuses_double_backward_and_bad_input():
    x = edge_vectors(10, torch.float64).requires_grad_()
    out = torch.ops.maskpot.edge_basis(x, CUTOFF, NUM_RBF, 6.0, SCALE)
    with pytest.raises(RuntimeError, match="no double backward"):
        torch.autograd.grad(out.sum(), [x], create_graph=True)
    with pytest.raises(RuntimeError, match="edge_vec must be"):
        torch.ops.maskpot.edge_basis(x[:, :2], CUTOFF, NUM_RBF, 6.0, SCALE)
    with pytest.raises(RuntimeError, match="num_rbf, cutoff and p must be positive"):
        torch.ops.maskpot.edge_basis(x, CUTOFF, 0, 6.0, SCALE)
    with pytest.raises(RuntimeError, match="grad must be"):
        torch.ops.maskpot.edge_basis_backward(torch.zeros(10, 4, dtype=torch.float64), x.detach(), CUTOFF, NUM_RBF,
                                              6.0, SCALE)


def test_frequencies_follow_the_dtype_and_old_checkpoints_load():
    """n pi / rc in the dtype of r: a float64 basis is not rounded to float32 (as a buffer made in float32 and cast
    would be), and a state dict that still holds the old buffer loads."""
    basis = BesselBasis(CUTOFF, NUM_RBF).to(torch.float64)
    r = torch.tensor([1.2345], dtype=torch.float64)
    n = torch.arange(1, NUM_RBF + 1, dtype=torch.float64)
    exact = torch.sin(n * torch.pi / CUTOFF * r) * (2.0 / CUTOFF) ** 0.5 / r
    B.close(basis(r)[0], exact, 1e-14, "float64 Bessel basis")
    old = {"freqs": (torch.arange(1, NUM_RBF + 1, dtype=torch.float32) * torch.pi / CUTOFF)}
    basis.load_state_dict(old)  # strict: the old key is dropped, nothing is missing
    B.close(basis(r)[0], exact, 1e-14, "after loading an old state dict")
