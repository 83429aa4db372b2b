"""The split -> DataLoader methods every DataModule here shares (datasets held in `self.datasets`).

Training, validation and test loaders are `ResumableDataLoader`s over an `EpochSampler`: the order
of each epoch is a permutation seeded with (seed, epoch), drawn from a generator of its own (never
the global one, which the training state callback restores on resume), each rank taking its
shard as DistributedSampler does; and the loader keeps its place in the epoch through Lightning's
Stateful protocol, so a run resumed from a mid-epoch checkpoint continues with the next batch.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, DistributedSampler

from bigmodel_cli.data.splits import check_folds


class EpochSampler(DistributedSampler):
    """DistributedSampler's seeded per-epoch order (one replica when not distributed), which can
    start part-way through an epoch: `skip` indices, once."""

    def __init__(self, dataset, num_replicas: int, rank: int, shuffle: bool, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.skip = 0

    def __iter__(self):
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0
        return iter(indices[skip:])


class ResumableDataLoader(DataLoader):
    """A DataLoader that knows how many batches of the current epoch it has handed out."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches_served = 0
        self._resume_at: tuple[int, int] | None = None

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches_served": self.batches_served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_at = (int(state["epoch"]), int(state["batches_served"]))

    def __iter__(self):
        # Counted where the batches are consumed, so workers' read-ahead does not move the position.
        first = 0
        if self._resume_at is not None and self._resume_at[0] == self.sampler.epoch:
            first = self._resume_at[1]
            self.sampler.skip = first * self.batch_size
        self._resume_at = None
        if self.generator is not None:  # workers' seeds: a function of (seed, epoch), not of how often iter ran
            self.generator.manual_seed(self.sampler.seed * 1_000_003 + self.sampler.epoch)
        self.batches_served = first
        for batch in super().__iter__():
            self.batches_served += 1
            yield batch

    def __len__(self) -> int:
        # The whole epoch's length, also while resuming part-way through it (Lightning counts on).
        return -(-len(self.sampler) // self.batch_size)


class SplitLoaders:
    """Mixin for a LightningDataModule with `datasets` (split -> Dataset), `batch_size`,
    `num_workers` and an optional `collate_fn`; `predict_split` picks the split to predict on."""

    collate_fn = None

    def keep_settings(
        self,
        batch_size: int,
        num_workers: int,
        seed: int,
        val_fraction: float,
        test_fraction: float,
        modality: str,
        task: str,
        folds: int | None = None,
        fold: int = 0,
    ) -> None:
        """The settings every data module keeps alike: loading, seeding, split sizes (or the folds
        of cross-validation: with `folds`, fold `fold` of the training pool validates and
        val_fraction is not used), and the modality and task the runner reads (which models fit,
        which LightningModule trains)."""
        check_folds(folds, fold)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.folds, self.fold = folds, fold
        self.modality, self.task = modality, task
        self.datasets: dict = {}  # split -> Dataset, filled by setup()

    def dataloader(self, split: str, shuffle: bool = False) -> DataLoader:
        settings = dict(
            batch_size=self.batch_size,
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.predicting or trainer.overfit_batches:
            # Predictions keep the split's order; overfit_batches has Lightning re-sample the loader.
            return DataLoader(self.datasets[split], shuffle=shuffle, **settings)
        sampler = EpochSampler(self.datasets[split], trainer.world_size, trainer.global_rank, shuffle, self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        return ResumableDataLoader(self.datasets[split], sampler=sampler, generator=generator, **settings)

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.dataloader(getattr(self, "predict_split", "test"))
