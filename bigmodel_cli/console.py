"""What the terminal shows: which log records reach it, how numbers read, and a progress bar for
slow work that is not training.

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
# Work shorter than this shows no bar: a bar that flashes for a moment is noise.
PROGRESS_DELAY_S = 2.0


class ConsoleFilter(logging.Filter):
    """Named by conf/hydra/default.yaml's job_logging for the console handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or record.name.startswith(OWN_LOGGERS)


def significant(value: float, digits: int = 4) -> str:
    """A number to `digits` significant digits: 0.9861, 1257, 3.142e-05 (no 17-digit floats)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numbers.Real: numpy's too
        return str(value)
    value = float(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.{digits}g}"


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
