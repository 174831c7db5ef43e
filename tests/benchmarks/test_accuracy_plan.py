"""benchmarks/accuracy.py (the archived epoch-budget study) reads its records: the run order, records read only under
their budget, --report rewriting the tables from the records alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import accuracy  # noqa: E402


def test_runs_go_smallest_size_first_across_backbones():
    plan = accuracy.planned_runs(["deepmd"], ["painn", "egnn"], ["10", "all"], [0, 1])
    assert len(plan) == 2 * 2 * 2 * 3
    assert [r["size"] for r in plan[:12]] == ["10"] * 12 and {r["backbone"] for r in plan[:12]} == {"painn", "egnn"}
    assert [r["init"] for r in plan[:3]] == ["scratch", "mask", "denoise"]


def test_finished_runs_are_reused_only_under_the_same_budget(tmp_path):
    args = accuracy.parse_args(["--epochs", "20"])
    assert args.resume and args.max_minutes is None  # the defaults: reuse, no wall-clock cap
    record = tmp_path / "scratch-n10-s0.json"
    record.write_text(json.dumps({"budget": accuracy.budget(args), "force_mae": 1.0}))
    assert accuracy.reusable(record, args)["force_mae"] == 1.0
    assert accuracy.reusable(record, accuracy.parse_args(["--epochs", "30"])) is None
    assert accuracy.reusable(record, accuracy.parse_args(["--epochs", "20", "--no-resume"])) is None
    record.write_text(json.dumps({"force_mae": 1.0}))  # no budget recorded: not comparable
    assert accuracy.reusable(record, args) is None


def test_report_rewrites_tables_from_records_without_running(tmp_path):
    """--report: the tables come from the records on disk (another session's, say); nothing is trained."""
    args = accuracy.parse_args(["--out", str(tmp_path)])
    folder = tmp_path / "accuracy_runs" / "deepmd" / "gns"
    folder.mkdir(parents=True)
    record = {"budget": accuracy.budget(args), "n_train": 10, "seconds": 60.0, "energy_mae": None,
              "energy_rmse": None, "force_mae": 123.0, "force_rmse": 150.0}
    (folder / "mask-n10-s1.json").write_text(json.dumps(record))
    (folder / "scratch-n10-s1.json").write_text(json.dumps({**record, "budget": {}}))  # another budget: ignored
    assert accuracy.main(["--report", "--data", "deepmd", "--backbones", "gns", "--sizes", "10", "--seeds", "1",
                          "--out", str(tmp_path)]) == 0
    text = (tmp_path / "accuracy.md").read_text()
    assert "1 of 3 finetuning runs finished" in text and "| 10 | 10 | mask | 1 | - | - | 123 |" in text
    assert "| 10 | - | scratch | - |" in text and not list(folder.glob("*.ckpt"))


def test_failed_md_is_recorded_with_its_error_and_reused(tmp_path):
    """An MD that fails is a result (the model drove the engine to an error): recorded in md.json, shown, reused."""
    args = accuracy.parse_args(["--out", str(tmp_path), "--md-ps", "0.01"])
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    folder = tmp_path / "md"
    name = "painn scratch, 4 frames, seed 0"
    out = accuracy.md_quality({"checkpoint": str(bad)}, name, None, [], folder, args)
    stored = json.loads((folder / "md.json").read_text())
    assert out["error"] and stored["error"] == out["error"] and stored["model"] == name
    bad.unlink()  # reused: the failed MD is not run again (it would now fail differently)
    assert accuracy.md_quality({"checkpoint": str(bad)}, name, None, [], folder, args) == stored
