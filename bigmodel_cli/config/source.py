"""Where a job's primary config comes from: bigmodel's conf/ tree, or a saved run's .hydra folder
(`--config-path <run>/.hydra`, `bigmodel reproduce <run>`, `resume=<run>`), and which of the
user's config dirs (`--config-dir`, `hydra.searchpath`) Hydra searches beside conf/.

`hydra_arguments` is the last rewrite of the command line before Hydra sees it (cli/argv does the
first ones); `config_source_arguments` is what DDP children need to compose the same config.
"""

from __future__ import annotations

import json
import os

import yaml

from bigmodel_cli.config.catalogue import conf_dir
from bigmodel_cli.config.catalogue import groups as catalogue_groups
from bigmodel_cli.config.renamed import moved_target_overrides
from bigmodel_cli.errors import UserError

CONFIG_PATH = ("--config-path", "-cp")
CONFIG_NAME = ("--config-name", "-cn")
CONFIG_DIR = ("--config-dir", "-cd")
SEARCHPATH = "hydra.searchpath="
# Where Hydra's own sources come from in a run's hydra.yaml; the others are the user's dirs.
NOT_USER_SOURCES = ("hydra", "main", "schema")


def option_value(args: list[str], *names: str) -> str | None:
    """The value of `--name value` or `--name=value` in args (last one wins), else None."""
    found = None
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                found = args[i + 1]
            elif arg.startswith(name + "="):
                found = arg.split("=", 1)[1]
    return found


def override_key(override: str) -> str:
    """The key (or group) an override sets: `+a.b=1` -> a.b, `~a.b` -> a.b, `group@pkg=x` -> group."""
    return override.split("=", 1)[0].lstrip("+~").split("@")[0]


def override_value(args: list[str], key: str) -> str | None:
    found = None
    for arg in args:
        if arg.lstrip("+").startswith(key + "="):
            found = arg.split("=", 1)[1]
    return found


def searchpath_entries(args: list[str]) -> list[str]:
    """The entries of `hydra.searchpath=[a,b]` overrides (`file://dir`, `pkg://module`)."""
    found = []
    for arg in args:
        if arg.lstrip("+").startswith(SEARCHPATH):
            value = arg.split("=", 1)[1].strip().strip("[]")
            found += [entry.strip().strip("'\"") for entry in value.split(",") if entry.strip()]
    return found


def search_dirs(args: list[str]) -> list[str]:
    """The user's config dirs on a command line: `--config-dir`, then hydra.searchpath's file://
    entries (pkg:// ones are packages, which only Hydra looks into)."""
    given = option_value(args, *CONFIG_DIR)
    dirs = [given] if given else []
    return dirs + [e.removeprefix("file://") for e in searchpath_entries(args) if e.startswith("file://")]


def mode_is_unset(args: list[str]) -> bool:
    """Whether hydra.mode is certain to be unset for this command line: bigmodel's own configs never
    set it (tests/config/test_source.py checks every one), so only a user's config (a config path or
    dir, a search path entry) or an override naming it could."""
    return not (
        option_value(args, *CONFIG_PATH, *CONFIG_DIR)
        or searchpath_entries(args)
        or any(override_key(arg) in ("hydra", "hydra.mode") for arg in args)
    )


def recorded_search_dirs(hydra_dir: str) -> list[str]:
    """The user's config dirs a saved run was composed with: the file sources of its hydra.yaml
    beyond Hydra's own and the primary config's (a reproduction of it keeps finding their options)."""
    try:
        with open(os.path.join(hydra_dir, "hydra.yaml")) as f:
            sources = ((yaml.safe_load(f) or {}).get("hydra") or {}).get("runtime", {}).get("config_sources") or []
    except (OSError, yaml.YAMLError, AttributeError):
        return []
    return [
        s["path"]
        for s in sources
        if isinstance(s, dict) and s.get("schema") == "file" and s.get("provider") not in NOT_USER_SOURCES
    ]


# Switches that are a node of settings: `compile=true` stands for compile.enabled=true, so that it
# combines with the node's other keys (`compile=true compile.mode=max-autotune`), which Hydra cannot
# do for a plain value (nor for a group: a group's option cannot be named true).
SWITCH_NODES = {"compile": "enabled"}


def expanded_switches(overrides: list[str]) -> list[str]:
    """`compile=true` -> `compile.enabled=true` (also with +/++ and sweeps: compile=true,false)."""
    out = []
    for arg in overrides:
        key = arg.split("=", 1)[0]
        if "=" in arg and key.lstrip("+") in SWITCH_NODES:
            arg = f"{key}.{SWITCH_NODES[key.lstrip('+')]}={arg.split('=', 1)[1]}"
        out.append(arg)
    return out


def hydra_arguments(overrides: list[str]) -> list[str]:
    """Switch shorthands expanded, a resumed run's own config, then a saved config made whole (see
    the two steps below)."""
    return saved_config_arguments(resume_arguments(expanded_switches(overrides)))


def resume_arguments(overrides: list[str]) -> list[str]:
    """resume=<run dir>: refuse a missing run (never a silent fresh start), and take the run's own
    saved config (so the same model and settings continue), unless a config path is given."""
    resume = override_value(overrides, "resume")
    if resume in (None, "", "null", "None", "auto"):
        return overrides
    run = os.path.abspath(resume)
    if not os.path.isfile(os.path.join(run, ".hydra", "config.yaml")):
        raise UserError(
            f"resume={resume}: no run there (no {resume}/.hydra/config.yaml); fix: give a run "
            f"directory such as outputs/train/<run>, or resume=auto run_name=<name> to start "
            f"fresh when there is nothing to resume"
        )
    overrides = [f"resume={run}" if a.lstrip("+").startswith("resume=") else a for a in overrides]
    overrides = without_retyped_choices(overrides, resume, run)
    if option_value(overrides, *CONFIG_PATH) is None:
        overrides = [CONFIG_PATH[0], os.path.join(run, ".hydra"), CONFIG_NAME[0], "config", *overrides]
    return overrides


def without_retyped_choices(overrides: list[str], resume: str, run: str) -> list[str]:
    """A user resumes by retyping the command that started the run with resume= added. The run
    continues with its saved config, which has no groups left to choose from: group choices that
    agree with the run's (run.json "choices") are dropped; one that differs is one line."""
    groups = set(catalogue_groups(include_plumbing=True))
    retyped = [a for a in overrides if "=" in a and not a.startswith(("+", "~")) and override_key(a) in groups]
    if not retyped:
        return overrides
    try:
        with open(os.path.join(run, "run.json")) as f:
            saved = json.load(f).get("choices")
    except (OSError, ValueError, AttributeError):
        saved = None
    for arg in retyped:
        group, value = override_key(arg), arg.split("=", 1)[1]
        if saved is None:
            raise UserError(
                f"resume={resume}: {arg} chooses a config group, but this run does not record its choices "
                f"and a resumed run continues with its saved config; fix: drop {arg} (single keys such as "
                f"trainer.max_epochs=8 still apply)"
            )
        if _choice(value) != _choice(saved.get(group)):
            raise UserError(
                f"resume={resume}: {group}={value} differs from the run's {group}={_choice_text(saved.get(group))}; "
                f"a resumed run continues with its own config; fix: drop {arg}, or start a new run "
                f"(without resume=) to train with {group}={value}"
            )
    return [a for a in overrides if a not in retyped]


def _choice(value) -> tuple[str, ...]:
    """A group's choice as written on the command line ("[l2,dropout]", "null") or saved (a list, None)."""
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    text = "" if value is None else str(value).strip()
    if text in ("", "null", "None"):
        return ()
    return tuple(v.strip() for v in text.strip("[]").split(",") if v.strip())


def _choice_text(value) -> str:
    chosen = _choice(value)
    return (
        "null"
        if not chosen
        else chosen[0]
        if len(chosen) == 1 and not isinstance(value, list)
        else f"[{','.join(chosen)}]"
    )


def saved_config_arguments(overrides: list[str]) -> list[str]:
    """`--config-path <run>/.hydra --config-name config` (Hydra's way of re-running a saved config):
    make the path absolute, and put on the search path bigmodel's conf tree with its hydra settings
    (run directories, run.json), which the saved config.yaml does not carry, and the user's config
    dirs the run was composed with (its hydra.yaml), beside any given here."""
    path = option_value(overrides, *CONFIG_PATH)
    if path is None:
        return overrides
    absolute, out, skip = os.path.abspath(path), [], False
    for arg in overrides:
        if skip:
            out.append(absolute)
            skip = False
        elif arg in CONFIG_PATH:
            out.append(arg)
            skip = True
        elif arg.startswith(tuple(f"{name}=" for name in CONFIG_PATH)):
            out.append(f"{arg.split('=', 1)[0]}={absolute}")
        else:
            out.append(arg)
    saved = os.path.join(absolute, f"{option_value(out, *CONFIG_NAME) or 'config'}.yaml")
    if not os.path.isfile(saved):
        return out
    try:
        with open(saved) as f:
            node = yaml.safe_load(f) or {}
    except yaml.YAMLError as exc:
        raise UserError(
            f"{saved} is not valid YAML ({str(exc).splitlines()[0]}); fix: give the .hydra folder of a "
            f"run (outputs/train/<run>/.hydra), or repair the file"
        ) from None
    if isinstance(node, dict) and "defaults" not in node:  # a saved (composed) config, not a primary one
        dirs = [str(conf_dir()), *recorded_search_dirs(absolute)]
        entries = [f"file://{d}" for d in dirs if os.path.isdir(d)] + searchpath_entries(out)
        out = [a for a in out if not a.lstrip("+").startswith(SEARCHPATH)]
        out.append(f"hydra.searchpath=[{','.join(dict.fromkeys(entries))}]")
        if "+hydra=default" not in out:  # a DDP child's job already carries it
            out.append("+hydra=default")
        # A run saved before bigmodel_cli's packages moved names old _target_s: point them at the new ones.
        given = {a.split("=", 1)[0] for a in out}
        out += [o for o in moved_target_overrides(node) if o.split("=", 1)[0] not in given]
        # A fixed run_name in the saved config would send this run into the old run's directory.
        if node.get("run_name") is not None and override_value(out, "run_name") is None:
            out.append("run_name=null")
    return out


def config_source_arguments(overrides: list[str]) -> list[str]:
    """The arguments that choose where the primary config comes from (a saved run's .hydra, the
    user's config dir and the search path), which Hydra keeps out of the job's task overrides: DDP
    children need them too."""
    chosen = []
    for names in (CONFIG_PATH, CONFIG_NAME, CONFIG_DIR):
        value = option_value(overrides, *names)
        if value is not None:
            chosen += [names[0], value]
    return chosen + [a for a in overrides if a.startswith("hydra.searchpath=")]
