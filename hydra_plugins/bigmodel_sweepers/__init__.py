"""bigmodel's Hydra sweeper plugins (Hydra only loads plugins from the `hydra_plugins` namespace)."""

from hydra_plugins.bigmodel_sweepers.optuna_sweeper import OptunaSweeper

__all__ = ["OptunaSweeper"]
