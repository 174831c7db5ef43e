"""Pure-torch O(N) cell-list neighbour search, TorchScript-scriptable (for exported models that load with torch alone).
Written by hand because the exported TorchScript modules must find neighbours without Python libraries
(vesin, ASE); on the Python side maskpot.data.neighbors uses vesin.

Pairs are returned in both directions without self pairs at zero shift; with ``shifts`` (E,3) integer-valued
cell-shift counts (positions' dtype), the edge vector is ``positions[j] - positions[i] + shifts @ cell`` and
its length is below ``cutoff`` (checked in positions' dtype on exactly that expression).
"""


from typing import Optional, Tuple

import torch
from torch import Tensor


def shift_vectors(shifts: Tensor, cell: Tensor) -> Tensor:
    """(E,3) cartesian shift vectors (Angstrom) s0 a0 + s1 a1 + s2 a2 of integer-valued shifts (E,3) and the rows
    a_k of ``cell`` (3,3), summed in that order: the value of ``shifts @ cell`` that maskpot::neighbor_pairs tests,
    and exactly antisymmetric (-s gives the negated vector bit for bit, which a matmul, free to round rows
    differently, does not promise), so that the two directions of a pair of atoms have mirrored edge features."""
    return (shifts[:, 0:1] * cell[0] + shifts[:, 1:2] * cell[1]) + shifts[:, 2:3] * cell[2]



def _cell_list_pairs(points: Tensor, n_query: int, cutoff: float) -> Tuple[Tensor, Tensor]:
    """Pairs (q, p) with q < n_query, p any point, q != p, |points[p] - points[q]| < cutoff + skin.

    Bins of side (cutoff + skin) / 2; each query looks in the 5 x 5 x 5 bins around its own (less candidate
    volume than 3 x 3 x 3 bins of side cutoff). Bins are keyed by a linear id and located with searchsorted on
    the sorted ids, so empty space costs nothing; points are visited in bin order for memory locality.
    """
    device = points.device
    reach = cutoff + 1e-3  # bins a little wider than the cutoff; callers filter exactly
    width = 0.5 * reach
    lo = points.min(dim=0).values
    coords = torch.floor((points - lo) / width).to(torch.int64) + 2  # room for the -2..+2 offsets
    nb = coords.max(dim=0).values + 3
    bin_id = (coords[:, 0] * nb[1] + coords[:, 1]) * nb[2] + coords[:, 2]
    sorted_id, order = torch.sort(bin_id)
    sorted_points = points[order]

    r = torch.arange(-2, 3, device=device)
    offsets = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), dim=-1).reshape(-1, 3)
    n_off = offsets.shape[0]
    query_order = torch.argsort(bin_id[:n_query])
    qc = coords[query_order].unsqueeze(1) + offsets.unsqueeze(0)  # (Q,125,3), all inside [0, nb)
    qbin = ((qc[..., 0] * nb[1] + qc[..., 1]) * nb[2] + qc[..., 2]).reshape(-1)
    start = torch.searchsorted(sorted_id, qbin, right=False)
    count = torch.searchsorted(sorted_id, qbin, right=True) - start
    keep_bins = count > 0
    start, count = start[keep_bins], count[keep_bins]
    owner = torch.nonzero(keep_bins).squeeze(-1)

    total = int(count.sum())
    pair_owner = torch.repeat_interleave(torch.arange(count.shape[0], device=device), count, output_size=total)
    first = torch.cumsum(count, 0) - count
    cand = torch.index_select(start - first, 0, pair_owner) + torch.arange(total, device=device)  # index into sorted points
    query = query_order[torch.div(torch.index_select(owner, 0, pair_owner), n_off, rounding_mode="floor")]

    d = torch.index_select(sorted_points, 0, cand) - torch.index_select(points, 0, query)
    keep = torch.sum(d * d, dim=-1) < reach * reach
    query, cand = query[keep], order[cand[keep]]
    not_self = cand != query
    return query[not_self], cand[not_self]


def neighbor_pairs_open(positions: Tensor, cutoff: float) -> Tensor:
    """Non-periodic pairs (2,E) int64 with |positions[j] - positions[i]| < cutoff, both directions, i != j."""
    if positions.shape[0] == 0:
        return torch.zeros((2, 0), dtype=torch.int64, device=positions.device)
    i, j = _cell_list_pairs(positions, positions.shape[0], cutoff)
    d = positions[j] - positions[i]
    keep = torch.sum(d * d, dim=-1) < cutoff * cutoff
    return torch.stack([i[keep], j[keep]])


def neighbor_pairs(positions: Tensor, cell: Optional[Tensor], pbc: Tensor, cutoff: float) -> Tuple[Tensor, Tensor]:
    """Pairs (2,E) int64 and integer cell shifts (E,3) in positions' dtype, under periodic boundaries.

    positions (N,3) Angstrom; cell (3,3) lattice vectors as rows (Angstrom) or None; pbc (3,) bool.
    Works for triclinic cells and cutoffs longer than the cell (several images of one neighbour).
    """
    n = positions.shape[0]
    dtype = positions.dtype
    device = positions.device
    if cell is None or not bool(pbc.any()) or n == 0:
        if bool(pbc.any()) and cell is None:
            raise ValueError("periodic boundaries were requested but no cell was given")
        edge_index = neighbor_pairs_open(positions, cutoff)
        return edge_index, torch.zeros((edge_index.shape[1], 3), dtype=dtype, device=device)
    cell = cell.to(dtype)
    volume = torch.abs(torch.linalg.det(cell))
    if float(volume) < 1e-6:
        raise ValueError("the cell is singular (zero volume); give three independent lattice vectors")
    periodic = pbc.to(torch.bool).to(device)

    # wrap periodic directions into [0, 1): positions = wrapped + wrap @ cell
    frac = positions @ torch.linalg.inv(cell)
    wrap = torch.where(periodic, torch.floor(frac), torch.zeros_like(frac))
    frac = frac - wrap
    wrapped = frac @ cell

    # images of atoms whose fractional coordinates lie within cutoff/height of the cell (height = V / |b x c| ...)
    cross = torch.stack([torch.linalg.cross(cell[1], cell[2]), torch.linalg.cross(cell[2], cell[0]),
                         torch.linalg.cross(cell[0], cell[1])])
    reach = cutoff * torch.linalg.vector_norm(cross, dim=-1) / volume  # cutoff in fractional units, per direction
    n_img = torch.where(periodic, torch.ceil(reach), torch.zeros_like(reach)).to(torch.int64)
    ra = torch.arange(-int(n_img[0]), int(n_img[0]) + 1, device=device)
    rb = torch.arange(-int(n_img[1]), int(n_img[1]) + 1, device=device)
    rc = torch.arange(-int(n_img[2]), int(n_img[2]) + 1, device=device)
    images = torch.stack(torch.meshgrid(ra, rb, rc, indexing="ij"), dim=-1).reshape(-1, 3)
    images = images[torch.argsort((images != 0).sum(-1), stable=True)]  # the zero image first
    images = images.to(dtype)
    f_img = frac.unsqueeze(0) + images.unsqueeze(1)  # (S,N,3)
    inside = ((f_img > -reach) & (f_img < 1.0 + reach)) | ~periodic
    inside = inside.all(dim=-1)
    inside[0] = True  # every original atom is a query
    nz = torch.nonzero(inside)  # row-major: the zero image's N atoms come first, in order
    s_idx, a_idx = nz[:, 0], nz[:, 1]
    points = wrapped[a_idx] + images[s_idx] @ cell

    qi, p = _cell_list_pairs(points, n, cutoff)
    j = a_idx[p]
    shifts = images[s_idx[p]] + wrap[qi] - wrap[j]
    d = positions[j] - positions[qi] + shifts @ cell
    keep = torch.sum(d * d, dim=-1) < cutoff * cutoff
    return torch.stack([qi[keep], j[keep]]), shifts[keep]


class NeighborSearch(torch.nn.Module):
    """:func:`neighbor_pairs` as a module, so that an export can swap in maskpot's C++ operator
    (``maskpot.kernels.neighbors.use_fused_neighbors``) and a reference export keeps this pure-torch search."""

    def forward(self, positions: Tensor, cell: Optional[Tensor], pbc: Tensor, cutoff: float) -> Tuple[Tensor, Tensor]:
        return neighbor_pairs(positions, cell, pbc, cutoff)
