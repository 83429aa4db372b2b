"""A run's keys groups, each read once into the frozen dataclass of the code that acts on it.

regularizer -> lightning_modules/regularization.Regularization, finetune ->
callbacks/finetuning.Finetune, compress -> callbacks/pruning.Compress, hparams_search ->
search/study.SearchSettings, tta -> lightning_modules/test_time.ViewSettings, and the top-level
compile node -> lightning_modules/compiling.CompileSettings. Each reader's defaults are its group's
YAML (config/contracts.keys_group_settings); the pieces of a run (training/pieces.py) and the
LightningModule receive these objects instead of parsing the config again.
"""

from __future__ import annotations

from dataclasses import dataclass

from bigmodel_cli.callbacks.finetuning import Finetune
from bigmodel_cli.callbacks.pruning import Compress
from bigmodel_cli.lightning_modules.compiling import CompileSettings
from bigmodel_cli.lightning_modules.regularization import Regularization
from bigmodel_cli.lightning_modules.test_time import ViewSettings
from bigmodel_cli.search.study import SearchSettings


@dataclass(frozen=True)
class RunSettings:
    regularization: Regularization
    finetune: Finetune
    compress: Compress
    search: SearchSettings | None  # a job of an Optuna sweep only
    compile: CompileSettings
    views: ViewSettings

    @classmethod
    def read(cls, config) -> RunSettings:
        """From a run config (a DictConfig, or the plain dict a checkpoint holds)."""
        return cls(
            regularization=Regularization.from_config(config),
            finetune=Finetune.from_config(config),
            compress=Compress.from_config(config),
            search=SearchSettings.from_config(config) if config.get("hparams_search") else None,
            compile=CompileSettings.from_config(config),
            views=ViewSettings.from_config(config),
        )
