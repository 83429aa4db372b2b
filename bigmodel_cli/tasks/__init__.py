"""One module per subcommand. Each has `run(cfg) -> dict` of final metrics (called in-process by
tests) and `main(cfg)`, the Hydra task function, which also records the run's results."""
