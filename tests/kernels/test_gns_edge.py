"""maskpot::gns_encode, maskpot::gns_edge and maskpot::gns_decode (maskpot/kernels/csrc/gns_edge.cpp) against the
reference GNS edge encoder, layer and decoder: whole potentials (energies, direct forces on periodic water), the layer with ghosts (n_local < N) and
channel counts that do not fill a vector, threads, saturated activations, and the refusals (trainable weights,
bad indices). The outputs carry no gradient (GNS is force-centric: nothing differentiates its forward). Exports:
tests/kernels/test_neighbor_pairs.py (ASE, fused against reference) and tests/lammps/test_lammps_kernels.py
(LAMMPS, 1 and 2 ranks)."""

from __future__ import annotations

import pytest
import torch

from maskpot.kernels.gns import FusedEdgeDecoder, FusedEdgeEncoder, FusedGNSLayer, use_fused
from maskpot.models.gns import EdgeDecoder, GNSLayer, _mlp
from tests.kernels.fused import check_matches_reference, frozen, fused_copy
from tests.models import battery as B


@pytest.mark.parametrize("dtype", B.DTYPES)
def test_fused_potential_matches_reference_on_periodic_water(dtype):
    model = frozen(B.make_model("gns", dtype))
    fused = fused_copy(model, use_fused)
    backbone = fused.potential.backbone
    assert all(isinstance(layer, FusedGNSLayer) for layer in backbone.layers)
    assert isinstance(backbone.decoder, FusedEdgeDecoder) and isinstance(backbone.edge_encoder, FusedEdgeEncoder)
    check_matches_reference(model, fused, [B.periodic_box(), B.supercell(B.periodic_box(), (2, 1, 1))])


def reference_parts(F: int, dtype=torch.float64, seed: int = 1) -> tuple[GNSLayer, EdgeDecoder]:
    torch.manual_seed(seed)
    layer, decoder = GNSLayer(F).to(dtype), EdgeDecoder(F).to(dtype)
    with torch.no_grad():  # a layer norm that is not the identity
        layer.edge_rest[2].weight.uniform_(0.5, 1.5)
        layer.edge_rest[2].bias.uniform_(-0.3, 0.3)
    for p in list(layer.parameters()) + list(decoder.parameters()):
        p.requires_grad_(False)
    return layer, decoder


def graph(N: int, n_local: int, F: int, E: int, dtype=torch.float64, scale: float = 1.0, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    h = (scale * torch.randn(N, F, generator=g, dtype=torch.float64)).to(dtype)
    e = (scale * torch.randn(E, F, generator=g, dtype=torch.float64)).to(dtype)
    fcut = torch.rand(E, generator=g, dtype=torch.float64).to(dtype)
    unit = torch.nn.functional.normalize(torch.randn(E, 3, generator=g, dtype=torch.float64), dim=1).to(dtype)
    i, j = torch.randint(0, n_local, (E,), generator=g), torch.randint(0, N, (E,), generator=g)
    return h, e, fcut, unit, i, j


def run_both(F: int, N: int, n_local: int, E: int, dtype=torch.float64, scale: float = 1.0):
    """(reference, fused) results [h, e, v] of one layer and the decoder on its new edge states."""
    layer, decoder = reference_parts(F, dtype)
    h0, e0, fcut, unit, i, j = graph(N, n_local, F, E, dtype, scale)
    results = []
    for lay, dec in ((layer, decoder), (FusedGNSLayer(layer), FusedEdgeDecoder(decoder))):
        h, e = lay(h0, e0, fcut, i, j, 0.21, n_local)
        results.append([h, e, dec.vectors(e, unit, fcut, i, 0.21, n_local)])
    return results


# channels: below one float64 vector (4 lanes with AVX2, 8 with AVX-512), a few vectors plus a remainder, the
# default; 61 edges: one block of 48 and a rest
@pytest.mark.parametrize("F", [3, 37, 64])
def test_layer_and_decoder_match_reference_with_ghosts(F):
    """States of the local nodes, the new edge states and the decoder's vectors on a graph whose last nodes are
    ghosts (they send, never receive)."""
    N, n_local, E = 9, 6, 61
    ref, out = run_both(F, N, n_local, E)
    for name, a, b in zip(["node states", "edge states", "vectors"], ref, out):
        B.nontrivial(a, name)
        B.close(b, a, 1e-12, name)
    assert out[0].shape == (n_local, F) and out[2].shape == (n_local, 3, F)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_saturated_activations_match_reference(dtype):
    """Pre-activations far beyond where exp overflows (the operator's exp clamps its argument): the same outputs as
    the reference, all finite."""
    ref, out = run_both(8, 12, 10, 70, dtype, scale=400.0)
    for name, a, b in zip(["node states", "edge states", "vectors"], ref, out):
        assert bool(torch.isfinite(b).all()), f"{name} not finite"
        B.close(b, a, 1e-10 if dtype == torch.float64 else 1e-5, name)


# radial features K: fewer than one vector and more than two
@pytest.mark.parametrize("F,K", [(3, 5), (37, 17), (64, 16)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_encoder_matches_reference(F, K, dtype):
    torch.manual_seed(2)
    encoder = _mlp(K, F, F).to(dtype)
    with torch.no_grad():
        encoder[3].weight.uniform_(0.5, 1.5)
        encoder[3].bias.uniform_(-0.3, 0.3)
    for p in encoder.parameters():
        p.requires_grad_(False)
    rbf = torch.randn(61, K, dtype=torch.float64).to(dtype)
    want = encoder(rbf)
    B.nontrivial(want, "edge states")
    B.close(FusedEdgeEncoder(encoder)(rbf), want, 1e-12 if dtype == torch.float64 else 1e-5, "edge states")
    trainable = _mlp(K, F, F).to(dtype)
    with pytest.raises(RuntimeError, match="gns_encode gives no gradients"):
        FusedEdgeEncoder(trainable)(rbf)


def op_inputs(N: int, n_local: int, F: int, E: int, seed: int = 0):
    layer, decoder = reference_parts(F, seed=seed)
    h, e, fcut, unit, i, j = graph(N, n_local, F, E, seed=seed)
    linear, norm = layer.edge_rest[1], layer.edge_rest[2]
    edge = (e, layer.e_i(h[:n_local]), layer.e_j(h), fcut, i, j, layer.e_e.weight, layer.e_e.bias, linear.weight,
            linear.bias, norm.weight, norm.bias, norm.eps, 0.5)
    decode = (e, unit, fcut, i, decoder[0].weight, decoder[0].bias, decoder[2].weight, decoder[2].bias, n_local, 0.5)
    return edge, decode


def test_threads_give_the_same_numbers():
    edge, decode = op_inputs(300, 250, 6, 9000)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            results.append([*torch.ops.maskpot.gns_edge(*edge), torch.ops.maskpot.gns_decode(*decode)])
    finally:
        torch.set_num_threads(threads)
    for one, three in zip(*results):
        B.close(three, one, 1e-12, "3 threads against 1")


def test_outputs_carry_no_gradient_and_refusals():
    edge, decode = op_inputs(7, 5, 4, 20)
    x = edge[0].clone().requires_grad_()
    x_new, agg = torch.ops.maskpot.gns_edge(x, *edge[1:])
    assert not x_new.requires_grad and not agg.requires_grad
    trainable = list(edge)
    trainable[6] = trainable[6].clone().requires_grad_()
    with pytest.raises(RuntimeError, match="gns_edge gives no gradients"):
        torch.ops.maskpot.gns_edge(*trainable)
    trainable = list(decode)
    trainable[4] = trainable[4].clone().requires_grad_()
    with pytest.raises(RuntimeError, match="gns_decode gives no gradients"):
        torch.ops.maskpot.gns_decode(*trainable)
    bad = list(edge)
    bad[4] = bad[4] + 5
    with pytest.raises(RuntimeError, match="receiving atom i is outside"):
        torch.ops.maskpot.gns_edge(*bad)
    bad = list(edge)
    bad[5] = bad[5] + 7
    with pytest.raises(RuntimeError, match="sending atom j is outside"):
        torch.ops.maskpot.gns_edge(*bad)
    bad = list(decode)
    bad[8] = 2  # fewer receiving atoms than i reaches
    with pytest.raises(RuntimeError, match="receiving atom i is outside"):
        torch.ops.maskpot.gns_decode(*bad)
    with pytest.raises(RuntimeError, match="w_2 must be"):
        torch.ops.maskpot.gns_edge(*edge[:8], edge[8][:, :3], *edge[9:])
