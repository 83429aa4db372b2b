"""The one error type for user mistakes, and how an error is printed as one line.

A `UserError` message names the bad value, the valid choices and the fix. The CLI prints it in one
red line with no traceback (exit 2); `--verbose` or HYDRA_FULL_ERROR=1 shows the traceback. Other
layers turn foreign errors into such lines: config/composition_errors (Hydra's composition and
override errors), runs/dir_errors (a run directory that cannot be written).
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for: bad option, bad value, missing file, mismatch."""


def choices_text(options) -> str:
    return ", ".join(str(o) for o in options)


def print_error(line: str, exc: BaseException | None = None, code: int = 2) -> int:
    """Print `error: <line>` on stderr (after exc's traceback when one is given); returns code."""
    if exc is not None:
        import traceback

        traceback.print_exception(exc)
    from rich.console import Console
    from rich.text import Text

    # The message is user text (paths, list overrides like regularizer=[l2,dropout]): never markup.
    Console(stderr=True, highlight=False, soft_wrap=True).print(Text.assemble(("error:", "bold red"), " ", line))
    return code
