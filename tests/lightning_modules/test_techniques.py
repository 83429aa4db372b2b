"""Training techniques that the per-option test cannot check by just running: full-batch gradient
descent, mixup/cutmix soft targets, EMA weights in checkpoints, parameter groups, the lr finder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bigmodel_cli.commands import lr_find, train
from bigmodel_cli.training import lr_search
from tests.conftest import FAST, fitted, record_batches

# A short run that keeps every batch of an epoch (no limit_train_batches), logs nothing.
SHORT = [o for o in FAST if not o.startswith(("trainer.limit_train_batches", "trainer.max_epochs"))]
QUICK = [o for o in FAST if not o.startswith("trainer.max_epochs")]  # 3 batches an epoch


def test_gd_takes_one_optimizer_step_per_epoch(compose_cfg, monkeypatch):
    with compose_cfg("train", ["optimizer=gd", "trainer.max_epochs=2", "test_after_fit=false", *SHORT]) as cfg:
        metrics, trainer, _ = fitted(cfg, monkeypatch)
    assert trainer.num_training_batches > 1, "the test needs several batches per epoch"
    assert trainer.global_step == 2, f"full-batch gd took {trainer.global_step} steps in 2 epochs"


def test_gd_gradient_is_the_full_batch_gradient(compose_cfg):
    """The accumulated, weighted gradient equals the gradient of the mean loss over all samples."""
    from bigmodel_cli.training.pieces import build_datamodule, build_module, plain

    with compose_cfg("train", ["optimizer=gd", "model=mlp", "data.batch_size=500"]) as cfg:
        datamodule = build_datamodule(cfg.data)
        module = build_module(plain(cfg))
    datamodule.setup("fit")
    images, labels = datamodule.datasets["train"].images, datamodule.datasets["train"].labels
    assert len(labels) % 500, "the last batch must be smaller for the weighting to matter"
    x, _ = datamodule.on_after_batch_transfer((images, labels), 0)

    class FakeTrainer:  # what full_batch_weight reads
        num_training_batches = -(-len(labels) // 500)
        train_dataloader = type("L", (), {"batch_size": 500, "dataset": labels})()

    module._trainer = FakeTrainer()
    module.zero_grad()
    torch.nn.functional.cross_entropy(module(x), labels).backward()
    expected = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    for start in range(0, len(labels), 500):
        xb, yb = x[start : start + 500], labels[start : start + 500]
        weighted = torch.nn.functional.cross_entropy(module(xb), yb) * module.full_batch_weight(len(xb))
        (weighted / FakeTrainer.num_training_batches).backward()  # Lightning's division by the accumulation
    for got, want in zip((p.grad for p in module.parameters()), expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("option", ["mixup", "cutmix", "[mixup,cutmix]"])
def test_mixing_gives_soft_targets_to_the_loss(option, compose_cfg, monkeypatch):
    batches = record_batches(monkeypatch)
    with compose_cfg("train", [f"augmentation={option}", "test_after_fit=false", *FAST]) as cfg:
        train.run(cfg)
    targets = [y for _, y in batches]
    assert targets and all(t.ndim == 2 and t.shape[1] == 10 for t in targets), "targets were not soft"
    assert all(torch.allclose(t.sum(1), torch.ones(len(t))) for t in targets)
    assert any((t.max(1).values < 1).any() for t in targets), "no sample was actually mixed"


def test_soft_target_loss_and_metrics(compose_cfg):
    from bigmodel_cli.lightning_modules.classifier import hard_labels
    from bigmodel_cli.training.pieces import build_module, plain

    with compose_cfg("train", ["regularizer=label_smoothing"]) as cfg:
        module = build_module(plain(cfg))
    logits = torch.randn(4, 10)
    labels = torch.tensor([1, 2, 3, 4])
    one_hot = torch.nn.functional.one_hot(labels, 10).float()
    torch.testing.assert_close(module.criterion(logits, one_hot), module.criterion(logits, labels))
    assert torch.equal(hard_labels(one_hot), labels)


def test_ema_weights_are_validated_and_saved(compose_cfg, monkeypatch):
    with compose_cfg(
        "train",
        [
            "regularizer=ema",
            "regularizer.callbacks.ema.decay=0.9",
            "trainer.max_epochs=2",
            "test_after_fit=false",
            *QUICK,
        ],
    ) as cfg:
        _, trainer, module = fitted(cfg, monkeypatch)
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    ema = next(c for c in trainer.callbacks if type(c).__name__ == "ExponentialMovingAverage")
    averaged = {k[len("module.") :]: v for k, v in ema._average_model.state_dict().items() if k.startswith("module.")}
    raw = checkpoint["current_model_state"]
    assert set(checkpoint["state_dict"]) == set(raw)
    differs = False
    for name, value in checkpoint["state_dict"].items():
        torch.testing.assert_close(value, averaged[name])  # the checkpoint's weights are the EMA ones
        differs |= not torch.equal(value, raw[name])
    assert differs, "EMA weights equal the raw weights: the average did nothing"
    for name, value in module.state_dict().items():  # after fit the module holds the EMA weights
        torch.testing.assert_close(value, averaged[name])


def test_adamw_exempts_norms_and_biases_from_decay(compose_cfg):
    from bigmodel_cli.lightning_modules.optim import build_optimizer
    from bigmodel_cli.training.pieces import build_module, plain

    with compose_cfg("train", ["optimizer=adamw"]) as cfg:
        module = build_module(plain(cfg))
    optimizer = build_optimizer(module, module.config["optimizer"])
    decay, exempt = optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and exempt["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in exempt["params"])
    assert len(decay["params"]) + len(exempt["params"]) == len(list(module.parameters()))


@pytest.mark.parametrize(
    ("option", "interval"), [("warmup_cosine", "step"), ("onecycle", "step"), ("plateau", "epoch"), ("cosine", "epoch")]
)
def test_schedules_step_at_their_interval(option, interval, compose_cfg, monkeypatch):
    with compose_cfg("train", [f"scheduler={option}", "trainer.max_epochs=2", "test_after_fit=false", *QUICK]) as cfg:
        _, trainer, _ = fitted(cfg, monkeypatch)
    config = trainer.lr_scheduler_configs[0]
    assert config.interval == interval
    steps = config.scheduler.last_epoch if hasattr(config.scheduler, "last_epoch") else None
    if option in ("warmup_cosine", "onecycle"):
        assert steps == trainer.global_step == 6  # 3 batches x 2 epochs


def test_warmup_cosine_shape():
    from bigmodel_cli.lightning_modules.optim import warmup_cosine

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=100, warmup_steps=10)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] < 0.2 and lrs[:10] == sorted(lrs[:10]) and abs(max(lrs) - 1.0) < 1e-9
    assert lrs[10:] == sorted(lrs[10:], reverse=True) and lrs[-1] < 0.01


def test_lr_find_suggests_and_plots(compose_cfg, capsys):
    with compose_cfg("lr_find", ["lr_find.num_training=30", "trainer.max_epochs=3"]) as cfg:
        metrics = lr_find.run(cfg)
        plot = Path(cfg.paths.output_dir) / "lr_find.png"
    lr = metrics["lr_find/suggested_lr"]
    assert 1e-6 <= lr <= 1.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"optimizer.lr={lr:.4g}" in capsys.readouterr().out


def test_lr_finder_suggests_the_steepest_fall_per_decade_of_lr():
    """A range test's loss falling fastest (per decade) at lr 1e-2, on an exponential sweep: the
    suggestion is there; Lightning's own suggestion (slope per unit of lr) lands several times lower."""
    import math

    from pytorch_lightning.tuner.lr_finder import _LRFinder

    from bigmodel_cli.training.lr_search import steepest_descent

    lrs = [10 ** (-6 + 6 * i / 99) for i in range(100)]
    losses = [2.0 - 1.5 / (1 + math.exp(-3 * (math.log10(lr) + 2))) for lr in lrs]  # steepest at 1e-2
    losses[-5:] = [losses[-6] + k for k in range(1, 6)]  # diverging at the end
    suggested = steepest_descent({"lr": lrs, "loss": losses})
    assert 0.8e-2 < suggested < 1.25e-2
    lightning = _LRFinder("exponential", 1e-6, 1.0, 100)
    lightning.results = {"lr": lrs, "loss": losses}
    assert lightning.suggestion() < suggested / 3


def test_lr_find_without_matplotlib_suggests_and_notes_the_plot_in_one_line(compose_cfg, capsys, monkeypatch):
    """The base install has no matplotlib (the plots extra): the suggestion still comes."""
    import sys

    from bigmodel_cli.runs import records

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importing it now raises ImportError
    recorded = {}
    monkeypatch.setattr(records, "update_run", lambda _dir, **fields: recorded.update(fields))
    with compose_cfg("lr_find", ["lr_find.num_training=20", "trainer.max_epochs=2"]) as cfg:
        metrics = lr_find.run(cfg)
        plot = Path(cfg.paths.output_dir) / "lr_find.png"
    lr = metrics["lr_find/suggested_lr"]
    assert not plot.exists() and recorded["lr_found"] == lr and recorded["lr_find_plot"] is None
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: the learning-rate plot (lr_find.png) skipped: matplotlib is not installed "
        "(fix: pip install 'bigmodel-cli[plots]')"
    ]
    assert f"suggested learning rate: {lr:.4g}\nuse it:" in out


def test_train_with_lr_auto_trains_with_the_suggestion(compose_cfg, monkeypatch):
    found = []
    find = lr_search.find_lr

    def spy(*args, **kwargs):
        found.append(find(*args, **kwargs)[0])
        return found[-1], Path("plot.png")

    monkeypatch.setattr(lr_search, "find_lr", spy)
    with compose_cfg(
        "train",
        ["optimizer.lr=auto", "lr_find.num_training=20", "trainer.max_epochs=1", "test_after_fit=false", *SHORT],
    ) as cfg:
        _, trainer, module = fitted(cfg, monkeypatch)
    assert found and cfg.optimizer.lr == found[0]
    assert module.hparams["config"]["optimizer"]["lr"] == found[0]
    assert trainer.optimizers[0].param_groups[0]["initial_lr"] == found[0]


def test_lr_auto_passes_validation_and_other_words_do_not(compose_cfg):
    from bigmodel_cli.config.validation import validate
    from bigmodel_cli.errors import UserError

    with compose_cfg("train", ["optimizer.lr=auto"]) as cfg:
        validate(cfg)
    with compose_cfg("train", ["optimizer.lr=fast"]) as cfg, pytest.raises(UserError, match="optimizer.lr"):
        validate(cfg)


def test_lr_auto_keeps_the_first_epochs_training_metrics(compose_cfg, monkeypatch):
    """The lr finder's own short fit ran the training step first; the real fit's epoch 0 still logs
    its training metrics (they were once taken as already registered, and lost)."""
    import csv

    with compose_cfg(
        "train",
        ["optimizer.lr=auto", "lr_find.num_training=20", "trainer.max_epochs=2", "test_after_fit=false", *SHORT],
    ) as cfg:
        fitted(cfg, monkeypatch)
        rows = list(csv.DictReader(open(Path(cfg.paths.output_dir) / "csv" / "metrics.csv")))
    epochs_with_train_acc = sorted({int(r["epoch"]) for r in rows if r.get("train/acc")})
    assert epochs_with_train_acc == [0, 1]


def test_gd_says_it_steps_on_the_full_batch(cli):
    code, out, err = cli("train", "optimizer=gd", *QUICK)
    assert code == 0, err
    assert "full batch: one optimizer step per epoch on the whole training split" in out
    assert "global batch" not in out


def test_channels_last_trains_convolutions_in_nhwc_with_the_same_outputs(compose_cfg, monkeypatch):
    """channels_last=true: the convolution weights are channels-last through training (so the
    activations are), and the layout changes no number: a fresh model computes what NCHW does."""
    from bigmodel_cli.training.pieces import build_module, plain

    layouts = []

    def record(module):  # the last convolution: its input has several channels, so layouts differ
        conv = [m for m in module.backbone.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight
        layouts.append(conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous())

    with compose_cfg("train", ["channels_last=true", "test_after_fit=false", *QUICK]) as cfg:
        monkeypatch.setattr(
            "bigmodel_cli.lightning_modules.classifier.ClassificationModule.on_train_batch_start",
            lambda self, batch, batch_idx: record(self),
            raising=False,
        )
        fitted(cfg, monkeypatch)
        torch.manual_seed(0)
        nhwc = build_module(plain(cfg))
    assert layouts and all(layouts)
    with compose_cfg("train", ["channels_last=false"]) as cfg:
        torch.manual_seed(0)
        nchw = build_module(plain(cfg))
    assert nchw.backbone.features[4].weight.is_contiguous()
    x = torch.randn(4, 1, 8, 8)
    assert torch.allclose(nhwc.eval()(x), nchw.eval()(x), atol=1e-5)


def test_fast_precision_is_bf16_only_where_it_is_faster(monkeypatch):
    from bigmodel_cli.config.resolvers import fast_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert fast_precision("cpu") == "bf16-mixed" and fast_precision("auto") == "bf16-mixed"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert fast_precision("cpu") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert fast_precision("gpu") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert fast_precision("gpu") == "bf16-mixed" and fast_precision("auto") == "bf16-mixed"


@pytest.mark.parametrize("augmentation", ["none", "mixup"])
def test_bf16_true_trains_image_models_in_bf16(augmentation, compose_cfg, monkeypatch):
    """trainer.precision=bf16-true: weights and the normalised images (made after Lightning's own
    batch conversion, from uint8) are bf16, soft targets too; the model summary measures in bf16."""
    seen = record_batches(monkeypatch)
    overrides = ["trainer.precision=bf16-true", f"augmentation={augmentation}", "accelerator=cpu", *QUICK]
    with compose_cfg("train", overrides) as cfg:
        metrics, trainer, module = fitted(cfg, monkeypatch)
    assert all(p.dtype == torch.bfloat16 for p in module.backbone.parameters())
    assert {x.dtype for x, _ in seen} == {torch.bfloat16}
    if augmentation == "mixup":
        assert {y.dtype for _, y in seen} == {torch.bfloat16}
    assert torch.isfinite(torch.tensor(metrics["test/loss"]))
