"""maskpot::egnn_message (maskpot/kernels/csrc/egnn_message.cpp) against the reference EGNN layer: the operator's
gradients (gradcheck, moving and last layers, ghosts), whole potentials (energies, forces, virials on periodic
water), the layer-wise form with ghosts (n_local < N), threads, and its refusals (weight gradients, double
backward). Exports: tests/kernels/test_neighbor_pairs.py (ASE, fused against reference) and
tests/lammps/test_lammps_kernels.py (LAMMPS, 1 and 2 ranks)."""

from __future__ import annotations

import pytest
import torch

from maskpot.kernels.egnn import FusedEGNNLayer, use_fused
from maskpot.models.egnn import EGNNLayer
from tests.kernels.fused import check_matches_reference, frozen, fused_copy
from tests.models import battery as B

@pytest.mark.parametrize("dtype", B.DTYPES)
def test_fused_potential_matches_reference_on_periodic_water(dtype):
    model = frozen(B.make_model("egnn", dtype))
    fused = fused_copy(model, use_fused)
    assert all(isinstance(layer, FusedEGNNLayer) for layer in fused.potential.backbone.layers)
    check_matches_reference(model, fused, [B.periodic_box(), B.supercell(B.periodic_box(), (2, 1, 1))])


def op_inputs(N: int, n_local: int, F: int, K: int, E: int, moves: bool, seed: int = 0):
    """(inputs that get gradients, the rest of the operator's arguments) in float64, random."""
    g = torch.Generator().manual_seed(seed)
    f64 = dict(dtype=torch.float64)

    def rand(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=g, **f64)

    grads = [rand(n_local, F).requires_grad_(), rand(N, F).requires_grad_(), rand(E, K).requires_grad_(),
             torch.rand(E, generator=g, **f64).requires_grad_(), rand(E, 3).requires_grad_()]
    i = torch.randint(0, n_local, (E,), generator=g)
    j = torch.randint(0, N, (E,), generator=g)
    weights = [rand(F, K, scale=0.5), rand(F, F, scale=0.3), rand(F, scale=0.3)]
    weights += [rand(F, F, scale=0.3), rand(F, scale=0.3), rand(1, F, scale=0.3)] if moves else [None, None, None]
    return grads, (i, j), weights


@pytest.mark.parametrize("moves", [True, False])
# channels: below one float64 vector (4 lanes with AVX2, 8 with AVX-512), a few vectors plus a remainder, the
# default; radial features K: one vector or less and more than two (the padded columns of the radial gradient)
@pytest.mark.parametrize("F,K", [(3, 4), (37, 17), (64, 17)])
def test_gradcheck(moves, F, K):
    N, n_local, E = 7, 5, 61  # two ghosts (they send, never receive); 61 edges: one block of 48 and a rest
    grads, (i, j), weights = op_inputs(N, n_local, F, K, E, moves)

    def op(a, b, radial, fcut, r_vec):
        return torch.ops.maskpot.egnn_message(a, b, radial, fcut, r_vec, i, j, *weights, 0.37)

    assert torch.autograd.gradcheck(op, grads)
    agg, dd = op(*grads)
    assert agg.shape == (n_local, F) and dd.shape == (n_local, 3)
    assert bool((dd != 0).any()) == moves


def reference_layer(F: int, K: int, moves: bool, seed: int = 1) -> EGNNLayer:
    torch.manual_seed(seed)
    layer = EGNNLayer(F, K - 1, moves).double()
    for p in layer.parameters():
        p.requires_grad_(False)
    return layer


@pytest.mark.parametrize("moves", [True, False])
def test_layer_matches_reference_with_ghosts(moves):
    """FusedEGNNLayer against EGNNLayer on a graph whose last nodes are ghosts (n_local < N): the new states of
    the local nodes and the gradients of a random cotangent with respect to every input."""
    F, K, N, n_local, E = 16, 9, 30, 18, 400
    ref = reference_layer(F, K, moves)
    fused = FusedEGNNLayer(ref)
    g = torch.Generator().manual_seed(3)
    h0, d0 = torch.randn(N, F, generator=g, dtype=torch.float64), torch.randn(N, 3, generator=g, dtype=torch.float64)
    radial0 = torch.randn(E, K, generator=g, dtype=torch.float64)
    fcut0, r_vec0 = torch.rand(E, generator=g, dtype=torch.float64), torch.randn(E, 3, generator=g, dtype=torch.float64)
    i, j = torch.randint(0, n_local, (E,), generator=g), torch.randint(0, N, (E,), generator=g)
    c_h, c_d = torch.randn(n_local, F, generator=g, dtype=torch.float64), torch.randn(n_local, 3, generator=g,
                                                                                    dtype=torch.float64)
    results = []
    for layer in (ref, fused):
        inputs = [x.clone().requires_grad_() for x in (h0, d0, radial0, fcut0, r_vec0)]
        h, d = layer(*inputs, i, j, 0.21, n_local)
        grads = torch.autograd.grad((h * c_h).sum() + (d * c_d).sum(), inputs, allow_unused=True)
        # the last layer does not read r_vec: no gradient (reference) or a zero one (fused)
        results.append([h.detach(), d.detach(), *(torch.zeros_like(x) if g is None else g
                                                  for x, g in zip(inputs, grads))])
    names = ["states h", "displacements d", "grad h", "grad d", "grad radial", "grad fcut", "grad r_vec"]
    for name, out, want in zip(names, results[1], results[0]):
        B.close(out, want, 1e-10, name)
    assert bool((results[0][2][n_local:] != 0).any()), "ghost states should get gradients (they send messages)"


def test_threads_give_the_same_numbers():
    grads, (i, j), weights = op_inputs(300, 250, 6, 5, 9000, True)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            agg, dd = torch.ops.maskpot.egnn_message(*grads, i, j, *weights, 0.5)
            g = torch.autograd.grad((agg * agg).sum() + (dd * dd).sum(), grads)
            results.append([agg.detach(), dd.detach(), *g])
    finally:
        torch.set_num_threads(threads)
    for one, three in zip(*results):
        B.close(three, one, 1e-12, "3 threads against 1")


def test_refusals():
    grads, (i, j), weights = op_inputs(7, 5, 4, 3, 20, True)
    op = torch.ops.maskpot.egnn_message
    trainable = [w.clone().requires_grad_() if w is weights[1] else w for w in weights]
    with pytest.raises(RuntimeError, match="no gradient for the weights"):
        op(*grads, i, j, *trainable, 0.5)
    agg, _ = op(*grads, i, j, *weights, 0.5)
    with pytest.raises(RuntimeError, match="no double backward"):
        torch.autograd.grad(agg.sum(), grads[0], create_graph=True)
    with pytest.raises(RuntimeError, match="receiving atom i is outside"):
        op(*grads, i + 5, j, *weights, 0.5)
    with pytest.raises(RuntimeError, match="give all of w_x, b_x, w_x2"):
        op(*grads, i, j, *weights[:4], None, weights[5], 0.5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_saturated_activations_match_reference(dtype):
    """Pre-activations far beyond where exp overflows (the operator's exp clamps its argument): the same outputs and
    gradients as the reference layer, all finite."""
    F, K, N, n_local, E = 8, 5, 12, 10, 70
    ref = reference_layer(F, K, True).to(dtype)
    fused = FusedEGNNLayer(ref)
    g = torch.Generator().manual_seed(5)
    h0 = (400 * torch.randn(N, F, generator=g, dtype=torch.float64)).to(dtype)  # |w_i h|, |w_j h| up to ~1000
    d0, r_vec0 = (torch.randn(N, 3, generator=g, dtype=torch.float64).to(dtype),
                  torch.randn(E, 3, generator=g, dtype=torch.float64).to(dtype))
    radial0, fcut0 = (torch.randn(E, K, generator=g, dtype=torch.float64).to(dtype),
                      torch.rand(E, generator=g, dtype=torch.float64).to(dtype))
    i, j = torch.randint(0, n_local, (E,), generator=g), torch.randint(0, N, (E,), generator=g)
    results = []
    for layer in (ref, fused):
        inputs = [x.clone().requires_grad_() for x in (h0, d0, radial0, fcut0, r_vec0)]
        h, d = layer(*inputs, i, j, 0.3, n_local)
        grads = torch.autograd.grad(h.sum() + d.sum(), inputs)
        results.append([h.detach(), d.detach(), *grads])
    for k, (out, want) in enumerate(zip(results[1], results[0])):
        assert bool(torch.isfinite(out).all()), k
        B.close(out, want, 1e-10 if dtype == torch.float64 else 1e-5, f"output {k}")

