"""benchmarks/pretraining.py: which finished records count under today's budget (a raised step cap keeps the
runs it could not have changed, and reruns those it cut short)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.pretraining import budget, comparable  # noqa: E402


def record(stopped: str, **changes) -> dict:
    return {"budget": {**budget(False), **changes}, "stopped": stopped}


def test_same_budget_counts_whatever_stopped_it():
    assert comparable(record("max_steps"), budget(False), "finetune")


def test_a_larger_cap_keeps_plateau_runs_and_reruns_capped_ones():
    now = budget(False)
    smaller = now["max_steps"] // 4
    assert comparable(record("plateau", max_steps=smaller), now, "finetune")
    assert not comparable(record("max_steps", max_steps=smaller), now, "finetune")
    assert not comparable(record("plateau", max_steps=2 * now["max_steps"]), now, "finetune")  # cap shrank


def test_pretrainings_ignore_the_finetuning_cap_but_nothing_else():
    now = budget(False)
    assert comparable(record("max_steps", max_steps=1), now, "pretrain")
    assert not comparable(record("max_steps", pretrain_steps=now["pretrain_steps"] + 1), now, "pretrain")
    assert not comparable(record("plateau", patience=now["patience"] + 1), now, "finetune")
