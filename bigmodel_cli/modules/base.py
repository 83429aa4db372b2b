"""What every bigmodel LightningModule shares.

Each is built from the run's resolved config (a plain dict), which is also its only
hyper-parameter: checkpoints therefore hold plain containers and load with
torch.load(weights_only=True). The backbone comes from config["model"], the optimizer and schedule
from their groups.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from bigmodel_cli.errors import UserError
from bigmodel_cli.instantiate import instantiate
from bigmodel_cli.modules.optim import build_optimizer, build_scheduler


class BackboneModule(pl.LightningModule):
    full_batch = False  # optimizer=gd: one step per epoch (schedules then count epochs)

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = config
        self.allow = tuple(config.get("allow_targets") or ())
        self.backbone = instantiate(config["model"], self.allow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def optimizer_config(self) -> dict[str, Any]:
        return self.config["optimizer"]

    def configure_optimizers(self):
        optimizer = build_optimizer(self, self.optimizer_config(), self.allow)
        scheduler = build_scheduler(optimizer, self.config.get("scheduler"), self.allow, self.run_length)
        return {"optimizer": optimizer, "lr_scheduler": scheduler} if scheduler else optimizer

    def run_length(self, interval: str) -> int:
        """Optimizer steps (interval=step) or epochs in the whole run, for schedules over the run."""
        trainer = self.trainer
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        if interval == "epoch" or self.full_batch:
            if epochs is None:
                raise UserError("a schedule over the whole run needs trainer.max_epochs; fix: set "
                                "trainer.max_epochs=<n> or give the scheduler's length explicitly")
            return epochs
        steps = trainer.estimated_stepping_batches
        if steps == float("inf"):
            raise UserError("a schedule over the whole run needs trainer.max_epochs or trainer.max_steps; fix: "
                            "set one of them, or give the scheduler's length explicitly")
        return int(steps)
