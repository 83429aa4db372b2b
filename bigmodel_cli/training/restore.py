"""A checkpoint's LightningModule rebuilt from its own saved config, with its weights, and the data
to evaluate it on: what every subcommand after training starts from (validate, test, predict,
export, compress, explain, generate)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from bigmodel_cli.checkpoints.files import load_checkpoint, saved_config
from bigmodel_cli.config.instantiate import check_targets
from bigmodel_cli.config.source import override_key
from bigmodel_cli.errors import UserError
from bigmodel_cli.training.pieces import allowed, build_datamodule, build_module, probe


def require_checkpoint_path(cfg: DictConfig) -> str:
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        task = cfg.get("task_name", "test")
        raise UserError(
            f"bigmodel {task} needs a checkpoint: ckpt_path is not set; fix: bigmodel {task} "
            f"ckpt_path=outputs/train/<run>/checkpoints/best.ckpt"
        )
    return str(cfg.ckpt_path)


def user_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def run_or_chosen(cfg: DictConfig, saved: dict[str, Any], group: str) -> DictConfig:
    """A checkpoint command's `group` node: the run's own, unless the command line picks
    group=<option>; group.<key>=<value> overrides are applied on top either way."""
    keys = [override_key(o) for o in user_overrides()]
    if group in keys:
        return cfg[group]
    node = OmegaConf.create(saved.get(group) or {})
    for key in keys:
        if key.startswith(f"{group}."):
            OmegaConf.update(node, key.removeprefix(f"{group}."), OmegaConf.select(cfg, key), force_add=True)
    return node


def data_config(cfg: DictConfig, saved: dict[str, Any]):
    """The checkpoint's data config, unless the command line picks data=<option>; data.<key>=<value>
    overrides are applied on top either way. What carves val/test out of train (data.split_seed,
    data.val_fraction, data.test_fraction) is always the run's own, so a checkpoint is evaluated on
    the split it was validated and tested on, never on its training samples; a note says so when the
    command line (or the data option picked) had other values. So is the fold a cross-validation run
    validated on (data.folds, data.fold)."""
    data = run_or_chosen(cfg, saved, "data")
    run = saved["data"]
    # Runs saved before data.split_seed existed carved their splits with data.seed; a fold's
    # checkpoint (cv=K, data.folds) validates on its own fold.
    run_split = {key: run[key] for key in ("val_fraction", "test_fraction", "folds", "fold") if key in run}
    if run.get("split_seed", run.get("seed")) is not None:
        run_split["split_seed"] = run.get("split_seed", run.get("seed"))
    replaced = []
    for key, value in run_split.items():
        if key not in data:
            continue
        if data[key] != value:
            replaced.append(f"data.{key}={data[key]} -> {value}")
            data[key] = value
    if replaced:
        print(f"note: evaluating on the run's own val/test split, so {', '.join(replaced)} (the checkpoint's values)")
    return data


def restore_module(cfg: DictConfig):
    """The LightningModule rebuilt from a checkpoint's saved config, with its weights; and the checkpoint."""
    checkpoint = load_checkpoint(require_checkpoint_path(cfg))
    saved = saved_config(checkpoint)
    check_targets(saved, allowed(cfg))  # a checkpoint may come from someone else
    module = build_module(saved)
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:  # weights of another model than the one its saved config builds
        detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise UserError(
            f"ckpt_path={cfg.ckpt_path}: its weights do not fit the model its own config builds "
            f"({detail[:160]}); fix: give a checkpoint written by bigmodel train, unmodified"
        ) from None
    module.on_load_checkpoint(checkpoint)
    return module, checkpoint


def restore(cfg: DictConfig):
    """Module with the checkpoint's weights, and the DataModule to evaluate it on."""
    module, checkpoint = restore_module(cfg)
    saved = saved_config(checkpoint)
    datamodule = build_datamodule(data_config(cfg, saved), allowed(cfg))
    probe(module, datamodule)
    return module, datamodule
