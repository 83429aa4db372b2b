"""bigmodel's Hydra sweeper plugins (Hydra only loads plugins from the `hydra_plugins` namespace)."""

from hydra_plugins.bigmodel_sweepers.resumable_optuna import ResumableOptunaSweeper

__all__ = ["ResumableOptunaSweeper"]
