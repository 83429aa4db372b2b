"""One module per subcommand, and the Hydra app that runs them (app.py).

A Hydra subcommand's module has `run(cfg) -> dict` of final metrics (called in-process by tests)
and `main(cfg)`, the task function, which also records the run's results (job.task_main). A tool
(a subcommand that reads run directories rather than composing a config) has `main(argv) -> int`.
A new subcommand is a module here plus a line in SUBCOMMANDS or TOOLS (and, for a Hydra one, its
primary config in conf/). Importing this package imports nothing heavy: `bigmodel --help` reads it.
"""

# subcommand -> (primary config in conf/, module, one-line summary)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("train", "bigmodel_cli.commands.train", "fit on train, validate every epoch, test the best checkpoint"),
    "validate": ("validate", "bigmodel_cli.commands.evaluate", "evaluate a checkpoint on the validation split"),
    "test": ("test", "bigmodel_cli.commands.evaluate", "evaluate a checkpoint on the test split"),
    "predict": (
        "predict",
        "bigmodel_cli.commands.predict",
        "write class predictions of a checkpoint to predictions.csv",
    ),
    "lr-find": (
        "lr_find",
        "bigmodel_cli.commands.lr_find",
        "learning-rate range test: suggested optimizer.lr and lr_find.png",
    ),
    "generate": (
        "generate",
        "bigmodel_cli.commands.generate",
        "sample text from a language-model checkpoint (model=gpt)",
    ),
    "export": (
        "export",
        "bigmodel_cli.commands.export",
        "a checkpoint as ONNX or torch.export, checked and timed against PyTorch",
    ),
    "compress": (
        "compress",
        "bigmodel_cli.commands.compress",
        "int8 quantisation or pruning of a checkpoint, measured against the original",
    ),
    "explain": (
        "explain",
        "bigmodel_cli.commands.explain",
        "attributions of a checkpoint's predictions (Captum): pictures and a faithfulness test",
    ),
}

# Tools: name -> (module with `main(argv: list[str]) -> int`, one-line summary).
TOOLS: dict[str, tuple[str, str]] = {
    "report": (
        "bigmodel_cli.commands.report",
        "table, summary.csv/.md and plots of every job in a sweep or runs directory",
    ),
    "reproduce": (
        "bigmodel_cli.commands.reproduce",
        "re-run a past run from its saved config; --verify compares the metrics",
    ),
    "runs": (
        "bigmodel_cli.commands.runs",
        "list the runs under outputs/ and multirun/: status, overrides, metrics, age; filters, --json",
    ),
    "diff": ("bigmodel_cli.commands.diff", "what differs between two runs: config keys, versions, metrics"),
    "cp": (
        "bigmodel_cli.commands.cp",
        "copy a built-in option's YAML to start your own: bigmodel cp model/cnn my_conf/model/my_cnn.yaml",
    ),
    "completion": (
        "bigmodel_cli.commands.completion",
        "print a shell completion script: bigmodel completion bash|zsh|fish",
    ),
}
