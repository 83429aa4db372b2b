"""One classification LightningModule around any backbone (see lightning_modules/base.py for what it
shares with the other modules: config as the only hyper-parameter, optimizer, schedules,
regularizers and full-batch gd)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics import MetricCollection

from bigmodel_cli.callbacks.finetuning import Finetune
from bigmodel_cli.lightning_modules.base import BackboneModule
from bigmodel_cli.lightning_modules.metrics import RunningMean, classification_metrics
from bigmodel_cli.lightning_modules.regularization import Regularization

SPLITS = ("train", "val", "test")


class ClassificationModule(BackboneModule):
    def __init__(self, config: dict[str, Any], regularization: Regularization, finetune: Finetune):
        super().__init__(config, regularization, finetune)
        num_classes = config["data"]["num_classes"]
        # Keys carry a suffix: a bare "train" would clash with nn.Module.train. Training metrics are
        # updated in batches of steps (BatchedCollection), evaluation metrics every step.
        self.epoch_means = nn.ModuleDict({name: RunningMean() for name in ("loss", "ce_loss", "val_loss", "test_loss")})
        self.evaluation_logged: set[str] = set()
        self.metrics = nn.ModuleDict(
            {
                f"{split}_metrics": classification_metrics(num_classes, split == "train", prefix=f"{split}/")
                for split in SPLITS
            }
        )

    train_metrics_logged = -1  # the epoch whose training metrics were last registered with self.log
    distiller = None  # a Distiller when distill.teacher is set (training/distill.py)
    views = None  # a ViewAverage when tta=<option> asks for test-time augmentation (training/pieces.py)

    def metrics_for(self, split: str) -> MetricCollection:
        return self.metrics[f"{split}_metrics"]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.criterion(logits, y)
        self.epoch_means["ce_loss"].update(loss, len(x))
        if self.distiller is not None:
            loss = self.distiller.blend(loss, logits, x)
        loss = self.add_penalties(loss)
        self.epoch_means["loss"].update(loss, len(x))
        self.metrics_for("train").update(logits.detach(), hard_labels(y))
        self.log_training_metrics(loss)
        return self.optimizer_loss(loss, len(x))

    def log_training_metrics(self, loss: torch.Tensor) -> None:
        """Epoch values are metric objects (the loss means and the classification metrics):
        Lightning computes (and syncs) them at epoch end in the same order on every rank. Computing
        them in on_train_epoch_end deadlocked DDP, because the progress bar reduces epoch metrics
        on rank zero only, before that hook runs. Registering them once per epoch is enough (they
        accumulate every update): a self.log call costs about 0.3 ms, too dear for every step.
        The step loss (progress bar, logger) is logged only on the steps the logger writes
        (trainer.log_every_n_steps): reading it each step would also cost a host sync."""
        trainer = self._trainer
        if trainer is None:  # a bare training_step, outside fit (e.g. an overfit check)
            return
        if self.train_metrics_logged != trainer.current_epoch:
            self.train_metrics_logged = trainer.current_epoch
            self.log_dict(
                {f"train/{name}": self.epoch_means[name] for name in ("loss", "ce_loss")}, on_step=False, on_epoch=True
            )
            self.log_dict(self.metrics_for("train"), on_step=False, on_epoch=True)
        connector = getattr(trainer, "_logger_connector", None)
        if connector is None or connector.should_update_logs:
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)

    def on_train_start(self) -> None:
        # A new fit (after the lr finder's own short fit, say) registers its epoch metrics afresh.
        self.train_metrics_logged = -1

    def evaluation_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of an evaluation batch: over the test-time views (tta=), except in the
        validation inside a fit, which picks checkpoints on the plain images."""
        trainer = self._trainer
        if self.views is None or (trainer is not None and trainer.state.fn == "fit"):
            return self(x)
        return self.views(self, x)

    def _evaluate(self, batch, split: str) -> None:
        x, y = batch
        logits = self.evaluation_logits(x)
        self.epoch_means[f"{split}_loss"].update(self.criterion(logits, y), len(x))
        self.metrics_for(split).update(logits, hard_labels(y))
        if split not in self.evaluation_logged:  # once per evaluation run, as in training
            self.evaluation_logged.add(split)
            self.log(
                f"{split}/loss",
                self.epoch_means[f"{split}_loss"],
                on_step=False,
                on_epoch=True,
                prog_bar=split == "val",
            )
            self.log_dict(self.metrics_for(split), on_step=False, on_epoch=True, prog_bar=split == "val")

    def on_validation_epoch_start(self) -> None:
        self.evaluation_logged.discard("val")

    def on_test_epoch_start(self) -> None:
        self.evaluation_logged.discard("test")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return torch.softmax(self.evaluation_logits(x), dim=-1)


def hard_labels(targets: torch.Tensor) -> torch.Tensor:
    """Class indices from class indices or from soft targets (mixup/cutmix probabilities)."""
    return targets.argmax(dim=-1) if targets.ndim > 1 else targets
