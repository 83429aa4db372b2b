"""bigmodel validate / test: evaluate a checkpoint on the validation or test split."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from bigmodel_cli.assembly import allowed, build_datamodule, build_module, build_trainer, probe
from bigmodel_cli.checkpoints import load_checkpoint, saved_config
from bigmodel_cli.instantiate import check_targets
from bigmodel_cli.tasks.common import collect, prepare, print_summary, require_checkpoint_path, task_main


def user_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def data_config(cfg: DictConfig, saved: dict[str, Any]):
    """The checkpoint's data config, unless the command line picks data=<option>; data.<key>=<value>
    overrides are applied on top either way."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in user_overrides()]
    if "data" in keys:
        return cfg.data
    data = OmegaConf.create(saved["data"])
    for key in keys:
        if key.startswith("data."):
            OmegaConf.update(data, key.removeprefix("data."), OmegaConf.select(cfg, key), force_add=True)
    return data


def restore_module(cfg: DictConfig):
    """The LightningModule rebuilt from a checkpoint's saved config, with its weights; and the checkpoint."""
    checkpoint = load_checkpoint(require_checkpoint_path(cfg))
    saved = saved_config(checkpoint)
    check_targets(saved, allowed(cfg))  # a checkpoint may come from someone else
    module = build_module(saved)
    module.load_state_dict(checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)
    return module, checkpoint


def restore(cfg: DictConfig):
    """Module with the checkpoint's weights, and the DataModule to evaluate it on."""
    module, checkpoint = restore_module(cfg)
    saved = saved_config(checkpoint)
    datamodule = build_datamodule(data_config(cfg, saved), allowed(cfg))
    probe(module, datamodule)
    return module, datamodule


def run(cfg: DictConfig) -> dict[str, float]:
    require_checkpoint_path(cfg)
    prepare(cfg)
    module, datamodule = restore(cfg)
    trainer = build_trainer(cfg)
    split = "val" if cfg.task_name == "validate" else "test"
    getattr(trainer, cfg.task_name)(module, datamodule=datamodule, verbose=False)
    metrics = collect(trainer.callback_metrics, (f"{split}/",))
    print_summary(f"bigmodel {cfg.task_name}: {cfg.ckpt_path}", metrics)
    return metrics


def main(cfg: DictConfig):
    return task_main(run, cfg)
