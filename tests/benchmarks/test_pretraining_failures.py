"""benchmarks/pretraining.py's failure policy: a worker records each failure and does not rerun that task, stops
after FAILURES_IN_A_ROW failures in a row (a broken environment must not mark the whole study failed), and a
worker started later retries what failed before it."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import benchmarks.pretraining as study  # noqa: E402


def test_failures_in_a_row_stop_the_worker_and_the_next_worker_retries_them(tmp_path, monkeypatch):
    calls = []

    def fails(*args):  # run_pretrain / run_finetune (task, out, args), make_tip3p (folder, quick, run)
        calls.append(args[0].key if hasattr(args[0], "key") else f"tip3p run {args[2]}")
        raise RuntimeError("model weights do not match the model")

    for name in ("make_tip3p", "run_pretrain", "run_finetune"):
        monkeypatch.setattr(study, name, fails)
    out = tmp_path / "results"
    assert study.main(["--quick", "--out", str(out)]) == 1
    errors = sorted(out.rglob("*.error.json"))
    assert len(calls) == len(set(calls)) == len(errors) == study.FAILURES_IN_A_ROW  # each task tried once
    assert json.loads(errors[0].read_text()) == {"error": "model weights do not match the model"}
    assert study.main(["--quick", "--out", str(out)]) == 1  # a later worker retries the same tasks first
    assert calls[study.FAILURES_IN_A_ROW:] == calls[:study.FAILURES_IN_A_ROW]
    assert sorted(out.rglob("*.error.json")) == errors
