"""Where a job's config comes from (bigmodel_cli/config/source.py): a saved run's .hydra folder."""

from __future__ import annotations

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from bigmodel_cli.config.catalogue import conf_dir
from bigmodel_cli.config.resolvers import register_resolvers
from bigmodel_cli.config.source import mode_is_unset, option_value, saved_config_arguments


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


def test_no_built_in_config_sets_hydra_mode():
    """commands/app.py::known_mode answers Hydra's mode question without composing the config on
    the strength of this: a config in conf/ that sets hydra.mode would be ignored by plain runs."""
    conf = conf_dir()
    setters = []
    for path in conf.rglob("*.yaml"):
        text = path.read_text()
        node = yaml.safe_load(text) or {}
        in_hydra_package = path.relative_to(conf).parts[0] == "hydra" or "@package hydra" in text
        hydra_node = node if in_hydra_package else node.get("hydra") or {}
        if isinstance(hydra_node, dict) and "mode" in hydra_node:
            setters.append(str(path.relative_to(conf)))
    assert setters == []


@pytest.mark.parametrize(
    "args, unset",
    [
        (["model=mlp", "optimizer.lr=1e-3,1e-2", "--multirun"], True),
        (["hydra.mode=MULTIRUN"], False),
        (["++hydra.mode=RUN"], False),
        (["--config-dir", "my_conf", "experiment=mine"], False),
        (["hydra.searchpath=[pkg://my_pkg.conf]"], False),
        (["--config-path", "/runs/a/.hydra", "--config-name", "config"], False),
    ],
)
def test_mode_is_unset_unless_a_users_config_or_an_override_may_set_it(args, unset):
    assert mode_is_unset(args) is unset


def test_a_run_composes_its_config_once(cli, monkeypatch):
    from hydra._internal.hydra import Hydra

    compositions = []
    compose_config = Hydra.compose_config
    monkeypatch.setattr(
        Hydra, "compose_config", lambda self, *a, **k: compositions.append(1) or compose_config(self, *a, **k)
    )
    assert cli("train", "--cfg", "job")[0] == 0  # Hydra's own show_cfg path: one composition
    assert cli("train", "debug=fdr")[0] == 0
    assert len(compositions) == 2


def test_hydra_mode_in_a_users_experiment_still_makes_a_sweep(cli, in_tmp_cwd):
    experiments = in_tmp_cwd / "my_conf" / "experiment"
    experiments.mkdir(parents=True)
    (experiments / "two_seeds.yaml").write_text(
        "# @package _global_\nhydra:\n  mode: MULTIRUN\n  sweeper:\n    params:\n      seed: 1,2\n"
    )
    code, _, err = cli("train", "--config-dir", "my_conf", "experiment=two_seeds", "debug=fdr")
    assert code == 0, err
    (sweep,) = (in_tmp_cwd / "multirun" / "train").iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
