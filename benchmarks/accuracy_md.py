"""MD quality of a finetuned model: NVT in LAMMPS, O-O / O-H radial distribution functions against the reference
data's, and counts of the molecules that dissociated or overlap (used by benchmarks/accuracy.py).

Lengths in A; the cell is a 3x3 matrix in A.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from maskpot.atomic import atomic_write

OH_BOND_MAX = 1.3  # A: an intact water has exactly two H within this distance of its O
OO_CONTACT = 2.2  # A: two water O this close overlap (closest O-O in the DeePMD set 2.35 A, in the TIP3P set 2.43 A)
TIMESTEP_FS = 0.5
PAIRS = (("O-O", (8, 8)), ("O-H", (8, 1)))


def rdf(frames_positions, numbers, cell, pair, rmax, nbins=120):
    """g(r) of an element pair averaged over frames (minimum image via ase.geometry.get_distances).

    Hand-made histogram rather than ase.geometry.analysis.Analysis.get_rdf because that one builds Atoms and a
    neighbour list per frame; here a cubic cell and rmax <= half the box make the minimum image exact and cheap.
    """
    from ase.geometry import get_distances

    a = np.flatnonzero(numbers == pair[0])
    b = np.flatnonzero(numbers == pair[1])
    edges = np.linspace(0.0, rmax, nbins + 1)
    hist = np.zeros(nbins)
    volume = abs(np.linalg.det(cell))
    for pos in frames_positions:
        _, d = get_distances(pos[a], pos[b], cell=cell, pbc=True)
        d = d[d > 1e-8]
        hist += np.histogram(d, bins=edges)[0]
    pairs = len(a) * (len(b) - (1 if pair[0] == pair[1] else 0))
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = hist / (len(frames_positions) * pairs / volume * shell)
    return 0.5 * (edges[1:] + edges[:-1]), g


def dissociated(positions, numbers, cell) -> int:
    """Number of O atoms without exactly two H within 1.3 A (H assigned to their nearest O, minimum image)."""
    from ase.geometry import get_distances

    from maskpot.data import Frame
    from maskpot.data.molecules import hydrogen_parents

    frame = Frame(positions=positions, numbers=numbers, cell=cell, pbc=True)
    parents = hydrogen_parents(frame)
    bad = 0
    for o in np.flatnonzero(numbers == 8):
        hs = np.flatnonzero(parents == o)
        if len(hs) != 2:
            bad += 1
            continue
        _, d = get_distances(positions[hs], positions[[o]], cell=cell, pbc=True)
        bad += int(np.any(d > OH_BOND_MAX))
    return bad


def oo_contacts(traj, numbers, cell, ps_per_frame: float) -> dict:
    """Overlapping molecules in a trajectory ``traj`` (F, N, 3) A: the closest O-O distance over all frames, the
    O-O pairs closer than OO_CONTACT in the last frame, and when the first such pair appeared (ps, None if never).
    Intact molecules can still overlap, which the dissociation count does not see."""
    from ase.geometry import get_distances

    oxygens = np.flatnonzero(numbers == 8)
    upper = np.triu_indices(len(oxygens), 1)
    closest = [get_distances(pos[oxygens], cell=cell, pbc=True)[1][upper] for pos in traj]
    first = next((k for k, d in enumerate(closest) if d.min() < OO_CONTACT), None)
    return {"oo_min": float(min(d.min() for d in closest)), "oo_close_at_end": int(np.sum(closest[-1] < OO_CONTACT)),
            "oo_first_close_ps": None if first is None else first * ps_per_frame}


def read_trajectory(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (F, N, 3) A, atomic numbers (N,) and cell (3, 3) A of a LAMMPS text dump with an element column."""
    from ase.io import read as ase_read

    frames = ase_read(path, index=":", format="lammps-dump-text")
    return np.array([a.positions for a in frames]), frames[0].numbers, np.asarray(frames[0].cell)


def nvt_quality(checkpoint: Path, start, reference, folder: Path, ps: float, threads: int,
                repulsion_frames=None) -> dict:
    """NVT at 300 K with the finetuned ``checkpoint`` in LAMMPS (one rank, 0.5 fs) for ``ps`` from the frame
    ``start``; g(r) of the trajectory (first 20 % discarded as equilibration) against that of the ``reference``
    frames, the molecules dissociated at the end and the overlapping ones (oo_contacts). A copy of the checkpoint
    (model.ckpt; with ``repulsion_frames``, given maskpot's short-range repulsion from those frames), its export
    and the trajectory stay in ``folder``."""
    from maskpot.export import export_checkpoint
    from maskpot.lammps.md import run_lammps_md
    from maskpot.train.checkpoint import add_repulsion, load_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    if repulsion_frames is None:
        atomic_write(folder / "model.ckpt", lambda tmp: shutil.copyfile(checkpoint, tmp))
    else:
        add_repulsion(checkpoint, repulsion_frames, folder / "model.ckpt")
    model = export_checkpoint(folder / "model.ckpt", "lammps", folder / "md-model-lammps.pt")
    steps = max(2, int(round(ps * 1000 / TIMESTEP_FS)))
    interval = max(1, steps // 200)
    info = run_lammps_md(model, start, steps=steps, timestep_fs=TIMESTEP_FS, temperature=300.0,
                         ensemble="nvt-nose-hoover",
                         report_interval=interval, out_prefix=folder / "md", nprocs=1, seed=0, threads=threads)
    traj = read_trajectory(info["trajectory"])[0]
    cell = np.asarray(start.cell)
    rmax = min(6.0, 0.5 * float(np.min(np.linalg.norm(cell, axis=1))))
    used = traj[len(traj) // 5:] if len(traj) >= 5 else traj
    out = {"steps": steps, "ps": steps * TIMESTEP_FS * 1e-3, "ns_per_day": info["ns_per_day"], "frames": len(traj),
           "dissociated_at_end": dissociated(traj[-1], start.numbers, cell),
           "molecules": int(np.sum(start.numbers == 8)), "rmax": rmax, "rdf": {}, "report_interval": interval,
           "repulsion": load_checkpoint(folder / "model.ckpt").config.repulsion,
           **oo_contacts(traj, start.numbers, cell, interval * TIMESTEP_FS * 1e-3)}
    ref_pos = [f.positions for f in reference]
    for pair_name, pair in PAIRS:
        r, g_model = rdf(used, start.numbers, cell, pair, rmax)
        _, g_ref = rdf(ref_pos, reference[0].numbers, np.asarray(reference[0].cell), pair, rmax)
        out["rdf"][pair_name] = {"r": r.tolist(), "model": g_model.tolist(), "reference": g_ref.tolist(),
                                 "rmse": float(np.sqrt(np.mean((g_model - g_ref) ** 2)))}
    return out
