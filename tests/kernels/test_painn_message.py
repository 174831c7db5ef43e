"""maskpot::painn_message and maskpot::painn_update (maskpot/kernels) against the reference PaiNN message and
update steps: the operators' gradients
(gradcheck), whole potentials (energies, forces, virials on periodic water), the layer-wise form with ghosts
(n_local < N), its refusals (double backward, weight gradients, bad indices), and fused exports in ASE, OpenMM
(a fresh process that loads the library through maskpot); LAMMPS: tests/lammps/test_lammps_kernels.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from maskpot.export.metadata import read_metadata
from maskpot.kernels.painn import FusedEdgeGeometry, FusedPaiNNMessage, use_fused
from tests.kernels import fused as shared
from tests.kernels.fused import TOL, frozen
from tests.models import battery as B

REPO = Path(__file__).resolve().parents[2]


def fused_copy(model: B.Model) -> B.Model:
    return shared.fused_copy(model, use_fused)


def small_water_box(seed: int = 2) -> B.Frame:
    """27 waters at liquid density (9.3 A cube): every atom has ~25 neighbours within the 4 A cutoff."""
    positions, numbers = B.waters(3, 9.3, seed)
    return B.Frame(positions, numbers, cell=np.eye(3) * 9.3, pbc=True)


@pytest.mark.parametrize("dtype", B.DTYPES)
def test_fused_potential_matches_reference_on_periodic_water(dtype):
    model = frozen(B.make_model("painn", dtype))
    switched = fused_copy(model)
    assert isinstance(switched.potential.backbone.layers[0].message, FusedPaiNNMessage)
    assert isinstance(switched.potential.backbone.geometry, FusedEdgeGeometry)
    shared.check_matches_reference(model, switched, [B.periodic_box(), small_water_box()])


def random_op_inputs(N: int, F: int, R: int, E: int, n_local: int, first: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    f64 = dict(dtype=torch.float64)
    s_phi = torch.randn(N, 3 * F, generator=g, **f64).requires_grad_()
    v = torch.randn(N, 3, F, generator=g, **f64).requires_grad_(not first)
    weight = torch.randn(3 * F, R, generator=g, **f64)
    feat = torch.randn(E, R + 3, generator=g, **f64).requires_grad_()  # [rbf_cut | unit]
    i = torch.randint(0, n_local, (E,), generator=g)
    j = torch.randint(0, N, (E,), generator=g)
    return s_phi, v, weight, feat, i, j


@pytest.mark.parametrize("first", [False, True])
@pytest.mark.parametrize("F", [5, 37])  # below one chunk of channels (float64: 16 with AVX2, 32 with AVX-512), and
# one or two whole chunks plus a remainder
# radial functions, the columns of the rbf-gradient GEMM (padded to whole vectors of 4 float64 lanes with AVX2, 8
# with AVX-512): one vector or less, a panel of two vectors, two panels and a one-vector panel (either CPU kind)
@pytest.mark.parametrize("R", [4, 11, 20])
def test_gradcheck(first, F, R):
    gradcheck_operator(first, F, R)


@pytest.mark.parametrize("first", [False, True])
def test_gradcheck_default_sizes(first):
    """The loops compiled for the default model's sizes (F = 64, R = 16)."""
    gradcheck_operator(first, 64, 16)


def gradcheck_operator(first: bool, F: int, R: int) -> None:
    N, n_local = 7, 5  # two ghosts: they send, never receive
    s_phi, v, weight, feat, i, j = random_op_inputs(N, F, R, 41, n_local, first)  # 41 edges: 6- and 12-row tiles + rest

    def op(s_phi, v, feat):
        return torch.ops.maskpot.painn_message(s_phi, v, weight, feat, i, j, n_local, first)

    inputs = (s_phi, v, feat) if not first else (s_phi, feat)
    fn = op if not first else (lambda s_phi, feat: op(s_phi, v, feat))
    assert torch.autograd.gradcheck(fn, inputs)
    ds, dv = op(s_phi, v, feat)
    assert ds.shape == (n_local, F) and dv.shape == (n_local, 3, F)


def paired_inputs(N: int, F: int, R: int, pairs: int, n_local: int, first: bool, dtype=torch.float64, seed: int = 0,
                  singles: int = 0):
    """Op inputs laid out in pairs (edge 2k + 1 = (b, a) the reverse of 2k = (a, b), local atoms, mirrored feature
    rows: the same rbf_cut, negated unit vectors), then `singles` edges one by one (local receivers, senders local
    or ghost, as a LAMMPS rank's edges to other ranks' ghosts), and the same edges sorted by (i, j) with that
    order."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, n_local, (pairs,), generator=g)
    b = (a + torch.randint(1, n_local, (pairs,), generator=g)) % n_local
    rbf = torch.randn(pairs, R, generator=g, dtype=torch.float64)
    unit = torch.randn(pairs, 3, generator=g, dtype=torch.float64)
    i = torch.cat([torch.stack([a, b], 1).flatten(), torch.randint(0, n_local, (singles,), generator=g)])
    j = torch.cat([torch.stack([b, a], 1).flatten(), torch.randint(0, N, (singles,), generator=g)])
    feat = torch.cat([torch.stack([torch.cat([rbf, unit], 1), torch.cat([rbf, -unit], 1)], 1).reshape(2 * pairs, R + 3),
                      torch.randn(singles, R + 3, generator=g, dtype=torch.float64)])
    s_phi = torch.randn(N, 3 * F, generator=g, dtype=torch.float64)
    v = torch.randn(N, 3, F, generator=g, dtype=torch.float64)
    weight = torch.randn(3 * F, R, generator=g, dtype=torch.float64)
    order = torch.argsort(i * N + j, stable=True)
    floats = [x.to(dtype) for x in (s_phi, v, weight, feat)]
    return floats, i, j, order


def pair_results(floats, i, j, n_local, first, cotangents):
    """Outputs and gradients (s_phi, v, feat) of the operator."""
    s_phi, v, weight, feat = (x.clone().requires_grad_(k != 2) for k, x in enumerate(floats))
    ds, dv = torch.ops.maskpot.painn_message(s_phi, v, weight, feat, i, j, n_local, first)
    c_s, c_v = cotangents
    wrt = [s_phi, feat] if first else [s_phi, v, feat]
    grads = torch.autograd.grad((ds * c_s).sum() + (dv * c_v).sum(), wrt)
    return [ds, dv, *grads]


def paired_rows(g_feat_sorted, order, pairs: int, R: int):
    """Feature gradients of the edges sorted by `order` back in the given rows, with the rbf_cut gradients of the
    first `pairs` pairs summed on each pair's first row (zeros on its second): where the pair loops put them."""
    g_feat = torch.empty_like(g_feat_sorted).index_copy_(0, order, g_feat_sorted)
    g_feat[0:2 * pairs:2, :R] += g_feat[1:2 * pairs:2, :R]
    g_feat[1:2 * pairs:2, :R] = 0
    return g_feat


@pytest.mark.parametrize("first", [False, True])
@pytest.mark.parametrize("dtype", B.DTYPES)
@pytest.mark.parametrize("F, R", [(37, 11), (64, 16)])
@pytest.mark.parametrize("singles", [0, 57])
def test_pairs_give_the_directed_result(dtype, first, F, R, singles):
    """Edges laid out in pairs (one filter per pair), alone or followed by single edges, against the same edges
    sorted (one filter per edge): outputs and gradients, with each pair's rbf_cut gradient on its first row (the
    pair loops read only that row's)."""
    N, n_local, P = 30, 24, 151
    floats, i, j, order = paired_inputs(N, F, R, P, n_local, first, getattr(torch, dtype), singles=singles)
    g = torch.Generator().manual_seed(4)
    t = floats[0].dtype
    cot = (torch.randn(n_local, F, generator=g).to(t), torch.randn(n_local, 3, F, generator=g).to(t))
    paired = pair_results(floats, i, j, n_local, first, cot)
    s_phi, v, weight, feat = floats
    directed = pair_results([s_phi, v, weight, feat[order]], i[order], j[order], n_local, first, cot)
    directed[-1] = paired_rows(directed[-1], order, P, R)
    names = ["ds", "dv", "s_phi gradient"] + ([] if first else ["v gradient"]) + ["feat gradient"]
    for a, b, name in zip(directed, paired, names):
        B.nontrivial(a, name)
        B.close(b, a, TOL[dtype], name)
    if singles:
        B.nontrivial(paired[-1][2 * P:, :R], "the single edges' rbf_cut gradients")


def test_rows_that_do_not_mirror_run_edge_by_edge():
    """A pair whose feature rows differ (beyond rounding) ends the pairs: it and every edge after it run one by one,
    each rbf_cut row read, so the result is that of the same edges sorted, gradients included."""
    N, n_local, F, R, P = 20, 16, 9, 5, 40
    (s_phi, v, weight, feat), i, j, order = paired_inputs(N, F, R, P, n_local, False)
    feat[7, 2] += 1e-3  # pair 3's second row
    feat[11, 1] += 1e-3  # pair 5's: were pairs taken after pair 3 again, its second row would be ignored
    g = torch.Generator().manual_seed(6)
    cot = (torch.randn(n_local, F, generator=g, dtype=torch.float64),
           torch.randn(n_local, 3, F, generator=g, dtype=torch.float64))
    out = pair_results([s_phi, v, weight, feat], i, j, n_local, False, cot)
    ref = pair_results([s_phi, v, weight, feat[order]], i[order], j[order], n_local, False, cot)
    ref[-1] = paired_rows(ref[-1], order, 3, R)  # pairs 0..2 still run as pairs
    for a, b, name in zip(ref, out, ["ds", "dv", "s_phi gradient", "v gradient", "feat gradient"]):
        B.close(b, a, 1e-12, name)


def test_rows_that_mirror_to_rounding_stay_pairs():
    """Rows that mirror to an ulp (edge_basis of v and -v may differ so in float64) still run as pairs: the second
    row's rbf_cut is not read (its gradient is zero) and the result is that of exact mirrors."""
    N, n_local, F, R, P = 20, 16, 9, 5, 40
    (s_phi, v, weight, feat), i, j, _ = paired_inputs(N, F, R, P, n_local, False)
    nudged = feat.clone()
    nudged[7, 2] = torch.nextafter(nudged[7, 2], torch.tensor(float("inf"), dtype=torch.float64))
    nudged[9, R] = torch.nextafter(nudged[9, R], torch.tensor(0.0, dtype=torch.float64))  # a unit vector's
    g = torch.Generator().manual_seed(7)
    cot = (torch.randn(n_local, F, generator=g, dtype=torch.float64),
           torch.randn(n_local, 3, F, generator=g, dtype=torch.float64))
    exact = pair_results([s_phi, v, weight, feat], i, j, n_local, False, cot)
    near = pair_results([s_phi, v, weight, nudged], i, j, n_local, False, cot)
    for a, b, name in zip(exact[:4], near[:4], ["ds", "dv", "s_phi gradient", "v gradient"]):
        B.close(b, a, 1e-12, name)
    assert bool((near[-1][1::2, :R] == 0).all()), "every pair's second rbf_cut row should be unread"


def test_pairs_gradients_by_finite_differences():
    """The pair loops' gradient with respect to the edge features along a perturbation that keeps the rows mirrored
    (the layout holds), against central differences; gradcheck for s_phi and v."""
    N, n_local, F, R, P = 12, 10, 37, 11, 31
    (s_phi, v, weight, feat), i, j, _ = paired_inputs(N, F, R, P, n_local, False)
    g = torch.Generator().manual_seed(5)
    c_s, c_v = torch.randn(n_local, F, generator=g, dtype=torch.float64), torch.randn(n_local, 3, F, generator=g, dtype=torch.float64)

    def loss(ft, sp=s_phi, vv=v):
        ds, dv = torch.ops.maskpot.painn_message(sp, vv, weight, ft, i, j, n_local, False)
        return (ds * c_s).sum() + (dv * c_v).sum()

    step = torch.randn(P, R + 3, generator=g, dtype=torch.float64)
    direction = torch.stack([step, torch.cat([step[:, :R], -step[:, R:]], 1)], 1).reshape(2 * P, R + 3)
    ft = feat.clone().requires_grad_()
    (g_feat,) = torch.autograd.grad(loss(ft), [ft])
    h = 1e-6
    numeric = (loss(feat + h * direction) - loss(feat - h * direction)) / (2 * h)
    B.close(float((g_feat * direction).sum()), float(numeric), 1e-7, "directional derivative")
    assert torch.autograd.gradcheck(lambda sp, vv: loss(feat, sp, vv),
                                    (s_phi.clone().requires_grad_(), v.clone().requires_grad_()))


@pytest.mark.parametrize("first", [False, True])
@pytest.mark.parametrize("dtype", B.DTYPES)
@pytest.mark.parametrize("F, R", [(69, 16), (64, 16)])
def test_operator_matches_reference_ops_on_whole_chunks(dtype, first, F, R):
    """The operator against the reference message step's torch ops (maskpot.models.painn.message_update) with
    F = 69 channels: whole chunks of channels, which run on vector registers (64 float32 or 32 float64 channels
    with AVX-512, half that with AVX2), plus a remainder; and with the default model's F = 64, R = 16, which run
    loops compiled for those sizes. 501 edges: pairs of edges whose filters are computed together, and one alone.
    Outputs and input gradients of a random cotangent."""
    from maskpot.models.painn import message_update

    t = getattr(torch, dtype)
    N, n_local = 40, 30
    *floats, i, j = random_op_inputs(N, F, R, 501, n_local, first, seed=5)
    s_phi, v, weight, feat = (x.detach().to(t) for x in floats)
    g = torch.Generator().manual_seed(6)
    c_s, c_v = (torch.randn(n_local, F, generator=g).to(t), torch.randn(n_local, 3, F, generator=g).to(t))
    results = []
    for fused in (False, True):
        leaves = [x.clone().requires_grad_() for x in (s_phi, v, feat)]
        sp, vv, ft = leaves
        if fused:
            ds, dv = torch.ops.maskpot.painn_message(sp, vv, weight, ft, i, j, n_local, first)
        else:
            rb, un = torch.split(ft, [R, 3], dim=1)
            zero_s, zero_v = sp.new_zeros(N, F), vv.new_zeros(N, 3, F)
            ds, dv = message_update(sp, rb @ weight.T, zero_s, zero_v + vv, un, i, j, first, n_local, F)
            dv = dv - vv[:n_local]
        wrt = [sp, ft] if first else leaves  # v is not read before the first layer
        grads = torch.autograd.grad((ds * c_s).sum() + (dv * c_v).sum(), wrt)
        results.append([ds, dv, *grads])
    wrt_names = ("s_phi", "feat") if first else ("s_phi", "v", "feat")
    names = ["ds", "dv"] + [f"{n} gradient" for n in wrt_names]
    for ref, out, name in zip(*results, names):
        B.nontrivial(ref, name)
        B.close(out, ref, TOL[dtype], name)


@pytest.mark.parametrize("dtype", B.DTYPES)
def test_layer_step_with_ghosts(dtype):
    """PaiNN.layer_step on a graph whose last nodes are ghosts (n_local < N): states of the local nodes and the
    gradients with respect to all node states and the edge features, fused against reference."""
    model = frozen(B.make_model("painn", dtype))
    fused = fused_copy(model)
    ref_bb, fused_bb = model.potential.backbone, fused.potential.backbone
    g = torch.Generator().manual_seed(3)
    N, n_local, E, F = 30, 18, 260, ref_bb.hidden
    t = model.torch_dtype
    edge_vec = (torch.rand(E, 3, generator=g, dtype=torch.float64) * 4.6 - 2.3).to(t)
    i, j = torch.randint(0, n_local, (E,), generator=g), torch.randint(0, N, (E,), generator=g)
    node0 = torch.randn(N, ref_bb.state_width, generator=g, dtype=torch.float64).to(t)
    cotangent = torch.randn(n_local, ref_bb.state_width, generator=g, dtype=torch.float64).to(t)
    for k in range(ref_bb.n_layers):
        results = []
        for bb in (ref_bb, fused_bb):
            vec = edge_vec.clone().requires_grad_()
            node = node0.clone().requires_grad_()
            feat = bb.edge_features(vec)
            out, _ = bb.layer_step(k, node, feat.new_zeros((E, 0)), feat, i, j, n_local)
            g_node, g_vec = torch.autograd.grad((out * cotangent).sum(), [node, vec], allow_unused=True)
            results.append((out.detach(), g_node, g_vec))
        (out_r, gn_r, gv_r), (out_f, gn_f, gv_f) = results
        assert out_f.shape == (n_local, ref_bb.state_width)
        B.close(out_f, out_r, TOL[dtype], f"layer {k} states")
        B.nontrivial(gv_r, f"layer {k} edge gradient")
        B.close(gv_f, gv_r, TOL[dtype], f"layer {k} edge-vector gradient")
        if k == 0:  # layer 0 reads the scalar states only (v is zero before it)
            gn_r, gn_f = gn_r[:, :F], gn_f[:, :F]
        B.close(gn_f, gn_r, TOL[dtype], f"layer {k} node-state gradient")
        assert bool((gn_r[n_local:] != 0).any()), "ghost states should get gradients (they send messages)"


@pytest.mark.parametrize("edges", ["grouped", "scattered", "pairs", "pairs+singles"])
def test_threads_give_the_same_numbers(edges):
    """Three threads against one: the forward splits the edges between receiving atoms when each atom's edges are
    contiguous (grouped, as neighbour lists give them) and runs on one thread otherwise; the backward always
    splits them (per-thread node gradients, summed); edges in pairs are split by pairs, both directions into
    per-thread outputs, and single edges after them evenly, into the same outputs."""
    if edges.startswith("pairs"):
        singles = 3001 if edges == "pairs+singles" else 0
        (s_phi, v, weight, feat), i, j, _ = paired_inputs(300, 6, 4, 4500, 250, False, singles=singles)
        s_phi, v, feat = (x.requires_grad_() for x in (s_phi, v, feat))
    else:
        s_phi, v, weight, feat, i, j = random_op_inputs(300, 6, 4, 9000, 250, False)
    if edges == "grouped":
        i = torch.sort(i).values
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            ds, dv = torch.ops.maskpot.painn_message(s_phi, v, weight, feat, i, j, 250, False)
            grads = torch.autograd.grad((ds * ds).sum() + (dv * dv).sum(), [s_phi, v, feat])
            results.append([ds, dv, *grads])
    finally:
        torch.set_num_threads(threads)
    for one, three in zip(*results):
        B.close(three, one, 1e-12, "3 threads against 1")


def update_pair(dtype: str, F: int = 7, seed: int = 0):
    """A reference PaiNNUpdate with random weights (no weight gradients) and its FusedPaiNNUpdate."""
    from maskpot.kernels.painn import FusedPaiNNUpdate
    from maskpot.models.painn import PaiNNUpdate

    torch.manual_seed(seed)
    ref = PaiNNUpdate(F).to(getattr(torch, dtype))
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref, FusedPaiNNUpdate(ref)


@pytest.mark.parametrize("dtype", B.DTYPES)
@pytest.mark.parametrize("F", [7, 64])
def test_update_operator_matches_reference(dtype, F):
    """maskpot::painn_update against PaiNNUpdate: outputs and the gradients of a random cotangent with respect to
    s and v, also at v = 0 (before the first layer, where |V v| rests on eps)."""
    ref, fused = update_pair(dtype, F)
    t = getattr(torch, dtype)
    g = torch.Generator().manual_seed(1)
    N = 37
    s0 = torch.randn(N, F, generator=g, dtype=torch.float64).to(t)
    for v0 in (torch.randn(N, 3, F, generator=g, dtype=torch.float64).to(t), torch.zeros(N, 3, F, dtype=t)):
        c_s, c_v = torch.randn(N, F, generator=g).to(t), torch.randn(N, 3, F, generator=g).to(t)
        results = []
        for module in (ref, fused):
            s, v = s0.clone().requires_grad_(), v0.clone().requires_grad_()
            s_out, v_out = module(s, v)
            results.append([s_out, v_out, *torch.autograd.grad((s_out * c_s).sum() + (v_out * c_v).sum(), [s, v])])
        for a, b, name in zip(*results, ["s", "v", "s gradient", "v gradient"]):
            if name != "v" or bool(v0.any()):  # v = 0 stays 0
                B.nontrivial(a, name)
            B.close(b, a, TOL[dtype], name)


def test_update_operator_threads_give_the_same_numbers():
    """Three threads against one (the atoms split between threads, torch's products threaded)."""
    ref, fused = update_pair("float64", 16)
    g = torch.Generator().manual_seed(3)
    s0 = torch.randn(2000, 16, generator=g, dtype=torch.float64)
    v0 = torch.randn(2000, 3, 16, generator=g, dtype=torch.float64)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            s, v = s0.clone().requires_grad_(), v0.clone().requires_grad_()
            s_out, v_out = fused(s, v)
            results.append([s_out, v_out, *torch.autograd.grad((s_out * s_out).sum() + (v_out * v_out).sum(), [s, v])])
    finally:
        torch.set_num_threads(threads)
    for one, three in zip(*results):
        B.close(three, one, 1e-12, "3 threads against 1")


def test_update_operator_gradcheck_and_refusals():
    ref, fused = update_pair("float64", 5)
    g = torch.Generator().manual_seed(2)
    s = torch.randn(6, 5, generator=g, dtype=torch.float64).requires_grad_()
    v = torch.randn(6, 3, 5, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(fused, (s, v))
    s_out, v_out = fused(s, v)
    with pytest.raises(RuntimeError, match="no double backward"):
        torch.autograd.grad(s_out.sum() + v_out.sum(), [s], create_graph=True)
    ref.U.weight.requires_grad_(True)
    with pytest.raises(RuntimeError, match="no gradient for its weights"):
        fused(s, v)


def test_refuses_double_backward_and_weight_gradients():
    s_phi, v, weight, feat, i, j = random_op_inputs(6, 4, 3, 20, 6, False)
    ds, dv = torch.ops.maskpot.painn_message(s_phi, v, weight, feat, i, j, 6, False)
    with pytest.raises(RuntimeError, match="no double backward"):
        torch.autograd.grad((ds.sum() + dv.sum()), [feat], create_graph=True)
    with pytest.raises(RuntimeError, match="no gradient for the filter weight"):
        torch.ops.maskpot.painn_message(s_phi, v, weight.requires_grad_(), feat, i, j, 6, False)
    with torch.no_grad():  # a weight that requires grad is fine when nothing is differentiated
        torch.ops.maskpot.painn_message(s_phi, v, weight, feat, i, j, 6, False)


def test_refuses_bad_inputs():
    s_phi, v, weight, feat, i, j = random_op_inputs(6, 4, 3, 20, 4, False)
    op = torch.ops.maskpot.painn_message
    bad_i = i.clone()
    bad_i[7] = 4  # = n_local: a ghost cannot receive
    with pytest.raises(RuntimeError, match="receiving atom i is outside"):
        op(s_phi, v, weight, feat, bad_i, j, 4, False)
    with pytest.raises(RuntimeError, match="sending atom j is outside"):
        op(s_phi, v, weight, feat, i, j + 6, 4, False)
    with pytest.raises(RuntimeError, match="all float inputs must be"):
        op(s_phi, v, weight.float(), feat, i, j, 4, False)
    with pytest.raises(RuntimeError, match=r"feat must be \(E, R \+ 3\)"):
        op(s_phi, v, weight, feat[:, :5], i, j, 4, False)


def test_training_mode_potential_is_refused_by_fused_but_reference_trains():
    """A fused potential with trainable weights refuses (training keeps the reference ops)."""
    model = B.make_model("painn", "float64")
    fused = fused_copy(model)  # weights still require grad
    with pytest.raises(RuntimeError, match="no gradient for the filter weight"):
        B.one(fused, B.periodic_box())


# ---- exports -----------------------------------------------------------------------------------------------------

def test_export_kernels_metadata_info_and_default(checkpoint_factory, export_factory, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from maskpot.cli import app

    assert read_metadata(export_factory("ase"))["kernels"] == "fused"  # the default where the library is built
    assert read_metadata(export_factory("ase", kernels="reference"))["kernels"] == "reference"
    assert read_metadata(export_factory("lammps", "egnn"))["kernels"] == "fused"  # the edge step
    assert read_metadata(export_factory("lammps", "gns"))["kernels"] == "fused"  # the edge update and decoder
    runner = CliRunner(env={"COLUMNS": "200"})
    r = runner.invoke(app, ["info", str(export_factory("lammps"))])
    assert r.exit_code == 0, r.output
    assert "fused" in next(line for line in r.output.splitlines() if "kernels" in line)
    out = tmp_path / "ref.pt"
    r = runner.invoke(app, ["export", str(checkpoint_factory("painn")), "--target", "ase", "--kernels", "reference",
                            "--out", str(out)])
    assert r.exit_code == 0 and "reference kernels" in r.output, r.output
    r = runner.invoke(app, ["export", str(checkpoint_factory("painn")), "--target", "ase", "--kernels", "fast",
                            "--out", str(tmp_path / "bad.pt")])
    assert r.exit_code != 0 and "unknown kernels 'fast'" in str(r.exception)  # main() prints it as one line
    assert not (tmp_path / "bad.pt").exists()
    from maskpot.export import writer

    with monkeypatch.context() as m:  # a backbone without operators of its own: LAMMPS has nothing to fuse
        m.setattr(writer, "FUSED_BACKBONES", ("painn", "egnn"))
        r = runner.invoke(app, ["export", str(checkpoint_factory("gns")), "--target", "lammps", "--kernels", "fused",
                                "--out", str(tmp_path / "gns.pt")])
        assert r.exit_code != 0 and "no fused kernels for the gns backbone with --target lammps" in str(r.exception)
        assert writer.default_kernels("gns", "lammps") == "reference"
        assert writer.default_kernels("gns", "ase") == "fused"  # the neighbour search
    from maskpot.export import export_checkpoint

    with pytest.raises(ValueError, match="--kernels fused applies to --format torchscript only"):
        export_checkpoint(checkpoint_factory("painn"), "ase", tmp_path / "p.pt2", export_format="aoti", kernels="fused")


@pytest.mark.parametrize("dtype", B.DTYPES)
def test_fused_ase_export_matches_reference_export(export_factory, water_atoms, dtype):
    from maskpot.ase import MaskpotCalculator

    results = []
    for k in ("reference", "fused"):
        atoms = water_atoms.copy()
        atoms.calc = MaskpotCalculator(export_factory("ase", "painn", dtype, kernels=k))
        results.append((atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()))
    (e_r, f_r, s_r), (e_f, f_f, s_f) = results
    assert abs(e_f - e_r) <= TOL[dtype] * abs(e_r)
    assert np.abs(f_f - f_r).max() <= TOL[dtype] * np.abs(f_r).max()
    assert np.abs(s_f - s_r).max() <= TOL[dtype] * np.abs(s_r).max()


def test_fresh_process_loads_fused_exports_through_maskpot(export_factory, water_atoms):
    """ASE and OpenMM in a process that has not loaded the kernels: maskpot's loaders load them; plain
    torch.jit.load of the reference export needs nothing (and of the fused one fails, naming the operator)."""
    from maskpot.ase import MaskpotCalculator
    from maskpot.data.units import EV_TO_KJ_PER_MOL

    atoms = water_atoms.copy()
    atoms.calc = MaskpotCalculator(export_factory("ase", kernels="reference"))
    e_ref = atoms.get_potential_energy()
    code = f"""
import json, sys, numpy as np, torch
import openmm
from ase import Atoms
from maskpot import kernels
assert not kernels.loaded()
from maskpot.ase import MaskpotCalculator
from maskpot.openmm import create_force
a = Atoms(numbers={list(map(int, atoms.numbers))!r}, positions={atoms.positions.tolist()!r}, cell={atoms.cell.tolist()!r}, pbc=True)
a.calc = MaskpotCalculator({str(export_factory("ase"))!r})
f = create_force({str(export_factory("openmm"))!r}, list(a.numbers))
s = openmm.System()
for z in a.numbers:
    s.addParticle(1.0)
L = a.cell[0, 0] / 10
s.setDefaultPeriodicBoxVectors(openmm.Vec3(L, 0, 0), openmm.Vec3(0, L, 0), openmm.Vec3(0, 0, L))
s.addForce(f)
c = openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName('Reference'))
c.setPositions(a.positions / 10)
print(json.dumps([a.get_potential_energy(), c.getState(getEnergy=True).getPotentialEnergy()._value]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    e_ase, e_openmm = json.loads(out.stdout.splitlines()[-1])
    assert e_ase == pytest.approx(e_ref, rel=1e-10)
    assert e_openmm == pytest.approx(e_ref * EV_TO_KJ_PER_MOL, rel=1e-10)
    plain = ("import sys, torch\n"
             "sys.path = [p for p in sys.path if 'maskpot' not in p and p not in ('', '.')]\n"
             "torch.jit.load(sys.argv[1]); assert 'maskpot' not in sys.modules; print('ok')\n")
    ref = subprocess.run([sys.executable, "-c", plain, str(export_factory("ase", kernels="reference"))],
                         capture_output=True, text=True, cwd="/")
    assert ref.returncode == 0 and "ok" in ref.stdout, ref.stderr
    fused = subprocess.run([sys.executable, "-c", plain, str(export_factory("ase"))], capture_output=True, text=True,
                           cwd="/")
    # the first maskpot operator the loader meets is named (edge_basis, painn_message or neighbor_pairs)
    assert fused.returncode != 0 and re.search(r"maskpot::(edge_basis|painn_message|neighbor_pairs)", fused.stderr)
