"""The split -> DataLoader methods every DataModule here shares (datasets held in `self.datasets`)."""

from __future__ import annotations

from torch.utils.data import DataLoader


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
    ) -> None:
        """The settings every data module keeps alike: loading, seeding, split sizes, and the
        modality and task the runner reads (which models fit, which LightningModule trains)."""
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.modality, self.task = modality, task
        self.datasets: dict = {}  # split -> Dataset, filled by setup()

    def dataloader(self, split: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.dataloader(getattr(self, "predict_split", "test"))
