"""Two water molecules pushed together: energy against O-O distance for each dataset's MD model and flexible TIP3P.

The MD check of accuracy.py finds the molecules of the finetuned models falling into each other. This shows why
without MD: in the MD start frame (each dataset's first test frame) each of the ``--pairs`` closest O-O pairs is
pushed together, the second molecule moved rigidly along the O-O axis from ``--start`` to ``--stop`` A, and the
energy of the whole box is evaluated at every distance with the MD model's ASE export (the deployed code path), with
the same model given maskpot's short-range repulsion from its training frames (maskpot.models.repulsion), and with
flexible TIP3P (OpenMM Reference platform, PME), relative to the unperturbed frame. A physical curve rises as
the molecules overlap; a dip below the data's closest O-O distance is a false minimum an MD can fall into.

    python benchmarks/contact_scan.py        # -> benchmarks/results/contact_scan.{md,json,png}

Needs the MD models of a previous ``benchmarks/accuracy.py`` run (<out>/accuracy_runs/<data>/md/model.ckpt).
Energies in eV, distances in A.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (argument_parser, begin, command_line, csv_list, finish, fmt, known,  # noqa: E402
                               machine_description, machine_markdown, markdown_table, save_figure, save_json)
from maskpot.atomic import atomic_write_text  # noqa: E402
from maskpot.errors import first_line  # noqa: E402
from maskpot.data.frame import Frame  # noqa: E402

DIP = 0.1  # eV (about 4 kT at 300 K): an inward energy drop deeper than this counts as a false minimum
TABLE_AT = (2.4, 2.2, 2.0, 1.8, 1.6, 1.4, 1.2)  # A: O-O distances whose energies the table shows


# ---- geometry -------------------------------------------------------------------------------------------------

def as_waters(frame: Frame) -> Frame:
    """The same frame with its atoms reordered O, H, H per molecule (the order TIP3P needs; the model's energy does
    not depend on it)."""
    from maskpot.data.molecules import water_molecules

    order = water_molecules(frame).reshape(-1)
    return Frame(positions=frame.positions[order], numbers=frame.numbers[order], cell=frame.cell, pbc=frame.pbc,
                 source=frame.source)


def oo_vectors(frame: Frame) -> np.ndarray:
    """(M, M, 3) minimum-image vectors O_a -> O_b of a frame ordered O, H, H."""
    from ase.geometry import get_distances

    oxygens = frame.positions[0::3]
    return get_distances(oxygens, oxygens, cell=frame.cell, pbc=frame.pbc)[0]


def closest_pairs(frame: Frame, k: int) -> list[tuple[int, int, float]]:
    """The k closest molecule pairs (a, b, O-O distance) of a frame ordered O, H, H, closest first."""
    dist = np.linalg.norm(oo_vectors(frame), axis=-1)
    a, b = np.triu_indices(len(dist), k=1)
    order = np.argsort(dist[a, b])[:k]
    return [(int(a[n]), int(b[n]), float(dist[a[n], b[n]])) for n in order]


def pushed(frame: Frame, a: int, b: int, distance: float) -> np.ndarray:
    """Positions with molecule b moved rigidly along the minimum-image O-O axis so that |O_a - O_b| = distance."""
    vec = oo_vectors(frame)[a, b]
    positions = frame.positions.copy()
    positions[3 * b:3 * b + 3] += (distance - np.linalg.norm(vec)) * vec / np.linalg.norm(vec)
    return positions


# ---- scan -----------------------------------------------------------------------------------------------------

def scan(energy, frame: Frame, pairs, distances) -> list[list[float]]:
    """Energy (eV) relative to the unperturbed frame at each distance, for each pair: (pairs, distances)."""
    e0 = energy(frame.positions)
    return [[energy(pushed(frame, a, b, d)) - e0 for d in distances] for a, b, _ in pairs]


def first_false_minimum(distances, energies, below: float, dip: float = DIP) -> dict | None:
    """Walking inward (``distances`` descend) from O-O = ``below``: the first place where the energy falls more
    than ``dip`` below the highest energy met so far. Returns that barrier (its energy and distance) and the bottom
    of the fall (the next local minimum), or None for a curve that never falls by ``dip``: a repulsive wall."""
    inside = [(d, e) for d, e in zip(distances, energies) if d <= below + 1e-9]
    top = None
    for k, (d, e) in enumerate(inside):
        if top is None or e > top[1]:
            top = (d, e)
        elif top[1] - e > dip:
            bottom = k
            while bottom + 1 < len(inside) and inside[bottom + 1][1] <= inside[bottom][1]:
                bottom += 1
            return {"barrier_at": top[0], "barrier": top[1],
                    "minimum_at": inside[bottom][0], "minimum": inside[bottom][1]}
    return None


def model_energy(checkpoint: Path, frame: Frame):
    """positions -> energy (eV) of ``frame``'s atoms with the checkpoint's ASE export (what MaskpotCalculator
    users run)."""
    from ase import Atoms

    from maskpot.ase import MaskpotCalculator
    from maskpot.export import export_checkpoint

    with tempfile.TemporaryDirectory() as tmp:  # the calculator holds the loaded module, not the file
        calc = MaskpotCalculator(str(export_checkpoint(checkpoint, "ase", Path(tmp) / "scan-model-ase.pt")))
    atoms = Atoms(numbers=frame.numbers, cell=frame.cell, pbc=True)

    def energy(positions):
        atoms.positions = positions
        return float(calc.get_potential_energy(atoms))
    return energy


def curves_for(frames, checkpoint: Path, args) -> dict:
    """Scan the first test frame with the dataset's MD model as finetuned, with maskpot's short-range repulsion
    from its training frames added (maskpot.train.checkpoint.add_repulsion), and with TIP3P."""
    from maskpot.data.tip3p import tip3p_evaluator
    from maskpot.models.repulsion import closest_pair_distances
    from maskpot.train.checkpoint import add_repulsion

    train, test = frames
    frame = as_waters(test[0])
    pairs = closest_pairs(frame, args.pairs)
    distances = [round(float(d), 3) for d in np.arange(args.start, args.stop - 1e-9, -args.step)]
    data_oo = closest_pair_distances(list(train) + list(test), [8], 4.0)["8-8"]
    with tempfile.TemporaryDirectory() as tmp:
        table = add_repulsion(checkpoint, train, Path(tmp) / "repulsion.ckpt")
        guarded = model_energy(Path(tmp) / "repulsion.ckpt", frame)
    tip3p = tip3p_evaluator(frame)
    out = {"distances": distances, "pairs": pairs, "data_closest_oo": data_oo, "repulsion": table, "curves": {}}
    for name, energy in (("model", model_energy(checkpoint, frame)), ("model+repulsion", guarded),
                         ("tip3p", lambda p: tip3p(p)[0])):
        curves = scan(energy, frame, pairs, distances)
        out["curves"][name] = {"energy": curves,
                               "false_minima": [first_false_minimum(distances, c, data_oo) for c in curves]}
    return out


# ---- report ---------------------------------------------------------------------------------------------------

def labels(res: dict) -> list[tuple[str, str]]:
    """(curve key, label) of the scanned energies of one dataset."""
    model = res.get("model", "MD model")
    return [("model", model), ("model+repulsion", model + " + repulsion"), ("tip3p", "flexible TIP3P")]


def summary_rows(results: dict) -> list[list[str]]:
    rows = []
    for ds, res in results.items():
        if "error" in res:
            rows.append([ds, "-", res["error"], "-"] + ["-"] * (len(TABLE_AT) + 1))
            continue
        d = res["distances"]
        for name, label in labels(res):
            c = res["curves"][name]
            energy = np.asarray(c["energy"])
            at = [fmt(float(np.mean(energy[:, d.index(x)])), 2) if x in d else "-" for x in TABLE_AT]
            found = [m for m in c["false_minima"] if m is not None]
            low = min(found, key=lambda m: m["barrier"]) if found else None
            rows.append([ds, label, f"{len(found)} of {len(c['false_minima'])}",
                         f"{low['barrier']:.2f} at {low['barrier_at']:.2f} -> {low['minimum']:.2f} at "
                         f"{low['minimum_at']:.2f}" if low else "none (a wall)"] + at
                        + [f"{res['data_closest_oo']:.2f}"])
    return rows


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = {ds: r for ds, r in results.items() if "error" not in r}
    fig, axes = plt.subplots(1, max(1, len(done)), figsize=(5.5 * max(1, len(done)), 4.2), squeeze=False)
    for ax, (ds, res) in zip(axes[0], done.items()):
        for (name, label), style, color in zip(labels(res), ("-", "-", "--"), ("C0", "C2", "C3")):
            for k, curve in enumerate(res["curves"][name]["energy"]):
                ax.plot(res["distances"], curve, style, color=color, alpha=0.8, label=label if k == 0 else None)
        ax.axvline(res["data_closest_oo"], color="grey", lw=0.8, label="closest O-O in the data")
        ax.set_ylim(-1.0, 4.0)
        ax.set_xlabel("O-O distance of the pushed pair (A)")
        ax.set_ylabel("energy - unperturbed frame (eV)")
        ax.set_title(f"{ds}: {len(res['pairs'])} closest pairs pushed together")
        ax.legend(fontsize=8)
    save_figure(fig, path)


def write_outputs(results: dict, args, out: Path, seconds: float) -> None:
    machine = machine_description(args.threads)
    header = ["data", "model", "pairs with a false minimum",
              "lowest barrier -> its minimum (eV at A)"] + [
        f"E at {x} A" for x in TABLE_AT] + ["data's closest O-O (A)"]
    text = ["# maskpot: energy of two water molecules pushed together\n",
            f"Generated by `benchmarks/contact_scan.py`{' in --quick mode (numbers meaningless)' if args.quick else ''}"
            f" in {seconds:.0f} s. In each dataset's MD start frame (first test frame) the {args.pairs} closest O-O "
            "pairs are pushed together (one molecule moved rigidly along the O-O axis); energy of the whole box "
            "relative to the unperturbed frame, eV, mean over the pairs. Model: the MD model of "
            "`benchmarks/accuracy.py` (its best PaiNN), through its ASE export, as finetuned and with maskpot's "
            "short-range repulsion from its training frames (ZBL below each element pair's closest distance in "
            "them minus 0.1 A, full 0.3 A further in; table in contact_scan.json). A false minimum: moving inward "
            f"from the data's closest O-O, the energy falls more than {DIP} eV below the highest met so far (the "
            "barrier); the table gives the pair with the lowest barrier and the bottom of its fall.\n",
            "## Machine\n", machine_markdown(machine, command_line()), "\n## Energy against O-O distance\n",
            markdown_table(header, summary_rows(results))]
    atomic_write_text(out / "contact_scan.md", "\n".join(text))
    save_json(out / "contact_scan.json", {"machine": machine, "command": command_line(), "options": vars(args),
                                          "seconds": seconds, "results": results})
    plot(results, out / "contact_scan.png")


def parse_args(argv=None):
    ap = argument_parser(__doc__, quick="the --quick data of accuracy.py, 1 pair, 0.2 A steps",
                         quick_values={"pairs": 1, "step": 0.2})
    ap.add_argument("--data", default="deepmd,tip3p")
    for name, kind, default, text in (("--pairs", int, 4, "closest O-O pairs of the start frame to push together"),
                                      ("--start", float, 3.2, "first O-O distance (A)"),
                                      ("--stop", float, 1.0, "last O-O distance (A)"),
                                      ("--step", float, 0.05, "distance step (A)"),
                                      ("--threads", int, 1, "torch threads")):
        ap.add_argument(name, type=kind, default=default, help=text)
    ap.add_argument("--out", default="benchmarks/results", help="results folder of accuracy.py; outputs go there")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    from benchmarks.accuracy import load_deepmd, load_tip3p

    args, out, started = begin(parse_args(argv))
    results = {}
    for ds in known(csv_list(args.data), ("deepmd", "tip3p"), "dataset"):
        md = out / "accuracy_runs" / ds / "md"
        try:
            if not (md / "model.ckpt").is_file():
                raise FileNotFoundError(f"{md / 'model.ckpt'}: no MD model; run benchmarks/accuracy.py first")
            frames = load_deepmd(args.quick) if ds == "deepmd" else load_tip3p(args.quick, out / "accuracy_data")
            results[ds] = curves_for(frames, md / "model.ckpt", args)
            if (md / "md.json").is_file():
                results[ds]["model"] = json.loads((md / "md.json").read_text()).get("model", "MD model")
        except Exception as exc:  # a dataset that cannot be scanned is a row saying why, not a crash
            results[ds] = {"error": first_line(exc)}
        print(f"{ds}: " + (results[ds].get("error") or ", ".join(
            f"{name}: false minima in {sum(m is not None for m in c['false_minima'])} of {len(c['false_minima'])} pairs"
            for name, c in results[ds]["curves"].items())))
    write_outputs(results, args, out, time.perf_counter() - started)
    return finish(out / "contact_scan.md", started)


if __name__ == "__main__":
    raise SystemExit(main())
