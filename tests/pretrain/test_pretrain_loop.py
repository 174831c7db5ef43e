"""Pretraining on a tiny generated water set: the loss falls, the read-out decides what trains and what the
checkpoint holds."""

import dataclasses

import numpy as np
import pytest
import torch

from maskpot.data.frame import Frame
from maskpot.data.tip3p import water_box_positions
from maskpot.models import ModelConfig
from maskpot.pretrain.loop import pretrain
from maskpot.pretrain.objective import ParentCache, pretrain_loss, pretrain_model
from maskpot.train.checkpoint import load_checkpoint
from maskpot.train.config import PretrainConfig, PretrainTask

TINY = ModelConfig(backbone="painn", species=[1, 8], cutoff=3.5, hidden=16, layers=2, avg_neighbors=32.0)
FAST = PretrainConfig(max_steps=60, eval_every=4, batch_size=2, lr=5e-3, val_fraction=0.25, ema_decay=0.0,
                      patience=60)


def frames(n=8, n_mol=8, box=7.0):
    rng = np.random.default_rng(0)
    return [Frame(positions=water_box_positions(n_mol, box, rng), numbers=np.tile([8, 1, 1], n_mol),
                  cell=np.eye(3) * box, pbc=True, source=f"gen#{k}") for k in range(n)]


@pytest.mark.parametrize("objective,readout", [("mask", "force"), ("denoise", "force"), ("both", "head"),
                                               ("mask", "head")])
def test_pretraining_loss_falls_and_checkpoint(tmp_path, objective, readout):
    out = tmp_path / "pre.ckpt"
    result = pretrain(frames(), out, TINY, PretrainTask(objective, readout), FAST)
    # the validation corruption is the same at every evaluation, so its loss is the one to compare
    val = [r["val_loss"] for r in result.rows]
    assert result.rows[0]["step"] == 0  # untrained
    assert result.best_val["loss"] == min(val[1:])
    assert min(val[1:]) < 0.9 * val[0]
    ckpt = load_checkpoint(out)
    assert ckpt.kind == "pretrained" and ckpt.data["task"]["readout"] == readout
    heads = {k.split(".")[1] for k in ckpt.state_dict if k.startswith("heads.")}
    if readout == "head":
        assert heads == ({"mask", "denoise"} if objective == "both" else {objective})
    else:  # the checkpoint is a whole Potential: backbone and energy head
        assert not heads and any(k.startswith("head.") for k in ckpt.state_dict)
    assert len(ckpt.backbone_state()) > 0
    assert (tmp_path / "pre.log.csv").read_text().splitlines()[0].startswith("step,train_loss,val_loss")
    assert (tmp_path / "pre.curve.png").stat().st_size > 1000
    assert not (tmp_path / "pre.state.pt").exists()  # removed when the run ends


def test_avg_neighbors_unset_comes_from_the_training_frames(tmp_path):
    from maskpot.data.neighbors import mean_neighbors

    train, val = frames(4), frames(2, box=7.5)
    out = tmp_path / "pre.ckpt"
    pretrain(train, out, dataclasses.replace(TINY, avg_neighbors=None), PretrainTask("mask"),
             dataclasses.replace(FAST, max_steps=2, eval_every=2), val_frames=val)
    assert load_checkpoint(out).config.avg_neighbors == pytest.approx(mean_neighbors(train, TINY.cutoff))


@pytest.mark.parametrize("backbone", ["painn", "egnn", "gns"])
def test_force_readout_trains_the_head_finetuning_uses(backbone):
    """Read-out force: the masking loss is a function of the model's forces, so its gradient reaches the energy
    head (energy-centric) or the force head (GNS); read-out head: it never reaches the Potential's head."""
    config = dataclasses.replace(TINY, backbone=backbone)
    for readout in ("force", "head") if backbone != "egnn" else ("force",):
        task = PretrainTask("mask", readout)
        torch.manual_seed(0)
        model = pretrain_model(config, task).train()
        loss = pretrain_loss(model, frames(2), task, np.random.default_rng(0), ParentCache(), torch.float32,
                             config.cutoff, config.species)["loss"]
        loss.backward()
        # every weight of the head (its last bias is a constant energy: no force, no gradient)
        head = [p for n, p in model.named_parameters() if n.startswith("head.") and n.endswith("weight")]
        if readout == "force":
            assert head and all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in head)
        else:
            assert not head  # no Potential head exists: only vector heads on the backbone
            assert all(p.grad is not None for n, p in model.named_parameters() if n.startswith("heads."))


def test_force_readout_answer_is_the_potentials_force():
    """The vector the masking loss scores is exactly -dE/dx of the Potential on the masked frame."""
    from maskpot.models.compute import energy_forces
    from maskpot.pretrain.masking import mask_frame, masked_cosine_loss
    from maskpot.train.batch import collate

    task = PretrainTask("mask", "force")
    torch.manual_seed(0)
    model = pretrain_model(TINY, task).eval()
    frame = frames(1)[0]
    loss = pretrain_loss(model, [frame], task, np.random.default_rng(3), ParentCache(), torch.float32, 3.5, [1, 8])
    masked = mask_frame(frame, task.mask_ratio, np.random.default_rng(3))
    b = collate([masked.frame], 3.5, [1, 8], torch.float32, mask_flags=[masked.mask_flag])
    _, forces, _ = energy_forces(model, b.positions, b.species_index, b.edge_index, b.shifts, b.batch, 1, False,
                                 b.mask_flag)
    expect = masked_cosine_loss(forces, torch.as_tensor(masked.target, dtype=torch.float32), b.mask_flag)
    assert float(loss["mask"]) == pytest.approx(float(expect), rel=1e-6)


def test_bad_task_options_are_one_line():
    for task, match in ((PretrainTask(readout="vector"), "read-out"), (PretrainTask(objective="x"), "objective"),
                        (PretrainTask(mask_ratio=0.0), "mask ratio")):
        with pytest.raises(ValueError, match=match):
            pretrain_model(TINY, task)
    with pytest.raises(ValueError, match="EGNN has none: pretrain it with --readout force"):
        pretrain_model(dataclasses.replace(TINY, backbone="egnn"), PretrainTask("mask", "head"))


def test_every_egnn_weight_reaches_the_energy():
    """EGNN's coordinate update feeds the next layer, so the energy's gradient reaches every weight (the last
    layer moves nothing and has no coordinate weights)."""
    from maskpot.models import build_potential
    from maskpot.train.batch import collate

    torch.manual_seed(0)
    config = dataclasses.replace(TINY, backbone="egnn", layers=3)
    pot = build_potential(config)
    b = collate(frames(1), 3.5, [1, 8], torch.float32)
    node_energy, _ = pot(b.species_index, b.edge_index, b.edge_vectors())
    node_energy.sum().backward()
    dead = [n for n, p in pot.named_parameters() if (p.grad is None or float(p.grad.abs().sum()) == 0.0)
            and n != "backbone.embedding.mask"]  # used only on masked frames
    assert dead == [] and any(".phi_x." in n for n, _ in pot.named_parameters())
