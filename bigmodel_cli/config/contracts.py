"""One contract per config group: what an option's YAML may contain, and the code that reads it.

Three shapes of group:
- a *target* group: an option is one `_target_` node; its other keys are the target's arguments,
  except `reserved` keys that bigmodel reads itself and removes before instantiating;
- a *named* group: an option maps names to `_target_` nodes (or null, to switch one off);
- a *keys* group: an option sets only the listed keys (and a `defaults` list).
tests/config/test_contracts.py holds every option in conf/ to its group's contract, so a key that
nothing reads (a typo, a leftover) fails the suite. A new group needs a contract here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from bigmodel_cli.errors import UserError, choices_text

# Keys of an optimizer/scheduler node that bigmodel reads (lightning_modules/optim.py).
OPTIMIZER_RESERVED = ("no_decay_norm_bias", "full_batch")
SCHEDULER_RESERVED = ("interval", "frequency", "monitor")


@dataclass(frozen=True)
class Contract:
    read_by: str
    shape: str  # "target", "named" or "keys"
    keys: tuple[str, ...] = ()  # keys groups: the keys an option may set
    reserved: tuple[str, ...] = ()  # target groups: keys bigmodel reads, not arguments
    package: str | None = None  # where the option's keys land when not under the group's name


CONTRACTS: dict[str, Contract] = {
    "data": Contract("training/assembly.build_datamodule -> the data module class", "target"),
    "model": Contract("lightning_modules/base.BackboneModule builds it as its backbone", "target"),
    "optimizer": Contract("lightning_modules/optim.build_optimizer", "target", reserved=OPTIMIZER_RESERVED),
    "scheduler": Contract("lightning_modules/optim.build_scheduler", "target", reserved=SCHEDULER_RESERVED),
    "regularizer": Contract(
        "lightning_modules/regularization.Regularization",
        "keys",
        keys=(
            "l1",
            "l2",
            "penalize_norm_bias",
            "label_smoothing",
            "weight_decay",
            "dropout",
            "stochastic_depth",
            "callbacks",
        ),
    ),
    "finetune": Contract(
        "callbacks/finetuning.Finetune (the freezing callback, and layer-wise lr in the optimizer)",
        "keys",
        keys=("mode", "unfreeze_at_epoch", "backbone_lr_factor", "layer_decay"),
    ),
    "compress": Contract(
        "callbacks/pruning.Compress (pruning while training)",
        "keys",
        keys=("method", "amount", "start_epoch", "end_epoch"),
    ),
    "augmentation": Contract("data/image.ImageDataModule (per sample) and data/batch_augment (per batch)", "named"),
    "trainer": Contract("training/assembly.build_trainer -> pytorch_lightning.Trainer", "target"),
    "accelerator": Contract(
        "training/assembly.build_trainer: Trainer arguments",
        "keys",
        package="trainer",
        keys=("accelerator", "devices", "strategy", "num_nodes", "precision", "sync_batchnorm"),
    ),
    "callbacks": Contract("training/assembly.build_trainer", "named"),
    "logger": Contract("training/assembly.build_trainer", "named"),
    "debug": Contract(
        "training/assembly.build_trainer: Trainer arguments",
        "keys",
        package="_global_",
        keys=("trainer", "test_after_fit"),
    ),
    "experiment": Contract(
        "Hydra: a whole experiment (group choices and values)",
        "keys",
        package="_global_",
        keys=(
            "data",
            "model",
            "optimizer",
            "scheduler",
            "regularizer",
            "finetune",
            "compress",
            "augmentation",
            "trainer",
            "callbacks",
            "logger",
            "seed",
            "objective",
            "objective_mode",
            "channels_last",
        ),
    ),
    "launcher": Contract(
        "Hydra's launcher plugins (hydra.launcher); submitit's also set trainer devices",
        "keys",
        package="_global_",
        keys=("hydra", "trainer"),
    ),
    "hparams_search": Contract(
        "hydra_plugins/bigmodel_sweepers (hydra.sweeper) and search/study.SearchSettings (hparams_search)",
        "keys",
        package="_global_",
        keys=("hydra", "hparams_search"),
    ),
    "paths": Contract(
        "every group, through ${paths.output_dir} and ${paths.data_dir}", "keys", keys=("output_dir", "data_dir")
    ),
    "hydra": Contract(
        "Hydra: run and sweep directories, the run.json recorder",
        "keys",
        keys=("run", "sweep", "job", "callbacks", "job_logging"),
    ),
}


def keys_group_settings(config, group: str, settings_class) -> dict:
    """A keys group's node from a run config (a plain dict or a DictConfig), as keyword arguments of
    the dataclass that reads it; a key that is not one of its fields is one clear line."""
    node = dict(config.get(group) or {})
    known = [f.name for f in fields(settings_class)]
    unknown = [key for key in node if key not in known]
    if unknown:
        raise UserError(
            f"{group}.{unknown[0]} is not a {group} setting; valid keys: {choices_text(known)} "
            f"(fix: pick {group} options from conf/{group})"
        )
    return node
