"""benchmarks/accuracy_report.py: tables that show unfinished rows as pending, and the force-MAE overview."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import accuracy, accuracy_report  # noqa: E402


def test_tables_show_pending_rows():
    done = {"dataset": "deepmd", "backbone": "painn", "size": "10", "seed": 0, "init": "scratch", "n_train": 10,
            "seconds": 7200.0, **{k: 1.0 for k, _ in accuracy_report.METRICS}}
    pending = [{**r, "pending": True} for r in accuracy.planned_runs(["deepmd"], ["painn"], ["10"], [0])[1:]]
    text = accuracy_report.accuracy_tables([done] + pending)
    assert "| 10 | 10 | scratch | 1 |" in text and "| 10 | - | mask | - |" in text and "1 seed(s) pending" in text
    assert accuracy_report.progress([done] + pending).startswith("1 of 3 finetuning runs finished, 2.0 h")
    assert [s["init"] for s in accuracy_report.summarise([done] + pending)] == ["scratch"]


def test_overview_marks_the_best_init_and_counts_wins():
    def row(bb, size, init, mae, n=10):
        return {"dataset": "deepmd", "backbone": bb, "size": size, "init": init, "seeds": 3, "n_train": n,
                "force_mae": mae}

    summary = [row("painn", "10", "scratch", 200.0), row("painn", "10", "mask", 150.0),
               row("painn", "10", "denoise", 160.0), row("gns", "10", "scratch", 90.0),
               row("gns", "10", "mask", 100.0), row("gns", "10", "denoise", 80.0),
               row("painn", "all", "scratch", 60.0, n=288)]  # mask/denoise not finished yet
    text = accuracy_report.force_mae_overview(summary, ["deepmd"], ["painn", "gns"])
    assert "| deepmd | 10 | 200 / **150** / 160 | 90 / 100 / **80** |" in text
    assert "| deepmd | all (288) | **60** / - / - | - / - / - |" in text
    assert text.index("| 10 |") < text.index("| all (288) |")
    assert "mask < scratch in 1 of 2, denoise < scratch in 2 of 2, mask < denoise in 1 of 2" in text


def test_md_rows_say_whether_molecules_dissociated_or_overlap():
    rdf = {"O-O": {"rmse": 0.1}, "O-H": {"rmse": 0.2}}
    base = {"model": "painn scratch, 270 frames, seed 0", "ps": 20.0, "ns_per_day": 0.8, "molecules": 64, "rdf": rdf}
    md = {"calm": {**base, "dissociated_at_end": 0, "oo_min": 2.41, "oo_close_at_end": 0, "oo_first_close_ps": None},
          "overlap": {**base, "dissociated_at_end": 0, "oo_min": 1.43, "oo_close_at_end": 3, "oo_first_close_ps": 8.0},
          "old": {**base, "dissociated_at_end": 6}}  # a record from before the overlap check
    lines = accuracy_report.md_table(md, ["calm", "overlap", "old", "pending"]).splitlines()
    row = {line.split(" | ")[0].strip("| "): line for line in lines[2:]}
    assert row["calm"].endswith("| 2.41 | 0 | 0.1 | 0.2 | no dissociation, no overlap |")
    assert row["overlap"].endswith("| 1.43 | 3 | 0.1 | 0.2 | molecules overlap (O-O < 2.2 A) from 8.0 ps |")
    assert "| 6 of 64 | - | - |" in row["old"] and row["old"].endswith("| molecules dissociated |")
    assert "pending" in row["pending"]
