"""Finetuning: starting points load completely (backbone or whole model), checkpoints round-trip, bad runs fail cleanly."""

import dataclasses

import numpy as np
import pytest
import torch

from maskpot.data.frame import Frame
from maskpot.models import ModelConfig
from maskpot.pretrain.loop import pretrain
from maskpot.train.config import FinetuneConfig, PretrainConfig, PretrainTask
from maskpot.train.checkpoint import load_checkpoint, load_potential, save_checkpoint
from maskpot.train.finetune import finetune
from maskpot.train.metrics import evaluate

TINY = ModelConfig(backbone="painn", species=[1, 8], cutoff=3.5, hidden=16, layers=2)
FAST = FinetuneConfig(max_steps=8, eval_every=4, batch_size=2, val_fraction=0.2, lr=5e-3, ema_decay=0.0)
PRE = PretrainConfig(max_steps=8, eval_every=4, batch_size=2, val_fraction=0.2, ema_decay=0.0)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, water_set):
    out = tmp_path_factory.mktemp("pre") / "pre.ckpt"
    pretrain(water_set, out, TINY, PretrainTask("mask", "head"), PRE)
    return out


DATA_TENSORS = {"energy_shift", "output_scale", "z_to_species_index"}


@pytest.mark.parametrize("backbone,readout", [("painn", "force"), ("painn", "head"), ("egnn", "force"),
                                              ("gns", "force"), ("gns", "head")])
def test_finetune_from_pretrained_loads_every_tensor_of_its_part(tmp_path, water_set, backbone, readout):
    """Read-out force: the whole model (backbone and head) transfers; head: the backbone only. The energy shift
    and scale are always fitted on the finetuning frames."""
    config = dataclasses.replace(TINY, backbone=backbone)
    pretrained = tmp_path / "pre.ckpt"
    pretrain(water_set, pretrained, config, PretrainTask("both", readout), dataclasses.replace(PRE, max_steps=4))
    pre = load_checkpoint(pretrained)
    # lr = 0: nothing moves, so what transferred must equal the pretrained tensors exactly
    result = finetune(water_set, tmp_path / "ft.ckpt", dataclasses.replace(FAST, max_steps=4, lr=0.0),
                      init=str(pretrained))
    model = result.potential.state_dict()
    part = {k for k in model if readout == "force" and k not in DATA_TENSORS} | \
        {k for k in model if k.startswith("backbone.")}
    assert result.init_report == {"part": "model" if readout == "force" else "backbone", "loaded": len(
        part if readout == "force" else [k for k in part if k.startswith("backbone.")]), "missing": [],
        "unexpected": []}
    saved = load_checkpoint(tmp_path / "ft.ckpt")
    for k in part:
        assert torch.equal(saved.state_dict[k], pre.state_dict[k]), k
    assert any(k.startswith("head.") for k in part) == (readout == "force")
    assert saved.data["init_part"] == result.init_report["part"]
    assert saved.state_dict["output_scale"] == pytest.approx(result.normalization.scale)  # fitted here
    # a freshly initialised model differs from the pretrained weights (the comparison above is not vacuous)
    scratch = finetune(water_set, tmp_path / "s.ckpt", dataclasses.replace(FAST, max_steps=4, lr=0.0),
                       model_config=config)
    assert any(not torch.equal(scratch.potential.state_dict()[k], pre.state_dict[k]) for k in part)


def test_finetune_from_a_finetuned_model_takes_it_whole_and_refits_the_energy(tmp_path, water_set):
    """Supervised pretraining: a model finetuned on cheap labels is the starting point; every tensor but the
    energy shift and scale is taken, and the shift/scale come from the new frames."""
    first = finetune(water_set, tmp_path / "cheap.ckpt", FAST, model_config=TINY)
    shifted = [Frame(f.positions, f.numbers, f.cell, f.pbc, f.energy + 3.0 * len(f), f.forces * 2.0, f.source)
               for f in water_set]
    second = finetune(shifted, tmp_path / "ft.ckpt", dataclasses.replace(FAST, max_steps=4, lr=0.0),
                      init=str(tmp_path / "cheap.ckpt"))
    assert second.init_report["part"] == "model"
    a, b = first.potential.state_dict(), second.potential.state_dict()
    for k in a:
        if k in DATA_TENSORS:
            continue
        assert torch.equal(a[k], b[k]), k
    assert second.normalization.scale == pytest.approx(2.0 * first.normalization.scale)
    assert float(b["energy_shift"].sum()) != pytest.approx(float(a["energy_shift"].sum()))


def test_avg_neighbors_comes_from_the_training_frames_or_from_init(tmp_path, water_set):
    """From scratch: the mean neighbours per atom of the training frames, used by the model and stored in the
    checkpoint; from a pretrained model: its number (its weights were trained with it), also when the requested
    config leaves it unset; a different number is refused."""
    from maskpot.data.neighbors import mean_neighbors

    train, val = water_set[:7], water_set[7:]
    quick = dataclasses.replace(FAST, max_steps=2, eval_every=2)
    scratch = finetune(train, tmp_path / "a.ckpt", quick, model_config=TINY, val_frames=val)
    expected = mean_neighbors(train, TINY.cutoff)
    assert load_checkpoint(tmp_path / "a.ckpt").config.avg_neighbors == pytest.approx(expected)
    assert scratch.potential.backbone.norm == pytest.approx(1.0 / expected)
    pre = tmp_path / "pre.ckpt"
    pretrain(train, pre, dataclasses.replace(TINY, avg_neighbors=7.0), PretrainTask("mask"),
             dataclasses.replace(PRE, max_steps=2, eval_every=2), val_frames=val)
    finetune(train, tmp_path / "b.ckpt", quick, model_config=TINY, init=str(pre), val_frames=val)
    assert load_checkpoint(tmp_path / "b.ckpt").config.avg_neighbors == 7.0
    with pytest.raises(ValueError, match="avg_neighbors: 7.0 vs 9.0"):
        finetune(train, tmp_path / "c.ckpt", quick, model_config=dataclasses.replace(TINY, avg_neighbors=9.0),
                 init=str(pre), val_frames=val)


def test_finetune_refuses_a_different_architecture(tmp_path, water_set, pretrained):
    other = dataclasses.replace(TINY, hidden=8)
    with pytest.raises(ValueError, match="hidden: 16 vs 8"):
        finetune(water_set, tmp_path / "ft.ckpt", FAST, model_config=other, init=str(pretrained))
    # a pretrained file whose weights do not fit its config
    pre = load_checkpoint(pretrained)
    bad = {k: v for k, v in pre.state_dict.items() if not k.endswith(".weight") or "backbone" not in k}
    payload = torch.load(pretrained, weights_only=True)
    payload["state_dict"] = bad
    torch.save(payload, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match="missing"):
        finetune(water_set, tmp_path / "ft2.ckpt", FAST, init=str(tmp_path / "bad.ckpt"))
    assert not (tmp_path / "ft.ckpt").exists() and not (tmp_path / "ft2.ckpt").exists()


@pytest.mark.parametrize("readout", ["force", "head"])
def test_finetune_starts_from_checkpoints_with_the_retired_frequency_buffer(tmp_path, water_set, readout):
    """Pretrained checkpoints written when the Bessel frequencies were a buffer (``...rbf.freqs``) still start a
    finetuning, whole model or backbone; a key that no module takes is still refused."""
    pretrained = tmp_path / "pre.ckpt"
    pretrain(water_set, pretrained, TINY, PretrainTask("mask", readout), dataclasses.replace(PRE, max_steps=2))
    payload = torch.load(pretrained, weights_only=True)
    payload["state_dict"]["backbone.geometry.rbf.freqs"] = torch.arange(1.0, TINY.num_rbf + 1)
    torch.save(payload, tmp_path / "old.ckpt")
    result = finetune(water_set, tmp_path / "ft.ckpt", dataclasses.replace(FAST, max_steps=2, lr=0.0),
                      init=str(tmp_path / "old.ckpt"))
    assert result.init_report["missing"] == [] and result.init_report["unexpected"] == []
    payload["state_dict"]["backbone.stray"] = torch.zeros(3)
    torch.save(payload, tmp_path / "stray.ckpt")
    with pytest.raises(ValueError, match="unexpected .*stray"):
        finetune(water_set, tmp_path / "ft2.ckpt", FAST, init=str(tmp_path / "stray.ckpt"))


def test_finetune_learns_and_checkpoint_round_trips(tmp_path, water_set):
    out = tmp_path / "model.ckpt"
    # 40 steps (10 epochs): with the force-heavy default weights the loss falls after a slower start
    result = finetune(water_set, out, dataclasses.replace(FAST, max_steps=40), model_config=TINY,
                      test_frames=water_set[:3])
    rows = result.rows
    assert rows[0]["step"] == 0 and [r["step"] for r in rows] == list(range(0, 41, 4))
    assert min(r["val_loss"] for r in rows[1:]) < 0.7 * rows[0]["val_loss"]
    pot = load_potential(out)
    again = evaluate(pot, water_set[:3])
    assert again == pytest.approx(result.test_metrics)
    assert evaluate(result.potential, water_set[:3]) == pytest.approx(again)
    ckpt = load_checkpoint(out)
    assert ckpt.kind == "finetuned" and ckpt.metrics["best_step"] == result.best_step
    assert ckpt.normalization["scale"] == pytest.approx(result.normalization.scale)
    assert torch.allclose(pot.energy_shift, torch.tensor(result.normalization.shift, dtype=pot.energy_shift.dtype))
    assert (tmp_path / "model.log.csv").read_text().splitlines()[0] == \
        "step,train_loss,val_loss,val_energy_mae,val_force_mae,lr,seconds"
    assert (tmp_path / "model.curve.png").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt", "model.curve.png", "model.log.csv"]


def test_corrupt_and_foreign_checkpoints(tmp_path, water_set):
    pot_file = tmp_path / "ok.ckpt"
    finetune(water_set, pot_file, dataclasses.replace(FAST, max_steps=4), model_config=TINY)
    raw = pot_file.read_bytes()
    (tmp_path / "trunc.ckpt").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint at all\n")
    torch.save({"some": "dict"}, tmp_path / "foreign.ckpt")
    for name in ("trunc.ckpt", "junk.ckpt", "foreign.ckpt"):
        with pytest.raises(ValueError, match=name) as info:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_checkpoint(tmp_path / "nope.ckpt")
    pre = tmp_path / "pre.ckpt"
    save_checkpoint(pre, torch.nn.Linear(2, 2), TINY, kind="pretrained")
    with pytest.raises(ValueError, match="pretrained"):
        load_potential(pre)


def test_nan_label_and_huge_lr_fail_without_checkpoint(tmp_path, water_set):
    f = water_set[4]
    bad = list(water_set)
    bad[4] = Frame(positions=f.positions, numbers=f.numbers, cell=f.cell, pbc=f.pbc, energy=np.nan, forces=f.forces,
                   source=f.source)
    with pytest.raises(ValueError, match=r"emt#4: energy or forces are not finite") as info:
        finetune(bad, tmp_path / "nan.ckpt", FAST, model_config=TINY)
    with pytest.raises(ValueError, match=r"finetune: loss is (nan|inf) at step \d+") as info:
        finetune(water_set, tmp_path / "lr.ckpt", dataclasses.replace(FAST, lr=1e30, max_steps=12), model_config=TINY)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "nan.ckpt").exists() and not (tmp_path / "lr.ckpt").exists()
    assert not any(p.suffix in (".tmp", ".ckpt", ".png") for p in tmp_path.iterdir())


def test_finetune_adds_the_repulsion_from_the_frames_it_saw(tmp_path, water_set):
    """By default the table is each element pair's closest distance in the training + validation frames (here all
    frames) minus 0.1 A, stored in the checkpoint; none on request and none for the force-centric GNS."""
    from maskpot.models.repulsion import repulsion_table

    finetune(water_set, tmp_path / "a.ckpt", FAST, model_config=TINY)
    assert load_checkpoint(tmp_path / "a.ckpt").config.repulsion == repulsion_table(water_set, [1, 8], TINY.cutoff)
    assert [type(p).__name__ for p in load_potential(tmp_path / "a.ckpt").priors] == ["ZBLRepulsion"]
    off = dataclasses.replace(FAST, repulsion=False)
    assert finetune(water_set, tmp_path / "b.ckpt", off, model_config=TINY).config.repulsion is None
    gns = dataclasses.replace(TINY, backbone="gns")
    assert finetune(water_set, tmp_path / "c.ckpt", FAST, model_config=gns).config.repulsion is None


def test_add_repulsion_to_an_older_checkpoint_keeps_its_numbers_on_its_data(tmp_path, water_set):
    from maskpot.train.checkpoint import add_repulsion

    off = dataclasses.replace(FAST, repulsion=False)
    finetune(water_set, tmp_path / "old.ckpt", off, model_config=TINY)
    table = add_repulsion(tmp_path / "old.ckpt", water_set, tmp_path / "new.ckpt")
    assert load_checkpoint(tmp_path / "new.ckpt").config.repulsion == table and set(table) == {"1-1", "1-8", "8-8"}
    assert evaluate(load_potential(tmp_path / "new.ckpt"), water_set) == evaluate(load_potential(tmp_path / "old.ckpt"),
                                                                                   water_set)
    squeezed = [Frame(f.positions * 0.8, f.numbers, f.cell * 0.8, f.pbc, f.energy, f.forces) for f in water_set[:2]]
    assert evaluate(load_potential(tmp_path / "new.ckpt"), squeezed) != evaluate(load_potential(tmp_path / "old.ckpt"),
                                                                                  squeezed)
    pre = tmp_path / "pre.ckpt"
    pretrain(water_set, pre, TINY, PretrainTask("mask"), dataclasses.replace(PRE, max_steps=4))
    with pytest.raises(ValueError, match="finetuned energy-centric"):
        add_repulsion(pre, water_set, tmp_path / "x.ckpt")
    assert not (tmp_path / "x.ckpt").exists()
    apart = [Frame(np.array([[0.0, 0.0, 0.0], [9.0, 0.0, 0.0]]), np.array([8, 1]))]  # no pair within the cutoff
    with pytest.raises(ValueError, match="no pair of the model's elements is closer than its cutoff"):
        add_repulsion(tmp_path / "old.ckpt", apart, tmp_path / "x.ckpt")
    assert not (tmp_path / "x.ckpt").exists()
