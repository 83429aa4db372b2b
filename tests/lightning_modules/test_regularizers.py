"""Regularizers, weight-decay groups and full-batch gd act in every task module (classification and
language modelling), each shown by its effect: penalties shrink the weights they cover and are
logged, decoupled decay shrinks weights, label smoothing changes the training loss, gd steps once
per epoch, dropout and stochastic depth randomise training-mode outputs and never eval-mode ones.
Also: the decay groups are decided before FSDP flattens the parameters."""

from __future__ import annotations

import os
import socket

import pytest
import torch
from torch import nn

from bigmodel_cli.config import catalogue
from bigmodel_cli.config.catalogue import option_yaml
from bigmodel_cli.config.instantiate import instantiate
from bigmodel_cli.lightning_modules.optim import decayed_names, decayed_parameters, parameter_groups
from bigmodel_cli.training.pieces import build_module, plain
from tests.conftest import FAST, fitted

# One short run per task module: the default classifier, and a tiny GPT on the built-in text.
TASKS = {
    "classifier": ["model=mlp"],
    "language_model": [
        "data=char_lm",
        "model=gpt",
        "model.dim=32",
        "model.depth=1",
        "model.heads=2",
        "data.block_size=32",
    ],
}
SHORT = [
    *[o for o in FAST if not o.startswith("trainer.max_epochs")],
    "trainer.max_epochs=2",
    "test_after_fit=false",
    "scheduler=none",
    "optimizer=sgd",
    "optimizer.momentum=0.0",
]


def train(compose_cfg, monkeypatch, overrides: list[str], name: str):
    with compose_cfg("train", [*SHORT, *overrides], name=name) as cfg:
        metrics, trainer, module = fitted(cfg, monkeypatch)
    return metrics, module


def decayed_weight_norm(module, p: int) -> float:
    return float(
        sum(w.detach().abs().pow(p).sum() for w in decayed_parameters(module.named_parameters(), module.decayed))
    )


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(
    ("option", "norm", "logged"),
    [
        ("l1", 1, ["train/l1_penalty"]),
        ("l2", 2, ["train/l2_penalty"]),
        ("elastic", 2, ["train/l1_penalty", "train/l2_penalty"]),
        ("weight_decay", 2, []),
    ],
)
def test_penalties_and_decay_shrink_the_weights(task, option, norm, logged, compose_cfg, monkeypatch):
    strong = {
        "l1": ["regularizer.l1=0.05"],
        "l2": ["regularizer.l2=0.5"],
        "weight_decay": ["regularizer.weight_decay=5.0"],
        "elastic": ["regularizer.l1=0.05", "regularizer.l2=0.5"],
    }[option]
    _, plain_module = train(compose_cfg, monkeypatch, TASKS[task], "none")
    metrics, regularized = train(compose_cfg, monkeypatch, [*TASKS[task], f"regularizer={option}", *strong], option)
    assert decayed_weight_norm(regularized, norm) < 0.9 * decayed_weight_norm(plain_module, norm), (
        f"{option} did not shrink the weights of the {task} module"
    )
    for key in logged:
        assert metrics[key] > 0, f"{key} not logged: {sorted(metrics)}"


@pytest.mark.parametrize("task", TASKS)
def test_label_smoothing_changes_the_training_loss(task, compose_cfg):
    with compose_cfg("train", [*SHORT, *TASKS[task]], name="plain") as cfg:
        module = build_module(plain(cfg))
    with compose_cfg("train", [*SHORT, *TASKS[task], "regularizer=label_smoothing"], name="smooth") as cfg:
        smoothed = build_module(plain(cfg))
    smoothed.load_state_dict(module.state_dict())
    vocab = 10 if task == "classifier" else 256
    logits, targets = torch.randn(8, vocab) * 5, torch.randint(0, vocab, (8,))
    assert not torch.isclose(module.criterion(logits, targets), smoothed.criterion(logits, targets))


def test_gd_steps_once_per_epoch_in_the_language_model(compose_cfg, monkeypatch):
    with compose_cfg("train", [*SHORT, *TASKS["language_model"], "optimizer=gd"]) as cfg:
        _, trainer, _ = fitted(cfg, monkeypatch)
    assert trainer.num_training_batches > 1
    assert trainer.global_step == 2, f"optimizer=gd took {trainer.global_step} steps in 2 epochs"


def test_full_batch_weights_use_this_ranks_shard():
    """Under DDP a rank's epoch is its shard: weighting by the whole split made the gradient wrong."""
    from bigmodel_cli.data.tensor_images import TensorImages, TensorLoader
    from bigmodel_cli.lightning_modules.base import samples_per_epoch

    data = TensorImages(torch.zeros(101, 1, 2, 2, dtype=torch.uint8), torch.zeros(101, dtype=torch.long))
    shard = TensorLoader(data, batch_size=16, rank=1, world_size=2)
    assert samples_per_epoch(shard) == 51 == len(shard.order())
    assert samples_per_epoch(TensorLoader(data, batch_size=16)) == 101


# --- dropout and stochastic depth: random in training, deterministic in eval ------------------


def models_reading(key: str) -> list[str]:
    return [m for m in catalogue.groups()["model"] if key in option_yaml("model", m)]


def backbone(compose_cfg, model: str, overrides: list[str]):
    modalities = _modalities(model)
    data = (
        []
        if "image" in modalities
        else ["data=char_lm", "data.block_size=16"]
        if "tokens" in modalities
        else ["data=text_corpus", "data.max_length=16", "data.vocab_size=256"]
    )
    with compose_cfg("train", [f"model={model}", *data, *overrides], name=f"{model}-{len(overrides)}") as cfg:
        config = plain(cfg)
    torch.manual_seed(0)
    return instantiate(config["model"]), (torch.randn(4, 1, 8, 8) if not data else torch.randint(0, 256, (4, 16)))


def _modalities(model: str):
    from bigmodel_cli.config.catalogue import model_modalities

    return model_modalities(model)


def random_in_training(net: nn.Module, x: torch.Tensor) -> tuple[bool, bool]:
    net.train()
    torch.manual_seed(1)
    training_differs = not torch.allclose(net(x), net(x))
    net.eval()
    eval_differs = not torch.allclose(net(x), net(x))
    return training_differs, eval_differs


@pytest.mark.parametrize("model", models_reading("stochastic_depth"))
def test_stochastic_depth_acts_in_training_only(model, compose_cfg):
    net, x = backbone(compose_cfg, model, ["regularizer=stochastic_depth", "regularizer.stochastic_depth=0.5"])
    assert any(isinstance(m, nn.Module) and type(m).__name__ == "DropPath" and m.p > 0 for m in net.modules())
    assert random_in_training(net, x) == (True, False), f"{model}: stochastic depth did not act in training only"
    off, x = backbone(compose_cfg, model, [])  # without it, training mode is deterministic here
    assert random_in_training(off, x) == (False, False)


@pytest.mark.parametrize("model", models_reading("dropout"))
def test_dropout_acts_in_training_only(model, compose_cfg):
    net, x = backbone(compose_cfg, model, ["regularizer=dropout", "regularizer.dropout=0.5"])
    assert random_in_training(net, x) == (True, False), f"{model}: dropout did not act in training only"


def test_models_without_residual_branches_say_stochastic_depth_is_ignored(compose_cfg, capsys):
    with compose_cfg("train", ["model=mlp", "regularizer=stochastic_depth"]) as cfg:
        build_module(plain(cfg))
    assert "regularizer.stochastic_depth is ignored" in capsys.readouterr().out


# --- weight-decay groups survive FSDP's flattening --------------------------------------------


def test_decay_groups_by_module_type_not_shape():
    net = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    assert decayed_names(net) == {"0.weight", "3.weight"}
    flattened = [(name, nn.Parameter(p.detach().flatten())) for name, p in net.named_parameters()]
    decay, exempt = parameter_groups(flattened, decayed_names(net), no_decay_norm_bias=True)
    assert [p.numel() for p in decay["params"]] == [32, 16] and exempt["weight_decay"] == 0.0


def _fsdp_worker(rank: int, world: int, port: int, results) -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from bigmodel_cli.lightning_modules.optim import decayed_names, parameter_groups
    from bigmodel_cli.models.transformer import Block, Transformer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = Transformer(num_classes=10, in_channels=1, image_size=8, patch_size=2, dim=16, depth=2, heads=2)
        decayed = decayed_names(model)  # decided before wrapping, as BackboneModule does
        full_l2 = float(sum(p.detach().pow(2).sum() for n, p in model.named_parameters() if n in decayed))
        wrapped = FSDP(
            model, auto_wrap_policy=ModuleWrapPolicy({Block}), use_orig_params=True, device_id=torch.device("cpu")
        )
        named = list(wrapped.named_parameters())
        assert all(p.ndim <= 1 for _, p in named), "FSDP did not flatten: the test shows nothing"
        decay, exempt = parameter_groups(named, decayed, no_decay_norm_bias=True)
        local_l2 = sum(float(p.detach().pow(2).sum()) for p in decay["params"])
        total = torch.tensor([local_l2])
        dist.all_reduce(total)
        results[rank] = (sum(p.numel() for p in decay["params"]), len(exempt["params"]), float(total), full_l2)
    finally:
        dist.destroy_process_group()


def test_decay_groups_and_penalties_under_torch_fsdp_over_gloo():
    """Two CPU ranks, torch's FSDP (Lightning refuses FSDP on CPU): every parameter becomes a 1-D
    shard, and the decay group still holds exactly the weights, whose penalty over all shards is the
    whole model's."""
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.start_processes(_fsdp_worker, args=(2, port, results), nprocs=2, start_method="spawn")
    decay_numel = sum(r[0] for r in results.values())
    model = __import__("bigmodel_cli.models.transformer", fromlist=["Transformer"]).Transformer(
        num_classes=10, in_channels=1, image_size=8, patch_size=2, dim=16, depth=2, heads=2
    )
    expected = sum(p.numel() for n, p in model.named_parameters() if n in decayed_names(model))
    assert decay_numel == expected, f"decayed shards hold {decay_numel} values, the weights {expected}"
    assert all(r[1] > 0 for r in results.values()), "norms and biases lost their no-decay group"
    for _, _, sharded_l2, full_l2 in results.values():
        assert sharded_l2 == pytest.approx(full_l2, rel=1e-5)
