"""checkpoints/last.ckpt: the newest state of the run, the one `resume=` continues from.

A checkpoint callback of its own, apart from the best one: Lightning's `save_last` on the best
checkpoint only writes when a best is saved, so a run whose objective stalls would resume epochs
back. This one writes at the end of every epoch (after validation, with every callback's state
updated; at the end of its training when it does not validate, as under
`trainer.check_val_every_n_epoch=10`) and, with `every_n_steps`, also every that many optimizer
steps within an epoch.
"""

from __future__ import annotations

from pathlib import Path

from pytorch_lightning.callbacks import ModelCheckpoint


class LatestCheckpoint(ModelCheckpoint):
    def __init__(self, dirpath: str, every_n_steps: int | None = None):
        super().__init__(
            dirpath=dirpath,
            filename="last",
            monitor=None,
            save_top_k=1,
            save_last=False,
            every_n_epochs=1,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        )
        self.every_n_steps = int(every_n_steps) if every_n_steps else None  # range: config/contracts.py

    @property
    def path(self) -> str:
        return str(Path(self.dirpath) / "last.ckpt")

    @property
    def state_key(self) -> str:
        return "LatestCheckpoint"

    def _should_save_on_train_epoch_end(self, trainer) -> bool:
        # Lightning's rule saves after validation whenever check_val_every_n_epoch != 1, so the
        # epochs between validations would end unsaved and a kill would lose them all.
        every = trainer.check_val_every_n_epoch
        validates = trainer.enable_validation and (every is None or (trainer.current_epoch + 1) % every == 0)
        return not validates or super()._should_save_on_train_epoch_end(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step  # under gradient accumulation it stays put between optimizer steps
        if self.every_n_steps and step and step % self.every_n_steps == 0 and step != self._last_global_step_saved:
            if not ends_epoch(trainer):
                self.save_now(trainer)

    def save_now(self, trainer) -> None:
        """Write last.ckpt now (end of a batch): the every_n_steps save, and SaveOnSignal's."""
        self.best_model_path = self.path
        self._save_checkpoint(trainer, self.path)


def ends_epoch(trainer) -> bool:
    """The batch that just ended is its epoch's last. A checkpoint of the state between it and the
    epoch's validation cannot be resumed exactly (Lightning restarts such a checkpoint at the next
    epoch, skipping the epoch's end), so mid-epoch saves wait: the epoch-end save follows anyway."""
    return bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)
