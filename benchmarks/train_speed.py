"""Training-step speed: eager autograd against torch.compile (``maskpot finetune --compile``), side by side.

One finetuning step of each backbone's default model (float32, ``avg_neighbors`` from the frames): energies and
forces of a batch of 4 DeePMD water frames (64 H2O each), the energy+force L1 loss, its backward and an AdamW
step, as maskpot.train.finetune runs it. The compiled variant (maskpot.train.compiled) is compiled first (the
seconds are reported); then the two variants take turns, one batch each, over the same batches (interleaved, so
load on the machine hits them alike). Reported per step: CPU time (time.process_time, the figure that survives a
loaded machine) and wall time, medians over the steps, the ratio of the CPU medians, and the largest relative
difference of the two variants' losses on the first batch (same weights).

Writes train_speed.md and train_speed.json to --out.
    python benchmarks/train_speed.py                  # PaiNN, EGNN, GNS, 12 timed steps each
    python benchmarks/train_speed.py --quick          # a tiny PaiNN, 2 steps (a functional check)
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (argument_parser, begin, csv_list, deepmd_water, fmt, known,  # noqa: E402
                               markdown_table, write_report)

BACKBONES = ("painn", "egnn", "gns")


def parse_args(argv=None):
    ap = argument_parser(__doc__, quick="a tiny PaiNN, 2 timed steps", threads="torch threads per process",
                         quick_values={"backbones": "painn", "steps": 2})
    ap.add_argument("--backbones", default=",".join(BACKBONES), help="comma-separated")
    ap.add_argument("--steps", type=int, default=12, help="timed steps of each variant")
    ap.add_argument("--batch-size", type=int, default=4)
    return ap.parse_args(argv)


def measure(backbone: str, frames, args) -> dict:
    import torch

    from maskpot.models import ModelConfig, build_potential
    from maskpot.models.config import resolve_avg_neighbors
    from maskpot.train.batch import NeighborCache, collate
    from maskpot.train.compiled import CompiledEnergyForces
    from maskpot.train.loss import LossWeights, energy_force_loss
    from maskpot.train.metrics import predict_batch
    from maskpot.train.normalization import fit_normalization

    config = ModelConfig(backbone=backbone)
    if args.quick:
        config = dataclasses.replace(config, hidden=16, num_rbf=8)
    config = resolve_avg_neighbors(config, frames)
    torch.manual_seed(0)
    potential = build_potential(config).float()
    norm = fit_normalization(frames, config.species)
    norm.apply_to(potential)
    weights = LossWeights(1.0 if config.energy_centric else 0.0, 10.0)
    opt = torch.optim.AdamW(potential.parameters(), lr=1e-6)  # small steps: the weights stay comparable
    cache = NeighborCache()
    n_batches = max(1, len(frames) // args.batch_size)
    batches = [collate(frames[k * args.batch_size:(k + 1) * args.batch_size], config.cutoff, config.species,
                       torch.float32, cache) for k in range(n_batches)]
    compiled = CompiledEnergyForces(potential)
    variants = {"eager": lambda b: predict_batch(potential, b, create_graph=True), "compiled": compiled}

    def loss_of(name, batch):
        energy, forces = variants[name](batch)
        return energy_force_loss(energy, forces, batch.energy, batch.forces, batch.n_atoms, norm.scale, weights)

    def step(name, batch):
        opt.zero_grad()
        loss = loss_of(name, batch)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    first = {name: float(loss_of(name, batches[0]).detach()) for name in ("compiled", "eager")}  # compiles here
    for name in variants:  # warm-up: each variant's first backward
        step(name, batches[0])
    compile_s = time.perf_counter() - t0
    cpu = {name: [] for name in variants}
    wall = {name: [] for name in variants}
    for k in range(args.steps):
        batch = batches[k % len(batches)]
        for name in variants:
            c, w = time.process_time(), time.perf_counter()
            step(name, batch)
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
    med = {name: (statistics.median(cpu[name]), statistics.median(wall[name])) for name in variants}
    return {"backbone": backbone, "hidden": config.hidden, "atoms_per_batch": int(batches[0].positions.shape[0]),
            "edges_per_batch": int(batches[0].edge_index.shape[1]), "compile_s": compile_s,
            "eager_cpu_s": med["eager"][0], "eager_wall_s": med["eager"][1],
            "compiled_cpu_s": med["compiled"][0], "compiled_wall_s": med["compiled"][1],
            "speedup_cpu": med["eager"][0] / med["compiled"][0],
            "loss_rel_diff": abs(first["compiled"] - first["eager"]) / abs(first["eager"]),
            "shapes": len(compiled.shapes)}


def report(rows: list[dict], args) -> str:
    table = markdown_table(
        ["backbone", "atoms/batch", "edges/batch", "eager s/step (CPU / wall)", "compiled s/step (CPU / wall)",
         "eager / compiled (CPU)", "compile s", "loss rel. diff"],
        [[r["backbone"], r["atoms_per_batch"], r["edges_per_batch"],
          f"{fmt(r['eager_cpu_s'])} / {fmt(r['eager_wall_s'])}",
          f"{fmt(r['compiled_cpu_s'])} / {fmt(r['compiled_wall_s'])}", fmt(r["speedup_cpu"]),
          f"{r['compile_s']:.0f}", f"{r['loss_rel_diff']:.1e}"] for r in rows])
    return ("# Training step: eager autograd vs torch.compile (benchmarks/train_speed.py)\n\n"
            f"One finetuning step (batch of {args.batch_size} DeePMD water frames: energies, forces, L1 loss, "
            "backward, AdamW) of each default model in float32; the two variants interleaved step by step over "
            f"the same batches, medians of {args.steps} steps. \"compile s\": the first compiled call and one "
            "warm-up step of each variant (a minute or more on a fresh machine, seconds when inductor's on-disk "
            "cache holds the graph from an earlier run). \"loss rel. diff\": the two variants' losses on one batch "
            "with the same weights.\n\n" + table)


def main(argv=None) -> int:
    args, _, started = begin(parse_args(argv))
    backbones = known(csv_list(args.backbones), BACKBONES, "backbone")
    from maskpot.allocator import tune_allocator

    tune_allocator()  # as maskpot.train.loop does
    pool, _ = deepmd_water()
    frames = pool[:8 if args.quick else 48]
    rows = []
    for backbone in backbones:
        rows.append(measure(backbone, frames, args))
        r = rows[-1]
        print(f"{backbone}: eager {r['eager_cpu_s']:.3f} s, compiled {r['compiled_cpu_s']:.3f} s CPU per step "
              f"({r['speedup_cpu']:.2f}x; compile {r['compile_s']:.0f} s)", flush=True)
    return write_report(args, started, "train_speed", {"rows": rows}, report(rows, args))


if __name__ == "__main__":
    raise SystemExit(main())
