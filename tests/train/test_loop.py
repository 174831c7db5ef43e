"""maskpot.train.loop: plateau stopping, EMA weights, exact resume, Ctrl-C keeps the best weights."""

import dataclasses

import numpy as np
import pytest
import torch

from maskpot.models import ModelConfig
from maskpot.train.checkpoint import load_checkpoint
from maskpot.train.config import FinetuneConfig, TrainConfig
from maskpot.train.finetune import finetune
from maskpot.errors import Interrupted
from maskpot.train.loop import batch_indices, fit
from maskpot.train.runlog import RunLog

TINY = ModelConfig(backbone="painn", species=[1, 8], cutoff=3.5, hidden=16, layers=2)
FAST = FinetuneConfig(max_steps=16, eval_every=4, batch_size=2, val_fraction=0.2, lr=5e-3, ema_decay=0.9,
                      patience=10)


def test_batches_cover_each_epoch_once_and_depend_only_on_seed_and_step():
    n, bs = 10, 4
    epoch = np.concatenate([batch_indices(n, bs, 0, s) for s in range(3)])
    assert sorted(epoch) == list(range(n)) and [len(batch_indices(n, bs, 0, s)) for s in range(3)] == [4, 4, 2]
    assert np.array_equal(batch_indices(n, bs, 0, 4), batch_indices(n, bs, 0, 4))
    assert not np.array_equal(np.concatenate([batch_indices(n, bs, 0, s) for s in range(3, 6)]), epoch)


def quadratic_fit(tmp_path, cfg, on_eval=None, resume=False):
    """fit() on a 3-weight linear model whose loss is |w - 1|^2: the evaluated module's mean |w - 1|^2 is logged."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1, bias=False)
    saved = {}

    def evaluate(module):
        return {"loss": float(((module.weight - 1.0) ** 2).mean())}

    def save(state, step, metrics):
        saved.update(state=state, step=step)
        return tmp_path / "q.ckpt"

    log = RunLog(tmp_path / "q.log.csv", ["step", "train_loss", "val_loss", "lr", "seconds"])
    result = fit(model, lambda step, idx: ((model.weight - 1.0) ** 2).sum(), 4, evaluate, save, cfg, log,
                 tmp_path / "q.state.pt", "test", resume=resume, on_eval=on_eval)
    return model, saved, result


def test_the_evaluated_and_kept_weights_are_the_ema(tmp_path):
    cfg = TrainConfig(max_steps=6, eval_every=6, batch_size=4, lr=0.1, ema_decay=0.8, patience=5)
    model, saved, _ = quadratic_fit(tmp_path, cfg)
    # replay: AdamW on the same loss, EMA started from the first step's weights
    torch.manual_seed(0)
    ref = torch.nn.Linear(3, 1, bias=False)
    opt = torch.optim.AdamW(ref.parameters(), lr=0.1, weight_decay=0.0)
    ema = None
    for _ in range(6):
        loss = ((ref.weight - 1.0) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        w = ref.weight.detach().clone()
        ema = w if ema is None else 0.8 * ema + 0.2 * w
    assert torch.allclose(model.weight, ref.weight)  # the raw weights trained as AdamW does
    assert torch.allclose(saved["state"]["weight"], ema)
    assert not torch.allclose(ema, ref.weight)


def test_a_plateau_stops_the_run_and_lowers_the_learning_rate(tmp_path):
    cfg = TrainConfig(max_steps=1000, eval_every=2, batch_size=4, lr=0.0, ema_decay=0.0, patience=5, lr_patience=1)
    _, saved, result = quadratic_fit(tmp_path, cfg)
    assert result.stopped == "plateau" and result.steps == 10 and result.best_step == 0 and saved["step"] == 0
    cfg = dataclasses.replace(cfg, lr=1e-3, lr_patience=0, patience=3, max_steps=40)
    rows = []
    quadratic_fit(tmp_path, cfg, on_eval=rows.append)
    assert rows[-1]["lr"] <= rows[0]["lr"]


def test_bad_options_are_one_line():
    for change, match in (({"max_steps": 0}, "max-steps"), ({"ema_decay": 1.0}, "ema-decay"),
                          ({"lr_factor": 0.0}, "lr-factor"), ({"batch_size": 0}, "batch-size")):
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(TrainConfig(), **change).check()


def test_an_interrupted_run_keeps_its_best_and_resumes_to_the_same_weights(tmp_path, water_set):
    straight = finetune(water_set, tmp_path / "a.ckpt", FAST, model_config=TINY)
    assert not (tmp_path / "a.state.pt").exists()

    def stop_at_12(row):
        if row["step"] == 12:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match=r"finetune interrupted at step 12: kept the best weights so far in "
                                          r".*b\.ckpt \(step \d+, val loss .*\); resume with --resume"):
        finetune(water_set, tmp_path / "b.ckpt", FAST, model_config=TINY, on_eval=stop_at_12)
    kept = load_checkpoint(tmp_path / "b.ckpt")  # the best weights of steps 0..12, written atomically
    assert kept.metrics["best_step"] <= 12 and (tmp_path / "b.state.pt").is_file()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    resumed = finetune(water_set, tmp_path / "b.ckpt", FAST, model_config=TINY, resume=True)
    assert resumed.best_step == straight.best_step
    assert [r["val_loss"] for r in resumed.rows] == pytest.approx([r["val_loss"] for r in straight.rows], rel=1e-6)
    a, b = straight.potential.state_dict(), resumed.potential.state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-6, atol=1e-7), k
    assert not (tmp_path / "b.state.pt").exists()
    with pytest.raises(Interrupted):
        finetune(water_set, tmp_path / "c.ckpt", FAST, model_config=TINY, on_eval=stop_at_12)
    with pytest.raises(ValueError, match="cannot resume with other options .*lr"):
        finetune(water_set, tmp_path / "c.ckpt", dataclasses.replace(FAST, lr=1e-3), model_config=TINY, resume=True)
    with pytest.raises(FileNotFoundError, match="no training state to resume"):
        finetune(water_set, tmp_path / "d.ckpt", FAST, model_config=TINY, resume=True)
