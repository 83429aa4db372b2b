"""The Lightning side of a run, built from its config: the DataModule, the LightningModule and the
Trainer (assembly.py), and the strategies conf/accelerator names that YAML alone cannot hold
(strategies.py)."""
