"""Bad values for every key, generated from conf/: each is one line and exit 2 before anything
trains, or it is valid and trains.

Numeric keys: every key whose YAML value is a number, in each primary config (train, explain,
export, compress, generate, ...) and in every option of every group (the option is chosen for
the case, with data its model can read). A key read by several options of one reader (data.*
in every image dataset) is tried once, on the first such option (the group's default first).
Each gets 0, a negative number and a word. Path keys (names like root, dir, path, file,
ckpt_path, init_from, teacher, resume): a path that does not exist, a file where a directory is
expected, a directory where a file is expected. The tools' arguments (report, runs) likewise.

Every case runs `bigmodel ...` in process (its CLI entry, `main([...])`) under debug=fdr
accelerator=cpu: the exit code is 2 with one `error:` line on stderr and no traceback, and any
run.json left behind says "failed" (nothing half-written); or the exit code is 0 and the run
completed. A negative number may only be accepted for the keys in ANY_NUMBER, each with why.
Where the check is wrong in another engineer's area, the case is a strict xfail (KNOWN_FAILURES).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from bigmodel_cli.config import catalogue
from bigmodel_cli.config.catalogue import (
    data_for,
    default_choices,
    model_modalities,
    models_for_data,
    option_yaml,
    primary_configs,
)
from bigmodel_cli.config.keys import package_of
from tests.conftest import FAST
from tests.support import data_files

FDR = ["debug=fdr", "accelerator=cpu"]
BAD_NUMBERS = ("0", "-1", "abc")

# The allowance table: keys where a negative number is a valid setting, not a mistake (any other
# key that accepts one fails); each says why.
ANY_NUMBER: dict[str, str] = {
    "trainer.max_epochs": "-1 means no limit (Lightning's convention)",
    "trainer.max_steps": "-1 means no limit (Lightning's convention)",
    "callbacks.model_checkpoint.save_top_k": "-1 keeps every checkpoint (Lightning's ModelCheckpoint)",
    "callbacks.model_summary.max_depth": "-1 shows every layer (Lightning's ModelSummary)",
    "augmentation.random_erasing.value": "the fill value of the erased box, any pixel value after normalisation",
}

# Numeric keys without a range in bigmodel_cli/config/contracts.py, each with why (any other key
# without one fails test_every_numeric_key_has_a_range).
UNRANGED: dict[str, str] = {
    "augmentation.random_erasing.value": "any number: the fill value of the erased box",
    **{
        key: "commands/explain, export, compress check their counts themselves (1 or more), before anything is written"
        for key in ("samples", "steps", "deletion_steps", "repeats")
    },
}

# Cases that fail where the fix belongs to another engineer's area: case id -> reason.
KNOWN_FAILURES: dict[str, str] = {}

# Groups whose options only set keys that live elsewhere (`# @package _global_`, hydra.*).
NOT_OWN_KEYS = ("hydra", "launcher", "hparams_search", "debug", "experiment")
PATH_NAME = re.compile(r"(^|_)(root|dir|path|file|ckpt_path|init_from|teacher|resume)$")
DIR_NAME = re.compile(r"(^|_)(root|dir)$")
RUN_OR_CHECKPOINT = ("init_from", "teacher", "resume")
# Subcommands that read a checkpoint; their primary config's keys are tried on a trained run's.
CHECKPOINT_COMMANDS = {"explain", "export", "compress", "generate", "validate", "test", "predict"}
COMMAND_OF = {"lr_find": "lr-find"}


def leaves(node: dict, prefix: str = ""):
    for key, value in node.items():
        if not isinstance(key, str) or key.startswith("_") or key == "defaults":
            continue
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            yield from leaves(value, path)
        else:
            yield path, value


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_alias(value) -> bool:
    """`${..path}`: the same setting under another name (data.source.path is data.path)."""
    return isinstance(value, str) and value.startswith("${..") and value.endswith("}")


def is_path_key(key: str) -> bool:
    return bool(PATH_NAME.search(key.rsplit(".", 1)[-1]))


def partner(group: str, option: str) -> list[str]:
    """Data the model option reads, or a model that reads the data option (from conf/)."""
    defaults = default_choices("train")
    if group == "model":
        modalities = model_modalities(option)
        if option_yaml("data", defaults["data"]).get("modality", "image") not in modalities:
            return [f"data={data_for(modalities[0])[-1]}"]
    if group == "data":
        fitting = models_for_data(option)
        if defaults["model"] not in fitting:
            return [f"model={fitting[0]}"]
    return []


def reader(group: str, option: str, key: str) -> str:
    """Who reads the key: the option's _target_ (and its data source's) or the group."""
    node = option_yaml(group, option)
    source = (node.get("source") or {}).get("_target_", "") if key.startswith(f"{group}.source.") else ""
    return f"{node.get('_target_', group)}|{source}"


def group_cases():
    """(case id, command, selection overrides, key, YAML value) per key and reader, from conf/."""
    seen = set()
    defaults = default_choices("train")
    for group, options in catalogue.groups(include_plumbing=True).items():
        if group.split("/")[0] in NOT_OWN_KEYS:
            continue
        for option in sorted(options, key=lambda o: o != defaults.get(group)):
            package = package_of(group, option)
            for key, value in leaves(option_yaml(group, option), package):
                if is_alias(value) or not (is_number(value) or is_path_key(key)):
                    continue
                if (key, reader(group, option, key)) in seen:
                    continue
                seen.add((key, reader(group, option, key)))
                selection = [] if group == "paths" else [f"{group}={option}", *partner(group, option)]
                yield f"{group}={option}:{key}", "train", selection, key, value


def primary_yaml(name: str) -> dict:
    """A primary config's own keys over its shared pieces (`_checkpoint_task`); not other
    primary configs (lr_find's `train`: those keys are train's cases)."""
    node = yaml.safe_load((catalogue.conf_dir() / f"{name}.yaml").read_text()) or {}
    merged: dict = {}
    for entry in node.get("defaults", []):
        if isinstance(entry, str) and entry.startswith("_") and entry != "_self_":
            merged = catalogue.merge(merged, primary_yaml(entry))
    return catalogue.merge(merged, {k: v for k, v in node.items() if k != "defaults"})


def primary_cases():
    for name in primary_configs():
        for key, value in leaves(primary_yaml(name)):
            if is_alias(value) or not (is_number(value) or is_path_key(key)):
                continue
            yield f"{name}:{key}", COMMAND_OF.get(name, name), [], key, value


def cases():
    out = []
    for case, command, selection, key, _value in [*group_cases(), *primary_cases()]:
        if is_path_key(key):
            out += [(f"{case}={kind}", command, selection, key, kind) for kind in path_kinds(key)]
        else:
            out += [(f"{case}={bad}", command, selection, key, bad) for bad in BAD_NUMBERS]
    return out


def path_kinds(key: str) -> tuple[str, ...]:
    name = key.rsplit(".", 1)[-1]
    if name in RUN_OR_CHECKPOINT:
        return ("missing", "file", "dir")  # a run directory or a checkpoint: a stray file, an empty dir
    return ("missing", "file") if DIR_NAME.search(name) else ("missing", "dir")


CASES = cases()


def params():
    for case in CASES:
        marks = (pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[case[0]]),) if case[0] in KNOWN_FAILURES else ()
        yield pytest.param(*case[1:], id=case[0], marks=marks)


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory) -> dict[str, Path]:
    """Run directories made by `bigmodel train` (run.json and all): a digits classifier and a tiny
    language model, for the subcommands that read a checkpoint and the tools that read runs."""
    import os

    from bigmodel_cli.cli.main import main

    root = tmp_path_factory.mktemp("bad_values")
    found = {}
    start = os.getcwd()
    for name, overrides in {
        "image": [],
        "tokens": ["model=gpt", "data=char_lm", "model.dim=16", "model.depth=1", "model.heads=2"],
    }.items():
        os.chdir(root)
        try:
            with pytest.raises(SystemExit) as done:
                main(["train", *FAST, "accelerator=cpu", f"run_name={name}", *overrides])
        finally:
            os.chdir(start)
        assert done.value.code in (0, None)
        found[name] = root / "outputs" / "train" / name
    return found


def data_overrides(selection: list[str], root: Path) -> list[str]:
    """Small files for a data option that reads them, written under root, and where to find them."""
    chosen = next((s.split("=", 1)[1] for s in selection if s.startswith("data=")), default_choices("train")["data"])
    node = option_yaml("data", chosen)
    name = (node.get("source") or {}).get("_target_", "").rsplit(".", 1)[-1]
    if name == "mnist":
        data_files.write_mnist_like(root / "MNIST" / "raw")
    elif name == "fashion_mnist":
        data_files.write_mnist_like(root / "FashionMNIST" / "raw")
    elif name == "cifar":
        data_files.write_cifar(root, node["source"]["classes"])
    elif name in ("table", "huggingface"):
        data_files.write_text_table(root / "text.csv", num_classes=node["num_classes"])
        return [f"paths.data_dir={root}", f"data.path={root / 'text.csv'}", "data.min_freq=1"]
    elif name in ("fortunes", "brown"):
        (data_files.write_fortunes if name == "fortunes" else data_files.write_brown)(root / name)
        least = ["data.min_quotations=1"] if name == "fortunes" else []
        return [f"data.root={root / name}", "data.num_classes=3", "data.min_freq=1", *least]
    elif name == "image_folder":
        data_files.write_image_folder(root / "imagefolder")
        return [f"paths.data_dir={root}", "data.num_classes=3", "data.num_workers=0", "data.image_size=16"]
    elif chosen == "text_corpus":  # the default corpus is the standard library: minutes to tokenise
        root.mkdir(parents=True, exist_ok=True)
        corpus = root / "corpus.txt"
        corpus.write_text("\n".join(f"the {w} was a fine day and it rained {w}" for w in range(300)))
        return [f"data.path={corpus}"]
    else:
        return []
    return [f"paths.data_dir={root}"]


def bad_path(kind: str, where: Path) -> str:
    if kind == "missing":
        return str(where / "no_such_thing")
    if kind == "file":
        where.mkdir(parents=True, exist_ok=True)
        (where / "a_file.txt").write_text("not what was asked for\n")
        return str(where / "a_file.txt")
    (where / "a_dir").mkdir(parents=True, exist_ok=True)
    return str(where / "a_dir")


def without(overrides: list[str], key: str) -> list[str]:
    return [o for o in overrides if o.split("=", 1)[0] != key]


def run_files_are_whole(cwd: Path) -> None:
    for record in cwd.rglob("run.json"):
        status = json.loads(record.read_text()).get("status")
        assert status in ("failed", "completed"), f"{record}: status {status!r} left behind"
    assert not [p for p in cwd.rglob("*.tmp")], "a temporary file was left behind"


def test_every_numeric_key_has_a_range():
    from fnmatch import fnmatch

    from bigmodel_cli.config.contracts import range_rules

    numeric = sorted({key for _, _, _, key, _ in CASES if not is_path_key(key)})
    missing = [k for k in numeric if not any(fnmatch(k, p) for p, _ in range_rules()) and k not in UNRANGED]
    assert not missing, f"numeric keys without a range in config/contracts.py (or a reason in UNRANGED): {missing}"


def refused(code: int, out: str, err: str, what: str, cwd: Path) -> bool:
    """True for exit 2 with one error line; False for exit 0; any other outcome fails."""
    assert "Traceback" not in err + out, f"a traceback for {what}:\n{err[-3000:]}"
    run_files_are_whole(cwd)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), f"{what}: not one line:\n{err[-2000:]}"
        return True
    assert code == 0, f"{what}: exit {code}\n{err[-2000:]}"
    return False


@pytest.mark.parametrize(("command", "selection", "key", "bad"), params())
def test_bad_value_is_one_line_or_trains(command, selection, key, bad, cli, in_tmp_cwd, trained_runs):
    scratch = in_tmp_cwd / "scratch"
    value = bad_path(bad, scratch) if is_path_key(key) else bad
    args = [*selection]
    if command == "train":
        args += data_overrides(selection, scratch / "data") + FDR
    elif command == "lr-find":
        args += [*FAST, "accelerator=cpu", "lr_find.num_training=13"]
    elif command in CHECKPOINT_COMMANDS:
        kind = "tokens" if command == "generate" else "image"
        args += [f"ckpt_path={trained_runs[kind] / 'checkpoints' / 'best.ckpt'}"] + (
            [] if command == "generate" else ["accelerator=cpu"]
        )
        if command in ("export", "compress"):
            args.append("repeats=2")
    code, out, err = cli(command, *without(args, key), f"{key}={value}")
    if refused(code, out, err, f"{key}={value}", in_tmp_cwd):
        return
    if bad.startswith("-") and not is_path_key(key):
        assert key in ANY_NUMBER, f"{key}={value} was accepted (add it to ANY_NUMBER if a negative is valid)"
    if command == "train":
        records = [json.loads(p.read_text()) for p in (in_tmp_cwd / "outputs").rglob("run.json")]
        assert records and all(r["status"] == "completed" for r in records), f"{key}={value}: no completed run"


# The tools' arguments (argparse, not Hydra): (tool, option or None for a path argument, what it
# takes, other arguments). RUN stands for a run directory, RUNS for a directory of runs.
RUN, RUNS = "<run>", "<runs>"
TOOL_ARGUMENTS = [
    ("report", "--top", "number", [RUNS]),
    ("report", None, "dir", []),
    ("runs", "--limit", "number", [RUNS]),
    ("runs", "--since", "number", [RUNS]),
    ("runs", None, "dir", []),
    ("diff", None, "dir", [RUN]),
    ("reproduce", None, "dir", []),
]
TOOL_CASES = [
    (f"{tool}:{option or 'path'}={bad}", tool, option, bad, rest)
    for tool, option, takes, rest in TOOL_ARGUMENTS
    for bad in (BAD_NUMBERS if takes == "number" else ("missing", "file"))
]


@pytest.mark.parametrize(
    ("tool", "option", "bad", "rest"),
    [
        pytest.param(*case[1:], id=case[0], marks=[pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[case[0]])])
        if case[0] in KNOWN_FAILURES
        else pytest.param(*case[1:], id=case[0])
        for case in TOOL_CASES
    ],
)
def test_bad_tool_argument_is_one_line_or_works(tool, option, bad, rest, cli, in_tmp_cwd, trained_runs):
    runs = trained_runs["image"].parent.parent.parent  # the directory holding outputs/
    places = {RUN: str(trained_runs["image"]), RUNS: str(runs / "outputs")}
    value = bad_path(bad, in_tmp_cwd / "scratch") if option is None else bad
    args = [*([option, value] if option else [value]), *(places.get(r, r) for r in rest)]
    code, out, err = cli(tool, *args)
    if refused(code, out, err, f"bigmodel {tool} {' '.join(args)}", in_tmp_cwd):
        return
    if option and bad.startswith("-"):
        assert f"{tool} {option}" in ANY_NUMBER, f"bigmodel {tool} {option} {bad} was accepted"
