"""Every option in conf/ does what it says: EFFECTS maps each `group=option` to the test that fails
if the option did nothing (a schedule's lr has its shape, an augmentation changes training batches
and never evaluation ones, an optimizer updates differently from the others, ...). A new YAML
option without an entry here fails `test_every_option_has_an_effect_test`, and so does a top-level
switch named in SWITCHES (`compile=true`).

Entries name a test function as `module::function` (parametrized tests cover the option among
their cases). Most of the effect tests for this table live in this file; the others are in the
test module that owns the feature."""

from __future__ import annotations

import csv
import importlib
import logging
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from bigmodel_cli.commands import train
from bigmodel_cli.config import catalogue
from bigmodel_cli.config.catalogue import conf_dir, option_yaml
from bigmodel_cli.lightning_modules.optim import build_optimizer
from bigmodel_cli.training.pieces import build_datamodule, build_module, build_trainer, plain
from tests.conftest import FAST, fitted, record_batches

EFFECTS: dict[str, str] = {
    # accelerator: the trainer runs the named strategy, or fails with one line where the hardware is missing
    **{
        f"accelerator={o}": "config.test_option_effects::test_accelerator_options_choose_their_strategy"
        for o in ("auto", "cpu", "ddp", "ddp_spawn", "gpu", "mps", "fsdp")
    },
    # augmentation: training batches change, validation and test batches never do
    **{
        f"augmentation={o}": "config.test_option_effects::test_augmentation_changes_training_batches_only"
        for o in (
            "autoaugment",
            "color_jitter",
            "cutmix",
            "flip_crop",
            "mixup",
            "none",
            "randaugment",
            "random_erasing",
            "rotation",
            "standard",
            "trivialaugment",
        )
    },
    # finetune: what is frozen stays bit for bit, what trains moves, at the lr it says
    "finetune=none": "callbacks.test_finetuning::test_linear_probe_trains_the_head_only_and_none_trains_all",
    "finetune=linear_probe": "callbacks.test_finetuning::test_linear_probe_trains_the_head_only_and_none_trains_all",
    "finetune=gradual": "callbacks.test_finetuning::test_gradual_unfreezes_the_body_at_its_epoch_and_lr",
    "finetune=layerwise": "callbacks.test_finetuning::test_layerwise_decays_the_lr_layer_by_layer",
    # compress: the best checkpoint's weights are pruned to compress.amount; none leaves them dense
    "compress=none": "callbacks.test_pruning::test_the_best_checkpoint_is_pruned_to_the_amount",
    "compress=prune": "callbacks.test_pruning::test_the_best_checkpoint_is_pruned_to_the_amount",
    "callbacks=default": "config.test_option_effects::test_callback_presets_shape_the_run",
    "callbacks=eval": "config.test_option_effects::test_callback_presets_shape_the_run",
    "callbacks=minimal": "config.test_option_effects::test_callback_presets_shape_the_run",
    # data: each reader loads its real on-disk format (files the tests write, or the real dataset)
    "data=text_corpus": "lightning_modules.test_masked_lm::test_bert_pretraining_then_fine_tuning_shares_the_vocabulary",
    "data=digits": "end_to_end.test_default_job::test_default_train_reaches_95_percent",
    "data=synthetic": "data.test_data::test_synthetic_is_learnable_and_seeded",
    "data=mnist": "data.test_data::test_mnist_idx_files",
    "data=fashion_mnist": "data.test_data::test_fashion_mnist_from_the_debian_package",
    "data=cifar10": "data.test_data::test_cifar_batches",
    "data=cifar100": "data.test_data::test_cifar_batches",
    "data=imagefolder": "data.test_data::test_image_folder_and_class_count_check",
    "data=text_csv": "models.test_models::test_text_csv_reads_each_format_with_seeded_splits",
    "data=imdb": "models.test_models::test_imdb_loads_through_hugging_face_datasets",
    "data=ag_news": "models.test_models::test_imdb_loads_through_hugging_face_datasets",
    "data=char_lm": "models.test_models::test_char_lm_blocks_and_tail_split",
    "data=fortunes": "data.test_corpora::test_fortunes_labels_are_the_categories",
    "data=brown": "data.test_corpora::test_brown_passages_are_untagged_genres",
    **{f"debug={o}": "config.test_option_effects::test_debug_options" for o in ("fdr", "limit", "overfit", "profiler")},
    # every recipe: the parametrized test reads each recipe's own lines and checks they reach the job
    **{
        f"experiment={o}": "config.test_option_effects::test_experiment_recipes_choose_their_groups"
        for o in catalogue.groups()["experiment"]
    },
    "hparams_search=optuna": "search.test_optuna_sweeps::test_hopeless_trials_are_pruned_before_their_last_epoch",
    "launcher=basic": "config.test_option_effects::test_basic_launcher_runs_jobs_one_after_another",
    "launcher=joblib": "training.test_distributed::test_joblib_launcher_runs_jobs_in_parallel",
    "launcher=submitit_local": "training.test_distributed::test_submitit_local_launcher",
    "launcher=submitit_slurm": "training.test_distributed::test_submitit_slurm_config_composes",
    **{
        f"logger={o}": "config.test_option_effects::test_logger_options_write_their_files"
        for o in ("csv", "tensorboard", "none")
    },
    "logger=mlflow": "runs.test_tracking::test_a_run_logs_params_metrics_and_artifacts_to_a_tracking_server",
    # model: each family trains and overfits a fixed batch of every modality it reads
    **{
        f"model={o}": "models.test_models::test_model_overfits_a_batch"
        for o in ("bert", "cnn", "gpt", "mlp", "rcnn", "resnet", "rnn", "transformer", "vgg", "vit")
    },
    **{
        f"optimizer={o}": "config.test_option_effects::test_optimizers_update_differently"
        for o in ("adagrad", "adam", "adamw", "nesterov", "rmsprop", "sgd")
    },
    "optimizer=gd": "lightning_modules.test_techniques::test_gd_takes_one_optimizer_step_per_epoch",
    "regularizer=none": "lightning_modules.test_regularizers::test_penalties_and_decay_shrink_the_weights",
    "regularizer=l1": "lightning_modules.test_regularizers::test_penalties_and_decay_shrink_the_weights",
    "regularizer=l2": "lightning_modules.test_regularizers::test_penalties_and_decay_shrink_the_weights",
    "regularizer=elastic": "lightning_modules.test_regularizers::test_penalties_and_decay_shrink_the_weights",
    "regularizer=weight_decay": "lightning_modules.test_regularizers::test_penalties_and_decay_shrink_the_weights",
    "regularizer=dropout": "lightning_modules.test_regularizers::test_dropout_acts_in_training_only",
    "regularizer=label_smoothing": "lightning_modules.test_regularizers::test_label_smoothing_changes_the_training_loss",
    "regularizer=stochastic_depth": "lightning_modules.test_regularizers::test_stochastic_depth_acts_in_training_only",
    "regularizer=ema": "lightning_modules.test_techniques::test_ema_weights_are_validated_and_saved",
    "regularizer=swa": "callbacks.test_averaging::test_swa_checkpoints_and_tests_the_mean_of_the_epoch_end_weights",
    "regularizer=early_stopping": "config.test_option_effects::test_early_stopping_stops_on_a_plateau",
    "trainer=default": "config.test_option_effects::test_trainer_settings_reach_lightning",
    **{
        f"scheduler={o}": "config.test_option_effects::test_schedule_lr_has_its_shape"
        for o in ("cosine", "exponential", "multistep", "none", "onecycle", "plateau", "step", "warmup_cosine")
    },
    # tta: test and predict score the mean over the views, validation in the fit the plain image
    **{
        f"tta={o}": "lightning_modules.test_views::test_test_and_predict_average_the_views_and_validation_in_the_fit_does_not"
        for o in ("none", "flip", "flip_shift")
    },
    # switches (SWITCHES below): compile=true: dynamo compiles the backbone and training gives eager's result
    "compile=true": "lightning_modules.test_compiling::test_compiled_training_is_eager_training_and_dynamo_compiled_it",
    # init_head=pretrained: init_from loads the matching classifier head too (fresh by default)
    "init_head=pretrained": "training.test_init_from::test_init_head_pretrained_loads_the_matching_head_too",
}

# Top-level switches of train.yaml that change how a run trains, held to the same rule.
SWITCHES = ["compile=true", "init_head=pretrained"]

OPTIONS = [f"{group}={option}" for group, options in catalogue.groups().items() for option in options] + SWITCHES


def test_every_option_has_an_effect_test():
    missing = sorted(set(OPTIONS) - EFFECTS.keys())
    assert not missing, (
        f"options without an effect test (add them to EFFECTS with a test that fails if the option did nothing): {missing}"
    )
    stale = sorted(EFFECTS.keys() - set(OPTIONS))
    assert not stale, f"EFFECTS names options that no longer exist: {stale}"
    for option, test in EFFECTS.items():
        module, function = test.split("::")
        assert callable(getattr(importlib.import_module(f"tests.{module}"), function, None)), (
            f"{option}: no test {test}"
        )


def options_of(group: str) -> list[str]:
    return catalogue.groups()[group]


# --- optimizer ----------------------------------------------------------------------------------


def test_optimizers_update_differently(compose_cfg):
    """From the same weights and batch, three steps of each optimizer end in different weights
    (nesterov differs from plain sgd momentum, adamw's decoupled decay from adam, ...)."""
    ends = {}
    for option in [o for o in options_of("optimizer") if o != "gd"]:
        with compose_cfg(
            "train", ["model=mlp", f"optimizer={option}", "optimizer.weight_decay=0.01"], name=option
        ) as cfg:
            datamodule = build_datamodule(cfg.data)
            torch.manual_seed(0)
            module = build_module(plain(cfg))
        datamodule.setup("fit")
        x, y = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
        start = torch.cat([p.detach().flatten() for p in module.parameters()])
        optimizer = build_optimizer(module, module.config["optimizer"])
        for _ in range(3):
            optimizer.zero_grad()
            module.criterion(module(x), y).backward()
            optimizer.step()
        ends[option] = torch.cat([p.detach().flatten() for p in module.parameters()])
        assert not torch.equal(ends[option], start), f"optimizer={option} did not move the weights"
    names = list(ends)
    same = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if torch.allclose(ends[a], ends[b])]
    assert not same, f"these optimizers updated identically: {same}"


# --- scheduler ----------------------------------------------------------------------------------


def lr_curve(run_dir: Path) -> list[float]:
    """The learning rates the lr monitor logged to the CSV log, in order."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    column = next(c for c in rows[0] if c.startswith("lr-") and "momentum" not in c and "weight_decay" not in c)
    return [float(r[column]) for r in rows if r[column]]


# plateau: a 10% improvement threshold that a tiny lr cannot reach, so every epoch is flat.
SCHEDULE_SETTINGS = {
    "multistep": ["scheduler.milestones=[2,4]"],
    "plateau": ["scheduler.patience=0", "scheduler.threshold=0.1", "optimizer.lr=1e-5"],
}


@pytest.mark.parametrize("option", options_of("scheduler"))
def test_schedule_lr_has_its_shape(option, compose_cfg, monkeypatch):
    overrides = [
        *[o for o in FAST if not o.startswith("trainer.max_epochs")],
        "trainer.max_epochs=5",
        "trainer.log_every_n_steps=1",
        "test_after_fit=false",
        f"scheduler={option}",
        *SCHEDULE_SETTINGS.get(option, []),
    ]
    with compose_cfg("train", overrides) as cfg:
        _, trainer, _ = fitted(cfg, monkeypatch)
        lrs = lr_curve(Path(cfg.paths.output_dir))
        interval = cfg.scheduler.get("interval", "epoch")
        start = float(cfg.optimizer.lr)
    per_epoch = interval == "epoch"
    if option != "none":  # a schedule's lr is logged at its own interval (with none, at every one)
        assert len(lrs) == (5 if per_epoch else trainer.global_step), (
            f"lr logged {len(lrs)} times at interval={interval}"
        )
    ratios = [b / a for a, b in zip(lrs, lrs[1:])]
    if option == "none":
        assert set(lrs) == {start}
    elif option == "cosine":
        assert lrs[0] == pytest.approx(start) and all(r < 1 for r in ratios) and lrs[-1] > 0
    elif option == "step":  # x gamma (0.5) every step_size (3) epochs
        assert lrs[:3] == [lrs[0]] * 3 and lrs[3] == pytest.approx(0.5 * lrs[0])
    elif option == "multistep":  # x 0.1 at epochs 2 and 4
        assert lrs[2] == pytest.approx(0.1 * lrs[0]) and lrs[4] == pytest.approx(0.01 * lrs[0]) and lrs[1] == lrs[0]
    elif option == "exponential":
        assert ratios == pytest.approx([0.9] * 4)
    elif option == "plateau":  # no improvement: halved after each flat epoch
        assert lrs[-1] < lrs[0] and all(r in (1.0, pytest.approx(0.5)) for r in ratios)
    elif option in ("warmup_cosine", "onecycle"):  # up, then down (onecycle ends far below its start)
        peak = lrs.index(max(lrs))
        assert 0 < peak < len(lrs) - 1 and lrs[0] < max(lrs) and lrs[-1] < lrs[peak]
        if option == "onecycle":
            assert lrs[-1] < lrs[0] / 100
    else:
        pytest.fail(f"scheduler={option} has no expected shape in this test")


# --- augmentation -------------------------------------------------------------------------------


def batches_seen(cfg, monkeypatch) -> dict[str, torch.Tensor]:
    """Every (normalised, augmented) batch each step function received in a short run, concatenated
    (a batch-level mixer may leave one batch untouched: CutMix's box can be empty)."""
    seen = {split: record_batches(monkeypatch, split) for split in ("training", "validation", "test")}
    train.run(cfg)
    monkeypatch.undo()
    return {split: torch.cat([x for x, _ in batches]) for split, batches in seen.items()}


@pytest.mark.parametrize("option", options_of("augmentation"))
def test_augmentation_changes_training_batches_only(option, compose_cfg, monkeypatch):
    common = list(FAST)
    with compose_cfg("train", common, name="plain") as cfg:
        plain_batches = batches_seen(cfg, monkeypatch)
    with compose_cfg("train", [*common, f"augmentation={option}"], name=option) as cfg:
        augmented = batches_seen(cfg, monkeypatch)
    for split in ("validation", "test"):
        assert torch.equal(plain_batches[split], augmented[split]), f"augmentation={option} touched {split} batches"
    if option == "none":
        assert torch.equal(plain_batches["training"], augmented["training"])
    else:
        assert not torch.equal(plain_batches["training"], augmented["training"]), (
            f"augmentation={option} left the training batches unchanged"
        )


# --- regularizer/callbacks early stopping ---------------------------------------------------------


def test_early_stopping_stops_on_a_plateau(compose_cfg, monkeypatch):
    # lr 1e-9: the objective cannot improve, so training stops after `patience` flat validations.
    overrides = [
        *[o for o in FAST if not o.startswith("trainer.max_epochs")],
        "trainer.max_epochs=20",
        "optimizer.lr=1e-9",
        "scheduler=none",
        "regularizer=early_stopping",
        "regularizer.callbacks.early_stopping.patience=2",
    ]
    with compose_cfg("train", overrides) as cfg:
        _, trainer, _ = fitted(cfg, monkeypatch)
    assert trainer.current_epoch <= 4, f"early stopping ran {trainer.current_epoch} of 20 epochs on a flat objective"


# --- accelerator ----------------------------------------------------------------------------------

EXPECTED_STRATEGY = {
    "auto": "SingleDeviceStrategy",
    "cpu": "SingleDeviceStrategy",
    "ddp": "DDPStrategy",
    "ddp_spawn": "DDPStrategy",
}
HARDWARE = {"gpu", "mps", "fsdp"}  # refused with one line on a machine without that hardware


@pytest.mark.parametrize("option", options_of("accelerator"))
def test_accelerator_options_choose_their_strategy(option, compose_cfg):
    from bigmodel_cli.errors import UserError

    with compose_cfg("train", [f"accelerator={option}"]) as cfg:
        wanted = str(cfg.trainer.accelerator)
        has_hardware = (
            torch.cuda.is_available()
            if wanted == "gpu"
            else (torch.backends.mps.is_available() if wanted == "mps" else True)
        )
        if option in HARDWARE and not has_hardware:
            with pytest.raises(UserError, match=f"accelerator={wanted}.*cannot run here"):
                build_trainer(cfg)
            return
        trainer = build_trainer(cfg)
    strategy = type(trainer.strategy).__name__
    if option in EXPECTED_STRATEGY:
        assert strategy == EXPECTED_STRATEGY[option], f"accelerator={option} gave {strategy}"
    if option == "ddp_spawn":
        assert trainer.strategy._start_method == "spawn"
    if option == "cpu":
        assert type(trainer.accelerator).__name__ == "CPUAccelerator"


# --- callbacks, logger, debug ---------------------------------------------------------------------


@pytest.mark.parametrize("option", ["default", "minimal", "eval"])
def test_callback_presets_shape_the_run(option, compose_cfg, monkeypatch, capsys):
    task = "test" if option == "eval" else "train"
    if task == "test":
        with compose_cfg("test", ["ckpt_path=x.ckpt"]) as cfg:
            trainer = build_trainer(cfg)
        kinds = {type(c).__name__ for c in trainer.callbacks}
        # (Lightning adds its own ModelCheckpoint, idle outside fit.)
        assert "RichProgressBar" in kinds and not kinds & {"LearningRateMonitor", "BackboneSummary", "EarlyStopping"}
        return
    with compose_cfg("train", [f"callbacks={option}", *FAST]) as cfg:
        _, trainer, _ = fitted(cfg, monkeypatch)
        run = Path(cfg.paths.output_dir)
    bar = trainer.progress_bar_callback
    out = capsys.readouterr().out
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    with open(run / "csv" / "metrics.csv", newline="") as f:
        columns = next(csv.reader(f))
    if option == "default":  # best + last checkpoints, lr monitor, model summary table, progress bar
        assert checkpoints == ["best.ckpt", "last.ckpt"]
        assert any(c.startswith("lr-") for c in columns)
        assert "trainable), " in out and bar is not None and bar.is_enabled
    else:  # minimal: the best checkpoint and last.ckpt (what resume= takes), no lr monitor, no summary, no bar
        assert checkpoints == ["best.ckpt", "last.ckpt"]
        assert not any(c.startswith("lr-") for c in columns)
        assert "trainable), " not in out and bar is None


@pytest.mark.parametrize("option", [o for o in options_of("logger") if o != "mlflow"])  # mlflow: runs/test_tracking
def test_logger_options_write_their_files(option, compose_cfg, monkeypatch):
    with compose_cfg("train", [f"logger={option}", *FAST]) as cfg:
        fitted(cfg, monkeypatch)
        run = Path(cfg.paths.output_dir)
    has_csv = (run / "csv" / "metrics.csv").is_file()
    has_events = any((run / "tensorboard").glob("events.out.tfevents.*")) if (run / "tensorboard").is_dir() else False
    assert (has_csv, has_events) == {"csv": (True, False), "tensorboard": (False, True), "none": (False, False)}[option]
    if has_csv:
        columns = next(csv.reader(open(run / "csv" / "metrics.csv")))
        assert {"train/loss", "val/acc"} <= set(columns)


@pytest.mark.parametrize("option", options_of("debug"))
def test_debug_options(option, compose_cfg, monkeypatch, caplog):
    batches = record_batches(monkeypatch)
    overrides = [f"debug={option}"] + (["trainer.max_epochs=3"] if option == "overfit" else [])
    if option == "profiler":
        overrides.append("trainer.limit_train_batches=3")
    with caplog.at_level(logging.INFO), compose_cfg("train", overrides) as cfg:
        _, trainer, _ = fitted(cfg, monkeypatch)
        run = Path(cfg.paths.output_dir)
    if option == "fdr":  # one batch, no checkpoint written
        assert trainer.global_step == 1 and not list(run.rglob("*.ckpt"))
    elif option == "limit":  # 3 batches x 2 epochs, checkpoints included
        assert trainer.global_step == 6 and (run / "checkpoints" / "last.ckpt").is_file()
    elif option == "overfit":  # the same batch at every step
        inputs = [x for x, _ in batches]
        assert len(inputs) == 3 and all(torch.equal(inputs[0], x) for x in inputs)
    elif option == "profiler":
        assert "Profiler Report" in caplog.text
    else:
        pytest.fail(f"debug={option} has no expected effect in this test")


def test_without_a_profiler_hooks_run_in_one_shared_null_context(compose_cfg, monkeypatch):
    """trainer.profiler=null: Lightning's hooks run in no per-hook context manager (PassThroughProfiler
    builds one for each of ~170 hook calls a step); debug=profiler above keeps Lightning's own."""
    from pytorch_lightning.profilers import PassThroughProfiler

    entered = []
    monkeypatch.setattr(PassThroughProfiler, "start", lambda self, name: entered.append(name))
    with compose_cfg("train", ["trainer.max_epochs=1", "trainer.limit_train_batches=2"]) as cfg:
        _, trainer, _ = fitted(cfg, monkeypatch)
    # Only the loops' own start() calls (around fetching a batch) remain: no hook goes through one.
    assert entered and not [name for name in entered if "[Callback]" in name or "[LightningModule]" in name]
    assert trainer.profiler.profile("a") is trainer.profiler.profile("b")


# --- experiment, launcher -------------------------------------------------------------------------


@pytest.mark.parametrize("option", options_of("experiment"))
def test_experiment_recipes_choose_their_groups(option, compose_cfg):
    """A recipe's `override /group: option` lines and values reach the composed job (a recipe that
    lost its `# @package _global_` line would silently change nothing)."""
    from hydra.core.hydra_config import HydraConfig

    recipe = yaml.safe_load((conf_dir() / "experiment" / f"{option}.yaml").read_text())
    overrides = {
        k.split("/")[-1]: v
        for entry in recipe.get("defaults", [])
        if isinstance(entry, dict)
        for k, v in entry.items()
        if k.startswith("override")
    }
    with compose_cfg("train", [f"experiment={option}"]) as cfg:
        choices = HydraConfig.get().runtime.choices
        for group, chosen in overrides.items():
            assert choices[group] == chosen, f"experiment={option}: {group}={choices[group]}, recipe says {chosen}"
        model_target = cfg.model._target_
        for group in ("data", "trainer", "optimizer"):
            as_written = OmegaConf.to_container(cfg[group])  # interpolations as the recipe wrote them
            for key, value in (recipe.get(group) or {}).items():
                if not isinstance(value, (dict, list)):
                    assert as_written[key] == value, f"experiment={option}: {group}.{key} not applied"
    assert model_target == option_yaml("model", choices["model"])["_target_"]


def test_basic_launcher_runs_jobs_one_after_another(cli, in_tmp_cwd):
    import json
    from datetime import datetime

    code, _, err = cli("train", "-m", "launcher=basic", "run_name=seq", "optimizer=sgd,adam", *FAST)
    assert code == 0, err
    spans = []
    for job in ("0", "1"):
        record = json.loads((in_tmp_cwd / "multirun" / "train" / "seq" / job / "run.json").read_text())
        spans.append((datetime.fromisoformat(record["start_time"]), datetime.fromisoformat(record["end_time"])))
    assert spans[0][1] <= spans[1][0], f"basic launcher jobs overlapped: {spans}"


def test_trainer_settings_reach_lightning(compose_cfg, monkeypatch):
    """The trainer group's keys drive Lightning's loop: 2 epochs of 6 batches accumulated 3 at a
    time are 4 optimizer steps, validated every second epoch only."""
    overrides = [
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=6",
        "trainer.limit_val_batches=1",
        "trainer.accumulate_grad_batches=3",
        "trainer.check_val_every_n_epoch=2",
        "test_after_fit=false",
    ]
    with compose_cfg("train", overrides) as cfg:
        _, trainer, _ = fitted(cfg, monkeypatch)
        rows = list(csv.DictReader(open(Path(cfg.paths.output_dir) / "csv" / "metrics.csv")))
    assert trainer.global_step == 4 and trainer.current_epoch == 2
    assert [int(r["epoch"]) for r in rows if r.get("val/acc")] == [1]
