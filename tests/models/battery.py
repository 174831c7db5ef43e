"""A reusable test battery for potentials: properties every backbone must have, whatever its weights.

Each ``check_*`` takes a ``Model`` (a small random-weight potential in float32 or float64) and raises
AssertionError naming what failed; tests/models/test_battery.py runs them on every backbone and dtype. A new
backbone passes the battery by being added to ``BACKBONES`` (its energy-centric flag from ``ModelConfig``
decides which checks apply). Structures are generated here (water-like, no external files) and go through
the public path: ``maskpot.train.batch.collate`` (vesin neighbour lists) and ``maskpot.models.compute.energy_forces``.

Tolerances are relative to the size of the compared quantity: ``Model.tol`` where the property holds exactly
(float64 1e-8, float32 1e-4), ``FD_TOL`` for central finite differences (float64 only).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from maskpot.data.frame import Frame
from maskpot.models import ModelConfig, build_potential
from maskpot.models.compute import energy_forces
from maskpot.train.batch import collate
from tests.models.water import random_rotation, water_positions

BACKBONES = ("painn", "egnn", "gns")
DTYPES = ("float32", "float64")
SPECIES = [1, 8]  # H, O
CUTOFF = 4.0
TOL = {"float64": 1e-8, "float32": 1e-4}
FD_STEP = 1e-5  # Angstrom (positions) or strain
FD_TOL = 1e-6


# ---- the model under test ---------------------------------------------------------------------------------------

@dataclass
class Model:
    backbone: str
    dtype: str
    potential: torch.nn.Module

    @property
    def energy_centric(self) -> bool:
        return bool(self.potential.energy_centric)

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32

    @property
    def tol(self) -> float:
        return TOL[self.dtype]


def make_model(backbone: str, dtype: str, seed: int = 0) -> Model:
    """A 2-layer, 16-feature potential with random weights and a non-trivial energy normalisation."""
    torch.manual_seed(seed)
    potential = build_potential(ModelConfig(backbone=backbone, species=SPECIES, cutoff=CUTOFF, hidden=16, layers=2,
                                            num_rbf=8, dtype=dtype, avg_neighbors=8.0))
    with torch.no_grad():  # small per-species shifts: large constant energies would swamp finite differences
        potential.energy_shift.copy_(torch.tensor([-0.6, -2.3], dtype=potential.energy_shift.dtype))
        potential.output_scale.fill_(1.7)
    return Model(backbone, dtype, potential)


def energy_centric(backbone: str) -> bool:
    return ModelConfig(backbone=backbone).energy_centric


@dataclass
class Output:
    energy: torch.Tensor  # (G,) eV
    forces: torch.Tensor  # (N, 3) eV/A
    virial: torch.Tensor  # (G, 3, 3) eV
    node_energy: torch.Tensor  # (N,) eV, without grad
    scalars: torch.Tensor  # (N, F) backbone invariant features
    vectors: torch.Tensor  # (N, 3, F') backbone equivariant features (F' may be 0)


def graph(model: Model, frames: list[Frame]) -> tuple:
    """(positions, species indices, edge_index, shifts, batch, n_graphs) of ``frames`` in the model's dtype, the
    arguments of ``energy_forces`` (the one place that reads GraphBatch fields)."""
    b = collate(frames, CUTOFF, SPECIES, model.torch_dtype)
    return b.positions, b.species_index, b.edge_index, b.shifts, b.batch, b.n_graphs


def evaluate(model: Model, frames: list[Frame]) -> Output:
    """The model on a batch of ``frames``: outputs, per-atom energies and backbone features."""
    inputs = graph(model, frames)
    positions, species, edge_index, shifts = inputs[:4]
    energy, forces, virial = energy_forces(model.potential, *inputs, False)
    edge_vec = positions[edge_index[1]] - positions[edge_index[0]] + shifts
    with torch.no_grad():
        node_energy, _ = model.potential(species, edge_index, edge_vec)
        scalars, vectors = model.potential.backbone(species, edge_index, edge_vec, None)
    for name, value in (("energy", energy), ("forces", forces), ("virial", virial), ("node energy", node_energy)):
        assert value.dtype == model.torch_dtype, f"{name} is {value.dtype}, not {model.dtype}"
        assert bool(torch.isfinite(value).all()), f"{name} is not finite"
    return Output(energy, forces, virial, node_energy, scalars, vectors)


def one(model: Model, frame: Frame) -> Output:
    return evaluate(model, [frame])


def close(actual, expected, tol: float, what: str, scale: float | None = None) -> None:
    """max |actual - expected| <= tol * scale, scale = max |expected| unless given (floored at 1e-12)."""
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if scale is None:
        scale = float(expected.abs().max()) if expected.numel() else 0.0
    err = float((actual - expected).abs().max()) if expected.numel() else 0.0
    assert err <= tol * max(scale, 1e-12), f"{what}: max error {err:.3g} > {tol:g} x {scale:.3g}"


def nontrivial(x: torch.Tensor, what: str, floor: float = 1e-4) -> float:
    """max |x|, asserted above ``floor`` (a comparison of zeros would prove nothing)."""
    scale = float(x.abs().max()) if x.numel() else 0.0
    assert scale > floor, f"{what} is (nearly) zero: {scale:.3g}; the check would prove nothing"
    return scale


# ---- structures -------------------------------------------------------------------------------------------------

def waters(n_per_side: int, box: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and atomic numbers of n_per_side**3 water-like molecules (O, H, H) on a jittered grid."""
    return water_positions(n_per_side, box, seed=seed), np.array([8, 1, 1] * n_per_side ** 3)


def periodic_box(seed: int = 4) -> Frame:
    """8 waters in a triclinic 6.2 A cell: the 4 A cutoff exceeds half the cell, so pairs have several images."""
    positions, numbers = waters(2, 6.2, seed)
    cell = np.array([[6.2, 0.0, 0.0], [0.4, 6.2, 0.0], [-0.3, 0.2, 6.2]])
    return Frame(positions, numbers, cell=cell, pbc=True)


def small_cell() -> Frame:
    """One water in a triclinic cell smaller than the cutoff: every atom sees several images of every atom,
    its own included."""
    positions, numbers = waters(1, 3.1, seed=2)
    cell = np.array([[3.1, 0.0, 0.0], [0.3, 3.3, 0.0], [-0.2, 0.4, 3.2]])
    return Frame(positions, numbers, cell=cell, pbc=True)


def cluster(seed: int = 1) -> Frame:
    """8 waters, not periodic."""
    return Frame(*waters(2, 6.0, seed))


def supercell(frame: Frame, reps: tuple[int, int, int]) -> Frame:
    """``frame`` repeated reps[k] times along lattice vector k (image by image, the original atoms first)."""
    shifts = np.array([(a, b, c) for a in range(reps[0]) for b in range(reps[1]) for c in range(reps[2])])
    positions = (frame.positions[None] + (shifts @ frame.cell)[:, None]).reshape(-1, 3)
    return Frame(positions, np.tile(frame.numbers, len(shifts)), cell=frame.cell * np.array(reps)[:, None],
                 pbc=True)


def moved(frame: Frame, positions: np.ndarray, cell: np.ndarray | None = None) -> Frame:
    return replace(frame, positions=positions, cell=frame.cell if cell is None else cell)


# ---- checks -----------------------------------------------------------------------------------------------------

def check_batching(model: Model) -> None:
    """A batch of graphs (periodic, open, one atom) gives each graph's outputs alone, in order."""
    frames = [periodic_box(), cluster(), Frame([[0.0, 0.0, 0.0]], [8])]
    alone = [one(model, f) for f in frames]
    together = evaluate(model, frames)
    nontrivial(alone[0].forces, "forces")
    for field in ("energy", "virial", "forces", "node_energy"):
        close(getattr(together, field), torch.cat([getattr(a, field) for a in alone]), model.tol, field)


def check_periodic_images(model: Model) -> None:
    """A cell smaller than the cutoff (several images per pair, self-images included) equals the same structure
    as a 2 x 2 x 2 supercell: per-atom energies and forces repeat, energy and virial scale by 8."""
    cell = small_cell()
    small, big = one(model, cell), one(model, supercell(cell, (2, 2, 2)))
    nontrivial(small.forces, "forces")
    close(big.node_energy, small.node_energy.repeat(8), model.tol, "per-atom energy")
    close(big.forces, small.forces.repeat(8, 1), model.tol, "forces")
    close(big.energy, 8 * small.energy, model.tol, "energy")
    close(big.virial, 8 * small.virial, model.tol, "virial")


def _symmetry(model: Model, frame: Frame, seed: int) -> None:
    rot = random_rotation(seed, torch.float64).numpy()
    perm = np.random.default_rng(seed).permutation(len(frame))
    shift = np.array([3.0, -1.7, 9.4])  # moves atoms of a periodic frame out of its cell
    cell = None if frame.cell is None else frame.cell @ rot.T
    ref = one(model, frame)
    new = one(model, replace(moved(frame, (frame.positions @ rot.T + shift)[perm], cell), numbers=frame.numbers[perm]))
    r = torch.tensor(rot, dtype=model.torch_dtype)
    fscale = nontrivial(ref.forces, "forces")
    close(new.energy, ref.energy, model.tol, "energy")
    close(new.node_energy, ref.node_energy[perm], model.tol, "per-atom energy")
    close(new.forces, (ref.forces @ r.T)[perm], model.tol, "forces", fscale)
    close(new.virial, r @ ref.virial @ r.T, model.tol, "virial")
    close(new.scalars, ref.scalars[perm], model.tol, "invariant features")
    close(new.vectors, torch.einsum("ab,nbf->naf", r, ref.vectors)[perm], model.tol, "equivariant features")


def check_symmetry(model: Model) -> None:
    """Rotation (cell rotated too), translation (out of the cell) and permutation: energies invariant, forces,
    virial and vector features equivariant; for an open cluster and a periodic triclinic box."""
    _symmetry(model, cluster(), seed=7)
    _symmetry(model, periodic_box(), seed=8)


def check_forces_are_minus_energy_gradient(model: Model) -> None:
    """Energy-centric, float64: forces = -dE/dx by central differences on every coordinate of a periodic box;
    and they sum to zero (translation invariance)."""
    frame = periodic_box()
    forces = one(model, frame).forces
    fd = torch.zeros_like(forces)
    for a in range(len(frame)):
        for c in range(3):
            step = np.zeros_like(frame.positions)
            step[a, c] = FD_STEP
            plus = one(model, moved(frame, frame.positions + step)).energy[0]
            minus = one(model, moved(frame, frame.positions - step)).energy[0]
            fd[a, c] = -(plus - minus) / (2 * FD_STEP)
    scale = nontrivial(forces, "forces")
    close(forces, fd, FD_TOL, "forces vs -dE/dx")
    close(forces.sum(0), torch.zeros(3, dtype=forces.dtype), model.tol * len(frame), "sum of forces", scale)


def check_virial_is_minus_strain_derivative(model: Model) -> None:
    """Energy-centric, float64: W_ab = -dE/d eps_ab under x -> x (I + eps), cell -> cell (I + eps), by central
    differences; symmetric (rotation invariance). The ASE stress is -W / volume."""
    frame = periodic_box()
    virial = one(model, frame).virial[0]

    def energy(eps: np.ndarray) -> torch.Tensor:
        d = np.eye(3) + eps
        return one(model, moved(frame, frame.positions @ d, frame.cell @ d)).energy[0]

    fd = torch.zeros_like(virial)
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = FD_STEP
            fd[a, b] = -(energy(eps) - energy(-eps)) / (2 * FD_STEP)
    nontrivial(virial, "virial")
    close(virial, fd, FD_TOL, "virial vs -dE/d strain")
    close(virial, virial.T, model.tol, "virial symmetry")


def check_cutoff_smoothness(model: Model) -> None:
    """A neighbour crossing the cutoff: an O-H pair plus an H that moves past the cutoff of the first H. Just
    inside and just outside, energies and forces agree to the envelope's third order; well inside they differ
    (the neighbour interacts)."""
    delta = 1e-4 if model.dtype == "float64" else 1e-3
    probe = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [0.96, 0.0, 0.0]])

    def at(y: float) -> tuple[Output, int]:
        pos = probe + np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, y, 0.0]])
        frame = Frame(pos, [8, 1, 1])
        return one(model, frame), graph(model, [frame])[2].shape[1]

    (inside, n_in), (outside, n_out), (near, _) = at(CUTOFF - delta), at(CUTOFF + delta), at(0.7 * CUTOFF)
    assert (n_in, n_out) == (4, 2), f"edges {n_in, n_out}: the probe does not cross the cutoff alone"
    changed = max(float((near.energy - outside.energy).abs()), float((near.forces - outside.forces).abs().max()))
    assert changed > 1e-4, f"the neighbour does not interact well inside the cutoff ({changed:.3g})"
    close(inside.energy, outside.energy, model.tol, "energy across the cutoff",
          max(changed, float(outside.energy.abs())))
    close(inside.forces, outside.forces, model.tol, "forces across the cutoff",
          max(changed, float(near.forces.abs().max())))


def check_isolated_atoms(model: Model) -> None:
    """Atoms with no neighbour within the cutoff (open, or periodic with no image in reach): finite energies,
    a per-species constant per atom (the one-atom graph's: energy_shift plus the head's reading of the layers'
    output without messages, so not the shift itself), zero forces and virial; an isolated atom added to a
    cluster adds exactly its own energy."""
    far = 2.5 * CUTOFF
    numbers = [8, 1, 1, 8]
    positions = np.array([[0.0, 0.0, 0.0], [far, 0.0, 0.0], [0.0, far, 0.0], [far, far, 0.0]])
    e0 = {z: one(model, Frame([[0.0, 0.0, 0.0]], [z])).energy[0] for z in (1, 8)}
    expected = torch.stack([e0[z] for z in numbers])
    for frame in (Frame(positions, numbers), Frame(positions, numbers, cell=np.eye(3) * 2 * far, pbc=True)):
        out = one(model, frame)
        close(out.node_energy, expected, model.tol, "per-atom energy of isolated atoms")
        assert not bool(out.forces.any()) and not bool(out.virial.any()), "isolated atoms feel a force"
    mol = cluster()
    lone = Frame(np.vstack([mol.positions, [[30.0, 30.0, 30.0]]]), np.append(mol.numbers, 8))
    close(one(model, lone).energy, one(model, mol).energy + e0[8], model.tol, "cluster + isolated atom")


def check_empty_and_one_atom(model: Model) -> None:
    """An empty graph has zero energy and no forces, alone and inside a batch; one atom in a cell smaller than the
    cutoff (only its own images) has finite energy, zero force and a symmetric virial."""
    empty = Frame(np.zeros((0, 3)), [])
    out = one(model, empty)
    assert out.forces.shape == (0, 3) and float(out.energy.abs().max()) == 0.0 and not bool(out.virial.any())
    single = Frame([[0.3, 0.2, 0.1]], [8], cell=np.eye(3) * 2.9, pbc=True)
    batch = evaluate(model, [single, empty, single])
    close(batch.energy, torch.cat([batch.energy[:1], torch.zeros(1, dtype=batch.energy.dtype), batch.energy[:1]]),
          model.tol, "energies of [one atom, empty, one atom]")
    alone = one(model, single)
    # the pairs with images +s and -s cancel (to round-off on forces of O(1) eV/A)
    close(alone.forces, torch.zeros_like(alone.forces), model.tol, "force of an atom from its own images", 1.0)
    close(alone.virial, alone.virial.transpose(1, 2), model.tol, "virial symmetry")
    if model.energy_centric:  # its images interact with it: the virial (pressure) is not zero
        nontrivial(alone.virial, "virial of one atom among its images", 1e-8)


def check_layer_steps_compose_to_forward(model: Model) -> None:
    """The four layer-wise steps engines call one by one (maskpot.models.backbone: edge_features, initial_state,
    layer_step per layer, node_features) give the backbone's forward on a whole graph, which may take a shorter
    way (PaiNN keeps s and v apart between layers): the same features, bit for bit."""
    positions, species, edge_index, shifts = graph(model, [periodic_box(), cluster()])[:4]
    edge_vec = positions[edge_index[1]] - positions[edge_index[0]] + shifts
    backbone = model.potential.backbone
    with torch.no_grad():
        s_ref, v_ref = backbone(species, edge_index, edge_vec, None)
        n = species.shape[0]
        feat = backbone.edge_features(edge_vec)
        node, edge = backbone.initial_state(species, feat, None)
        for k in range(backbone.n_layers):
            node, edge = backbone.layer_step(k, node, edge, feat, edge_index[0], edge_index[1], n)
        s, v = backbone.node_features(node, edge, feat, edge_index[0], n)
    nontrivial(s_ref, "scalar features")
    assert torch.equal(s, s_ref) and torch.equal(v, v_ref), "layer-wise steps differ from forward"


EVERY_MODEL = (check_batching, check_periodic_images, check_symmetry, check_cutoff_smoothness, check_isolated_atoms,
               check_empty_and_one_atom, check_layer_steps_compose_to_forward)
ENERGY_CENTRIC_FLOAT64 = (check_forces_are_minus_energy_gradient, check_virial_is_minus_strain_derivative)
