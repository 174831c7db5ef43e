"""How far two MPI ranks can speed LAMMPS up on this machine: 2 ranks against 1 on one water box, beside the
machine's own bound, two independent 1-rank runs of half the box at the same time.

Rows (default float32 PaiNN with random weights, the LAMMPS export, ``maskpot md --engine lammps``, NVT):
  1 rank, W waters; 2 ranks, W waters (domain decomposition); 1 rank, W/2 waters alone; two 1-rank runs of W/2
  waters started together (no communication, no shared atoms: what two cores give two independent jobs).
The rank speed-up is t(1 rank) / t(2 ranks); the machine's bound is 2 x t(W/2 alone) / t(W/2 side by side),
the throughput two independent processes reach together over one. The variants take turns (interleaved) over
--repeats rounds; LAMMPS' loop time of each timed run (after a warm-up run) in ms/step, medians.

Writes rank_scaling.md and rank_scaling.json to --out. Needs quiet cores (nothing else running).
    python benchmarks/rank_scaling.py --waters 4096 --steps 20 --repeats 2
"""

from __future__ import annotations

import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest.mock import patch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import argument_parser, begin, fmt, interleaved, markdown_table, write_report  # noqa: E402

TIMESTEP_FS = 0.5


def main(argv=None) -> int:
    ap = argument_parser(__doc__, quick="54 waters, tiny model, 4 steps (a functional check)",
                         threads="torch threads per rank", quick_values={"waters": 54, "steps": 4, "repeats": 1})
    ap.add_argument("--waters", type=int, default=4096, help="water molecules in the whole box (even)")
    ap.add_argument("--steps", type=int, default=20, help="timed MD steps per run")
    ap.add_argument("--repeats", type=int, default=2, help="rounds of all variants")
    args, _, started = begin(ap.parse_args(argv))
    with tempfile.TemporaryDirectory(prefix="maskpot-rank-scaling-") as tmp:  # run files: not results
        return measure(args, Path(tmp), started)


def measure(args, scratch: Path, started: float) -> int:
    from benchmarks.speed import random_checkpoint, water_box
    from maskpot.export import export_checkpoint
    from maskpot.lammps.md import run_lammps_md

    model = export_checkpoint(random_checkpoint(scratch / "model.ckpt", "painn", "float32", args.quick), "lammps",
                              scratch / "model-lammps.pt", dtype="float32")
    whole, half = water_box(args.waters, seed=0), water_box(args.waters // 2, seed=1)

    timing = {}  # tag -> the plugin's per-phase times of that variant's last run

    def run(frame, ranks: int, tag: str, seed: int) -> float:
        result = run_lammps_md(model, frame, steps=args.steps, timestep_fs=TIMESTEP_FS, report_interval=args.steps,
                               out_prefix=scratch / f"{tag}-{seed}", nprocs=ranks, seed=seed,
                               warmup_steps=max(2, args.steps // 5), threads=args.threads)
        timing[tag] = result["timing"]
        return result["ms_per_step"]

    def side_by_side(seed: int) -> float:
        with ThreadPoolExecutor(2) as pool:
            jobs = [pool.submit(run, half, 1, f"pair-{k}", seed) for k in range(2)]
            return max(job.result() for job in jobs)  # the pair is done when both are

    variants = {"1 rank": lambda s: run(whole, 1, "one", s), "2 ranks": lambda s: run(whole, 2, "two", s),
                "1 rank, half box": lambda s: run(half, 1, "half", s), "two half boxes side by side": side_by_side}
    with patch.dict(os.environ, {"MASKPOT_TIMING": "1"}):  # the plugin's per-phase times (pair_maskpot.h)
        ms, times = interleaved(variants, args.repeats)
    phases = phase_table(timing["one"], timing["two"])
    paired = {name: t["paired"] / max(t["edges"], 1) for name, t in phase_columns(timing["one"], timing["two"]).items()}
    result = {"waters": args.waters, "atoms": 3 * args.waters, "steps": args.steps, "repeats": args.repeats,
              "ms_per_step": ms, "all_ms_per_step": times,
              "rank_speedup": ms["1 rank"] / ms["2 ranks"],
              "machine_bound": 2 * ms["1 rank, half box"] / ms["two half boxes side by side"],
              "phase_ms_per_call": phases, "paired_edge_fraction": paired}
    rows = [[name, fmt(v)] for name, v in ms.items()]
    text = ("# Two MPI ranks against one, beside the machine's bound (benchmarks/rank_scaling.py)\n\n"
            f"Default float32 PaiNN (random weights), LAMMPS export, {args.waters} waters ({3 * args.waters} "
            f"atoms); half box: {args.waters // 2} waters. Medians of {args.repeats} interleaved rounds of "
            f"{args.steps} timed steps.\n\n" + markdown_table(["run", "ms/step"], rows) +
            f"\n- 2 ranks / 1 rank speed-up: {result['rank_speedup']:.2f}\n"
            f"- machine bound (two independent half-box runs together over one alone, x2): "
            f"{result['machine_bound']:.2f}\n"
            f"- the decomposition reaches {result['rank_speedup'] / result['machine_bound']:.0%} of the bound\n"
            "- edges the model gets in pairs (one filter per pair; not those to the other rank's ghosts): " +
            ", ".join(f"{name} {f:.0%}" for name, f in paired.items()) + "\n\n"
            + phase_markdown(phases))
    return write_report(args, started, "rank_scaling", result, text)


WAITING = ("exchange_forward", "exchange_reverse", "failure_check")  # phases that include the wait for other ranks


def phase_columns(one: dict, two: dict) -> dict[str, dict]:
    """{column: a rank's phase_timing} of the last 1-rank and 2-rank runs."""
    columns = {"1 rank": one[0]}
    columns.update({f"2 ranks: rank {r}": two[r] for r in sorted(two)})
    return columns


def phase_table(one: dict, two: dict) -> dict[str, dict[str, float]]:
    """{column: {phase: ms per compute call}} of the last 1-rank and 2-rank runs (all of a run's compute calls:
    set-up, warm-up and timed steps)."""
    return {name: {phase: 1e3 * s / t["calls"] for phase, s in t["seconds"].items()}
            for name, t in phase_columns(one, two).items()}


def phase_markdown(phases: dict[str, dict[str, float]]) -> str:
    names = list(dict.fromkeys(p for column in phases.values() for p in column))
    rows = [[p] + [fmt(column[p]) if p in column else "-" for column in phases.values()] for p in names]
    rows.append(["total"] + [fmt(sum(column.values())) for column in phases.values()])
    two = [column for name, column in phases.items() if name.startswith("2 ranks")]
    wait = max(sum(column[p] for p in WAITING) / sum(column.values()) for column in two)
    work = max(sum(v for p, v in column.items() if p not in WAITING) for column in two) / sum(
        phases["1 rank"].values())
    return ("## Where a compute call's time goes (the plugin's MASKPOT_TIMING=1 phases, ms per call)\n\n"
            "One rank folds ghosts onto their owners (one forward/backward call: \"model\"); two exchange node "
            "states between layers. An exchange phase (" + ", ".join(WAITING) + ") includes the wait for the "
            "other rank.\n\n" + markdown_table(["phase"] + list(phases), rows) +
            f"\n- exchange and waiting: {wait:.0%} of a 2-rank call (the larger rank)\n"
            f"- the rest of a 2-rank call over the whole 1-rank call: {work:.2f} (0.5 would be a perfect split)\n")


if __name__ == "__main__":
    raise SystemExit(main())
