"""Instantiate `_target_`s from configs, but only callables from an allowlist.

A config may come from someone else (a shared run directory, a checkpoint's saved config), and
`_target_: os.system` would run anything. Every `_target_` in a node is checked before any is
instantiated; users extend the list with `allow_targets=[my_package.]`.

The check looks at what a target RESOLVES to, not at how it is spelled: Hydra follows attributes,
so `torch.nn.functional.torch.load` is `torch.load`. A target is allowed when
- its value, after interpolations are resolved (`${oc.env:X}`, `${some.key}`), is a dotted name
  whose top-level package is one of the allowed ones (nothing else is imported while checking),
- and the object it locates has its own `__module__` + `__qualname__` (no builtins, no instances),
  which name that very object back, under one of ALLOWED_PREFIXES (module boundaries count:
  `torch.nn.` allows `torch.nn.modules.linear.Linear`, not `torch.nnx.Linear`).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import re
import sys
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from bigmodel_cli.errors import UserError

# Module prefixes of the objects targets may resolve to (their own __module__.__qualname__).
ALLOWED_PREFIXES = (
    "bigmodel_cli.",
    "hydra_plugins.bigmodel_sweepers.",  # bigmodel's own sweeper (conf/hparams_search)
    "torch.nn.",
    "torch.optim.",
    "torchvision.transforms.",
    "torchvision.models.",
    "torchmetrics.",
    "pytorch_lightning.trainer.trainer.Trainer",  # what pytorch_lightning.Trainer is
    "pytorch_lightning.callbacks.",
    "pytorch_lightning.loggers.",
    "pytorch_lightning.profilers.",
    "pytorch_lightning.strategies.",
    "pytorch_lightning.plugins.",
    "lightning_fabric.plugins.",  # what pytorch_lightning.plugins.environments / .io re-export
    "lightning.pytorch.callbacks.",
    "lightning.pytorch.loggers.",
    "hydra_plugins.bigmodel_launchers.",  # bigmodel's SLURM launcher (conf/launcher/submitit_slurm)
)

# Targets that resolve more dotted names themselves: resolved target -> the key holding a list of
# class names, each checked like a `_target_` (and required to be a class).
NAMED_CLASSES = {"bigmodel_cli.training.strategies.fsdp": "auto_wrap"}

# The fix for a name that leads to nothing nameable (allow_targets cannot help there).
NOT_FOUND = "check the spelling: a _target_ names an importable class or function, e.g. torch.nn.Linear"

NOT_A_CLASS = "name module classes, e.g. auto_wrap=[bigmodel_cli.models.transformer.Block]"

# A config nested (or interpolated into itself) deeper than this is refused rather than walked.
MAX_DEPTH = 64
DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

# The extra prefixes of the `instantiate` call in progress: constructors that resolve more names
# themselves (strategies.fsdp's auto_wrap classes) check them against the same list.
_ACTIVE_EXTRA: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("allow_targets", default=())


def one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def active_extra_prefixes() -> tuple[str, ...]:
    return _ACTIVE_EXTRA.get()


def allowed_prefixes(extra_prefixes=()) -> tuple[str, ...]:
    return ALLOWED_PREFIXES + tuple(str(p) for p in (extra_prefixes or ()))


def _under(name: str, prefix: str) -> bool:
    """name is the module/object `prefix` names, or inside it (on a dot boundary)."""
    base = prefix.rstrip(".")
    return bool(base) and (name == base or name.startswith(base + "."))


def allowed_packages(extra_prefixes=()) -> tuple[str, ...]:
    """Top-level packages a target may be spelled from (torch, bigmodel_cli, ...)."""
    return tuple(dict.fromkeys(p.split(".", 1)[0] for p in allowed_prefixes(extra_prefixes) if p.split(".", 1)[0]))


class Refused(Exception):
    """Why a target is not allowed; `resolved` is the name it resolves to, when known. `found` is
    False when the name leads to nothing nameable (a typo, a builtin): allow_targets cannot help."""

    def __init__(self, reason: str, resolved: str | None = None, found: bool = True):
        super().__init__(reason)
        self.reason, self.resolved, self.found = reason, resolved, found


def own_name(obj: Any) -> str:
    """`module.qualname` of an object that names itself and can be found again by that name;
    raises Refused otherwise (builtins, instances, lambdas, objects claiming another's name)."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        raise Refused(
            f"it locates a {type(obj).__name__} with no importable name of its own "
            f"(__module__={module!r}, __qualname__={qualname!r})",
            found=False,
        )
    name = f"{module}.{qualname}"
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    same = found is obj or (
        inspect.ismethod(obj)
        and inspect.ismethod(found)
        and found.__func__ is obj.__func__
        and found.__self__ is obj.__self__
    )
    if not same:
        raise Refused(f"it locates an object that calls itself {name} but is not what that name holds", found=False)
    return name


def locate_allowed(target: Any, extra_prefixes=()) -> tuple[Any, str]:
    """(object, its own name) for an allowed target; raises Refused (with the reason) otherwise."""
    prefixes = allowed_prefixes(extra_prefixes)
    if callable(target) and not isinstance(target, str):  # a Python object given by code
        name = own_name(target)
        obj = target
    else:
        if not isinstance(target, str) or not DOTTED_NAME.fullmatch(target):
            raise Refused(f"{target!r} is not a dotted name such as torch.nn.Linear", found=False)
        package = target.split(".", 1)[0]
        if package not in allowed_packages(extra_prefixes):
            raise Refused(f"its package {package} is not an allowed package, so it was not looked up")
        from hydra._internal.utils import _locate

        try:
            obj = _locate(target)
        except Exception as exc:  # noqa: BLE001 - any import failure is a refusal
            raise Refused(f"it cannot be located ({one_line(exc)})", found=False) from None
        name = own_name(obj)
    if not any(_under(name, p) for p in prefixes):
        raise Refused(f"it resolves to {name}, which is not under an allowed prefix", name)
    return obj, name


def is_allowed(target: Any, extra_prefixes: tuple[str, ...] = ()) -> bool:
    try:
        locate_allowed(target, extra_prefixes)
    except Refused:
        return False
    return True


@dataclass
class Target:
    where: str  # config path of the node that holds the `_target_`
    spelled: Any  # as written (an interpolation stays unresolved here)
    value: Any = None  # after interpolations are resolved
    unresolved: str | None = None  # why the interpolation could not be resolved
    node: Any = None  # the config node holding it

    def describe(self) -> str:
        text = f"{self.where}._target_={self.spelled}"
        if self.unresolved is None and self.value != self.spelled:
            text += f" (interpolated: {self.value})"
        return text


def _child(node: DictConfig | ListConfig, key: Any) -> tuple[Any, Any, str | None]:
    """(as written, resolved value, why it did not resolve) of node[key]."""
    if OmegaConf.is_missing(node, key):
        return "???", None, "it is missing (???)"
    spelled = node._get_node(key)._value()
    if not OmegaConf.is_interpolation(node, key):
        return spelled, node[key], None
    try:
        return spelled, node[key], None
    except Exception as exc:  # noqa: BLE001 - unresolvable interpolations are reported, not raised
        return spelled, None, one_line(exc)


def find_targets(node: Any, path: str = "") -> list[Target]:
    """Every `_target_` below node, with its value after interpolations are resolved (walking
    into containers that interpolations resolve to, e.g. `strategy: ${other}` or `${oc.create:...}`)."""
    found: list[Target] = []
    _walk(node, path, found, ancestors=())
    return found


def _walk(node: Any, path: str, found: list[Target], ancestors: tuple[int, ...]) -> None:
    if isinstance(node, (dict, list, tuple)):  # what a resolver returned (oc.decode): a config once resolved
        try:
            node = OmegaConf.create(list(node) if isinstance(node, tuple) else node, flags={"allow_objects": True})
        except Exception as exc:  # noqa: BLE001
            raise UserError(
                f"the config at {path or '<root>'} cannot be checked for _target_s ({one_line(exc)}); "
                f"fix: write it as plain YAML"
            ) from None
    if not isinstance(node, (DictConfig, ListConfig)) or node._is_none() or node._is_missing():
        return
    if id(node) in ancestors:  # an interpolation back into a node being walked
        return
    if len(ancestors) >= MAX_DEPTH:
        raise UserError(
            f"the config at {path or '<root>'} is nested more than {MAX_DEPTH} levels deep "
            f"(an interpolation that points into itself?); fix: remove the cycle"
        )
    ancestors = (*ancestors, id(node))
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        where = (f"{path}.{key}" if path else str(key)) if isinstance(node, DictConfig) else f"{path}[{key}]"
        spelled, value, unresolved = _child(node, key)
        if isinstance(node, DictConfig) and key == "_target_":
            if spelled is None or spelled == "???" or (unresolved is None and value is None):
                continue  # `_target_: null` instantiates nothing; `???` fails in Hydra, calling nothing
            if unresolved is None and isinstance(value, (DictConfig, ListConfig)):
                _walk(value, where, found, ancestors)  # not a target; hydra refuses it, look inside
                continue
            found.append(Target(path or "<root>", spelled, value, unresolved, node))
        elif unresolved is None:
            _walk(value, where, found, ancestors)


def refusal_fix(name: Any, exc: Refused) -> str | None:
    """The allow_targets entry that would let name through, if any: the module it resolves to, or,
    for a package that was not looked up (a user's `my_pkg.models.Net`), that package (`my_pkg.`)."""
    if not exc.found:
        return None
    if exc.resolved is None and isinstance(name, str) and DOTTED_NAME.fullmatch(name):
        return f"allow_targets=[{name.split('.', 1)[0]}.]"
    named = exc.resolved
    return f"allow_targets=[{named.rsplit('.', 1)[0]}.]" if named and "." in named else None


def check_class_names(names: Any, where: str, extra_prefixes=()) -> tuple[list[str], list[str]]:
    """(refusals, fixes) for a list of class names a target resolves itself (fsdp's auto_wrap)."""
    if not isinstance(names, (list, tuple, ListConfig)):
        return ([f"{where}={names}: expected a list of class names"] if names is not None else []), [NOT_A_CLASS]
    refused, fixes = [], []
    for name in names:
        try:
            obj, resolved = locate_allowed(name, extra_prefixes)
        except Refused as exc:
            refused.append(f"{where}: {name}: {exc.reason}")
            fixes.append(refusal_fix(name, exc) or ("" if exc.found else NOT_FOUND))
            continue
        if not isinstance(obj, type):
            refused.append(f"{where}: {name}: it resolves to {resolved}, which is not a class")
            fixes.append(NOT_A_CLASS)
    return refused, [f for f in fixes if f]


def check_targets(node: Any, extra_prefixes=()) -> None:
    """Raise one UserError naming every `_target_` that is refused, what it resolves to and why."""
    extra = tuple(str(p) for p in (extra_prefixes or ()))
    refused, fixes, unresolvable = [], [], False
    for target in find_targets(node):
        if target.unresolved is not None:
            refused.append(
                f"{target.describe()}: the interpolation cannot be resolved to check it ({target.unresolved})"
            )
            unresolvable = True
            continue
        try:
            _, name = locate_allowed(target.value, extra)
        except Refused as exc:
            refused.append(f"{target.describe()}: {exc.reason}")
            fixes.append(refusal_fix(target.value, exc) or ("" if exc.found else NOT_FOUND))
            continue
        key = NAMED_CLASSES.get(name)
        if key is not None and isinstance(target.node, DictConfig) and key in target.node:
            spelled, value, unresolved = _child(target.node, key)
            where = f"{target.where}.{key}"
            if unresolved is not None:
                refused.append(f"{where}={spelled}: the interpolation cannot be resolved to check it ({unresolved})")
                unresolvable = True
                continue
            more, more_fixes = check_class_names(value, where, extra)
            refused += more
            fixes += more_fixes
    if refused:
        raise UserError(
            f"refusing to instantiate {'; '.join(refused)} (allowed prefixes: "
            f"{', '.join(allowed_prefixes(extra))}); fix: {how_to_fix(fixes, unresolvable)}"
        )


def how_to_fix(fixes: list[str], unresolvable: bool = False) -> str:
    """The fix part of a refusal: hints first, then the allow_targets entries that would help."""
    fixes = list(dict.fromkeys(f for f in fixes if f))
    allow = [f for f in fixes if f.startswith("allow_targets=")]
    how = ["write the _target_ as a plain dotted name (or set what its interpolation reads)"] if unresolvable else []
    how += [f for f in fixes if not f.startswith("allow_targets=")]
    if allow or not how:
        how.append(
            "if you trust it, add its module with allow_targets=[<prefix>]"
            + (f", here {', '.join(allow)}" if allow else "")
        )
    return "; or ".join(how)


@contextlib.contextmanager
def _active(extra: tuple[str, ...]):
    token = _ACTIVE_EXTRA.set(extra)
    try:
        yield
    finally:
        _ACTIVE_EXTRA.reset(token)


def instantiate(node: Any, extra_prefixes=(), **kwargs) -> Any:
    """hydra.utils.instantiate of node, after every `_target_` in it passed check_targets. A plain
    dict is made a DictConfig first, so the config checked is the config instantiated."""
    if isinstance(node, (dict, list)):
        node = OmegaConf.create(node, flags={"allow_objects": True})
    extra = tuple(str(p) for p in (extra_prefixes or ()))
    check_targets(node, extra)
    from hydra.utils import instantiate as hydra_instantiate

    with _active(extra):
        return hydra_instantiate(node, **kwargs)
