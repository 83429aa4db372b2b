"""Each finetune option freezes, unfreezes and scales what it says: parameters that must not move
do not move, bit for bit (batch-norm statistics included), and the ones that train do."""

from __future__ import annotations

import copy

import pytest
import torch

from bigmodel_cli.callbacks.finetuning import head_name, layer_units
from bigmodel_cli.commands import train
from bigmodel_cli.config import catalogue
from bigmodel_cli.training import assembly
from tests.conftest import FAST, TWO_EPOCHS


def run_keeping_states(cfg, monkeypatch) -> tuple[dict, list[dict], dict, object]:
    """train.run, keeping the module's state at build, at the end of every epoch, and the trainer."""
    from pytorch_lightning import Callback

    seen = {"epochs": []}
    build_module, build_trainer = assembly.build_module, assembly.build_trainer

    class EpochStates(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            seen["epochs"].append(copy.deepcopy(pl_module.backbone.state_dict()))

    def keep_module(*args, **kwargs):
        seen["module"] = build_module(*args, **kwargs)
        seen["start"] = copy.deepcopy(seen["module"].backbone.state_dict())
        return seen["module"]

    def keep_trainer(*args, **kwargs):
        seen["trainer"] = build_trainer(*args, **kwargs)
        seen["trainer"].callbacks.append(EpochStates())
        return seen["trainer"]

    monkeypatch.setattr(assembly, "build_module", keep_module)
    monkeypatch.setattr(assembly, "build_trainer", keep_trainer)
    train.run(cfg)
    return seen["start"], seen["epochs"], seen["module"], seen["trainer"]


def split(state: dict, head: str) -> tuple[dict, dict]:
    body = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    return body, {k: v for k, v in state.items() if k.startswith(head + ".")}


def same(a: dict, b: dict) -> list[str]:
    return [k for k in a if torch.equal(a[k], b[k])]


@pytest.mark.parametrize("option", ["linear_probe", "none"])
def test_linear_probe_trains_the_head_only_and_none_trains_all(option, compose_cfg, monkeypatch):
    with compose_cfg("train", [f"finetune={option}", *TWO_EPOCHS]) as cfg:
        start, epochs, module, _ = run_keeping_states(cfg, monkeypatch)
    head = head_name(module.backbone)
    body_start, head_start = split(start, head)
    body_end, head_end = split(epochs[-1], head)
    assert any("running_mean" in k for k in body_start)
    if option == "linear_probe":
        assert same(body_start, body_end) == list(body_start)  # every body tensor, BN buffers included
    else:
        assert [k for k in same(body_start, body_end) if not k.endswith("num_batches_tracked")] == []
    assert not same(head_start, head_end)  # every head tensor moved


def test_gradual_unfreezes_the_body_at_its_epoch_and_lr(compose_cfg, monkeypatch):
    overrides = ["finetune=gradual", "finetune.unfreeze_at_epoch=1", "finetune.backbone_lr_factor=0.25"]
    with compose_cfg("train", [*overrides, *TWO_EPOCHS, "scheduler=none"]) as cfg:
        start, epochs, module, trainer = run_keeping_states(cfg, monkeypatch)
    head = head_name(module.backbone)
    body_start, _ = split(start, head)
    assert same(body_start, split(epochs[0], head)[0]) == list(body_start)  # frozen through epoch 0
    moved = set(body_start) - set(same(body_start, split(epochs[1], head)[0]))
    assert any(k.endswith("weight") and "features" in k for k in moved)  # trained in epoch 1
    groups = trainer.optimizers[0].param_groups
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(0.25 * groups[0]["lr"])


def test_layerwise_decays_the_lr_layer_by_layer(compose_cfg, monkeypatch):
    with compose_cfg("train", ["finetune=layerwise", "finetune.layer_decay=0.5", *FAST, "scheduler=none"]) as cfg:
        _, _, module, trainer = run_keeping_states(cfg, monkeypatch)
        lr = cfg.optimizer.lr
    units = layer_units(module.backbone)
    lr_of = {id(p): g["lr"] for g in trainer.optimizers[0].param_groups for p in g["params"]}
    params = dict(module.backbone.named_parameters())
    for depth, names in enumerate(units):
        expected = lr * 0.5 ** (len(units) - 1 - depth)
        assert all(lr_of[id(params[n])] == pytest.approx(expected) for n in names), (depth, names)
    assert units[-1] == [n for n in params if n.startswith(head_name(module.backbone) + ".")]


def test_gradual_on_several_processes_is_one_clear_line():
    from types import SimpleNamespace

    from bigmodel_cli.callbacks.finetuning import FreezeBody
    from bigmodel_cli.errors import UserError

    with pytest.raises(UserError, match="finetune=gradual cannot run on 2 processes"):
        FreezeBody(unfreeze_at_epoch=1).setup(SimpleNamespace(world_size=2), None, "fit")


@pytest.mark.parametrize("model", ["transformer", "vit"])
def test_linear_probe_on_a_model_with_parameters_of_its_own_trains_its_head(model, compose_cfg, monkeypatch):
    """A transformer's root holds parameters itself ([CLS], positions): freezing them must not
    freeze the head beneath it (every parameter was frozen: 'optimizer got an empty parameter list')."""
    with compose_cfg("train", [f"model={model}", "finetune=linear_probe", *TWO_EPOCHS]) as cfg:
        start, epochs, module, _ = run_keeping_states(cfg, monkeypatch)
    body_start, head_start = split(start, head_name(module.backbone))
    body_end, head_end = split(epochs[-1], head_name(module.backbone))
    assert same(body_start, body_end) == list(body_start)
    assert not same(head_start, head_end)


def test_linear_probe_of_a_head_tied_to_the_body_is_one_line(compose_cfg):
    from bigmodel_cli.errors import UserError

    with compose_cfg("train", ["model=gpt", "data=char_lm", "finetune=linear_probe", *FAST]) as cfg:
        with pytest.raises(
            UserError, match="finetune=linear_probe freezes the body and leaves model GPT nothing to train"
        ):
            train.run(cfg)


@pytest.mark.parametrize("scheduler", catalogue.groups()["scheduler"])
def test_gradual_unfreezing_under_every_schedule_keeps_the_body_at_its_factor(scheduler, compose_cfg, monkeypatch):
    """The body's group joins the optimizer after its scheduler was built (warmup_cosine's LambdaLR
    failed at the next step: one lr function too few); from then on it follows the head's schedule
    at backbone_lr_factor x the head's lr."""
    overrides = ["finetune=gradual", "finetune.unfreeze_at_epoch=1", "finetune.backbone_lr_factor=0.25"]
    with compose_cfg("train", [*overrides, *TWO_EPOCHS, f"scheduler={scheduler}"]) as cfg:
        _, _, _, trainer = run_keeping_states(cfg, monkeypatch)
    head, body = trainer.optimizers[0].param_groups
    assert body["lr"] == pytest.approx(0.25 * head["lr"])
