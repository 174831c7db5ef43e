"""Tables, statistics and plots of benchmarks/pretraining.py.

Paired differences: a finetuning seed fixes the training frames (and the initialisation of whatever is not
transferred), a pretraining seed the pretrained model, so two inits are compared run by run on the same
(finetuning seed, pretraining seed); against scratch (no pretraining seed) on the same finetuning seed. The
differences form a finetuning-seed x pretraining-seed table. Its mean's 95 % confidence interval treats both
seeds as random (a crossed two-way design without replication: Var(mean) = (MS_ft + MS_pt - MS_e) / (n_ft
n_pt), Satterthwaite's degrees of freedom), so it covers the spread of pretraining runs too; with one
pretraining seed it is the t-interval over finetuning seeds. Differences are in % of the reference run.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from benchmarks.common import (atomic_write_text, command_line, fmt, machine_description, machine_markdown,
                               markdown_table, save_figure, save_json)

# (A, B): rows of the paired-difference table, A - B in % of B
COMPARISONS = (("mask-tip3p", "scratch"), ("mask-dft", "scratch"), ("denoise-tip3p", "scratch"),
               ("supervised-tip3p", "scratch"), ("mask-head-dft", "scratch"), ("mask-tip3p", "denoise-tip3p"),
               ("mask-tip3p", "supervised-tip3p"), ("mask-dft", "denoise-tip3p"), ("mask-dft", "supervised-tip3p"),
               ("mask-dft", "mask-head-dft"), ("mask-dft", "mask-tip3p"), ("scratch-no-ema", "scratch"))


def finished(r: dict) -> bool:
    return not r.get("pending") and not r.get("error") and r.get("force_mae") is not None


def t_quantile(df: float) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def mean_ci(table: np.ndarray) -> tuple[float, float | None]:
    """Mean and 95 % CI half-width of a (n_ft, n_pt) table of paired values (module docstring)."""
    table = np.asarray(table, dtype=float)
    n_s, n_p = table.shape
    mean = float(table.mean())
    if n_s * n_p < 2:
        return mean, None
    if n_p == 1 or n_s == 1:
        v = table.ravel()
        return mean, t_quantile(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    rows, cols = table.mean(axis=1), table.mean(axis=0)
    ms_s = n_p * float(((rows - mean) ** 2).sum()) / (n_s - 1)
    ms_p = n_s * float(((cols - mean) ** 2).sum()) / (n_p - 1)
    resid = table - rows[:, None] - cols[None, :] + mean
    ms_e = float((resid ** 2).sum()) / ((n_s - 1) * (n_p - 1))
    combo = max(ms_s + ms_p - ms_e, ms_e, 1e-30)
    denom = (ms_s ** 2 / (n_s - 1) + ms_p ** 2 / (n_p - 1) + ms_e ** 2 / ((n_s - 1) * (n_p - 1))) or 1e-30
    df = max(1.0, combo ** 2 / denom)
    return mean, t_quantile(df) * math.sqrt(combo / (n_s * n_p))


def runs_of(records, backbone, size, init) -> dict:
    """{(ft seed, pt seed or None): force MAE} of the finished runs of one cell."""
    return {(r["seed"], r.get("pt_seed")): r["force_mae"] for r in records
            if finished(r) and r["backbone"] == backbone and r["train_frames"] == size and r["init"] == init}


def paired_table(records, backbone, size, a, b) -> np.ndarray | None:
    """(n_ft, n_pt) table of 100 * (A - B) / B over the complete finetuning seeds, or None."""
    ra, rb = runs_of(records, backbone, size, a), runs_of(records, backbone, size, b)
    if not ra or not rb:
        return None
    seeds = sorted({s for s, _ in ra})
    pts = sorted({p for _, p in ra}, key=lambda p: -1 if p is None else p)

    def ref(s, p):
        return rb.get((s, None)) if (s, None) in rb else rb.get((s, p))

    rows = [[100.0 * (ra[(s, p)] - ref(s, p)) / ref(s, p) for p in pts] for s in seeds
            if all((s, p) in ra and ref(s, p) for p in pts)]
    return np.array(rows) if rows else None


def cells(records) -> list[dict]:
    """One entry per (backbone, train_frames, init) with the fields pretraining.json promises."""
    from benchmarks.pretraining import INITS

    out = []
    keys = sorted({(r["backbone"], r["train_frames"], r["init"]) for r in records},
                  key=lambda k: (k[0] != "painn", k[0], k[1], list(INITS).index(k[2])))
    for bb, size, init in keys:
        mine = [r for r in records if (r["backbone"], r["train_frames"], r["init"]) == (bb, size, init)]
        done = [r for r in mine if finished(r)]
        maes = np.array([r["force_mae"] for r in done])
        spec = INITS[init]
        cell = {"backbone": bb, "train_frames": size, "init": init,
                "pretrain_data": spec[3] if spec else None, "objective": spec[1] if spec else None,
                "readout": spec[2] if spec else None, "n_runs": len(done), "n_planned": len(mine),
                "force_mae_mean": float(maes.mean()) if len(maes) else None,
                "force_mae_ci95": mean_ci(maes[:, None])[1] if len(maes) > 1 else None,
                "energy_mae_mean": float(np.mean([r["energy_mae"] for r in done]))
                if done and done[0]["energy_mae"] is not None else None,
                "best_at_last_fraction": float(np.mean([r["best_at_last"] for r in done])) if done else None,
                "steps_mean": float(np.mean([r["steps"] for r in done])) if done else None,
                "paired_vs_scratch_pct_mean": None, "paired_vs_scratch_pct_ci95": None, "n_pairs": 0}
        if init != "scratch":
            table = paired_table(records, bb, size, init, "scratch")
            if table is not None:
                m, ci = mean_ci(table)
                cell.update(paired_vs_scratch_pct_mean=m, paired_vs_scratch_pct_ci95=ci, n_pairs=int(table.size))
        out.append(cell)
    return out


def comparisons(records) -> list[dict]:
    rows = []
    for bb, size in sorted({(r["backbone"], r["train_frames"]) for r in records}, key=lambda k: (k[0] != "painn", k)):
        for a, b in COMPARISONS:
            table = paired_table(records, bb, size, a, b)
            if table is None:
                continue
            m, ci = mean_ci(table)
            rows.append({"backbone": bb, "train_frames": size, "a": a, "b": b, "pct_mean": m, "pct_ci95": ci,
                         "n_pairs": int(table.size), "n_ft_seeds": int(table.shape[0]),
                         "n_pt_seeds": int(table.shape[1])})
    return rows


def pm(mean, ci, digits=3) -> str:
    if mean is None:
        return "pending"
    return fmt(mean, digits) + ("" if ci is None else f" ± {fmt(ci, 2)}")


def plot_mae(cell_rows, path: Path) -> None:
    import matplotlib.pyplot as plt

    backbones = sorted({c["backbone"] for c in cell_rows}, key=lambda b: b != "painn")
    fig, axes = plt.subplots(1, len(backbones), figsize=(5.2 * len(backbones), 4.2), squeeze=False)
    for ax, bb in zip(axes[0], backbones):
        inits = []
        for c in cell_rows:
            if c["backbone"] == bb and c["init"] not in inits:
                inits.append(c["init"])
        for init in inits:
            pts = [c for c in cell_rows if c["backbone"] == bb and c["init"] == init and c["force_mae_mean"]]
            if pts:
                ax.errorbar([c["train_frames"] for c in pts], [c["force_mae_mean"] for c in pts],
                            yerr=[c["force_mae_ci95"] or 0 for c in pts], marker="o", capsize=3, label=init)
        ax.set_xscale("log")
        label_axes(ax, "DFT training frames", "test force MAE, meV/Å", bb, legend_size=8)
    fig.tight_layout()
    save_figure(fig, path)


def label_axes(ax, xlabel: str, ylabel: str, title: str, legend_size: int) -> None:
    """Log y axis, labels, title, and a legend when anything was drawn."""
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=legend_size)


def plot_curves(records, out: Path, path: Path) -> None:
    """Validation force MAE against step, finetuning seed 0 / pretraining seed 0 of each PaiNN init."""
    import csv

    import matplotlib.pyplot as plt

    sizes = sorted({r["train_frames"] for r in records if r["backbone"] == "painn"})
    fig, axes = plt.subplots(1, max(1, len(sizes)), figsize=(4.2 * max(1, len(sizes)), 3.8), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        for r in records:
            if not finished(r) or r["backbone"] != "painn" or r["train_frames"] != size or r["seed"] != 0 \
                    or (r.get("pt_seed") or 0) != 0:
                continue
            log = out / r["log"]
            if not log.is_file():
                continue
            rows = list(csv.DictReader(log.open()))
            ax.plot([int(x["step"]) for x in rows], [float(x["val_force_mae"]) for x in rows], label=r["init"])
        label_axes(ax, "step", "validation force MAE, meV/Å", f"PaiNN, {size} frames", legend_size=7)
    fig.tight_layout()
    save_figure(fig, path)


def write_outputs(records: list[dict], out: Path, args) -> None:
    from benchmarks.pretraining import budget

    cell_rows, comp_rows = cells(records), comparisons(records)
    done = [r for r in records if finished(r)]
    at_last = float(np.mean([r["best_at_last"] for r in done])) if done else None
    summary = {"budget": budget(args.quick), "n_finished": len(done), "n_planned": len(records),
               "best_at_last_fraction": at_last, "run_hours": sum(r.get("seconds", 0) for r in done) / 3600}
    save_json(out / "pretraining.json", {"summary": summary, "cells": cell_rows, "comparisons": comp_rows,
                                         "machine": machine_description(int(args.threads or 0))})
    plot_mae(cell_rows, out / "pretraining_force_mae.png")
    plot_curves(records, out, out / "pretraining_curves.png")
    b = budget(args.quick)
    lines = ["# Does pretraining pay? (benchmarks/pretraining.py)", "",
             ("**--quick run: a functional check on tiny data, not a result.**\n" if args.quick else "") +
             f"{len(done)} of {len(records)} finetuning runs finished ({summary['run_hours']:.1f} h of "
             f"finetuning, wall time per run summed). Every finetuning run trains to a plateau: validation every {b['eval_every']} steps on "
             f"{b['n_val']} fixed DFT frames, learning rate halved after 4 validations without improvement, stop "
             f"after {b['patience']} (at most {b['max_steps']} steps); EMA weights. Pretraining: "
             f"{b['pretrain_steps']} steps of batch 4 for every init. Fraction of runs whose best validation is "
             f"their last: " + ("-" if at_last is None else f"{100 * at_last:.1f} %") + ".", "",
             "## Test force MAE (meV/Å, mean ± 95 % CI over runs) and paired difference to scratch (% of scratch)",
             ""]
    header = ["backbone", "frames", "init", "runs", "force MAE", "vs scratch %", "best at last", "steps"]
    rows = [[c["backbone"], c["train_frames"], c["init"], f"{c['n_runs']}/{c['n_planned']}",
             pm(c["force_mae_mean"], c["force_mae_ci95"]),
             "-" if c["init"] == "scratch" else pm(c["paired_vs_scratch_pct_mean"], c["paired_vs_scratch_pct_ci95"], 2),
             "-" if c["best_at_last_fraction"] is None else f"{100 * c['best_at_last_fraction']:.0f} %",
             fmt(c["steps_mean"], 3)] for c in cell_rows]
    lines += [markdown_table(header, rows), "",
              "## Paired comparisons (A - B in % of B, mean ± 95 % CI; negative: A is better)", ""]
    rows = [[c["backbone"], c["train_frames"], c["a"], c["b"], pm(c["pct_mean"], c["pct_ci95"], 2),
             f"{c['n_ft_seeds']} x {c['n_pt_seeds']}"] for c in comp_rows]
    lines += [markdown_table(["backbone", "frames", "A", "B", "A - B %", "ft x pt seeds"], rows), "",
              "Plots: `pretraining_force_mae.png` (test force MAE against DFT frames per init), "
              "`pretraining_curves.png` (validation force MAE against step, PaiNN, seed 0).", "",
              machine_markdown(machine_description(int(args.threads or 0)), command_line())]
    atomic_write_text(out / "pretraining.md", "\n".join(lines) + "\n")
