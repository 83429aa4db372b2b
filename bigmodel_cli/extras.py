"""Optional dependencies: the pip extra that installs each, asked for in one line.

The base install leaves matplotlib out (torchmetrics, which Lightning imports at start-up, imports
matplotlib.pyplot and scipy.signal whenever they are installed: about 1 s on every run). Plots come
with `pip install 'bigmodel-cli[plots]'`. The rule: a plot that comes with numbers (lr-find's
suggestion, report's tables) is skipped with one note line and the numbers still come; a command
whose product is the picture (explain on images) stops before its work with one error line, exit 2.
"""

from __future__ import annotations

from bigmodel_cli.errors import UserError

PLOTS_INSTALL = "pip install 'bigmodel-cli[plots]'"


def has_matplotlib() -> bool:
    """Whether matplotlib imports (a blocked or missing install both say no)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def missing_plots(what: str) -> str:
    """The one line for a skipped plot: what was skipped, why, and the command that brings it."""
    return f"{what} skipped: matplotlib is not installed (fix: {PLOTS_INSTALL})"


def require_matplotlib(what: str) -> None:
    """UserError (one line, exit 2) when matplotlib is missing: for commands whose product is a picture."""
    if not has_matplotlib():
        raise UserError(f"{what} needs matplotlib, which is not installed; fix: {PLOTS_INSTALL}")


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (call has_matplotlib or require_matplotlib first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
