"""Engines against the model-only bound with the four taking turns: the exported model called directly, OpenMM
with the TorchForce, OpenMM with the PythonForce and LAMMPS on one rank (pair_style maskpot; LAMMPS' loop time of
the timed run), round by round on each water box of --waters.

speed.py times each engine's repeats together, so its "engine / bound" ratios compare runs minutes apart; here
every round runs the four (default float32 PaiNN, random weights, one thread, the steps of speed.py for that
size) one after the other, and the ratios are of the medians over rounds. Writes engines_interleaved.md and
engines_interleaved.json to --out. Needs quiet cores.
    python benchmarks/engines_interleaved.py --waters 258,4096 --rounds 4
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    argument_parser, begin, csv_list, fmt, interleaved, markdown_table, write_report)

ENGINES = ("model-only", "openmm", "openmm-python", "lammps 1 rank")


def main(argv=None) -> int:
    ap = argument_parser(__doc__, quick="27 waters, tiny model, 1 round (a functional check)",
                         threads="torch and OpenMM threads", quick_values={"waters": "27", "rounds": 1})
    ap.add_argument("--waters", default="1024", help="water molecules per box (comma-separated: one table each)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--atom-steps", type=float, default=1e5, help="work per timed call, as in speed.py")
    args, _, started = begin(ap.parse_args(argv))
    from maskpot.allocator import tune_allocator

    tune_allocator()  # as the engines do
    boxes = [one_box(args, waters) for waters in csv_list(args.waters, int)]
    result = {"rounds": args.rounds, "boxes": boxes}
    text = ("# Engines against the model-only bound, interleaved (benchmarks/engines_interleaved.py)\n\n"
            f"Default float32 PaiNN (random weights); medians of {args.rounds} rounds in which the four engines run "
            "in turn.\n\n")
    for box in boxes:
        rows = [[name, fmt(box["ms_per_step"][name]), fmt(1e3 * box["ms_per_step"][name] / box["atoms"]),
                 fmt(box["engine_over_bound"][name])] for name in ENGINES]
        text += (f"## {box['waters']} waters ({box['atoms']} atoms), {box['steps']} steps per call\n\n"
                 + markdown_table(["engine", "ms/step", "us/atom-step", "bound / engine"], rows) + "\n")
    return write_report(args, started, "engines_interleaved", result, text)


def one_box(args, waters: int) -> dict:
    """The four engines in turn on one box of `waters` molecules: ms/step medians, every round's, ratios."""
    from benchmarks.speed import exports, random_checkpoint, water_box
    from benchmarks.speed_engines import lammps_row, model_only, openmm_model

    steps = max(10, min(200, int(args.atom_steps / (3 * waters))))
    with tempfile.TemporaryDirectory(prefix="maskpot-engines-") as tmp:
        files = exports(random_checkpoint(Path(tmp) / "model.ckpt", "painn", "float32", args.quick), "float32",
                        Path(tmp))
        frame = water_box(waters)
        ms, times = interleaved({"model-only": lambda k: model_only(frame, files, steps, 1)[0],
                                 "openmm": lambda k: openmm_model(frame, files, steps, 1, args.threads, "torch"),
                                 "openmm-python": lambda k: openmm_model(frame, files, steps, 1, args.threads,
                                                                         "python"),
                                 "lammps 1 rank": lambda k: lammps_row(frame, files, steps, 1, 1, args.threads,
                                                                       Path(tmp))[0]}, args.rounds)
    return {"waters": waters, "atoms": 3 * waters, "steps": steps, "ms_per_step": ms, "all_ms_per_step": times,
            "engine_over_bound": {name: ms["model-only"] / ms[name] for name in ENGINES}}


if __name__ == "__main__":
    raise SystemExit(main())
