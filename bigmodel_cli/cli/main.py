"""`bigmodel <subcommand> [hydra overrides...]`: read the command line, then hand the subcommand to
its runner. Imports no torch or Lightning: the subcommand's module is loaded only when it runs."""

from __future__ import annotations

import os
import sys
from importlib import import_module

from bigmodel_cli.cli.argv import HELP, Invocation, parse
from bigmodel_cli.cli.exit import collect_once_at_exit
from bigmodel_cli.commands import SUBCOMMANDS, TOOLS
from bigmodel_cli.config.catalogue import searching
from bigmodel_cli.config.source import search_dirs
from bigmodel_cli.errors import UserError, choices_text, print_error
from bigmodel_cli.process_state import TRUST_ENV, environment


def main(argv: list[str] | None = None) -> None:
    collect_once_at_exit()
    try:
        invocation = parse(sys.argv[1:] if argv is None else argv, SUBCOMMANDS)
    except UserError as exc:  # a rank that cannot learn its run directory (cli/argv, step 1)
        sys.exit(print_error(str(exc)))
    if invocation.command == "help":
        from bigmodel_cli.cli.help import print_help

        with searching(search_dirs(invocation.arguments)):  # `bigmodel --help --config-dir my_conf`
            print_help(SUBCOMMANDS, TOOLS)
        return
    if invocation.command == "version":
        from bigmodel_cli import __version__

        print(f"bigmodel {__version__}")
        return
    # An environment variable, so that Lightning's DDP children inherit the trust.
    trust = {TRUST_ENV: "1"} if invocation.trust_checkpoint else {}
    # The user's config dirs (--config-dir, hydra.searchpath): their options are listed, completed
    # and named in error lines as the built-in ones are.
    with environment(**trust), searching(search_dirs(invocation.arguments)):
        try:
            code = dispatch(invocation)
        except BrokenPipeError:
            code = reader_left()
    sys.exit(code)


def reader_left() -> int:
    """`bigmodel runs --json | head`: the reader closed the pipe. Stop quietly, as Unix tools do
    (no traceback, and none when Python flushes stdout at exit), with their exit status 141."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + 13  # SIGPIPE


def dispatch(invocation: Invocation) -> int:
    command, verbose = invocation.command, invocation.verbose
    if command in TOOLS:
        try:
            return import_module(TOOLS[command][0]).main(invocation.arguments)
        except UserError as exc:
            return print_error(str(exc), exc if verbose else None)
    if command not in SUBCOMMANDS:
        return print_error(
            f"unknown subcommand '{command}'; valid choices: {choices_text([*SUBCOMMANDS, *TOOLS])} "
            f"(fix: e.g. `bigmodel train`; `bigmodel --help` lists them)"
        )
    if any(a in HELP for a in invocation.arguments):  # --help group=option: the code behind the option
        from bigmodel_cli.cli.readers import print_readers, wanted_options

        try:
            options = wanted_options(invocation.arguments)
        except UserError as exc:
            return print_error(str(exc), exc if verbose else None)
        if options:
            print_readers(options)
            return 0
    from bigmodel_cli.commands.app import run_subcommand

    return run_subcommand(command, invocation.arguments, verbose)
