"""Every option in conf/ keeps its group's contract (bigmodel_cli/config/contracts.py): a key that
nothing reads, a typo in an argument name or a stray `@package` fails here."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from hydra.utils import get_object

from bigmodel_cli.config import catalogue
from bigmodel_cli.config.contracts import CONTRACTS
from bigmodel_cli.errors import UserError
from bigmodel_cli.lightning_modules.regularization import Regularization

META_KEYS = {"_target_", "_partial_"}
OPTIONS = [(group, option) for group, options in catalogue.groups(include_plumbing=True).items() for option in options]


def arguments(target: str) -> set[str] | None:
    """The keyword arguments a target takes; None when it takes any (**kwargs)."""
    parameters = inspect.signature(get_object(target)).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def unread(node: dict, reserved=()) -> set[str]:
    """Keys of a `_target_` node that are neither its target's arguments nor reserved."""
    accepted = arguments(node["_target_"])
    return set() if accepted is None else set(node) - META_KEYS - set(reserved) - accepted


def declared_package(group: str, option: str) -> str | None:
    text = (catalogue.conf_dir() / group / f"{option}.yaml").read_text()
    return next((line.split("@package", 1)[1].strip() for line in text.splitlines() if "@package" in line), None)


def test_every_group_has_a_contract():
    assert sorted({group.split("/")[0] for group, _ in OPTIONS} - CONTRACTS.keys()) == []
    assert sorted(CONTRACTS.keys() - {group.split("/")[0] for group, _ in OPTIONS}) == []


@pytest.mark.parametrize(("group", "option"), [o for o in OPTIONS if "/" not in o[0]])
def test_option_keeps_its_group_contract(group, option):
    contract = CONTRACTS[group]
    node = catalogue.option_yaml(group, option)
    assert declared_package(group, option) == contract.package
    if contract.shape == "keys":
        assert sorted(set(node) - set(contract.keys)) == [], f"{group}/{option} sets keys nobody reads"
    elif contract.shape == "target":
        if node:  # an empty option (scheduler=none) means "none"
            assert "_target_" in node, f"{group}/{option} has no _target_"
            assert sorted(unread(node, contract.reserved)) == [], f"{group}/{option}: not arguments of its target"
    else:
        for name, entry in node.items():
            if entry is not None:  # null switches a named entry off
                assert sorted(unread(entry)) == [], f"{group}/{option}.{name}: not arguments of its target"


def test_the_check_catches_a_key_nobody_reads():
    node = {**catalogue.option_yaml("model", "cnn"), "hiden": 64}
    assert unread(node) == {"hiden"}
    assert unread(catalogue.option_yaml("optimizer", "adam")) == {"no_decay_norm_bias"}  # reserved, not an argument


def test_the_regularizer_contract_is_what_its_reader_reads():
    assert set(CONTRACTS["regularizer"].keys) == {f.name for f in dataclasses.fields(Regularization)}
    with pytest.raises(UserError, match="regularizer.l3 is not a regularizer setting; valid keys: l1, l2"):
        Regularization.from_config({"regularizer": {"l3": 0.1}})


@pytest.mark.parametrize("group", sorted(CONTRACTS))
def test_each_contract_names_code_that_exists(group):
    """read_by is real references: each `module:name` imports and names a function or class."""
    import importlib

    assert CONTRACTS[group].read_by, f"{group}: no reader named"
    for reference in CONTRACTS[group].read_by:
        module, _, name = reference.partition(":")
        assert callable(getattr(importlib.import_module(module), name)), reference


@pytest.mark.parametrize(
    ("group", "reader", "fields"),
    [
        ("finetune", "bigmodel_cli.callbacks.finetuning:Finetune", None),
        ("compress", "bigmodel_cli.callbacks.pruning:Compress", None),
        ("hparams_search", "bigmodel_cli.search.study:SearchSettings", "hparams_search"),
    ],
)
def test_a_keys_group_reader_has_no_default_of_its_own_for_what_its_yaml_sets(group, reader, fields):
    """Defaults live in the YAML only: every value an option sets, its reader's dataclass either
    lacks a default for or leaves at None/"none" (the group switched off)."""
    import importlib

    module, _, name = reader.partition(":")
    cls = getattr(importlib.import_module(module), name)
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    for option in catalogue.groups()[group]:
        node = catalogue.option_yaml(group, option)
        node = node.get(fields, {}) if fields else node
        duplicated = {k: v for k, v in node.items() if k in defaults and defaults[k] not in (None, "none")}
        assert duplicated == {}, f"{group}={option}: {reader} repeats {duplicated}"


def test_a_mode_alone_takes_the_rest_of_its_settings_from_its_option_yaml():
    from bigmodel_cli.callbacks.finetuning import Finetune
    from bigmodel_cli.callbacks.pruning import Compress

    gradual = catalogue.option_yaml("finetune", "gradual")
    made = Finetune.from_config({"finetune": {"mode": "gradual", "backbone_lr_factor": 0.5}})
    assert made.unfreeze_at_epoch == gradual["unfreeze_at_epoch"] and made.backbone_lr_factor == 0.5
    assert (
        Compress.from_config({"compress": {"method": "prune"}}).amount
        == catalogue.option_yaml("compress", "prune")["amount"]
    )
