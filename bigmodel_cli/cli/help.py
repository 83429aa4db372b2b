"""`bigmodel --help`: subcommands and every config group's options, read from the config tree."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bigmodel_cli.config import catalogue


def print_help(subcommands: dict[str, tuple[str, str, str]], tools: dict[str, tuple[str, str]]) -> None:
    console = Console(highlight=False)
    console.print("[bold]bigmodel[/] - config-driven deep-learning experiments (Hydra + PyTorch Lightning)\n")
    console.print(
        "usage: bigmodel <subcommand> [group=option ...] [key=value ...] [-m] [--cfg job] [--verbose]\n", markup=False
    )

    commands = Table(title="subcommands", title_justify="left", show_header=False, box=None, padding=(0, 2))
    for name, (_, _, summary) in subcommands.items():
        commands.add_row(f"[cyan]{name}[/]", summary)
    for name, (_, summary) in tools.items():
        commands.add_row(f"[cyan]{name}[/]", summary)
    console.print(commands)

    chosen = catalogue.default_choices()
    table = Table(title="config groups (default in bold)", title_justify="left")
    table.add_column("group", style="cyan")
    table.add_column("options")
    for group, options in catalogue.groups().items():
        shown = [f"[bold]{o}[/]" if o == chosen.get(group) else o for o in options]
        table.add_row(group, ", ".join(shown))
    console.print(table)
    console.print(
        "\nexamples:\n"
        "  bigmodel train                                    # CNN on the bundled digits data\n"
        "  bigmodel train model=mlp optimizer=sgd optimizer.lr=0.05 trainer.max_epochs=5\n"
        "  bigmodel train -m optimizer=sgd,adam optimizer.lr=1e-3,1e-2   # Hydra multirun sweep\n"
        "  bigmodel test ckpt_path=outputs/train/<run>/checkpoints/best.ckpt\n"
        "  bigmodel train --cfg job                          # print the composed config, run nothing\n"
        "\n`bigmodel <subcommand> --help` shows Hydra's help with the full config.",
        markup=False,
        soft_wrap=True,
    )
