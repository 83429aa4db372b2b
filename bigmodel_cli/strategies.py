"""Lightning strategies that need Python objects a YAML file cannot hold."""

from __future__ import annotations


def fsdp(auto_wrap: list[str], **kwargs):
    """Lightning's FSDPStrategy with the named module classes (e.g. transformer blocks) as units."""
    from hydra.utils import get_class
    from pytorch_lightning.strategies import FSDPStrategy

    return FSDPStrategy(auto_wrap_policy={get_class(name) for name in auto_wrap}, **kwargs)
