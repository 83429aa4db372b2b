"""The pieces of a run, each built from its config: DataModule, LightningModule, Trainer.

Everything is made from `_target_`s through the allowlisted instantiate, and each piece's target
is written to the job's log file (`<run dir>/<task>.log`: the map from option to code). The
model/data fit is checked here, before training, so a mismatch is one clear line rather than a
shape error. training/assembly.py puts the pieces together for each subcommand.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bigmodel_cli.config.catalogue import PER_TOKEN_TASKS, check_model_fits_data, data_for, models_for
from bigmodel_cli.config.instantiate import instantiate
from bigmodel_cli.console import PIECES_LOGGER
from bigmodel_cli.errors import UserError
from bigmodel_cli.lightning_modules.test_time import ViewAverage, ViewSettings
from bigmodel_cli.runs import tracking
from bigmodel_cli.training.hook_profiler import profiler_override
from bigmodel_cli.training.settings import RunSettings

log = logging.getLogger(PIECES_LOGGER)

# Callbacks that need a logger; dropped (with a note) when logger=none.
NEEDS_LOGGER = ("LearningRateMonitor",)


def plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers: what checkpoints store as hyper-parameters."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


def allowed(cfg) -> tuple[str, ...]:
    return tuple(cfg.get("allow_targets") or ())


def build_datamodule(data_cfg, allow=()):
    from hydra.errors import InstantiationException

    log.info("data: %s", data_cfg.get("_target_"))
    try:
        return instantiate(data_cfg, allow)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, UserError):  # a constructor's one-line error, not Hydra's wrapper
            raise exc.__cause__ from None
        raise


# data.task -> the LightningModule that trains a backbone for it.
TASK_MODULES = {
    "classification": "bigmodel_cli.lightning_modules.classifier.ClassificationModule",
    "language_modeling": "bigmodel_cli.lightning_modules.language_model.LanguageModelModule",
    "masked_lm": "bigmodel_cli.lightning_modules.masked_lm.MaskedLMModule",
}


# Tasks whose module reads one prediction per token, and the model made for each.
def build_module(config: dict[str, Any], settings: RunSettings | None = None):
    """The LightningModule for the data's task around the configured backbone, given the settings
    it reads (read from `config` when not given: a checkpoint's saved config). A backbone that
    refuses its settings (a UserError in its constructor) is reported as that one line."""
    from hydra.errors import InstantiationException
    from hydra.utils import get_class

    check_model_fits_data(config)
    settings = settings or RunSettings.read(config)
    task = config["data"].get("task", "classification")
    if task not in TASK_MODULES:
        raise UserError(
            f"data.task={task} is not known; valid choices: {', '.join(TASK_MODULES)} (fix: data.task=classification)"
        )
    log.info("module: %s around model %s", TASK_MODULES[task], config["model"].get("_target_"))
    try:
        return get_class(TASK_MODULES[task])(config, settings.regularization, settings.finetune)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, UserError):
            modality = config["data"].get("modality", "image")
            raise UserError(
                f"{exc.__cause__}; models that fit {modality} data: {', '.join(models_for(modality))}"
            ) from None
        raise


def probe(module, datamodule) -> None:
    """One forward pass on a dummy batch of the data's shape; a failure becomes a UserError."""
    import torch

    example = datamodule.example_input()
    module.eval()
    try:
        with torch.no_grad():
            out = module(example)
    except RuntimeError as exc:
        raise UserError(
            f"the model cannot read this data's inputs of shape {tuple(example.shape)}: "
            f"{str(exc).splitlines()[0]}; fix: adjust the model's sizes or pick another model"
        ) from None
    finally:
        module.train()
    task = getattr(module, "config", {}).get("data", {}).get("task", "classification")
    if task in PER_TOKEN_TASKS and tuple(out.shape[:-1]) != tuple(example.shape[:2]):
        name = type(getattr(module, "backbone", module)).__name__
        raise UserError(
            f"model {name} gives one prediction per sequence (outputs of shape {tuple(out.shape)}), and "
            f"data.task={task} needs one for every token ({' x '.join(map(str, example.shape[:2]))} x vocabulary); "
            f"fix: a model that predicts tokens (model={PER_TOKEN_TASKS[task]})"
        )
    expected = datamodule.num_classes
    if out.shape[-1] != expected:
        raise UserError(
            f"the model outputs {out.shape[-1]} classes but the data has {expected}; "
            f"fix: model.num_classes=${{data.num_classes}}"
        )
    module.example_input_array = example
    module.finetune.check_trainable(module.backbone)
    probe_optimization(module)


def attach_views(module, settings: ViewSettings, datamodule) -> None:
    """tta=<option>: score each evaluated image as the mean over its views
    (lightning_modules/test_time.py). The views are of images, and they average class
    probabilities: any other data or task is one line before anything runs."""
    if not settings.active:
        return
    data = module.config["data"]
    modality, task = data.get("modality", "image"), data.get("task", "classification")
    if modality != "image" or task != "classification" or not hasattr(datamodule, "mean"):
        raise UserError(
            f"tta.flip={str(settings.flip).lower()} tta.shift={settings.shift} averages a classifier's predictions "
            f"over flipped and shifted images, and this run's data is {modality} {task} data; fix: tta=none "
            f"(or image data: {', '.join(data_for('image'))})"
        )
    module.views = ViewAverage(settings, -datamodule.mean / datamodule.std)


def probe_optimization(module) -> None:
    """Build the run's optimizer and schedule once on the module's parameters, before training: a
    setting their constructors refuse (a value out of their range, onecycle's momentum cycling on
    an optimizer without momentum) is one line here instead of an error inside trainer.fit."""
    from bigmodel_cli.lightning_modules.optim import build_optimizer, build_scheduler

    config = getattr(module, "config", None) or {}
    optimizer_cfg = dict(module.optimizer_config()) if hasattr(module, "optimizer_config") else {}
    if optimizer_cfg.get("lr") == "auto":  # the finder sets the lr later; any number builds them now
        optimizer_cfg["lr"] = 1e-3
    lr = optimizer_cfg.get("lr", 0.0)
    if not optimizer_cfg.get("_target_") or isinstance(lr, bool) or not isinstance(lr, (int, float)):
        return  # nothing to build, or an lr that build_optimizer itself explains
    scheduler_cfg = config.get("scheduler")
    try:
        optimizer = build_optimizer(module, optimizer_cfg, allowed(config))
        build_scheduler(optimizer, scheduler_cfg, allowed(config), lambda interval: 100)
    except ValueError as exc:
        names = [
            f"{group}={node['_target_'].rsplit('.', 1)[-1]}"
            for group, node in (("optimizer", optimizer_cfg), ("scheduler", scheduler_cfg or {}))
            if node.get("_target_")
        ]
        raise UserError(
            f"{' with '.join(names)} cannot be built with these settings: {str(exc).splitlines()[0]}; "
            f"fix: change the optimizer.* or scheduler.* value it names, or pick another optimizer or scheduler"
        ) from None


def build_trainer(cfg: DictConfig, settings: RunSettings | None = None, first=(), last=(), **overrides):
    """The Trainer with every callback of the run in its list: `first` (callbacks that must run
    before any other), the callbacks group, the regularizers that work through a callback (ema,
    early_stopping; a regularizer's entry replaces a callbacks entry of the same name), the
    finetune and compress callbacks, then `last` (the run's guards); and the config's loggers.
    Null entries are skipped."""
    allow = allowed(cfg)
    settings = settings or RunSettings.read(cfg)
    loggers = [built(f"logger.{name}", node, allow) for name, node in (cfg.get("logger") or {}).items() if node]
    named = {**(cfg.get("callbacks") or {}), **settings.regularization.callbacks}
    callbacks = list(first)
    for name, node in named.items():
        if not node:
            continue
        if not loggers and node["_target_"].rsplit(".", 1)[-1] in NEEDS_LOGGER:
            print(f"note: callbacks.{name} needs a logger and is skipped with logger=none")
            continue
        callbacks.append(built(f"callbacks.{name}", node, allow))
    refuse_two_averages(callbacks)
    callbacks += [c for c in (settings.finetune.callback(), settings.compress.callback()) if c is not None]
    callbacks += list(last)
    if cfg.trainer.get("fast_dev_run"):
        # fast_dev_run writes no checkpoints, but Lightning's ModelCheckpoint still saves last.ckpt
        # when training ends: leave the checkpoint callbacks out.
        from pytorch_lightning.callbacks import ModelCheckpoint

        callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
    overrides = quiet_defaults(cfg, callbacks) | profiler_override(cfg) | overrides
    from hydra.errors import InstantiationException
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    log.info(
        "trainer: %s with callbacks %s", cfg.trainer.get("_target_"), ", ".join(type(c).__name__ for c in callbacks)
    )
    try:
        # The config's arguments only: handing the callback and logger objects to instantiate would
        # merge them into a deep copy of the trainer config (about 0.1 s of every start-up).
        make_trainer = instantiate(cfg.trainer, allow, _partial_=True)
        return make_trainer(
            callbacks=callbacks, logger=loggers or False, default_root_dir=cfg.paths.output_dir, **overrides
        )
    except (InstantiationException, MisconfigurationException, ValueError) as exc:
        # Lightning's accelerator connector says what cannot run here (no GPU, FSDP off GPU,
        # bad precision) with MisconfigurationException or ValueError; a strategy node's come wrapped.
        cause = exc.__cause__ if isinstance(exc, InstantiationException) else exc
        if not isinstance(cause, (MisconfigurationException, ValueError)):
            raise
        t = cfg.trainer
        strategy = t.get("strategy")
        strategy = strategy.get("_target_", strategy) if isinstance(strategy, DictConfig) else strategy
        raise UserError(
            f"trainer settings accelerator={t.get('accelerator')} devices={t.get('devices')} "
            f"strategy={strategy} precision={t.get('precision')} cannot run here: {str(cause).splitlines()[0]}; "
            f"fix: change that setting (accelerator=cpu or auto when the hardware is missing)"
        ) from None


def refuse_two_averages(callbacks: list) -> None:
    """regularizer=[ema,swa]: each keeps an average of the weights and swaps it in for validation and
    checkpoints, so two would swap each other's weights; one line instead."""
    from pytorch_lightning.callbacks.weight_averaging import WeightAveraging

    averages = [type(c).__name__ for c in callbacks if isinstance(c, WeightAveraging)]
    if len(averages) > 1:
        raise UserError(
            f"{' and '.join(averages)} both average the weights, and a run keeps one average; "
            f"fix: pick one of regularizer=ema or regularizer=swa"
        )


def built(key: str, node, allow):
    log.info("%s: %s", key, node.get("_target_"))
    with tracking.store_lock(node.get("tracking_uri")):  # an MLflow logger opens its store here
        return instantiate(node, allow)


def quiet_defaults(cfg: DictConfig, callbacks: list) -> dict[str, bool]:
    """With no progress bar (or model summary) among the callbacks, Lightning would add its own
    (a tqdm bar refreshed every step); `callbacks.progress_bar=null` means none at all, unless the
    trainer group sets enable_progress_bar / enable_model_summary itself."""
    from pytorch_lightning.callbacks import ModelSummary, ProgressBar

    wanted = {"enable_progress_bar": ProgressBar, "enable_model_summary": ModelSummary}
    return {
        flag: False
        for flag, kind in wanted.items()
        if cfg.trainer.get(flag) is None and not any(isinstance(c, kind) for c in callbacks)
    }
