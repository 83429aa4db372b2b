"""regularizer=ema: Lightning's exponential moving average with an update that pickles.
regularizer=swa: stochastic weight averaging (Izmailov et al., 2018) on Lightning's WeightAveraging.

The average is the equal-weight mean of the weights at the end of every epoch from `start_epoch`
on. Averaged weights do not match the batch-norm statistics of any one of them, so after each
update the average's statistics are computed afresh on the training data (a forward pass over the
epoch's training batches, `trainer.limit_train_batches` honoured), as SWA prescribes. Validation,
the best checkpoint and the test then see the average with its own statistics; before the first
update they see the weights being trained (Lightning's callback would show the initial ones).
Checkpoints hold the average as `state_dict` and the trained weights as `current_model_state`, so
a resumed run goes on averaging where it stopped.
"""

from __future__ import annotations

from itertools import islice

import torch
from pytorch_lightning.callbacks.weight_averaging import EMAWeightAveraging, WeightAveraging
from torch.nn.modules.batchnorm import _BatchNorm


class EMAUpdate:
    """torch's EMA step, decay * average + (1 - decay) * weights, as an object: torch's
    get_ema_avg_fn returns a closure, which accelerator=ddp_spawn cannot pickle for its processes."""

    def __init__(self, decay: float):
        self.decay = decay

    @torch.no_grad()
    def __call__(self, averaged: torch.Tensor, current: torch.Tensor, num_averaged) -> torch.Tensor:
        return self.decay * averaged + (1 - self.decay) * current


class ExponentialMovingAverage(EMAWeightAveraging):
    def __init__(self, decay: float = 0.999, **kwargs):
        super().__init__(decay=decay, **kwargs)
        self._kwargs["avg_fn"] = EMAUpdate(decay)


class StochasticWeightAveraging(WeightAveraging):
    def __init__(self, start_epoch: int):
        super().__init__(use_buffers=True)  # no avg_fn: AveragedModel's equal-weight mean
        self.start_epoch = int(start_epoch)
        self._swapped = False

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return epoch_idx is not None and epoch_idx >= self.start_epoch

    def averaged(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        before = self._latest_update_epoch
        super().on_train_epoch_end(trainer, pl_module)
        if self._latest_update_epoch != before:
            recompute_batch_norm(self._average_model.module, trainer, pl_module)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._swapped = self.averaged()
        if self._swapped:
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._swapped:
            self._swap_models(pl_module)
            self._swapped = False

    def on_train_end(self, trainer, pl_module) -> None:
        if self.averaged():
            self._copy_average_to_current(pl_module)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if "current_model_state" in checkpoint and not self.averaged():
            checkpoint["state_dict"] = checkpoint["current_model_state"]  # nothing averaged yet


def recompute_batch_norm(model: torch.nn.Module, trainer, pl_module) -> None:
    """The batch-norm running statistics of `model` as the mean over the training batches of an
    epoch (momentum None: a cumulative average), in train mode without gradients. Each batch goes
    through the run's own transfer hooks first (to the device, scaled and augmented as in training)."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    device = next(model.parameters()).device
    training = model.training
    model.train()
    with torch.no_grad():
        for batch in islice(trainer.datamodule.train_dataloader(), int(trainer.num_training_batches)):
            batch = pl_module._apply_batch_transfer_handler(batch, device=device)
            model(batch[0] if isinstance(batch, (list, tuple)) else batch)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(training)
