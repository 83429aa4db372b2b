"""model.activation_checkpointing=true, for every model option that has the key: each block runs its
forward a second time in backward (so its activations were not kept), and the outputs and
gradients are the ones without it, bit for bit, with dropout and stochastic depth drawing masks."""

from __future__ import annotations

import pytest
import torch

from bigmodel_cli.config import catalogue
from bigmodel_cli.config.catalogue import model_modalities, option_yaml
from bigmodel_cli.training.pieces import build_datamodule, build_module, plain
from tests.models.test_models import data_option, fixed_batch, tiny
from tests.support.data_files import prepare_files_for

CHECKPOINTED = [m for m in catalogue.groups()["model"] if "activation_checkpointing" in option_yaml("model", m)]


def test_the_block_structured_families_have_the_switch():
    assert {"transformer", "vit", "gpt", "bert", "resnet"} <= set(CHECKPOINTED)


def blocks_of(backbone) -> list[torch.nn.Module]:
    if hasattr(backbone, "blocks"):
        return list(backbone.blocks)
    net = backbone.net
    return [block for stage in (net.layer1, net.layer2, net.layer3, net.layer4) for block in stage]


def step(compose_cfg, tmp_path, overrides: list[str]):
    """One training forward and backward of the backbone: its output, gradients, block forwards."""
    with compose_cfg("train", overrides) as cfg:
        prepare_files_for(cfg, tmp_path)
        datamodule = build_datamodule(cfg.data)
        torch.manual_seed(0)
        module = build_module(plain(cfg))
    x = fixed_batch(datamodule)[0]
    backbone = module.backbone.train()
    calls = []
    for block in blocks_of(backbone):
        block.register_forward_pre_hook(lambda *_: calls.append(1))  # recomputation stops early: no post-hook
    torch.manual_seed(1)  # dropout and stochastic depth masks
    out = backbone(x)
    out.float().square().mean().backward()
    grads = {n: p.grad.clone() for n, p in backbone.named_parameters() if p.grad is not None}
    return out.detach(), grads, len(calls), len(blocks_of(backbone))


@pytest.mark.parametrize("model", CHECKPOINTED)
def test_checkpointing_recomputes_each_block_and_changes_no_number(model, compose_cfg, tmp_path):
    modality = model_modalities(model)[0]
    base = [f"model={model}", f"data={data_option(modality)}", "data.batch_size=8", "regularizer=dropout"]
    with compose_cfg("train", base, name="probe") as cfg:
        base += tiny(cfg.model)
        if "stochastic_depth" in cfg.model:
            base.append("model.stochastic_depth=0.3")
    plain_out, plain_grads, plain_calls, blocks = step(compose_cfg, tmp_path, base)
    out, grads, calls, _ = step(compose_cfg, tmp_path, [*base, "model.activation_checkpointing=true"])
    assert plain_calls == blocks and calls == 2 * blocks, "each block should run again in backward"
    assert torch.equal(out, plain_out)
    assert grads.keys() == plain_grads.keys()
    assert all(torch.equal(grads[n], plain_grads[n]) for n in grads), "gradients differ"
