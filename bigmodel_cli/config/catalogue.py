"""The catalogue: where the config tree is, which groups and options it holds, what each option
sets and which model reads which data.

Read by `bigmodel --help`, by validation and error lines (to name valid choices) and by the tests
that are generated from the tree. Imports nothing heavy: `--help` must stay instant (a model class
is imported only to ask which data it reads).

Beside conf/, the user's own config dirs (`--config-dir`, `hydra.searchpath`) hold options too:
within `searching(dirs)` every function here sees them, as Hydra does when it composes.
"""

from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path

import yaml

from bigmodel_cli.errors import UserError

# Groups whose options are listed to users; `hydra` and `paths` are plumbing.
PLUMBING_GROUPS = ("hydra", "paths")


def conf_dir() -> Path:
    """The config tree: inside the installed wheel, else at the top of the source checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"bigmodel's config tree is missing (looked in {package}/conf and {package.parent}/conf)")


# The user's config dirs of the command being run, after conf/ (config/source.search_dirs reads them).
_USER_DIRS: contextvars.ContextVar[tuple[Path, ...]] = contextvars.ContextVar("config_dirs", default=())


@contextlib.contextmanager
def searching(dirs):
    """Within this block the catalogue lists the options of these config dirs too."""
    token = _USER_DIRS.set(tuple(Path(d) for d in dirs))
    try:
        yield
    finally:
        _USER_DIRS.reset(token)


def config_dirs() -> tuple[Path, ...]:
    """conf/, then the user's dirs: Hydra's order, in which the first dir holding a file wins (so a
    user's `model/cnn.yaml` is shadowed by the built-in one: a user's option needs a name of its own)."""
    return (conf_dir(), *(d for d in _USER_DIRS.get() if d.resolve() != conf_dir()))


def option_path(group: str, option: str) -> Path:
    """The YAML file Hydra reads for group=option (conf/'s place when no dir holds it)."""
    for root in config_dirs():
        if (root / group / f"{option}.yaml").is_file():
            return root / group / f"{option}.yaml"
    return conf_dir() / group / f"{option}.yaml"


def primary_configs() -> list[str]:
    """Names of the top-level configs, one per subcommand (train, test, ...); _name.yaml is a shared piece."""
    return sorted(p.stem for p in conf_dir().glob("*.yaml") if not p.stem.startswith("_"))


def groups(include_plumbing: bool = False) -> dict[str, list[str]]:
    """Every config group (nested ones as `a/b`) mapped to its sorted option names, from every dir."""
    found: dict[str, set[str]] = {}
    for root in config_dirs():
        for path in root.rglob("*.yaml"):
            if path.parent == root or path.stem.startswith("_"):  # _name.yaml: a shared base, not an option
                continue
            group = path.parent.relative_to(root).as_posix()
            if not include_plumbing and group.split("/")[0] in PLUMBING_GROUPS:
                continue
            found.setdefault(group, set()).add(path.stem)
    return {g: sorted(opts) for g, opts in sorted(found.items())}


def describe(group: str, option: str) -> str:
    """The option's one-line summary: the first comment line of its YAML file."""
    for line in option_path(group, option).read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not stripped.startswith("# @package"):
            return stripped.lstrip("#").strip()
        if stripped and not stripped.startswith("#"):
            break
    return ""


def default_choices(config_name: str = "train") -> dict[str, str]:
    """Group -> option chosen by a primary config's defaults list."""
    text = (conf_dir() / f"{config_name}.yaml").read_text()
    chosen: dict[str, str] = {}
    for entry in (yaml.safe_load(text) or {}).get("defaults", []):
        if isinstance(entry, dict):
            for group, option in entry.items():
                chosen[group] = option if isinstance(option, str) else ",".join(map(str, option or []))
    return chosen


def option_yaml(group: str, option: str) -> dict:
    """An option's own YAML merged over the pieces in its defaults list (`_image`, ...), as Hydra
    merges them (nested nodes key by key)."""
    node = yaml.safe_load(option_path(group, option).read_text()) or {}
    merged: dict = {}
    for entry in node.get("defaults", []):
        if isinstance(entry, str) and entry != "_self_":
            merged = merge(merged, option_yaml(group, entry))
    return merge(merged, {k: v for k, v in node.items() if k != "defaults"})


def merge(base: dict, update: dict) -> dict:
    """OmegaConf.merge's rule on plain dicts (nested dicts key by key, anything else replaced),
    without importing OmegaConf on --help's path."""
    out = dict(base)
    for key, value in update.items():
        both_dicts = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if both_dicts else value
    return out


def model_class(target, allow=()):
    """The class a model `_target_` names, imported only when the allowlist (with `allow_targets`)
    lets it through; None otherwise (a user's module is not run just to ask what it reads)."""
    from bigmodel_cli.config.instantiate import Refused, locate_allowed

    try:
        return locate_allowed(target, allow)[0]
    except Refused:
        return None


def model_modalities(option: str, allow=()) -> tuple[str, ...]:
    """The data modalities a model option's class reads."""
    target = option_yaml("model", option).get("_target_")
    return tuple(getattr(model_class(target, allow), "modalities", ())) if target else ()


def models_for(modality: str, allow=()) -> list[str]:
    """Model options (the user's among them, when allowed) whose class reads this data modality."""
    return [option for option in groups()["model"] if modality in model_modalities(option, allow)]


# Tasks that need one prediction per token, and the model option that gives them.
PER_TOKEN_TASKS = {"language_modeling": "gpt", "masked_lm": "bert"}


def models_for_data(option: str) -> list[str]:
    """Model options that fit a data option: of its modality, and predicting tokens where its task
    needs them."""
    node = option_yaml("data", option)
    task = node.get("task", "classification")
    if task in PER_TOKEN_TASKS:
        return [PER_TOKEN_TASKS[task]]
    return models_for(node.get("modality", "image"))


def data_for(modality: str) -> list[str]:
    """Data options in conf/data of this modality."""
    return [option for option in groups()["data"] if option_yaml("data", option).get("modality") == modality]


def check_model_fits_data(config) -> None:
    """Reads only the model's `_target_` and data.modality, so it runs before anything resolves. A
    target the allowlist refuses is left to its refusal (config/instantiate), which names the fix."""
    model_target, modality = config["model"]["_target_"], config["data"].get("modality", "image")
    allow = tuple(config.get("allow_targets") or ())
    supported = getattr(model_class(model_target, allow), "modalities", (modality,))
    if modality not in supported:
        data = ", ".join(option for m in supported for option in data_for(m))
        raise UserError(
            f"model {model_target.rsplit('.', 1)[-1]} cannot read {modality} data; models that fit: "
            f"{', '.join(models_for(modality, allow))} (fix: pick one of them, or data that this model "
            f"reads ({'/'.join(supported)}): {data})"
        )
