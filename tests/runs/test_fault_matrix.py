"""Interrupt anything, anywhere, lose nothing: for every option in conf/ that trains, a
deterministic CPU run killed with SIGKILL at a seeded random step and resumed with
`bigmodel train resume=<run>` ends exactly where the same run left alone ends: the same validation
rows in its CSV log, the same metrics.json and the same last.ckpt tensors, bit for bit.

The rows are generated from conf/ (every `group=option`, apart from the groups and options
NOT_ROWS names with the reason), so a new option without a row fails
`test_every_option_has_a_fault_row`. last.ckpt is written every 2 optimizer steps, and the kill
step is drawn per option, so most kills land mid-epoch, some right before a save and some right
after one. The killed runs are forked from one process that has done the imports
(tests/support/faults.py); the uninterrupted and resumed runs run in this process.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from bigmodel_cli.config import catalogue
from tests.support.data_files import (
    write_brown,
    write_cifar,
    write_fortunes,
    write_image_folder,
    write_mnist_like,
    write_text_table,
)
from tests.support.faults import ForkServer, fault_overrides

EPOCHS, BATCHES = 2, 4  # 8 optimizer steps; last.ckpt every 2
BASE = [
    "accelerator=cpu",
    "deterministic=true",
    f"trainer.max_epochs={EPOCHS}",
    f"trainer.limit_train_batches={BATCHES}",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "callbacks.last_checkpoint.every_n_steps=2",
]

# Groups whose options are not training settings of one run.
NOT_GROUPS = {
    "launcher": "sweeps: tests/runs/test_sweeps.py and tests/search/ interrupt their jobs",
    "hparams_search": "sweeps: tests/search/test_optuna_sweeps.py interrupts its trials",
    "trainer": "the trainer group's one option is the default every row runs",
}
NOT_ROWS = {
    "accelerator=gpu": "no GPU on the test machine",
    "accelerator=mps": "no Apple GPU on the test machine",
    "accelerator=fsdp": "FSDP runs on GPUs only",
    "accelerator=ddp": "several processes: tests/training/test_clusters.py kills and resumes them",
    "accelerator=ddp_spawn": "several processes: tests/training/test_clusters.py kills and resumes them",
    "callbacks=eval": "the validate/test/predict preset: it writes no checkpoint to resume from",
    "debug=fdr": "fast_dev_run writes no checkpoint to resume from",
    "experiment=fashion_mnist_92": "the same groups as fashion_mnist_fast, at full length",
    "experiment=pretrain_bert": "text_corpus + bert, both rows of their own",
    "experiment=finetune_bert": "needs a pretrain_bert run; finetune and bert rows cover its parts",
}

# What some options need besides BASE to train in a few steps (files are written by `files_for`).
SETTINGS = {
    "model=gpt": ["data=char_lm", "data.block_size=32"],
    "model=bert": ["data=text_csv"],
    "data=char_lm": ["model=gpt", "data.block_size=32"],
    "data=text_corpus": ["model=bert", "data.min_freq=1", "data.max_length=16"],
    "data=text_csv": ["model=transformer"],
    "data=imdb": ["model=transformer"],
    "data=ag_news": ["model=transformer"],
    "data=fortunes": ["model=transformer"],
    "data=brown": ["model=transformer"],
    "scheduler=multistep": ["scheduler.milestones=[1]"],
    "experiment=char_lm_gpt": ["data.block_size=32", "model.depth=1"],
    "optimizer.lr=auto": ["lr_find.num_training=13", "trainer.limit_train_batches=7"],  # the finder needs 13 steps
    "model.activation_checkpointing=true": ["model=transformer", "regularizer=dropout"],  # masks drawn twice
}
TEXT_TABLES = ("text_csv", "imdb", "ag_news")


# Top-level switches and trainer settings that change what a step does, each a row as well.
SWITCHES = [
    "optimizer.lr=auto",
    "channels_last=true",
    "init_from=PRETRAINED",
    "distill.teacher=PRETRAINED",
    "trainer.accumulate_grad_batches=2",
    "trainer.gradient_clip_val=0.5",
    "trainer.check_val_every_n_epoch=3",  # epochs that do not validate still end with last.ckpt
    "trainer.precision=bf16-mixed",
    "trainer.precision=bf16-true",
    "model.activation_checkpointing=true",
    "cv=2",  # killed in its first fold (tests/training/test_cross_validation.py kills a later one)
    "compile=true",
]


def rows() -> list[str]:
    options = [
        f"{group}={option}"
        for group, options in catalogue.groups().items()
        if group not in NOT_GROUPS
        for option in options
        if f"{group}={option}" not in NOT_ROWS
    ]
    return options + SWITCHES


def test_every_option_has_a_fault_row():
    every = {f"{g}={o}" for g, options in catalogue.groups().items() for o in options if g not in NOT_GROUPS}
    assert set(rows()) - set(SWITCHES) | set(NOT_ROWS) == every
    assert set(NOT_ROWS) <= every, f"NOT_ROWS names options that no longer exist: {sorted(set(NOT_ROWS) - every)}"


def recipe_data(option: str) -> str | None:
    """The data option a recipe (`experiment=...`) chooses, through the recipes it extends: its
    row gets small files too, never the real dataset a user's machine may hold."""
    group, name = option.split("=", 1)
    if group != "experiment":
        return None
    defaults = (yaml.safe_load(catalogue.option_path(group, name).read_text()) or {}).get("defaults", [])
    for entry in defaults:
        if isinstance(entry, dict) and "override /data" in entry:
            return entry["override /data"]
    extended = (recipe_data(f"experiment={e}") for e in defaults if isinstance(e, str) and e != "_self_")
    return next((data for data in extended if data), None)


def files_for(option: str, overrides: list[str], data_root: Path) -> list[str]:
    """Small files in the layout of the datasets that read files; overrides pointing at them."""
    given = next((o.split("=", 1)[1] for o in [option, *overrides] if o.startswith("data=")), None)
    data = given or recipe_data(option)
    if data in ("mnist", "fashion_mnist"):
        write_mnist_like(data_root / ("MNIST" if data == "mnist" else "FashionMNIST") / "raw")
        extra = ["data.source.system_dirs=[]"] if data == "fashion_mnist" else []
        return [f"paths.data_dir={data_root}", *extra]
    if data in ("cifar10", "cifar100"):
        write_cifar(data_root, 10 if data == "cifar10" else 100)
        return [f"paths.data_dir={data_root}"]
    if data == "imagefolder":
        write_image_folder(data_root / "folder")
        return [f"data.root={data_root / 'folder'}", "data.num_classes=3", "data.num_workers=0", "data.image_size=16"]
    if data in TEXT_TABLES:
        write_text_table(data_root / "text.csv")
        return [f"data.path={data_root / 'text.csv'}", "data.min_freq=1", "data.num_classes=2"]
    if data in ("fortunes", "brown"):
        (write_fortunes if data == "fortunes" else write_brown)(data_root / data)
        least = ["data.min_quotations=1"] if data == "fortunes" else []
        return [f"data.root={data_root / data}", "data.num_classes=3", "data.min_freq=1", *least]
    if data == "text_corpus":
        corpus = data_root / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        words = random.Random(0).choices("the a of cat dog runs sat on mat red blue big".split(), k=4000)
        for i in range(6):
            (corpus / f"doc{i}.txt").write_text(" ".join(words[i * 600 : (i + 1) * 600]))
        # A list: a recipe may set data.path to a list of globs, and a string cannot replace a list.
        return [f"data.path=['{corpus}/*.txt']"]
    if option.startswith("finetune=") or option == "experiment=finetune_digits":
        return ["init_from=PRETRAINED"]
    return []


def runs_of(run_dir: Path) -> list[Path]:
    """The run itself, or with cv= its fold runs."""
    return sorted(run_dir.glob("fold_*")) or [run_dir]


def validation_rows(run_dir: Path) -> list[dict]:
    rows = []
    for path in (run / "csv" / "metrics.csv" for run in runs_of(run_dir)):
        if path.is_file():
            with open(path, newline="") as f:
                rows += [
                    {k: v for k, v in row.items() if k in ("epoch", "step") or k.startswith("val/")}
                    for row in csv.DictReader(f)
                    if any(row.get(k) for k in row if k.startswith("val/"))
                ]
    return rows


def final_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for run in runs_of(run_dir):
        checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
        states = {
            **checkpoint["state_dict"],
            **{f"raw.{k}": v for k, v in checkpoint.get("current_model_state", {}).items()},
        }
        tensors |= {f"{run.relative_to(run_dir)}/{k}": v for k, v in states.items()}
    return tensors


@pytest.fixture(scope="module")
def forks():
    server = ForkServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A short run whose weights the finetune rows start from."""
    from bigmodel_cli.cli.main import main

    where = tmp_path_factory.mktemp("pretrained")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(where)
        with pytest.raises(SystemExit) as ended:
            main(["train", *BASE, "run_name=base", "logger=none"])
    assert not ended.value.code
    return where / "outputs" / "train" / "base"


@pytest.mark.slow
@pytest.mark.parametrize("option", rows())
def test_a_killed_run_resumes_to_the_uninterrupted_result(option, forks, pretrained, cli, in_tmp_cwd):
    # Sums over another number of threads round otherwise: a test before this one in the same
    # worker that changed torch's thread count would show up as differing results, not as itself.
    assert torch.get_num_threads() == forks.threads, (
        f"this process trains on {torch.get_num_threads()} threads and the killed runs on {forks.threads}: "
        f"a test before this one changed torch.set_num_threads"
    )
    settings = SETTINGS.get(option, [])
    overrides = [*BASE, option, *settings, *files_for(option, settings, in_tmp_cwd / "data")]
    overrides = [o.replace("PRETRAINED", str(pretrained)) for o in overrides]
    # The run to kill (forked) and the run left alone (here) train side by side.
    step = random.Random(option).randint(1, EPOCHS * BATCHES - 1)
    forks.start(in_tmp_cwd, ["train", *overrides, *fault_overrides(step), "run_name=cut"])
    code, _, err = cli("train", *overrides, "run_name=whole")
    killed = forks.wait()
    assert code == 0, err
    whole = in_tmp_cwd / "outputs" / "train" / "whole"
    steps = torch.load(runs_of(whole)[0] / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    if step >= steps:  # data with fewer batches than BATCHES (or overfit_batches): a step of its own run
        step = random.Random(option).randint(1, steps - 1)
        shutil.rmtree(in_tmp_cwd / "outputs" / "train" / "cut")
        killed = forks.run(in_tmp_cwd, ["train", *overrides, *fault_overrides(step), "run_name=cut"])
    assert killed == -9, f"the run to interrupt ended with {killed}, not SIGKILL at step {step}"
    cut = in_tmp_cwd / "outputs" / "train" / "cut"
    assert not (cut / "metrics.json").exists()
    code, out, err = cli("train", f"resume={cut}", "~callbacks.fault")
    assert code == 0, err

    assert validation_rows(cut) == validation_rows(whole), f"killed at step {step}: validation rows differ"
    assert json.loads((cut / "metrics.json").read_text()) == json.loads((whole / "metrics.json").read_text()), (
        f"killed at step {step}: final metrics differ"
    )
    a, b = final_tensors(whole), final_tensors(cut)
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"killed at step {step}: last.ckpt tensors differ: {differ[:5]}"


def csv_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_run_killed_between_its_epoch_checkpoint_and_training_row_keeps_the_row(forks, cli, in_tmp_cwd):
    """Lightning writes an epoch's checkpoint before it logs the epoch's training row; killed in
    between, the resumed run's CSV log is still the whole run's, row for row (epoch 0's training
    row comes from the checkpoint)."""
    kill = ["+callbacks.fault._target_=tests.support.faults.KillAfterEpochCheckpoint", "+callbacks.fault.epoch=0"]
    forks.start(in_tmp_cwd, ["train", *BASE, *kill, "allow_targets=[tests.support.]", "run_name=cut"])
    code, _, err = cli("train", *BASE, "run_name=whole")
    assert forks.wait() == -9 and code == 0, err
    cut, whole = (in_tmp_cwd / "outputs" / "train" / name for name in ("cut", "whole"))
    assert not any(row.get("train/acc") for row in csv_rows(cut)), "the kill came after the training row"
    code, _, err = cli("train", f"resume={cut}", "~callbacks.fault")
    assert code == 0, err
    assert csv_rows(cut) == csv_rows(whole)


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGUSR1", "SIGUSR2"])
def test_a_preempted_run_saves_stops_and_resumes_to_the_uninterrupted_result(signal_name, forks, cli, in_tmp_cwd):
    """SLURM's and submitit's warnings before a time limit or pre-emption: the run saves last.ckpt
    at the end of the batch, stops with one line (exit 2, run.json "interrupted") and resumes from
    exactly that step to the result of the run left alone."""
    overrides = [*BASE, "augmentation=[flip_crop,mixup]", "regularizer=[dropout,early_stopping]"]
    step = {"SIGTERM": 3, "SIGUSR1": 5, "SIGUSR2": 6}[signal_name]  # mid-epoch, each its own step
    forks.start(in_tmp_cwd, ["train", *overrides, *fault_overrides(step, signal_name), "run_name=cut"])
    code, _, err = cli("train", *overrides, "run_name=whole")
    stopped = forks.wait()
    assert code == 0, err
    cut = in_tmp_cwd / "outputs" / "train" / "cut"
    log = next(in_tmp_cwd.glob("fork-*.log")).read_text()
    assert stopped == 2, log[-2000:]
    assert f"received {signal_name} at step {step}" in log
    assert torch.load(cut / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == step
    assert json.loads((cut / "run.json").read_text())["status"] == "interrupted"

    code, out, err = cli("train", f"resume={cut}", "~callbacks.fault")
    assert code == 0, err
    assert f"step {step})" in out  # resumed from the step the signal saved
    whole = in_tmp_cwd / "outputs" / "train" / "whole"
    assert validation_rows(cut) == validation_rows(whole)
    assert json.loads((cut / "metrics.json").read_text()) == json.loads((whole / "metrics.json").read_text())
    a, b = final_tensors(whole), final_tensors(cut)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def sweep_results(sweep_dir: Path) -> dict[str, tuple]:
    """Each job of a sweep: its final metrics and last.ckpt tensors, by job number."""
    return {
        job.name: (json.loads((job / "metrics.json").read_text()), final_tensors(job))
        for job in sorted(p for p in sweep_dir.iterdir() if p.name.isdigit())
    }


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_preempted_sweep_resumes_every_job_to_the_uninterrupted_result(launcher, forks, cli, in_tmp_cwd):
    """A sweep pre-empted part-way (SIGUSR1 in its jobs) is re-run with resume=auto under the same
    run_name: every job continues from its own checkpoint and ends as in the sweep left alone."""
    sweep = ["-m", f"launcher={launcher}", *BASE, "optimizer=sgd,adam"]
    if launcher == "joblib":
        sweep.append("hydra.launcher.n_jobs=2")
    forks.start(in_tmp_cwd, ["train", *sweep, *fault_overrides(5, "SIGUSR1"), "run_name=cut"])
    code, _, err = cli("train", *sweep, "run_name=whole")
    stopped = forks.wait()
    assert code == 0, err
    cut = in_tmp_cwd / "multirun" / "train" / "cut"
    statuses = [json.loads((job / "run.json").read_text())["status"] for job in sorted(cut.glob("[0-9]"))]
    assert stopped != 0 and "interrupted" in statuses, (stopped, statuses)

    code, _, err = cli("train", *sweep, "run_name=cut", "resume=auto")
    assert code == 0, err
    whole, resumed = sweep_results(in_tmp_cwd / "multirun" / "train" / "whole"), sweep_results(cut)
    assert whole.keys() == resumed.keys() == {"0", "1"}
    for job, (metrics, tensors) in whole.items():
        assert resumed[job][0] == metrics, f"job {job}: final metrics differ"
        assert [k for k in tensors if not torch.equal(tensors[k], resumed[job][1][k])] == [], (
            f"job {job}: weights differ"
        )


@pytest.mark.slow
def test_a_run_stopped_by_ctrl_c_is_recorded_interrupted_and_resumes(forks, cli, in_tmp_cwd):
    forks.run(in_tmp_cwd, ["train", *BASE, *fault_overrides(3, "SIGINT"), "run_name=stopped"])
    run_dir = in_tmp_cwd / "outputs" / "train" / "stopped"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    code, out, err = cli("train", f"resume={run_dir}", "~callbacks.fault")
    assert code == 0, err
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
