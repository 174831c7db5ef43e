"""Engines against the model-only bound with the three taking turns: the exported model called directly, OpenMM
with the TorchForce and OpenMM with the PythonForce, round by round on one water box.

speed.py times each engine's repeats together, so its "engine / bound" ratios compare runs minutes apart; here
every round runs the three (default float32 PaiNN, random weights, one thread, the steps of speed.py for that
size) one after the other, and the ratios are of the medians over rounds. Writes engines_interleaved.md and
engines_interleaved.json to --out. Needs quiet cores.
    python benchmarks/engines_interleaved.py --waters 1024 --rounds 4
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (add_run_options, argument_parser, begin, command_line, fmt,  # noqa: E402
                               machine_description, machine_markdown, markdown_table, write_report)

ENGINES = ("model-only", "openmm", "openmm-python")


def parse_args(argv=None):
    ap = argument_parser(__doc__, quick="27 waters, tiny model, 1 round (a functional check)")
    ap.add_argument("--waters", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--atom-steps", type=float, default=1e5, help="work per timed call, as in speed.py")
    add_run_options(ap, "torch and OpenMM threads")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.waters, args.rounds = 27, 1
    out, started = begin(args)
    from benchmarks.speed import exports, random_checkpoint, water_box
    from benchmarks.speed_engines import model_only, openmm_model
    from maskpot.allocator import tune_allocator

    tune_allocator()  # as the engines do
    steps = max(10, min(200, int(args.atom_steps / (3 * args.waters))))
    with tempfile.TemporaryDirectory(prefix="maskpot-engines-") as tmp:
        files = exports(random_checkpoint(Path(tmp) / "model.ckpt", "painn", "float32", args.quick), "float32",
                        Path(tmp))
        frame = water_box(args.waters)
        calls = {"model-only": lambda: model_only(frame, files, steps, 1)[0],
                 "openmm": lambda: openmm_model(frame, files, steps, 1, args.threads, "torch"),
                 "openmm-python": lambda: openmm_model(frame, files, steps, 1, args.threads, "python")}
        times = {name: [] for name in ENGINES}
        for k in range(args.rounds):
            for name in ENGINES:
                times[name] += calls[name]()
            print(f"round {k}: " + ", ".join(f"{n} {times[n][-1]:.1f} ms/step" for n in ENGINES), flush=True)
    ms = {name: statistics.median(t) for name, t in times.items()}
    ratio = {name: ms["model-only"] / ms[name] for name in ENGINES}
    result = {"waters": args.waters, "atoms": 3 * args.waters, "steps": steps, "rounds": args.rounds,
              "ms_per_step": ms, "all_ms_per_step": times, "engine_over_bound": ratio, "command": command_line(),
              "machine": machine_description(args.threads)}
    rows = [[name, fmt(ms[name]), fmt(1e3 * ms[name] / (3 * args.waters)), fmt(ratio[name])] for name in ENGINES]
    text = ("# Engines against the model-only bound, interleaved (benchmarks/engines_interleaved.py)\n\n"
            f"Default float32 PaiNN (random weights), {args.waters} waters ({3 * args.waters} atoms), {steps} "
            f"steps per call; medians of {args.rounds} rounds in which the three run in turn.\n\n"
            + markdown_table(["engine", "ms/step", "us/atom-step", "bound / engine"], rows) + "\n"
            + machine_markdown(result["machine"], result["command"]))
    return write_report(out, "engines_interleaved", result, text, started)


if __name__ == "__main__":
    raise SystemExit(main())
