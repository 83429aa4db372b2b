"""Where a job's config comes from (bigmodel_cli/config/source.py): a saved run's .hydra folder."""

from __future__ import annotations

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from bigmodel_cli.config.resolvers import register_resolvers
from bigmodel_cli.config.source import option_value, saved_config_arguments


def test_a_run_saved_before_the_package_move_composes_with_the_new_names(tmp_path):
    saved = {
        "task_name": "train",
        "seed": 1,
        "callbacks": {"progress_bar": {"_target_": "bigmodel_cli.progress.RichProgressBar", "refresh_rate": 10}},
        "trainer": {
            "strategy": {
                "_target_": "bigmodel_cli.strategies.fsdp",
                "auto_wrap": ["bigmodel_cli.models.transformer.Block"],
            }
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    args = saved_config_arguments(["--config-path", str(tmp_path), "--config-name", "config"])
    moved = [a for a in args if a.startswith(("callbacks.", "trainer."))]
    assert moved == [
        "callbacks.progress_bar._target_=bigmodel_cli.callbacks.progress.RichProgressBar",
        "trainer.strategy._target_=bigmodel_cli.training.strategies.fsdp",
    ]
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=option_value(args, "--config-path"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=moved)
    GlobalHydra.instance().clear()
    assert cfg.callbacks.progress_bar._target_ == "bigmodel_cli.callbacks.progress.RichProgressBar"
    assert cfg.trainer.strategy.auto_wrap == ["bigmodel_cli.models.transformer.Block"]  # unmoved names stay
