"""One classification LightningModule around any backbone (see modules/base.py for what it
shares with the other modules: config as the only hyper-parameter, optimizer, schedules)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics import MetricCollection

from bigmodel_cli.modules.metrics import RunningMean, classification_metrics
from bigmodel_cli.modules.base import BackboneModule
from bigmodel_cli.modules.optim import decayed_weights, is_decayed

SPLITS = ("train", "val", "test")


class ClassificationModule(BackboneModule):
    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        regularizer = config.get("regularizer") or {}
        self.l1 = float(regularizer.get("l1", 0.0))
        self.l2 = float(regularizer.get("l2", 0.0))
        self.penalize_norm_bias = bool(regularizer.get("penalize_norm_bias", False))
        self.weight_decay = float(regularizer.get("weight_decay", 0.0))
        self.full_batch = bool(config["optimizer"].get("full_batch", False))
        if regularizer.get("stochastic_depth") and "stochastic_depth" not in config["model"]:
            print(f"note: model {config['model']['_target_'].rsplit('.', 1)[-1]} has no residual blocks; "
                  f"regularizer.stochastic_depth is ignored")
        # Targets may be class indices or probabilities (mixup/cutmix): CrossEntropyLoss takes both.
        self.criterion = nn.CrossEntropyLoss(label_smoothing=float(regularizer.get("label_smoothing", 0.0)))
        num_classes = config["data"]["num_classes"]
        # Keys carry a suffix: a bare "train" would clash with nn.Module.train. Training metrics are
        # updated in batches of steps (BatchedUpdates), evaluation metrics every step.
        self.epoch_means = nn.ModuleDict({name: RunningMean() for name in ("loss", "ce_loss", "val_loss", "test_loss")})
        self.evaluation_logged: set[str] = set()
        self.metrics = nn.ModuleDict({f"{split}_metrics": classification_metrics(num_classes, split == "train")
                                      .clone(prefix=f"{split}/") for split in SPLITS})

    train_metrics_logged = -1  # the epoch whose training metrics were last registered with self.log

    def metrics_for(self, split: str) -> MetricCollection:
        return self.metrics[f"{split}_metrics"]

    def penalties(self) -> dict[str, torch.Tensor]:
        """Explicit L1/L2 terms on weights (norms and biases excluded unless
        regularizer.penalize_norm_bias), each logged on its own."""
        terms = {}
        if self.l1 or self.l2:
            weights = ([p for p in self.backbone.parameters() if p.requires_grad] if self.penalize_norm_bias
                       else decayed_weights(self.backbone))
            if self.l1:
                terms["l1_penalty"] = self.l1 * sum(w.abs().sum() for w in weights)
            if self.l2:
                terms["l2_penalty"] = self.l2 * sum(w.pow(2).sum() for w in weights)
        return terms

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.criterion(logits, y)
        self.epoch_means["ce_loss"].update(loss, len(x))
        for name, term in self.penalties().items():
            self.log(f"train/{name}", term, on_step=False, on_epoch=True, sync_dist=True)
            loss = loss + term
        self.epoch_means["loss"].update(loss, len(x))
        self.metrics_for("train").update(logits.detach(), hard_labels(y))
        self.log_training_metrics(loss)
        return loss * self.full_batch_weight(len(x)) if self.full_batch else loss

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
            self.log_dict({f"train/{name}": self.epoch_means[name] for name in ("loss", "ce_loss")},
                          on_step=False, on_epoch=True)
            self.log_dict(self.metrics_for("train"), on_step=False, on_epoch=True)
        connector = getattr(trainer, "_logger_connector", None)
        if connector is None or connector.should_update_logs:
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)

    def on_train_epoch_start(self) -> None:
        if self.full_batch:  # one optimizer step per epoch: accumulate over every batch of the epoch
            self.trainer.accumulate_grad_batches = max(1, int(self.trainer.num_training_batches))

    def full_batch_weight(self, batch_size: int) -> float:
        """Lightning averages the accumulated batches' losses; weighting each by its share of the
        epoch's samples makes the step use the exact full-batch mean gradient (a smaller last batch
        counts for less)."""
        loader = self.trainer.train_dataloader
        batches = self.trainer.num_training_batches
        samples = min(batches * loader.batch_size, len(loader.dataset))
        return batch_size * batches / samples

    def on_before_optimizer_step(self, optimizer) -> None:
        """regularizer.weight_decay: decoupled decay w <- w - lr * wd * w of weights (not norms or
        biases) at every optimizer step, whatever the optimizer (AdamW's rule, for any of them)."""
        if not self.weight_decay:
            return
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if is_decayed(p):
                        p.mul_(1.0 - group["lr"] * self.weight_decay)

    def _evaluate(self, batch, split: str) -> None:
        x, y = batch
        logits = self(x)
        self.epoch_means[f"{split}_loss"].update(self.criterion(logits, y), len(x))
        self.metrics_for(split).update(logits, hard_labels(y))
        if split not in self.evaluation_logged:  # once per evaluation run, as in training
            self.evaluation_logged.add(split)
            self.log(f"{split}/loss", self.epoch_means[f"{split}_loss"], on_step=False, on_epoch=True,
                     prog_bar=split == "val")
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
        return torch.softmax(self(x), dim=-1)


def hard_labels(targets: torch.Tensor) -> torch.Tensor:
    """Class indices from class indices or from soft targets (mixup/cutmix probabilities)."""
    return targets.argmax(dim=-1) if targets.ndim > 1 else targets
