"""LightningModules: loss, metrics, optimizer/scheduler and regularizer penalties around a backbone."""
