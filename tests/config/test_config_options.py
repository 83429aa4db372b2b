"""Every option of every config group, generated from the conf/ tree: each composes, and each
trains a few steps (or, where it cannot run on this machine, fails with a clear UserError)."""

from __future__ import annotations

import pytest

from bigmodel_cli.commands import train
from bigmodel_cli.config import catalogue
from bigmodel_cli.errors import UserError
from tests.conftest import FAST
from tests.support.data_files import prepare_files_for

# Options whose trainer.accelerator names hardware this machine may not have must compose, and on
# a machine without it must fail with a UserError, not a traceback.
HARDWARE = {"gpu": "cuda", "cuda": "cuda", "mps": "mps"}

OPTIONS = [(group, option) for group, options in catalogue.groups().items() for option in options]


def fitting_partner(group: str, option: str) -> list[str]:
    """A model option that cannot read the default data is trained on the first data option of a
    modality it reads, and a data option the default model cannot read with the first model that
    reads it (both found from the conf tree)."""
    from bigmodel_cli.config.catalogue import data_for, default_choices, model_modalities, models_for_data, option_yaml

    defaults = default_choices("train")
    if group == "model":
        modalities = model_modalities(option)
        if option_yaml("data", defaults["data"]).get("modality") not in modalities:
            return [f"data={data_for(modalities[0])[0]}"]
    if group == "data":
        fitting = models_for_data(option)
        if defaults["model"] not in fitting:
            return [f"model={fitting[0]}"]
    return []


def hardware_present(kind: str) -> bool:
    import torch

    return torch.cuda.is_available() if kind == "cuda" else torch.backends.mps.is_available()


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_trains(group, option, compose_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # what a run writes beside its start directory (mlflow.db) stays out of the checkout
    overrides = [f"{group}={option}", *fitting_partner(group, option), *FAST]
    if group == "callbacks":  # keep the option's own callbacks; only silence the progress bar
        overrides = [f"{group}={option}", *[o for o in FAST if not o.startswith("callbacks.")]]
    if group == "logger":
        overrides = [o for o in overrides if o != "logger=none"]
    if group in ("experiment", "debug"):  # recipes set epochs (and validation spacing); keep runs short anyway
        overrides += ["trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1"]
    with compose_cfg("train", overrides) as cfg:
        prepare_files_for(cfg, tmp_path)
        kind = HARDWARE.get(str(cfg.trainer.get("accelerator")))
        if kind and not hardware_present(kind):
            with pytest.raises(UserError, match=f"accelerator={cfg.trainer.accelerator}"):
                train.run(cfg)
            return
        metrics = train.run(cfg)
    assert metrics, "training returned no metrics"
    if not cfg.trainer.get("fast_dev_run"):
        assert any(k.startswith("val/") for k in metrics)
    assert all(v == v for v in metrics.values()), f"NaN metric in {metrics}"


def leaves(node: dict, prefix: str = ""):
    """(dotted key, value) for every leaf of a YAML mapping."""
    for key, value in node.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_values_reach_the_config(group, option, compose_cfg):
    """Every value an option's YAML sets is the value the run reads: one that the primary config
    or a later default silently overrides (an experiment's channels_last under train.yaml's own,
    before _self_ went first) is a setting that does nothing."""
    from omegaconf import OmegaConf

    from bigmodel_cli.config.catalogue import option_yaml
    from bigmodel_cli.config.contracts import CONTRACTS

    package = CONTRACTS[group].package or group
    is_global = package == "_global_"
    with compose_cfg("train", [f"{group}={option}", *fitting_partner(group, option)]) as cfg:
        root = OmegaConf.to_container(cfg, resolve=False)
    base = root if is_global else root[package]
    # hydra.* is Hydra's own (not in the job's config); paths.* are set per test by compose_cfg.
    skipped = ("hydra.", "paths.") if is_global else ()
    if group == "trainer":  # lists every Trainer argument; the accelerator group, composed after, sets its own
        skipped = tuple(option_yaml("accelerator", catalogue.default_choices("train")["accelerator"]))
    for key, value in leaves(option_yaml(group, option)):
        if key.startswith(skipped):
            continue
        composed = base
        for part in key.split("."):
            composed = composed[part]
        assert composed == value, f"{group}={option} sets {key}={value!r}, the run reads {composed!r}"


@pytest.mark.parametrize("task", catalogue.primary_configs())
def test_every_primary_config_composes(task, compose_cfg):
    with compose_cfg(task, ["ckpt_path=x.ckpt"] if task != "train" else []) as cfg:
        assert cfg.task_name == task
        assert cfg.seed is not None, "the seed must default to a fixed number"
