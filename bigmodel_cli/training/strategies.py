"""Lightning strategies that need Python objects a YAML file cannot hold."""

from __future__ import annotations

from bigmodel_cli.config.instantiate import (
    active_extra_prefixes,
    allowed_prefixes,
    check_class_names,
    how_to_fix,
    locate_allowed,
)
from bigmodel_cli.errors import UserError


def wrap_classes(auto_wrap, extra_prefixes=()) -> set[type]:
    """The module classes auto_wrap names, each checked like a `_target_` (by what it resolves to,
    against the allowlist plus allow_targets) before it is used."""
    refused, fixes = check_class_names(auto_wrap, "trainer.strategy.auto_wrap", extra_prefixes)
    if refused:
        raise UserError(
            f"refusing {'; '.join(refused)} (allowed prefixes: "
            f"{', '.join(allowed_prefixes(extra_prefixes))}); fix: {how_to_fix(fixes)}"
        )
    return {locate_allowed(name, extra_prefixes)[0] for name in auto_wrap}


def fsdp(auto_wrap: list[str], **kwargs):
    """Lightning's FSDPStrategy with the named module classes (e.g. transformer blocks) as units.
    The names were checked with the config's `_target_`s; they are checked again here (against the
    allow_targets of the instantiate call in progress), as this is where they are imported."""
    from pytorch_lightning.strategies import FSDPStrategy

    return FSDPStrategy(auto_wrap_policy=wrap_classes(auto_wrap, active_extra_prefixes()), **kwargs)
