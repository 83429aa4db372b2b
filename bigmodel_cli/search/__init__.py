"""Hyper-parameter search on Optuna's public API: the study's storage, samplers and pruners by name
(study.py), the YAML search space (space.py), a job reporting to its trial (trial_reports.py) and the
study's pictures (plots.py). The Hydra sweeper that drives it is hydra_plugins/bigmodel_sweepers."""
