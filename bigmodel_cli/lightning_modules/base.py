"""What every bigmodel LightningModule shares.

Each is built from the run's resolved config (a plain dict), which is also its only
hyper-parameter: checkpoints therefore hold plain containers and load with
torch.load(weights_only=True). The keys groups it acts on come read already (training/settings.py):
the regularizers and the finetune settings. The backbone comes from config["model"], the optimizer and schedule
from their groups. The training techniques that do not depend on the task live here, so every task
honours them: the regularizers (read by lightning_modules/regularization.py: the loss criterion with label
smoothing, the explicit L1/L2 penalties, decoupled weight decay) and full-batch gradient descent
(optimizer=gd).
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from bigmodel_cli.callbacks.finetuning import Finetune
from bigmodel_cli.config.instantiate import instantiate
from bigmodel_cli.errors import UserError
from bigmodel_cli.lightning_modules.compiling import recompile
from bigmodel_cli.lightning_modules.optim import build_optimizer, build_scheduler, decayed_names, decayed_parameters
from bigmodel_cli.lightning_modules.regularization import Regularization


class BackboneModule(pl.LightningModule):
    def __init__(self, config: dict[str, Any], regularization: Regularization, finetune: Finetune):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = config
        self.allow = tuple(config.get("allow_targets") or ())
        self.backbone = instantiate(config["model"], self.allow)
        if config.get("channels_last"):  # 4-D weights only: convolutions then run in NHWC
            self.backbone.to(memory_format=torch.channels_last)
        # Which parameters decay, fixed now: a strategy may wrap and flatten them later (FSDP).
        self.decayed = decayed_names(self.backbone, prefix="backbone.")
        self.regularization, self.finetune = regularization, finetune
        for note in self.regularization.notes(config["model"]):
            print(note)
        # optimizer=gd: one step per epoch on the full-batch gradient (schedules then count epochs).
        self.full_batch = bool(config["optimizer"].get("full_batch", False))
        self.criterion = self.regularization.criterion()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    # compile=true: the settings the backbone was compiled with (lightning_modules/compiling.py).
    compiled = None

    def setup(self, stage: str) -> None:
        recompile(self)  # a DDP spawn rank receives the module pickled, without its compiled call

    def optimizer_config(self) -> dict[str, Any]:
        return self.config["optimizer"]

    def set_learning_rate(self, lr: float) -> None:
        """Train with this lr (the learning-rate finder's); the checkpoint's hyper-parameters hold it."""
        self.config["optimizer"]["lr"] = lr

    def configure_optimizers(self):
        self._decayed_weights = None  # the strategy has wrapped the model by now: find them again
        lr_scales = self.finetune.lr_scales(self.backbone)
        optimizer = build_optimizer(self, self.optimizer_config(), self.allow, self.decayed, lr_scales)
        steps_end_run = self._trainer is not None and self._trainer.max_steps not in (None, -1)
        scheduler = build_scheduler(optimizer, self.config.get("scheduler"), self.allow, self.run_length, steps_end_run)
        return {"optimizer": optimizer, "lr_scheduler": scheduler} if scheduler else optimizer

    def run_length(self, interval: str) -> int:
        """Optimizer steps (interval=step) or epochs in the whole run, for schedules over the run."""
        trainer = self.trainer
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        if interval == "epoch" or self.full_batch:
            if epochs is None:
                raise UserError(
                    "a schedule over the whole run needs trainer.max_epochs; fix: set "
                    "trainer.max_epochs=<n> or give the scheduler's length explicitly"
                )
            return epochs
        steps = trainer.estimated_stepping_batches
        if steps == float("inf"):
            raise UserError(
                "a schedule over the whole run needs trainer.max_epochs or trainer.max_steps; fix: "
                "set one of them, or give the scheduler's length explicitly"
            )
        return int(steps)

    # --- regularizers -------------------------------------------------------------------------

    _decayed_weights: list[nn.Parameter] | None = None

    def decayed_weights(self) -> list[nn.Parameter]:
        """The parameters named in self.decayed, as the (possibly wrapped) model holds them now;
        looked up once per fit, not on every step."""
        if self._decayed_weights is None:
            self._decayed_weights = decayed_parameters(self.named_parameters(), self.decayed)
        return self._decayed_weights

    def forget_decayed_weights(self) -> None:
        """Look the decayed weights up again (parameters were unfrozen: finetune=gradual)."""
        self._decayed_weights = None

    def penalized_weights(self) -> list[nn.Parameter]:
        """What L1/L2 act on: the decayed weights (norms and biases too with penalize_norm_bias).
        Under FSDP these are this rank's shards, whose penalties add up to the whole model's."""
        if self.regularization.penalize_norm_bias:
            return [p for p in self.backbone.parameters() if p.requires_grad]
        return self.decayed_weights()

    def add_penalties(self, loss: torch.Tensor) -> torch.Tensor:
        """The training loss with the explicit L1/L2 terms, each logged as train/<name>."""
        regularization = self.regularization
        if not (regularization.l1 or regularization.l2):
            return loss
        for name, term in regularization.penalties(self.penalized_weights()).items():
            self.log(f"train/{name}", term, on_step=False, on_epoch=True, sync_dist=True)
            loss = loss + term
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        """regularizer.weight_decay: decoupled decay at every optimizer step, whatever the optimizer."""
        self.regularization.decay(optimizer, self.decayed_weights())

    # --- full-batch gradient descent (optimizer=gd) -------------------------------------------

    def on_train_start(self) -> None:
        self.on_train_epoch_start()  # a run resumed mid-epoch gets no on_train_epoch_start

    def on_train_epoch_start(self) -> None:
        if self.full_batch:  # one optimizer step per epoch: accumulate over every batch of the epoch
            self.trainer.accumulate_grad_batches = max(1, int(self.trainer.num_training_batches))

    def optimizer_loss(self, loss: torch.Tensor, batch_size: int) -> torch.Tensor:
        """The loss backward runs on: weighted by the batch's share of the epoch under gd."""
        return loss * self.full_batch_weight(batch_size) if self.full_batch else loss

    def full_batch_weight(self, batch_size: int) -> float:
        """Lightning averages the accumulated batches' losses; weighting each by its share of the
        samples this rank sees in the epoch makes the step use the exact full-batch mean gradient
        (a smaller last batch counts for less). Under DDP each rank's share is its shard."""
        loader = self.trainer.train_dataloader
        batches = self.trainer.num_training_batches
        samples = min(batches * loader.batch_size, samples_per_epoch(loader))
        return batch_size * batches / samples


def samples_per_epoch(loader) -> int:
    """How many samples one rank draws from a training loader in an epoch."""
    per_rank = getattr(loader, "samples_per_rank", None)  # bigmodel's TensorLoader
    if per_rank is not None:
        return int(per_rank)
    sampler = getattr(loader, "sampler", None)  # DistributedSampler under DDP: this rank's shard
    return len(sampler) if sampler is not None else len(loader.dataset)
