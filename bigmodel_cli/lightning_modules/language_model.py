"""The language-modelling LightningModule: next-token cross-entropy around a causal backbone (GPT).

Like the classifier, it is built from the run's resolved config (plain containers) and takes the
shared regularizers, weight decay groups and full-batch gd from lightning_modules/base.py. It logs loss,
perplexity and next-token accuracy (`acc`, so the default objective `val/acc` works for every
task), and stores the data's tokenizer in each checkpoint as plain containers so `bigmodel generate`
can encode prompts and decode samples.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from bigmodel_cli.callbacks.finetuning import Finetune
from bigmodel_cli.lightning_modules.base import BackboneModule
from bigmodel_cli.lightning_modules.regularization import Regularization

TOKENIZER_KEY = "tokenizer"


class LanguageModelModule(BackboneModule):
    def __init__(self, config: dict[str, Any], regularization: Regularization, finetune: Finetune):
        super().__init__(config, regularization, finetune)
        self.tokenizer_state: dict | None = None

    def _step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        # Label smoothing shapes the training loss only: evaluation reports the plain cross-entropy,
        # so that perplexity means what it says.
        criterion = self.criterion if split == "train" else F.cross_entropy
        loss = criterion(logits.flatten(0, 1), y.flatten())
        on_step = split == "train"
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=not on_step)
        self.log(f"{split}/acc", (logits.argmax(-1) == y).float().mean(), on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.add_penalties(self._step(batch, "train"))
        return self.optimizer_loss(loss, len(batch[0]))

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def _log_perplexity(self, split: str) -> None:
        loss = self.trainer.callback_metrics.get(f"{split}/loss")
        if loss is not None:
            self.log(f"{split}/ppl", math.exp(min(float(loss), 50.0)))

    def on_validation_epoch_end(self) -> None:
        self._log_perplexity("val")

    def on_test_epoch_end(self) -> None:
        self._log_perplexity("test")

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return torch.softmax(self(x)[:, -1], dim=-1)  # next-token distribution after each block

    def optimizer_config(self) -> dict[str, Any]:
        # GPT-2 weight-decay groups: matrices and embeddings decay, biases and norm weights do not.
        return {**self.config["optimizer"], "no_decay_norm_bias": True}

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        tokenizer = getattr(datamodule, "tokenizer", None)
        if tokenizer is not None:
            self.tokenizer_state = tokenizer.state()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.tokenizer_state is not None:
            checkpoint[TOKENIZER_KEY] = self.tokenizer_state

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.tokenizer_state = checkpoint.get(TOKENIZER_KEY, self.tokenizer_state)
