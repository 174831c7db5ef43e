"""The compiled training step (maskpot.train.compiled, ``TrainConfig.compile``): padding to buckets changes no
number, and the compiled energies, forces and weight gradients are the eager ones."""

import dataclasses

import numpy as np
import pytest
import torch

from maskpot.models import ModelConfig, build_potential
from maskpot.train.batch import collate
from maskpot.train.compiled import CompiledEnergyForces, bucket, pad
from maskpot.train.config import FinetuneConfig
from maskpot.train.finetune import finetune
from maskpot.train.metrics import predict_batch

TINY = ModelConfig(backbone="painn", species=[1, 8], cutoff=3.5, hidden=16, layers=2, dtype="float64",
                   avg_neighbors=20.0)


def model(backbone: str = "painn") -> torch.nn.Module:
    torch.manual_seed(0)
    potential = build_potential(dataclasses.replace(TINY, backbone=backbone)).double()
    with torch.no_grad():  # a nonzero normalisation, as after fitting
        potential.energy_shift.copy_(torch.tensor([-13.6, -432.0], dtype=torch.float64))
        potential.output_scale.fill_(0.7)
    return potential


def test_buckets_bound_the_padding():
    sizes = np.arange(1, 70000, 37)
    padded = np.array([bucket(int(n)) for n in sizes])
    assert (padded >= sizes).all() and (padded <= np.maximum(8, sizes * 9 / 8)).all()
    assert len({bucket(n) for n in range(19800, 20200)}) == 1  # a water batch's edge counts share one bucket


@pytest.mark.parametrize("backbone", ["painn", "egnn", "gns"])
def test_padding_changes_no_number(water_set, backbone):
    """The uncompiled padded function on a padded batch gives the energies and forces of the batch itself."""
    potential = model(backbone)
    batch = collate(water_set[:3], TINY.cutoff, TINY.species, torch.float64)
    step = CompiledEnergyForces(potential)
    positions, species_index, edge_index, shifts, graph, mask_flag = pad(batch, TINY.cutoff)
    assert positions.shape[0] > batch.positions.shape[0] and edge_index.shape[1] >= batch.edge_index.shape[1]
    energy, forces = step._padded(dict(potential.named_parameters()), dict(potential.named_buffers()), positions,
                                  species_index, edge_index, shifts, graph, batch.n_graphs + 1, mask_flag)
    e_ref, f_ref = predict_batch(potential, batch, create_graph=True)
    n = batch.positions.shape[0]
    torch.testing.assert_close(energy[:batch.n_graphs], e_ref, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(forces[:n], f_ref, rtol=1e-12, atol=1e-10)


def test_finetune_with_compile_follows_the_eager_run(tmp_path, water_set):
    """Finetuning with ``compile=True`` logs the validation losses of the eager run (so its energies, forces
    and weight gradients are the eager ones, float64), from one compiled graph without graph breaks although
    the batches' edge counts differ (they share a bucket)."""
    from torch._dynamo.utils import counters

    cfg = FinetuneConfig(max_steps=6, eval_every=3, batch_size=2, val_fraction=0.2, lr=5e-3, ema_decay=0.0)
    eager = finetune(water_set, tmp_path / "eager.ckpt", cfg, model_config=TINY)
    torch._dynamo.reset()
    counters.clear()
    compiled = finetune(water_set, tmp_path / "compiled.ckpt", dataclasses.replace(cfg, compile=True),
                        model_config=TINY)
    losses = [[row["val_loss"] for row in r.rows] for r in (eager, compiled)]
    assert len(losses[0]) == 3 and np.allclose(losses[0], losses[1], rtol=1e-9, atol=0), losses
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    assert not counters["graph_break"], dict(counters["graph_break"])
    edges = {collate(water_set[k:k + 2], TINY.cutoff, TINY.species, torch.float64).edge_index.shape[1]
             for k in range(0, 8, 2)}
    assert len(edges) > 1  # the batches differ in size


def test_pretrain_with_compile_follows_the_eager_run(tmp_path, water_set):
    """Masked pretraining with the force read-out and ``compile=True`` logs the eager run's validation losses
    (the masked atoms' flags are an input of the compiled function); the head read-out refuses it in one line."""
    from torch._dynamo.utils import counters

    from maskpot.pretrain.loop import pretrain
    from maskpot.train.config import PretrainConfig, PretrainTask

    counters.clear()
    cfg = PretrainConfig(max_steps=6, eval_every=3, batch_size=2, val_fraction=0.2, ema_decay=0.0)
    # every molecule masked: every batch has the same atom count, so one shape is compiled
    task = PretrainTask("mask", "force", mask_ratio=1.0)
    runs = [pretrain(water_set, tmp_path / f"{c}.ckpt", TINY, task, dataclasses.replace(cfg, compile=c))
            for c in (False, True)]
    losses = [[row["val_loss"] for row in r.rows] for r in runs]
    assert len(losses[0]) == 3 and np.allclose(losses[0], losses[1], rtol=1e-9, atol=0), losses
    assert losses[0][0] != losses[0][-1]  # the weights moved
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"], dict(counters["stats"])
    with pytest.raises(ValueError, match="head read-out"):
        pretrain(water_set, tmp_path / "head.ckpt", TINY, PretrainTask("mask", "head"),
                 dataclasses.replace(cfg, compile=True))
