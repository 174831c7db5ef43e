"""Pretraining loop on a tiny generated water set: the loss falls and the checkpoint holds backbone + heads."""

import numpy as np
import pytest

from maskpot.data.frame import Frame
from maskpot.data.tip3p import water_box_positions
from maskpot.models import ModelConfig
from maskpot.pretrain.loop import PretrainConfig, pretrain
from maskpot.pretrain.objective import PretrainTask
from maskpot.train.checkpoint import load_checkpoint

TINY = ModelConfig(backbone="painn", species=[1, 8], cutoff=3.5, hidden=16, layers=2)


def frames(n=8, n_mol=8, box=7.0):
    rng = np.random.default_rng(0)
    return [Frame(positions=water_box_positions(n_mol, box, rng), numbers=np.tile([8, 1, 1], n_mol),
                  cell=np.eye(3) * box, pbc=True, source=f"gen#{k}") for k in range(n)]


@pytest.mark.parametrize("objective", ["mask", "denoise", "both"])
def test_pretraining_loss_falls_and_checkpoint(tmp_path, objective):
    out = tmp_path / "pre.ckpt"
    result = pretrain(frames(), out, TINY, PretrainTask(objective), PretrainConfig(epochs=15, batch_size=2, lr=5e-3,
                                                                                   val_fraction=0.25),
                      show_progress=False)
    # the validation corruption is the same every epoch, so its loss is the one to compare
    val = [r["val_loss"] for r in result.rows]
    assert result.rows[0]["epoch"] == 0  # untrained
    assert result.best_val["loss"] == min(val[1:])
    assert min(val[1:]) < 0.8 * val[0]
    ckpt = load_checkpoint(out)
    assert ckpt.kind == "pretrained"
    heads = {k.split(".")[1] for k in ckpt.state_dict if k.startswith("heads.")}
    assert heads == {"mask", "denoise"} if objective == "both" else heads == {objective}
    assert len(ckpt.backbone_state()) > 0
    assert (tmp_path / "pre.log.csv").read_text().splitlines()[0].startswith("epoch,train_loss,val_loss")
    assert (tmp_path / "pre.curve.png").stat().st_size > 1000
