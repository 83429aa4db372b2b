"""bigmodel cp <group>/<option> <dest> [--force]: copy a built-in option's YAML (or a primary config:
`bigmodel cp train my_conf/train.yaml`) to start your own from it, like `tune cp`.

    bigmodel cp model/cnn my_conf/model/my_cnn.yaml     # then: bigmodel train --config-dir my_conf model=my_cnn

The copy is the option's own file, comments and all (a `defaults:` entry such as `_image` is still
found in bigmodel's conf/ when Hydra composes). Parent directories are created; an existing file is
kept unless --force. Reads and writes YAML files only (no torch, no Hydra).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bigmodel_cli.atomic import write_text
from bigmodel_cli.commands.tool_parser import ToolParser
from bigmodel_cli.config.catalogue import conf_dir, groups, primary_configs
from bigmodel_cli.config.keys import closest
from bigmodel_cli.errors import UserError, choices_text

EXAMPLE = "bigmodel cp model/cnn my_conf/model/my_cnn.yaml"


def sources() -> list[str]:
    """What cp copies: the primary configs (`train`) and every `group/option` of conf/."""
    return [*primary_configs(), *(f"{g}/{o}" for g, options in groups(include_plumbing=True).items() for o in options)]


def source_file(name: str) -> Path:
    """The built-in YAML of `group/option` (or of a primary config); one line naming the choices if none."""
    name = name.removesuffix(".yaml")
    known = groups(include_plumbing=True)
    group, slash, option = name.rpartition("/")
    if not slash:
        if name in primary_configs():
            return conf_dir() / f"{name}.yaml"
        meant = [f"{g}/{name}" for g, options in known.items() if name in options]  # `cp cnn`: model/cnn
        raise UserError(
            f"cp: '{name}' is neither a config group's option nor a primary config; "
            f"{f'did you mean {meant[0]}? ' if meant else ''}valid choices: group/option "
            f"({choices_text(f'{g}/...' for g in known)}) or {choices_text(primary_configs())} "
            f"(fix: e.g. `{EXAMPLE}`)"
        )
    if group not in known:
        suggestion = closest(group, known)
        raise UserError(
            f"cp: {group} is not a config group; {f'did you mean {suggestion}? ' if suggestion else ''}"
            f"valid choices: {choices_text(known)} (fix: e.g. `{EXAMPLE}`)"
        )
    if option not in known[group]:
        suggestion = closest(option, known[group])
        example = suggestion or known[group][0]
        raise UserError(
            f"cp: {group}/{option} is not an option; {f'did you mean {group}/{suggestion}? ' if suggestion else ''}"
            f"valid choices: {choices_text(known[group])} "
            f"(fix: e.g. `bigmodel cp {group}/{example} my_conf/{group}/my_{example}.yaml`)"
        )
    return conf_dir() / group / f"{option}.yaml"


def destination(dest: str, source: Path) -> Path:
    """dest itself, or `dest/<option>.yaml` when dest is a directory (or ends with /)."""
    path = Path(dest)
    return path / source.name if dest.endswith("/") or path.is_dir() else path


def usage_hint(path: Path, group: str) -> str:
    """How to pick the copy when it sits where Hydra looks: `<dir>/<group>/<name>.yaml` (an option) or
    `<dir>/<name>.yaml` (a primary config, group ""); a warning when a built-in name would shadow it."""
    depth = len(group.split("/")) if group else 0
    folders = path.parent.parts
    if path.suffix != ".yaml" or (depth and tuple(folders[-depth:]) != tuple(group.split("/"))):
        return ""
    root = Path(*folders[: len(folders) - depth]) if len(folders) > depth else Path(".")
    built_in = groups(include_plumbing=True).get(group, []) if group else primary_configs()
    pick = f"{group}={path.stem}" if group else f"--config-name {path.stem}"
    if path.stem in built_in:  # Hydra searches conf/ before the user's dirs: its file would win
        return (
            f"\nwarning: {pick} picks the built-in one (Hydra searches conf/ before your config dir); "
            f"rename the copy, e.g. to {path.with_name(f'my_{path.stem}.yaml')}"
        )
    return f"\nuse it with: bigmodel train --config-dir {root} {pick}"


def main(argv: list[str]) -> int:
    parser = ToolParser(prog="bigmodel cp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="group/option (e.g. model/cnn) or a primary config (train)")
    parser.add_argument("dest", help="the file to write (or a directory: <dest>/<option>.yaml)")
    parser.add_argument("--force", action="store_true", help="overwrite dest if it exists")
    args = parser.parse_args(argv)
    source = source_file(args.source)
    path = destination(args.dest, source)
    if path.exists() and not args.force:
        raise UserError(f"cp: {path} exists; fix: --force to overwrite it, or another file name")
    try:
        write_text(path, source.read_text())
    except OSError as exc:
        raise UserError(
            f"cp: cannot write {path} ({exc.strerror or exc}); fix: a path you can write, e.g. "
            f"my_conf/{source.parent.name}/my_{source.stem}.yaml"
        ) from None
    group = source.parent.relative_to(conf_dir()).as_posix() if source.parent != conf_dir() else ""
    hint = usage_hint(path, group)
    print(f"copied {source.relative_to(conf_dir().parent)} to {path}{hint}")
    return 0
