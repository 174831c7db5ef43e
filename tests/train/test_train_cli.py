"""maskpot pretrain -> finetune -> evaluate end to end on a tiny generated set."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from maskpot.cli import app
from maskpot.data import write_extxyz
from maskpot.train.checkpoint import load_checkpoint

TINY = ["--hidden", "16", "--layers", "2", "--cutoff", "3.5"]


@pytest.mark.slow
def test_pretrain_finetune_evaluate(tmp_path, water_set):
    data = tmp_path / "water.extxyz"
    write_extxyz(water_set, data)
    run = CliRunner().invoke
    pre, model, parity = tmp_path / "pre.ckpt", tmp_path / "model.ckpt", tmp_path / "parity.png"
    r = run(app, ["pretrain", str(data), "--objective", "both", "--max-steps", "8", "--eval-every", "4",
                  "--batch-size", "2", "--val-fraction", "0.2", "--out", str(pre), *TINY])
    assert r.exit_code == 0, r.output
    assert load_checkpoint(pre).kind == "pretrained"
    r = run(app, ["finetune", str(data), "--init", str(pre), "--max-steps", "8", "--eval-every", "4",
                  "--batch-size", "2", "--val-fraction", "0.2", "--train-frames", "6", "--test", str(data),
                  "--out", str(model)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())  # rich wraps long lines
    assert "started from the whole model (backbone and head)" in text and "stopped: max_steps" in text
    ckpt = load_checkpoint(model)
    assert ckpt.kind == "finetuned" and ckpt.config.hidden == 16 and ckpt.data["n_train"] == 6
    r = run(app, ["evaluate", str(model), str(data), "--json", "--plot", str(parity)])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output)
    assert metrics["frames"] == len(water_set)
    assert metrics == pytest.approx(ckpt.metrics["test"])  # same frames as the finetune --test set
    assert parity.stat().st_size > 1000
    r = run(app, ["evaluate", str(model), str(data)])
    assert r.exit_code == 0 and "force MAE" in r.output
    # model options are refused with --init
    r = run(app, ["finetune", str(data), "--init", str(pre), "--hidden", "8", "--out", str(tmp_path / "x.ckpt")])
    assert r.exit_code != 0 and not (tmp_path / "x.ckpt").exists()


def test_cli_corrupt_checkpoint_is_one_red_line(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00garbage")
    proc = subprocess.run([sys.executable, "-m", "maskpot", "evaluate", str(bad), str(bad)], capture_output=True,
                          text=True)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "bad.ckpt" in lines[0] and "Traceback" not in proc.stderr


def test_repulsion_command_adds_the_table_and_prints_it(tmp_path, water_set):
    from tests.conftest import make_checkpoint

    data = tmp_path / "water.extxyz"
    write_extxyz(water_set, data)
    model = make_checkpoint(tmp_path / "model.ckpt")
    r = CliRunner().invoke(app, ["repulsion", str(model), str(data), "--out", str(tmp_path / "rep.ckpt")])
    assert r.exit_code == 0, r.output
    table = load_checkpoint(tmp_path / "rep.ckpt").config.repulsion
    assert f"O-O: ZBL below {table['8-8']:.3f} A" in " ".join(r.output.split())


def test_cli_defaults_are_the_configs_defaults():
    """Every training option of the CLI defaults to its dataclass field (one source of defaults)."""
    import dataclasses

    import typer.main

    from maskpot.models.config import ModelConfig
    from maskpot.train.config import FinetuneConfig, PretrainConfig, PretrainTask

    command = typer.main.get_command(app)
    names = {"model": "backbone"}
    for cmd, configs in (("pretrain", (PretrainConfig, PretrainTask, ModelConfig)), ("finetune", (FinetuneConfig,))):
        params = {p.name: p.default for p in command.commands[cmd].params}
        checked = 0
        for config in configs:
            fields = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
            for name, default in params.items():
                field = names.get(name, name)
                if field in fields:
                    assert default == fields[field], (cmd, name, default, fields[field])
                    checked += 1
        assert checked >= 10, (cmd, checked)  # the comparison is not vacuous
    # finetune's model options default to None: the ModelConfig default applies unless --init gives the model
    params = {p.name: p.default for p in command.commands["finetune"].params}
    assert all(params[k] is None for k in ("model", "cutoff", "hidden", "layers", "dtype", "avg_neighbors"))
    # avg_neighbors: None, i.e. from the training data, in both commands
    pretrain_params = {p.name: p.default for p in command.commands["pretrain"].params}
    assert pretrain_params["avg_neighbors"] is ModelConfig.avg_neighbors is None


def test_md_data_and_evaluate_defaults_are_the_librarys():
    """``maskpot md``, ``maskpot data tip3p`` and ``maskpot evaluate`` default to what the library functions do
    (MDConfig for both MD engines, generate_tip3p's and evaluate's keyword defaults)."""
    import dataclasses
    import inspect

    import typer.main

    from maskpot.data.tip3p import generate_tip3p
    from maskpot.lammps.md import run_lammps_md
    from maskpot.md import MDConfig
    from maskpot.train.metrics import evaluate

    command = typer.main.get_command(app)

    def options(*path):
        cmd = command
        for name in path:
            cmd = cmd.commands[name]
        return {p.name: p.default for p in cmd.params}

    def keywords(function):
        return {k: p.default for k, p in inspect.signature(function).parameters.items()
                if p.default is not inspect.Parameter.empty}

    md = MDConfig()
    cli_md = options("md")
    for option, field in (("steps", "steps"), ("timestep", "timestep_fs"), ("temperature", "temperature"),
                          ("ensemble", "ensemble"), ("report_interval", "report_interval"),
                          ("platform", "platform"), ("seed", "seed")):
        assert cli_md[option] == getattr(md, field), option
    lammps = keywords(run_lammps_md)
    shared = {f.name for f in dataclasses.fields(MDConfig)} & set(lammps)
    assert len(shared) == 6 and all(lammps[k] == getattr(md, k) for k in shared), shared
    tip3p, cli_tip3p = keywords(generate_tip3p), options("data", "tip3p")
    for option, keyword in (("molecules", "n_molecules"), ("box", "box"), ("temperature", "temperature"),
                            ("frames", "n_frames"), ("interval", "interval"), ("timestep", "timestep"),
                            ("equilibration", "equilibration_steps"), ("seed", "seed")):
        assert cli_tip3p[option] == tip3p[keyword], option
    assert options("evaluate")["batch_size"] == keywords(evaluate)["batch_size"]


def test_explicit_validation_frames(tmp_path, water_set):
    """--val FILE: those frames validate (every DATA frame may train), --val-fraction is ignored (0 is fine)."""
    data, val = tmp_path / "train.extxyz", tmp_path / "val.extxyz"
    write_extxyz(water_set[:7], data)
    write_extxyz(water_set[7:], val)
    out = tmp_path / "model.ckpt"
    r = CliRunner().invoke(app, ["finetune", str(data), "--val", str(val), "--val-fraction", "0", "--max-steps", "4",
                                 "--eval-every", "2", "--batch-size", "2", *TINY, "--avg-neighbors", "12.5",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(out)
    assert ckpt.data["n_train"] == 7 and ckpt.data["n_val"] == 3 and ckpt.metrics["val"]["frames"] == 3
    assert ckpt.config.avg_neighbors == 12.5
