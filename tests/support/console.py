"""What a run's console must and must not show (issue: a quiet, informative console)."""

from __future__ import annotations

# Third-party noise that belongs in the job's log file, never on the terminal.
NOISE = (
    "GPU available",
    "TPU available",
    "litlogger",
    "Tip:",
    "Skipping setting a default",
    "site-packages",
    "is deprecated",
    "Warning",
    "[INFO]",
)
HEADER = ("run      ", "model    ", "data     ", "devices  ", "batch    global batch")


def assert_quiet_console(console: str, devices: int = 1) -> None:
    noise = [n for n in NOISE if n in console]
    assert not noise, f"console noise {noise}:\n{console}"
    for start in HEADER:
        lines = [line for line in console.splitlines() if line.startswith(start)]
        assert len(lines) == 1, f"header line {start!r} appears {len(lines)} times:\n{console}"
    assert f"devices  {devices} cpu" in console
    # The progress bar keeps its three numbers on the epoch's line.
    epoch_lines = [line for line in console.splitlines() if line.startswith("Epoch ")]
    assert epoch_lines and all("loss:" in line and "val/acc:" in line for line in epoch_lines), console
    # The final table: a column per split, 4 significant digits at most.
    table_head = next(line for line in console.splitlines() if "metric" in line)
    assert all(split in table_head for split in ("train", "val", "test")), console
