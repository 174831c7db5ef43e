"""Tables and plots of benchmarks/accuracy.py: test errors per (dataset, backbone, size, init) as mean +- std
over seeds, a force-MAE overview, learning curves, error against training-set size and the MD g(r).

Energies in meV/atom, forces in meV/A (as the finetuning records hold them).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from benchmarks.common import (atomic_write_text, command_line, machine_description, machine_markdown,
                               markdown_table, save_figure, save_json)

INITS = ("scratch", "mask", "denoise")  # the initialisations compared, in table order

METRICS = (("energy_mae", "E MAE meV/atom"), ("energy_rmse", "E RMSE meV/atom"),
           ("force_mae", "F MAE meV/A"), ("force_rmse", "F RMSE meV/A"))


def finished(record: dict) -> bool:
    return not record.get("error") and not record.get("pending")


def mean_std(values) -> tuple[float, float, int]:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return float("nan"), float("nan"), 0
    return float(np.mean(v)), float(np.std(v)), len(v)


def pm(values) -> str:
    m, s, n = mean_std(values)
    return "-" if n == 0 else (f"{m:.3g} +- {s:.2g}" if n > 1 else f"{m:.3g}")


def summarise(records: list[dict]) -> list[dict]:
    """One row per (dataset, backbone, size, init) with a finished or failed run: mean/std over seeds."""
    groups: dict = {}
    for r in records:
        if r.get("pending"):
            continue
        groups.setdefault((r["dataset"], r["backbone"], str(r["size"]), r["init"]), []).append(r)
    out = []
    for (ds, bb, size, init), rs in groups.items():
        ok = [r for r in rs if not r.get("error")]
        row = {"dataset": ds, "backbone": bb, "size": size, "init": init, "seeds": len(ok),
               "n_train": ok[0]["n_train"] if ok else None, "errors": [r["error"] for r in rs if r.get("error")]}
        for key, _ in METRICS:
            row[key], row[key + "_std"], _ = mean_std([r.get(key) for r in ok])
        out.append(row)
    return out


def accuracy_tables(records: list[dict]) -> str:
    text = []
    keys = sorted({(r["dataset"], r["backbone"]) for r in records})
    for ds, bb in keys:
        rows = []
        sizes = []
        for r in records:
            if (r["dataset"], r["backbone"]) == (ds, bb) and r["size"] not in sizes:
                sizes.append(r["size"])
        for size in sizes:
            for init in INITS:
                rs = [r for r in records if (r["dataset"], r["backbone"], r["size"], r["init"]) == (ds, bb, size, init)]
                if not rs:
                    continue
                ok = [r for r in rs if finished(r)]
                errors = [r["error"] for r in rs if r.get("error")]
                pending = sum(bool(r.get("pending")) for r in rs)
                note = "; ".join(([f"failed ({len(errors)}): {errors[0]}"] if errors else [])
                                 + ([f"{pending} seed(s) pending"] if pending else []))
                if not ok:
                    rows.append([size, "-", init, "-"] + ["-"] * 4 + [note])
                    continue
                rows.append([size, ok[0]["n_train"], init, len(ok)] + [pm([r.get(k) for r in ok]) for k, _ in METRICS]
                            + [note])
        text.append(f"### {ds}, {bb}\n")
        text.append(markdown_table(["size", "train frames", "init", "seeds"] + [m for _, m in METRICS] + ["note"], rows))
    return "\n".join(text)


def force_mae_overview(summary: list[dict], datasets, backbones) -> str:
    """Test force MAE means as one table: a row per (dataset, size), a column per backbone holding
    scratch / mask / denoise (best in bold, '-' where no seed finished), then how often each pretraining beat
    scratch and masking beat denoising over the cells where all three finished."""
    cell = {(r["dataset"], r["backbone"], r["size"], r["init"]): r for r in summary if r["seeds"] > 0}
    rows, wins = [], {"mask < scratch": 0, "denoise < scratch": 0, "mask < denoise": 0}
    complete = 0
    for ds in datasets:
        sizes = sorted({(r["n_train"], r["size"]) for r in cell.values() if r["dataset"] == ds})
        for n, size in sizes:
            row = [ds, f"{size} ({n})" if size == "all" else size]
            for bb in backbones:
                mae = {init: cell[(ds, bb, size, init)]["force_mae"] for init in INITS if (ds, bb, size, init) in cell}
                best = min(mae.values()) if mae else None
                row.append(" / ".join("-" if init not in mae else
                                      (f"**{mae[init]:.0f}**" if mae[init] == best else f"{mae[init]:.0f}")
                                      for init in INITS))
                if len(mae) == len(INITS):
                    complete += 1
                    wins["mask < scratch"] += mae["mask"] < mae["scratch"]
                    wins["denoise < scratch"] += mae["denoise"] < mae["scratch"]
                    wins["mask < denoise"] += mae["mask"] < mae["denoise"]
            rows.append(row)
    table = markdown_table(["data", "training frames"] + list(backbones), rows)
    tally = ", ".join(f"{k} in {v} of {complete}" for k, v in wins.items())
    return f"{table}\nCells with all three inits finished: {tally}.\n"


def md_verdict(m: dict) -> str:
    """A few words on an MD record: dissociated and/or overlapping molecules (O-O closer than 2.2 A), or neither."""
    problems = []
    if m["dissociated_at_end"]:
        problems.append("molecules dissociated")
    if m.get("oo_first_close_ps") is not None:
        problems.append(f"molecules overlap (O-O < 2.2 A) from {m['oo_first_close_ps']:.1f} ps")
    if problems:
        return "; ".join(problems)
    return "no dissociation, no overlap" if "oo_min" in m else "no dissociation (overlap not checked)"


def md_table(md: dict, datasets) -> str:
    """One row per dataset: the MD record's model, length, speed, dissociation, overlap and g(r) RMSEs."""
    header = ["dataset", "model", "ps", "ns/day", "dissociated at end", "closest O-O (A)", "O-O < 2.2 A at end",
              "g_OO RMSE", "g_OH RMSE", "note"]
    blank = ["-"] * (len(header) - 2)
    rows = [[ds] + blank + ["pending (after the dataset's finetuning runs)"] for ds in datasets if ds not in md]
    for ds, m in md.items():
        if "error" in m:
            rows.append([ds, m.get("model", "-")] + blank[1:] + [f"failed: {m['error']}"])
            continue
        rows.append([ds, m["model"], f"{m['ps']:g}", f"{m['ns_per_day']:.3g}",
                     f"{m['dissociated_at_end']} of {m['molecules']}",
                     f"{m['oo_min']:.2f}" if "oo_min" in m else "-", m.get("oo_close_at_end", "-"),
                     f"{m['rdf']['O-O']['rmse']:.3g}", f"{m['rdf']['O-H']['rmse']:.3g}", md_verdict(m)])
    return markdown_table(header, rows)


def panels(datasets, backbones):
    """A log-y figure of one panel per (dataset, backbone), titled so: (fig, [(ax, dataset, backbone), ...])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(datasets), len(backbones), figsize=(4 * len(backbones), 3.3 * len(datasets)),
                             squeeze=False)
    grid = [(axes[i][j], ds, bb) for i, ds in enumerate(datasets) for j, bb in enumerate(backbones)]
    for ax, ds, bb in grid:
        ax.set_yscale("log")
        ax.set_title(f"{ds}, {bb}")
    return fig, grid


def plot_force_mae(summary: list[dict], datasets, backbones, path: Path) -> None:
    fig, grid = panels(datasets, backbones)
    for ax, ds, bb in grid:
        for init in INITS:
            rs = sorted([r for r in summary if (r["dataset"], r["backbone"], r["init"]) == (ds, bb, init)
                         and r["seeds"] > 0], key=lambda r: r["n_train"])
            if rs:
                ax.errorbar([r["n_train"] for r in rs], [r["force_mae"] for r in rs],
                            yerr=[r["force_mae_std"] for r in rs], marker="o", capsize=3, label=init)
        ax.set_xscale("log")
        ax.set(xlabel="training frames", ylabel="test force MAE (meV/A)")
        ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_learning_curves(records: list[dict], datasets, backbones, path: Path) -> None:
    """Validation force MAE vs epoch from the runs' CSV logs: seed = first seed, smallest (dashed) and largest size."""
    import csv

    fig, grid = panels(datasets, backbones)
    colors = dict(zip(INITS, ("tab:gray", "tab:blue", "tab:orange")))
    for ax, ds, bb in grid:
        ok = [r for r in records if (r["dataset"], r["backbone"]) == (ds, bb) and finished(r)]
        if ok:
            seed = min(r["seed"] for r in ok)
            ns = sorted({r["n_train"] for r in ok})
            for r in ok:
                if r["seed"] != seed or r["n_train"] not in (ns[0], ns[-1]) or not Path(r["log"]).is_file():
                    continue
                with open(r["log"]) as handle:
                    rows = [row for row in csv.DictReader(handle) if row["val_force_mae"]]
                ax.plot([int(row["epoch"]) for row in rows], [float(row["val_force_mae"]) for row in rows],
                        color=colors[r["init"]], ls="-" if r["n_train"] == ns[-1] else "--",
                        label=f"{r['init']}, {r['n_train']} frames")
        ax.set(xlabel="epoch", ylabel="validation force MAE (meV/A)")
        ax.legend(fontsize=6)
    save_figure(fig, path)


def plot_rdf(md: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [ds for ds in md if "rdf" in md[ds]] or ["(none)"]
    fig, axes = plt.subplots(len(names), 2, figsize=(9, 3.3 * len(names)), squeeze=False)
    for i, ds in enumerate(names):
        for j, pair in enumerate(("O-O", "O-H")):
            ax = axes[i][j]
            if ds in md:
                d = md[ds]["rdf"][pair]
                ax.plot(d["r"], d["reference"], "k-", label="reference data")
                ax.plot(d["r"], d["model"], "tab:blue", label=f"{md[ds]['model']} ({md[ds]['ps']:g} ps)")
            ax.set_title(f"{ds}: g(r) {pair}")
            ax.set_xlabel("r (A)")
            ax.legend(fontsize=7)
    save_figure(fig, path)


def progress(records: list[dict]) -> str:
    n_done = sum(finished(r) for r in records)
    n_pending = sum(bool(r.get("pending")) for r in records)
    hours = sum(r.get("seconds", 0.0) for r in records if finished(r)) / 3600
    text = f"{n_done} of {len(records)} finetuning runs finished, {hours:.1f} h of finetuning"
    if n_pending:
        text += f"; {n_pending} pending: run the same command again to continue (finished runs are reused)"
    return text


def write_outputs(records, md, failures, args, datasets, backbones, out: Path, seconds: float) -> None:
    summary = summarise(records)
    machine = machine_description(args.threads)
    command = command_line()
    text = ["# maskpot accuracy: scratch vs masked vs denoising pretraining\n",
            "Generated by `benchmarks/accuracy.py`" + (" in --quick mode (a functional check: tiny data, few epochs; "
                                                       "the numbers mean nothing)" if args.quick else "")
            + f" ({progress(records)}; this invocation {seconds / 60:.1f} min). Test-set errors, mean +- std over seeds "
            f"({args.seeds}); finetuning budget {args.epochs} epochs (patience {args.patience}), pretraining "
            f"{args.pretrain_epochs} epochs, " + (f"at most {args.max_minutes} min per run.\n" if args.max_minutes
                                                  else "no wall-clock cap.\n"),
            "## Machine\n", machine_markdown(machine, command),
            "\n## Overview: test force MAE (meV/A), scratch / mask / denoise, mean over seeds\n",
            force_mae_overview(summary, datasets, backbones), "\n## Test errors\n", accuracy_tables(records),
            "\n## MD quality (best finetuned PaiNN, LAMMPS NVT 300 K, 0.5 fs)\n",
            "RDF RMSE = root-mean-square difference of g(r) from the reference data's over 0..rmax (first 20% of the "
            "trajectory discarded); dissociated = O atoms without exactly two H within 1.3 A at the end; closest O-O "
            "over the whole trajectory, and O-O pairs closer than 2.2 A at the end (overlapping molecules: the "
            "reference data's closest O-O is 2.35 A in the DeePMD set, 2.43 A in the TIP3P set). Why molecules "
            "overlap: `benchmarks/contact_scan.py` pushes pairs of them together with these models and TIP3P.\n",
            md_table(md, datasets)]
    atomic_write_text(out / "accuracy.md", "\n".join(text))
    save_json(out / "accuracy.json", {"machine": machine, "command": command, "options": vars(args),
                                      "seconds": seconds, "failures": failures, "runs": records,
                                      "summary": summary, "md": md})
    plot_force_mae(summary, datasets, backbones, out / "accuracy_force_mae.png")
    plot_learning_curves(records, datasets, backbones, out / "learning_curves.png")
    plot_rdf(md, out / "rdf.png")
