"""Ratios, targets, tables and plots of benchmarks/speed.py: a Row per (size, model, engine, ranks) with its
ms/step repeats; engine / model-only bound, maskpot / TIP3P and 2 ranks / 1 rank, measured in the same run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.common import (atomic_write_text, command_line, csv_list, fmt, machine_description,
                               machine_markdown, markdown_table, save_figure, save_json)
from benchmarks.speed_engines import RIGID_TIMESTEP_FS, TIMESTEP_FS

BOUND_TARGET = 0.95  # each engine >= 0.95 of the model-only bound
RANK_TARGET = 1.8  # 2 ranks >= 1.8 x one rank (issue 15) ...
RANK_TARGET_WATERS = 4096  # ... at this size
MODEL_ENGINES = ("model-only", "eager", "openmm", "openmm-python", "lammps", "model-only-pt2", "lammps-pt2")
PACKAGE_ENGINES = ("model-only-pt2", "lammps-pt2")  # AOTInductor packages, timed interleaved with TorchScript
OPENMM_FORCE = {"openmm": "TorchForce", "openmm-python": "PythonForce"}  # the force class of each OpenMM row
ROW_ORDER = ("tip3p-flex", "tip3p-rigid") + MODEL_ENGINES


@dataclass
class Row:
    waters: int
    atoms: int
    engine: str
    backbone: str = "-"
    dtype: str = "-"
    ranks: int = 1
    timestep_fs: float = TIMESTEP_FS
    times_ms: list = field(default_factory=list)  # ms/step of every repeat
    error: str | None = None
    extra: dict = field(default_factory=dict)  # ghost estimates, neighbour-search share, ...
    ratio_bound: float | None = None
    ratio_tip3p: float | None = None
    ratio_ranks: float | None = None
    target: str = "-"
    note: str = ""

    @property
    def ms(self) -> float:
        return float(np.median(self.times_ms)) if self.times_ms and self.error is None else float("nan")

    @property
    def ns_day(self) -> float:
        return self.timestep_fs * 1e-6 * 86400e3 / self.ms

    @property
    def us_atom_step(self) -> float:
        return 1e3 * self.ms / self.atoms

    @property
    def x_floor(self) -> float | None:
        """us/atom-step over the model's compute floor (benchmarks/speed_floor.py), or None without one."""
        floor = self.extra.get("floor_us")
        return self.us_atom_step / floor if floor and self.error is None else None

    @property
    def label(self) -> str:
        return self.engine if self.backbone == "-" else f"{self.backbone} {self.dtype} {self.engine}"


def judge(row: Row, ok: bool) -> bool:
    """Record in ``row.target`` whether the row meets its target (``ok``); returns ``ok``."""
    row.target = "met" if ok else "not met"
    return ok


def assess(rows: list[Row]) -> None:
    """Ratios measured in this run, whether targets are met, and a short reason when not."""
    def find(waters, engine, backbone="-", dtype="-", ranks=1):
        for r in rows:
            if (r.waters, r.engine, r.backbone, r.dtype, r.ranks) == (waters, engine, backbone, dtype, ranks) and r.error is None:
                return r
        return None

    for r in rows:
        if r.error is not None:
            continue
        flex = find(r.waters, "tip3p-flex")
        if r.backbone != "-" and flex is not None:
            r.ratio_tip3p = flex.ms / r.ms
        bound = find(r.waters, "model-only", r.backbone, r.dtype)
        if r.engine == "model-only":
            r.note = f"neighbour search {100 * r.extra['neighbour_share']:.0f}% of the step ({r.extra['edges']:.0f} edges)"
        if (r.engine in OPENMM_FORCE or r.engine == "lammps") and bound is not None:
            r.ratio_bound = bound.ms / r.ms
        if r.engine in OPENMM_FORCE and r.ratio_bound is not None:
            if not judge(r, r.ratio_bound >= BOUND_TARGET):
                r.note = (f"{r.ms - bound.ms:.2f} ms/step outside the model (integrator, {OPENMM_FORCE[r.engine]} "
                          f"call and data copies); neighbour search {100 * bound.extra['neighbour_share']:.0f}% of "
                          "the bound")
        if r.engine in PACKAGE_ENGINES and bound is not None:
            r.ratio_bound = bound.ms / r.ms
            script = r.extra["torchscript_ms_interleaved"]
            r.note = (f"TorchScript {script:.2f} ms/step in the same run (interleaved): the .pt2 is "
                      f"{script / r.ms:.2f}x as fast")
        if r.engine == "lammps":
            pair = r.extra.get("lammps_breakdown_pct", {}).get("Pair")
            one = find(r.waters, "lammps", r.backbone, r.dtype, 1)
            if r.ranks > 1 and one is not None:
                r.ratio_ranks = one.ms / r.ms
            if r.ranks == 1 and r.ratio_bound is not None:
                if not judge(r, r.ratio_bound >= BOUND_TARGET):
                    r.note = (f"{r.ms - bound.ms:.2f} ms/step more than the bound; pair style (graph building, "
                              f"model call, data copies) {pair:.0f}% of the step" if pair is not None else
                              f"{r.ms - bound.ms:.2f} ms/step more than the bound")
            elif r.ranks > 1 and r.ratio_ranks is not None:
                shares = r.extra.get("lammps_breakdown_pct", {})
                r.note = (f"node states exchanged between layers: each rank's network runs on its own atoms; "
                          f"Pair {shares.get('Pair', float('nan')):.0f}% (incl. the exchanges), "
                          f"Comm {shares.get('Comm', float('nan')):.0f}% of the step")
                if r.waters != RANK_TARGET_WATERS:
                    r.target = f"n/a (target at {RANK_TARGET_WATERS} waters)"
                else:
                    judge(r, r.ratio_ranks >= RANK_TARGET)


HEADER = ["waters", "atoms", "model", "engine", "ns/day", "ms/step", "us/atom-step", "x compute floor", "engine/bound",
          "maskpot/TIP3P-flex", "2 ranks/1 rank", "target", "note"]


def table_rows(rows: list[Row]) -> list[list[str]]:
    out = []
    for r in rows:
        engine = f"lammps {r.ranks} rank{'s' if r.ranks > 1 else ''}" if r.engine == "lammps" else r.engine
        if r.engine == "tip3p-rigid":
            engine += f" ({RIGID_TIMESTEP_FS:g} fs)"
        model = "-" if r.backbone == "-" else f"{r.backbone} {r.dtype}"
        if r.error is not None:
            out.append([r.waters, r.atoms, model, engine] + ["-"] * 8 + [f"failed: {r.error}"])
            continue
        out.append([r.waters, r.atoms, model, engine, fmt(r.ns_day), fmt(r.ms), fmt(r.us_atom_step), fmt(r.x_floor),
                    fmt(r.ratio_bound), fmt(r.ratio_tip3p), fmt(r.ratio_ranks), r.target, r.note])
    return out


def gemm_rates(rows: list[Row]) -> dict[str, float]:
    """The GEMM rate of each dtype the run measured (FLOP/s)."""
    return {r.dtype: r.extra["gemm_flops_per_s"] for r in rows if "gemm_flops_per_s" in r.extra}


def plot_nsday(rows: list[Row], waters: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [r for r in rows if r.waters == waters and r.error is None and r.engine != "eager"]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(chosen) + 1.5))
    labels = [r.label + (f" {r.ranks}r" if r.engine == "lammps" else "") for r in chosen]
    colors = ["tab:gray" if r.backbone == "-" else "tab:blue" for r in chosen]
    ax.barh(range(len(chosen)), [r.ns_day for r in chosen], color=colors)
    ax.set_yticks(range(len(chosen)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ns/day")
    ax.set_title(f"{waters} waters ({3 * waters} atoms); TIP3P rigid at 2 fs, all others 0.5 fs")
    save_figure(fig, path)


def plot_scaling(rows: list[Row], backbone: str, dtype: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    series: dict[str, list[Row]] = {}
    for r in rows:
        if r.error is None and (r.backbone, r.dtype) in ((backbone, dtype), ("-", "-")):
            key = r.engine + (f" {r.ranks} rank(s)" if r.engine == "lammps" else "")
            series.setdefault(key, []).append(r)
    for key, rs in series.items():
        rs = sorted(rs, key=lambda r: r.atoms)
        ax.plot([r.atoms for r in rs], [r.ms for r in rs], marker="o", label=key)
    ref = sorted(series.get("model-only", []), key=lambda r: r.atoms)
    if ref:
        n = np.array([ref[0].atoms, max(r.atoms for rs in series.values() for r in rs)])
        ax.plot(n, ref[0].ms * n / n[0], "k--", lw=1, label="linear scaling")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("atoms")
    ax.set_ylabel("ms/step")
    ax.set_title(f"{backbone} {dtype}")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def write_outputs(rows, args, out: Path, combos, seconds: float) -> None:
    machine = machine_description(args.threads)
    command = command_line()
    scan_b, scan_d = csv_list(args.scan)
    ranked = sorted(rows, key=lambda r: (r.waters, r.backbone != "-", r.backbone, r.dtype, ROW_ORDER.index(r.engine),
                                         r.ranks))
    text = ["# maskpot MD speed\n",
            "Generated by `benchmarks/speed.py`" + (" in --quick mode (a functional check, not a measurement)" if args.quick else "")
            + f" in {seconds:.0f} s. Medians of {args.repeats} repeat(s), interleaved: in each round every row of one "
            f"box size runs once, so engine / bound and maskpot / TIP3P compare runs made side by side. All MD rows use a {TIMESTEP_FS} fs step "
            f"(rigid TIP3P: {RIGID_TIMESTEP_FS} fs) so ns/day compare. Models have random weights unless a checkpoint "
            "was given: speed does not depend on the weight values.\n",
            "## Machine\n", machine_markdown(machine, command),
            "\n## Results\n",
            "x compute floor = us/atom-step over the model's counted FLOPs per atom-step at this core's measured "
            "GEMM rate in the model's dtype (benchmarks/speed_floor.py; "
            + "; ".join(f"{d}: {fmt(v / 1e9)} GFLOP/s" for d, v in gemm_rates(rows).items()) + "); "
            "engine/bound = model-only ms/step / engine ms/step (target >= 0.95); maskpot/TIP3P-flex = ns/day ratio to "
            f"flexible TIP3P at the same size and step; 2 ranks/1 rank = LAMMPS speedup (target >= {RANK_TARGET} at "
            f"{RANK_TARGET_WATERS} waters); on several ranks pair_maskpot exchanges the node states of ghost atoms "
            "between layers (`ghosts exchange`, the default), so each rank's network runs on its own atoms. LAMMPS "
            "rows use "
            f"{args.threads} thread(s) per rank.\n",
            markdown_table(HEADER, table_rows(ranked))]
    atomic_write_text(out / "speed.md", "\n".join(text))
    save_json(out / "speed.json", {
        "machine": machine, "command": command, "options": vars(args), "seconds": seconds,
        "rows": [dict(asdict(r), label=r.label, ms_per_step=r.ms, ns_per_day=r.ns_day,
                      us_per_atom_step=r.us_atom_step) for r in ranked]})
    variant = args.variant_size if any(c[0] == args.variant_size for c in combos) else combos[0][0]
    plot_nsday(ranked, variant, out / "speed_nsday.png")
    plot_scaling(ranked, scan_b, scan_d, out / "speed_scaling.png")
