"""The start-up path: argv (argv.py), `bigmodel --help` (help.py) and dispatch to a subcommand
(main.py). Imports no torch or Lightning, so `--help` and `--cfg job` stay fast."""
