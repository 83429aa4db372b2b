"""What the terminal shows: which log records reach it, how numbers and times read, which columns
of a wide table fit, and a progress bar for slow work that is not training.

Third-party INFO banners, tips and warnings go to the job's log file only (Hydra's `<task>.log`,
which keeps every record); the console keeps bigmodel's own log records and anyone's errors.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

OWN_LOGGERS = ("bigmodel_cli", "hydra_plugins.bigmodel_sweepers")
# The `_target_` of each piece a run builds: for the log file (the map from option to code), not the screen.
PIECES_LOGGER = "bigmodel_cli.pieces"
# Work shorter than this shows no bar: a bar that flashes for a moment is noise.
PROGRESS_DELAY_S = 2.0


class ConsoleFilter(logging.Filter):
    """Named by conf/hydra/default.yaml's job_logging for the console handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        return record.name.startswith(OWN_LOGGERS) and record.name != PIECES_LOGGER


def significant(value: float, digits: int = 4) -> str:
    """A number to `digits` significant digits: 0.9861, 1257, 3.142e-05 (no 17-digit floats)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numbers.Real: numpy's too
        return str(value)
    value = float(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.{digits}g}"


def short_duration(seconds: float | None) -> str:
    """7s, 1m05s, 2h03m: a run's length at a glance."""
    if seconds is None:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def short_age(seconds: float | None) -> str:
    """How long ago, in the largest whole unit: 40s, 12m, 3h, 30d."""
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


# What a column costs besides its text in a rich table (a space each side and a rule), and a
# column of free text that wraps counts as at most FOLD_WIDTH characters.
COLUMN_EXTRA = 3
FOLD_WIDTH = 24


def columns_that_fit(
    header: list[str], rows: list[list[str]], room: int, priority: list[int], fold: int | None = None
) -> list[int]:
    """The indices of the columns to show in `room` characters, in table order: whole columns, the
    most important first (`priority`, then the rest in order), rather than every column folded
    letter by letter. Column `fold` may wrap, so it counts as at most FOLD_WIDTH."""
    widths = [max(len(text) for text in [name, *(row[i] for row in rows)]) for i, name in enumerate(header)]
    if fold is not None:
        widths[fold] = min(widths[fold], FOLD_WIDTH)
    used, shown = 1, []  # the table's closing rule
    for i in [*priority, *(i for i in range(len(header)) if i not in priority)]:
        if used + widths[i] + COLUMN_EXTRA <= room or not shown:
            shown.append(i)
            used += widths[i] + COLUMN_EXTRA
    return sorted(shown)


def print_fitted_table(
    console, header: list[str], rows: list[list[str]], priority: list[int], where: str, fold: int | None = None, **table
) -> None:
    """Print the columns of `rows` that fit the console (columns_that_fit) as a rich Table (`table`:
    its options), then one line naming the columns left out and `where` the user finds them."""
    from rich.table import Table
    from rich.text import Text

    shown = columns_that_fit(header, rows, console.width, priority, fold)
    view = Table(**table)
    for i in shown:
        view.add_column(header[i], no_wrap=i != fold, overflow="fold" if i == fold else "ellipsis")
    for row in rows:
        view.add_row(*(Text(row[i]) for i in shown))  # user text (regularizer=[l2,dropout]): no markup
    console.print(view)
    left_out = [name for i, name in enumerate(header) if i not in shown]
    if left_out:
        console.print(f"not shown at this width: {', '.join(left_out)} ({where})", highlight=False)


def slow_progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Yield `items`; once this has taken PROGRESS_DELAY_S, show a progress bar for the rest
    (on stderr, on rank zero only)."""
    from bigmodel_cli.process_state import is_rank_zero

    start = time.monotonic()
    progress = task = None
    try:
        for done, item in enumerate(items):
            if progress is None and is_rank_zero() and time.monotonic() - start > PROGRESS_DELAY_S:
                from rich.console import Console
                from rich.progress import Progress

                progress = Progress(console=Console(stderr=True))
                progress.start()
                task = progress.add_task(description, total=total, completed=done)
            if progress is not None:
                progress.advance(task)
            yield item
    finally:
        if progress is not None:
            progress.stop()
