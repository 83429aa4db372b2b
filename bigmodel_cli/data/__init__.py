"""LightningDataModules per modality, and the dataset readers they use."""
