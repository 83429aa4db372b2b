"""argparse for the tools (runs, report, diff, cp, reproduce, completion). A bad argument is one
error line and exit 2, as every other bad input; argparse's own error is its usage and the error,
two lines."""

from __future__ import annotations

import argparse

from bigmodel_cli.errors import UserError


class ToolParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UserError(f"{self.prog}: {message}; fix: `{self.prog} --help` lists its arguments")


def count(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    if not text.isdecimal():
        raise argparse.ArgumentTypeError(f"{text!r} is not a count; valid: a whole number, 0 or more")
    return int(text)
