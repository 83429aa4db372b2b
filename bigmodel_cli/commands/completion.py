"""bigmodel completion bash|zsh|fish: print a shell completion script.

    eval "$(bigmodel completion bash)"      # in ~/.bashrc (zsh: the same with zsh)
    bigmodel completion fish > ~/.config/fish/completions/bigmodel.fish

The script asks `bigmodel completion --line <text before the cursor>` for candidates: subcommands,
groups (`model=<TAB>` -> options; with `--config-dir` or `hydra.searchpath=` on the line, that dir's
options too), config keys (`optimizer.<TAB>`), run directories and checkpoints for `ckpt_path=`,
`resume=` and the tools that take a run, and what `cp` copies. It reads the YAML files and directory
listings only (no torch, no Hydra), so each answer takes a fraction of a second.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from bigmodel_cli.commands import SUBCOMMANDS, TOOLS
from bigmodel_cli.commands.tool_parser import ToolParser
from bigmodel_cli.errors import UserError, choices_text
from bigmodel_cli.runs.index import RUN_FILE, RUN_ROOTS

SHELLS = ("bash", "zsh", "fish")
FLAGS = ("--help", "--verbose", "--trust-checkpoint", "--fail-fast", "-m", "--cfg")
# Keys whose value is a run directory or a checkpoint file.
PATH_KEYS = ("ckpt_path", "resume", "init_from", "distill.teacher")
RUN_TOOLS = ("report", "reproduce", "diff", "runs")

# Also zsh's, through bashcompinit: hence $COMP_POINT and [-1] (zsh arrays start at 1).
BASH = """\
_bigmodel() {
    local line="${COMP_LINE:0:$COMP_POINT}"
    local IFS=$'\\n'
    COMPREPLY=($(bigmodel completion --line "$line" --breaks "$COMP_WORDBREAKS" 2>/dev/null))
    # A key (`optimizer.`, `model=`) is completed further, so no space after it.
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[-1]} == *[=./] ]]; then
        compopt -o nospace 2>/dev/null
    fi
}
complete -F _bigmodel bigmodel
"""
ZSH = "autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n" + BASH
FISH = """\
complete -c bigmodel -f -a '(bigmodel completion --line (commandline -cp) 2>/dev/null)'
"""


def candidates(line: str) -> list[str]:
    """Full-word completions of the last word of `line` (the command line up to the cursor)."""
    try:
        words = shlex.split(line)
    except ValueError:  # an open quote: complete what is there
        words = line.split()
    if line.endswith((" ", "\t")) or not words:
        words.append("")
    words = words[1:]  # the program name
    current, before = words[-1], [w for w in words[:-1] if not w.startswith("-")]
    if not before:
        return [c for c in (*SUBCOMMANDS, *TOOLS, "help", "--version") if c.startswith(current)]
    if current.startswith("-"):
        return [f for f in FLAGS if f.startswith(current)]
    command = before[0]
    if command == "cp":  # a built-in group/option (or primary config), then where to write it
        from bigmodel_cli.commands.cp import sources

        return [c for c in sources() if c.startswith(current)] if len(before) == 1 else run_paths(current)
    if command in TOOLS:
        return run_paths(current) if command in RUN_TOOLS else []
    if command not in SUBCOMMANDS:
        return []
    from bigmodel_cli.config.catalogue import searching
    from bigmodel_cli.config.source import search_dirs

    with searching(search_dirs(words)):  # `--config-dir my_conf model=<TAB>`: the user's options too
        return override_candidates(current, SUBCOMMANDS[command][0])


def override_candidates(current: str, config_name: str) -> list[str]:
    from bigmodel_cli.config.catalogue import groups
    from bigmodel_cli.config.keys import group_keys, primary_keys

    key, equals, value = current.partition("=")
    bare = key.lstrip("+~")
    options = groups()
    if equals:
        if bare in options:
            return [f"{key}={o}" for o in options[bare] if o.startswith(value)]
        if bare in PATH_KEYS:
            return [f"{key}={p}" for p in run_paths(value, checkpoints=bare != "resume")]
        return []
    group = bare.split(".")[0]
    if "." in bare:
        nested = bare.rsplit(".", 1)[0].replace(".", "/")
        known = group_keys(nested if nested in options else group) + tuple(primary_keys(config_name))
    else:
        known = (*options, *primary_keys(config_name))
    depth = bare.count(".")
    found = set()
    for name in known:
        if name.startswith(bare) and name.count(".") >= depth:
            head = ".".join(name.split(".")[: depth + 1])
            deeper = any(k.startswith(head + ".") for k in known)
            # A group is picked with `=`; a node with keys below it goes on with `.`.
            found.add(head + ("=" if head in options or not deeper else "."))
    prefix = key[: len(key) - len(bare)]
    return sorted(prefix + f for f in found)


def run_paths(prefix: str, checkpoints: bool = False) -> list[str]:
    """Run directories (and, for a checkpoint key, .ckpt files) that complete `prefix`; an empty
    prefix lists the run roots (outputs/, multirun/)."""
    if not prefix:
        return [f"{root}/" for root in RUN_ROOTS if Path(root).is_dir()]
    base = Path(prefix) if prefix.endswith("/") else Path(prefix).parent
    stem = "" if prefix.endswith("/") else Path(prefix).name
    if not base.is_dir():
        return []
    found = []
    for entry in sorted(base.iterdir()):
        if not entry.name.startswith(stem) or entry.name.startswith("."):
            continue
        path = (str(base) + "/" if prefix.endswith("/") or "/" in prefix else "") + entry.name
        if entry.is_dir():
            found.append(path + "/")
        elif checkpoints and entry.suffix == ".ckpt" or entry.name == RUN_FILE:
            found.append(path)
    return found


def cut_at_breaks(words: list[str], current: str, breaks: str) -> list[str]:
    """bash completes only the text after the last word-break character (`=` and `:` by
    default): drop what comes before it from each candidate."""
    cut = max((current.rfind(c) for c in breaks if c not in " \t\n"), default=-1) + 1
    return [w[cut:] for w in words if w.startswith(current[:cut])]


def main(argv: list[str]) -> int:
    parser = ToolParser(prog="bigmodel completion", description=__doc__)
    parser.add_argument("shell", nargs="?", help=f"print the script for this shell: {choices_text(SHELLS)}")
    parser.add_argument("--line", help="(used by the script) the command line up to the cursor")
    parser.add_argument("--breaks", default="", help="(used by the script) bash's COMP_WORDBREAKS")
    args = parser.parse_args(argv)
    if args.line is not None:
        words = candidates(args.line)
        current = "" if args.line.endswith((" ", "\t")) else (args.line.split() or [""])[-1]
        print("\n".join(cut_at_breaks(words, current, args.breaks) if args.breaks else words))
        return 0
    if args.shell not in SHELLS:
        raise UserError(
            f"unknown shell '{args.shell}'; valid choices: {choices_text(SHELLS)} "
            f'(fix: e.g. eval "$(bigmodel completion bash)" in ~/.bashrc)'
        )
    print({"bash": BASH, "zsh": ZSH, "fish": FISH}[args.shell], end="")
    return 0
