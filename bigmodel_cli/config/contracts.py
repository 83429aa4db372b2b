"""One contract per config group: what an option's YAML may contain, and the code that reads it.

Three shapes of group:
- a *target* group: an option is one `_target_` node; its other keys are the target's arguments,
  except `reserved` keys that bigmodel reads itself and removes before instantiating;
- a *named* group: an option maps names to `_target_` nodes (or null, to switch one off);
- a *keys* group: an option sets only the listed keys (and a `defaults` list).
`read_by` names the code that reads a group's options (`module:name`, resolved by
tests/config/test_contracts.py); `bigmodel <subcommand> --help group=option` prints it with the file.
tests/config/test_contracts.py holds every option in conf/ to its group's contract, so a key that
nothing reads (a typo, a leftover) fails the suite. A new group needs a contract here.

A contract also says which numbers its keys may hold (`ranges`, keys relative to the node the
options land in); config/validation checks every number of a run against them before anything is
built, and a value that is not a number where a range is declared is a type error even when the
YAML default is null. tests/config/test_bad_values.py tries 0, a negative number and a word on
every numeric key in conf/, so a new key without its range is found there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cache

from bigmodel_cli.errors import UserError, choices_text

# Keys of an optimizer/scheduler node that bigmodel reads (lightning_modules/optim.py).
OPTIMIZER_RESERVED = ("no_decay_norm_bias", "full_batch")
SCHEDULER_RESERVED = ("interval", "frequency", "monitor")


@dataclass(frozen=True)
class Rule:
    """What numbers a key may hold: a test, and the words that say so in an error line."""

    test: Callable[[float], bool]
    valid: str
    numbers_only: bool = True  # False: other values (device lists, "0,1") are the reader's to check


POSITIVE = Rule(lambda v: v > 0, "a positive number")
NON_NEGATIVE = Rule(lambda v: v >= 0, "0 or more")
AT_LEAST_ONE = Rule(lambda v: v >= 1, "1 or more")
PROBABILITY = Rule(lambda v: 0 <= v < 1, "a probability in [0, 1), e.g. 0.1")
UNIT = Rule(lambda v: 0 <= v <= 1, "in [0, 1]")
OPEN_UNIT = Rule(lambda v: 0 < v < 1, "strictly between 0 and 1, e.g. 0.1")
SIZES = {  # a model's widths and counts: one at least (a zero-width layer cannot train)
    f"model.{key}": AT_LEAST_ONE
    for key in (
        "dim",
        "depth",
        "heads",
        "hidden",
        "channels",
        "width",
        "layers",
        "embed_dim",
        "patch_size",
        "convs_per_stage",
        "steps",
        "pool_every",
        "num_classes",
        "in_channels",
        "image_size",
        "vocab_size",
        "max_length",
        "block_size",
        "kernel_sizes",
    )
}


@dataclass(frozen=True)
class Contract:
    read_by: tuple[str, ...]  # the code that reads the group's options, as `module:name` references
    shape: str  # "target", "named" or "keys"
    keys: tuple[str, ...] = ()  # keys groups: the keys an option may set
    reserved: tuple[str, ...] = ()  # target groups: keys bigmodel reads, not arguments
    package: str | None = None  # where the option's keys land when not under the group's name
    ranges: tuple[tuple[str, Rule], ...] = ()  # (key pattern under the node, rule)


CONTRACTS: dict[str, Contract] = {
    "data": Contract(
        ("bigmodel_cli.training.pieces:build_datamodule",),
        "target",
        ranges=(
            ("batch_size", AT_LEAST_ONE),
            ("val_fraction", OPEN_UNIT),
            ("test_fraction", OPEN_UNIT),
            ("train_fraction", Rule(lambda v: 0 < v <= 1, "in (0, 1], e.g. 0.1")),
            ("num_workers", NON_NEGATIVE),
            ("split_seed", NON_NEGATIVE),
            ("folds", Rule(lambda v: v >= 2, "2 or more, e.g. data.folds=5")),
            ("fold", NON_NEGATIVE),
            ("num_classes", Rule(lambda v: v >= 2, "2 or more")),
            ("in_channels", AT_LEAST_ONE),
            ("image_size", AT_LEAST_ONE),
            ("vocab_size", Rule(lambda v: v >= 2, "2 or more")),
            ("min_freq", AT_LEAST_ONE),
            ("max_length", AT_LEAST_ONE),
            ("block_size", AT_LEAST_ONE),
            ("min_quotations", AT_LEAST_ONE),
            ("passage_sentences", AT_LEAST_ONE),
            ("source.classes", Rule(lambda v: v >= 2, "2 or more")),
            ("source.train_samples", AT_LEAST_ONE),
            ("source.test_samples", AT_LEAST_ONE),
            ("source.noise", NON_NEGATIVE),
        ),
    ),
    "model": Contract(
        ("bigmodel_cli.lightning_modules.base:BackboneModule",),
        "target",
        ranges=(
            *((key.removeprefix("model."), rule) for key, rule in SIZES.items()),
            ("mlp_ratio", POSITIVE),
            ("bigram_buckets", NON_NEGATIVE),
        ),
    ),
    "optimizer": Contract(
        ("bigmodel_cli.lightning_modules.optim:build_optimizer",),
        "target",
        reserved=OPTIMIZER_RESERVED,
        ranges=(
            ("lr", Rule(lambda v: v > 0, "a positive number, e.g. optimizer.lr=1e-3")),
            ("weight_decay", NON_NEGATIVE),
            ("momentum", Rule(lambda v: 0 <= v < 1, "in [0, 1), e.g. 0.9")),
            ("eps", NON_NEGATIVE),
            ("lr_decay", NON_NEGATIVE),
            ("alpha", NON_NEGATIVE),
            ("dampening", NON_NEGATIVE),
        ),
    ),
    "scheduler": Contract(
        ("bigmodel_cli.lightning_modules.optim:build_scheduler",),
        "target",
        reserved=SCHEDULER_RESERVED,
        ranges=(
            ("gamma", POSITIVE),
            ("eta_min", NON_NEGATIVE),
            ("min_lr", NON_NEGATIVE),
            ("min_lr_ratio", UNIT),
            ("pct_start", OPEN_UNIT),
            ("div_factor", POSITIVE),
            ("final_div_factor", POSITIVE),
            ("factor", OPEN_UNIT),
            ("patience", NON_NEGATIVE),
            ("threshold", NON_NEGATIVE),
            ("frequency", AT_LEAST_ONE),
            ("step_size", AT_LEAST_ONE),
            ("T_max", AT_LEAST_ONE),
            ("total_steps", AT_LEAST_ONE),
            ("warmup_steps", NON_NEGATIVE),
            ("warmup_fraction", PROBABILITY),
        ),
    ),
    "regularizer": Contract(
        ("bigmodel_cli.lightning_modules.regularization:Regularization",),
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
        ranges=(
            ("l1", NON_NEGATIVE),
            ("l2", NON_NEGATIVE),
            ("label_smoothing", Rule(lambda v: 0 <= v < 1, "in [0, 1)")),
            ("weight_decay", NON_NEGATIVE),
            ("stochastic_depth", PROBABILITY),
            ("callbacks.ema.decay", Rule(lambda v: 0 < v < 1, "in (0, 1), e.g. 0.99")),
            ("callbacks.ema.update_every_n_steps", AT_LEAST_ONE),
            ("callbacks.early_stopping.patience", NON_NEGATIVE),
            ("callbacks.swa.start_epoch", NON_NEGATIVE),
            ("callbacks.early_stopping.min_delta", NON_NEGATIVE),
        ),
    ),
    "finetune": Contract(
        ("bigmodel_cli.callbacks.finetuning:Finetune",),
        "keys",
        keys=("mode", "unfreeze_at_epoch", "backbone_lr_factor", "layer_decay"),
        ranges=(
            ("unfreeze_at_epoch", NON_NEGATIVE),
            ("backbone_lr_factor", NON_NEGATIVE),
            ("layer_decay", Rule(lambda v: 0 < v <= 1, "in (0, 1], e.g. 0.75")),
        ),
    ),
    "compress": Contract(
        ("bigmodel_cli.callbacks.pruning:Compress",),
        "keys",
        keys=("method", "amount", "start_epoch", "end_epoch"),
        ranges=(
            ("amount", Rule(lambda v: 0 < v < 1, "a fraction strictly between 0 and 1, e.g. 0.5")),
            ("start_epoch", NON_NEGATIVE),
            ("end_epoch", NON_NEGATIVE),
        ),
    ),
    "tta": Contract(
        ("bigmodel_cli.lightning_modules.test_time:ViewSettings",),
        "keys",
        keys=("flip", "shift"),
        ranges=(("shift", NON_NEGATIVE),),
    ),
    "augmentation": Contract(
        ("bigmodel_cli.data.image:ImageDataModule", "bigmodel_cli.data.batch_augment:BatchAugment"),
        "named",
        ranges=(
            ("*.p", UNIT),
            ("*.alpha", POSITIVE),
            ("color_jitter.brightness", NON_NEGATIVE),
            ("color_jitter.contrast", NON_NEGATIVE),
            ("color_jitter.saturation", NON_NEGATIVE),
            ("color_jitter.hue", Rule(lambda v: 0 <= v <= 0.5, "in [0, 0.5]")),
            ("randaugment.num_ops", NON_NEGATIVE),
            ("randaugment.magnitude", NON_NEGATIVE),
            ("trivialaugment.num_magnitude_bins", Rule(lambda v: v >= 2, "2 or more")),
            ("rotate.degrees", NON_NEGATIVE),
        ),
    ),
    "trainer": Contract(
        ("bigmodel_cli.training.pieces:build_trainer",),
        "target",
        ranges=(
            ("max_epochs", Rule(lambda v: v >= 1 or v == -1, "1 or more (or -1 for no limit)")),
            ("min_epochs", NON_NEGATIVE),
            ("max_steps", Rule(lambda v: v >= 1 or v == -1, "1 or more (or -1 for no limit)")),
            ("check_val_every_n_epoch", AT_LEAST_ONE),
            ("log_every_n_steps", AT_LEAST_ONE),
            ("accumulate_grad_batches", AT_LEAST_ONE),
            ("overfit_batches", NON_NEGATIVE),
            ("limit_*_batches", NON_NEGATIVE),
            ("gradient_clip_val", NON_NEGATIVE),
            ("val_check_interval", POSITIVE),
            ("min_steps", NON_NEGATIVE),
            ("num_sanity_val_steps", Rule(lambda v: v >= -1, "0 or more (or -1 for every validation batch)")),
            ("reload_dataloaders_every_n_epochs", NON_NEGATIVE),
        ),
    ),
    "accelerator": Contract(
        ("bigmodel_cli.training.pieces:build_trainer", "bigmodel_cli.training.strategies:auto"),
        "keys",
        package="trainer",
        keys=("accelerator", "devices", "strategy", "num_nodes", "precision", "sync_batchnorm"),
        ranges=(
            ("devices", Rule(lambda v: v >= 1, "1 or more (or auto: every device)", numbers_only=False)),
            ("num_nodes", AT_LEAST_ONE),
            ("strategy.timeout_s", POSITIVE),
        ),
    ),
    "callbacks": Contract(
        ("bigmodel_cli.training.pieces:build_trainer",),
        "named",
        ranges=(
            ("model_checkpoint.save_top_k", Rule(lambda v: v >= -1, "0 or more (or -1 for every checkpoint)")),
            ("progress_bar.refresh_rate", NON_NEGATIVE),
            ("model_summary.max_depth", Rule(lambda v: v >= -1, "0 or more (or -1 for every layer)")),
            ("last_checkpoint.every_n_steps", AT_LEAST_ONE),
        ),
    ),
    "logger": Contract(("bigmodel_cli.training.pieces:build_trainer",), "named"),
    "debug": Contract(
        ("bigmodel_cli.training.pieces:build_trainer",),
        "keys",
        package="_global_",
        keys=("trainer", "test_after_fit"),
    ),
    "experiment": Contract(
        ("bigmodel_cli.commands.app:run_subcommand",),  # Hydra composes the whole experiment there
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
            "tta",
            "trainer",
            "callbacks",
            "logger",
            "seed",
            "objective",
            "objective_mode",
            "channels_last",
            "distill",
        ),
    ),
    "launcher": Contract(
        ("hydra_plugins.bigmodel_launchers.slurm:check_fits",),  # and Hydra's launcher plugin in hydra.launcher
        "keys",
        package="_global_",
        keys=("hydra", "trainer"),
    ),
    "hparams_search": Contract(
        ("hydra_plugins.bigmodel_sweepers.optuna_sweeper:OptunaSweeper", "bigmodel_cli.search.study:SearchSettings"),
        "keys",
        package="_global_",
        keys=("hydra", "hparams_search"),
    ),
    "paths": Contract(("bigmodel_cli.config.resolvers:run_dir",), "keys", keys=("output_dir", "data_dir")),
    "hydra": Contract(
        ("bigmodel_cli.config.resolvers:run_dir", "bigmodel_cli.runs.records:RunRecorder"),
        "keys",
        keys=("run", "sweep", "job", "callbacks", "job_logging"),
    ),
}


# Trainer arguments bigmodel passes itself, and where a user sets what they hold instead.
TRAINER_OWNED = {
    "callbacks": "callbacks=<option> or callbacks.<name>.<key>=... (and regularizer=early_stopping|ema)",
    "logger": "logger=csv|tensorboard|mlflow|none",
    "plugins": "trainer.precision=<precision> (bigmodel adds its own checkpoint IO plugin)",
    "default_root_dir": "run_name=<name> or hydra.run.dir=<dir> (the run directory)",
}


def owned_trainer_key(key: str) -> str | None:
    """The line for `trainer.<key>` when bigmodel passes that Trainer argument itself; else None."""
    name = key.removeprefix("+").removeprefix("trainer.")
    if not key.lstrip("+").startswith("trainer.") or name not in TRAINER_OWNED:
        return None
    return f"trainer.{name} is set by bigmodel, not through the trainer group; fix: {TRAINER_OWNED[name]}"


# The primary configs' own keys (train.yaml, generate.yaml, ...), and rules for a key wherever it is.
PRIMARY_RANGES: tuple[tuple[str, Rule], ...] = (
    ("seed", Rule(lambda v: v >= 0, "0 or more (or null for a random seed)")),
    ("cv", Rule(lambda v: v >= 2, "2 or more folds, e.g. cv=5")),
    ("*dropout", PROBABILITY),
    ("distill.temperature", POSITIVE),
    ("distill.alpha", UNIT),
    ("lr_find.min_lr", Rule(lambda v: v > 0, "a positive number, e.g. 1e-6")),
    ("lr_find.max_lr", POSITIVE),
    # Lightning's suggestion skips the first 10 points and the last, and needs two to take a slope.
    ("lr_find.num_training", Rule(lambda v: v >= 13, "13 or more steps")),
    ("lr_find.early_stop_threshold", POSITIVE),
    ("max_new_tokens", NON_NEGATIVE),
    ("amount", Rule(lambda v: 0 < v < 1, "a fraction of the weights strictly between 0 and 1, e.g. 0.5")),
    ("calibration_batches", AT_LEAST_ONE),
    ("temperature", NON_NEGATIVE),
    ("top_k", AT_LEAST_ONE),
    ("num_samples", AT_LEAST_ONE),
)


# Keys that name a directory (bigmodel creates it when missing): an existing file there is a mistake.
DIRECTORY_KEYS = ("*_dir", "root", "*.root")


@cache
def range_rules() -> tuple[tuple[str, Rule], ...]:
    """Every (dotted key pattern, rule): each contract's ranges under the node its options land
    in, then the primary configs' keys."""
    rules = []
    for group, contract in CONTRACTS.items():
        node = contract.package if contract.package and contract.package != "_global_" else group
        rules += [(f"{node}.{pattern}", rule) for pattern, rule in contract.ranges]
    return (*rules, *PRIMARY_RANGES)


def keys_group_settings(config, group: str, settings_class, option_key: str | None = None) -> dict:
    """A keys group's node from a run config (a plain dict or a DictConfig), as keyword arguments of
    the dataclass that reads it; a key that is not one of its fields is one clear line. With
    `option_key` (finetune's `mode`, compress's `method`), a key the node leaves out takes its value
    from the YAML of the option that key names (`finetune.mode=gradual` alone gets
    conf/finetune/gradual.yaml's unfreeze_at_epoch): the readers' defaults live in the YAML only."""
    from bigmodel_cli.config.catalogue import groups, option_yaml

    node = dict(config.get(group) or {})
    known = [f.name for f in fields(settings_class)]
    unknown = [key for key in node if key not in known]
    if unknown:
        raise UserError(
            f"{group}.{unknown[0]} is not a {group} setting; valid keys: {choices_text(known)} "
            f"(fix: pick {group} options from conf/{group})"
        )
    option = node.get(option_key) if option_key else None
    if option in groups().get(group, ()):
        node = {**option_yaml(group, option), **node}
    return {key: value for key, value in node.items() if key in known}
