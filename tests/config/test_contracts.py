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
